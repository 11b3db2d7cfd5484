"""Index a folder of video ads into the cache: the main job, as public pieces.

    report = index_folder(Path("ads"), Path("cache"))

For each video: hash its bytes; skip it if the cache already holds that content with the same
model and parameters; otherwise decode it once (a background thread decodes and samples while the
model scores the previous batch), detect shots on every decoded frame, score the sampled frames,
smooth, summarise, and write the ad atomically with its thumbnails. A file that cannot be read is
recorded as failed with a one-line reason and the batch goes on.

Progress is reported through an `IndexProgress` the caller passes in; nothing here prints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from emocore.errors import EmocoreError, FolderNotFound, VideoError
from emocore.files import content_hash  # SHA-256 of a file's bytes: an ad's identity
from emocore.explain import ExplainParams, explain_ad
from emocore.models import DEFAULT_MODEL, EmotionModel, load_model
from emocore.params import IndexParams  # the parameters' typed record (round-trips from the store); re-exported here
from emocore.scoring import ScoringParams, smooth, summarise
from emocore.shots import ShotDetector, ShotParams
from emocore.store import SCHEMA_VERSION, AdRow, NewAd, Store, Timeline
from emocore.video import SampledFrame, find_videos, open_video

log = logging.getLogger("emocore")

#: Sampled frames scored per model call.
BATCH = 16


@dataclass(frozen=True)
class FileOutcome:
    path: Path
    status: str
    """'indexed', 'skipped' (unchanged, or the same content as another file) or 'failed'."""
    ad_key: str | None = None
    error: str | None = None
    seconds: float = 0.0
    frames: int = 0
    dominant_raw: str | None = None
    """The emotion with the highest raw mean (no norms applied)."""
    note: str | None = None
    explained: int = 0
    """Key frames explained in this run."""


@dataclass(frozen=True)
class IndexReport:
    outcomes: tuple[FileOutcome, ...]
    elapsed_s: float
    cache: Path

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> tuple[FileOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")


class IndexProgress(Protocol):
    """What an index reports while it runs. Every method may be a no-op."""

    def files_found(self, total: int) -> None: ...

    def file_started(self, path: Path, expected_frames: int) -> None: ...

    def frames_done(self, count: int) -> None: ...

    def explain_started(self, path: Path, frames: int) -> None: ...

    def frame_explained(self) -> None: ...

    def file_finished(self, outcome: FileOutcome) -> None: ...


class _Silent:
    def files_found(self, total: int) -> None:
        pass

    def file_started(self, path: Path, expected_frames: int) -> None:
        pass

    def frames_done(self, count: int) -> None:
        pass

    def explain_started(self, path: Path, frames: int) -> None:
        pass

    def frame_explained(self) -> None:
        pass

    def file_finished(self, outcome: FileOutcome) -> None:
        pass


def params_hash(model: EmotionModel, params: IndexParams) -> tuple[str, dict[str, object]]:
    """The hash of everything besides the file's bytes that changes the output, and that thing."""
    described: dict[str, object] = {"model": model.describe(), "index": asdict(params), "schema": SCHEMA_VERSION}
    text = json.dumps(described, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), described


def ad_key(content: str, params_digest: str) -> str:
    return hashlib.sha256(f"{content}:{params_digest}".encode()).hexdigest()[:20]


def _decode_ahead(frames: Iterator[SampledFrame], depth: int = 2 * BATCH) -> Iterator[SampledFrame]:
    """Run a frame iterator in a background thread so decoding overlaps scoring."""
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def pump() -> None:
        try:
            for item in frames:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            buffer.put(exc)

    worker = threading.Thread(target=pump, name="emocore-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)


def _thumbnail(image: np.ndarray, width: int) -> bytes:
    h, w = image.shape[:2]
    height = max(1, round(h * width / w))
    small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise VideoError("could not encode a thumbnail")
    return data.tobytes()


@dataclass(frozen=True)
class _Scored:
    times: np.ndarray
    raw: np.ndarray
    faces: np.ndarray
    boxes: tuple[tuple[float, ...] | None, ...]
    shots: tuple[float, ...]
    thumbnails: dict[int, bytes]
    info: dict[str, object]
    decode_errors: int
    face_px: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(N,) the scored face's size in original-frame pixels, NaN without one."""


def score_video(
    path: Path, model: EmotionModel, params: IndexParams, progress: IndexProgress | None = None
) -> _Scored:
    """Decode, sample, detect shots and score one video (no cache involved)."""
    progress = progress or _Silent()
    with open_video(path) as video:
        info = video.info
        progress.file_started(path, max(1, round(info.duration_s * params.sample_rate)))
        detector = ShotDetector(info.fps, params.shots)
        times: list[float] = []
        rows: list[np.ndarray] = []
        faces: list[int] = []
        boxes: list[tuple[float, ...] | None] = []
        face_px: list[float] = []
        thumbnails: dict[int, bytes] = {}
        batch: list[SampledFrame] = []

        def flush() -> None:
            # the model learns each frame's scale, for rules in original pixels (minimum face size)
            scores = model.analyse_scaled([f.image for f in batch], [f.source_scale for f in batch])
            for j, frame in enumerate(batch):
                times.append(frame.time_s)
                rows.append(scores.probabilities[j])
                found = None if scores.faces is None else scores.faces[j]
                faces.append(-1 if found is None else len(found))
                boxes.append(None if found is None or not len(found) else tuple(float(v) for v in found[0]))
                face_px.append(float("nan") if scores.face_px is None else float(scores.face_px[j]))
                thumbnails[frame.index] = _thumbnail(frame.image, params.thumb_width)
            progress.frames_done(len(batch))
            batch.clear()

        for frame in _decode_ahead(video.sample(params.sample_rate, params.max_side, on_frame=detector.feed)):
            batch.append(frame)
            if len(batch) == BATCH:
                flush()
        if batch:
            flush()
        duration = info.duration_s or (times[-1] + 1.0 / params.sample_rate)
        return _Scored(
            times=np.array(times, dtype=np.float64),
            raw=np.vstack(rows).astype(np.float32),
            faces=np.array(faces, dtype=np.int32),
            boxes=tuple(boxes),
            shots=tuple(detector.boundaries()),
            thumbnails=thumbnails,
            info={**asdict(info), "duration_s": duration},
            decode_errors=video.decode_errors,
            face_px=np.array(face_px, dtype=np.float64),
        )


def index_video(
    path: Path,
    store: Store,
    model: EmotionModel,
    params: IndexParams,
    *,
    force: bool = False,
    explain: ExplainParams | None = None,
    progress: IndexProgress | None = None,
    debug: bool = False,
) -> FileOutcome:
    """Index one file into `store` unless it is already there, then explain its key frames
    (`explain`; None: no explanations) unless they are there too. Never raises for a bad file."""
    progress = progress or _Silent()
    start = time.perf_counter()
    label = str(path.absolute())
    try:
        stat = path.stat()
        if not path.is_file():
            raise VideoError("not a regular file")
        known = store.file(label)
        if known and known.content_hash and known.size_bytes == stat.st_size and known.mtime_ns == stat.st_mtime_ns:
            digest = known.content_hash
        else:
            digest = content_hash(path)
    except FileNotFoundError:
        error = "file does not exist" + (" (broken link)" if path.is_symlink() else "")
        store.record_file(label, status="failed", error=error)
        return FileOutcome(path, "failed", error=error)
    except (OSError, VideoError) as exc:
        error = f"cannot read file ({getattr(exc, 'strerror', None) or exc})"
        store.record_file(label, status="failed", error=error)
        return FileOutcome(path, "failed", error=error)

    p_digest, described = params_hash(model, params)
    key = ad_key(digest, p_digest)
    file_facts = {"size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "content_hash": digest, "ad_key": key}
    if not force and store.has_ad(key):
        existing = store.ad(key)
        note = "unchanged" if existing.path == label else f"same content as {existing.name}"
        store.record_file(label, status=existing.status, **file_facts, error=existing.error)
        explained, problem = _explain(store, existing, path, model, explain, progress, debug)
        return FileOutcome(path, "skipped", ad_key=key, error=existing.error, note=problem or note,
                           seconds=time.perf_counter() - start, dominant_raw=existing.dominant_raw, explained=explained)

    base = dict(key=key, content_hash=digest, params_hash=p_digest, params=described, name=path.name,
                path=label, size_bytes=stat.st_size, model=model.spec, model_version=model.version,
                labels=tuple(model.labels))
    try:
        scored = score_video(path, model, params, progress)
    except (VideoError, EmocoreError) as exc:
        return _record_failure(store, base, file_facts, path, str(exc), start)
    except Exception as exc:  # a bug or a library failure on odd input: record it, keep the batch going
        if debug:
            raise
        log.warning("unexpected error on %s", path, exc_info=True)
        return _record_failure(store, base, file_facts, path, f"internal error: {type(exc).__name__}: {exc}", start)

    smoothed = smooth(scored.times, scored.raw, params.scoring.window_s, shots=scored.shots)
    summary = summarise(scored.times, scored.raw, smoothed, model.labels, params.scoring.threshold,
                        sample_rate=params.sample_rate)
    elapsed = time.perf_counter() - start
    store.write_ad(
        NewAd(
            **base,
            info=scored.info,
            timeline=Timeline(times=scored.times, raw=scored.raw, smoothed=smoothed, faces=scored.faces,
                              boxes=scored.boxes, shots=scored.shots, face_px=scored.face_px),
            emotions=summary.emotions,
            # a whole-frame model looks for no faces: coverage is not a number it computed
            face_coverage=summary.face_coverage if scored.faces.min(initial=0) >= 0 else None,
            dominant_raw=summary.dominant_raw,
            face_frames=summary.face_frames,
            face_seconds=summary.face_seconds,
            decode_errors=scored.decode_errors,
            elapsed_s=elapsed,
        ),
        scored.thumbnails,
    )
    store.record_file(label, status="ok", **file_facts)
    explained, problem = _explain(store, store.ad(key), path, model, explain, progress, debug)
    note = f"{scored.decode_errors} damaged packets skipped" if scored.decode_errors else None
    return FileOutcome(path, "indexed", ad_key=key, seconds=time.perf_counter() - start, frames=len(scored.times),
                       dominant_raw=summary.dominant_raw, note=problem or note, explained=explained)


def _explain(store: Store, ad: AdRow, path: Path, model: EmotionModel, params: ExplainParams | None,
             progress: IndexProgress, debug: bool) -> tuple[int, str | None]:
    """Explain the ad's key frames that are missing; a failure here never fails the ad's scores."""
    if params is None or ad.status != "ok":
        return 0, None
    try:
        return explain_ad(store, ad, path, model, params,
                          on_start=lambda n: progress.explain_started(path, n),
                          on_frame=progress.frame_explained), None
    except Exception as exc:
        if debug:
            raise
        log.warning("explaining %s failed", path, exc_info=not isinstance(exc, EmocoreError))
        return 0, " ".join(f"explanations failed: {exc}".split())


def _record_failure(
    store: Store, base: dict, file_facts: dict, path: Path, error: str, start: float
) -> FileOutcome:
    error = " ".join(error.split())  # one line, always
    store.write_ad(NewAd(**base, status="failed", error=error, elapsed_s=time.perf_counter() - start))
    store.record_file(base["path"], status="failed", error=error, **file_facts)
    return FileOutcome(path, "failed", ad_key=base["key"], error=error, seconds=time.perf_counter() - start)


def index_folder(
    folder: Path | str,
    cache: Path | str,
    *,
    model: EmotionModel | str = DEFAULT_MODEL,
    params: IndexParams | None = None,
    explain: ExplainParams | None = ExplainParams(),
    force: bool = False,
    progress: IndexProgress | None = None,
    debug: bool = False,
) -> IndexReport:
    """Index every video under `folder` (or the one file `folder` names) into the cache at `cache`,
    and explain each ad's key frames with LIME and SHAP (`explain=None`: scores only).

    PyTorch's thread count is the caller's choice (`torch.set_num_threads`): `cli.py index --threads`
    sets it (default 1: one thread beside the decoder was the fastest on 2 cores); the library
    leaves it as it is.
    """
    folder = Path(folder)
    params = params or IndexParams()
    progress = progress or _Silent()
    if not folder.exists():
        raise FolderNotFound(f"{folder} does not exist")
    start = time.perf_counter()
    videos = find_videos(folder)
    progress.files_found(len(videos))
    outcomes: list[FileOutcome] = []
    with Store(cache) as store:
        if not videos:
            return IndexReport((), time.perf_counter() - start, Path(cache))
        owned = isinstance(model, str)
        active = load_model(model) if isinstance(model, str) else model
        try:
            for path in videos:
                outcome = index_video(path, store, active, params, force=force, explain=explain,
                                      progress=progress, debug=debug)
                outcomes.append(outcome)
                progress.file_finished(outcome)
        finally:
            if owned:
                active.close()
    return IndexReport(tuple(outcomes), time.perf_counter() - start, Path(cache))


def find_ad_for(store: Store, ref: str, model: EmotionModel | str = DEFAULT_MODEL) -> tuple[AdRow, Path]:
    """The ad a user means, and the video file it comes from.

    `ref` is a video file (indexed first, scores only, if the cache does not hold it yet) or an ad
    in the cache (key, key prefix, name or path), whose file must still hold the same bytes.
    """
    path = Path(ref)
    if path.is_file():
        digest = content_hash(path)
        found = [ad for ad in store.ads_with_content(digest) if ad.status == "ok"]
        if not found:
            active = load_model(model) if isinstance(model, str) else model
            outcome = index_video(path, store, active, IndexParams(), explain=None)
            if outcome.status == "failed":
                raise VideoError(f"{path.name}: {outcome.error}")
            found = [store.ad(outcome.ad_key)]
        return found[0], path
    ad = store.ad(ref)
    video = Path(ad.path)
    if not video.is_file() or content_hash(video) != ad.content_hash:
        raise VideoError(f"the video of {ad.name} is no longer at {video} unchanged: pass the video file instead")
    return ad, video

