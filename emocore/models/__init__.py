"""Emotion models, registered by name and imported lazily (heavy backends load only when asked).

    with load_model("fer") as model:
        scores = model.analyse(frames)
"""

from __future__ import annotations

import importlib

from emocore.errors import UnknownModel
from emocore.models.base import EmotionModel, FrameScores

#: name -> "module:factory". The factory takes keyword options and returns an EmotionModel.
BACKENDS: dict[str, str] = {
    "fer": "emocore.models.fer:FaceEmotionModel",
}

DEFAULT_MODEL = "fer"


def load_model(name: str = DEFAULT_MODEL, **options: object) -> EmotionModel:
    """Build the model registered under `name`."""
    if name not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise UnknownModel(f"unknown model {name!r}; known models: {known}")
    module_name, factory_name = BACKENDS[name].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(**options)


__all__ = ["BACKENDS", "DEFAULT_MODEL", "EmotionModel", "FrameScores", "load_model"]
