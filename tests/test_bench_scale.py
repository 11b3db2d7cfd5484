"""bench_scale.py's split of a run into a fixed cost and a cost per ad (the benchmark itself times whole
`index` processes and is run by hand, not here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "benchmarks" / "bench_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_marginal_splits_each_engine_into_a_fixed_cost_and_a_cost_per_ad(bench) -> None:
    # pool: 4 s + 1.0 s per ad, 2.0 CPU s per ad; Ray: 14 s + 1.25 s per ad, 2.5 CPU s per ad
    results = {"pool": (10.0, 20.0), "pool+": (22.0, 44.0), "ray": (21.5, 30.0), "ray+": (36.5, 60.0)}
    lines = bench._marginal(results, 6, 18, 2).splitlines()
    assert lines[0] == ("pool: 1.00 s wall and 2.00 CPU s per ad once running, 4.0 s fixed "
                        "(lines through 6 and 18 clips)")
    assert lines[1] == ("ray: 1.25 s wall and 2.50 CPU s per ad once running, 14.0 s fixed "
                        "(lines through 6 and 18 clips)")
    assert lines[2] == ("--engine ray throughput per ad / --workers 2, start and stop apart: 80%; "
                        "whole run on 18 clips: 60%")


def test_marginal_must_be_more_clips_than_the_main_runs(bench, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["bench_scale.py", "--clips", "6", "--marginal", "6"])
    with pytest.raises(SystemExit, match="--marginal must be more than --clips"):
        bench.main()
