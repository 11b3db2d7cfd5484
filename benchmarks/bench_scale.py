"""Every core, and Ray: `index --workers 2` and `--engine ray` against two independent processes.

    python benchmarks/bench_scale.py [--clips 6] [--workers 2] [--repeat 1] [--writer-ads 300]
                                     [--only halves,pool,ray,one] [--skip-ray]

Builds (once, kept in cache/bench/scale/) at least 6 distinct 30 s 1280×720 H.264 clips from the demo
footage (each its own order of sources, fit and encoding, so each has its own bytes and faces), then
times, each from a cold cache (`index --no-explain`, a whole `cli.py` process: imports and model
loading included, as a user runs it):

- two independent `index` processes at once, each on half of the clips (the bar to reach);
- `index --workers 2` on all of them;
- `index --engine ray --workers 2` (a local Ray started by the command) on all of them;
- `index --workers 1` on all of them (one process, for reference).

For each: wall seconds, CPU seconds of the whole process tree (workers, fork server, Ray's processes:
read from /proc while it runs), the cores' utilisation (CPU seconds / (wall × cores available)) and CPU
seconds per ad: the figure a bigger machine or a cluster multiplies. Then the ratios: --workers 2's
throughput as a share of the two processes' (goal ≥ 95%), Ray's against --workers 2 (goal within 15%).

Last, the single writer alone: one ad's recorded writes (the calls a worker sends: an ad of 60 frames
with its thumbnails and file record) applied again and again under new keys into a fresh cache, as
ads per second: where one writer stops keeping up with the workers.
Medians of `--repeat` runs, which go round the runs back to back (a change of load touches each alike),
each printed with the load average; the machine is shared and noisy, so read the ratios and CPU seconds.
`--only pool,ray --repeat 3 --writer-ads 0` compares Ray with the pool alone. `--marginal 18` also times
the pool and Ray on 18 clips (the same first 6 and 12 more), in the same rounds, and splits each run into a
fixed cost and a cost per ad (the line through the two sizes): Ray's throughput per ad, once started, against
the pool's, apart from its start and stop. Take sizes well apart and multiples of --workers: with few clips the
last one's wait for a free worker weighs on the line (2 and 3 clips gave Ray 77 % per ad, 6 and 18 gave 92 %).

Measured on the 2-core machine, `--repeat 2`, load 2-4: 6 clips, --workers 2 14.8 s wall against 14.7 s for
the two processes (99 %; 98 % before the models loaded without torchvision and the fork server started first);
--engine ray 24.0 s against 14.1 s for the pool (59 %; `--only pool,ray --repeat 3`: 56-61 %; 67-77 % before,
when the pool started slower); 18 clips (`--clips 18 --only pool,ray`): 46.6 s against 36.8 s (79 %).
`--only pool,ray --marginal 18 --repeat 2`: once running, Ray indexed each ad at 92 % of the pool's
throughput (1.95 s against 1.79 s per ad); its fixed cost was 12.9 s against the pool's 4.4 s (`--repeat 3` on
another day: 80 %, 8.1 s against 3.6 s; per ad the two engines differ within this machine's noise).
Nearly all of Ray's extra is a fixed cost of about 10 s wall and 11 CPU s a run (goal: within 15 % of the
pool, which at 6 clips leaves Ray about 2.5 s; `cli.py --debug index --engine ray` logs its timeline):
`ray.init` 3-5 s, a task reaching a fresh worker 1.8-2.5 s after submission (each Ray worker imports
Ray, PyTorch and the indexer itself where the pool's fork server imports them once, beside the `index`
process), Ray's own processes about 4 CPU s (GCS, raylet, dashboard head and agent in minimal mode,
runtime-env agent, log and autoscaler monitors), `ray.shutdown()` 1.2-1.6 s (graceful stops, one after
the other). Starting Ray in a thread beside the driver's imports did not shorten a run here (the two
cores were already busy), nor did Ray's `preload_python_modules` (its workers start at the end of
`ray.init`). On a larger machine the fixed cost is a smaller share of the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emocore.devtools import media
from emocore.engine import StoreProxy, WriteCall, Writer, available_cores

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")

#: (sources, fit, crf): six distinct clips from the demo footage.
VARIANTS = (
    (("Megamind.avi", "carphone.mp4"), "letterbox", 23),
    (("carphone.mp4", "Megamind.avi"), "letterbox", 23),
    (("Megamind.avi", "carphone.mp4"), "fill", 23),
    (("carphone.mp4", "Megamind.avi"), "fill", 23),
    (("Megamind.avi", "vtest.avi", "carphone.mp4"), "letterbox", 25),
    (("vtest.avi", "carphone.mp4", "Megamind.avi"), "fill", 21),
)


def build_clips(count: int) -> list[Path]:
    demo = ROOT / "cache" / "demo-ads"
    folder = ROOT / "cache" / "bench" / "scale"
    clips = []
    for i in range(count):
        sources, fit, crf = VARIANTS[i % len(VARIANTS)]
        crf += i // len(VARIANTS)  # more clips than variants: another encoding, other bytes
        clips.append(media.face_clip_720p(folder / f"scale_{i:02d}.mp4", seconds=30,
                                          sources=[demo / s for s in sources], fit=fit, crf=crf))
    return clips


def _tree_cpu(root: int, seen: dict[int, float]) -> None:
    """Add the CPU seconds (user + system) of `root` and every process under it to `seen` (by pid: the
    latest reading of each, so processes that already ended keep their last figure)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / TICK
    tree = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    for pid in tree:
        if pid in times:
            seen[pid] = max(seen.get(pid, 0.0), times[pid])


def run_all(commands: list[list[str]]) -> tuple[float, float]:
    """Run the commands at once; (wall seconds until the last ends, CPU seconds of their process trees)."""
    start = time.perf_counter()
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands]
    seen: dict[int, float] = {}
    while any(p.poll() is None for p in procs):
        for p in procs:
            if p.poll() is None:
                _tree_cpu(p.pid, seen)
        time.sleep(0.2)
    wall = time.perf_counter() - start
    for p in procs:
        err = p.stderr.read().decode() if p.stderr else ""
        if p.returncode not in (0, 3):
            raise SystemExit(f"{' '.join(commands[0][:4])} … failed ({p.returncode}): {err[-2000:]}")
    return wall, sum(seen.values())


def index_cmd(folder: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "cli.py", "index", str(folder), "--cache", str(cache), "--no-explain", *extra]


def _rekeyed(call: WriteCall, key: str, i: int) -> WriteCall:
    """The same write for another ad (another key, another file path)."""
    if call.method == "write_ad":
        return dataclasses.replace(call, args=(dataclasses.replace(call.args[0], key=key), *call.args[1:]))
    if call.method == "write_audio":
        return dataclasses.replace(call, args=(key, *call.args[1:]))
    if call.method == "record_file":
        return dataclasses.replace(call, args=(f"{call.args[0]}#{i}",), kwargs={**call.kwargs, "ad_key": key})
    raise ValueError(f"no explanations expected here ({call.method})")


def writer_rate(clip: Path, ads: int) -> float:
    """Ads per second one writer applies (one 30 s ad's recorded writes, again under new keys)."""
    from emocore.indexer import IndexParams, index_video
    from emocore.models import load_model
    from emocore.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        proxy = StoreProxy(Path(tmp) / "none", Path(tmp) / "scratch")
        with load_model("fer") as model:
            index_video(clip, proxy, model, IndexParams())  # type: ignore[arg-type]
        calls = proxy.calls
        proxy.close()
        copies = []
        for i in range(ads):
            key = f"{i:020d}"
            copies.append([_rekeyed(c, key, i) for c in calls])
        with Store(Path(tmp) / "cache") as store:
            writer = Writer(store)
            start = time.perf_counter()
            for one in copies:
                writer.apply(one)
            return ads / (time.perf_counter() - start)


def _marginal(results: dict[str, tuple[float, float]], n: int, m: int, workers: int) -> str:
    """Each engine's run as a fixed cost plus a cost per ad (the line through its walls at n and m clips),
    and Ray's throughput per ad against the pool's."""
    lines = []
    per_ad = {}
    for name in ("pool", "ray"):
        per_ad[name] = (results[f"{name}+"][0] - results[name][0]) / (m - n)
        cpu_per_ad = (results[f"{name}+"][1] - results[name][1]) / (m - n)
        fixed = results[name][0] - n * per_ad[name]
        lines.append(f"{name}: {per_ad[name]:.2f} s wall and {cpu_per_ad:.2f} CPU s per ad once running, "
                     f"{fixed:.1f} s fixed (lines through {n} and {m} clips)")
    lines.append(f"--engine ray throughput per ad / --workers {workers}, start and stop apart: "
                 f"{per_ad['pool'] / per_ad['ray']:.0%}; whole run on {m} clips: "
                 f"{results['pool+'][0] / results['ray+'][0]:.0%}")
    return "\n".join(lines)


#: The runs, by the short name `--only` takes.
RUNS = ("halves", "pool", "ray", "one")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--writer-ads", type=int, default=300, help="0: skip the single writer's measure")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--marginal", type=int, default=0, metavar="M",
                        help="also time the pool and Ray on M clips (M > --clips): fixed cost and cost per ad")
    parser.add_argument("--only", default=",".join(RUNS),
                        help=f"comma-separated runs among {','.join(RUNS)} (halves: two independent processes; "
                             "pool: --workers N; ray: --engine ray --workers N; one: --workers 1)")
    args = parser.parse_args()
    if args.clips < 2:
        raise SystemExit("--clips must be at least 2")
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(RUNS))
    if unknown or not chosen:
        raise SystemExit(f"--only: unknown run {', '.join(unknown) or '(none given)'}; choose among {','.join(RUNS)}")
    if args.skip_ray and "ray" in chosen:
        chosen.remove("ray")
    if args.marginal and args.marginal <= args.clips:
        raise SystemExit(f"--marginal must be more than --clips ({args.clips})")
    more = build_clips(max(args.clips, args.marginal))
    clips = more[:args.clips]
    cores = available_cores()
    print(f"{len(clips)} distinct clips of 30 s 1280×720 in {clips[0].parent}; {cores} cores available; "
          f"index --no-explain from a cold cache, whole processes; load average {os.getloadavg()[0]:.1f}")
    titles = {"halves": "two processes, half each", "pool": f"--workers {args.workers}",
              "ray": f"--engine ray --workers {args.workers}", "one": "--workers 1"}
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name in RUNS if name in chosen}
    if args.marginal:
        titles.update({f"{name}+": f"{titles[name]}, {len(more)} clips" for name in ("pool", "ray")})
        measured.update({f"{name}+": [] for name in ("pool", "ray") if name in chosen})
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        all_dir, more_dir, halves = base / "all", base / "more", [base / "half0", base / "half1"]
        for folder in (all_dir, more_dir, *halves):
            folder.mkdir()
        for clip in more:
            os.symlink(clip, more_dir / clip.name)
        for i, clip in enumerate(clips):
            os.symlink(clip, all_dir / clip.name)
            os.symlink(clip, halves[i % 2] / clip.name)
        pool = ("--workers", str(args.workers))
        ray = ("--engine", "ray", *pool)
        commands = {
            "halves": lambda c: [index_cmd(h, c / f"cache{j}", "--workers", "1") for j, h in enumerate(halves)],
            "pool": lambda c: [index_cmd(all_dir, c / "cache", *pool)],
            "ray": lambda c: [index_cmd(all_dir, c / "cache", *ray)],
            "one": lambda c: [index_cmd(all_dir, c / "cache", "--workers", "1")],
            "pool+": lambda c: [index_cmd(more_dir, c / "cache", *pool)],
            "ray+": lambda c: [index_cmd(more_dir, c / "cache", *ray)],
        }
        # the repeats go round the runs back to back, so that a change of load touches every run alike
        for r in range(args.repeat):
            for name in measured:
                target = base / f"run-{name}-{r}"
                target.mkdir()
                measured[name].append(run_all(commands[name](target)))
                shutil.rmtree(target, ignore_errors=True)
                if args.repeat > 1:
                    wall, cpu = measured[name][-1]
                    print(f"  repeat {r + 1}: {titles[name]:30s} {wall:7.1f} s wall  {cpu:7.1f} CPU s  "
                          f"(load average {os.getloadavg()[0]:.1f})")
    results: dict[str, tuple[float, float]] = {}
    for name, runs in measured.items():
        results[name] = (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        wall, cpu = results[name]
        ads = len(more) if name.endswith("+") else len(clips)
        print(f"{titles[name]:36s} {wall:7.1f} s wall  {cpu:7.1f} CPU s  utilisation {cpu / (wall * cores):5.0%} of "
              f"{cores} cores  {cpu / ads:5.1f} CPU s per ad  {ads / wall * 3600:6.0f} ads/hour")
    if "pool" in results and "halves" in results:
        print(f"--workers {args.workers} throughput / two independent processes: "
              f"{results['halves'][0] / results['pool'][0]:.0%} (goal ≥ 95%)")
    if "pool" in results and "ray" in results:
        each = "  ".join(f"{p / r:.0%}" for (p, _), (r, _) in zip(measured["pool"], measured["ray"]))
        print(f"--engine ray throughput / --workers {args.workers}: {results['pool'][0] / results['ray'][0]:.0%} "
              f"(goal ≥ 85%: within 15%){f'; each repeat: {each}' if args.repeat > 1 else ''}; Ray used "
              f"{results['ray'][1] - results['pool'][1]:.1f} CPU s more than the pool")
    if all(name in results for name in ("pool", "ray", "pool+", "ray+")):
        print(_marginal(results, len(clips), len(more), args.workers))
    if "pool" in results and "one" in results:
        print(f"--workers {args.workers} / --workers 1 speed-up: {results['one'][0] / results['pool'][0]:.2f}×")
    if args.writer_ads > 0:
        rate = writer_rate(clips[0], args.writer_ads)
        print(f"single writer: {rate:.0f} ads/s applied (one 30 s ad's writes: 60 frames, thumbnails, file record)")


if __name__ == "__main__":
    main()
