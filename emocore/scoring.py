"""From per-frame probabilities to what an analyst reads: a smoothed signal and per-ad figures.

The face model's per-frame output is noisy (MODELS.md), so the raw values are kept as they are and
every aggregate and peak is computed on a smoothed signal: a centred moving average over
`window_s` seconds that skips frames without a face (NaN) instead of counting them as zero. A frame
whose whole window has no face stays NaN.

Per ad and emotion (`EmotionSummary`):
- `mean`: mean of the smoothed signal over the frames with a face;
- `peak`, `peak_time_s`: the highest smoothed value and when it happens;
- `share_above`: share of the ad's sampled frames whose smoothed value is ≥ `threshold`
  (frames without a face count as not above, so a face that shows for one second cannot fill the ad);
and per ad: the dominant emotion (highest mean) and the face coverage (share of frames with a face).
All per-ad figures are read at the frames where the raw signal saw a face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScoringParams:
    window_s: float = 1.5
    """Width of the centred moving average, in seconds (0 or less: no smoothing)."""
    threshold: float = 0.5
    """Level above which a moment counts as carrying an emotion (for `share_above`)."""


@dataclass(frozen=True)
class EmotionSummary:
    emotion: str
    mean: float | None
    peak: float | None
    peak_time_s: float | None
    share_above: float


@dataclass(frozen=True)
class AdSummary:
    emotions: tuple[EmotionSummary, ...]
    dominant: str | None
    face_coverage: float
    frames: int

    def by_emotion(self) -> dict[str, EmotionSummary]:
        return {e.emotion: e for e in self.emotions}


def smooth(times: np.ndarray, values: np.ndarray, window_s: float) -> np.ndarray:
    """Centred moving average over `window_s` seconds, per column, ignoring NaN.

    `times` (N,) ascending seconds; `values` (N, L). Returns (N, L) float32.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(times) != len(values):
        raise ValueError("values must be (N, L) with one row per time")
    if window_s <= 0 or len(values) == 0:
        return values.astype(np.float32)
    times = np.asarray(times, dtype=np.float64)
    half = window_s / 2.0
    lo = np.searchsorted(times, times - half - 1e-9, side="left")
    hi = np.searchsorted(times, times + half + 1e-9, side="right")
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    # prefix sums give every window's sum and count in O(N·L)
    sums = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(filled, axis=0)])
    counts = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(present, axis=0)])
    total = sums[hi] - sums[lo]
    n = counts[hi] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return out.astype(np.float32)


def summarise(
    times: np.ndarray,
    raw: np.ndarray,
    smoothed: np.ndarray,
    labels: Sequence[str],
    threshold: float,
) -> AdSummary:
    """Per-emotion figures and the ad's dominant emotion.

    Figures are read from the smoothed signal, at the frames where the raw signal saw something
    (smoothing spreads values into neighbouring no-face frames; those are not moments of the ad).
    """
    raw = np.asarray(raw, dtype=np.float64)
    smoothed = np.asarray(smoothed, dtype=np.float64)
    n = len(times)
    seen = ~np.isnan(raw).all(axis=1) if n else np.zeros(0, dtype=bool)
    rows = []
    for j, label in enumerate(labels):
        column = np.where(seen, smoothed[:, j], np.nan) if n else np.zeros(0)
        valid = ~np.isnan(column)
        if valid.any():
            k = int(np.nanargmax(column))
            rows.append(EmotionSummary(
                emotion=label,
                mean=float(column[valid].mean()),
                peak=float(column[k]),
                peak_time_s=float(times[k]),
                share_above=float((column[valid] >= threshold).sum() / n),
            ))
        else:
            rows.append(EmotionSummary(label, None, None, None, 0.0))
    means = [(r.mean, r.emotion) for r in rows if r.mean is not None]
    return AdSummary(
        emotions=tuple(rows),
        dominant=max(means)[1] if means else None,
        face_coverage=float(seen.mean()) if n else 0.0,
        frames=n,
    )
