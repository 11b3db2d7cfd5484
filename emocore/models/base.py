"""The emotion-model interface every backend implements.

A model has a name, a version (part of every cache key), its emotion labels, and
`analyse(frames) -> FrameScores`: one row of probabilities per frame. Frames are RGB uint8 arrays
(H×W×3). A model that looks at faces returns a NaN row for a frame with no face, so "nothing to
score" stays distinct from "scored zero", and says where the faces were.

Frames are often scaled down before they reach a model (the indexer's `max_side`).
`analyse_scaled(frames, scales)` tells the model how many pixels of the original, upright
frame one pixel of each frame spans, for models with rules in original pixels (the face model's
minimum face size); the default ignores it and calls `analyse`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np
import torch

from emocore.errors import UnknownModel
from emocore.models.device import batches_for

NO_BOXES = np.zeros((0, 5), dtype=np.float32)


@dataclass(frozen=True)
class FrameScores:
    """What a model made of a batch of frames."""

    probabilities: np.ndarray
    """(N, L) float32, one row per frame in the model's label order; NaN row = nothing to score."""
    faces: tuple[np.ndarray, ...] | None = None
    """Face models: per frame a (k, 5) array of x1, y1, x2, y2, confidence in frame pixels,
    largest face first. None for models that score the whole frame."""

    face_px: np.ndarray | None = None
    """Face models: (N,) float64, the scored face's size (the shorter side of its box) in
    original-frame pixels; NaN where no face is scored. None for models that score the whole frame."""

    @property
    def face_counts(self) -> np.ndarray | None:
        """(N,) faces per frame (those that passed the model's rules), or None."""
        if self.faces is None:
            return None
        return np.array([len(boxes) for boxes in self.faces], dtype=np.int32)


@dataclass(frozen=True)
class ExplainInput:
    """What an explainer perturbs for one frame, and the prediction function over it."""

    image: np.ndarray
    """H×W×3 uint8: the part of the frame the model's score depends on, as the model reads it
    (the face model: its grey crop, repeated in the three channels), possibly enlarged."""
    predict: Callable[[np.ndarray], np.ndarray]
    """(N, h, w, 3) uint8 images like `image` → (N, L) probabilities."""
    region: tuple[int, int, int, int]
    """Where `image` lies in the frame: left, top, right, bottom pixels (may pass the edges)."""


class _RegisteredName:
    """`EmotionModel.name` by default: the class's `NAME`. Without `__set__` it is a non-data
    descriptor, so a subclass's class attribute or an instance's own `name` takes its place."""

    def __get__(self, instance: object, owner: type) -> str:
        return str(getattr(owner, "NAME", ""))


class EmotionModel(ABC):
    """Labels plus a batched prediction function over RGB frames."""

    NAME: ClassVar[str] = ""
    """The name the backend is registered under in `emocore.registry.MODELS` ("fer")."""
    DEVICES: ClassVar[tuple[str, ...]] = ("cpu",)
    """Device types the backend runs on; one that lists more takes a `device` option (a torch.device)."""
    name: str = _RegisteredName()  # type: ignore[assignment]
    """The model's name in descriptions and cache keys: its class's `NAME`, unless a subclass or an
    instance sets its own (a wrapper taking its inner model's name)."""
    version: str
    labels: tuple[str, ...]
    frames_per_call: int = batches_for("cpu").detect_frames
    """How many sampled frames the indexer hands `analyse_scaled` at once, as it decodes them: few enough
    that scoring starts soon after decoding does and ends soon after it, enough for the nets to batch
    (the CPU's batch in emocore/models/device.py; a backend on another device takes that device's)."""

    @classmethod
    def from_name(cls, argument: str | None, **options: object) -> "EmotionModel":
        """Build the model for `load_model("NAME")` (argument None) or `load_model("NAME:ARGUMENT")`.

        The default takes no argument: the options go to the constructor. A backend whose name
        carries an argument ("trained:PATH") overrides this.
        """
        if argument is not None:
            raise UnknownModel(f"unknown model {cls.NAME + ':' + argument!r}: model {cls.NAME!r} takes no argument")
        return cls(**options)  # type: ignore[call-arg]

    @abstractmethod
    def analyse(self, frames: Sequence[np.ndarray]) -> FrameScores:
        """Score a batch of RGB uint8 frames."""

    def analyse_scaled(self, frames: Sequence[np.ndarray], scales: Sequence[float]) -> FrameScores:
        """`analyse` for frames scaled from their original: `scales[i]` is how many original
        (upright) pixels one pixel of `frames[i]` spans (1.0 at full size, 1.5 for 1920 px shown
        at 1280). Models whose rules are in original pixels override this; the default scores the
        frames as given."""
        return self.analyse(frames)

    def predict(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """(N, L) probabilities; NaN rows where the model found nothing to score."""
        return self.analyse(frames).probabilities

    def explanation_input(self, frame: np.ndarray, face: Sequence[float] | None, side: int = 160) -> ExplainInput | None:
        """The region of `frame` to explain and a prediction function over it; None if nothing to explain.

        The default scores the whole frame, scaled to `side` pixels on its long side (each
        perturbed image is scaled back up to the frame's size before `predict`). Face models
        override this to explain the scored face, given by `face` (x1, y1, x2, y2, ...).
        """
        h, w = frame.shape[:2]
        scale = min(1.0, side / max(h, w))
        small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)

        def predict(images: np.ndarray) -> np.ndarray:
            return self.predict([cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR) for img in images])

        return ExplainInput(small, predict, (0, 0, w, h))

    @property
    def device(self) -> torch.device:
        """Where the model runs (never part of `describe()`: results agree across devices)."""
        return torch.device("cpu")

    @property
    def spec(self) -> str:
        """The name `load_model` rebuilds this model from (stored with every ad it indexes)."""
        return self.name

    def describe(self) -> dict[str, object]:
        """What identifies this model's output: goes into cache keys and report footers."""
        return {"name": self.name, "version": self.version, "labels": list(self.labels)}

    def close(self) -> None:
        """Release what the model holds (threads, files). Idempotent."""

    def __enter__(self) -> "EmotionModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
