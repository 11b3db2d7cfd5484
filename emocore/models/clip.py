"""Zero-shot emotion scores for any list of words: CLIP (open-clip-torch) compares frames with prompts.

    with ClipModel(["happy", "funny", "tense"], weights="laion2b_s34b_b79k") as model:
        scores = model.analyse(frames)          # (N, 3): a distribution over the three words

Contract:
- Each emotion word is put into every prompt ("a {} scene", ...); the word's text embedding is the
  mean of its prompts' L2-normalised embeddings, normalised again (computed once per model). A
  frame's image embedding is L2-normalised; its probabilities are the softmax over the words of
  `logit_scale × cosine similarity`, as in CLIP zero-shot classification. So a row always sums
  to 1 and says how the words compare **with each other** on that frame, not how strongly the frame
  shows any one of them: scores are relative to the words given, and changing the list changes
  every score. Scores are never NaN (a whole-frame model always has something to score).
- `labels` are the words (stripped, non-empty, unique). `version` names the architecture, which
  weights were used (a tag name, "file:<sha256[:12]>" or "random"), the open_clip release, and a
  hash of the words and prompts, so any change to them changes every cache key.
- Weights never come from the network unless asked (`allow_download=True`): where they come from
  is `emocore.models.clip_weights`. `random_weights=True` builds the architecture with seeded
  random weights: for tests only, the scores mean nothing.
- The network (`emocore.models.clip_net`) is built on first use, so a run that only skips
  unchanged files never loads it.
- `ClipEncoder` (`emocore.models.clip_encoder`) is the same image tower as a frame encoder for
  training a linear probe (`emocore.features.make_encoder("clip:ViT-B-32", weights)`); `ClipModel.encoder`
  shares this model's loaded network.
- Registered as "clip" in `emocore.registry`: `load_model("clip", emotions=[...], weights=...)`, and
  `load_model(model.spec)` rebuilds a model from what the cache stores.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch

from emocore.errors import ClipWeightsInvalid, ClipWeightsMissing
from emocore.models.base import EmotionModel, ExplainInput, FrameScores
from emocore.models.clip_encoder import ClipEncoder
from emocore.models.clip_net import ClipNet, pick_device
from emocore.models.clip_weights import DEFAULT_ARCH, ClipWeights, resolve_weights

DEFAULT_EMOTIONS: tuple[str, ...] = ("happy", "funny", "exciting", "sad", "scary", "calm")
DEFAULT_PROMPTS: tuple[str, ...] = ("a {} scene", "a {} moment in a video", "a still from a {} advert")


def _clean_words(values: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValueError(f"{what} must be a list of strings, not one string")
    cleaned = tuple(str(v).strip() for v in values)
    if not cleaned or any(not v for v in cleaned):
        raise ValueError(f"{what} must be a non-empty list of non-empty strings")
    folded = [v.casefold() for v in cleaned]
    duplicates = sorted({v for v in cleaned if folded.count(v.casefold()) > 1})
    if duplicates:
        raise ValueError(f"{what} must be unique; repeated: {', '.join(duplicates)}")
    return cleaned


class ClipModel(EmotionModel):
    """Zero-shot CLIP over the given emotion words: a distribution over those words per frame."""

    NAME = "clip"
    DEVICES = ("cpu", "cuda")

    def __init__(
        self,
        emotions: Sequence[str] = DEFAULT_EMOTIONS,
        *,
        arch: str = DEFAULT_ARCH,
        weights: str | Path | None = None,
        prompts: Sequence[str] = DEFAULT_PROMPTS,
        allow_download: bool = False,
        random_weights: bool = False,
        device: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.labels = _clean_words(emotions, "emotion words")
        self.prompts = _clean_words(prompts, "prompts")
        if any(p.count("{}") != 1 for p in self.prompts):
            raise ValueError('every prompt must hold "{}" exactly once, where the emotion word goes')
        self.weights = resolve_weights(arch, weights, random_weights=random_weights, allow_download=allow_download,
                                       seed=0, cache_dir=cache_dir)
        self._device = pick_device(device)
        identity = "random" if random_weights else self.weights.identity
        text = json.dumps({"words": list(self.labels), "prompts": list(self.prompts)}, ensure_ascii=False)
        self.version = (f"{arch}/{identity};open_clip{open_clip.__version__};"
                        f"text:{hashlib.sha256(text.encode()).hexdigest()[:12]}")
        self._lock = threading.Lock()
        self._net: ClipNet | None = None
        self._text: torch.Tensor | None = None
        if random_weights:
            source = "random"
        elif self.weights.tag_cfg or self.weights.path is None:
            source = self.weights.identity  # a tag: found again in the local hub cache
        else:
            source = str(self.weights.path.resolve())
        self._options = {"emotions": list(self.labels), "arch": arch, "prompts": list(self.prompts),
                         "weights": source}

    @classmethod
    def from_name(cls, argument: str | None, **options: object) -> "ClipModel":
        """`load_model("clip", **options)` builds from the options; `load_model("clip:{...}")` from a `spec`."""
        if argument is None:
            return cls(**options)  # type: ignore[arg-type]
        return from_spec(argument, **options)

    @property
    def spec(self) -> str:
        """`clip:{...}`: the words, prompts, architecture and weights, so `load_model` (for
        explanations on demand) rebuilds exactly this model from what the cache stores."""
        return "clip:" + json.dumps(self._options, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    def _loaded(self) -> tuple[ClipNet, torch.Tensor]:
        # built on first use, so a run that only skips unchanged files never loads the weights
        with self._lock:
            if self._net is None or self._text is None:
                self._net = ClipNet(self.weights, self._device)
                self._text = self._net.encode_words(self.labels, self.prompts)
            return self._net, self._text

    @property
    def encoder(self) -> ClipEncoder:
        """This model's image tower as a frame encoder (shares the loaded network)."""
        return ClipEncoder.from_net(self._loaded()[0])

    def encode_images(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) L2-normalised image embeddings of RGB uint8 frames."""
        return self._loaded()[0].encode_images(frames)

    def analyse(self, frames: Sequence[np.ndarray]) -> FrameScores:
        net, text = self._loaded()
        images = torch.from_numpy(net.encode_images(frames)).to(text.device)
        with torch.inference_mode():
            probabilities = torch.softmax(net.logit_scale * images @ text.T, dim=-1)
        return FrameScores(probabilities=probabilities.cpu().numpy().astype(np.float32, copy=False))

    def explanation_input(self, frame: np.ndarray, face: Sequence[float] | None,
                          side: int | None = None) -> ExplainInput | None:
        """The frame exactly as CLIP sees it: resized and centre-cropped to the model's input size.

        Perturbing at the model's own resolution wastes nothing and reproduces the model's score
        exactly (the crop goes through the same resize, a no-op at that size). `side`, if given,
        must be a multiple of the input size: the image is enlarged by pixel repetition. `region`
        is the crop's box in frame pixels. Models with other preprocessing explain the whole frame.
        """
        net = self._loaded()[0]
        if not net.batched:
            return super().explanation_input(frame, face) if side is None else super().explanation_input(frame, face, side)
        height, width = net.size
        if side is not None and (side % height or side % width or side // height != side // width):
            raise ValueError(f"side must be a multiple of the model's input size {height}")
        step = 1 if side is None else side // height
        batch = torch.from_numpy(np.ascontiguousarray(frame)[None]).permute(0, 3, 1, 2)
        image = net.resize_uint8(batch)[0].permute(1, 2, 0).contiguous().numpy()
        h, w = frame.shape[:2]
        if net.resize_mode == "squash":
            region = (0, 0, w, h)
        else:  # the short side fills the crop; the long side is cut in the middle
            keep = min(h, w)
            left, top = round((w - keep) / 2), round((h - keep) / 2)
            region = (left, top, left + keep, top + keep)
        image = np.repeat(np.repeat(image, step, axis=0), step, axis=1)

        def predict(images: np.ndarray) -> np.ndarray:
            rgb = np.asarray(images) if step == 1 else np.asarray(images)[:, ::step, ::step]
            return self.predict(list(np.ascontiguousarray(rgb)))

        return ExplainInput(image, predict, region)

    @property
    def device(self) -> torch.device:
        return self._device

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "prompts": list(self.prompts)}

    def close(self) -> None:
        with self._lock:
            self._net = None
            self._text = None


def from_spec(options: str, **extra: object) -> ClipModel:
    """The model a `ClipModel.spec` describes (`load_model("clip:{...}")`)."""
    try:
        parsed = dict(json.loads(options))
        weights = parsed["weights"]
        return ClipModel(parsed["emotions"], arch=parsed["arch"], prompts=parsed["prompts"],
                         weights=None if weights == "random" else weights, random_weights=weights == "random",
                         **extra)  # type: ignore[arg-type]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a CLIP model description: {options[:80]!r} ({exc})") from exc


__all__ = [
    "DEFAULT_EMOTIONS",
    "DEFAULT_PROMPTS",
    "ClipEncoder",
    "ClipModel",
    "ClipWeights",
    "ClipWeightsInvalid",
    "ClipWeightsMissing",
    "from_spec",
    "resolve_weights",
]
