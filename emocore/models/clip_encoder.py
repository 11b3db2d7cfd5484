"""CLIP's image tower as a frame encoder for training a classifier: (N, dim) L2-normalised float32 features.

    encoder = make_encoder("clip:ViT-B-32", weights="ckpt/vit-b-32.pt")   # emocore.features, via the registry
    encoder = ClipEncoder("ViT-B-32", weights="laion2b_s34b_b79k")        # a tag in the Hugging Face cache
    encoder.encode(frames)                                                 # (N, 512)

Contract: the `emocore.features.FrameEncoder` interface. `describe()` names the architecture,
which weights were used, the open_clip release and the preprocessing; `state_dict()` is None for a
pretrained tag (fetchable by name), else the image tower's weights (keys "visual.*"), which a
checkpoint carries so the features can be made again. Registered as "clip" in `emocore.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import open_clip
import torch

from emocore.models.clip_net import ClipNet, pick_device
from emocore.models.clip_weights import DEFAULT_ARCH, SUGGESTED_TAG, ClipWeights, resolve_weights


class ClipEncoder:
    """CLIP's image tower as a frame encoder: (N, dim) L2-normalised float32 features."""

    NAME: ClassVar[str] = "clip"

    def __init__(self, arch: str = DEFAULT_ARCH, weights: str | Path | object | None = None, seed: int = 0,
                 random_weights: bool = False, allow_download: bool = False, *, device: str | None = None,
                 cache_dir: str | Path | None = None) -> None:
        resolved = resolve_weights(arch, weights, random_weights=random_weights, allow_download=allow_download,
                                   seed=seed, cache_dir=cache_dir)
        self._net = ClipNet(resolved, pick_device(device))
        self.name = f"{self.NAME}:{arch}"
        self.dim = self._net.dim

    @classmethod
    def from_name(cls, variant: str | None, weights: object = None, seed: int = 0) -> "ClipEncoder":
        """For `make_encoder("clip:<arch>", weights, seed)` ("clip" or "clip:" alone: ViT-B-32).

        weights: a checkpoint path, a cached tag, stored weights from a checkpoint, or "random" /
        "random:<seed>" (tests). Never downloads: fetch a tag once through `ClipModel(allow_download=True)`.
        """
        arch = variant or DEFAULT_ARCH
        if isinstance(weights, str) and (weights == "random" or weights.startswith("random:")):
            seed = int(weights.partition(":")[2] or seed)
            return cls(arch, None, seed, random_weights=True)
        if weights == "imagenet":  # the torchvision encoders' default means nothing to CLIP
            raise ValueError(f"CLIP encoders take a checkpoint path, a pretrained tag (e.g. {SUGGESTED_TAG}) "
                             "or 'random', not 'imagenet'")
        return cls(arch, weights, seed)

    @classmethod
    def from_net(cls, net: ClipNet) -> "ClipEncoder":
        """The encoder over an already loaded network (a `ClipModel`'s: no second copy of the weights)."""
        encoder = cls.__new__(cls)
        encoder._net = net
        encoder.name = f"{cls.NAME}:{net.weights.arch}"
        encoder.dim = net.dim
        return encoder

    @property
    def weights(self) -> ClipWeights:
        return self._net.weights

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "arch": self._net.weights.arch, "weights": self._net.weights.identity,
                "dim": self.dim, "normalised": True, "open_clip": open_clip.__version__,
                "preprocess": self._net.preprocess_description}

    def encode(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        return self._net.encode_images(frames)

    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """None for a pretrained tag (fetchable by name); else the image tower, keys "visual.*"."""
        if self._net.weights.tag_cfg:
            return None
        return {f"visual.{k}": v.detach().cpu().clone().contiguous()
                for k, v in self._net.model.visual.state_dict().items()}


__all__ = ["ClipEncoder"]
