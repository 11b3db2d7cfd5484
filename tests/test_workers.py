"""Worker processes (`index --workers N`, emocore.engine): the same stored numbers as one process, one
writer, a killed worker's video tried again then recorded failed, the same bytes never written twice."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emocore.engine import EngineParams, PerVideo, StoreProxy, WRITE_METHODS, Writer, _Counts, _Relay, run_workers
from emocore.explain import ExplainParams
from emocore.indexer import IndexParams, index_folder, index_video
from emocore.store import Store

ROOT = Path(__file__).resolve().parent.parent
#: The smallest explanations the explainers accept: the explain step runs in the workers too.
SMALL_EXPLAIN = ExplainParams(lime_samples=192, shap_samples=98)


def cache_contents(cache: Path) -> dict[str, object]:
    """Everything an index stored that must not depend on how it was run (no times, no paths of temp folders)."""
    with Store(cache, readonly=True) as store:
        found: dict[str, object] = {}
        for ad in store.ads():
            entry: dict[str, object] = {"name": ad.name, "status": ad.status, "error": ad.error,
                                        "frames": ad.frames, "dominant_raw": ad.dominant_raw,
                                        "audio": (ad.audio_status, ad.audio_seconds, ad.audio_model)}
            if ad.status == "ok":
                tl = store.timeline(ad.key)
                entry.update(times=tl.times, raw=tl.raw, smoothed=tl.smoothed, faces=tl.faces, shots=tl.shots,
                             emotions={e.emotion: (e.mean, e.peak, e.share_above) for e in store.emotions(ad.key)},
                             thumbs=sorted(p.name for p in store.thumbs_dir(ad.key).iterdir()))
                explained = {}
                for frame in store.explained_frames(ad.key):
                    stored = store.explanation(ad.key, frame.frame_idx, frame.explain_hash)
                    explained[frame.frame_idx] = {(a.emotion, a.method): a.weights for a in stored.attributions}
                entry["explanations"] = explained
                audio = store.audio(ad.key)
                entry["lanes"] = getattr(audio, "matrix", lambda: None)()
            found[ad.key] = entry
        found["files"] = sorted((Path(f.path).name, f.status, f.ad_key, f.error) for f in store.files())
    return found


def assert_same(a: object, b: object, where: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, np.ndarray):
        assert a.shape == np.shape(b), where
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0, equal_nan=True, err_msg=where)
    elif isinstance(a, float):
        assert b == pytest.approx(a, abs=1e-6, nan_ok=True), where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def ads(tmp_path_factory: pytest.TempPathFactory, carphone: Path, bunny: Path) -> Path:
    folder = tmp_path_factory.mktemp("ads")
    shutil.copy(carphone, folder / "carphone.mp4")
    shutil.copy(bunny, folder / "bunny.mp4")
    shutil.copy(carphone, folder / "same_bytes.mp4")  # one ad, two names
    (folder / "broken.mp4").write_text("not a video")
    return folder


@pytest.fixture(scope="module")
def one_process(ads: Path, tmp_path_factory: pytest.TempPathFactory, face_model, weights_ready: None) -> Path:
    cache = tmp_path_factory.mktemp("one")
    index_folder(ads, cache, model="fer", explain=SMALL_EXPLAIN)
    return cache


def test_two_workers_store_what_one_process_stores(ads: Path, one_process: Path, tmp_path: Path) -> None:
    report = index_folder(ads, tmp_path, model="fer", explain=SMALL_EXPLAIN, engine=EngineParams(workers=2))
    by_name = {o.path.name: o for o in report.outcomes}
    assert [o.path.name for o in report.outcomes] == ["broken.mp4", "bunny.mp4", "carphone.mp4", "same_bytes.mp4"]
    assert by_name["broken.mp4"].status == "failed" and by_name["bunny.mp4"].status == "indexed"
    # the same bytes under two names: one ad, written once, whichever worker finished first
    assert {by_name["carphone.mp4"].status, by_name["same_bytes.mp4"].status} == {"indexed", "skipped"}
    assert by_name["carphone.mp4"].ad_key == by_name["same_bytes.mp4"].ad_key
    workers, single = cache_contents(tmp_path), cache_contents(one_process)
    assert any(entry.get("explanations") for entry in single.values() if isinstance(entry, dict))
    carphone_key = by_name["carphone.mp4"].ad_key
    assert workers[carphone_key]["name"] in ("carphone.mp4", "same_bytes.mp4")  # type: ignore[index]
    workers[carphone_key]["name"] = single[carphone_key]["name"]  # type: ignore[index]
    assert_same(single, workers)
    with Store(tmp_path) as store:
        assert store.check() == []
    # a rerun with workers skips everything and writes nothing
    again = index_folder(ads, tmp_path, model="fer", explain=SMALL_EXPLAIN, engine=EngineParams(workers=2))
    assert {o.status for o in again.outcomes} == {"skipped"}  # the broken file's failure is known too
    assert sum(o.explained for o in again.outcomes) == 0


def test_the_proxy_records_every_store_write_method() -> None:
    public_writes = {name for name in vars(Store) if not name.startswith("_")
                     and (name.startswith("write") or name.startswith("record") or name.startswith("delete"))}
    assert public_writes == set(WRITE_METHODS)
    assert all(callable(getattr(StoreProxy, name)) for name in WRITE_METHODS)


class _KilledAfterFirstFrames:
    """An IndexProgress that passes every event on, and kills its process (SIGKILL) once the first frames
    of the video are reported: a worker that dies mid-video."""

    def __init__(self, progress: object) -> None:
        self.progress = progress

    def __getattr__(self, name: str):
        return getattr(self.progress, name)

    def frames_done(self, count: int) -> None:
        self.progress.frames_done(count)  # type: ignore[attr-defined]
        os.kill(os.getpid(), signal.SIGKILL)


def crash_on(path: Path, store: object, model: object, **options: object) -> object:
    """`index_video`, except that the worker process kills itself (SIGKILL) on "crash*" files every time
    (before it starts), and on "once*" files the first time, mid-video, once its first frames are scored
    (a marker file beside it remembers)."""
    if path.name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGKILL)
    marker = path.with_suffix(".tried")
    if path.name.startswith("once") and not marker.exists():
        marker.write_text("")
        options["progress"] = _KilledAfterFirstFrames(options["progress"])
    return index_video(path, store, model, **options)  # type: ignore[arg-type]


def crashing_ads(folder: Path, clip: Path) -> tuple[list[Path], PerVideo]:
    """Three ads in `folder` (a.mp4, crash.mp4, once.mp4: its own bytes) and the job that runs `crash_on`."""
    folder.mkdir()
    paths = [folder / name for name in ("a.mp4", "crash.mp4", "once.mp4")]
    for path in paths:
        shutil.copy(clip, path)
    with open(paths[2], "ab") as f:
        f.write(b"\0")  # other bytes: another ad
    return paths, PerVideo(crash_on, "fer", {"params": IndexParams(), "explain": None, "audio_model": None})


def test_a_killed_worker_loses_only_its_video(tmp_path: Path, carphone: Path, weights_ready: None) -> None:
    paths, job = crashing_ads(tmp_path / "ads", carphone)
    events = Recorded()
    with Store(tmp_path / "cache") as store:
        done = {d.path.name: d for d in run_workers(paths, store, job, workers=2, progress=events)}
        assert_counted_once(events, done)
        assert done["a.mp4"].outcome.status == "indexed"
        assert done["once.mp4"].outcome.status == "indexed" and done["once.mp4"].tries == 2
        assert done["crash.mp4"].outcome is None and done["crash.mp4"].tries == 2
        assert done["crash.mp4"].error.startswith("worker died")
        files = {Path(f.path).name: f for f in store.files()}
        assert files["crash.mp4"].status == "failed" and files["crash.mp4"].error.startswith("worker died")
        assert {a.name for a in store.ads()} == {"a.mp4", "once.mp4"}
        assert store.check() == []


class Recorded:
    """An IndexProgress that records every event with its arguments, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, name: str):
        return lambda *args: self.seen.append((name, args))

    def args(self, name: str) -> list[tuple[object, ...]]:
        return [args for seen, args in self.seen if seen == name]


def assert_counted_once(events: Recorded, done: dict[str, object]) -> None:
    """The progress of `crashing_ads`: once.mp4, whose first worker died mid-video, counts its frames once."""
    assert sorted(path.name for path, _ in events.args("file_started")) == ["a.mp4", "once.mp4"]
    frames = [done[name].outcome.frames for name in ("a.mp4", "once.mp4")]  # type: ignore[attr-defined]
    assert sum(n for (n,) in events.args("frames_done")) == sum(frames) > 0


def test_streamed_counts_show_each_frame_once_across_a_retry() -> None:
    """The writer's side of each video's progress (workers and Ray tasks): totals become events, a retried
    video's totals (from zero again) add nothing until they pass what was shown, and a video only
    explained starts no frames."""
    events = Recorded()
    relay = _Relay(events)
    first, second = Path("a.mp4"), Path("b.mp4")
    for counts in (_Counts(20), _Counts(20, 8), _Counts(20, 16), _Counts(20, 4), _Counts(20, 20, 3, 1),
                   _Counts(20, 20, 3, 3)):
        relay.update(first, counts)
    relay.update(second, _Counts(0, 0, 2, 2))
    assert events.seen == [
        ("file_started", (first, 20)), ("frames_done", (8,)), ("frames_done", (8,)), ("frames_done", (4,)),
        ("explain_started", (first, 3)), ("frame_explained", ()), ("frame_explained", ()), ("frame_explained", ()),
        ("explain_started", (second, 2)), ("frame_explained", ()), ("frame_explained", ())]


def test_the_writer_never_writes_an_ad_key_twice(tmp_path: Path, carphone: Path, face_model) -> None:
    calls = []
    for name in ("first.mp4", "second.mp4"):
        path = tmp_path / name
        shutil.copy(carphone, path)
        proxy = StoreProxy(tmp_path / "cache-missing", tmp_path / f"scratch-{name}")
        index_video(path, proxy, face_model, IndexParams())  # type: ignore[arg-type]
        calls.append(proxy.calls)
        proxy.close()
    with Store(tmp_path / "cache") as store:
        writer = Writer(store)
        assert writer.apply(calls[0]) is None
        assert writer.apply(calls[1]) == "first.mp4"
        assert [a.name for a in store.ads()] == ["first.mp4"]
        assert {Path(f.path).name for f in store.files()} == {"first.mp4", "second.mp4"}


def test_engine_params_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="workers"):
        EngineParams(workers=0)
    with pytest.raises(ValueError, match="engine"):
        EngineParams(engine="spark")
    with pytest.raises(ValueError, match="ray"):
        EngineParams(address="10.0.0.1:6379")


@pytest.mark.slow
def test_cli_workers_ctrl_c_keeps_finished_ads(tmp_path: Path, carphone: Path, megamind: Path,
                                               weights_ready: None) -> None:
    """`index --workers 2`: Ctrl-C (SIGINT to the process group, as a terminal sends it) stops the workers,
    exit 130, the ads finished so far stay; the same command then finishes the rest."""
    folder = tmp_path / "ads"
    folder.mkdir()
    for i in range(4):
        shutil.copy(megamind if i % 2 else carphone, folder / f"ad{i}{'.avi' if i % 2 else '.mp4'}")
        if i >= 2:
            with open(folder / f"ad{i}{'.avi' if i % 2 else '.mp4'}", "ab") as f:
                f.write(b"\0" * i)
    cache = tmp_path / "cache"
    cmd = [sys.executable, "cli.py", "index", str(folder), "--cache", str(cache), "--workers", "2", "--no-explain",
           "--no-audio"]
    # SIGINT as a terminal leaves it, even when this test runs where it is ignored (a shell's background job)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    db = cache / "emocore.sqlite"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
                if con.execute("SELECT COUNT(*) FROM ads").fetchone()[0] >= 1:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the index finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    with Store(cache) as store:
        kept = len(store.ads())
        assert 1 <= kept < 4 and store.check() == []
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    with Store(cache) as store:
        assert len(store.ads()) == 4 and store.check() == []


def test_cli_engine_options_are_checked(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import cli

    for args, message in ((["--workers", "0"], "workers must be at least 1"),
                          (["--engine", "spark"], "unknown engine 'spark'"),
                          (["--address", "10.0.0.1:6379"], "--engine ray")):
        done = CliRunner().invoke(cli.app, ["index", str(tmp_path), "--cache", str(tmp_path / "c"), *args])
        assert done.exit_code == 2 and message in done.stderr, done.output


def test_the_fork_server_starts_without_pytorch_in_the_caller() -> None:
    """The engine imports no PyTorch, and starting the workers' fork server imports none in the caller: the
    server imports the indexer itself, beside the caller's own imports (`index` starts it first thing)."""
    script = ("import os, sys; from emocore import engine; engine.start_fork_server(); engine.start_fork_server(); "
              "pid = os.getpid(); kids = open(f'/proc/{pid}/task/{pid}/children').read().split(); "
              "lines = [open(f'/proc/{k}/cmdline').read() for k in kids]; "
              "print('torch' in sys.modules, sum('forkserver' in line for line in lines))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "1"], done.stdout


def test_index_starts_the_fork_server_first_only_where_workers_will_run(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Several videos for worker processes here: the fork server is started first; one file, one worker, Ray
    or a GPU: never (its import would run for nothing, beside the real work)."""
    import emocore.engine
    from cli import _start_workers_early

    started: list[int] = []
    monkeypatch.setattr(emocore.engine, "start_fork_server", lambda: started.append(1))
    for name in ("a.mp4", "b.mov"):
        (tmp_path / name).write_bytes(b"")
    cases = {(tmp_path, 2, None, None): 1, (tmp_path, 2, "local", "cpu"): 1, (tmp_path, 1, None, None): 0,
             (tmp_path / "a.mp4", 2, None, None): 0, (tmp_path, 2, "ray", None): 0, (tmp_path, 2, None, "cuda"): 0,
             (tmp_path / "missing", 2, None, None): 0}
    for (folder, workers, engine, device), expected in cases.items():
        started.clear()
        _start_workers_early(folder, workers, engine, device)
        assert len(started) == expected, (folder.name, workers, engine, device)


def test_the_frames_bar_counts_files_running_side_by_side_together() -> None:
    """Files that run side by side (workers, or Ray tasks even with one CPU here: a cluster runs several)
    share one frames bar whose total grows as files start; one at a time, it follows the current file."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    from cli import _Bars, _side_by_side

    assert _side_by_side(EngineParams()) is None
    assert _side_by_side(EngineParams(workers=2)) == "ads (2 workers)"
    assert _side_by_side(EngineParams(engine="ray", address="10.0.0.1:6379")) == "ads (Ray cluster)"
    for engine, expected in ((EngineParams(engine="ray"), (30, 10)), (EngineParams(), (20, 6))):
        with Progress(console=Console(file=io.StringIO())) as progress:
            bars = _Bars(progress, _side_by_side(engine))
            bars.files_found(2)
            bars.file_started(Path("a.mp4"), 10)
            bars.frames_done(4)
            bars.file_started(Path("b.mp4"), 20)
            bars.frames_done(6)
            frames = progress.tasks[bars.frames]
            assert (frames.total, frames.completed) == expected
