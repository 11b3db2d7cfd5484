"""The CLIP network: an open_clip model with its preprocessing and tokenizer, giving image and text embeddings.

    net = ClipNet(resolve_weights("ViT-B-32", "laion2b_s34b_b79k"), pick_device(None))
    net.encode_images(frames)          # (N, D) L2-normalised float32 image embeddings
    net.encode_words(words, prompts)   # (L, D) unit vectors, one per word

Contract:
- Frames are preprocessed exactly as open_clip's own transform does (short side resized with
  antialiased bicubic, centre crop, CLIP mean/std), but with torch ops on uint8 batches of
  same-sized frames: 3.5× faster than its PIL transform, within 1/255 of it (see
  `ClipNet.resize_uint8`). Preprocessing modes the torch ops do not cover use open_clip's PIL transform.
- A word's embedding is the normalised mean of its prompts' normalised text embeddings.
- The network is built on the CPU with the weights' seed, its parameters frozen, then moved to the
  device. Random weights log a WARNING: their scores mean nothing (tests only).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from emocore.errors import ClipWeightsInvalid
from emocore.models.clip_weights import ClipWeights

log = logging.getLogger("emocore")

#: Frames per forward pass.
BATCH = 16
#: CLIP caps its learned temperature at 100.
MAX_LOGIT_SCALE = 100.0


def pick_device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_network(weights: ClipWeights, device: torch.device) -> torch.nn.Module:
    cfg = weights.tag_cfg
    preprocess = {key: cfg[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in cfg}
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(weights.seed)
        warnings.simplefilter("ignore", UserWarning)  # QuickGELU notes: the tag's own setting is applied
        try:
            model = open_clip.create_model(
                weights.arch,
                pretrained=None if weights.path is None else str(weights.path),
                force_quick_gelu=bool(cfg.get("quick_gelu", False)),
                force_preprocess_cfg=preprocess,
                device="cpu",
            )
        except Exception as exc:  # noqa: BLE001 — pickle, safetensors, shape errors: one message
            if weights.path is None:
                raise
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise ClipWeightsInvalid(f"{weights.path} is not a readable {weights.arch} checkpoint ({first_line})") from exc
    if weights.state is not None:
        visual = {k.removeprefix("visual."): v for k, v in weights.state.items() if k.startswith("visual.")}
        try:
            model.visual.load_state_dict(visual, strict=True)
        except RuntimeError as exc:
            raise ClipWeightsInvalid(f"the stored CLIP weights {weights.identity} do not fit {weights.arch}") from exc
    if weights.identity.startswith("random"):
        log.warning("CLIP %s has RANDOM weights (seed %d): its scores are meaningless (tests only)",
                    weights.arch, weights.seed)
    model = model.to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


class ClipNet:
    """An open_clip model with its preprocessing and tokenizer: image and text embeddings."""

    def __init__(self, weights: ClipWeights, device: torch.device) -> None:
        self.weights = weights
        self.device = device
        self.model = build_network(weights, device)
        pp = dict(self.model.visual.preprocess_cfg)
        size = pp["size"]
        self.size: tuple[int, int] = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.resize_mode = str(pp.get("resize_mode", "shortest"))
        self.interpolation = str(pp.get("interpolation", "bicubic"))
        self.mean = torch.tensor(pp["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(pp["std"], dtype=torch.float32).view(1, 3, 1, 1)
        # torch ops cover open_clip's usual modes; anything else uses its own PIL transform
        self.batched = (self.resize_mode == "squash" or (self.resize_mode == "shortest" and self.size[0] == self.size[1])) \
            and self.interpolation in ("bicubic", "bilinear")
        self._pil = None if self.batched else open_clip.image_transform_v2(
            open_clip.transform.PreprocessCfg(**pp), is_train=False)
        self.dim = int(self.model.visual.output_dim)
        self.preprocess_description = {"size": list(self.size), "resize_mode": self.resize_mode,
                                       "interpolation": self.interpolation, "mean": [round(float(v), 8) for v in pp["mean"]],
                                       "std": [round(float(v), 8) for v in pp["std"]]}

    def resize_uint8(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 frames -> (N, 3, h, w) uint8 model input, before normalisation.

        torchvision's uint8 antialiased resize is the same kernel as PIL's: within 1/255 of
        open_clip's PIL transform, 3.5× faster on 16 frames of 1280×720 (29 vs 104 ms, 1 thread).
        """
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        mode = InterpolationMode(self.interpolation)
        if self.resize_mode == "squash":
            return TF.resize(batch, list(self.size), interpolation=mode, antialias=True)
        if tuple(batch.shape[-2:]) != self.size:
            batch = TF.resize(batch, [self.size[0]], interpolation=mode, antialias=True)
        return TF.center_crop(batch, list(self.size))

    def _preprocess(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        out = torch.empty((len(frames), 3, *self.size), dtype=torch.float32)
        if not self.batched:
            from PIL import Image

            for i, frame in enumerate(frames):
                out[i] = self._pil(Image.fromarray(frame))
            return out
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            groups.setdefault(frame.shape, []).append(i)
        for rows in groups.values():
            batch = torch.from_numpy(np.stack([frames[i] for i in rows])).permute(0, 3, 1, 2)
            out[rows] = (self.resize_uint8(batch).float() / 255.0 - self.mean) / self.std
        return out

    def encode_images(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        for frame in frames:
            if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
                raise ValueError(f"frames must be RGB uint8 H×W×3 arrays, got {got}")
        if len(frames) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        with torch.inference_mode():
            for start in range(0, len(frames), BATCH):
                pixels = self._preprocess(frames[start:start + BATCH]).to(self.device)
                parts.append(F.normalize(self.model.encode_image(pixels).float(), dim=-1).cpu().numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)

    def encode_words(self, words: Sequence[str], prompts: Sequence[str]) -> torch.Tensor:
        """(L, D) unit vectors: per word, the normalised mean of its prompts' normalised embeddings."""
        tokenizer = open_clip.get_tokenizer(self.weights.arch)
        texts = [prompt.replace("{}", word) for word in words for prompt in prompts]
        with torch.inference_mode():
            embedded = F.normalize(self.model.encode_text(tokenizer(texts).to(self.device)).float(), dim=-1)
            per_word = embedded.view(len(words), len(prompts), -1).mean(dim=1)
            return F.normalize(per_word, dim=-1)

    @property
    def logit_scale(self) -> float:
        return float(min(self.model.logit_scale.exp().item(), MAX_LOGIT_SCALE))


__all__ = ["BATCH", "MAX_LOGIT_SCALE", "ClipNet", "build_network", "pick_device"]
