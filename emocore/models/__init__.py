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

`device` ("auto", "cpu", "cuda"; see emocore/models/device.py) says where the model runs; None
leaves it to the backend (the face model: the CPU). A backend that runs on the CPU only
(`EmotionModel.DEVICES`) refuses "cuda" with DeviceUnavailable and takes "auto" as the CPU.
"""

from __future__ import annotations

import logging

import torch

from emocore.errors import DeviceUnavailable
from emocore.models.base import EmotionModel, FrameScores
from emocore.models.device import resolve_device
from emocore.registry import MODELS

log = logging.getLogger("emocore")

#: The model used when none is named (the registry's default).
DEFAULT_MODEL: str = str(MODELS.default)


def known_models() -> list[str]:
    """Every accepted model name (the default first), as help texts write them ("trained:PATH")."""
    return MODELS.usages()


def load_model(name: str = DEFAULT_MODEL, *, device: str | torch.device | None = None, **options: object) -> EmotionModel:
    """Build the model registered under `name` (or `NAME:ARGUMENT`), with the backend's keyword
    options, on `device` ("auto", "cpu", "cuda"; None: the backend's own default).

    Raises DeviceUnavailable for "cuda" where PyTorch sees no GPU, or for a backend that runs on
    the CPU only.
    """
    if device is None:
        return MODELS.build(name, **options)
    wanted = str(device).strip().lower()
    chosen = resolve_device(wanted)
    backend_name = str(name).partition(":")[0]
    if backend_name not in MODELS.names():
        return MODELS.build(name, **options)  # raises UnknownModel, listing the known names
    supported = MODELS.resolve(backend_name).DEVICES
    if chosen.type not in supported:
        if wanted != "auto":
            raise DeviceUnavailable(f"model {backend_name!r} runs on the CPU only; use --device cpu")
        log.info("model %s runs on the CPU only: --device auto runs it there", backend_name)
        chosen = torch.device("cpu")
    if supported == ("cpu",):
        return MODELS.build(name, **options)  # a CPU-only backend takes no device option
    return MODELS.build(name, device=chosen, **options)


__all__ = ["DEFAULT_MODEL", "MODELS", "EmotionModel", "FrameScores", "known_models", "load_model", "resolve_device"]
