"""The emotion-model interface every backend implements.

A model has a name, a version (part of every cache key), its emotion labels, and
`analyse(frames) -> FrameScores`: one row of probabilities per frame. Frames are RGB uint8 arrays
(H×W×3). A model that looks at faces returns a NaN row for a frame with no face, so "nothing to
score" stays distinct from "scored zero", and says where the faces were.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NO_BOXES = np.zeros((0, 5), dtype=np.float32)


@dataclass(frozen=True)
class FrameScores:
    """What a model made of a batch of frames."""

    probabilities: np.ndarray
    """(N, L) float32, one row per frame in the model's label order; NaN row = nothing to score."""
    faces: tuple[np.ndarray, ...] | None = None
    """Face models: per frame a (k, 5) array of x1, y1, x2, y2, confidence in frame pixels,
    largest face first. None for models that score the whole frame."""

    @property
    def face_counts(self) -> np.ndarray | None:
        if self.faces is None:
            return None
        return np.array([len(boxes) for boxes in self.faces], dtype=np.int32)


class EmotionModel(ABC):
    """Labels plus a batched prediction function over RGB frames."""

    name: str
    version: str
    labels: tuple[str, ...]

    @abstractmethod
    def analyse(self, frames: Sequence[np.ndarray]) -> FrameScores:
        """Score a batch of RGB uint8 frames."""

    def predict(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """(N, L) probabilities; NaN rows where the model found nothing to score."""
        return self.analyse(frames).probabilities

    def describe(self) -> dict[str, object]:
        """What identifies this model's output: goes into cache keys and report footers."""
        return {"name": self.name, "version": self.version, "labels": list(self.labels)}

    def close(self) -> None:
        """Release what the model holds (threads, files). Idempotent."""

    def __enter__(self) -> "EmotionModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
