"""A classifier trained with `emocore.training`, as an emotion model that scores single frames.

    with load_model("trained:models/ads.pt") as model:
        model.labels                      # the checkpoint's emotions, e.g. ("funny", "exciting")
        model.analyse(frames).probabilities

Each frame is encoded by the checkpoint's frame encoder and scored by the trained head as a
one-frame video (`VideoHead.frame_logits`), then passed through a sigmoid: emotions are independent
(multi-label), so a row does not sum to 1. The whole frame is scored (no faces), so explainers use
the base class's whole-frame `explanation_input`. The version is the checkpoint file's SHA-256
prefix: retraining makes a new version, and so new cache keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from emocore.errors import UnknownModel
from emocore.files import content_hash
from emocore.models.base import EmotionModel, FrameScores
from emocore.training import frame_encoder_for, head_for, load_checkpoint


class TrainedModel(EmotionModel):
    """Frame encoder + trained head from one checkpoint file (CheckpointError if it is not one)."""

    NAME = "trained"

    @classmethod
    def from_name(cls, argument: str | None, **options: object) -> "TrainedModel":
        """`load_model("trained:PATH")`: the checkpoint's path is the name's argument."""
        if not argument:
            raise UnknownModel(f"model {cls.NAME!r} needs an argument: trained:PATH")
        return cls(argument, **options)  # type: ignore[arg-type]

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        checkpoint = load_checkpoint(self.path)
        self.version = content_hash(self.path)[:12]
        self.labels = checkpoint.labels
        self.encoder = frame_encoder_for(checkpoint)  # CheckpointError for soundtrack features
        self._head = head_for(checkpoint)

    def analyse(self, frames: Sequence[np.ndarray]) -> FrameScores:
        if len(frames) == 0:
            return FrameScores(probabilities=np.zeros((0, len(self.labels)), dtype=np.float32), faces=None)
        features = self.encoder.encode(frames)
        with torch.inference_mode():
            logits = self._head.frame_logits(torch.from_numpy(features))
        return FrameScores(probabilities=torch.sigmoid(logits).numpy().astype(np.float32), faces=None)

    @property
    def spec(self) -> str:
        """`trained:<absolute path>`: what `load_model` takes to build this model again."""
        return f"trained:{self.path.resolve()}"

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "encoder": self.encoder.describe()}


__all__ = ["TrainedModel"]
