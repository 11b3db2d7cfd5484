"""`index --engine ray`: a real local Ray, and a two-node cluster on this machine (`ray.cluster_utils.Cluster`,
one CPU per node), store exactly what one process stores. Slow (Ray starts in 10-30 s): run with --slow."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray

import test_workers
from emocore.engine import EngineParams, run_ray
from emocore.errors import EngineUnavailable
from emocore.indexer import index_folder
from emocore.store import Store
from test_workers import SMALL_EXPLAIN, Recorded, assert_counted_once, assert_same, cache_contents
from test_workers import ads, one_process  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent
RAY_DIR = os.path.dirname(ray.__file__)


def live_commands() -> dict[int, str]:
    """Every live (not zombie) process on this machine, with its command line."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = (Path("/proc") / entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (Path("/proc") / entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):  # one that just ended
            continue
        if state != "Z":
            found[int(entry)] = cmdline
    return found


def ray_processes() -> set[int]:
    """Every live process on this machine running Ray's code (its daemons, its workers, its agents: those
    that renamed themselves `ray::...` too)."""
    return {pid for pid, cmdline in live_commands().items()
            if RAY_DIR in cmdline or cmdline.startswith("ray::") or " -m ray." in cmdline}


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
    events = Recorded()
    with caplog.at_level(logging.DEBUG, logger="emocore"):
        report = index_folder(ads, tmp_path, model="fer", explain=SMALL_EXPLAIN, progress=events,
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
    # progress streams from the tasks while they run, each frame counted once
    by_name = {o.path.name: o for o in report.outcomes}
    carphone = max(by_name["carphone.mp4"].frames, by_name["same_bytes.mp4"].frames)  # the one not a duplicate
    started = events.args("file_started")
    assert {p.name for p, _ in started} <= {"carphone.mp4", "same_bytes.mp4", "bunny.mp4"}
    frames = sum(n for (n,) in events.args("frames_done"))
    assert frames == by_name["bunny.mp4"].frames + (len(started) - 1) * carphone
    first_ad = next(i for i, (name, args) in enumerate(events.seen)
                    if name == "file_finished" and args[0].status != "failed")
    assert [name for name, _ in events.seen[:first_ad]].count("frames_done") >= 2
    explained = [o.explained for o in report.outcomes if o.status == "indexed"]
    to_explain = sum(n for _, n in events.args("explain_started"))
    assert to_explain == len(events.args("frame_explained")) >= sum(explained) > 0


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
            events = Recorded()
            done = {d.path.name: d for d in run_ray(paths, store, job, cpus=2, progress=events, retries=1)}
            assert_counted_once(events, done)
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
    assert "pip install 'ray==" in found.stderr
    result = subprocess.run([sys.executable, "-c", "import sys; sys.modules['ray'] = None\n"
                             "sys.argv = ['cli.py', 'index', sys.argv[1], '--cache', sys.argv[2], '--engine', 'ray']\n"
                             "import runpy; runpy.run_path('cli.py', run_name='__main__')",
                             str(carphone), str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert "pip install 'ray==" in result.stderr and "Traceback" not in result.stderr
    assert EngineUnavailable.__doc__


def _index_against(address: str | None, carphone: Path, cache: Path,
                   env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = env or {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    joining = ["--address", address] if address else []
    return subprocess.run([sys.executable, "cli.py", "index", str(carphone), "--cache", str(cache), "--no-explain",
                           "--engine", "ray", *joining], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed `index` printed (exit code 1, no traceback)."""
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def free_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environments() -> dict[int, set[bytes]]:
    """Every live process's environment (`NAME=value` entries) that this user may read."""
    found = {}
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit():
                found[int(entry)] = set((Path("/proc") / entry / "environ").read_bytes().split(b"\0"))
        except OSError:  # not ours to read, or just ended
            continue
    return found


def head_processes(token: str) -> set[int]:
    """The processes of a Ray started with RAY_AUTH_TOKEN=`token`: those that inherited it, and the agents
    their raylet starts (without the token, with RAY_RAYLET_PID)."""
    envs = environments()
    holders = {pid for pid, env in envs.items() if f"RAY_AUTH_TOKEN={token}".encode() in env}
    return holders | {pid for pid, env in envs.items() if any(f"RAY_RAYLET_PID={p}".encode() in env for p in holders)}


def stop_head(token: str) -> None:
    """SIGTERM to its processes, then SIGKILL to what is still there after 10 s."""
    pids = head_processes(token)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        for _ in range(100):
            pids &= set(live_commands())
            if not pids:
                return
            time.sleep(0.1)


def test_an_address_where_no_ray_answers_is_one_line_at_once(tmp_path: Path, carphone: Path,
                                                             weights_ready: None) -> None:
    """Ray itself retries an address where nothing listens for minutes; `index` says so in one line, at once."""
    port = free_port()
    before = ray_processes()
    began = time.monotonic()
    result = _index_against(f"127.0.0.1:{port}", carphone, tmp_path / "cache")
    assert time.monotonic() - began < 60  # Ray's own retries would take minutes
    error = _one_error_line(result)
    assert f"--address 127.0.0.1:{port}: no Ray head can be reached there" in error
    assert "ray start --head" in error
    assert ray_processes() <= before  # nothing of Ray was started


def gcs_servers() -> list[str]:
    """The command lines of the Ray GCS servers running on this machine (what `auto` finds and joins)."""
    return [cmdline[:200] for cmdline in live_commands().values() if "gcs_server" in cmdline.split(" ", 1)[0]]


def test_address_auto_with_no_ray_running_is_one_line(tmp_path: Path, carphone: Path, weights_ready: None) -> None:
    for _ in range(100):  # a Ray an earlier test stopped may take a moment to be gone
        running = gcs_servers()
        if not running:
            break
        time.sleep(0.2)
    else:
        pytest.skip(f"a Ray is running on this machine, which `auto` would join: {running}")
    # Ray's temp folder of its own: no address left there by a `ray start` on this machine
    result = _index_against("auto", carphone, tmp_path / "cache", env=_without_ray_address(tmp_path / "ray-temp"))
    error = _one_error_line(result)
    assert error.startswith("error: --address auto: Could not find any running Ray instance")
    assert "ray start --head" in error


def test_address_auto_where_a_stopped_ray_left_its_address_is_one_line_at_once(tmp_path: Path, carphone: Path,
                                                                               weights_ready: None) -> None:
    """A Ray stopped without `ray stop` (killed, crashed) leaves its address in Ray's temp folder, where `auto`
    reads it: Ray itself would retry it for minutes; `index` says so in one line, at once."""
    port = free_port()
    (tmp_path / "ray-temp" / "ray").mkdir(parents=True)
    (tmp_path / "ray-temp" / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    before = ray_processes()
    began = time.monotonic()
    result = _index_against("auto", carphone, tmp_path / "cache", env=_without_ray_address(tmp_path / "ray-temp"))
    assert time.monotonic() - began < 60
    error = _one_error_line(result)
    assert error.startswith("error: --address auto: the Ray this machine points to, ")
    assert f":{port} (RAY_ADDRESS, or the last `ray start` here), does not answer" in error
    assert ray_processes() <= before  # nothing of Ray was started


def test_address_auto_is_what_ray_finds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`auto` is resolved as Ray resolves it: RAY_ADDRESS first; a `ray://` one (Ray's client) is left to Ray."""
    from emocore.engine import _auto_address

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6380")
    assert _auto_address() == "10.0.0.1:6380"
    monkeypatch.setenv("RAY_ADDRESS", "ray://10.0.0.1:10001")
    assert _auto_address() == "auto"


def _without_ray_address(temp: Path) -> dict[str, str]:
    """This environment without RAY_ADDRESS, with Ray's temp folder (RAY_TMPDIR) at `temp`."""
    temp.mkdir(exist_ok=True)
    return {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_TMPDIR": str(temp)}


@pytest.mark.slow
def test_a_head_with_token_authentication_is_joined_with_its_token(tmp_path: Path, carphone: Path,
                                                                   weights_ready: None) -> None:
    """The README's cluster commands: a head started with token authentication (`ray start --head`), joined by
    `index --address HOST:PORT` with the token in the environment; without RAY_AUTH_MODE=token the error (its
    last line, after Ray's own log of its retries) says what to set. Without --address, `index` starts a Ray
    of its own beside that one (Ray's default would join it) and leaves the head running."""
    token = secrets.token_hex(32)
    plain = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    with_token = {**plain, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    port = free_port()
    # the head's temp folder of its own (short: it holds Unix sockets), so its address is not left behind in
    # this machine's, where `--address auto` would read it once the head is stopped
    head_temp = tempfile.mkdtemp(prefix="ray-head-", dir="/tmp")
    try:
        started = subprocess.run([str(Path(sys.executable).parent / "ray"), "start", "--head", f"--port={port}",
                                  "--num-cpus=1", "--disable-usage-stats"], env={**with_token, "RAY_TMPDIR": head_temp},
                                 capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
        address = f"127.0.0.1:{port}"

        refused = _index_against(address, carphone, tmp_path / "refused", env=plain)  # Ray retries for 20 s
        assert refused.returncode == 1, refused.stderr
        last = refused.stderr.strip().splitlines()[-1]  # after Ray's own log lines of its retries
        assert "Traceback" not in refused.stderr, refused.stderr
        assert last.startswith(f"error: --address {address}: a Ray head answers there but Ray could not connect")
        assert "set RAY_AUTH_MODE=token" in last

        joined = _index_against(address, carphone, tmp_path / "joined", env=with_token)
        assert joined.returncode == 0, joined.stderr
        with Store(tmp_path / "joined", readonly=True) as store:
            assert [ad.name for ad in store.ads()] == ["carphone.mp4"]

        own = _index_against(None, carphone, tmp_path / "own", env=plain)
        assert own.returncode == 0, own.stderr
        with Store(tmp_path / "own", readonly=True) as store:
            assert [ad.name for ad in store.ads()] == ["carphone.mp4"]
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # the head still runs
    finally:
        left = head_processes(token)
        stop_head(token)
        shutil.rmtree(head_temp, ignore_errors=True)
    assert len(left) >= 4  # the GCS, the raylet and its two agents at least: what stop_head stopped
