"""The use cases the command line and the dashboard share: both only parse, call these, and render.

- `locate(cache)` -> `CachePaths`: where a cache keeps its database (and its `-wal` file), the
  thumbnails and key frames, the overlays, trained models, evaluations and frame features, and
  `cache_version` (changes whenever an index commits).
- `explain_moment(cache, ad_ref, at_s, emotion, params)` -> `MomentExplanation`: explain one moment
  on demand (computed unless stored), with the key frame image and the overlay PNG it wrote.
- `explain_audio_moment(cache, ad_ref, at_s, signal, params)` -> `AudioMomentExplanation`: the same
  for a second of the soundtrack (a lane or cue: laughter, applause, funny, …), with the figure PNG
  (spectrogram, waveform, weights) it wrote; `stored_audio_explanation` reads one back.
- `library_table`, `list_library`, `filter_library` (`LibraryFilters` -> `RankedLibrary`): the
  library read against its norms, ranked by `queries.rank` (the one order both layers show), and
  filtered as the dashboard's sidebar filters it.
- `search_ads(cache, text, limit, offset)` -> `queries.AdSearch`: the ads a picker offers, found by
  SQLite (name, path, key prefix), at most `limit`; `ads_by_key` names the ads a link gives.
- `compare(bundles, table, emotion)` -> `Comparison`: the aligned curves of an emotion (or of a
  soundtrack signal, per second) and the table of differences between two to four ads.
- `audio_report_section(report)` -> `ReportSection`: the soundtrack's part of an ad's report.
- `resolve_norms(cache, wanted)` -> `NormsChoice`: which cache the norms come from.

Everything here is plain emocore: no Streamlit, Typer or Rich, no printing. Heavy modules (the
models, the explainers, the overlay renderer) are imported only by the use cases that need them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from emocore import queries
from emocore.audio.decode import NoAudio
from emocore.audio.lanes import LANE_LABELS, short_label
from emocore.errors import AdNotFound, EmocoreError
from emocore.norms import DEFAULT_MIN_AUDIO_SECONDS, DEFAULT_MIN_FACE_FRAMES, load_norms, load_norms_from
from emocore.store import DB_NAME, THUMBS, AdRow, FrameExplanation, Store, StoredAttribution, \
    StoredAudioExplanation, key_frame_path, thumbnail_path

if TYPE_CHECKING:
    from emocore import charts
    from emocore.export import ReportSection
    from emocore.audio.explain import AudioExplainParams
    from emocore.audio.yamnet import AudioModel
    from emocore.explain import ExplainParams
    from emocore.models.base import EmotionModel
    from emocore.versions import VersionMatch, VersionParams

OVERLAYS, MODELS, EVALUATIONS, FEATURES = "overlays", "models", "evaluations", "features"


# --- where a cache keeps its files -------------------------------------------------------------------


@dataclass(frozen=True)
class CachePaths:
    """Every file and folder of one cache (nothing is created by naming it)."""

    root: Path
    db: Path
    """The SQLite database."""
    wal: Path
    """SQLite's write-ahead log beside it (WAL mode): touched by every committed write."""
    thumbs: Path
    """Thumbnails of every sampled frame and the explained key frames, one folder per ad."""
    overlays: Path
    """Overlay PNGs written by `explain_moment` (the CLI's `explain`)."""
    models: Path
    """Checkpoints written by `train`."""
    evaluations: Path
    """Metrics and charts written by `evaluate`."""
    features: Path
    """Cached frame features of the trained models' backbones."""

    def thumbnail(self, key: str, index: int) -> Path:
        """The thumbnail of sampled frame `index` of ad `key`."""
        return thumbnail_path(self.root, key, index)

    def key_frame(self, key: str, index: int) -> Path:
        """The full-size image of explained frame `index` of ad `key`."""
        return key_frame_path(self.root, key, index)

    def overlay(self, key: str, frame_idx: int, emotion: str, methods: Sequence[str]) -> Path:
        """Where `explain_moment` writes a moment's overlay by default ("both" for LIME and SHAP)."""
        method = "both" if set(methods) == {"lime", "shap"} else "_".join(methods)
        return self.overlays / f"{key}_{frame_idx:05d}_{emotion}_{method}.png"

    def audio_overlay(self, key: str, second: int, signal: str, methods: Sequence[str]) -> Path:
        """Where `explain_audio_moment` writes a soundtrack second's figure by default."""
        method = "both" if set(methods) == {"lime", "shap"} else "_".join(methods)
        return self.overlays / f"{key}_audio_{second:05d}_{signal}_{method}.png"

    def version(self) -> int:
        """Changes whenever an index commits (WAL writes touch the `-wal` file, checkpoints the database);
        0 when there is no database."""
        stamps = []
        for path in (self.db, self.wal):
            try:
                stamps.append(path.stat().st_mtime_ns)
            except OSError:
                continue
        return max(stamps, default=0)


def locate(cache: Path | str) -> CachePaths:
    """The paths of the cache at `cache`."""
    root = Path(cache)
    return CachePaths(root=root, db=root / DB_NAME, wal=root / f"{DB_NAME}-wal", thumbs=root / THUMBS,
                      overlays=root / OVERLAYS, models=root / MODELS, evaluations=root / EVALUATIONS,
                      features=root / FEATURES)


def cache_version(cache: Path | str) -> int:
    """`locate(cache).version()`: a number that changes whenever an index commits."""
    return locate(cache).version()


def check_cache(cache: Path | str) -> None:
    """Nothing when a cache is there to read; raises CacheError (with the reason) otherwise."""
    Store(cache, readonly=True).close()


def ad_bundle(cache: Path | str, key: str) -> queries.AdBundle:
    """Everything the ad page shows about one ad (`queries.ad_bundle`)."""
    with Store(cache, readonly=True) as store:
        return queries.ad_bundle(store, key)


def ad_key_for(cache: Path | str, ref: str) -> str | None:
    """The key of the ad `ref` names (a key, key prefix of at least 6 characters, file name or path, as
    the command line takes them), or None when no ad matches."""
    with Store(cache, readonly=True) as store:
        try:
            return store.ad(ref).key
        except AdNotFound:
            return None


def explained_seconds(cache: Path | str, key: str) -> tuple[int, ...]:
    """The seconds of ad `key`'s soundtrack that have a stored explanation (`queries.explained_seconds_of`)."""
    with Store(cache, readonly=True) as store:
        return queries.explained_seconds_of(store, key)


def stored_explanation(cache: Path | str, key: str, frame_idx: int) -> FrameExplanation:
    """The stored explanation of frame `frame_idx` of ad `key`; raises CorruptExplanation or AdNotFound."""
    with Store(cache, readonly=True) as store:
        return store.explanation(key, frame_idx)


def read_key_frame(cache: Path | str, key: str, index: int) -> np.ndarray | None:
    """The stored full-size key frame `index` of ad `key` (RGB uint8), or None when it is missing."""
    import cv2

    image = cv2.imread(str(locate(cache).key_frame(key, index)))
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# --- explain a moment ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MomentExplanation:
    """One explained moment: the stored explanation, the key frame it was cut from, the overlay written."""

    ad: AdRow
    frame: FrameExplanation
    """Every stored attribution of the frame (other emotions and methods included)."""
    emotion: str
    methods: tuple[str, ...]
    key_frame: np.ndarray | None
    """The full key frame (RGB), or None when its file is missing."""
    overlay_path: Path | None
    """The overlay PNG written, or None when none was asked for."""

    @property
    def time_s(self) -> float:
        return self.frame.time_s

    @property
    def attributions(self) -> tuple[StoredAttribution, ...]:
        """The explained emotion's attributions by the methods asked for, in stored order."""
        return tuple(a for a in self.frame.attributions if a.emotion == self.emotion and a.method in self.methods)


def explain_moment(cache: Path | str, ad_ref: str, at_s: float, emotion: str, params: ExplainParams | None = None,
                   *, model: EmotionModel | None = None, overlay: bool = True,
                   overlay_path: Path | None = None, device: str | None = None) -> MomentExplanation:
    """Explain the sampled frame nearest to `at_s` of the ad `ad_ref` names for `emotion` (computed and
    stored in the cache unless already there) and, with `overlay`, write its overlay PNG
    (`overlay_path`, default: `CachePaths.overlay`).

    `ad_ref` is a video file (indexed first if the cache does not hold it) or an ad's key, key prefix,
    name or path. `model`: the ad's model already loaded (the dashboard keeps one); None loads it and
    closes it after, on `device` ("cpu", "cuda", "auto"; None: the model's default). `params`: default
    `ExplainParams()`. Raises the emocore errors of a missing ad or video, and ValueError for an unknown
    emotion or a moment without a face.
    """
    from emocore.explain import ExplainParams
    from emocore.explain import explain_moment as explain_frame
    from emocore.indexer import find_ad_for
    from emocore.models import load_model

    params = params or ExplainParams()
    paths = locate(cache)
    with Store(paths.root) as store:
        row, video = find_ad_for(store, ad_ref)
        if model is None:
            with load_model(row.model, device=device) as loaded:
                frame = explain_frame(store, row, video, loaded, at_s, emotion, params)
        else:
            frame = explain_frame(store, row, video, model, at_s, emotion, params)
    image = read_key_frame(paths.root, row.key, frame.frame_idx)
    target = None
    if overlay:
        from emocore.render import explanation_figure, save_png

        picture = explanation_figure(frame, emotion, frame=image, methods=params.methods)
        target = save_png(overlay_path or paths.overlay(row.key, frame.frame_idx, emotion, params.methods), picture)
    return MomentExplanation(row, frame, emotion, tuple(params.methods), image, target)


@dataclass(frozen=True)
class AudioMomentExplanation:
    """One explained soundtrack second: the stored explanation and the figure written."""

    ad: AdRow
    explanation: StoredAudioExplanation
    """Every stored attribution of the second (other signals and methods included)."""
    signal: str
    methods: tuple[str, ...]
    figure_path: Path | None
    """The figure PNG written (spectrogram, waveform, weights, trust figures), or None when none was asked for."""

    @property
    def second(self) -> int:
        """The explained second [second, second + 1) of the file's timeline."""
        return self.explanation.second

    @property
    def attributions(self) -> tuple[StoredAttribution, ...]:
        """The signal's attributions by the methods asked for, in stored order (`a.trust`: the figures)."""
        return tuple(a for a in self.explanation.attributions if a.emotion == self.signal and a.method in self.methods)


def stored_audio_explanation(cache: Path | str, key: str, second: int) -> StoredAudioExplanation:
    """The stored explanation of soundtrack second `second` of ad `key` (the newest); raises
    CorruptExplanation or AdNotFound."""
    with Store(cache, readonly=True) as store:
        return store.audio_explanation(key, second)


def audio_moment_figure(moment: AudioMomentExplanation, width: int = 640) -> np.ndarray:
    """The moment's figure (RGB uint8), as `explain_audio_moment` writes it (`width` in pixels)."""
    from emocore.audio.render import audio_explanation_figure

    return audio_explanation_figure(moment.explanation, moment.signal, methods=moment.methods, width=width)


def soundtrack_signal(cache: Path | str, ad_ref: str, name: str) -> str | None:
    """The soundtrack signal that explaining `name` on the ad `ad_ref` means, or None for a face emotion.

    A label of the ad's own model comes first (a trained model may call a label "funny", like the
    soundtrack's cue); "audio:<signal>" always names the soundtrack's. An ad the cache does not hold
    yet (a video file) is read with the default face model, whose labels hold no soundtrack name.
    """
    from emocore.audio.explain import OUTPUT_NAMES

    if name.startswith("audio:"):
        return name[len("audio:"):]
    if name not in OUTPUT_NAMES:
        return None
    try:
        with Store(cache, readonly=True) as store:
            labels = store.ad(ad_ref).labels
    except EmocoreError:
        return name
    return None if name in labels else name


def explain_audio_moment(cache: Path | str, ad_ref: str, at_s: float, signal: str,
                         params: AudioExplainParams | None = None, *, audio_model: AudioModel | None = None,
                         figure: bool = True, figure_path: Path | None = None) -> AudioMomentExplanation:
    """Explain the soundtrack second holding `at_s` of the ad `ad_ref` names for `signal` (a lane or
    cue of `emocore.audio.explain.OUTPUT_NAMES`: every one but the loudness), computed and stored
    in the cache unless already there, and with `figure` write its figure PNG (`figure_path`,
    default: `CachePaths.audio_overlay`).

    `ad_ref` as for `explain_moment`. `audio_model`: one already loaded (the dashboard keeps one);
    None loads it and closes it after. `params`: default `AudioExplainParams()`. Raises AudioError
    (one line) when the ad has no audio track, its audio was not analysed or failed, or it has no
    sound at `at_s`; ValueError for an unknown signal; the emocore errors of a missing ad or video.
    """
    from emocore.audio.explain import AudioExplainParams
    from emocore.explain import explain_audio_second
    from emocore.indexer import find_ad_for

    params = params or AudioExplainParams()
    paths = locate(cache)
    with Store(paths.root) as store:
        row, video = find_ad_for(store, ad_ref)
        if audio_model is None:
            from emocore.audio.yamnet import load_audio_model

            with load_audio_model() as loaded:
                found = explain_audio_second(store, row, video, loaded, at_s, signal, params)
        else:
            found = explain_audio_second(store, row, video, audio_model, at_s, signal, params)
    moment = AudioMomentExplanation(row, found, signal, tuple(params.methods), None)
    if not figure:
        return moment
    from emocore.audio.render import save_png

    target = save_png(figure_path or paths.audio_overlay(row.key, found.second, signal, params.methods),
                      audio_moment_figure(moment))
    return AudioMomentExplanation(row, found, signal, tuple(params.methods), target)


@dataclass(frozen=True)
class BestMoment:
    """An ad's strongest explained moment for one emotion."""

    frame: FrameExplanation
    attribution: StoredAttribution
    """LIME's attribution where stored, else SHAP's."""


def best_moment(explanations: Iterable[FrameExplanation], emotion: str) -> BestMoment | None:
    """Of an ad's explained frames, the one whose explained region scores `emotion` highest (None if
    no frame explains it)."""
    best: BestMoment | None = None
    for frame in explanations:
        found = frame.attribution(emotion, "lime") or frame.attribution(emotion, "shap")
        if found and (best is None or found.trust.score > best.attribution.trust.score):
            best = BestMoment(frame, found)
    return best


# --- the library: norms, listing, ranking, filtering -------------------------------------------------------


@dataclass(frozen=True)
class NormsChoice:
    """Where the library norms (percentiles, lifts, the lifted dominant) come from."""

    root: Path | None
    """Another cache folder, or None for the browsed cache itself."""
    label: str
    """How to name it: "this cache" or the other folder's path."""
    problem: str | None = None
    """Why a requested folder could not be used (this cache's norms are used instead), or None."""


def resolve_norms(cache: Path | str, wanted: str | None) -> NormsChoice:
    """The usable norms source for `wanted`: a folder holding an emocore cache with ads scored, or
    this cache (with the reason) when it is empty, missing, not a cache or the browsed cache itself."""
    cache = Path(cache)
    if not wanted or not wanted.strip():
        return NormsChoice(None, "this cache")
    folder = Path(wanted.strip()).expanduser()
    try:
        if folder.resolve() == cache.resolve():
            return NormsChoice(None, "this cache")
    except OSError:
        pass
    shown = str(folder)
    if not folder.is_dir():
        return NormsChoice(None, "this cache", f"Norms folder {shown} does not exist; using this cache's norms.")
    if not locate(folder).db.is_file():
        return NormsChoice(None, "this cache",
                           f"Norms folder {shown} holds no emocore cache ({DB_NAME}); using this cache's norms.")
    try:
        with Store(folder, readonly=True) as store:
            scored = store.connection.execute("SELECT COUNT(*) FROM ads WHERE status = 'ok'").fetchone()[0]
    except (EmocoreError, sqlite3.Error) as exc:
        return NormsChoice(None, "this cache",
                           f"Norms folder {shown} cannot be read ({exc}); using this cache's norms.")
    if not scored:
        return NormsChoice(None, "this cache", f"Norms folder {shown} holds no indexed ads; using this cache's norms.")
    return NormsChoice(folder, shown)


#: The ads' columns `library_table` reads for every ad: what ranking, filtering, the pages and the pickers
#: need; the rest of `queries.LIBRARY_COLUMNS` (the failure, the raw top emotion, the model, ...) is read
#: for the rows shown only (`library_details`): at 100,000 ads every column read costs.
TABLE_COLUMNS = (*queries.RANK_COLUMNS, "name", "path", "duration_s", "face_coverage")


def library_table(cache: Path | str, norms_root: Path | str | None = None, *,
                  columns: Sequence[str] = TABLE_COLUMNS) -> pd.DataFrame:
    """`queries.library` of the cache: every ad with its figures (and the ads' `columns`), read against
    this cache's own norms or those of the cache at `norms_root`."""
    with Store(cache, readonly=True) as store:
        if norms_root is None:
            return queries.library(store, columns=columns)
        with Store(norms_root, readonly=True) as other:
            library_norms = load_norms(other)
        return queries.library(store, library_norms, columns=columns)


def library_details(cache: Path | str, rows: pd.DataFrame,
                    columns: Sequence[str] = queries.LIBRARY_COLUMNS) -> pd.DataFrame:
    """`rows` of a library table (a page of it) with the ads' other `columns` added (`queries.details`:
    one query for these keys), the soundtrack's failure reasons in `audio_note`."""
    with Store(cache, readonly=True) as store:
        return queries.details(store, rows, columns)


@dataclass(frozen=True)
class LibraryFilters:
    """What narrows and orders the library (the dashboard's sidebar; `ls --rank` uses the ordering)."""

    emotion: str
    """The emotion ranked by (`queries.rank`), or a soundtrack signal ("laughter": funniest first; "funny",
    "applause", ...; `queries.resolve_signal`)."""
    min_face_frames: int = DEFAULT_MIN_FACE_FRAMES
    """The evidence an ad needs to be ranked; fewer face frames: listed after the ranked ads."""
    min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS
    """Ranking by a soundtrack signal: the seconds of sound an ad needs to be ranked."""
    descending: bool = True
    score: tuple[float, float] | None = None
    """Range of the rank score a ranked ad must fall in (None: any); the unranked stay listed."""
    duration: tuple[float, float] | None = None
    """Range of the duration in seconds (None: any); failed ads are kept."""
    name: str = ""
    """Kept: the ads `queries.matching` this text (name or path containing it, any case, or key prefix);
    "" keeps all."""
    statuses: tuple[str, ...] = ("ok", "failed")


@dataclass(frozen=True, eq=False)
class RankedLibrary:
    """The rows to show, in order, and how many of them are ranked, thin (too little evidence), failed.
    Held as positions into the library table: a page of rows (`page`) is built alone, so paging through
    100,000 ads copies 50 rows, not the table."""

    table: pd.DataFrame
    """The library table filtered and ranked (in its own order)."""
    positions: np.ndarray
    """The shown rows' positions (`iloc`) in `table`, in rank order."""
    groups: np.ndarray
    """Each shown row's standing as a position in `labels` (0: ranked)."""
    labels: np.ndarray
    """The standings (`queries.STANDINGS`) the groups stand for."""
    rank: np.ndarray
    """Each shown row's rank (1, 2, …; NaN for the unranked)."""
    ranked: int
    thin: int
    failed: int
    unheard: int = 0
    """Ranking by a soundtrack signal: the rows with no audio, whose soundtrack failed or was not analysed."""

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def standing(self) -> np.ndarray:
        """Each shown row's standing (`queries.STANDINGS`)."""
        return self.labels[self.groups]

    def page(self, start: int, stop: int) -> pd.DataFrame:
        """The shown rows `start` to `stop` (0-based, `stop` excluded) with `standing` and `rank`."""
        rows = self.table.iloc[self.positions[start:stop]].reset_index(drop=True)
        ranks = self.rank[start:stop]
        extra = pd.DataFrame({"standing": self.labels[self.groups[start:stop]],
                              "rank": pd.array([None if np.isnan(r) else int(r) for r in ranks], dtype="Int64")})
        return pd.concat([rows.drop(columns=[c for c in ("standing", "rank") if c in rows.columns]), extra], axis=1)

    @property
    def rows(self) -> pd.DataFrame:
        """Every shown row, in order (`page` of them all)."""
        return self.page(0, len(self))


def filter_library(table: pd.DataFrame, filters: LibraryFilters) -> RankedLibrary:
    """`queries.rank`'s order, then the filters: status, name and duration apply to every ad, the
    score range to the ranked ones (the unranked have no rank to keep or lose). Raises ValueError
    for an emotion the library does not hold. Works on the few columns it filters by: no row is copied."""
    found = queries.rank_order(table, filters.emotion, min_face_frames=filters.min_face_frames,
                               descending=filters.descending, min_audio_seconds=filters.min_audio_seconds)
    order = found.order
    keep = table["status"].isin(filters.statuses).to_numpy(dtype=bool)[order]
    if filters.name.strip():
        keep &= queries.matching(table, filters.name)[order]
    failed = (table["status"] == "failed").to_numpy(dtype=bool)[order]
    ranked = found.groups == 0
    if filters.duration is not None:
        duration = np.nan_to_num(table["duration_s"].to_numpy(dtype=np.float64, na_value=np.nan)[order], nan=0.0)
        keep &= failed | ((duration >= filters.duration[0]) & (duration <= filters.duration[1]))
    column = found.signal.score
    if filters.score is not None and column in table:
        score = table[column].to_numpy(dtype=np.float64, na_value=np.nan)[order]
        keep &= ~ranked | ((score >= filters.score[0]) & (score <= filters.score[1]))
    groups = found.groups[keep]
    counts = dict(zip(found.labels, np.bincount(groups, minlength=len(found.labels)).tolist()))
    return RankedLibrary(table, order[keep], groups, found.labels, found.rank[keep], counts.get(queries.RANKED, 0),
                         counts.get(queries.THIN, 0), counts.get(queries.FAILED, 0),
                         sum(counts.get(s, 0) for s in (queries.NO_AUDIO, queries.AUDIO_FAILED, queries.NOT_ANALYSED)))


def search_ads(cache: Path | str, text: str, limit: int = queries.SEARCH_LIMIT, offset: int = 0, *,
               status: str | None = None) -> queries.AdSearch:
    """`queries.search_ads` over the cache: at most `limit` ads whose name or path contains `text` or whose
    key starts with it, best first (an empty text: the newest), read by SQLite (what an ad picker offers)."""
    with Store(cache, readonly=True) as store:
        return queries.search_ads(store, text, limit, offset, status=status)


def ads_by_key(cache: Path | str, keys: Sequence[str]) -> tuple[queries.AdMatch, ...]:
    """`queries.ads_by_key` over the cache: the ads of these keys, in order, unknown keys left out."""
    with Store(cache, readonly=True) as store:
        return queries.ads_by_key(store, keys)


def evidence_rate(table: pd.DataFrame) -> float:
    """Face frames per second with a face in this library (the most common rate; 2 when unknown):
    how a minimum evidence in seconds becomes face frames (`face_frames_for`)."""
    frames = table["face_frames"].to_numpy(dtype=np.float64, na_value=np.nan)
    seconds = table["face_seconds"].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = pd.Series(np.round(frames / seconds, 3)[np.nan_to_num(frames) > 0])
    rates = rates[rates.notna() & (rates > 0) & (rates < float("inf"))]
    return float(rates.mode().iloc[0]) if len(rates) else 2.0


def face_frames_for(seconds: float, rate: float) -> int:
    """The least face frames that make `seconds` with a face at `rate` frames per second (at least 1)."""
    return max(1, int(np.ceil(seconds * rate - 1e-9)))


#: The ads' columns every `list_library` entry holds, in order.
LISTING_COLUMNS = ("key", "name", "path", "status", "error", "duration_s", "frames", "face_frames", "face_seconds",
                   "face_coverage", "dominant", "dominant_raw", "model", "model_version", "audio_status",
                   "audio_seconds", "audio_note")


@dataclass(frozen=True)
class LibraryListing:
    """The entries `ls` lists: one plain record per ad (JSON-ready: missing values are None) and the
    files that failed before becoming ads, after them."""

    entries: tuple[dict[str, object], ...]
    total: int
    """Every entry before `limit`: the ads listed and the unread files."""
    emotion: str | None
    """The emotion ranked by, or None for the library's own order (newest first)."""
    min_face_frames: int
    emotions: tuple[str, ...]
    """The emotions the library holds figures for."""
    min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS
    audio: bool = False
    """Whether `emotion` is a soundtrack signal (its evidence: seconds of sound)."""


def _plain(series: pd.Series) -> list:
    """Missing values (NaN, NA, None) as None, numbers as Python numbers."""
    return series.astype(object).where(series.notna(), None).tolist()


def list_library(cache: Path | str, *, rank: str | None = None, failed_only: bool = False,
                 min_face_frames: int = DEFAULT_MIN_FACE_FRAMES, norms_dir: Path | str | None = None,
                 limit: int | None = None, min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS,
                 min_evidence: float | None = None) -> LibraryListing:
    """The library as `ls` lists it: every ad newest first, or ranked by `rank` in `queries.rank`'s
    order (the dashboard's), read against this cache's norms or those of the cache at `norms_dir`,
    then the files that failed before becoming ads; `failed_only` keeps the failures, `limit` the
    first entries. Each entry: `LISTING_COLUMNS`, and with `rank` its `rank`, `standing`, `score`,
    `mean`, `percentile`, `lift`, `emotion` and `signal_kind` ("face" or "audio"); without,
    `dominant_lift` and `dominant_percentile`. `rank` may be a soundtrack signal ("laughter",
    `queries.resolve_signal`): its evidence is `audio_seconds`, `min_audio_seconds` of sound to be ranked.
    `min_evidence` (what `ls --min-evidence` gives) is the minimum in the ranked signal's own unit: face
    frames (a whole number) for a face emotion or without `rank`, seconds of sound for a soundtrack signal.
    Raises ValueError for an unknown emotion or a minimum below 1."""
    if min_evidence is not None:
        with Store(cache, readonly=True) as store:
            audio = rank is not None and queries.store_signal(store, rank).audio
        if audio:
            min_audio_seconds = float(min_evidence)
        elif float(min_evidence) != int(min_evidence):
            raise ValueError(f"the minimum evidence of a face emotion is a whole number of face frames, "
                             f"got {min_evidence:g}")
        else:
            min_face_frames = int(min_evidence)
    if min_face_frames < 1 or not min_audio_seconds >= 1 or (limit is not None and limit < 0):
        raise ValueError("the minimum evidence must be at least 1 face frame (1 second of sound for a soundtrack "
                         "signal) and the limit at least 0")
    with Store(cache, readonly=True) as store:
        signal = None if rank is None else queries.store_signal(store, rank)
        heard = (signal.name,) if signal is not None and signal.audio else ()  # the one soundtrack signal shown
        norms = None if norms_dir is None else load_norms_from(norms_dir, min_face_frames=min_face_frames,
                                                               min_audio_seconds=min_audio_seconds,
                                                               audio_signals=heard)
        # rank on the few columns ranking needs, then read the rest for the rows shown only
        table = queries.library(store, norms, min_face_frames=min_face_frames, columns=queries.RANK_COLUMNS,
                                min_audio_seconds=min_audio_seconds, audio_signals=heard)
        if rank is not None:
            table = queries.rank(table, rank, min_face_frames=min_face_frames, min_audio_seconds=min_audio_seconds)
        if failed_only:
            table = table[table["status"] == "failed"]
        shown = queries.details(store, table if limit is None else table.iloc[:limit])
        unread = [f for f in store.files() if f.ad_key is None]
    emotions = queries.emotions_in(table)
    data = {c: _plain(shown[c]) for c in LISTING_COLUMNS}
    if signal is not None:
        data.update(rank=_plain(shown["rank"]), standing=_plain(shown["standing"]),
                    score=_plain(shown[signal.score]), mean=_plain(shown[signal.mean]),
                    percentile=_plain(shown[signal.pct]), lift=_plain(shown[signal.lift]))
    else:
        lifts = {e: _plain(shown[f"lift_{e}"]) for e in emotions}
        pcts = {e: _plain(shown[f"pct_{e}"]) for e in emotions}
        data.update(dominant_lift=[lifts[d][i] if d in lifts else None for i, d in enumerate(data["dominant"])],
                    dominant_percentile=[pcts[d][i] if d in pcts else None for i, d in enumerate(data["dominant"])])
    for counted in ("frames", "face_frames", "rank"):  # read as floats (missing values), listed as counts
        if counted in data:
            data[counted] = [None if v is None else int(v) for v in data[counted]]
    names = list(data)
    entries = [dict(zip(names, values)) for values in zip(*data.values())]
    if signal is not None:
        for entry in entries:
            entry["emotion"] = rank
            entry["signal_kind"] = "audio" if signal.audio else "face"
    room = None if limit is None else max(0, limit - len(entries))
    entries += [{**{n: None for n in names}, "name": Path(f.path).name, "path": f.path, "status": "failed",
                 "error": f.error, "frames": 0, "face_frames": 0, "face_seconds": 0.0,
                 **({"standing": "failed", "emotion": rank, "signal_kind": "audio" if signal.audio else "face"}
                    if signal is not None else {})}
                for f in unread][:room]
    return LibraryListing(tuple(entries), len(table) + len(unread), rank, min_face_frames, tuple(emotions),
                          float(min_audio_seconds), signal is not None and signal.audio)


def ad_report(cache: Path | str, ref: str, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
              norms_dir: Path | str | None = None,
              min_audio_seconds: float = DEFAULT_MIN_AUDIO_SECONDS) -> queries.AdReport:
    """One ad in full (`queries.ad_report`), read against this cache's norms or the cache at `norms_dir`."""
    norms = None if norms_dir is None else load_norms_from(norms_dir, min_face_frames=min_face_frames,
                                                           min_audio_seconds=min_audio_seconds)
    with Store(cache, readonly=True) as store:
        return queries.ad_report(store, ref, norms, min_face_frames=min_face_frames,
                                 min_audio_seconds=min_audio_seconds)


def audio_report_section(report: queries.AdReport, figures: Sequence[object] = ()) -> ReportSection:
    """The soundtrack's section of an ad's report: its status and evidence (seconds of sound) in words,
    what the numbers are read against, the key moments, and a table of the figures per signal (mean,
    evidence-aware score, percentile, lift, peak and when, share of seconds ≥ 0.5); `figures`: the
    lanes chart(s) to show above the table (plotly Figures)."""
    from emocore.audio.lanes import LANE_LABELS, SHARE_THRESHOLD
    from emocore.export import ReportSection

    standing = report.audio_standing
    note = standing.note if standing is not None else queries.audio_note(report.ad.audio_status,
                                                                         report.ad.audio_error, report.ad.audio_seconds)
    if standing is None or standing.status != "ok":
        text = {None: "The soundtrack was not analysed (indexed with --no-audio).",
                "none": "The file has no audio track: no soundtrack lanes (never zeros)."}.get(
            None if standing is None else standing.status, f"The soundtrack could not be read: {note}.")
        return ReportSection("Soundtrack", text, tuple(figures))  # type: ignore[arg-type]
    norms = report.norms
    text = (f"Soundtrack: {note} ({'enough' if standing.enough_evidence else 'too little'} to rank: at least "
            f"{standing.min_audio_seconds:g} s). Lanes are YAMNet probabilities 0–1 per second of the file "
            "(the largest of the 0.96 s patches centred in it), loudness an RMS level in dBFS (not LUFS). "
            "Mean, peak and share are over the seconds of sound; score: the mean shrunk towards the norm "
            f"library's mean by seconds of sound; pct: percentile among its ads with at least "
            f"{standing.min_audio_seconds:g} s of sound ({norms.source}: {norms.audio_ads} ads with a soundtrack); "
            "lift: score / the library's mean.")
    if report.audio_moments:
        text += "\n\nKey moments (seconds at or above 0.5): " + "; ".join(
            f"{LANE_LABELS.get(m.signal, m.signal)} at {m.time_s:g} s ({m.value:.2f})"
            + (", explained" if m.explained else "") for m in report.audio_moments) + "."
    rows = [{"signal": x.label, "mean": x.mean, "score": x.score, "percentile": x.percentile, "lift": x.lift,
             "peak": x.peak, "peak at (s)": x.peak_time_s,
             f"share of seconds ≥ {SHARE_THRESHOLD:g}": x.share_above} for x in standing.signals]
    return ReportSection("Soundtrack", text, tuple(figures), (), pd.DataFrame(rows))  # type: ignore[arg-type]


# --- compare ads ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """One ad's smoothed signal of the compared emotion, with what aligning it needs."""

    key: str
    name: str
    """The ad's name, with the start of its key when two compared ads share a name."""
    times: np.ndarray
    values: np.ndarray
    duration_s: float


@dataclass(frozen=True)
class Comparison:
    """Two to four ads compared on one emotion."""

    emotion: str
    emotions: tuple[str, ...]
    """The emotions every compared ad's model scores (ads by different models share only some)."""
    curves: tuple[Curve, ...]
    differences: pd.DataFrame
    """One row per ad: duration, dominant and raw top emotion, the emotion's mean, percentile, peak,
    when the first of its 3 highest peaks comes, share of time above the ad's threshold, evidence.
    For a soundtrack signal: its status, seconds of sound, mean, percentile, peak and share."""
    audio: bool = False
    """Whether `emotion` is a soundtrack signal (curves per second of the lanes)."""

    def curves_table(self) -> pd.DataFrame:
        """The data behind the aligned curves: ad, time, share of the duration, value."""
        return pd.concat([pd.DataFrame({"ad": c.name, "time_s": c.times,
                                        "share_of_duration": c.times / max(c.duration_s, 1e-9),
                                        self.emotion: c.values}) for c in self.curves])


def shared_emotions(bundles: Sequence[queries.AdBundle]) -> list[str]:
    """The emotions every ad's model scores, in the first ad's order."""
    return [e for e in bundles[0].ad.labels if all(e in b.ad.labels for b in bundles)] if bundles else []


def shown_names(bundles: Sequence[queries.AdBundle]) -> dict[str, str]:
    """Per ad key, its name, with the key's first characters when two compared ads share a name."""
    counts = pd.Series([b.ad.name for b in bundles]).value_counts()
    return {b.ad.key: b.ad.name if counts[b.ad.name] == 1 else f"{b.ad.name} ({b.ad.key[:6]})" for b in bundles}


def _audio_signal(bundles: Sequence[queries.AdBundle], name: str) -> str | None:
    """The soundtrack signal `name` means when comparing these ads (None: a face emotion): "audio:<s>", or
    a soundtrack signal name no compared ad's model scores."""
    from emocore.audio.lanes import AUDIO_SIGNALS

    wanted = name[len("audio:"):] if name.startswith("audio:") else name
    if wanted not in AUDIO_SIGNALS:
        if name.startswith("audio:"):
            raise ValueError(f"unknown soundtrack signal {wanted!r}; use one of {', '.join(AUDIO_SIGNALS)}")
        return None
    if name.startswith("audio:") or not any(name in b.ad.labels for b in bundles):
        return wanted
    return None


def audio_differences(bundles: Sequence[queries.AdBundle], signal: str, table: pd.DataFrame) -> pd.DataFrame:
    """The table of differences for a soundtrack signal: per ad its soundtrack status, seconds of sound,
    the signal's mean, percentile (ads with enough sound), peak and when, the first of its 3 highest
    seconds, and the share of seconds at or above 0.5 (the loudness: dBFS, no percentile or share)."""
    from emocore.audio.lanes import SHARE_THRESHOLD

    rows = []
    library_rows = table.set_index("key")
    loud = signal == "loudness"
    unit = " (dBFS)" if loud else ""
    for b in bundles:
        row = library_rows.loc[b.ad.key]
        lanes = b.lanes
        seconds = [] if lanes is None else sorted(
            float(lanes.times[t]) for t in lanes.peaks(signal, k=3, min_value=-np.inf if loud else 0.0))
        value = lambda prefix: None if lanes is None else row.get(queries.audio_column(prefix, signal))  # noqa: E731
        rows.append({
            "ad": b.ad.name,
            "duration (s)": b.ad.duration_s,
            "audio": b.audio_note,
            "seconds of sound": 0.0 if lanes is None else float(lanes.sound_seconds),
            f"{signal} mean{unit}": value("mean"),
            f"{signal} percentile": None if loud else value("pct"),
            f"{signal} peak{unit}": value("peak"),
            f"{signal} peak at (s)": value("peak_time"),
            f"first of the 3 highest {signal} seconds at (s)": seconds[0] if seconds else None,
            f"share of seconds {signal} ≥ {SHARE_THRESHOLD:g}": None if loud else value("share"),
        })
    return pd.DataFrame(rows)


def differences(bundles: Sequence[queries.AdBundle], emotion: str, table: pd.DataFrame) -> pd.DataFrame:
    """The table of differences (`Comparison.differences`); `table`: the library the ads are in.
    `emotion` may be a soundtrack signal (`audio_differences`)."""
    audio = _audio_signal(bundles, emotion)
    if audio is not None:
        return audio_differences(bundles, audio, table)
    rows = []
    library_rows = table.set_index("key")
    for b in bundles:
        row = library_rows.loc[b.ad.key]
        figures = {e.emotion: e for e in b.emotions}
        f = figures.get(emotion)
        top = max(b.emotions, key=lambda e: e.peak if e.peak is not None else -1, default=None)
        moments = sorted(t for t, _ in queries.peaks(b).get(emotion, []))
        threshold = b.ad.index_params.scoring.threshold
        rows.append({
            "ad": b.ad.name,
            "duration (s)": b.ad.duration_s,
            "dominant (highest lift over the norm)": "too little evidence" if pd.isna(row["dominant"])
            else row["dominant"],
            "raw top emotion (highest mean)": b.ad.dominant_raw,
            "peak emotion (highest peak)": None if top is None else top.emotion,
            f"{emotion} mean": None if f is None else f.mean,
            f"{emotion} percentile": row.get(f"pct_{emotion}"),
            "face frames": int(row["face_frames"]),
            f"{emotion} peak": None if f is None else f.peak,
            f"{emotion} peak at (s)": None if f is None else f.peak_time_s,
            f"first of the 3 highest {emotion} peaks at (s)": moments[0] if moments else None,
            f"share of time {emotion} ≥ {threshold:g}": None if f is None else f.share_above,
            "face coverage": b.ad.face_coverage,
        })
    return pd.DataFrame(rows)


def compare(bundles: Sequence[queries.AdBundle], table: pd.DataFrame, emotion: str) -> Comparison:
    """Compare ads (their `queries.ad_bundle`s, in the order shown) on `emotion`; `table`: the library
    table they are in (`library_table`), for their standing. Raises ValueError for fewer than two ads,
    or an emotion not every ad's model scores.

    `emotion` may be a soundtrack signal ("laughter", any of `AUDIO_SIGNALS`; "audio:<s>" when a face
    model's labels hold the same name): the curves are its lanes per second (`time_s` = the second's
    start), an ad without lanes has an empty curve and its status in the differences."""
    if len(bundles) < 2:
        raise ValueError(f"comparing needs at least two ads, got {len(bundles)}")
    emotions = shared_emotions(bundles)
    audio = _audio_signal(bundles, emotion)
    if audio is not None:
        names = shown_names(bundles)
        curves = tuple(Curve(b.ad.key, names[b.ad.key],
                             np.zeros(0) if b.lanes is None else np.asarray(b.lanes.times, np.float64),
                             np.zeros(0) if b.lanes is None else np.asarray(b.lanes.column(audio), np.float64),
                             b.ad.duration_s or (float(b.lanes.seconds) if b.lanes is not None else 0.0) or 1.0)
                       for b in bundles)
        return Comparison(audio, tuple(emotions), curves, audio_differences(bundles, audio, table), audio=True)
    if emotion not in emotions:
        raise ValueError(f"emotion {emotion!r} is not scored for every ad; shared: {', '.join(emotions) or 'none'}")
    names = shown_names(bundles)
    curves = tuple(Curve(b.ad.key, names[b.ad.key], b.timeline.times,
                         b.timeline.smoothed[:, b.ad.labels.index(emotion)],
                         b.ad.duration_s or float(b.timeline.times[-1])) for b in bundles)
    return Comparison(emotion, tuple(emotions), curves, differences(bundles, emotion, table))


def compare_ads(cache: Path | str, keys: Sequence[str], emotion: str,
                norms_root: Path | str | None = None) -> Comparison:
    """`compare` of the ads `keys` name in the cache, read against its own norms or `norms_root`'s."""
    with Store(cache, readonly=True) as store:
        bundles = [queries.ad_bundle(store, key) for key in keys]
    return compare(bundles, library_table(cache, norms_root), emotion)


def profiles(bundles: Sequence[queries.AdBundle], table: pd.DataFrame, emotions: Sequence[str], *,
             by: str = "mean") -> dict[str, dict[str, float]]:
    """Per ad (by its shown name), per emotion: its raw mean (`by="mean"`) or its percentile in the
    norm library (`by="pct"`, missing ones left out). `emotions` may name soundtrack signals
    ("laughter", "audio:funny"): their mean over the seconds of sound, or percentile among the ads with
    enough sound, under the name given (left out for an ad without lanes)."""
    names = shown_names(bundles)
    if by not in ("mean", "pct"):
        raise ValueError(f"profiles are by 'mean' or 'pct', got {by!r}")
    audio = {e: signal for e in emotions if (signal := _audio_signal(bundles, e)) is not None}
    by_key = table.set_index("key")
    if by == "mean":
        found = {names[b.ad.key]: {e.emotion: e.mean for e in b.emotions} for b in bundles}
        for b in bundles:
            for name, signal in audio.items():
                if b.lanes is not None and b.ad.key in by_key.index:
                    found[names[b.ad.key]][name] = by_key.at[b.ad.key, queries.audio_column("mean", signal)]
        return {n: {e: v for e, v in values.items() if not (isinstance(v, float) and np.isnan(v))}
                for n, values in found.items()} if audio else found
    found = {names[b.ad.key]: {e: by_key.at[b.ad.key, f"pct_{e}"] for e in emotions
                               if e not in audio and f"pct_{e}" in by_key.columns} for b in bundles}
    for b in bundles:
        for name, signal in audio.items():
            column = queries.audio_column("pct", signal)
            if column in by_key.columns:
                found[names[b.ad.key]][name] = by_key.at[b.ad.key, column]
    return {name: {e: float(v) for e, v in values.items() if pd.notna(v)} for name, values in found.items()}


# --- versions of one ad ---------------------------------------------------------------------------------


def versions(cache: Path | str, refs: Sequence[str], params: VersionParams | None = None) -> tuple[VersionMatch, ...]:
    """Cuts of one ad matched shot by shot (`emocore.versions`): the first of `refs` is the reference,
    each other one a cut matched against it. Refs name ads as `ls` and `report` take them (key, key
    prefix, name, path, or a video file the cache holds). VersionsError for fewer than two distinct
    ads or an ad without frames; AdNotFound for a ref the cache does not hold."""
    from emocore.errors import VersionsError
    from emocore.versions import VersionParams, match_versions, read_version

    params = params or VersionParams()
    with Store(cache, readonly=True) as store:
        ads = [queries.find_ad(store, ref) for ref in refs]
        if len({ad.key for ad in ads}) != len(ads) or len(ads) < 2:
            raise VersionsError(f"versions needs a reference and at least one other cut, got {len(ads)} "
                                f"ad{'s' if len(ads) != 1 else ''} ({', '.join(ad.name for ad in ads) or 'none'})")
        found = [read_version(store, ad, params) for ad in ads]
    return tuple(match_versions(found[0], cut, params) for cut in found[1:])


#: Below this music probability a second's mood is not named.
MIN_MUSIC_FOR_MOOD = 0.2


def panel_note(bundle: queries.AdBundle) -> str:
    """Why an ad has no soundtrack lanes, in words: "no audio track", "audio failed: …", "not analysed …"."""
    if isinstance(bundle.audio, NoAudio):
        return "no audio track"
    if bundle.audio is None:
        return "not analysed (indexed with --no-audio)"
    return bundle.audio_note


def audio_panel(bundle: queries.AdBundle, lanes: Sequence[str] = queries.TIMELINE_LANES) -> "charts.AudioPanel":
    """What the timeline draws of the soundtrack: the chosen lanes with their peaks (the ad's audio key
    moments), the loudness and the music's mood per second, or the words saying why there is nothing."""
    from emocore import charts

    audio = bundle.lanes
    if audio is None:
        return charts.AudioPanel(note=panel_note(bundle))
    per_second = queries.audio_table(bundle)  # `top_mood`: the mood lane highest each second
    mood = tuple(
        f"{LANE_LABELS[top]} ({row[top] / row['music']:.0%} of the music)"
        if isinstance(top, str) and row["music"] >= MIN_MUSIC_FOR_MOOD else ""
        for top, (_, row) in zip(per_second["top_mood"], per_second.iterrows()))
    peaks: dict[str, list[int]] = {}
    for m in queries.audio_moments(bundle):
        peaks.setdefault(m.signal, []).append(int(m.time_s))
    shown = tuple(charts.AudioLane(name, short_label(name), audio.column(name), tuple(peaks.get(name, ())),
                                   dashed=name in ("funny", "exciting"))
                  for name in lanes)
    return charts.AudioPanel(times=audio.times, lanes=shown, loudness_dbfs=audio.loudness_dbfs, mood=mood)


__all__ = ["ad_key_for", "explained_seconds", "MIN_MUSIC_FOR_MOOD", "audio_panel", "panel_note", "AudioMomentExplanation", "audio_moment_figure", "explain_audio_moment", "stored_audio_explanation",
           "BestMoment", "CachePaths", "ad_bundle", "check_cache", "stored_explanation", "Comparison", "Curve", "LISTING_COLUMNS", "LibraryFilters", "LibraryListing",
           "MomentExplanation", "NormsChoice", "RankedLibrary", "ad_report", "best_moment", "cache_version", "compare",
           "compare_ads", "differences", "audio_differences", "audio_report_section", "evidence_rate", "explain_moment", "face_frames_for", "filter_library",
           "library_details", "library_table", "list_library", "locate", "profiles", "read_key_frame", "resolve_norms",
           "shared_emotions", "shown_names", "versions", "TABLE_COLUMNS", "ads_by_key", "search_ads"]
