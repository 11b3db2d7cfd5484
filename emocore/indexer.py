"""Index a folder of video ads into the cache: the main job, as public pieces.

    report = index_folder(Path("ads"), Path("cache"))

For each video: hash its bytes; skip it if the cache already holds that content with the same
model and parameters; otherwise decode it once (a background thread decodes and samples while the
model scores the previous batch), detect shots on every decoded frame, score the sampled frames,
smooth, summarise, and write the ad atomically with its thumbnails. A file that cannot be read is
recorded as failed with a one-line reason and the batch goes on.

The soundtrack (`audio_model` given; `index --no-audio` gives none): decoded in the same demux pass
as the video (16 kHz mono), scored into per-second lanes by the decode thread once the pass ends
(while the face model still works through the frames decoded ahead), and written with the ad in
the same transaction. The soundtrack is not part of the ad's key: `ads.audio_model` records what
read it (`audio_spec()`), and an ad already in the cache whose soundtrack is missing or was read by
another spec gets it re-read alone (`decode_audio`, then `Store.write_audio`) without its faces
being scored again. No audio track: 'none' (no lanes, never zeros); an unusable track or a failing
audio model: 'failed' with a one-line reason, the faces kept. Without an audio model, stored
soundtracks are never touched (`--force` keeps the one already stored).

The browser preview (`preview` given; `index --no-preview` gives none): a file browsers cannot play
as it is (`emocore.preview.browser_playability`) gets an H.264/AAC MP4 proxy (`encode_preview`, a
second decode of the file, after the ad is written), stored once per file content
(`Store.write_preview`, atomic); an ad already in the cache gets its missing proxy the same way. A
failing proxy is a note on the outcome, never a failed ad. Each new ad's cover (the frame the library
shows it by) is chosen from its sampled frames (`emocore.preview.choose_cover`: the largest face in a
non-blank frame) and written with its thumbnails.

Progress is reported through an `IndexProgress` the caller passes in; nothing here prints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from emocore.audio.decode import AudioFailed, AudioTrack, NoAudio, decode_audio
from emocore.audio.lanes import AudioLanes, describe_lanes, score_lanes
from emocore.audio.yamnet import NAME as AUDIO_MODEL_NAME
from emocore.audio.yamnet import VERSION as AUDIO_MODEL_VERSION
from emocore.audio.yamnet import AudioModel
from emocore.engine import EngineParams, PerVideo, run_ray, run_workers
from emocore.errors import AudioError, CacheError, EmocoreError, FolderNotFound, VideoError
from emocore.files import content_hash  # SHA-256 of a file's bytes: an ad's identity
from emocore.explain import ExplainParams, explain_ad, explain_audio_ad
from emocore.models import DEFAULT_MODEL, EmotionModel, load_model
from emocore.preview import (LOOK_SIDE, FrameLook, PreviewParams, browser_playability, choose_cover, encode_preview,
                             frame_look)
from emocore.params import IndexParams  # the parameters' typed record (round-trips from the store); re-exported here
from emocore.scoring import ScoringParams, smooth, summarise
from emocore.shots import ShotDetector, ShotParams
from emocore.store import SCHEMA_VERSION, AdRow, AudioResult, NewAd, Store, Timeline
from emocore.video import SampledFrame, find_videos, open_video

log = logging.getLogger("emocore")

#: Sampled frames decoded ahead of scoring at most (the decode thread waits when that many wait).
DECODE_AHEAD = 32


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
    audio: str | None = None
    """What this run read of the soundtrack: 'ok' (lanes stored), 'none' (no audio track), 'failed'
    (`audio_error` says why; the faces stand); None when it did not read it (`--no-audio`, or the
    stored soundtrack is current)."""
    audio_error: str | None = None
    preview: str | None = None
    """What this run did about the browser proxy: 'made', 'stored' (already in the cache), 'playable' (the
    file plays as it is: none needed), 'failed' (the note says why); None when not asked (`--no-preview`)."""
    preview_s: float = 0.0
    """Seconds spent making the proxy (included in `seconds`)."""


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


def audio_spec(model: AudioModel | None = None) -> str:
    """What reads a soundtrack, as `ads.audio_model` records it: the audio model's name and version
    and a short hash of the lane definitions (`describe_lanes()`), e.g. "yamnet w8a8-6033a308ddfc
    lanes-1a2b3c4d". An ad whose stored spec differs has its soundtrack read again. `model`: the
    loaded model (default: the one `load_audio_model()` loads; no model is loaded here)."""
    name, version = (model.name, model.version) if model is not None else (AUDIO_MODEL_NAME, AUDIO_MODEL_VERSION)
    lanes = hashlib.sha256(json.dumps(describe_lanes(), sort_keys=True).encode()).hexdigest()[:8]
    return f"{name} {version} lanes-{lanes}"


@dataclass(frozen=True)
class Soundtrack:
    """A soundtrack as the indexer read it: what the store keeps, and the damage skipped on the way."""

    result: AudioLanes | NoAudio | AudioFailed
    decode_errors: int = 0
    """Damaged audio packets skipped (0 when there is no track or it failed)."""

    @property
    def status(self) -> str:
        """'ok', 'none' or 'failed', as `ads.audio_status`."""
        return "ok" if isinstance(self.result, AudioLanes) else "none" if isinstance(self.result, NoAudio) else "failed"

    @property
    def error(self) -> str | None:
        return None if isinstance(self.result, AudioLanes) else " ".join(self.result.reason.split())

    @property
    def note(self) -> str | None:
        """What the index summary says about it: nothing when all went well."""
        if isinstance(self.result, NoAudio):
            return "no audio"
        if isinstance(self.result, AudioFailed):
            return f"audio failed: {self.error}"
        return f"{self.decode_errors} damaged audio packets skipped" if self.decode_errors else None


def read_soundtrack(decode: Callable[[], AudioTrack | NoAudio], model: AudioModel, duration_s: float | None,
                    path: Path, debug: bool = False) -> Soundtrack:
    """Decode (`decode()`: the same-pass track, or `decode_audio(path)`) and score a soundtrack into
    per-second lanes covering `duration_s` (the video's length). Never raises for a bad track or a
    failing audio model: those become `AudioFailed` with a one-line reason (logged); `debug`
    re-raises the unexpected ones."""
    try:
        track = decode()
        lanes = score_lanes(track, model, duration_s=duration_s or None)
        return Soundtrack(lanes, track.decode_errors if isinstance(track, AudioTrack) else 0)
    except AudioError as exc:
        log.warning("the soundtrack of %s is unusable: %s", path, exc)
        return Soundtrack(AudioFailed(" ".join(str(exc).split())))
    except Exception as exc:  # the audio model or a library on odd input: the faces must not pay for it
        if debug:
            raise
        log.warning("scoring the soundtrack of %s failed", path, exc_info=True)
        return Soundtrack(AudioFailed(" ".join(f"audio model failed: {type(exc).__name__}: {exc}".split())))


def _decode_ahead(frames: Iterator[SampledFrame], depth: int = DECODE_AHEAD) -> Iterator[SampledFrame]:
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


def _shrunk(image: np.ndarray, width: int, long_side: int) -> np.ndarray:
    """`image` made smaller by a whole factor (box filter), still at least `width` wide and `long_side`
    on its long side: one cheap reduction that the thumbnail and the frame's look are both cut from
    (an area filter straight from 720p to a fractional size costs about 3 ms a frame; the whole
    factor 1.2 ms, and the small remainders almost nothing)."""
    h, w = image.shape[:2]
    factor = min(w // width, max(w, h) // long_side)
    if factor < 2:
        return image
    return cv2.resize(image, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


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
    soundtrack: Soundtrack | None = None
    """The soundtrack read in the same pass; None without an audio model."""
    looks: tuple[FrameLook, ...] = ()
    """Per sampled frame its luminance and detail (for the cover)."""


def score_video(
    path: Path, model: EmotionModel, params: IndexParams, progress: IndexProgress | None = None,
    *, audio_model: AudioModel | None = None, debug: bool = False,
) -> _Scored:
    """Decode, sample, detect shots and score one video (no cache involved); with `audio_model`, its
    soundtrack too, from the same demux pass (scored by the decode thread once the pass ends, while
    the face model scores the frames decoded ahead)."""
    progress = progress or _Silent()
    with open_video(path, audio=audio_model is not None) as video:
        info = video.info
        progress.file_started(path, max(1, round(info.duration_s * params.sample_rate)))
        detector = ShotDetector(info.fps, params.shots)
        times: list[float] = []
        rows: list[np.ndarray] = []
        faces: list[int] = []
        boxes: list[tuple[float, ...] | None] = []
        face_px: list[float] = []
        looks: list[FrameLook] = []
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
                small = _shrunk(frame.image, params.thumb_width, LOOK_SIDE)
                thumbnails[frame.index] = _thumbnail(small, params.thumb_width)
                looks.append(frame_look(small))
            progress.frames_done(len(batch))
            batch.clear()

        read: list[Soundtrack] = []

        def frames_then_sound() -> Iterator[SampledFrame]:  # runs in the decode thread
            yield from video.sample(params.sample_rate, params.max_side, on_frame=detector.feed,
                                    every_frame=params.shots.every_frame)
            if audio_model is not None:
                read.append(read_soundtrack(video.soundtrack, audio_model, info.duration_s, path, debug))

        per_call = model.frames_per_call
        for frame in _decode_ahead(frames_then_sound()):
            batch.append(frame)
            if len(batch) == per_call:
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
            soundtrack=read[0] if read else None,
            looks=tuple(looks),
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
    audio_model: AudioModel | None = None,
    preview: PreviewParams | None = None,
) -> FileOutcome:
    """Index one file into `store` unless it is already there, then explain its key frames
    (`explain`; None: no explanations) unless they are there too. Never raises for a bad file.

    `preview`: make the browser proxy of a file browsers cannot play, unless the cache holds it
    (None: no proxy is made; `index --no-preview`).

    `audio_model`: read the soundtrack too (same pass), or, for an ad already in the cache, read it
    alone when its stored soundtrack is missing or made by another `audio_spec`. None (`--no-audio`):
    stored soundtracks are left as they are (`force` keeps the stored one) and new ads have none."""
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
    spec = audio_spec(audio_model) if audio_model is not None else None
    if not force and store.has_ad(key):
        existing = store.ad(key)
        note = "unchanged" if existing.path == label else f"same content as {existing.name}"
        store.record_file(label, status=existing.status, **file_facts, error=existing.error)
        sound = None
        if spec is not None and existing.status == "ok" and existing.audio_model != spec:
            sound = read_soundtrack(lambda: decode_audio(path), audio_model, existing.duration_s, path, debug)
            store.write_audio(key, sound.result, spec)  # one transaction: the faces are untouched
            existing = store.ad(key)
            note = _join(note, "soundtrack read", sound.note)
        shown = _make_preview(store, path, digest, preview, debug) if existing.status == "ok" else _Previewed()
        explained, problem = _explain(store, existing, path, model, explain, progress, debug, audio_model)
        return FileOutcome(path, "skipped", ad_key=key, error=existing.error, note=_join(problem, note, shown.note),
                           seconds=time.perf_counter() - start, dominant_raw=existing.dominant_raw, explained=explained,
                           audio=sound.status if sound else None, audio_error=sound.error if sound else None,
                           preview=shown.status, preview_s=shown.seconds)

    base = dict(key=key, content_hash=digest, params_hash=p_digest, params=described, name=path.name,
                path=label, size_bytes=stat.st_size, model=model.spec, model_version=model.version,
                labels=tuple(model.labels))
    kept: AudioResult = None  # without an audio model, the soundtrack already stored stays
    kept_spec: str | None = None
    if audio_model is None and store.has_ad(key):
        try:
            kept, kept_spec = store.audio(key), store.ad(key).audio_model
        except CacheError:  # stored lanes that do not decode: not worth keeping
            log.warning("the stored soundtrack of %s is unreadable; it is dropped", path)
    try:
        scored = score_video(path, model, params, progress, audio_model=audio_model, debug=debug)
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
            audio=scored.soundtrack.result if scored.soundtrack is not None else kept,
            audio_model=spec if scored.soundtrack is not None else kept_spec if kept is not None else None,
            cover_idx=choose_cover(scored.looks, scored.face_px).index if scored.looks else None,
        ),
        scored.thumbnails,
    )
    store.record_file(label, status="ok", **file_facts)
    shown = _make_preview(store, path, digest, preview, debug)
    explained, problem = _explain(store, store.ad(key), path, model, explain, progress, debug, audio_model)
    note = f"{scored.decode_errors} damaged packets skipped" if scored.decode_errors else None
    sound = scored.soundtrack
    return FileOutcome(path, "indexed", ad_key=key, seconds=time.perf_counter() - start, frames=len(scored.times),
                       dominant_raw=summary.dominant_raw,
                       note=_join(problem, note, sound.note if sound else None, shown.note),
                       explained=explained, audio=sound.status if sound else None,
                       audio_error=sound.error if sound else None, preview=shown.status, preview_s=shown.seconds)


@dataclass(frozen=True)
class _Previewed:
    """What `_make_preview` did: FileOutcome.preview, the note for the summary, the time it took."""

    status: str | None = None
    note: str | None = None
    seconds: float = 0.0


def _make_preview(store: Store, path: Path, content: str, params: PreviewParams | None, debug: bool) -> _Previewed:
    """The browser proxy of `path` when browsers cannot play it and the cache does not hold one yet
    (encoded to a temporary file, then handed to `store.write_preview`). Never raises: a failure is a note."""
    if params is None:
        return _Previewed()
    start = time.perf_counter()
    try:
        if browser_playability(path).playable:
            return _Previewed("playable")
        if store.preview(content) is not None:
            return _Previewed("stored")
        with tempfile.TemporaryDirectory(prefix="emocore-preview-") as scratch:
            made = encode_preview(path, Path(scratch) / "preview.mp4", params)
            store.write_preview(content, made.path.read_bytes())
        note = "preview made without its sound (undecodable)" if made.audio_dropped else None
        return _Previewed("made", note, time.perf_counter() - start)
    except (EmocoreError, OSError) as exc:
        log.warning("the preview of %s failed: %s", path, exc)
        return _Previewed("failed", " ".join(f"preview failed: {exc}".split()), time.perf_counter() - start)
    except Exception as exc:  # a library failure on odd input: the ad must not pay for it
        if debug:
            raise
        log.warning("the preview of %s failed", path, exc_info=True)
        return _Previewed("failed", " ".join(f"preview failed: {type(exc).__name__}: {exc}".split()),
                          time.perf_counter() - start)



def _join(*notes: str | None) -> str | None:
    """Notes of one file joined into one line ("; "), None when there is none."""
    return "; ".join(n for n in notes if n) or None


def _explain(store: Store, ad: AdRow, path: Path, model: EmotionModel, params: ExplainParams | None,
             progress: IndexProgress, debug: bool, audio_model: AudioModel | None = None) -> tuple[int, str | None]:
    """Explain the ad's key frames that are missing; a failure here never fails the ad's scores.

    `audio_model` (None with `--no-audio`) is there for the soundtrack's key moments, explained after
    the faces' key frames."""
    if params is None or ad.status != "ok":
        return 0, None
    try:
        explained = explain_ad(store, ad, path, model, params, on_start=lambda n: progress.explain_started(path, n),
                               on_frame=progress.frame_explained)
        if audio_model is not None:  # the soundtrack's key moments (its peaks), after the faces' key frames
            explained += explain_audio_ad(store, ad, path, audio_model, params,
                                          on_start=lambda n: progress.explain_started(path, n),
                                          on_moment=progress.frame_explained)
        return explained, None
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
    audio: bool | AudioModel = True,
    engine: EngineParams | None = None,
    preview: PreviewParams | None = PreviewParams(),
) -> IndexReport:
    """Index every video under `folder` (or the one file `folder` names) into the cache at `cache`,
    and explain each ad's key frames with LIME and SHAP (`explain=None`: scores only).

    `audio`: read the soundtracks too (True: the audio model is loaded once for the run, when there
    are videos; or a loaded `AudioModel`); False (`--no-audio`): the audio model is never loaded and
    stored soundtracks are left as they are.

    `preview`: how the browser proxies of files browsers cannot play are made (None, `--no-preview`:
    none are; those already stored stay).

    PyTorch's thread count is the caller's choice (`torch.set_num_threads`): `cli.py index --threads`
    sets it (default 1: one thread beside the decoder was the fastest on 2 cores); the library
    leaves it as it is.

    `engine` (`emocore.engine.EngineParams`): `workers` > 1 spreads the videos (when there are several)
    over that many worker processes, `engine="ray"` over Ray tasks; each runs this module's
    `index_video` per video and this process alone writes the results, so the stored numbers equal
    the one-process run's.
    The model (and the soundtrack model) are then loaded in each worker, from `model`'s spec; a
    loaded `AudioModel` passed as `audio`, or a model loaded on a GPU (one process feeds the GPU), keeps
    the run in this process.
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
        on_gpu = not isinstance(model, str) and str(getattr(model, "device", "cpu")) != "cpu"
        spread = engine is not None and (engine.engine == "ray" or (engine.workers > 1 and len(videos) > 1))
        if spread and isinstance(audio, bool) and not on_gpu:
            outcomes = _index_in_workers(videos, store, model, params, engine, force=force, explain=explain,
                                         progress=progress, debug=debug, audio=audio, preview=preview)
            return IndexReport(tuple(outcomes), time.perf_counter() - start, Path(cache))
        owned = isinstance(model, str)
        active = load_model(model) if isinstance(model, str) else model
        sound: AudioModel | None = None
        try:
            if audio is True:
                from emocore.audio import yamnet  # by module, so a test can see whether it is loaded

                sound = yamnet.load_audio_model()
            elif audio is not False:
                sound = audio
            for path in videos:
                outcome = index_video(path, store, active, params, force=force, explain=explain,
                                      progress=progress, debug=debug, audio_model=sound, preview=preview)
                outcomes.append(outcome)
                progress.file_finished(outcome)
        finally:
            if owned:
                active.close()
            if audio is True and sound is not None:
                sound.close()
    return IndexReport(tuple(outcomes), time.perf_counter() - start, Path(cache))


def _no_audio_model() -> None:
    return None


def _index_in_workers(videos: list[Path], store: Store, model: EmotionModel | str, params: IndexParams,
                      engine: EngineParams, *, force: bool, explain: ExplainParams | None, progress: IndexProgress,
                      debug: bool, audio: bool, preview: PreviewParams | None = None) -> list[FileOutcome]:
    """`index_video` on every video in worker processes or Ray tasks; this process writes (emocore.engine)."""
    from emocore.audio import yamnet

    job = PerVideo(index_video, model if isinstance(model, str) else model.spec,
                   {"params": params, "force": force, "explain": explain, "debug": debug, "preview": preview},
                   {"audio_model": yamnet.load_audio_model if audio else _no_audio_model}, setup=engine.setup)
    if engine.engine == "ray":
        finished = run_ray(videos, store, job, address=engine.address, cpus=engine.workers, progress=progress)
    else:
        finished = run_workers(videos, store, job, workers=engine.workers, progress=progress)
    outcomes: dict[Path, FileOutcome] = {}
    for done in finished:
        outcome = done.outcome
        if outcome is None:
            outcome = FileOutcome(done.path, "failed", error=done.error)
        elif done.duplicate_of is not None:
            outcome = FileOutcome(done.path, "skipped", ad_key=outcome.ad_key, seconds=outcome.seconds,
                                  dominant_raw=outcome.dominant_raw, note=f"same content as {done.duplicate_of}")
        outcomes[done.path] = outcome
        progress.file_finished(outcome)
    return [outcomes[p] for p in videos if p in outcomes]


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

