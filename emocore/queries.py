"""Read-side queries over the cache, shaped for browsing: tables and bundles the dashboard shows.

Everything here only reads (`Store(root, readonly=True)`), so it is safe while an index runs, and
answers in one or two SQL queries however many ads the cache holds (the library of 10,000 ads is
one query for the ads and one for their emotion figures, pivoted in pandas; its norms come from
the same figures).

`rank` is THE ordering of ads for an emotion, used by `cli.py ls --rank` and the dashboard alike:
ads with enough evidence by their evidence-aware score (`emocore.norms`), then the ads with too
little evidence (face frames below the minimum), then the failed ones; never interleaved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from emocore.files import content_hash
from emocore.errors import AdNotFound, CorruptExplanation
from emocore.norms import DEFAULT_MIN_FACE_FRAMES, Norms, compute_norms, load_norms, read_table
from emocore.scoring import EmotionSummary, Peak
from emocore.store import AdRow, FrameExplanation, Store, Timeline
from emocore.trust import TrustFigures

LIBRARY_COLUMNS = ("key", "name", "path", "status", "error", "duration_s", "frames", "face_coverage",
                   "face_frames", "face_seconds", "dominant_raw", "model", "model_version", "indexed_at")

#: The least `library` needs to rank (read from the `ads_library` covering index).
RANK_COLUMNS = ("key", "status", "face_frames", "face_seconds", "indexed_at")

#: `rank`'s `standing` column.
RANKED, THIN, FAILED = "ranked", "too little evidence", "failed"


def library(store: Store, norms: Norms | None = None, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
            columns: Sequence[str] = LIBRARY_COLUMNS) -> pd.DataFrame:
    """One row per ad, newest first: identity, status, evidence (`face_frames`, `face_seconds`),
    `dominant` (highest lift, None below `min_face_frames`), `dominant_raw` (highest raw mean) and,
    per emotion e: `mean_<e>` (raw mean), `var_<e>`, `peak_<e>`, `peak_time_<e>`, `share_<e>`, and
    against the norms (default: this store's own library) `score_<e>` (evidence-aware), `pct_<e>`
    (0–100) and `lift_<e>` (score / the norm's mean). One query. `columns`: the ads' columns to read
    (RANK_COLUMNS, what ranking needs, reads faster; `details` adds the rest for the rows shown)."""
    table = read_table(store, columns)
    if norms is None:
        norms = compute_norms(table, source=str(store.root), min_face_frames=min_face_frames)
    return with_norms(table, norms, min_face_frames=min_face_frames)


def with_norms(table: pd.DataFrame, norms: Norms, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES) -> pd.DataFrame:
    """A library table with `score_<e>`, `pct_<e>`, `lift_<e>` and `dominant` (re)computed against
    `norms`, newest first."""
    n = table["face_frames"].to_numpy(dtype=np.float64, na_value=0.0)
    emotions = emotions_in(table)
    added: dict[str, np.ndarray] = {}
    lifts = np.full((len(table), len(emotions)), np.nan)
    enough = (n >= min_face_frames) & (table["status"] == "ok").to_numpy(dtype=bool)
    for j, e in enumerate(emotions):
        score = norms.score(e, table[f"mean_{e}"].to_numpy(dtype=np.float64, na_value=np.nan), n)
        added[f"score_{e}"] = score
        # a percentile is a standing in the library: an ad with too little evidence has none
        added[f"pct_{e}"] = np.where(enough, norms.percentile(e, score), np.nan)
        added[f"lift_{e}"] = lifts[:, j] = norms.lift(e, score)
    dominant = np.full(len(table), None, dtype=object)
    if emotions:
        usable = enough & ~np.isnan(lifts).all(axis=1)
        best = np.argmax(np.where(np.isnan(lifts), -np.inf, lifts), axis=1)
        dominant[usable] = np.array(emotions, dtype=object)[best[usable]]
    added["dominant"] = dominant
    kept = table.drop(columns=[c for c in added if c in table.columns])
    out = pd.concat([kept, pd.DataFrame(added, index=table.index)], axis=1)
    if "indexed_at" in out.columns:
        newest = -out["indexed_at"].to_numpy(dtype=np.float64, na_value=-np.inf)
        if len(newest) > 1 and (np.diff(newest) < 0).any():  # read_table's rows already come newest first
            out = out.iloc[np.argsort(newest, kind="stable")]
    return out.reset_index(drop=True)


def details(store: Store, table: pd.DataFrame, columns: Sequence[str] = LIBRARY_COLUMNS) -> pd.DataFrame:
    """`table` (rows keyed by `key`, e.g. the first rows of a ranking) with the ads' other `columns`
    added, in the same order: one query for the keys given."""
    missing = [c for c in columns if c not in table.columns]
    if not missing:
        return table
    if table.empty:
        return table.assign(**{c: pd.Series(dtype=object) for c in missing})
    keys = table["key"].tolist()
    select = f"SELECT key, {', '.join(missing)} FROM ads"
    if len(keys) > 5000:  # most of the library: one scan beats thousands of lookups
        rows = store.connection.execute(select).fetchall()
    else:
        rows = []
        for start in range(0, len(keys), 900):  # SQLite's limit on bound parameters
            chunk = keys[start:start + 900]
            rows += store.connection.execute(f"{select} WHERE key IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
    found = pd.DataFrame(rows, columns=["key", *missing]).drop_duplicates("key").set_index("key")
    extra = found.reindex(keys)
    extra.index = table.index
    return pd.concat([table, extra], axis=1)


def rank(table: pd.DataFrame, emotion: str, *, min_face_frames: int = DEFAULT_MIN_FACE_FRAMES,
         descending: bool = True) -> pd.DataFrame:
    """THE ordering of a library table for one emotion: ads with at least `min_face_frames` face
    frames by `score_<emotion>` (highest first unless `descending` is False; ties: more face
    frames first, then the table's order, newest first), then the ads with too little evidence
    (best score first, none last), then the failed ones. Adds `standing` ("ranked", "too little
    evidence", "failed") and `rank` (1, 2, … for ranked ads; missing for the others)."""
    if f"score_{emotion}" not in table.columns:
        known = ", ".join(emotions_in(table)) or "none: the cache holds no indexed ad"
        raise ValueError(f"unknown emotion {emotion!r}; emotions in this library: {known}")
    if min_face_frames < 1:
        raise ValueError(f"the minimum evidence must be at least 1 face frame, got {min_face_frames}")
    score = table[f"score_{emotion}"].to_numpy(dtype=np.float64, na_value=np.nan)
    n = table["face_frames"].to_numpy(dtype=np.float64, na_value=0.0)
    ok = (table["status"] == "ok").to_numpy(dtype=bool)
    ranked = ok & ~np.isnan(score) & (n >= min_face_frames)
    group = np.where(ranked, 0, np.where(ok, 1, 2))
    best_first = np.where(np.isnan(score), np.inf, -score)
    signed = np.where(group == 0, best_first if descending else np.where(np.isnan(score), np.inf, score), best_first)
    order = np.lexsort((-n, signed, group))  # stable: equal keys keep the table's order
    out = table.iloc[order].reset_index(drop=True)
    groups = group[order]
    count = int((groups == 0).sum())
    extra = pd.DataFrame({
        "standing": np.array([RANKED, THIN, FAILED], dtype=object)[groups],
        "rank": pd.array(list(range(1, count + 1)) + [None] * (len(out) - count), dtype="Int64"),
    })
    return pd.concat([out.drop(columns=[c for c in ("standing", "rank") if c in out.columns]), extra], axis=1)


@dataclass(frozen=True)
class EmotionStanding:
    """One emotion of one ad against a library's norms."""

    emotion: str
    mean: float | None
    """The raw mean over the ad's face frames."""
    score: float | None
    """Evidence-aware score: (n·mean + k·μ) / (n + k)."""
    percentile: float | None
    lift: float | None


@dataclass(frozen=True)
class AdStanding:
    """An ad against a library's norms: its evidence, dominant emotions and per-emotion standing."""

    key: str
    face_frames: int
    face_seconds: float
    enough_evidence: bool
    dominant: str | None
    """Highest lift (None with too little evidence)."""
    dominant_raw: str | None
    """Highest raw mean (no norms applied)."""
    norms_source: str
    emotions: tuple[EmotionStanding, ...]

    def by_emotion(self) -> dict[str, EmotionStanding]:
        return {e.emotion: e for e in self.emotions}


def _number(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def ad_norms(source: Store | pd.DataFrame, key: str, norms: Norms | None = None, *,
             min_face_frames: int = DEFAULT_MIN_FACE_FRAMES) -> AdStanding:
    """One ad's percentile and lift per emotion. `source` is a store (the ad found by key, key
    prefix, name or path; norms default to the store's own) or a `library` table (by key or name;
    its score/pct/lift columns are used as they are unless `norms` is given)."""
    if isinstance(source, Store):
        ad = source.ad(key)
        norms = norms or load_norms(source, min_face_frames=min_face_frames)
        row = {"key": ad.key, "status": ad.status, "face_frames": ad.face_frames, "face_seconds": ad.face_seconds,
               "dominant_raw": ad.dominant_raw, "indexed_at": ad.indexed_at}
        row.update({f"mean_{e.emotion}": e.mean for e in source.emotions(ad.key)})
        table = with_norms(pd.DataFrame([row]), norms, min_face_frames=min_face_frames)
        source_name = norms.source
    else:
        match = source[(source["key"] == key) | (source["name"] == key)]
        if match.empty:
            raise AdNotFound(f"no ad in the library matches {key!r}")
        table = match.iloc[:1]
        if norms is not None:
            table = with_norms(table, norms, min_face_frames=min_face_frames)
        source_name = norms.source if norms is not None else "this library"
    r = table.iloc[0]
    n = int(r["face_frames"] or 0)
    standing = tuple(
        EmotionStanding(e, _number(r.get(f"mean_{e}")), _number(r.get(f"score_{e}")), _number(r.get(f"pct_{e}")),
                        _number(r.get(f"lift_{e}")))
        for e in emotions_in(table)
    )
    dominant = r.get("dominant")
    return AdStanding(key=str(r["key"]), face_frames=n, face_seconds=float(r["face_seconds"] or 0.0),
                      enough_evidence=n >= min_face_frames and r["status"] == "ok",
                      dominant=None if dominant is None or pd.isna(dominant) else str(dominant),
                      dominant_raw=None if pd.isna(r["dominant_raw"]) else str(r["dominant_raw"]),
                      norms_source=source_name, emotions=standing)


def emotions_in(table: pd.DataFrame) -> list[str]:
    """The emotions a library table has figures for, in a stable order."""
    return sorted(c[len("mean_"):] for c in table.columns if c.startswith("mean_"))


@dataclass(frozen=True)
class AdBundle:
    """Everything the ad page shows about one ad."""

    ad: AdRow
    timeline: Timeline
    emotions: tuple[EmotionSummary, ...]
    explained: tuple[tuple[int, float], ...]
    """(frame index, time) of the frames that have explanations, by time."""


def ad_bundle(store: Store, key: str) -> AdBundle:
    ad = store.ad(key)
    seen: dict[int, float] = {}
    for frame in store.explained_frames(ad.key):
        seen.setdefault(frame.frame_idx, frame.time_s)
    return AdBundle(ad, store.timeline(ad.key), store.emotions(ad.key), tuple(sorted(seen.items(), key=lambda x: x[1])))


def timeline_table(bundle: AdBundle) -> pd.DataFrame:
    """The data behind an ad's timeline chart, for CSV export: raw and smoothed per emotion, faces, shots."""
    tl, labels = bundle.timeline, bundle.ad.labels
    table = pd.DataFrame({"time_s": tl.times, "faces": tl.faces,
                          "face_px": tl.face_px if len(tl.face_px) == len(tl.times) else np.nan})
    for j, label in enumerate(labels):
        table[f"{label}_raw"] = tl.raw[:, j]
        table[f"{label}_smoothed"] = tl.smoothed[:, j]
    shot = np.searchsorted(np.asarray(tl.shots), tl.times, side="right")
    table["shot"] = shot
    return table


def explanation(store: Store, key: str, frame_idx: int) -> FrameExplanation:
    return store.explanation(key, frame_idx)


def moments(bundle: AdBundle, top: int | None = None) -> dict[str, tuple[Peak, ...]]:
    """Per emotion, its real peaks, highest first (`top` of them; None: all): `find_peaks` on the
    smoothed signal at face frames with the prominence the ad was indexed with, the same function
    that picks the key frames. Without a floor, so even a weak emotion shows where it is strongest."""
    from emocore.explain.keyframes import emotion_peaks  # the explain package imports video

    tl, labels = bundle.timeline, bundle.ad.labels
    prominence = bundle.ad.index_params.scoring.prominence
    return {label: emotion_peaks(tl.times, tl.raw, tl.smoothed, j, prominence)[:top] for j, label in enumerate(labels)}


def peaks(bundle: AdBundle, top: int = 3) -> dict[str, list[tuple[float, float]]]:
    """Per emotion, its `top` highest peaks as (time, smoothed value), in time order (`moments`)."""
    return {label: sorted((p.time_s, p.value) for p in found) for label, found in moments(bundle, top).items()}


def find_ad(store: Store, ref: str) -> AdRow:
    """The ad `ref` names: a key, key prefix, file name or indexed path, or a video file whose bytes
    the cache holds (read only: a file that was never indexed is AdNotFound)."""
    try:
        return store.ad(ref)
    except AdNotFound:
        path = Path(ref)
        if not path.is_file():
            raise
        found = store.ads_with_content(content_hash(path))
        ok = [ad for ad in found if ad.status == "ok"] or found
        if not ok:
            raise AdNotFound(f"{path.name} is not in the cache at {store.root} (index it first)") from None
        return ok[0]


@dataclass(frozen=True)
class ExplanationFigures:
    """One stored explanation's trust figures, as stored (or why they cannot be read)."""

    frame_idx: int
    time_s: float
    emotion: str | None
    method: str | None
    figures: dict[str, object]
    """As stored (`emocore.trust.TrustFigures.to_dict()`); `trust` reads them."""
    error: str | None = None

    @property
    def trust(self) -> TrustFigures | None:
        """The figures as their typed record (None when they could not be read: see `error`)."""
        return TrustFigures.from_dict(self.figures) if self.figures else None


@dataclass(frozen=True)
class KeyFrame:
    """A frame the key-frame rule picks: where, and for which emotions."""

    frame_idx: int
    time_s: float
    emotions: tuple[str, ...]


@dataclass(frozen=True)
class AdReport:
    """Everything `cli.py show` prints about one ad."""

    ad: AdRow
    standing: AdStanding
    norms: Norms
    figures: tuple[EmotionSummary, ...]
    """The ad's stored per-emotion figures (mean, peak, share above the threshold, ...)."""
    timeline: Timeline
    prominence: float
    """The peaks' prominence threshold the ad was indexed with."""
    moments: dict[str, tuple[Peak, ...]]
    key_frames: tuple[KeyFrame, ...]
    """The frames the index's key-frame rule picks (default settings, the ad's prominence)."""
    explanations: tuple[ExplanationFigures, ...]

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data (NaN as None)."""
        tl, labels = self.timeline, self.ad.labels
        record = {f.name: getattr(self.ad, f.name) for f in fields(self.ad)}
        record["labels"] = list(labels)
        return _plain({
            "ad": record,
            "evidence": {"face_frames": self.standing.face_frames, "face_seconds": self.standing.face_seconds,
                         "enough": self.standing.enough_evidence, "min_face_frames": self.norms.min_face_frames},
            "dominant": self.standing.dominant,
            "dominant_raw": self.standing.dominant_raw,
            "emotions": [vars(e) for e in self.standing.emotions],
            "figures": [vars(e) for e in self.figures],
            "prominence": self.prominence,
            "norms": {"source": self.norms.source, "ads": self.norms.ads,
                      "by_emotion": {e: {"mean": n.mean, "k": n.k, "ads": n.ads, "fallback": n.fallback}
                                     for e, n in self.norms.by_emotion.items()}},
            "signals": {
                "time_s": tl.times.tolist(), "faces": tl.faces.tolist(),
                "raw": {label: tl.raw[:, j].tolist() for j, label in enumerate(labels)},
                "smoothed": {label: tl.smoothed[:, j].tolist() for j, label in enumerate(labels)},
            },
            "peaks": {e: [vars(p) for p in found] for e, found in self.moments.items()},
            "key_frames": [vars(k) for k in self.key_frames],
            "shots": list(tl.shots),
            "explanations": [vars(x) for x in self.explanations],
        })


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    return value


def ad_report(store: Store, ref: str, norms: Norms | None = None, *,
              min_face_frames: int = DEFAULT_MIN_FACE_FRAMES) -> AdReport:
    """One ad in full: record, standing against the norms (default: the store's own), per-frame
    signals, peaks, the key frames, shots and every stored explanation's figures."""
    from emocore.explain.keyframes import KeyFrameParams, plan_key_frames

    ad = find_ad(store, ref)
    norms = norms or load_norms(store, min_face_frames=min_face_frames)
    standing = ad_norms(store, ad.key, norms, min_face_frames=min_face_frames)
    bundle = ad_bundle(store, ad.key)
    tl = bundle.timeline
    scoring = ad.index_params.scoring
    plan = plan_key_frames(tl.times, tl.raw, tl.smoothed, ad.labels, {e.emotion: e.mean for e in bundle.emotions},
                           KeyFrameParams(), scoring.window_s, prominence=scoring.prominence) if len(tl.times) else {}
    explained: list[ExplanationFigures] = []
    for index, time_s in bundle.explained:
        try:
            frame = store.explanation(ad.key, index)
        except CorruptExplanation as exc:
            explained.append(ExplanationFigures(index, time_s, None, None, {}, str(exc)))
            continue
        explained.extend(ExplanationFigures(index, frame.time_s, a.emotion, a.method, dict(a.figures))
                         for a in frame.attributions)
    return AdReport(ad, standing, norms, bundle.emotions, tl, scoring.prominence,
                    moments(bundle) if len(tl.times) else {},
                    tuple(KeyFrame(i, float(tl.times[i]), es) for i, es in plan.items()), tuple(explained))


def params_summary(ad: AdRow) -> str:
    """A one-line description of how the ad was indexed, for footers."""
    index = ad.index_params
    return (f"model {ad.model} {ad.model_version}; {index.sample_rate} frames/s; "
            f"smoothing {index.scoring.window_s} s; threshold {index.scoring.threshold}")


__all__ = ["RANK_COLUMNS", "details", "KeyFrame", "AdBundle", "AdReport", "AdStanding", "ExplanationFigures", "ad_report", "find_ad", "EmotionStanding", "FAILED", "RANKED", "THIN", "ad_bundle", "ad_norms",
           "emotions_in", "explanation", "library", "moments", "params_summary", "peaks", "rank", "timeline_table",
           "with_norms"]
