"""`index --engine ray`: a real local Ray, and a two-node cluster on this machine (`ray.cluster_utils.Cluster`,
one CPU per node), store exactly what one process stores. Slow (Ray starts in 10-30 s): run with --slow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import ray

from emocore.engine import EngineParams
from emocore.errors import EngineUnavailable
from emocore.indexer import index_folder
from test_workers import SMALL_EXPLAIN, ads, assert_same, cache_contents, one_process  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent


def _same_as_one_process(cache: Path, single: Path, report: object) -> None:
    by_name = {o.path.name: o for o in report.outcomes}  # type: ignore[attr-defined]
    assert {by_name["carphone.mp4"].status, by_name["same_bytes.mp4"].status} == {"indexed", "skipped"}
    ray_made, one = cache_contents(cache), cache_contents(single)
    key = by_name["carphone.mp4"].ad_key
    ray_made[key]["name"] = one[key]["name"]  # type: ignore[index]  # whichever name finished first
    assert_same(one, ray_made)


@pytest.mark.slow
def test_local_ray_stores_what_one_process_stores(ads: Path, one_process: Path, tmp_path: Path) -> None:
    report = index_folder(ads, tmp_path, model="fer", explain=SMALL_EXPLAIN, engine=EngineParams(workers=2, engine="ray"))
    assert not ray.is_initialized()  # the local Ray it started is shut down
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
