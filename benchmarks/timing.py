"""Timing helpers shared by the benchmarks (imported from beside them: Python puts a script's folder on the path)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved_times(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Wall-clock seconds of `repeat` rounds, each round calling every one of `fns` once, in order: runs
    to be compared are measured back to back, so that the machine's drifts touch them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median_time(fn: Callable[[], object], repeat: int) -> float:
    """Median wall-clock seconds of `repeat` calls of `fn`."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
