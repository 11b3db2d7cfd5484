"""From per-frame probabilities to what an analyst reads: a smoothed signal, per-ad figures, peaks.

The face model's per-frame output is noisy, so the raw values are kept as they are and every
aggregate and peak is computed on a smoothed signal: a centred moving average over `window_s`
seconds that skips frames without a face (NaN) instead of counting them as zero, and never crosses
a shot boundary (each shot is smoothed on its own). A frame whose whole window (within its shot)
has no face stays NaN. A lone face frame (no other face in its window) therefore keeps its raw
value: it is not made smaller, but it carries the evidence of one frame, and the ranking
(`emocore.norms`) shrinks an ad with little evidence towards the library's mean, so it cannot win.

Per ad and emotion (`EmotionSummary`):
- `mean`: mean of the smoothed signal over the frames with a face;
- `variance`: variance of the raw per-frame values over the frames with a face (the within-ad
  spread the ranking's prior strength is estimated from);
- `peak`, `peak_time_s`: the highest smoothed value and when it happens;
- `share_above`: share of the ad's sampled frames whose smoothed value is ≥ `threshold`
  (frames without a face count as not above, so a face that shows for one second cannot fill the ad);
and per ad: the evidence (`face_frames`: sampled frames the model scored a face in, or every scored
frame for a whole-frame model; `face_seconds` = face_frames / sample rate), the face coverage
(share of frames with a face) and `dominant_raw`, the emotion with the highest raw mean (the
model's own bias included; the evidence-aware dominant is read against a library's norms).
All per-ad figures are read at the frames where the raw signal saw a face.

Peaks (`find_moments`) are `scipy.signal.find_peaks` on the smoothed signal (frames without a face
read as 0) with a minimum prominence (`ScoringParams.prominence`): a moment must stand that much
above the lower of the two valleys around it. One sustained smile is one peak, however long, and
two moments separated by a dip of at least the prominence are two. Peaks are looked for on the
whole signal; since the smoothing never crosses a cut, a level that continues over a cut stays one
peak, and a jump at a cut is read as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emocore.params import ScoringParams  # defined with the other index parameters; re-exported here


@dataclass(frozen=True)
class EmotionSummary:
    emotion: str
    mean: float | None
    peak: float | None
    peak_time_s: float | None
    share_above: float
    variance: float | None = None
    """Variance of the raw per-frame values over the frames with a face (None with none)."""


@dataclass(frozen=True)
class AdSummary:
    emotions: tuple[EmotionSummary, ...]
    dominant_raw: str | None
    """The emotion with the highest raw mean (no norms applied: the model's bias included)."""
    face_coverage: float
    frames: int
    face_frames: int = 0
    """Sampled frames with a scored face (whole-frame models: every scored frame): the evidence."""
    face_seconds: float = 0.0
    """`face_frames` divided by the sample rate."""

    def by_emotion(self) -> dict[str, EmotionSummary]:
        return {e.emotion: e for e in self.emotions}


@dataclass(frozen=True)
class Peak:
    """One moment of one emotion: a peak of the smoothed signal."""

    index: int
    time_s: float
    value: float
    """The smoothed value at the peak."""
    prominence: float


def shot_ids(times: np.ndarray, shots: Sequence[float] = ()) -> np.ndarray:
    """(N,) the shot each time falls in: 0 before the first boundary, i after boundary i-1."""
    return np.searchsorted(np.asarray(sorted(shots), dtype=np.float64), np.asarray(times, dtype=np.float64),
                           side="right")


def smooth(times: np.ndarray, values: np.ndarray, window_s: float, shots: Sequence[float] = ()) -> np.ndarray:
    """Centred moving average over `window_s` seconds, per column, ignoring NaN, within each shot.

    `times` (N,) ascending seconds; `values` (N, L); `shots` the shot boundaries in seconds (a
    boundary at t starts a new shot at t): no window reaches across one. Returns (N, L) float32.
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
    if len(shots):
        shot = shot_ids(times, shots)
        lo = np.maximum(lo, np.searchsorted(shot, shot, side="left"))
        hi = np.minimum(hi, np.searchsorted(shot, shot, side="right"))
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


def find_moments(times: np.ndarray, column: np.ndarray, prominence: float) -> tuple[Peak, ...]:
    """The peaks of one emotion's smoothed signal, in time order.

    `column` (N,) is the smoothed signal with NaN where no face was seen (read as 0, so a face that
    appears is a rise). `scipy.signal.find_peaks` with `prominence`; a flat top is one peak at its
    middle, and two tops with a dip of less than `prominence` below the lower one between them are
    one moment (the higher top; the first on a tie). A NaN at the peak itself is never returned.
    """
    from scipy.signal import find_peaks  # scipy.signal takes seconds to import: only when peaks are asked for

    column = np.asarray(column, dtype=np.float64)
    if len(column) == 0:
        return ()
    filled = np.nan_to_num(column, nan=0.0)
    # pad with zeros so a signal that starts or ends high still has a peak there
    padded = np.concatenate([[0.0], filled, [0.0]])
    found, props = find_peaks(padded, prominence=max(prominence, 1e-9))
    peaks: list[Peak] = []
    for i, p in zip(found - 1, props["prominences"]):
        if np.isnan(column[i]):
            continue
        peak = Peak(int(i), float(times[i]), float(column[i]), float(p))
        # scipy gives two equally high tops with a shallow dip between them a full prominence each:
        # a dip of less than `prominence` below the lower top makes them one moment (the higher top)
        if peaks and min(peaks[-1].value, peak.value) - filled[peaks[-1].index:i + 1].min() < prominence:
            if peak.value > peaks[-1].value:
                peaks[-1] = peak
            continue
        peaks.append(peak)
    return tuple(peaks)


def summarise(
    times: np.ndarray,
    raw: np.ndarray,
    smoothed: np.ndarray,
    labels: Sequence[str],
    threshold: float,
    *,
    sample_rate: float | None = None,
) -> AdSummary:
    """Per-emotion figures, the ad's evidence and its raw dominant emotion.

    Figures are read from the smoothed signal, at the frames where the raw signal saw something
    (smoothing spreads values into neighbouring no-face frames; those are not moments of the ad).
    `sample_rate` (frames/s) turns face frames into seconds; None: read from the times' spacing.
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
            values = raw[seen, j]
            values = values[~np.isnan(values)]
            rows.append(EmotionSummary(
                emotion=label,
                mean=float(column[valid].mean()),
                peak=float(column[k]),
                peak_time_s=float(times[k]),
                share_above=float((column[valid] >= threshold).sum() / n),
                variance=float(values.var()) if len(values) else None,
            ))
        else:
            rows.append(EmotionSummary(label, None, None, None, 0.0))
    means = [(r.mean, r.emotion) for r in rows if r.mean is not None]
    if sample_rate is None:
        steps = np.diff(np.asarray(times, dtype=np.float64))
        sample_rate = 1.0 / float(np.median(steps)) if len(steps) and np.median(steps) > 0 else 1.0
    face_frames = int(seen.sum()) if n else 0
    return AdSummary(
        emotions=tuple(rows),
        dominant_raw=max(means)[1] if means else None,
        face_coverage=float(seen.mean()) if n else 0.0,
        frames=n,
        face_frames=face_frames,
        face_seconds=face_frames / sample_rate,
    )
