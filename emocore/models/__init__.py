"""Emotion models, built by name from `emocore.registry.MODELS` (heavy backends load only when asked).

    with load_model("fer") as model:
        scores = model.analyse(frames)
    with load_model("trained:models/ads.pt") as model:   # a classifier made by emocore.training
        ...
    with load_model("clip", emotions=["happy", "tense"], weights="laion2b_s34b_b79k") as model:
        ...

A name is a registered backend's `NAME` ("fer"), or "NAME:ARGUMENT" for a backend that reads an
argument ("trained:PATH"; "clip:{...}", the `spec` a CLIP model is stored under). An unknown name
raises `UnknownModel` listing the known ones.
"""

from __future__ import annotations

from emocore.models.base import EmotionModel, FrameScores
from emocore.registry import MODELS

#: The model used when none is named (the registry's default).
DEFAULT_MODEL: str = str(MODELS.default)


def known_models() -> list[str]:
    """Every accepted model name (the default first), as help texts write them ("trained:PATH")."""
    return MODELS.usages()


def load_model(name: str = DEFAULT_MODEL, **options: object) -> EmotionModel:
    """Build the model registered under `name` (or `NAME:ARGUMENT`), with the backend's keyword options."""
    return MODELS.build(name, **options)


__all__ = ["DEFAULT_MODEL", "MODELS", "EmotionModel", "FrameScores", "known_models", "load_model"]
