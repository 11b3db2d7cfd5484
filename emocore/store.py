"""The cache: one SQLite file (WAL) plus a folder of thumbnails, the single source of truth.

Layout of a cache folder:

    emocore.sqlite                ads, frames, shots, per-emotion summaries, explanations, files seen,
                                  schema version
    thumbs/<ad key>/NNNNN.jpg     one small JPEG per sampled frame
    thumbs/<ad key>/key_NNNNN.jpg the full-size frame of each explained moment
    thumbs/<ad key>/cover.jpg     the ad's cover: a copy of the thumbnail of frame `ads.cover_idx`
                                  (emocore.preview.choose_cover: never a blank frame when there is another)
    previews/<content hash>.mp4   the browser proxy of a file browsers cannot play as it is (H.264/AAC,
                                  ≤ 720p: emocore.preview), one per file content, written atomically

Contract:
- Versioned: `meta.schema_version`; a cache from another emocore schema (older or newer) is
  refused with a one-line message, not misread or half-upgraded (version 2 added the ads'
  evidence columns `face_frames`/`face_seconds`, `dominant_raw`, and `figures`: a packed copy of
  the ad's `emotions` rows written in the same transaction, so the library and its norms are one
  query over `ads`, covered by an index (`LIBRARY_INDEX`); version 3 added the soundtrack: the
  `audio` table and the ads' `audio_*` columns, below).
- The soundtrack: per ad, `ads.audio_status` is NULL (not analysed: `index --no-audio`), 'ok'
  (lanes in the `audio` table, one row per ad holding the [seconds, AUDIO_SIGNALS] float32 matrix),
  'none' (the file has no audio track: no lanes, never zeros) or 'failed' (`audio_error` says why;
  the ad's faces stand). `audio_seconds` is the evidence (seconds with sound), `audio_figures` the
  per-signal figures packed like `figures` (rows in the order of `AUDIO_SIGNALS`), `audio_model`
  what made them (the audio model and the lane definitions: a change re-analyses the soundtrack).
  The soundtrack is written with the ad (`NewAd.audio`) or added to an ad later (`write_audio`),
  either way in one transaction.
- Atomic per ad: an ad's thumbnails are written to a temporary folder and renamed into place,
  then every row of the ad is written in one transaction. A crash (even kill -9) leaves either the
  old ad or the new one, never half of one; a thumbnail folder without rows is an orphan that the
  next write of that ad replaces.
- Readable while an index runs (WAL: readers see the last committed ads).
- Explanations are written one frame at a time (the frame's superpixels, the explained region and
  every method's weights and trust figures in one transaction), so an index interrupted while
  explaining keeps what it finished; rewriting an ad drops its explanations with it. A stored
  explanation that does not decode is reported and counts as missing, so it is recomputed.
- Soundtrack explanations (`audio_explanations`, one row per explained second and explain hash,
  written in one transaction): the region grid, the window's log-mel as 256 grey levels (a PNG,
  with the log-mel values of levels 0 and 255), the waveform as a min/max envelope (float16, for
  drawing: not the samples), and every (signal, method)'s weights and trust figures. Rewriting the
  ad (`write_ad`) or replacing its soundtrack (`write_audio`) drops them; one that does not decode
  is a CorruptExplanation, counted as missing and recomputed.
- By column name: every INSERT names its columns (rows are dicts keyed by column, `_insert`) and
  every read turns rows into dicts by column name (`Store._select`), so no value depends on a
  table's column order. Typed records come out: `AdRow` (with `index_params`, the `IndexParams` the
  ad was made with), `Timeline`, `EmotionSummary`, `ExplainedFrame`, `FrameExplanation` (with
  `StoredAttribution.trust`, the `TrustFigures`), `StoredAudioExplanation`, `ExplainedSecond`, `FileRow`.
- Keyed by content: an ad's key is the hash of the file's bytes plus the hash of everything that
  changes the output (model name and version, sampling, smoothing, shot parameters, schema), so the
  same video under two names is one ad, and changing a parameter makes a new key.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast

import cv2
import numpy as np

from emocore.audio.decode import AudioFailed, NoAudio
from emocore.audio.lanes import AUDIO_SIGNALS, CUE_NAMES, LANE_NAMES, AudioLanes, AudioSource, summarise_lanes
from emocore.errors import AdNotFound, CacheError, CorruptExplanation
from emocore.files import clean_temporaries, replace_dir, write_bytes
from emocore.params import IndexParams
from emocore.scoring import EmotionSummary
from emocore.trust import TrustFigures

SCHEMA_VERSION = 3
DB_NAME = "emocore.sqlite"
THUMBS = "thumbs"
PREVIEWS = "previews"
#: The file name of an ad's cover in its thumbnail folder.
COVER = "cover.jpg"

#: The covering index of the library's and the norms' one query (`norms.read_table`: newest first, the
#: columns a library table holds for every ad, the packed figures), so reading 100,000 ads scans this
#: index instead of the wide rows and never looks a row up. It replaced `ads_library` (which lacked the
#: duration, the face coverage, the name and the path) within schema version 3: a writable `Store`
#: creates it in a cache that lacks it and drops the old one (`LIBRARY_INDEX_UPGRADE`); a read-only one
#: reads such a cache as it is (the same rows, by a slower plan).
LIBRARY_INDEX = "ads_browse"
LIBRARY_INDEX_COLUMNS = ("indexed_at DESC", "key", "status", "face_frames", "face_seconds", "duration_s",
                         "face_coverage", "audio_status", "audio_seconds", "labels", "name", "path", "figures",
                         "audio_figures")
_LIBRARY_INDEX_SQL = (f"CREATE INDEX IF NOT EXISTS {LIBRARY_INDEX} ON ads ({', '.join(LIBRARY_INDEX_COLUMNS)});")
#: What a writable `Store` runs on a schema-3 cache written before `ads_browse` (a no-op once it exists).
LIBRARY_INDEX_UPGRADE = f"{_LIBRARY_INDEX_SQL}\nDROP INDEX IF EXISTS ads_library;"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ads (
    key TEXT PRIMARY KEY,
    content_hash TEXT NOT NULL,
    params_hash TEXT NOT NULL,
    params TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    size_bytes INTEGER,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    labels TEXT NOT NULL,
    duration_s REAL, fps REAL, width INTEGER, height INTEGER, rotation INTEGER,
    codec TEXT, has_audio INTEGER,
    frames INTEGER NOT NULL DEFAULT 0,
    face_coverage REAL,
    face_frames INTEGER NOT NULL DEFAULT 0,
    face_seconds REAL NOT NULL DEFAULT 0,
    dominant_raw TEXT,
    figures BLOB,
    decode_errors INTEGER NOT NULL DEFAULT 0,
    indexed_at REAL NOT NULL,
    elapsed_s REAL,
    audio_status TEXT CHECK (audio_status IN ('ok', 'none', 'failed')),
    audio_error TEXT,
    audio_seconds REAL NOT NULL DEFAULT 0,
    audio_figures BLOB,
    audio_model TEXT,
    cover_idx INTEGER
);
CREATE INDEX IF NOT EXISTS ads_content ON ads (content_hash);
CREATE INDEX IF NOT EXISTS ads_name ON ads (name);
-- covers the ad search (queries.search_ads: name, path, key prefix; case-insensitive name prefix via NOCASE),
-- a scan of this narrow index instead of the wide rows
CREATE INDEX IF NOT EXISTS ads_search ON ads (name COLLATE NOCASE, path, key, status, indexed_at);
""" + _LIBRARY_INDEX_SQL + """
CREATE TABLE IF NOT EXISTS frames (
    ad_key TEXT NOT NULL,
    idx INTEGER NOT NULL,
    time_s REAL NOT NULL,
    faces INTEGER,
    box TEXT,
    raw TEXT NOT NULL,
    smoothed TEXT NOT NULL,
    face_px REAL,
    PRIMARY KEY (ad_key, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shots (
    ad_key TEXT NOT NULL,
    idx INTEGER NOT NULL,
    start_s REAL NOT NULL,
    PRIMARY KEY (ad_key, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS emotions (
    ad_key TEXT NOT NULL,
    emotion TEXT NOT NULL,
    mean REAL, peak REAL, peak_time_s REAL,
    share_above REAL NOT NULL,
    variance REAL,
    PRIMARY KEY (ad_key, emotion)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS emotions_rank ON emotions (emotion, mean);
CREATE TABLE IF NOT EXISTS explained_frames (
    ad_key TEXT NOT NULL,
    frame_idx INTEGER NOT NULL,
    explain_hash TEXT NOT NULL,
    time_s REAL NOT NULL,
    region TEXT NOT NULL,
    segments BLOB NOT NULL,
    image BLOB NOT NULL,
    params TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (ad_key, frame_idx, explain_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS explanations (
    ad_key TEXT NOT NULL,
    frame_idx INTEGER NOT NULL,
    explain_hash TEXT NOT NULL,
    emotion TEXT NOT NULL,
    method TEXT NOT NULL,
    weights TEXT NOT NULL,
    figures TEXT NOT NULL,
    PRIMARY KEY (ad_key, frame_idx, explain_hash, emotion, method)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audio (
    ad_key TEXT PRIMARY KEY,
    signals TEXT NOT NULL,
    seconds INTEGER NOT NULL,
    matrix BLOB NOT NULL,
    patch_centers BLOB NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audio_explanations (
    ad_key TEXT NOT NULL,
    second INTEGER NOT NULL,
    explain_hash TEXT NOT NULL,
    signals TEXT NOT NULL,
    patches TEXT NOT NULL,
    start_s REAL NOT NULL,
    grid TEXT NOT NULL,
    spectrogram BLOB NOT NULL,
    level_floor REAL NOT NULL,
    level_top REAL NOT NULL,
    waveform BLOB NOT NULL,
    waveform_start_s REAL NOT NULL,
    waveform_end_s REAL NOT NULL,
    loudness_dbfs REAL,
    attributions TEXT NOT NULL,
    params TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (ad_key, second, explain_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    size_bytes INTEGER,
    mtime_ns INTEGER,
    content_hash TEXT,
    ad_key TEXT,
    status TEXT NOT NULL,
    error TEXT,
    seen_at REAL NOT NULL
);
"""


def thumbnail_path(root: Path | str, key: str, index: int) -> Path:
    """Where a sampled frame's thumbnail lives in a cache folder."""
    return Path(root) / THUMBS / key / f"{index:05d}.jpg"


def key_frame_path(root: Path | str, key: str, index: int) -> Path:
    """Where an explained frame's full-size picture lives in a cache folder."""
    return Path(root) / THUMBS / key / f"key_{index:05d}.jpg"


def cover_path(root: Path | str, key: str) -> Path:
    """Where an ad's cover (a copy of its chosen frame's thumbnail) lives in a cache folder."""
    return Path(root) / THUMBS / key / COVER


def preview_path(root: Path | str, content_hash: str) -> Path:
    """Where the browser proxy of a file's content lives in a cache folder (whether or not it exists)."""
    return Path(root) / PREVIEWS / f"{content_hash}.mp4"


def _insert(table: str, columns: Sequence[str], *, replace: bool = False) -> str:
    """An INSERT with its column list and one named placeholder per column: rows are dicts keyed by
    column name, so a value can never land in another column."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"


#: The columns each table is written with (every INSERT names them; rows are dicts keyed by them).
FRAME_COLUMNS = ("ad_key", "idx", "time_s", "faces", "box", "raw", "smoothed", "face_px")
SHOT_COLUMNS = ("ad_key", "idx", "start_s")
EMOTION_COLUMNS = ("ad_key", "emotion", "mean", "peak", "peak_time_s", "share_above", "variance")
EXPLAINED_FRAME_COLUMNS = ("ad_key", "frame_idx", "explain_hash", "time_s", "region", "segments", "image", "params",
                           "created_at")
EXPLANATION_COLUMNS = ("ad_key", "frame_idx", "explain_hash", "emotion", "method", "weights", "figures")
AUDIO_COLUMNS = ("ad_key", "signals", "seconds", "matrix", "patch_centers", "source")
AUDIO_EXPLANATION_COLUMNS = ("ad_key", "second", "explain_hash", "signals", "patches", "start_s", "grid", "spectrogram",
                             "level_floor", "level_top", "waveform", "waveform_start_s", "waveform_end_s",
                             "loudness_dbfs", "attributions", "params", "created_at")
#: The soundtrack's columns of `ads` (`write_ad` fills them with the rest, `write_audio` alone).
ADS_AUDIO_COLUMNS = ("audio_status", "audio_error", "audio_seconds", "audio_figures", "audio_model")
FILE_COLUMNS = ("path", "size_bytes", "mtime_ns", "content_hash", "ad_key", "status", "error", "seen_at")

#: The columns of `ads` that `write_ad` fills, in the order of `ads_row`.
ADS_INSERT_COLUMNS = (
    "key", "content_hash", "params_hash", "params", "name", "path", "size_bytes", "status", "error", "model",
    "model_version", "labels", "duration_s", "fps", "width", "height", "rotation", "codec", "has_audio", "frames",
    "face_coverage", "face_frames", "face_seconds", "dominant_raw", "figures", "decode_errors", "indexed_at",
    "elapsed_s", *ADS_AUDIO_COLUMNS, "cover_idx",
)

#: The per-emotion figures packed in `ads.figures`, in this order (float64, NaN for none).
FIGURE_FIELDS = ("mean", "variance", "peak", "peak_time_s", "share_above")


def pack_figures(labels: Sequence[str], emotions: Sequence[EmotionSummary]) -> bytes | None:
    """An ad's per-emotion figures as one (len(labels), len(FIGURE_FIELDS)) float64 array's bytes,
    rows in the order of `labels`: a copy of its `emotions` rows, written in the same transaction,
    so the library and its norms are read from the `ads` table alone (one query, no join)."""
    if not emotions:
        return None
    by_emotion = {e.emotion: e for e in emotions}
    packed = np.full((len(labels), len(FIGURE_FIELDS)), np.nan)
    for i, label in enumerate(labels):
        e = by_emotion.get(label)
        if e is not None:
            packed[i] = [np.nan if getattr(e, f) is None else float(getattr(e, f)) for f in FIGURE_FIELDS]
    return packed.tobytes()


def unpack_figures(blobs: Sequence[bytes | None], width: int) -> np.ndarray:
    """(len(blobs), width, len(FIGURE_FIELDS)) from `ads.figures` values (NaN where a blob is missing): a
    read-only view of their joined bytes (the library's 100,000 blobs are copied once)."""
    size = width * len(FIGURE_FIELDS) * 8
    missing = np.full(width * len(FIGURE_FIELDS), np.nan).tobytes()
    joined = b"".join([b if b is not None and len(b) == size else missing for b in blobs])
    return np.frombuffer(joined, dtype=np.float64).reshape(len(blobs), width, len(FIGURE_FIELDS))


#: What an ad's soundtrack is, as the store keeps it: lanes, no audio track, a failure, or None
#: (not analysed).
AudioResult = AudioLanes | NoAudio | AudioFailed | None


def audio_values(audio: AudioResult, model: str | None) -> dict[str, object]:
    """The `ads` columns of a soundtrack (ADS_AUDIO_COLUMNS)."""
    if audio is None:
        return {"audio_status": None, "audio_error": None, "audio_seconds": 0.0, "audio_figures": None,
                "audio_model": None}
    if isinstance(audio, (NoAudio, AudioFailed)):
        return {"audio_status": "none" if isinstance(audio, NoAudio) else "failed",
                "audio_error": " ".join(audio.reason.split()), "audio_seconds": 0.0, "audio_figures": None,
                "audio_model": model}
    return {"audio_status": "ok", "audio_error": None, "audio_seconds": float(audio.sound_seconds),
            "audio_figures": pack_figures(AUDIO_SIGNALS, summarise_lanes(audio)), "audio_model": model}


def _audio_row(key: str, lanes: AudioLanes) -> dict[str, object]:
    return {"ad_key": key, "signals": json.dumps(list(AUDIO_SIGNALS)), "seconds": lanes.seconds,
            "matrix": lanes.matrix().tobytes(), "patch_centers": np.asarray(lanes.patch_centers_s, np.float64).tobytes(),
            "source": json.dumps(asdict(lanes.source), sort_keys=True)}


def ads_values(ad: "NewAd", indexed_at: float) -> dict[str, object]:
    """One ad's `ads` row, keyed by column (the keys are ADS_INSERT_COLUMNS)."""
    info = ad.info
    return {
        "key": ad.key, "content_hash": ad.content_hash, "params_hash": ad.params_hash,
        "params": json.dumps(ad.params, sort_keys=True), "name": ad.name, "path": ad.path,
        "size_bytes": ad.size_bytes, "status": ad.status, "error": ad.error, "model": ad.model,
        "model_version": ad.model_version, "labels": json.dumps(list(ad.labels)),
        "duration_s": info.get("duration_s"), "fps": info.get("fps"), "width": info.get("width"),
        "height": info.get("height"), "rotation": info.get("rotation"), "codec": info.get("codec"),
        "has_audio": None if info.get("has_audio") is None else int(bool(info["has_audio"])),
        "frames": 0 if ad.timeline is None else len(ad.timeline.times), "face_coverage": ad.face_coverage,
        "face_frames": ad.face_frames, "face_seconds": ad.face_seconds, "dominant_raw": ad.dominant_raw,
        "figures": pack_figures(ad.labels, ad.emotions), "decode_errors": ad.decode_errors,
        "indexed_at": indexed_at, "elapsed_s": ad.elapsed_s, **audio_values(ad.audio, ad.audio_model),
        "cover_idx": ad.cover_idx,
    }


def ads_row(ad: "NewAd", indexed_at: float) -> tuple:
    """The values of one ad's `ads` row, in the order of ADS_INSERT_COLUMNS (for batched writers)."""
    values = ads_values(ad, indexed_at)
    return tuple(values[c] for c in ADS_INSERT_COLUMNS)


def _json_floats(values: Sequence[float] | np.ndarray) -> str:
    """JSON list with NaN as null (SQLite's JSON functions reject NaN)."""
    return json.dumps([None if v is None or math.isnan(v) else round(float(v), 6) for v in values])


def _face_px(values: np.ndarray, i: int) -> float | None:
    """Frame i's scored face size for the `face_px` column: NULL when unknown or no face."""
    if i >= len(values) or math.isnan(values[i]):
        return None
    return round(float(values[i]), 2)


def _floats(text: str | None) -> list[float]:
    return [math.nan if v is None else v for v in json.loads(text or "[]")]


@dataclass(frozen=True)
class AdRow:
    """One ad as listed: identity, status and summary figures (no per-frame data)."""

    key: str
    name: str
    path: str
    status: str
    error: str | None
    model: str
    model_version: str
    labels: tuple[str, ...]
    duration_s: float | None
    fps: float | None
    width: int | None
    height: int | None
    rotation: int | None
    has_audio: bool | None
    frames: int
    face_coverage: float | None
    dominant_raw: str | None
    """The emotion with the highest raw mean (no norms: the model's bias included). The
    evidence-aware dominant depends on the library: `queries.library` / `queries.ad_norms`."""
    decode_errors: int
    indexed_at: float
    elapsed_s: float | None
    content_hash: str
    params: dict[str, object]
    face_frames: int = 0
    """Sampled frames with a scored face (whole-frame models: every scored frame): the evidence."""
    face_seconds: float = 0.0
    """`face_frames` divided by the sample rate."""
    audio_status: str | None = None
    """'ok' (lanes stored), 'none' (no audio track), 'failed' (`audio_error` says why) or None (not analysed)."""
    audio_error: str | None = None
    """Why there are no lanes ('none': "no audio track"; 'failed': the one-line reason)."""
    audio_seconds: float = 0.0
    """Seconds of the soundtrack with sound: the evidence behind its per-ad figures."""
    audio_model: str | None = None
    """What read the soundtrack (`emocore.indexer.audio_spec`); None when not analysed."""
    cover_idx: int | None = None
    """The sampled frame the ad is shown by (`cover_path`; `emocore.preview.choose_cover`); None: not
    chosen (a failed ad), the first frame stands in."""

    @property
    def dominant(self) -> str | None:
        """Same as `dominant_raw` (the raw argmax), kept for older callers."""
        return self.dominant_raw

    @property
    def index_params(self) -> IndexParams:
        """The parameters the ad was indexed with (sampling, smoothing, threshold, peaks, shots), read
        back from `params["index"]` (`IndexParams.from_dict`: fields it lacks take their defaults; an
        unknown key or a mistyped value is a ParamsError)."""
        stored = self.params.get("index", {}) if isinstance(self.params, dict) else {}
        return IndexParams.from_dict(cast("Mapping[str, object]", stored))  # from_dict checks it is one


@dataclass(frozen=True)
class Timeline:
    """An ad's per-frame data: times, raw and smoothed probabilities (N, L), faces, boxes, shots."""

    times: np.ndarray
    raw: np.ndarray
    smoothed: np.ndarray
    faces: np.ndarray
    """(N,) faces per frame that passed the model's rules (the face model: its minimum face size);
    -1 where the model does not look for faces."""
    boxes: tuple[tuple[float, ...] | None, ...]
    """Per frame the scored face (x1, y1, x2, y2, confidence) in thumbnail-independent frame pixels."""
    shots: tuple[float, ...]
    face_px: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(N,) float64: the scored face's size (shorter side of its box) in original-frame pixels; NaN
    where no face was scored. Empty when the writer did not give it (stored as NULL)."""


@dataclass(frozen=True)
class NewAd:
    """Everything written for one indexed (or failed) ad, in one transaction."""

    key: str
    content_hash: str
    params_hash: str
    params: dict[str, object]
    name: str
    path: str
    size_bytes: int
    model: str
    model_version: str
    labels: tuple[str, ...]
    status: str = "ok"
    error: str | None = None
    info: dict[str, object] = field(default_factory=dict)
    """duration_s, fps, width, height, rotation, codec, has_audio."""
    timeline: Timeline | None = None
    emotions: tuple[EmotionSummary, ...] = ()
    face_coverage: float | None = None
    dominant_raw: str | None = None
    decode_errors: int = 0
    elapsed_s: float | None = None
    face_frames: int = 0
    face_seconds: float = 0.0
    audio: AudioResult = None
    """The soundtrack: lanes, `NoAudio`, `AudioFailed`, or None (not analysed)."""
    audio_model: str | None = None
    """What read the soundtrack (the audio model and the lane definitions), when `audio` is not None."""
    cover_idx: int | None = None
    """The sampled frame the ad is shown by; its thumbnail is copied to the cover (`cover_path`)."""


@dataclass(frozen=True)
class StoredAttribution:
    emotion: str
    method: str
    weights: np.ndarray
    """(K,) one weight per segment."""
    figures: dict[str, object]
    """The trust figures as `emocore.trust.TrustFigures.to_dict()` stores them; `trust` reads them."""

    @property
    def trust(self) -> TrustFigures:
        """The trust figures as their typed record (format them with `emocore.trust.describe`)."""
        return TrustFigures.from_dict(self.figures)


@dataclass(frozen=True)
class FrameExplanation:
    """The explanations of one frame: its superpixels, the region they cover, each method's weights."""

    ad_key: str
    frame_idx: int
    time_s: float
    explain_hash: str
    region: tuple[int, int, int, int]
    """Where `image` lies in the frame (left, top, right, bottom; may pass the frame's edges)."""
    segments: np.ndarray
    image: np.ndarray
    """The explained region as the explainers saw it (RGB uint8)."""
    params: dict[str, object]
    attributions: tuple[StoredAttribution, ...]

    def attribution(self, emotion: str, method: str) -> StoredAttribution | None:
        return next((a for a in self.attributions if a.emotion == emotion and a.method == method), None)


@dataclass(frozen=True)
class StoredAudioExplanation:
    """One explained soundtrack second as the cache keeps it (`Store.audio_explanation`): the grid of
    regions, what a figure draws of the window, and every method's weights and trust figures.
    `emocore.audio.render.audio_explanation_figure` draws it exactly as it draws the fresh
    `emocore.audio.explain.AudioExplanation` it was stored from (same PNG bytes): the figure draws
    the spectrogram at these 256 grey levels and the waveform from this envelope either way."""

    ad_key: str
    second: int
    """The explained second [second, second + 1) of the file's timeline."""
    explain_hash: str
    patches: tuple[int, ...]
    """The YAMNet patches whose largest value is the second's lane value."""
    start_s: float
    """Where the window starts on the file's timeline (seconds)."""
    frame_edges: np.ndarray
    """[time_slices + 1] frame indices (10 ms) where each time slice of the grid starts (the last: the window's end)."""
    band_edges: np.ndarray
    """[mel_bands + 1] mel-band indices (0…64) where each group of bands starts."""
    time_edges_s: np.ndarray
    """[time_slices + 1] the slices' edges on the file's timeline, seconds."""
    band_hz: np.ndarray
    """[mel_bands, 2] centre frequencies (Hz) of the lowest and highest mel band of each group."""
    levels: np.ndarray
    """[frames, 64] uint8: each log-mel cell's grey level, 0 = `level_range[0]`, 255 = `level_range[1]`."""
    level_range: tuple[float, float]
    """The log-mel values of levels 0 (the log offset's floor: silence) and 255 (the window's maximum)."""
    envelope: np.ndarray
    """[columns, 2] float16: the waveform's min and max in each of `columns` equal spans of the window
    (a downsampled waveform for drawing: the samples themselves are not kept)."""
    waveform_start_s: float
    waveform_end_s: float
    loudness_dbfs: float | None
    """The second's RMS level (dBFS), held fixed in the cues."""
    params: dict[str, object]
    """The `AudioExplainParams` (as a dict) and the audio model that made it."""
    attributions: tuple[StoredAttribution, ...]
    """Per (signal, method): `emotion` is the signal; weights (time_slices × mel_bands,) slice-major."""

    @property
    def time_slices(self) -> int:
        return int(self.frame_edges.size - 1)

    @property
    def mel_bands(self) -> int:
        return int(self.band_edges.size - 1)

    @property
    def end_s(self) -> float:
        return float(self.time_edges_s[-1])

    @property
    def signals(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.emotion for a in self.attributions))

    @property
    def space(self) -> str:
        """What the weights and scores are on: "log-odds" (the default) or "probability"."""
        return str(self.params.get("space", "log-odds"))

    @property
    def spectrogram(self) -> np.ndarray:
        """[frames, 64] float32 log-mel at the stored resolution ((top − floor) / 255 per level)."""
        low, high = self.level_range
        return (low + self.levels.astype(np.float64) * ((high - low) / 255.0)).astype(np.float32)

    def attribution(self, signal: str, method: str) -> StoredAttribution | None:
        return next((a for a in self.attributions if a.emotion == signal and a.method == method), None)

    def weights(self, signal: str, method: str) -> np.ndarray | None:
        """[time_slices, mel_bands] weights of one method for one signal (None when not stored)."""
        found = self.attribution(signal, method)
        return None if found is None else found.weights.reshape(self.time_slices, self.mel_bands)


@dataclass(frozen=True)
class ExplainedSecond:
    """One explained second of an ad's soundtrack, as `Store.audio_explained_seconds` lists them."""

    second: int
    explain_hash: str
    signals: tuple[str, ...]
    """The lanes and cues explained there."""
    created_at: float


def _png(array: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", array)
    if not ok:
        raise ValueError("could not encode PNG")
    return data.tobytes()


def _unpng(data: bytes, flags: int) -> np.ndarray:
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if array is None:
        raise ValueError("undecodable PNG")
    return array


class ExplainedFrame(NamedTuple):
    """One explained frame of an ad, as `Store.explained_frames` lists them."""

    frame_idx: int
    time_s: float
    explain_hash: str


@dataclass(frozen=True)
class DiskUsage:
    """What a cache takes on disk, in bytes (`Store.disk_usage`)."""

    database: int
    """The SQLite database and its WAL."""
    thumbnails: int
    """Thumbnails, covers and key frames."""
    previews: int
    """Browser proxies of the files browsers cannot play."""
    preview_files: int = 0

    @property
    def total(self) -> int:
        return self.database + self.thumbnails + self.previews


@dataclass(frozen=True)
class FileRow:
    path: str
    size_bytes: int | None
    mtime_ns: int | None
    content_hash: str | None
    ad_key: str | None
    status: str
    error: str | None


class Store:
    """A cache folder. `Store(root)` creates it if needed; `Store(root, readonly=True)` only reads."""

    def __init__(self, root: Path | str, readonly: bool = False) -> None:
        self.root = Path(root)
        self.readonly = readonly
        self.db_path = self.root / DB_NAME
        if readonly:
            if not self.db_path.is_file():
                raise CacheError(f"no cache at {self.root} (run `python cli.py index FOLDER` first)")
            uri = f"file:{self.db_path.resolve()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        else:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.db_path, timeout=30, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
            except (OSError, sqlite3.Error) as exc:
                raise CacheError(f"cannot open the cache at {self.root}: {exc}") from exc
        self._db.execute("PRAGMA busy_timeout=30000")
        self._check_schema()
        if not readonly:
            self._clean_temporaries()

    # -- life cycle ---------------------------------------------------------------------------

    def _check_schema(self) -> None:
        try:
            # an existing cache's version is read before anything is created in it, so an older
            # layout is refused as such instead of half-upgraded
            has_meta = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is not None
            row = (self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                   if has_meta else None)
            if row is None and not self.readonly:
                with self._db:
                    self._db.executescript(_SCHEMA)
                    self._db.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                    )
                row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"{self.db_path} is not an emocore cache ({exc})") from exc
        version = int(row[0]) if row else 0
        if version != SCHEMA_VERSION:
            raise CacheError(
                f"{self.db_path} has schema version {version}; this emocore reads version "
                f"{SCHEMA_VERSION} (index into a new --cache folder)"
            )
        if not self.readonly:
            self._upgrade_indexes()

    def _upgrade_indexes(self) -> None:
        """Create the library's covering index in a cache written before it (seconds at 100,000 ads, once)."""
        has = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?",
                               (LIBRARY_INDEX,)).fetchone()
        if has is None:
            try:
                with self._db:
                    self._db.executescript(f"BEGIN IMMEDIATE;\n{LIBRARY_INDEX_UPGRADE}\nCOMMIT;")
            except sqlite3.Error as exc:
                raise CacheError(f"cannot add the library index to the cache at {self.root}: {exc}") from exc

    def _clean_temporaries(self) -> None:
        clean_temporaries(self.root / THUMBS)
        clean_temporaries(self.root / PREVIEWS)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection, for read-only queries (e.g. pandas.read_sql_query). Write through methods."""
        return self._db

    # -- writing ------------------------------------------------------------------------------

    def thumbs_dir(self, key: str) -> Path:
        return self.root / THUMBS / key

    def write_ad(self, ad: NewAd, thumbnails: dict[int, bytes] | None = None) -> None:
        """Write one ad atomically, replacing any earlier version under the same key."""
        if thumbnails:
            self._write_thumbnails(ad.key, thumbnails, ad.cover_idx)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for table, column in (("frames", "ad_key"), ("shots", "ad_key"), ("emotions", "ad_key"),
                                  ("explained_frames", "ad_key"), ("explanations", "ad_key"), ("audio", "ad_key"),
                                  ("audio_explanations", "ad_key"), ("ads", "key")):
                self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (ad.key,))
            self._db.execute(_insert("ads", ADS_INSERT_COLUMNS), ads_values(ad, time.time()))
            if isinstance(ad.audio, AudioLanes):
                self._db.execute(_insert("audio", AUDIO_COLUMNS), _audio_row(ad.key, ad.audio))
            if ad.timeline is not None:
                tl = ad.timeline
                self._db.executemany(_insert("frames", FRAME_COLUMNS), (
                    # boxes at full precision: the explainer crops where the indexer cropped
                    {"ad_key": ad.key, "idx": i, "time_s": float(tl.times[i]), "faces": int(tl.faces[i]),
                     "box": None if tl.boxes[i] is None else json.dumps([float(v) for v in tl.boxes[i]]),
                     "raw": _json_floats(tl.raw[i]), "smoothed": _json_floats(tl.smoothed[i]),
                     "face_px": _face_px(tl.face_px, i)}
                    for i in range(len(tl.times))
                ))
                self._db.executemany(_insert("shots", SHOT_COLUMNS),
                                     ({"ad_key": ad.key, "idx": i, "start_s": t} for i, t in enumerate(tl.shots)))
            self._db.executemany(_insert("emotions", EMOTION_COLUMNS), (
                {"ad_key": ad.key, "emotion": e.emotion, "mean": e.mean, "peak": e.peak, "peak_time_s": e.peak_time_s,
                 "share_above": e.share_above, "variance": e.variance}
                for e in ad.emotions
            ))

    def write_audio(self, key: str, audio: AudioResult, model: str | None) -> None:
        """Set (or replace) the soundtrack of an ad already in the cache, in one transaction; its faces
        and their explanations are untouched, the explanations of its old soundtrack dropped. AdNotFound
        if the cache holds no ad `key`."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            values = audio_values(audio, model)
            updated = self._db.execute(
                f"UPDATE ads SET {', '.join(f'{c} = :{c}' for c in ADS_AUDIO_COLUMNS)} WHERE key = :key",
                {**values, "key": key}).rowcount
            if not updated:
                raise AdNotFound(f"no ad {key} in {self.root}")
            self._db.execute("DELETE FROM audio WHERE ad_key = ?", (key,))
            self._db.execute("DELETE FROM audio_explanations WHERE ad_key = ?", (key,))  # they explained the old one
            if isinstance(audio, AudioLanes):
                self._db.execute(_insert("audio", AUDIO_COLUMNS), _audio_row(key, audio))

    def _write_thumbnails(self, key: str, thumbnails: dict[int, bytes], cover: int | None = None) -> None:
        with replace_dir(self.thumbs_dir(key)) as folder:  # the ad's thumbnails appear all at once
            for index, data in thumbnails.items():
                (folder / thumbnail_path(self.root, key, index).name).write_bytes(data)
            if cover is not None and cover in thumbnails:
                (folder / COVER).write_bytes(thumbnails[cover])

    def write_preview(self, content_hash: str, data: bytes) -> Path:
        """Store the browser proxy (MP4 bytes) of a file's content, atomically (a temporary file renamed
        into place: readers see no proxy or the whole one); returns its path."""
        return write_bytes(preview_path(self.root, content_hash), data)

    def preview(self, content_hash: str) -> Path | None:
        """The stored browser proxy of a file's content, or None when there is none."""
        path = preview_path(self.root, content_hash)
        return path if path.is_file() else None

    def cover(self, key: str) -> Path | None:
        """The ad's cover thumbnail, or None (a failed ad, or one written without a cover)."""
        path = cover_path(self.root, key)
        return path if path.is_file() else None

    def disk_usage(self) -> "DiskUsage":
        """Bytes the cache takes on disk, by part (the database with its WAL, thumbnails, previews)."""
        def tree(folder: Path) -> int:
            return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0

        database = sum(p.stat().st_size for p in self.root.glob(f"{DB_NAME}*") if p.is_file())
        return DiskUsage(database=database, thumbnails=tree(self.root / THUMBS), previews=tree(self.root / PREVIEWS),
                         preview_files=sum(1 for _ in (self.root / PREVIEWS).glob("*.mp4")))

    def write_explanation(self, frame: FrameExplanation, key_frame_jpeg: bytes | None = None) -> None:
        """Write one frame's explanations atomically (replacing earlier ones with the same hash)."""
        if key_frame_jpeg is not None:
            write_bytes(self.key_frame_path(frame.ad_key, frame.frame_idx), key_frame_jpeg)
        where = {"ad_key": frame.ad_key, "frame_idx": frame.frame_idx, "explain_hash": frame.explain_hash}
        segments = frame.segments.astype(np.uint8 if frame.segments.max() < 256 else np.uint16)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for table in ("explained_frames", "explanations"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE ad_key = :ad_key AND frame_idx = :frame_idx "
                    "AND explain_hash = :explain_hash", where
                )
            self._db.execute(_insert("explained_frames", EXPLAINED_FRAME_COLUMNS), {
                **where, "time_s": frame.time_s, "region": json.dumps(list(frame.region)), "segments": _png(segments),
                "image": _png(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)),
                "params": json.dumps(frame.params, sort_keys=True), "created_at": time.time(),
            })
            self._db.executemany(_insert("explanations", EXPLANATION_COLUMNS), (
                {**where, "emotion": a.emotion, "method": a.method, "weights": _json_floats(a.weights),
                 "figures": json.dumps(a.figures)}
                for a in frame.attributions
            ))

    def key_frame_path(self, key: str, index: int) -> Path:
        return key_frame_path(self.root, key, index)

    def write_audio_explanation(self, found: StoredAudioExplanation) -> None:
        """Write one explained soundtrack second in one transaction (replacing the one with the same hash)."""
        where = {"ad_key": found.ad_key, "second": int(found.second), "explain_hash": found.explain_hash}
        grid = {"frame_edges": [int(v) for v in found.frame_edges], "band_edges": [int(v) for v in found.band_edges],
                "time_edges_s": [float(v) for v in found.time_edges_s],
                "band_hz": [[float(v) for v in pair] for pair in found.band_hz]}
        attributions = [{"signal": a.emotion, "method": a.method, "weights": [float(v) for v in a.weights],
                         "figures": a.figures} for a in found.attributions]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM audio_explanations WHERE ad_key = :ad_key AND second = :second "
                             "AND explain_hash = :explain_hash", where)
            self._db.execute(_insert("audio_explanations", AUDIO_EXPLANATION_COLUMNS), {
                **where, "signals": json.dumps(list(found.signals)), "patches": json.dumps(list(found.patches)),
                "start_s": float(found.start_s), "grid": json.dumps(grid),
                "spectrogram": _png(np.ascontiguousarray(found.levels, np.uint8)),
                "level_floor": float(found.level_range[0]), "level_top": float(found.level_range[1]),
                "waveform": np.ascontiguousarray(found.envelope, np.float16).tobytes(),
                "waveform_start_s": float(found.waveform_start_s), "waveform_end_s": float(found.waveform_end_s),
                "loudness_dbfs": None if found.loudness_dbfs is None or math.isnan(found.loudness_dbfs)
                else float(found.loudness_dbfs),
                "attributions": json.dumps(attributions), "params": json.dumps(found.params, sort_keys=True),
                "created_at": time.time(),
            })

    def record_file(
        self,
        path: str,
        *,
        status: str,
        size_bytes: int | None = None,
        mtime_ns: int | None = None,
        content_hash: str | None = None,
        ad_key: str | None = None,
        error: str | None = None,
    ) -> None:
        """Remember what became of one file path in the last run that saw it."""
        with self._db:
            self._db.execute(_insert("files", FILE_COLUMNS, replace=True), {
                "path": path, "size_bytes": size_bytes, "mtime_ns": mtime_ns, "content_hash": content_hash,
                "ad_key": ad_key, "status": status, "error": error, "seen_at": time.time(),
            })

    # -- reading ------------------------------------------------------------------------------

    def _select(self, columns: Sequence[str], rest: str, args: Sequence[object] = ()) -> list[dict[str, Any]]:
        """`SELECT columns rest` with its rows as dicts keyed by column name."""
        cursor = self._db.execute(f"SELECT {', '.join(columns)} {rest}", tuple(args))
        return [dict(zip(columns, row)) for row in cursor]

    def _select_columns(self, columns: Sequence[str], rest: str, args: Sequence[object] = ()) -> dict[str, tuple]:
        """`SELECT columns rest` column-wise: each column name → its values, one per row (for long reads)."""
        rows = self._db.execute(f"SELECT {', '.join(columns)} {rest}", tuple(args)).fetchall()
        return dict(zip(columns, zip(*rows))) if rows else {c: () for c in columns}

    _FILE_FIELDS = ("path", "size_bytes", "mtime_ns", "content_hash", "ad_key", "status", "error")

    def file(self, path: str) -> FileRow | None:
        rows = self._select(self._FILE_FIELDS, "FROM files WHERE path = ?", (path,))
        return FileRow(**rows[0]) if rows else None

    def files(self) -> list[FileRow]:
        return [FileRow(**row) for row in self._select(self._FILE_FIELDS, "FROM files ORDER BY path")]

    def has_ad(self, key: str) -> bool:
        return self._db.execute("SELECT 1 FROM ads WHERE key = ?", (key,)).fetchone() is not None

    _AD_FIELDS = ("key", "name", "path", "status", "error", "model", "model_version", "labels", "duration_s", "fps",
                  "width", "height", "rotation", "has_audio", "frames", "face_coverage", "dominant_raw",
                  "decode_errors", "indexed_at", "elapsed_s", "content_hash", "params", "face_frames", "face_seconds",
                  "audio_status", "audio_error", "audio_seconds", "audio_model", "cover_idx")

    @staticmethod
    def _ad_row(values: dict[str, Any]) -> AdRow:
        values["labels"] = tuple(json.loads(values["labels"]))
        values["has_audio"] = None if values["has_audio"] is None else bool(values["has_audio"])
        values["params"] = json.loads(values["params"])
        return AdRow(**values)

    def _ads(self, rest: str, args: Sequence[object] = ()) -> list[AdRow]:
        return [self._ad_row(values) for values in self._select(self._AD_FIELDS, rest, args)]

    def ads(self, status: str | None = None) -> list[AdRow]:
        """Every ad, newest first (optionally only 'ok' or 'failed')."""
        if status:
            return self._ads("FROM ads WHERE status = ? ORDER BY indexed_at DESC", (status,))
        return self._ads("FROM ads ORDER BY indexed_at DESC")

    def ad(self, ref: str) -> AdRow:
        """One ad by key, key prefix (≥ 6 characters), file name or path."""
        # the key alone first: one primary-key lookup (the dashboard's case); path has no index to search
        rows = self._ads("FROM ads WHERE key = ?", (ref,)) or self._ads(
            "FROM ads WHERE name = ? OR path = ? ORDER BY indexed_at DESC", (ref, ref))
        if not rows and len(ref) >= 6:
            rows = self._ads("FROM ads WHERE key LIKE ? ORDER BY indexed_at DESC", (ref.replace("%", "") + "%",))
        if not rows:
            raise AdNotFound(f"no ad in {self.root} matches {ref!r}")
        return rows[0]

    def ads_with_content(self, content_hash: str) -> list[AdRow]:
        """Every ad indexed from these bytes (one per set of parameters), newest first."""
        return self._ads("FROM ads WHERE content_hash = ? ORDER BY indexed_at DESC", (content_hash,))

    def emotions(self, key: str) -> tuple[EmotionSummary, ...]:
        columns = ("emotion", "mean", "peak", "peak_time_s", "share_above", "variance")
        return tuple(EmotionSummary(**row) for row in self._select(columns, "FROM emotions WHERE ad_key = ?", (key,)))

    def timeline(self, key: str) -> Timeline:
        frames = self._select_columns(("time_s", "faces", "box", "raw", "smoothed", "face_px"),
                                      "FROM frames WHERE ad_key = ? ORDER BY idx", (key,))
        shots = self._select_columns(("start_s",), "FROM shots WHERE ad_key = ? ORDER BY idx", (key,))["start_s"]
        labels = self._select_columns(("labels",), "FROM ads WHERE key = ?", (key,))["labels"]
        width = len(json.loads(labels[0])) if labels else 0
        n = len(frames["time_s"])
        return Timeline(
            times=np.array(frames["time_s"], dtype=np.float64),
            raw=np.array([_floats(v) for v in frames["raw"]], dtype=np.float32).reshape(n, width),
            smoothed=np.array([_floats(v) for v in frames["smoothed"]], dtype=np.float32).reshape(n, width),
            faces=np.array([-1 if v is None else v for v in frames["faces"]], dtype=np.int32),
            boxes=tuple(None if v is None else tuple(json.loads(v)) for v in frames["box"]),
            shots=tuple(shots),
            face_px=np.array([math.nan if v is None else v for v in frames["face_px"]], dtype=np.float64),
        )

    def audio(self, key: str) -> AudioResult:
        """The ad's soundtrack: its lanes ('ok'), `NoAudio`, `AudioFailed`, or None (not analysed, or
        no such ad). Lanes that do not decode are a CacheError (one line), never misread."""
        rows = self._select(("audio_status", "audio_error"), "FROM ads WHERE key = ?", (key,))
        if not rows or rows[0]["audio_status"] is None:
            return None
        status, error = rows[0]["audio_status"], rows[0]["audio_error"]
        if status == "none":
            return NoAudio(error or NoAudio().reason)
        if status == "failed":
            return AudioFailed(error or "unknown reason")
        found = self._select(AUDIO_COLUMNS[1:], "FROM audio WHERE ad_key = ?", (key,))
        try:
            row = found[0]
            signals = tuple(json.loads(row["signals"]))
            matrix = np.frombuffer(row["matrix"], np.float32).reshape(int(row["seconds"]), len(signals))
            column = {name: matrix[:, i] for i, name in enumerate(signals)}
            return AudioLanes(
                times=np.arange(int(row["seconds"]), dtype=np.float64),
                names=LANE_NAMES,
                values=np.column_stack([column[n] for n in LANE_NAMES]).reshape(-1, len(LANE_NAMES)),
                cue_names=CUE_NAMES,
                cues=np.column_stack([column[n] for n in CUE_NAMES]).reshape(-1, len(CUE_NAMES)),
                loudness_dbfs=column["loudness"].copy(),
                patch_centers_s=np.frombuffer(row["patch_centers"], np.float64).copy(),
                source=AudioSource(**json.loads(row["source"])),
            )
        except (IndexError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
            raise CacheError(f"the stored soundtrack of ad {key} is unreadable ({exc}): index it again with --force")

    def thumbnail(self, key: str, index: int) -> Path | None:
        path = thumbnail_path(self.root, key, index)
        return path if path.is_file() else None

    def explained_frames(self, key: str, explain_hash: str | None = None) -> list[ExplainedFrame]:
        """Every explained frame of an ad (frame index, time, explain hash), by time."""
        query = "FROM explained_frames WHERE ad_key = ?"
        args: tuple = (key,)
        if explain_hash:
            query += " AND explain_hash = ?"
            args = (key, explain_hash)
        return [ExplainedFrame(**r) for r in self._select(ExplainedFrame._fields, query + " ORDER BY time_s, created_at DESC",
                                                           args)]

    def explanation(self, key: str, frame_idx: int, explain_hash: str | None = None) -> FrameExplanation:
        """One frame's explanations (the newest, unless a hash is given); CorruptExplanation if unreadable."""
        query = "FROM explained_frames WHERE ad_key = ? AND frame_idx = ?"
        args: tuple = (key, frame_idx)
        if explain_hash:
            query += " AND explain_hash = ?"
            args = (*args, explain_hash)
        rows = self._select(("time_s", "explain_hash", "region", "segments", "image", "params"),
                            query + " ORDER BY created_at DESC LIMIT 1", args)
        if not rows:
            raise AdNotFound(f"no explanation of frame {frame_idx} of ad {key}")
        row = rows[0]
        digest = row["explain_hash"]
        try:
            segments = _unpng(row["segments"], cv2.IMREAD_UNCHANGED).astype(np.int32)
            image = cv2.cvtColor(_unpng(row["image"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            k = int(segments.max()) + 1
            attributions = []
            for found in self._select(("emotion", "method", "weights", "figures"),
                                      "FROM explanations WHERE ad_key = ? AND frame_idx = ? AND explain_hash = ? "
                                      "ORDER BY emotion, method", (key, frame_idx, digest)):
                values = np.array(_floats(found["weights"]), dtype=np.float64)
                if len(values) != k or np.isnan(values).any():
                    raise ValueError(f"{found['method']} weights for {found['emotion']} do not match {k} segments")
                attributions.append(StoredAttribution(found["emotion"], found["method"], values,
                                                      json.loads(found["figures"])))
            if segments.shape != image.shape[:2]:
                raise ValueError("segment map and image differ in size")
            return FrameExplanation(key, frame_idx, row["time_s"], digest, tuple(json.loads(row["region"])), segments,
                                    image, json.loads(row["params"]), tuple(attributions))
        except (ValueError, TypeError, KeyError, cv2.error, json.JSONDecodeError) as exc:
            raise CorruptExplanation(f"stored explanation of frame {frame_idx} of ad {key} is corrupt: {exc}") from exc

    def audio_explained_seconds(self, key: str, explain_hash: str | None = None) -> list[ExplainedSecond]:
        """The explained seconds of an ad's soundtrack (`index`'s audio key moments and any explained
        on demand), by second, newest first within a second."""
        query, args = "FROM audio_explanations WHERE ad_key = ?", (key,)
        if explain_hash:
            query, args = query + " AND explain_hash = ?", (key, explain_hash)
        rows = self._select(("second", "explain_hash", "signals", "created_at"),
                            query + " ORDER BY second, created_at DESC", args)
        out = []
        for row in rows:
            try:
                signals = tuple(str(s) for s in json.loads(row["signals"]))
            except (TypeError, ValueError):
                signals = ()  # listed all the same: reading it whole says what is wrong
            out.append(ExplainedSecond(int(row["second"]), row["explain_hash"], signals, float(row["created_at"])))
        return out

    def audio_explanation(self, key: str, second: int, explain_hash: str | None = None) -> StoredAudioExplanation:
        """One explained soundtrack second (the newest, unless a hash is given); AdNotFound when there is
        none, CorruptExplanation (one line) when it does not decode."""
        query, args = "FROM audio_explanations WHERE ad_key = ? AND second = ?", (key, int(second))
        if explain_hash:
            query, args = query + " AND explain_hash = ?", (*args, explain_hash)
        rows = self._select(AUDIO_EXPLANATION_COLUMNS, query + " ORDER BY created_at DESC LIMIT 1", args)
        if not rows:
            raise AdNotFound(f"no explanation of second {second} of the soundtrack of ad {key}")
        row = rows[0]
        try:
            grid = json.loads(row["grid"])
            frame_edges = np.asarray(grid["frame_edges"], np.int64)
            band_edges = np.asarray(grid["band_edges"], np.int64)
            time_edges = np.asarray(grid["time_edges_s"], np.float64)
            band_hz = np.asarray(grid["band_hz"], np.float64).reshape(-1, 2)
            levels = _unpng(row["spectrogram"], cv2.IMREAD_UNCHANGED)
            if levels.dtype != np.uint8 or levels.ndim != 2 or levels.shape[0] != frame_edges[-1] or \
                    band_edges[-1] != levels.shape[1] or time_edges.size != frame_edges.size or \
                    band_hz.shape[0] != band_edges.size - 1 or frame_edges.size < 2 or band_edges.size < 2:
                raise ValueError("the spectrogram does not match its grid")
            envelope = np.frombuffer(row["waveform"], np.float16)
            if envelope.size == 0 or envelope.size % 2:
                raise ValueError("the waveform envelope is not pairs of values")
            k = (frame_edges.size - 1) * (band_edges.size - 1)
            attributions = []
            for a in json.loads(row["attributions"]):
                weights = np.asarray(a["weights"], np.float64)
                if weights.shape != (k,) or not np.isfinite(weights).all():
                    raise ValueError(f"{a['method']} weights for {a['signal']} do not match {k} regions")
                TrustFigures.from_dict(a["figures"])  # readable, or this row is corrupt
                attributions.append(StoredAttribution(str(a["signal"]), str(a["method"]), weights, dict(a["figures"])))
            return StoredAudioExplanation(
                ad_key=key, second=int(row["second"]), explain_hash=row["explain_hash"],
                patches=tuple(int(i) for i in json.loads(row["patches"])), start_s=float(row["start_s"]),
                frame_edges=frame_edges, band_edges=band_edges, time_edges_s=time_edges, band_hz=band_hz,
                levels=levels, level_range=(float(row["level_floor"]), float(row["level_top"])),
                envelope=envelope.reshape(-1, 2).copy(), waveform_start_s=float(row["waveform_start_s"]),
                waveform_end_s=float(row["waveform_end_s"]),
                loudness_dbfs=None if row["loudness_dbfs"] is None else float(row["loudness_dbfs"]),
                params=json.loads(row["params"]), attributions=tuple(attributions),
            )
        except (ValueError, TypeError, KeyError, AttributeError, cv2.error, json.JSONDecodeError) as exc:
            raise CorruptExplanation(f"stored explanation of second {second} of the soundtrack of ad {key} "
                                     f"is corrupt: {' '.join(str(exc).split())}") from exc

    def iter_keys(self) -> Iterator[str]:
        for row in self._select(("key",), "FROM ads"):
            yield row["key"]

    def check(self) -> list[str]:
        """Problems found: SQLite's integrity check, and ads whose frame rows do not match their count."""
        problems = [r[0] for r in self._db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        for row in self._select(("key", "frames", "frame_rows"), "FROM (SELECT a.key, a.frames, "
                                "(SELECT COUNT(*) FROM frames f WHERE f.ad_key = a.key) AS frame_rows FROM ads a)"):
            if row["frames"] != row["frame_rows"]:
                problems.append(f"ad {row['key']}: {row['frame_rows']} frame rows, expected {row['frames']}")
        return problems
