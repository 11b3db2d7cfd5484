"""Library norms and `ls --rank` against their goals, on a SYNTHETIC cache of 100,000 ads.

    python benchmarks/bench_norms.py [--ads 100000] [--repeat 5] [--rebuild] [--library-ads 10000]

The cache is built once by `synthetic_cache.build_figures` under cache/bench/synthetic-figures-100k/
and reused (`--rebuild` rebuilds it): clearly synthetic ads ("SYNTHETIC ad NNNNNN.mp4", model
"synthetic"), the `ads` and `emotions` rows only (no frames: norms and rankings never read them),
face coverage from 2 % to 100 %, ~2 % failed ads. Medians of `--repeat` runs, each printed as a
ratio to its goal (≤ 1.0 meets it), wall-clock and CPU time (user + system, subprocesses included):
on a machine shared with other work the wall clock includes waiting for a core, the CPU time
does not, so both are printed with the load average:

- norms: `emocore.norms.load_norms` on the 100,000-ad cache (one query, vectorised), goal 2 s;
- `ls --rank happy --limit 20`, in process: the CLI function through Typer's CliRunner (library
  query, norms, percentiles, lifts, ranking, a 20-row table), goal 2 s;
- the same as a subprocess (`python cli.py ls ...`: adds the interpreter's start and imports), goal 2 s;
- for information: `ls --rank happy --json` in process (every one of the 100,000 rows as JSON);
- the library query with percentiles on the 10,000-ad dashboard cache (`queries.library`, what
  the dashboard's library page loads, cold), for information: benchmarks/bench_dashboard.py holds
  the page's own goals (1.5 s cold, 0.3 s rerun).

Also checked, not timed: the order `ls --rank happy --json` prints is exactly `queries.rank`'s,
and the top 20 are not low-coverage ads (the failure the evidence-aware score exists to prevent).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import synthetic_cache  # beside this script: Python puts the script's folder on the path

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_ROOT = ROOT / "cache" / "bench" / "synthetic-figures-100k"
GOAL_NORMS_S = 2.0
GOAL_LS_S = 2.0


def _cpu() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _median(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds of `repeat` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), _cpu()
        run()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _line(label: str, measured: tuple[float, float], goal: float | None) -> None:
    wall, cpu = measured
    ratio = (f"{wall / goal:5.2f}× goal ({goal:g} s); CPU {cpu:6.3f} s = {cpu / goal:4.2f}×" if goal
             else f"(information); CPU {cpu:6.3f} s")
    print(f"  {label:<56} {wall:7.3f} s  {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ads", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--library-ads", type=int, default=10_000,
                        help="ads of the dashboard's synthetic cache for the library query (0 skips it)")
    args = parser.parse_args()

    from typer.testing import CliRunner

    from cli import app
    from emocore import queries
    from emocore.norms import load_norms
    from emocore.store import Store

    print("Norms and ranking benchmark on a SYNTHETIC cache (not real ads, not a real model)")
    print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average "
          f"{os.getloadavg()[0]:.1f}")
    built = synthetic_cache.build_figures(args.root, args.ads, rebuild=args.rebuild, quiet=True)
    print(f"cache: {args.root} " + ("(reused; --rebuild to rebuild)" if built is None else f"built in {built:.1f} s"))

    with Store(args.root, readonly=True) as store:
        ads = store.connection.execute("SELECT COUNT(*) FROM ads").fetchone()[0]
        norms_s = _median(lambda: load_norms(store), args.repeat)
        table = queries.library(store)
    print(f"  {ads:,} ads; {args.repeat} runs each, medians")
    _line(f"norms of {ads:,} ads (load_norms)", norms_s, GOAL_NORMS_S)

    runner = CliRunner()
    command = ["ls", "--cache", str(args.root), "--rank", "happy", "--limit", "20"]

    def in_process() -> None:
        done = runner.invoke(app, command)
        assert done.exit_code == 0, done.output

    _line("ls --rank happy --limit 20, in process", _median(in_process, args.repeat), GOAL_LS_S)

    def as_subprocess() -> None:
        subprocess.run([sys.executable, "cli.py", *command], cwd=ROOT, check=True, capture_output=True)

    _line("ls --rank happy --limit 20, subprocess", _median(as_subprocess, args.repeat), GOAL_LS_S)

    printed: list[str] = []

    def as_json() -> None:
        done = runner.invoke(app, ["ls", "--cache", str(args.root), "--rank", "happy", "--json"])
        assert done.exit_code == 0, done.output
        printed[:] = [done.stdout]

    _line(f"ls --rank happy --json (all {ads:,} rows), in process", _median(as_json, max(1, args.repeat // 2)), None)
    print(f"  load average now {os.getloadavg()[0]:.1f}")
    rows = json.loads(printed[0])
    expected = queries.rank(table, "happy")
    assert [r["key"] for r in rows if r["key"]] == list(expected["key"]), "ls --rank differs from queries.rank"
    top = expected.head(20)
    print(f"  check: ls --rank's order is queries.rank's; top 20 by score have {top['face_frames'].median():.0f} "
          f"face frames (median; library {table['face_frames'].median():.0f}); top 20 by raw mean: "
          f"{table.sort_values('mean_happy', ascending=False).head(20)['face_frames'].median():.0f}")

    if args.library_ads:
        library_root = synthetic_cache.DEFAULT_ROOT
        synthetic_cache.build(library_root, ads=args.library_ads, writer="batch", quiet=True)
        with Store(library_root, readonly=True) as store:
            seconds = _median(lambda: queries.library(store), args.repeat)
        _line(f"library query with percentiles, {args.library_ads:,} ads", seconds, None)
        print("  (the dashboard's library page goals: python benchmarks/bench_dashboard.py)")


if __name__ == "__main__":
    main()
