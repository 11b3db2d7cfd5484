"""Which moments of an ad to explain: each chosen emotion's real peaks.

For each emotion (the ad's top emotions by mean, or the ones asked for), the moments are the peaks
of its smoothed signal found by `emocore.scoring.find_moments` (`scipy.signal.find_peaks` with the
index's prominence threshold), at frames where the model saw something (a face, for the face
model): one sustained smile is one moment, however long. The highest peaks at or above `floor`
are taken, at most `top_moments`, and a peak closer than `min_gap_s` to a higher one already taken
is skipped. Within each moment (± half the smoothing window) the frame with the highest raw score
is the one explained: the smoothed signal finds the moment, the frame shows it. The result maps
frame index → the emotions to explain there, so a frame that peaks for two emotions is perturbed once.

The soundtrack's key moments (`plan_audio_moments`) are chosen the same way over its per-second
lanes: for each signal of `AudioKeyParams.signals` (laughter, applause/cheering and the cues funny
and exciting), `AudioLanes.peaks` gives its highest seconds at or above `floor` (0.5, the level
the share-of-time figures count as "above": more likely there than not), at most `top_moments`,
`min_gap_s` apart. The result maps second → the signals peaking there, so a second that peaks for
laughter and funny (a cue made of laughter alone) is perturbed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emocore.audio.lanes import CUE_NAMES, LANE_NAMES, SHARE_THRESHOLD, AudioLanes
from emocore.scoring import Peak, ScoringParams, find_moments

#: The soundtrack signals whose peaks are an ad's audio key moments.
AUDIO_KEY_SIGNALS: tuple[str, ...] = ("laughter", "applause", "funny", "exciting")


@dataclass(frozen=True)
class KeyFrameParams:
    top_emotions: int = 3
    """How many of the ad's emotions (highest mean first) to explain, when `emotions` is empty."""
    top_moments: int = 3
    """Peaks per emotion (the highest ones)."""
    emotions: tuple[str, ...] = ()
    """Explain these emotions instead of the ad's top ones."""
    min_gap_s: float = 2.0
    """A peak closer than this to a higher peak already chosen is skipped."""
    floor: float = 0.2
    """A moment below this smoothed score is not a peak worth explaining."""


def emotion_peaks(
    times: np.ndarray,
    raw: np.ndarray,
    smoothed: np.ndarray,
    column: int,
    prominence: float = ScoringParams().prominence,
) -> tuple[Peak, ...]:
    """One emotion's peaks, highest first: `find_moments` on its smoothed signal at the frames
    where the raw signal saw something (a face)."""
    seen = ~np.isnan(raw).all(axis=1) if len(raw) else np.zeros(0, dtype=bool)
    signal = np.where(seen, smoothed[:, column], np.nan) if len(raw) else np.zeros(0)
    return tuple(sorted(find_moments(times, signal, prominence), key=lambda p: (-p.value, p.index)))


def plan_key_frames(
    times: np.ndarray,
    raw: np.ndarray,
    smoothed: np.ndarray,
    labels: Sequence[str],
    means: dict[str, float | None],
    params: KeyFrameParams,
    window_s: float = 0.0,
    prominence: float = ScoringParams().prominence,
) -> dict[int, tuple[str, ...]]:
    """Frame index → emotions to explain at that frame (each emotion's highest real peaks)."""
    unknown = [e for e in params.emotions if e not in labels]
    if unknown:
        raise ValueError(f"unknown emotion {unknown[0]!r}; this model's emotions: {', '.join(labels)}")
    if params.emotions:
        chosen = list(params.emotions)
    else:
        ranked = sorted((m, e) for e, m in means.items() if m is not None)
        chosen = [e for _, e in reversed(ranked)][: params.top_emotions]
    plan: dict[int, list[str]] = {}
    for emotion in chosen:
        j = list(labels).index(emotion)
        values = np.nan_to_num(raw[:, j], nan=-1.0)
        seen = ~np.isnan(raw).all(axis=1)
        picked: list[int] = []
        for peak in emotion_peaks(times, raw, smoothed, j, prominence):
            if len(picked) == params.top_moments or not peak.value >= params.floor:
                break
            near = np.flatnonzero((np.abs(times - times[peak.index]) <= window_s / 2 + 1e-9) & seen)
            best = int(near[np.argmax(values[near])]) if len(near) else peak.index
            if best not in picked and all(abs(times[best] - times[p]) >= params.min_gap_s for p in picked):
                picked.append(best)
        for index in picked:
            plan.setdefault(index, []).append(emotion)
    return {index: tuple(plan[index]) for index in sorted(plan)}


@dataclass(frozen=True)
class AudioKeyParams:
    """Which seconds of a soundtrack `index` explains: each signal's highest peaks."""

    signals: tuple[str, ...] = AUDIO_KEY_SIGNALS
    """Lanes or cues (`emocore.audio.lanes`; not the loudness, which is dBFS, not a probability)."""
    top_moments: int = 3
    """Peaks per signal (the highest ones)."""
    floor: float = SHARE_THRESHOLD
    """A second below this value (a probability) is not a peak worth explaining."""
    min_gap_s: int = 2
    """A peak closer than this to a higher one of the same signal is skipped (seconds)."""

    def __post_init__(self) -> None:
        explainable = (*LANE_NAMES, *CUE_NAMES)
        bad = [s for s in self.signals if s not in explainable]
        if bad:
            raise ValueError(f"cannot explain the audio signal {bad[0]!r}; use {', '.join(explainable)}")
        if self.top_moments < 0 or self.min_gap_s < 1:
            raise ValueError("top_moments must be ≥ 0 and min_gap_s ≥ 1")


def plan_audio_moments(lanes: AudioLanes, params: AudioKeyParams) -> dict[int, tuple[str, ...]]:
    """Second → the signals to explain there (each signal's highest peaks, `AudioLanes.peaks`), by second."""
    plan: dict[int, list[str]] = {}
    for signal in params.signals:
        for second in lanes.peaks(signal, k=params.top_moments, min_value=params.floor, min_gap_s=params.min_gap_s):
            plan.setdefault(second, []).append(signal)
    return {second: tuple(plan[second]) for second in sorted(plan)}
