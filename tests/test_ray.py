"""`index --engine ray`: a real local Ray, and a two-node cluster on this machine (`ray.cluster_utils.Cluster`,
one CPU per node), store exactly what one process stores. Slow (Ray starts in 10-30 s): run with --slow."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

import test_workers
from emocore.engine import EngineParams, run_ray
from emocore.errors import EngineUnavailable
from emocore.indexer import index_folder
from emocore.store import Store
from test_workers import SMALL_EXPLAIN, ads, assert_same, cache_contents, one_process  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent
RAY_DIR = os.path.dirname(ray.__file__)


def ray_processes() -> set[int]:
    """Every live process on this machine running Ray's code (its daemons, its workers)."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            cmdline = (Path("/proc") / entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (Path("/proc") / entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):  # not a process, or one that just ended
            continue
        if entry.isdigit() and state != "Z" and RAY_DIR in cmdline:
            found.add(int(entry))
    return found


def _same_as_one_process(cache: Path, single: Path, report: object) -> None:
    by_name = {o.path.name: o for o in report.outcomes}  # type: ignore[attr-defined]
    assert {by_name["carphone.mp4"].status, by_name["same_bytes.mp4"].status} == {"indexed", "skipped"}
    ray_made, one = cache_contents(cache), cache_contents(single)
    key = by_name["carphone.mp4"].ad_key
    ray_made[key]["name"] = one[key]["name"]  # type: ignore[index]  # whichever name finished first
    assert_same(one, ray_made)


@pytest.mark.slow
def test_local_ray_stores_what_one_process_stores(ads: Path, one_process: Path, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    before = ray_processes()
    with caplog.at_level(logging.DEBUG, logger="emocore"):
        report = index_folder(ads, tmp_path, model="fer", explain=SMALL_EXPLAIN,
                              engine=EngineParams(workers=2, engine="ray"))
    assert not ray.is_initialized()  # the local Ray it started is shut down, and nothing of it is left running
    left = ray_processes() - before
    for _ in range(50):  # a worker the raylet stopped may take a moment to be gone
        if not left:
            break
        time.sleep(0.1)
        left &= ray_processes()
    assert left == set()
    timeline = caplog.text  # where Ray's time goes, for `--debug`
    assert "ray: local Ray started in" in timeline and "ray: shut down in" in timeline
    assert timeline.count("models loaded in") <= 2 and "ray: carphone.mp4 done at" in timeline
    _same_as_one_process(tmp_path, one_process, report)


@pytest.mark.slow
def test_a_two_node_cluster_stores_what_one_process_stores(ads: Path, one_process: Path, tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        report = index_folder(ads, tmp_path, model="fer", explain=SMALL_EXPLAIN,
                              engine=EngineParams(engine="ray", address=cluster.address))
        assert not ray.is_initialized()
    finally:
        cluster.shutdown()
    _same_as_one_process(tmp_path, one_process, report)


@pytest.mark.slow
def test_a_ray_worker_killed_mid_task_is_retried_then_recorded(tmp_path: Path, carphone: Path,
                                                                weights_ready: None) -> None:
    """A Ray worker that dies (SIGKILL) mid-task: Ray retries its video; one that dies on every try is recorded
    failed with its reason; the others are stored once, and the cache stays consistent."""
    paths, job = test_workers.crashing_ads(tmp_path / "ads", carphone)
    ray.cloudpickle.register_pickle_by_value(test_workers)  # Ray's workers do not have tests/ on their path
    try:
        with Store(tmp_path / "cache") as store:
            done = {d.path.name: d for d in run_ray(paths, store, job, cpus=2, progress=test_workers._Events(),
                                                    retries=1)}
            assert done["a.mp4"].outcome.status == "indexed"
            assert done["once.mp4"].outcome.status == "indexed"  # its first worker died; Ray's retry finished it
            assert done["crash.mp4"].outcome is None and done["crash.mp4"].tries == 2
            assert done["crash.mp4"].error.startswith("worker died")
            files = {Path(f.path).name: f for f in store.files()}
            assert files["crash.mp4"].status == "failed" and files["crash.mp4"].error.startswith("worker died")
            assert {files["a.mp4"].status, files["once.mp4"].status} == {"ok"}
            assert sorted(a.name for a in store.ads()) == ["a.mp4", "once.mp4"]
            assert store.check() == []
    finally:
        ray.cloudpickle.unregister_pickle_by_value(test_workers)
    assert not ray.is_initialized()
    assert (tmp_path / "ads" / "once.tried").exists()


def test_without_ray_the_error_names_the_install(tmp_path: Path, carphone: Path) -> None:
    """A machine without Ray: `--engine ray` is a one-line error naming the pinned install; --workers still runs."""
    code = ("import sys; sys.modules['ray'] = None\n"
            "from emocore.engine import ray_module\n"
            "ray_module()\n")
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert found.returncode != 0 and "EngineUnavailable" in found.stderr
    assert "pip install 'ray[default]==" in found.stderr
    result = subprocess.run([sys.executable, "-c", "import sys; sys.modules['ray'] = None\n"
                             "sys.argv = ['cli.py', 'index', sys.argv[1], '--cache', sys.argv[2], '--engine', 'ray']\n"
                             "import runpy; runpy.run_path('cli.py', run_name='__main__')",
                             str(carphone), str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert "pip install 'ray[default]==" in result.stderr and "Traceback" not in result.stderr
    assert EngineUnavailable.__doc__
