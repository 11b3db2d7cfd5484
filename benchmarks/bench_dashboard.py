"""Dashboard render time against its floors, on a SYNTHETIC cache of 100,000 ads × 60 frames.

    python benchmarks/bench_dashboard.py [--ads 100000] [--repeat 5] [--rebuild] [--writer store|batch]
                                         [--fresh-process 3] [--profile]

The cache (benchmarks/synthetic_cache.py) is built once under cache/bench/synthetic-100k/ (with
`--ads 10000`: cache/bench/synthetic-10k/) and reused; `--rebuild` rebuilds it (100,000 ads with the
default batched writer: about 20 minutes on two busy cores). It is clearly synthetic: ads "SYNTHETIC ad NNNNN.mp4", model
"synthetic" version "synthetic-benchmark", random smooth probabilities of the 7 FER emotions,
figures computed from them by emocore.scoring, ~2 % failed ads, one tiny thumbnail per ad.

Measured with Streamlit's AppTest (server side: the script's execution and the serialisation of
its elements, plus AppTest reading them back; not the browser's drawing, nor the websocket),
medians of `--repeat` runs:
- library, cold: a fresh AppTest after the dashboard's caches are cleared (the library query with its
  norms: scores, percentiles, lifts, the lifted dominant; the thumbnails of the first page and the
  page itself), floor 1.5 s;
- library, rerun: the same AppTest run again (everything from Streamlit's caches), floor 0.3 s;
- library, filter changed: another "Rank by emotion" chosen, then run (re-filter, re-rank with
  queries.rank, re-serialise the page from the cached library), floor 0.3 s; the shown order must be
  queries.rank's (the order `cli.py ls --rank` prints);
- library, minimum evidence changed: another minimum number of face frames, then run (what is
  ranked changes; no new query), floor 0.3 s;
- ad page, cold: a fresh AppTest on views/ad.py?ad=KEY&t=12.5 of an ad never opened before in
  the process (its bundle is read from SQLite), with the library already cached, floor 1 s;
- ad page, rerun: the same AppTest run again, floor 0.3 s;
- library, page 2: the page number set to 2 (the next 50 rows of the cached ranking, their
  thumbnails read), floor 0.3 s; the rows must be queries.rank's 51st to 100th;
- ad picker, a search typed: a name typed into the ad page's search box (SQLite finds at most
  50 matches: queries.search_ads), floor 0.3 s; the picker must offer no more than 51 ads.
Each row prints its median over the floor (× floor: below 1 meets it); the cold rows also print the
process's CPU seconds (all its threads), steadier than wall time on a shared machine.
Each cold/warm state is checked (the library query and the ad bundle read are counted), and
every page must render without an exception.

Also, for information (no floor): the first render in a fresh Python process, which pays the
imports of the dashboard's modules (pandas, plotly, emocore) once per server process
(`--fresh-process N` subprocesses; 0 to skip).

When a floor is not met (or with `--profile`), the page is run once more under cProfile (in the
script thread) and the top costs are printed. The whole run takes about a minute on two cores once
the cache exists (building it: about 1 minute with the Store writer).
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import importlib.util
import json
import logging
import os
import platform
import pstats
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboard"
MAIN = str(DASHBOARD / "main.py")
STDLIB = sysconfig.get_paths()["stdlib"] + "/"
TIMEOUT = 120
AD_T = "12.5"


def _quiet_streamlit() -> None:
    """Outside `streamlit run` every cache call warns that there is no runtime: keep the output readable
    (Streamlit resets its loggers' levels from its config, so warnings are disabled globally; errors show)."""
    logging.disable(logging.WARNING)


def _clear_caches() -> None:
    """Empty the dashboard's caches (st.cache_data and the library table's st.cache_resource): a cold start."""
    import streamlit

    streamlit.cache_data.clear()
    streamlit.cache_resource.clear()


def _apptest(cache: Path, page: str | None = None, **params: str):
    from streamlit.testing.v1 import AppTest

    sys.argv = ["main.py", "--cache", str(cache)]
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    if page:
        at.switch_page(page)
    for name, value in params.items():
        at.query_params[name] = value
    return at


def _timed(run: Callable[[], object], cpu: list[float] | None = None) -> float:
    """Wall seconds of `run()`; with `cpu`, its CPU seconds (this process, all threads) appended to it."""
    start, used = time.perf_counter(), time.process_time()
    run()
    if cpu is not None:
        cpu.append(time.process_time() - used)
    return time.perf_counter() - start


class Counters:
    """Counts the cache's real reads (queries.library, queries.ad_bundle) to check cold and warm states."""

    def __init__(self) -> None:
        from emocore import queries

        self.library = 0
        self.bundle = 0
        self.library_s: list[float] = []
        original_library, original_bundle = queries.library, queries.ad_bundle

        def library(store, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            self.library += 1
            start = time.perf_counter()
            try:
                return original_library(store, *args, **kwargs)
            finally:
                self.library_s.append(time.perf_counter() - start)

        def ad_bundle(store, key):  # noqa: ANN001, ANN202
            self.bundle += 1
            return original_bundle(store, key)

        queries.library, queries.ad_bundle = library, ad_bundle


def _check_library(at, ads: int) -> None:  # noqa: ANN001
    if at.exception:
        raise RuntimeError(f"library page raised: {at.exception[0].value}")
    shown = at.dataframe[0].value
    metric = next(m.value for m in at.metric if m.label == "Ads")
    if metric != f"{ads:,}" or len(shown) != 50:
        raise RuntimeError(f"library page shows {metric} ads and {len(shown)} rows (expected {ads:,} and 50)")


def _check_ad(at, name: str) -> None:  # noqa: ANN001
    if at.exception:
        raise RuntimeError(f"ad page raised: {at.exception[0].value}")
    if not at.title or name.split(".")[0] not in at.title[0].value.replace("\\", ""):
        raise RuntimeError(f"ad page shows {[t.value for t in at.title]}, expected {name}")
    if not at.get("plotly_chart"):
        raise RuntimeError("ad page has no timeline chart")


@dataclass
class Row:
    name: str
    times: list[float]
    floor: float | None
    note: str = ""
    binding: bool = True
    """False: shown against the floor for information only (no profile when over it)."""
    cpu: list[float] | None = None
    """CPU seconds of the same runs (this process): steadier than wall time on a shared machine."""

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def met(self) -> bool | None:
        return None if self.floor is None else self.median <= self.floor


#: frames that only wrap the page (Streamlit's runner, its cache wrappers, the router) or this script
_WRAPPERS = ("streamlit/runtime/scriptrunner", "streamlit/testing/", "streamlit/navigation/",
             "streamlit/runtime/caching/", "streamlit/runtime/metrics_util", "bench_dashboard.py",
             "dashboard/main.py", "builtins.exec", "threading.py")


def profile_run(at, top: int = 18) -> str:  # noqa: ANN001
    """Run the AppTest once under cProfile (only Streamlit's script thread); the top costs as text."""
    profiler = cProfile.Profile()
    started = threading.Event()

    def start_in_script_thread(*_: object) -> None:
        if not started.is_set() and threading.current_thread().name.startswith("ScriptRunner"):
            started.set()
            profiler.enable()  # replaces this hook with cProfile's, for this thread only
        else:
            sys.setprofile(None)

    threading.setprofile(start_in_script_thread)
    try:
        took = _timed(at.run)
    finally:
        threading.setprofile(None)
    profiler.create_stats()
    stats = pstats.Stats(profiler).stats  # {(file, line, name): (cc, ncalls, tottime, cumtime, callers)}
    total = max((v[3] for v in stats.values()), default=0.0)

    def label(func: tuple[str, int, str]) -> str:
        file, line, name = func
        if file == "~":
            return name
        short = file.replace(str(ROOT) + "/", "")
        if "site-packages/" in short:
            short = short.split("site-packages/", 1)[1]
        elif short.startswith(STDLIB):
            short = short[len(STDLIB):]
        return f"{short}:{line}({name})"

    rows = [(label(f), v[1], v[2], v[3]) for f, v in stats.items()]
    rows = [r for r in rows if not any(w in r[0] for w in _WRAPPERS)]
    lines = [f"(one run under cProfile: {took:.3f} s wall, {total:.3f} s profiled in the script thread; "
             "the profiler inflates Python-heavy code)",
             f"  {'cumulative s':>12} {'own s':>7} {'calls':>7}  function"]
    for name, calls, own, cum in sorted(rows, key=lambda r: -r[3])[:top]:
        lines.append(f"  {cum:>12.3f} {own:>7.3f} {calls:>7}  {name}")
    lines.append("  top own time:")
    for name, calls, own, cum in sorted(rows, key=lambda r: -r[2])[:8]:
        lines.append(f"  {cum:>12.3f} {own:>7.3f} {calls:>7}  {name}")
    return "\n".join(lines)


def fresh_process_first_render(cache: Path, page: str) -> float:
    """Child mode: the first render of a page in this (fresh) process."""
    with sqlite3.connect(cache / "emocore.sqlite") as db:
        ads = db.execute("SELECT COUNT(*) FROM ads").fetchone()[0]
        key, name = db.execute("SELECT key, name FROM ads WHERE status = 'ok' ORDER BY name LIMIT 1").fetchone()
    at = _apptest(cache) if page == "library" else _apptest(cache, "views/ad.py", ad=key, t=AD_T)
    took = _timed(at.run)
    if page == "library":
        _check_library(at, ads)
    else:
        _check_ad(at, name)
    return took


def import_costs() -> dict[str, float]:
    """Child mode: seconds to import what the pages import, in a fresh process (AppTest already loaded)."""
    importlib.import_module("streamlit.testing.v1")  # loaded before any page runs

    costs = {}
    for label, modules in (
        ("emocore.attribution (lime, sklearn, scipy.stats, skimage: imported when used)", ["emocore.attribution"]),
        ("the rest of emocore.queries (emocore.explain, av, ...)", ["emocore.queries"]),
        ("emocore.charts, export, render; loaders, widgets", ["emocore.charts", "emocore.export", "emocore.render",
                                                             "loaders", "widgets"]),
    ):
        start = time.perf_counter()
        for module in modules:
            _import(module)
        costs[label] = time.perf_counter() - start
    return costs


def _import(module: str) -> None:
    """Import an installed module by name, or one of the dashboard's own (loaders, widgets) from its file in
    dashboard/, which `streamlit run` makes importable by putting that folder on the path."""
    if module.startswith("emocore"):
        importlib.import_module(module)
        return
    spec = importlib.util.spec_from_file_location(module, DASHBOARD / f"{module}.py")
    assert spec is not None and spec.loader is not None, module
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[module] = loaded
    spec.loader.exec_module(loaded)


def _fresh_process_runs(cache: Path, page: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, __file__, "--child-first-render", page, "--cache", str(cache)],
            capture_output=True, text=True, timeout=300, check=False,
        )
        last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        if done.returncode != 0 or not last.startswith("{"):
            raise RuntimeError(f"fresh-process render failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        found = json.loads(last)
        times.append(found.get("seconds", found))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the synthetic cache first")
    parser.add_argument("--ads", type=int, default=100_000, help="ads in the synthetic cache (default 100000)")
    parser.add_argument("--writer", choices=("store", "batch"), default="batch",
                        help="how to build the cache: Store.write_ad per ad, or batched transactions")
    parser.add_argument("--fresh-process", type=int, default=3, metavar="N",
                        help="first renders in N fresh processes (information; 0 skips)")
    parser.add_argument("--profile", action="store_true", help="profile the pages even when every floor is met")
    parser.add_argument("--cache", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-first-render", choices=("library", "ad", "imports"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    _quiet_streamlit()

    import synthetic_cache

    cache = args.cache or synthetic_cache.DEFAULT_ROOT.with_name(f"synthetic-{args.ads // 1000}k")
    if args.child_first_render:
        if args.child_first_render == "imports":
            print(json.dumps(import_costs()))
        else:
            print(json.dumps({"seconds": fresh_process_first_render(cache, args.child_first_render)}))
        return

    began = time.perf_counter()
    print("Dashboard benchmark on a SYNTHETIC cache (not real ads, not a real model)")
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}", end="")
    built = synthetic_cache.build(cache, ads=args.ads, writer=args.writer, rebuild=args.rebuild, quiet=True)
    import streamlit

    print(f", streamlit {streamlit.__version__}")
    with sqlite3.connect(cache / "emocore.sqlite") as db:
        ads = db.execute("SELECT COUNT(*) FROM ads").fetchone()[0]
        frames = db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        failed = db.execute("SELECT COUNT(*) FROM ads WHERE status = 'failed'").fetchone()[0]
        candidates = db.execute("SELECT key, name FROM ads WHERE status = 'ok' ORDER BY name").fetchall()
    size = sum(p.stat().st_size for p in cache.glob("emocore.sqlite*"))
    if built is None:
        print(f"cache: {cache} (reused; --rebuild to rebuild)")
    else:
        print(f"cache: {cache} built in {built:.1f} s with the {args.writer!r} writer")
    print(f"  {ads:,} ads ({failed} failed), {frames:,} frame rows, database {size / 1e6:.0f} MB")

    rows: list[Row] = []
    if args.fresh_process > 0:
        note = "information: includes importing the dashboard's modules, once per server process"
        rows.append(Row("library, first render in a fresh process", _fresh_process_runs(cache, "library",
                                                                                         args.fresh_process), 1.5, note,
                        binding=False))
        rows.append(Row("ad page, first render in a fresh process", _fresh_process_runs(cache, "ad",
                                                                                         args.fresh_process), 1.0,
                        "information: the first page a new server shows; imports as above", binding=False))
        imports = _fresh_process_runs(cache, "imports", 1)[0]

    from emocore import queries as _queries

    original_library = _queries.library
    counters = Counters()

    # warm up the imports in this process (not measured: the fresh-process row covers it)
    _clear_caches()
    warm = _apptest(cache)
    warm.run()
    _check_library(warm, ads)
    warm.switch_page("views/ad.py")
    warm.query_params["ad"] = candidates[-1][0]
    warm.run()
    _check_ad(warm, candidates[-1][1])

    # (a) library cold, (b) library rerun
    cold, rerun = [], []
    cold_cpu: list[float] = []
    for _ in range(args.repeat):
        _clear_caches()
        before = counters.library
        at = _apptest(cache)
        cold.append(_timed(at.run, cold_cpu))
        _check_library(at, ads)
        if counters.library != before + 1:
            raise RuntimeError("the cold library render did not query the cache")
        rerun.append(_timed(at.run))
        _check_library(at, ads)
        if counters.library != before + 1:
            raise RuntimeError("the library rerun queried the cache again (not cached)")
    query_s = statistics.median(counters.library_s[-args.repeat:])
    rows.append(Row("library, cold (caches cleared)", cold, 1.5,
                    f"of which queries.library(): {query_s:.3f} s", cpu=cold_cpu))
    rows.append(Row("library, rerun (cached)", rerun, 0.3))

    # (e) library rerun after a filter change: a different rank emotion each time
    from emocore import queries
    from emocore.store import Store

    with Store(cache, readonly=True) as store:
        library = original_library(store)
    changed = []
    at = _apptest(cache)
    at.run()
    emotions = [e for e in synthetic_cache.LABELS if e != "happy"]
    before = counters.library
    for i in range(args.repeat):
        emotion = emotions[i % len(emotions)]
        at.selectbox(key="lib-emotion").set_value(emotion)
        changed.append(_timed(at.run))
        _check_library(at, ads)
        expected = queries.rank(library, emotion)["name"].head(50).tolist()
        if at.dataframe[0].value["name"].tolist() != expected:
            raise RuntimeError(f"the library's order for {emotion} is not queries.rank's")
    if counters.library != before:
        raise RuntimeError("a filter change queried the cache again")
    rows.append(Row("library, rerun after a filter change", changed, 0.3, "rank emotion changed"))

    # (f) library rerun after the minimum evidence changed
    evidence = []
    for i in range(args.repeat):
        minimum = (5, 40, 20, 55, 1)[i % 5]
        at.number_input(key="lib-evidence-frames").set_value(minimum)
        evidence.append(_timed(at.run))
        _check_library(at, ads)
        expected = queries.rank(library, emotion, min_face_frames=minimum)["name"].head(50).tolist()
        if at.dataframe[0].value["name"].tolist() != expected:
            raise RuntimeError(f"the library's order for at least {minimum} face frames is not queries.rank's")
    if counters.library != before:
        raise RuntimeError("a change of the minimum evidence queried the cache again")
    rows.append(Row("library, rerun after a minimum change", evidence, 0.3,
                    "minimum face frames changed"))

    # (c) ad page cold (bundle not cached; library cached), (d) ad page rerun
    ad_cold, ad_rerun = [], []
    ad_cpu: list[float] = []
    step = max(1, len(candidates) // (args.repeat + 1))
    for key, name in candidates[step // 2::step][: args.repeat]:
        before_lib, before_bundle = counters.library, counters.bundle
        at = _apptest(cache, "views/ad.py", ad=key, t=AD_T)
        ad_cold.append(_timed(at.run, ad_cpu))
        _check_ad(at, name)
        if counters.bundle != before_bundle + 1 or counters.library != before_lib:
            raise RuntimeError("the ad page was not cold for its ad or not warm for the library")
        ad_rerun.append(_timed(at.run))
        _check_ad(at, name)
        if counters.bundle != before_bundle + 1:
            raise RuntimeError("the ad page rerun read the ad again (not cached)")
    rows.append(Row("ad page, cold for the ad (library cached)", ad_cold, 1.0, cpu=ad_cpu))
    rows.append(Row("ad page, rerun (cached)", ad_rerun, 0.3))

    # (g) library page 2: the next rows of the cached ranking
    second = []
    expected = queries.rank(library, "happy")["name"].iloc[50:100].tolist()
    for _ in range(args.repeat):
        at = _apptest(cache)
        at.run()
        at.number_input(key="lib-page").set_value(2)
        second.append(_timed(at.run))
        if at.exception or at.dataframe[0].value["name"].tolist() != expected:
            raise RuntimeError("page 2 of the library is not queries.rank's 51st to 100th ads")
    rows.append(Row("library, page 2", second, 0.3, "the page number set to 2"))

    # (h) the ad picker: a search typed, answered by SQLite
    searched = []
    texts = [name.split(".")[0][-5:] for _, name in candidates[1::max(1, len(candidates) // args.repeat)]]
    at = _apptest(cache, "views/ad.py", ad=candidates[0][0], t=AD_T)
    at.run()
    for text in texts[: args.repeat]:
        at.text_input(key="ad-find").set_value(text)
        searched.append(_timed(at.run))
        offered = at.selectbox(key="ad-pick").options
        if at.exception or len(offered) > queries.SEARCH_LIMIT + 1 or not any(text in o for o in offered):
            raise RuntimeError(f"the ad picker offers {len(offered)} ads for {text!r} (at most "
                               f"{queries.SEARCH_LIMIT + 1}, with a match)")
    with Store(cache, readonly=True) as store:
        query_s = statistics.median(_timed(lambda: queries.search_ads(store, t)) for t in texts)
    rows.append(Row("ad picker, a search typed", searched, 0.3,
                    f"of which queries.search_ads(): {query_s:.3f} s; {len(offered)} ads offered, not {ads:,}"))

    # the table
    print()
    print(f"{'measurement':<45} {'median s':>9} {'floor s':>8} {'× floor':>8}  {'result':<8} runs (s)")
    print("-" * 119)
    for row in rows:
        floor = "—" if row.floor is None else f"{row.floor:.1f}"
        ratio = "—" if row.floor is None else f"{row.median / row.floor:.2f}"
        result = "—" if row.met is None else ("met" if row.met else "NOT MET")
        if not row.binding and row.met is not None:
            result = "(under)" if row.met else "(over)"
        runs = " ".join(f"{t:.2f}" for t in row.times)
        print(f"{row.name:<45} {row.median:>9.3f} {floor:>8} {ratio:>8}  {result:<8} {runs}")
        if row.note:
            print(f"{'':<47}{row.note}")
        if row.cpu:
            print(f"{'':<47}CPU seconds of this process (median): {statistics.median(row.cpu):.3f}")
    print("-" * 119)
    print(f"{args.repeat} runs each (medians); {ads:,} ads. AppTest time is server side: it includes running the page "
          "script and\nserialising its elements (plus AppTest reading them back), not the websocket or the browser's "
          "drawing.\nThe machine may be shared and noisy: read the medians against the floors, not to the millisecond.")

    if args.fresh_process > 0:
        print("\nImports a fresh process pays before its first page (one run; no floor):")
        for label, seconds in imports.items():
            print(f"  {seconds:6.3f} s  {label}")

    missed = [r for r in rows if r.met is False and r.binding]
    if missed or args.profile:
        print()
        print("Profiles" + (" (floors not met: " + ", ".join(r.name for r in missed) + ")" if missed else ""))
        _clear_caches()
        print("\n== library page, cold ==")
        print(profile_run(_apptest(cache)))
        at = _apptest(cache)
        at.run()
        print("\n== library page, rerun ==")
        print(profile_run(at))
        key, _ = candidates[2]  # an ad no measurement opened
        print("\n== ad page, cold for the ad ==")
        at = _apptest(cache, "views/ad.py", ad=key, t=AD_T)
        print(profile_run(at))
        print("\n== ad page, rerun ==")
        print(profile_run(at))
    print(f"benchmark took {time.perf_counter() - began:.0f} s"
          + ("" if built is None else f" (of which building the cache {built:.0f} s)"))


if __name__ == "__main__":
    main()
