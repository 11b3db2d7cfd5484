"""Which moments of an ad to explain: each chosen emotion's peaks.

For each emotion (the ad's top emotions by mean, or the ones asked for), the moments with the
highest smoothed score are taken greedily, at least `min_gap_s` apart, where the score is
meaningful: at or above `floor`, and at a frame where the model saw something (a face, for the face
model). Within each moment (± half the smoothing window) the frame with the highest raw score is
the one explained: the smoothed signal finds the moment, the frame shows it. The result maps frame index → the emotions to explain there, so a frame that peaks for two
emotions is perturbed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KeyFrameParams:
    top_emotions: int = 3
    """How many of the ad's emotions (highest mean first) to explain, when `emotions` is empty."""
    top_moments: int = 3
    """Peaks per emotion."""
    emotions: tuple[str, ...] = ()
    """Explain these emotions instead of the ad's top ones."""
    min_gap_s: float = 2.0
    floor: float = 0.2
    """A moment below this smoothed score is not a peak worth explaining."""


def plan_key_frames(
    times: np.ndarray,
    raw: np.ndarray,
    smoothed: np.ndarray,
    labels: Sequence[str],
    means: dict[str, float | None],
    params: KeyFrameParams,
    window_s: float = 0.0,
) -> dict[int, tuple[str, ...]]:
    """Frame index → emotions to explain at that frame (each emotion's peaks)."""
    unknown = [e for e in params.emotions if e not in labels]
    if unknown:
        raise ValueError(f"unknown emotion {unknown[0]!r}; this model's emotions: {', '.join(labels)}")
    if params.emotions:
        chosen = list(params.emotions)
    else:
        ranked = sorted((m, e) for e, m in means.items() if m is not None)
        chosen = [e for _, e in reversed(ranked)][: params.top_emotions]
    seen = ~np.isnan(raw).all(axis=1) if len(raw) else np.zeros(0, dtype=bool)
    plan: dict[int, list[str]] = {}
    for emotion in chosen:
        j = list(labels).index(emotion)
        column = np.where(seen, smoothed[:, j], np.nan)
        values = np.nan_to_num(np.where(seen, raw[:, j], np.nan), nan=-1.0)
        picked: list[int] = []
        for index in np.argsort(-np.nan_to_num(column, nan=-1.0), kind="stable"):
            if len(picked) == params.top_moments or not column[index] >= params.floor:
                break
            near = np.flatnonzero(np.abs(times - times[index]) <= window_s / 2 + 1e-9)
            best = int(near[np.argmax(values[near])])
            if best not in picked and all(abs(times[best] - times[p]) >= params.min_gap_s for p in picked):
                picked.append(best)
        for index in picked:
            plan.setdefault(index, []).append(emotion)
    return {index: tuple(plan[index]) for index in sorted(plan)}
