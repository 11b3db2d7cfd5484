"""Read-side queries over the cache, shaped for browsing: tables and bundles the dashboard shows.

Everything here only reads (`Store(root, readonly=True)`), so it is safe while an index runs, and
answers in one or two SQL queries however many ads the cache holds (the library of 10,000 ads is
one query for the ads and one for their emotion figures, pivoted in pandas).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from emocore.explain.keyframes import KeyFrameParams, plan_key_frames
from emocore.scoring import EmotionSummary
from emocore.store import AdRow, FrameExplanation, Store, Timeline

LIBRARY_COLUMNS = ("key", "name", "path", "status", "error", "duration_s", "frames", "face_coverage",
                   "dominant", "model", "model_version", "indexed_at")


def library(store: Store) -> pd.DataFrame:
    """One row per ad: identity, status and, per emotion, `mean_<e>`, `peak_<e>`, `peak_time_<e>`, `share_<e>`."""
    ads = pd.read_sql_query(f"SELECT {', '.join(LIBRARY_COLUMNS)} FROM ads", store.connection)
    figures = pd.read_sql_query("SELECT ad_key, emotion, mean, peak, peak_time_s, share_above FROM emotions",
                                store.connection)
    if not figures.empty:
        wide = figures.pivot(index="ad_key", columns="emotion")
        wide.columns = [f"{ {'mean': 'mean', 'peak': 'peak', 'peak_time_s': 'peak_time', 'share_above': 'share'}[a]}_{e}"
                        for a, e in wide.columns]
        ads = ads.merge(wide, left_on="key", right_index=True, how="left")
    return ads.sort_values("indexed_at", ascending=False, kind="stable").reset_index(drop=True)


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
    for index, time_s, _ in store.explained_frames(ad.key):
        seen.setdefault(index, time_s)
    return AdBundle(ad, store.timeline(ad.key), store.emotions(ad.key), tuple(sorted(seen.items(), key=lambda x: x[1])))


def timeline_table(bundle: AdBundle) -> pd.DataFrame:
    """The data behind an ad's timeline chart, for CSV export: raw and smoothed per emotion, faces, shots."""
    tl, labels = bundle.timeline, bundle.ad.labels
    table = pd.DataFrame({"time_s": tl.times, "faces": tl.faces})
    for j, label in enumerate(labels):
        table[f"{label}_raw"] = tl.raw[:, j]
        table[f"{label}_smoothed"] = tl.smoothed[:, j]
    shot = np.searchsorted(np.asarray(tl.shots), tl.times, side="right")
    table["shot"] = shot
    return table


def explanation(store: Store, key: str, frame_idx: int) -> FrameExplanation:
    return store.explanation(key, frame_idx)


def peaks(bundle: AdBundle, top: int = 3, min_gap_s: float = 2.0) -> dict[str, list[tuple[float, float]]]:
    """Per emotion, its `top` peaks (time, smoothed value): the indexer's key-frame rule (frames
    with a face, `min_gap_s` apart, the best raw frame of each moment) applied to every emotion,
    without the floor, so even a weak emotion shows where it is strongest."""
    tl, labels = bundle.timeline, bundle.ad.labels
    window = float(bundle.ad.params.get("index", {}).get("scoring", {}).get("window_s", 0.0))
    plan = plan_key_frames(tl.times, tl.raw, tl.smoothed, labels, {},
                           KeyFrameParams(emotions=tuple(labels), top_moments=top, min_gap_s=min_gap_s, floor=0.0),
                           window)
    found: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    for index, emotions in plan.items():
        for emotion in emotions:
            found[emotion].append((float(tl.times[index]), float(tl.smoothed[index, labels.index(emotion)])))
    return found


def params_summary(ad: AdRow) -> str:
    """A one-line description of how the ad was indexed, for footers."""
    index = ad.params.get("index", {}) if isinstance(ad.params, dict) else {}
    scoring = index.get("scoring", {}) if isinstance(index, dict) else {}
    return (f"model {ad.model} {ad.model_version}; {index.get('sample_rate', '?')} frames/s; "
            f"smoothing {scoring.get('window_s', '?')} s; threshold {scoring.get('threshold', '?')}")


__all__ = ["AdBundle", "ad_bundle", "emotions_in", "explanation", "library", "params_summary", "peaks",
           "timeline_table"]
