"""Emotion models, registered by name and imported lazily (heavy backends load only when asked).

    with load_model("fer") as model:
        scores = model.analyse(frames)
    with load_model("trained:models/ads.pt") as model:   # a classifier made by emocore.training
        ...

A name is either a registered backend ("fer") or a prefix form "<prefix>:<argument>" whose
factory takes the argument first ("trained:PATH").
"""

from __future__ import annotations

import importlib

from emocore.errors import UnknownModel
from emocore.models.base import EmotionModel, FrameScores

#: name -> "module:factory". The factory takes keyword options and returns an EmotionModel.
BACKENDS: dict[str, str] = {
    "fer": "emocore.models.fer:FaceEmotionModel",
    "clip": "emocore.models.clip:ClipModel",
}

#: prefix -> ("module:factory", how the name is written). The factory takes the text after
#: "<prefix>:" as its first argument, then keyword options.
PREFIXED: dict[str, tuple[str, str]] = {
    "trained": ("emocore.models.trained:TrainedModel", "trained:PATH"),
    "clip": ("emocore.models.clip:from_spec", "clip"),
}

DEFAULT_MODEL = "fer"


def _factory(target: str):  # noqa: ANN202 — a model class or function
    module_name, factory_name = target.split(":")
    return getattr(importlib.import_module(module_name), factory_name)


def known_models() -> list[str]:
    """Every accepted model name (the default first), prefix forms included, for help texts and errors."""
    names = sorted(BACKENDS, key=lambda name: (name != DEFAULT_MODEL, name))
    return list(dict.fromkeys(names + sorted(form for _, form in PREFIXED.values())))


def load_model(name: str = DEFAULT_MODEL, **options: object) -> EmotionModel:
    """Build the model registered under `name` (or `prefix:argument`)."""
    if name in BACKENDS:
        return _factory(BACKENDS[name])(**options)
    prefix, colon, argument = name.partition(":")
    if colon and prefix in PREFIXED:
        target, form = PREFIXED[prefix]
        if not argument:
            raise UnknownModel(f"model {name!r} needs an argument: {form}")
        return _factory(target)(argument, **options)
    raise UnknownModel(f"unknown model {name!r}; known models: {', '.join(known_models())}")


__all__ = ["BACKENDS", "DEFAULT_MODEL", "PREFIXED", "EmotionModel", "FrameScores", "known_models", "load_model"]
