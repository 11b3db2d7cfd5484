"""Index many videos at once: worker processes on this machine, or Ray tasks on a cluster; one writer.

    for done in run_workers(paths, store, PerVideo(index_video, "fer", {...}), workers=4, progress=bars):
        ...

Every worker runs the SAME per-video function the one-process path runs (`emocore.indexer.index_video`:
decode, detect, classify, soundtrack, explain; one video stays in one worker) against a `StoreProxy`:

- reads come from the cache opened read-only (SQLite WAL: what the writer has committed) and, for
  what the worker wrote while working on the current video, from a private scratch cache;
- writes (every public write method of `Store`: WRITE_METHODS) are recorded as `WriteCall`s and,
  when the video's work ends, handed to the ONE writer (the calling process), which applies them in
  their order (`Writer`). So the cache keeps a single writer; a worker killed mid-video loses only
  that video's unfinished work and leaves nothing half-written; a video whose ad key another video
  of the same run wrote first (the same bytes under two names) is not written twice.

Models are loaded once per worker process. A worker that dies (kill -9, out of memory) is replaced;
its video is tried again once (`retries`), then recorded failed with "worker died". Ctrl-C (a
KeyboardInterrupt in the caller) stops the workers; what the writer applied stays.

The Ray engine (`run_ray`) runs the same function as Ray tasks (`max_retries` = `retries`: Ray's own
task retries), one cached model per Ray worker process; each task streams its progress as it goes (a
Ray generator), and the driver writes each video's calls as its task finishes (`ray.wait`). Ray is
imported only here, and only when asked for.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emocore.errors import AdNotFound, EmocoreError, EngineUnavailable
from emocore.store import DB_NAME, AdRow, ExplainedFrame, FileRow, Store, audio_values, preview_path

if TYPE_CHECKING:
    from emocore.models import EmotionModel

log = logging.getLogger("emocore")

#: Every public method of `Store` that writes: a proxy records these, the writer applies them.
WRITE_METHODS = ("write_ad", "write_audio", "write_explanation", "write_audio_explanation", "record_file",
                 "write_preview")

#: The Ray release this code is tested with (requirements.txt pins the same).
RAY_VERSION = "2.60.0"

#: Why a video has no result when its worker process died on it every time it was tried.
WORKER_DIED = "worker died"


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineParams:
    """How an index spreads its videos: `workers` processes on this machine (1: in this process, the
    one-process path), or `engine="ray"`: Ray tasks, on a local Ray (`address` None; `workers` CPUs)
    or the cluster at `address`. `setup` runs once in each worker process (see `PerVideo.setup`)."""

    workers: int = 1
    engine: str = "local"
    address: str | None = None
    setup: Callable[[], Any] | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}; choose {' or '.join(ENGINES)}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")
        if self.address and self.engine != "ray":
            raise ValueError("an address goes with the ray engine (--engine ray)")

    @property
    def parallel(self) -> bool:
        return self.engine == "ray" or self.workers > 1


@dataclass(frozen=True)
class WriteCall:
    """One recorded call of a `Store` write method (its name and arguments)."""

    method: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ad_key(self) -> str | None:
        """The ad the call writes to (None for `record_file`)."""
        if self.method == "write_ad":
            return self.args[0].key
        if self.method == "write_audio":
            return self.args[0] if self.args else self.kwargs.get("key")
        if self.method in ("write_explanation", "write_audio_explanation"):
            return self.args[0].ad_key
        return None


@dataclass(frozen=True)
class PerVideo:
    """What every worker runs on every video: `work(path, store, model, progress=..., **options,
    **loaded)`.

    `work`, `setup` and the loaders must be module-level functions (sent by name to worker processes).
    `model` is a model spec (`load_model(model)`), loaded once per worker, like each of `resources`
    (keyword -> loader, e.g. the soundtrack model: its result is passed to `work` under that keyword
    and closed at the end). `setup()` runs once in each worker before anything loads: the caller's
    choice of process settings (e.g. PyTorch's thread count, which the library never sets)."""

    work: Callable[..., Any]
    model: str
    options: Mapping[str, Any] = field(default_factory=dict)
    resources: Mapping[str, Callable[[], Any]] = field(default_factory=dict)
    setup: Callable[[], Any] | None = None


@dataclass(frozen=True)
class Finished:
    """One video's end: the work's result as the writer settled it, or why there is none."""

    path: Path
    outcome: Any | None
    """What `work` returned (None when its worker died on every try)."""
    duplicate_of: str | None = None
    """Set when another video of the run wrote the same ad key first: the name it was written under."""
    error: str | None = None
    """Why there is no outcome ("worker died ...")."""
    tries: int = 1


class StoreProxy:
    """Looks like a `Store` to the per-video work of a worker: reads from the cache (read-only) and from
    its own writes of the current video; records every write (`calls`) for the one writer."""

    def __init__(self, cache: Path | str, scratch: Path | str) -> None:
        self.root = Path(cache)
        self.readonly = False
        try:
            self._main: Store | None = Store(cache, readonly=True) if (self.root / DB_NAME).is_file() else None
        except EmocoreError as exc:
            log.warning("this worker cannot read the cache (%s): it treats it as empty", exc)
            self._main = None
        self._scratch_root = Path(scratch)
        self._scratch = Store(self._scratch_root)
        self.calls: list[WriteCall] = []
        self._owned: set[str] = set()
        self._audio: dict[str, tuple[Any, str | None]] = {}

    def begin(self) -> None:
        """Start a new video: forget the last one's writes."""
        self.calls = []
        self._owned.clear()
        self._audio.clear()
        db = self._scratch.connection
        with db:
            for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'meta'"):
                db.execute(f"DELETE FROM {table}")

    def close(self) -> None:
        if self._main is not None:
            self._main.close()
        self._scratch.close()

    # -- writes: recorded, and kept in the scratch cache so that this video's own reads see them ------

    def write_ad(self, ad: Any, thumbnails: Mapping[int, bytes] | None = None) -> None:
        self.calls.append(WriteCall("write_ad", (ad, thumbnails)))
        self._scratch.write_ad(ad)  # no thumbnails: they go to the writer only
        self._owned.add(ad.key)
        self._audio.pop(ad.key, None)

    def write_audio(self, key: str, audio: Any, model: str | None) -> None:
        self.calls.append(WriteCall("write_audio", (key, audio, model)))
        if key in self._owned:
            self._scratch.write_audio(key, audio, model)
        else:
            if not self.has_ad(key):
                raise AdNotFound(f"no ad {key} in {self.root}")
            self._audio[key] = (audio, model)

    def write_explanation(self, frame: Any, key_frame_jpeg: bytes | None = None) -> None:
        self.calls.append(WriteCall("write_explanation", (frame, key_frame_jpeg)))
        self._scratch.write_explanation(frame)

    def write_audio_explanation(self, found: Any) -> None:
        self.calls.append(WriteCall("write_audio_explanation", (found,)))
        self._scratch.write_audio_explanation(found)

    def record_file(self, path: str, **facts: Any) -> None:
        self.calls.append(WriteCall("record_file", (path,), dict(facts)))
        self._scratch.record_file(path, **facts)

    def write_preview(self, content_hash: str, data: bytes) -> None:
        """Recorded only: the writer stores the proxy (`Store.write_preview`); `preview` reads the cache."""
        self.calls.append(WriteCall("write_preview", (content_hash, data)))

    # -- reads ---------------------------------------------------------------------------------

    def _read(self, key: str) -> Store | None:
        return self._scratch if key in self._owned else self._main

    def file(self, path: str) -> FileRow | None:
        return self._scratch.file(path) or (self._main.file(path) if self._main else None)

    def has_ad(self, key: str) -> bool:
        return key in self._owned or (self._main is not None and self._main.has_ad(key))

    def ad(self, ref: str) -> AdRow:
        try:
            return self._scratch.ad(ref)
        except AdNotFound:
            if self._main is None:
                raise AdNotFound(f"no ad in {self.root} matches {ref!r}") from None
        row = self._main.ad(ref)
        if row.key in self._audio:
            audio, model = self._audio[row.key]
            values = audio_values(audio, model)
            row = dataclasses.replace(row, **{k: values[k] for k in ("audio_status", "audio_error", "audio_seconds",
                                                                      "audio_model")})
        return row

    def ads_with_content(self, content_hash: str) -> list[AdRow]:
        mine = self._scratch.ads_with_content(content_hash)
        theirs = [] if self._main is None else self._main.ads_with_content(content_hash)
        return mine + [self.ad(a.key) for a in theirs if a.key not in self._owned]

    def timeline(self, key: str) -> Any:
        store = self._read(key)
        if store is None:
            raise AdNotFound(f"no ad {key} in {self.root}")
        return store.timeline(key)

    def emotions(self, key: str) -> Any:
        store = self._read(key)
        return () if store is None else store.emotions(key)

    def audio(self, key: str) -> Any:
        if key in self._audio:
            return self._audio[key][0]
        store = self._read(key)
        return None if store is None else store.audio(key)

    def explained_frames(self, key: str, explain_hash: str | None = None) -> list[ExplainedFrame]:
        mine = self._scratch.explained_frames(key, explain_hash)
        if key in self._owned or self._main is None:
            return mine
        seen = {(f.frame_idx, f.explain_hash) for f in mine}
        theirs = [f for f in self._main.explained_frames(key, explain_hash) if (f.frame_idx, f.explain_hash) not in seen]
        return sorted(mine + theirs, key=lambda f: f.time_s)

    def explanation(self, key: str, frame_idx: int, explain_hash: str | None = None) -> Any:
        try:
            return self._scratch.explanation(key, frame_idx, explain_hash)
        except AdNotFound:
            if key in self._owned or self._main is None:
                raise
        return self._main.explanation(key, frame_idx, explain_hash)

    def audio_explained_seconds(self, key: str, explain_hash: str | None = None) -> list[Any]:
        mine = self._scratch.audio_explained_seconds(key, explain_hash)
        if key in self._owned or self._main is None:
            return mine
        seen = {(f.second, f.explain_hash) for f in mine}
        theirs = [f for f in self._main.audio_explained_seconds(key, explain_hash)
                  if (f.second, f.explain_hash) not in seen]
        return sorted(mine + theirs, key=lambda f: f.second)

    def audio_explanation(self, key: str, second: int, explain_hash: str | None = None) -> Any:
        try:
            return self._scratch.audio_explanation(key, second, explain_hash)
        except AdNotFound:
            if key in self._owned or self._main is None:
                raise
        return self._main.audio_explanation(key, second, explain_hash)

    def thumbs_dir(self, key: str) -> Path:
        return self.root / "thumbs" / key

    def key_frame_path(self, key: str, index: int) -> Path:
        return self.root / "thumbs" / key / f"key_{index:05d}.jpg"

    def preview(self, content_hash: str) -> Path | None:
        """The proxy already in the cache (this video's own, recorded, is not there yet)."""
        path = preview_path(self.root, content_hash)
        return path if path.is_file() else None

    def __getattr__(self, name: str) -> Any:
        """Any other read: of an ad this video wrote, from the scratch cache; otherwise from the cache as
        committed (a write method not proxied fails there: it is opened read-only)."""
        if name.startswith("_") or not hasattr(Store, name):
            raise AttributeError(name)
        main, scratch, owned = self.__dict__.get("_main"), self.__dict__["_scratch"], self.__dict__["_owned"]

        def read(*args: Any, **kwargs: Any) -> Any:
            source = scratch if (args and args[0] in owned) or main is None else main
            return getattr(source, name)(*args, **kwargs)

        return read


class Writer:
    """The one writer: applies each video's recorded calls to the cache, in order, and never writes an ad
    key twice in one run (the second video with the same bytes only records its file)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.written: dict[str, str] = {}
        """ad key -> the name of the file it was written from in this run."""
        self.explained: set[tuple[str, str, int, str]] = set()
        """(kind, ad key, frame or second, explain hash) of every explanation written in this run."""
        self.seconds = 0.0
        """Time spent applying calls (the writer's own cost)."""
        self.applied = 0

    def apply(self, calls: Sequence[WriteCall]) -> str | None:
        """Apply one video's calls; returns the name of the file whose ad this video duplicated, if any."""
        start = time.perf_counter()
        duplicate: str | None = None
        skipped: set[str] = set()
        for call in calls:
            if call.method not in WRITE_METHODS:
                raise ValueError(f"{call.method} is not a Store write method")
            key = call.ad_key
            if call.method == "write_ad":
                if key in self.written:
                    skipped.add(key)
                    duplicate = self.written[key]
                    continue
                self.written[key] = call.args[0].name
            if key is not None and key in skipped:
                continue
            if call.method in ("write_explanation", "write_audio_explanation"):
                # a worker that read the cache while another video's explanations were being written
                # may have computed one of them again: written once all the same
                found = call.args[0]
                where = (call.method, found.ad_key, int(getattr(found, "frame_idx", getattr(found, "second", -1))),
                         found.explain_hash)
                if where in self.explained:
                    continue
                self.explained.add(where)
            getattr(self.store, call.method)(*call.args, **call.kwargs)
        self.seconds += time.perf_counter() - start
        self.applied += 1
        return duplicate


# -- progress, from whichever process runs the work ------------------------------------------------


@dataclass(frozen=True)
class _Counts:
    """How far one try of one video has come, as totals so far."""

    expected_frames: int = 0
    frames: int = 0
    to_explain: int = 0
    explained: int = 0


class _Tally:
    """An IndexProgress for one try of one video: keeps its totals (`counts`) and hands each new total to
    `report` (a Ray task yields it to the driver; the pool's parent relays its workers' events through one)."""

    def __init__(self, report: Callable[[_Counts], None]) -> None:
        self.counts = _Counts()
        self.report = report

    def _update(self, **changes: int) -> None:
        self.counts = dataclasses.replace(self.counts, **changes)
        self.report(self.counts)

    def file_started(self, path: Path, expected_frames: int) -> None:
        self._update(expected_frames=expected_frames)

    def frames_done(self, count: int) -> None:
        self._update(frames=self.counts.frames + count)

    def explain_started(self, path: Path, frames: int) -> None:
        self._update(to_explain=self.counts.to_explain + frames)

    def frame_explained(self) -> None:
        self._update(explained=self.counts.explained + 1)

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: None


class _Relay:
    """The writer's side of each video's `_Counts`: turns them into the caller's IndexProgress events,
    forwarding only the part of a total not shown before, so a video tried again (its worker died) does
    not count its frames twice: its new try's totals, from zero again, add nothing until they pass it."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.shown: dict[Path, _Counts] = {}

    def update(self, path: Path, counts: _Counts) -> None:
        shown = self.shown.get(path, _Counts())
        if counts.expected_frames and not shown.expected_frames:  # none for a video only explained
            self.progress.file_started(path, counts.expected_frames)
        if counts.frames > shown.frames:
            self.progress.frames_done(counts.frames - shown.frames)
        if counts.to_explain > shown.to_explain:
            self.progress.explain_started(path, counts.to_explain - shown.to_explain)
        for _ in range(counts.explained - shown.explained):
            self.progress.frame_explained()
        self.shown[path] = _Counts(*(max(a, b) for a, b in zip(dataclasses.astuple(shown),
                                                               dataclasses.astuple(counts))))


# -- the work of one video, in whichever process runs it -------------------------------------------


class _Worker:
    """A worker process's state: its model (loaded once) and its store proxy."""

    def __init__(self, cache: Path, job: PerVideo) -> None:
        from emocore.models import load_model  # PyTorch: not imported with this module (`start_fork_server`)

        if job.setup is not None:
            job.setup()
        self.model: EmotionModel = load_model(job.model)
        self.loaded = {name: load() for name, load in job.resources.items()}
        self.scratch = Path(tempfile.mkdtemp(prefix="emocore-worker-"))
        self.proxy = StoreProxy(cache, self.scratch)
        self.job = job

    def run(self, path: Path, progress: Any) -> tuple[Any, list[WriteCall]]:
        self.proxy.begin()
        outcome = self.job.work(path, self.proxy, self.model, progress=progress, **self.job.options,
                               **self.loaded)
        return outcome, list(self.proxy.calls)

    def close(self) -> None:
        self.proxy.close()
        self.model.close()
        for resource in self.loaded.values():
            getattr(resource, "close", lambda: None)()
        shutil.rmtree(self.scratch, ignore_errors=True)


class _Forward:
    """An IndexProgress in a worker process: each event goes to the parent over the worker's pipe."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self.conn.send(("progress", name, args))


def _worker_main(conn: Connection, cache: str, job: PerVideo) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    try:
        worker = _Worker(Path(cache), job)
    except BaseException as exc:  # e.g. missing weights: the parent raises it
        conn.send(("fatal", exc if isinstance(exc, EmocoreError) else EmocoreError(f"{type(exc).__name__}: {exc}")))
        return
    conn.send(("ready",))
    progress = _Forward(conn)
    try:
        while True:
            task = conn.recv()
            if task is None:
                return
            try:
                outcome, calls = worker.run(Path(task), progress)
            except Exception as exc:  # a bug, not a bad file (those are outcomes): the parent decides
                log.warning("indexing %s failed in a worker", task, exc_info=True)
                conn.send(("error", " ".join(f"internal error: {type(exc).__name__}: {exc}".split())))
                continue
            conn.send(("done", outcome, calls))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    finally:
        worker.close()


def _context() -> Any:
    """Worker processes are forked from a fork server that imported the indexer once and never ran
    PyTorch (forking a process whose OpenMP threads ran can hang its children); spawn where there is none."""
    try:
        context = multiprocessing.get_context("forkserver")
    except ValueError:
        return multiprocessing.get_context("spawn")
    context.set_forkserver_preload(["emocore.indexer"])
    return context


def start_fork_server() -> None:
    """Start the worker processes' fork server now, where there is one (it is started at the first worker
    otherwise); idempotent. It imports the indexer (PyTorch and the models' code: about 2 CPU s) before the
    first worker forks from it, so a caller that will run `run_workers` calls this first, and that import
    runs beside the caller's own instead of after them. This module does not import PyTorch itself."""
    if _context().get_start_method() == "forkserver":
        with _caller_script_left_out():
            multiprocessing.forkserver.ensure_running()


@contextmanager
def _caller_script_left_out() -> Iterator[None]:
    """Start processes without the caller's main script: a fork server or spawn re-runs the file of
    `__main__` in each child before its target, and the workers need nothing from it (they run this
    module's functions). A Streamlit page, a notebook or a test runner that swapped `__main__` must
    not run again, or fail to import, inside every worker."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


@dataclass
class _Slot:
    process: Any
    conn: Connection
    path: Path | None = None
    ready: bool = False
    tally: _Tally | None = None
    """The progress of this try of `path`."""


def run_workers(
    paths: Sequence[Path],
    store: Store,
    job: PerVideo,
    *,
    workers: int,
    progress: Any,
    retries: int = 1,
) -> Iterator[Finished]:
    """Run `job` on every path in `workers` processes, writing each video's calls into `store` as it
    finishes (yielded in the order they finish). `progress` gets the workers' IndexProgress events
    (file_started, frames_done, explain_started, frame_explained), all from this thread; a video tried
    again counts its frames once (`_Relay`)."""
    context = _context()
    writer = Writer(store)
    relay = _Relay(progress)
    pending = list(reversed(paths))  # popped from the end: in order
    tries: dict[Path, int] = {}
    slots: list[_Slot] = []

    def start() -> _Slot:
        parent, child = context.Pipe()
        process = context.Process(target=_worker_main, args=(child, str(store.root), job), daemon=True,
                                  name="emocore-worker")
        with _caller_script_left_out():
            process.start()
        child.close()
        return _Slot(process, parent)

    def assign(slot: _Slot) -> None:
        slot.path = pending.pop() if pending else None
        if slot.path is not None:
            tries[slot.path] = tries.get(slot.path, 0) + 1
            slot.tally = _Tally(functools.partial(relay.update, slot.path))
            slot.conn.send(str(slot.path))

    def died(slot: _Slot) -> Iterator[Finished]:
        """The worker of `slot` is gone: replace it; its video is tried again, or recorded as failed."""
        slot.process.join(timeout=5)
        slots.remove(slot)
        slot.conn.close()
        code = slot.process.exitcode
        if slot.path is None and not slot.ready:
            raise EngineUnavailable(f"a worker process could not start (exit code {code})")
        lost = slot.path
        if lost is not None:
            if tries[lost] <= retries:
                log.warning("the worker indexing %s died (exit code %s); trying it again", lost, code)
                pending.append(lost)
            else:
                error = f"{WORKER_DIED} (exit code {code}) on each of {tries[lost]} tries"
                store.record_file(str(lost.absolute()), status="failed", error=error)
                yield Finished(lost, None, error=error, tries=tries[lost])
        if pending and len(slots) < workers:
            slots.append(start())

    finished = False
    began = time.perf_counter()
    try:
        slots = [start() for _ in range(max(1, min(workers, len(paths))))]
        while pending or any(s.path is not None for s in slots):
            waiting: dict[Any, _Slot] = {s.conn: s for s in slots}
            waiting.update({s.process.sentinel: s for s in slots})
            for ready in wait(list(waiting)):
                slot = waiting[ready]
                if slot not in slots:
                    continue
                if not slot.conn.poll():  # its sentinel: the process ended, nothing left to read
                    yield from died(slot)
                    continue
                try:
                    message = slot.conn.recv()
                except (EOFError, OSError):
                    yield from died(slot)
                    continue
                kind = message[0]
                if kind == "fatal":
                    raise message[1]
                if kind == "ready":
                    log.debug("worker %s ready after %.1f s", slot.process.pid, time.perf_counter() - began)
                    slot.ready = True
                    assign(slot)
                elif kind == "progress":
                    getattr(slot.tally, message[1])(*message[2])
                elif kind == "error":  # the work raised: nothing of that video is written
                    if job.options.get("debug"):
                        raise EngineUnavailable(f"{slot.path}: {message[1]}")
                    lost, slot.path = slot.path, None
                    assert lost is not None
                    store.record_file(str(lost.absolute()), status="failed", error=message[1])
                    yield Finished(lost, None, error=message[1], tries=tries[lost])
                    assign(slot)
                elif kind == "done":
                    done_path = slot.path
                    assert done_path is not None
                    duplicate = writer.apply(message[2])
                    slot.path = None
                    yield Finished(done_path, message[1], duplicate_of=duplicate, tries=tries[done_path])
                    assign(slot)
            if not slots and pending:
                slots.append(start())
        finished = True
    finally:
        # at the end each worker is told to stop; on Ctrl-C (or any error here) they are stopped at once:
        # their unfinished videos were never written, a rerun does them
        for slot in slots:
            try:
                if finished:
                    slot.conn.send(None)
                else:
                    slot.process.terminate()
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 5
        for slot in slots:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                slot.process.terminate()
                slot.process.join(timeout=2)
            slot.conn.close()
    log.info("writer: %d videos applied in %.2f s", writer.applied, writer.seconds)


# -- Ray -------------------------------------------------------------------------------------------

#: One worker state per Ray worker process and job (the model is loaded once per process).
_RAY_WORKERS: dict[tuple[str, str], _Worker] = {}


@dataclass(frozen=True)
class _RayDone:
    """What one Ray task sends back last, after its progress: the work's result and recorded writes, and for
    the driver's timeline (debug log) where and when it ran."""

    outcome: Any
    calls: list[WriteCall]
    pid: int
    began: float
    """Wall clock (time.time()) when the task began in its worker, its arguments unpickled (on another
    node of a cluster, that node's clock)."""
    load_seconds: float | None
    """Loading the model and resources in this worker (None: already loaded by an earlier task)."""
    seconds: float
    """The work itself."""


def _ray_index_one(path: str, cache: str, job: PerVideo) -> Iterator[_Counts | _RayDone]:
    """A Ray generator task: yields the video's `_Counts` as the work goes on (the work runs in a thread
    of this worker; one item per progress event, so a replay yields as many), then its `_RayDone`."""
    began = time.time()
    key = (cache, repr(job))  # the job's repr names its function, model and every option
    worker = _RAY_WORKERS.get(key)
    load_seconds = None
    if worker is None:
        worker = _RAY_WORKERS[key] = _Worker(Path(cache), job)
        load_seconds = time.time() - began
    events: queue.SimpleQueue[_Counts | None] = queue.SimpleQueue()
    tally = _Tally(events.put)
    result: dict[str, Any] = {}

    def work() -> None:
        start = time.perf_counter()
        try:
            result["done"] = worker.run(Path(path), tally)
        except BaseException as exc:  # raised again in the task below, where Ray sees it
            result["error"] = exc
        finally:
            result["seconds"] = time.perf_counter() - start
            events.put(None)

    thread = threading.Thread(target=work, name="emocore-ray-work", daemon=True)
    thread.start()
    while (counts := events.get()) is not None:
        yield counts
    thread.join()
    if "error" in result:
        raise result["error"]
    outcome, calls = result["done"]
    yield _RayDone(outcome, calls, os.getpid(), began, load_seconds, result["seconds"])


def ray_module() -> Any:
    """Ray, imported on first use; EngineUnavailable (one line, naming the pinned install) without it."""
    try:
        import ray
    except ImportError:
        raise EngineUnavailable(f"--engine ray needs Ray: pip install 'ray=={RAY_VERSION}'") from None
    return ray


#: Seconds a HOST:PORT given to --address has to accept a connection before `index` says nothing answers there.
JOIN_TIMEOUT = 5.0


def _head_address(address: str) -> tuple[str, int] | None:
    """HOST and PORT of an --address of that form (None: `auto`, a `ray://` URL, or no port: Ray's to read)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _start_ray(ray: Any, address: str | None, cpus: int | None) -> None:
    """`ray.init`: a local Ray with `cpus` CPUs, or the cluster at `address`; EngineUnavailable (one line) when
    it fails. A HOST:PORT (also the one `auto` stands for: `_auto_address`) is first tried with a plain TCP
    connection (JOIN_TIMEOUT), because Ray itself keeps retrying an address where nothing answers for minutes."""
    if not address:
        try:  # "local": a Ray of its own even beside one `ray start` runs here (which Ray would join instead)
            ray.init(address="local", num_cpus=cpus or available_cores(), include_dashboard=False,
                     log_to_driver=False)
        except Exception as exc:  # Ray raises plain Exception when its processes do not come up
            ray.shutdown()  # stops what did start
            raise EngineUnavailable(_one_line(f"a local Ray could not start: {exc}")) from exc
        return
    found = _auto_address() if address == "auto" else address
    head = _head_address(found)
    if head is not None:
        try:
            socket.create_connection(head, timeout=JOIN_TIMEOUT).close()
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            if address == "auto":  # most often the address a Ray stopped without `ray stop` left behind
                raise EngineUnavailable(f"--address auto: the Ray this machine points to, {found} (RAY_ADDRESS, or "
                                        f"the last `ray start` here), does not answer ({reason}); start one with "
                                        "`ray start --head`, or leave out --address for a local Ray") from None
            raise EngineUnavailable(f"--address {address}: no Ray head can be reached there ({reason}); start one "
                                    "with `ray start --head --port=6379` and pass its HOST:PORT, or --address "
                                    "auto on that machine") from None
    try:
        ray.init(address=found, log_to_driver=False)
    except ConnectionError as exc:
        reason = str(exc).split(". ")[0]
        if head is None:  # a `ray://` address, or one without a port
            raise EngineUnavailable(_one_line(f"--address {address}: {reason}")) from None
        # the head answered, yet Ray did not connect: most often a token it refuses or lacks
        raise EngineUnavailable(_one_line(
            f"--address {address}: a Ray head answers there but Ray could not connect ({reason}); with token "
            "authentication (Ray's default) set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, "
            "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)")) from None
    except Exception as exc:  # e.g. a head of another Ray version
        raise EngineUnavailable(_one_line(f"--address {address}: Ray could not join: {type(exc).__name__}: "
                                          f"{exc}")) from exc


def _auto_address() -> str:
    """The HOST:PORT `--address auto` stands for, found as Ray itself finds it (Ray's own lookup, of the
    pinned release): RAY_ADDRESS, else the address the last `ray start` on this machine recorded in Ray's
    temp folder (RAY_TMPDIR, else /tmp; it outlives a Ray stopped without `ray stop`), else a Ray running
    here; "auto" itself when that is not a HOST:PORT. EngineUnavailable (one line) when there is none."""
    from ray._private.services import canonicalize_bootstrap_address

    try:
        found = canonicalize_bootstrap_address("auto")
    except ConnectionError as exc:
        found, reason = None, str(exc).split(". ")[0]
    except ValueError:  # not HOST:PORT (RAY_ADDRESS=ray://...: Ray's client): left to Ray
        return "auto"
    else:
        reason = "Could not find any running Ray instance"
    if not found:
        raise EngineUnavailable(_one_line(f"--address auto: {reason} (start one with `ray start --head`, or leave "
                                          "out --address for a local Ray)"))
    return found


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def run_ray(
    paths: Sequence[Path],
    store: Store,
    job: PerVideo,
    *,
    address: str | None = None,
    cpus: int | None = None,
    progress: Any,
    retries: int = 1,
) -> Iterator[Finished]:
    """Run `job` on every path as Ray tasks; the driver (this process) writes each video's calls as its
    task finishes (`ray.wait`). Each task is a Ray generator that streams its video's progress (frames,
    explained frames) while it runs: `progress` gets the same events as from `run_workers`. Without
    `address` a local Ray of its own is started with `cpus` CPUs (default: the cores available; also
    when another Ray runs on this machine) and shut down at the end (its processes stopped before this
    returns); with one (HOST:PORT, or `auto`: the address Ray finds for this machine, `_auto_address`), this
    process joins that cluster (`ray.init(address=...)`; the cluster's token, when it has one, comes from
    the environment as Ray reads it). A Ray already initialised by the caller is used and left running.
    A task whose worker dies is retried by Ray (`max_retries=retries`), then recorded failed.
    The timeline (Ray's start, each task's start in its worker and its model loading, the shutdown) is
    logged at debug level (`cli.py --debug`)."""
    ray = ray_module()
    started = False
    began = time.perf_counter()
    if not ray.is_initialized():
        _start_ray(ray, address, cpus)
        started = True
        log.debug("ray: %s in %.2f s", f"joined {address}" if address else "local Ray started",
                  time.perf_counter() - began)
    writer = Writer(store)
    relay = _Relay(progress)
    try:
        task = ray.remote(num_cpus=1, max_retries=retries, num_returns="streaming")(_ray_index_one)
        cache = str(store.root.absolute())
        running = {task.remote(str(p), cache, job): p for p in paths}
        submitted = time.time()
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for stream in ready:  # each has its next item ready
                path = running[stream]
                try:
                    item = ray.get(next(stream))
                except (ray.exceptions.RayError, StopIteration) as exc:
                    running.pop(stream)
                    reason = type(exc).__name__
                    error = (f"{WORKER_DIED} ({reason}) on each of {retries + 1} tries"
                             if isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError))
                             else _one_line(f"ray task failed: {reason}: {exc or 'it ended without a result'}"))
                    store.record_file(str(path.absolute()), status="failed", error=error)
                    yield Finished(path, None, error=error, tries=retries + 1)
                    continue
                if isinstance(item, _Counts):
                    relay.update(path, item)
                    continue
                running.pop(stream)
                done: _RayDone = item
                log.debug("ray: %s done at +%.2f s in worker %d (began +%.2f s after submission%s; work %.2f s)",
                          path.name, time.perf_counter() - began, done.pid, done.began - submitted,
                          "" if done.load_seconds is None else f", models loaded in {done.load_seconds:.2f} s",
                          done.seconds)
                duplicate = writer.apply(done.calls)
                yield Finished(path, done.outcome, duplicate_of=duplicate)
    finally:
        if started:
            stopping = time.perf_counter()
            ray.shutdown()
            log.debug("ray: shut down in %.2f s", time.perf_counter() - stopping)
    log.info("writer: %d videos applied in %.2f s", writer.applied, writer.seconds)
