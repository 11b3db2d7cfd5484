"""Frame features for the trainable classifier: encoders by name, and cached per-video feature arrays.

    encoder = make_encoder("resnet18", weights="imagenet")
    features = video_features(path, encoder, sample_rate=1.0, max_side=480, cache_dir=Path("cache/features"))
    features.shape                       # (T sampled frames, encoder.dim), float32

Contract:
- A `FrameEncoder` turns RGB uint8 frames (any sizes) into one float32 vector per frame. Its
  `describe()` is plain JSON-able data naming everything that changes the vectors (backbone,
  which weights were really used, preprocessing); it goes into cache keys and checkpoints.
  `state_dict()` returns the weights a checkpoint must carry to reproduce the features, or None
  when the weights can be fetched again by name (ImageNet).
- Encoders are built by name from `emocore.registry.ENCODERS` with `make_encoder`: "resnet18",
  "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0" (torchvision, here: one class per
  backbone, each declaring its `NAME`), "clip:ViT-B-32" (`emocore.models.clip_encoder`, imported on
  first use). An unknown name raises `UnknownModel` listing the known ones.
- Weights: "imagenet" fetches torchvision's IMAGENET1K_V1 weights (the torch hub cache first, then
  the network with a short timeout); when that fails the encoder logs a WARNING and uses seeded
  random weights, and `describe()` says so ("random:<seed>"). A path loads a state dict with
  `weights_only=True` ("file:<sha256[:12]>"); None gives seeded random weights; `StoredWeights`
  restores weights carried by a checkpoint under the label they were made with; "random" or
  "random:<seed>" asks for random weights by name (as the CLIP encoder accepts too).
- A `VideoFeatureSource` is the sibling of a frame encoder for features that are not one image's:
  it reads the whole video file (its soundtrack, its faces) into one row per point of the sampling
  grid (`sampling_grid`: times k / sample_rate, k = 0, 1, ...), so the pooling treats its rows like
  frame features. Sources are built by name from `emocore.registry.FEATURE_SOURCES` through the same
  `make_encoder`: "audioset" (YAMNet's 521 AudioSet class probabilities per grid step, plus a
  has-audio flag; "audioset:embedding" its 1,024-value embedding instead), "faces" (the default face
  model's 7 emotion probabilities of each sampled frame's largest face, plus a face-present flag),
  both in `emocore.models.feature_sources`. "A+B" (e.g. "faces+audioset") concatenates sources row
  by row on the one grid (`CombinedFeatures`; rows past the shortest part are dropped). Their
  weights are fixed (what `python cli.py setup` fetched): they accept None, "imagenet" (the
  default: "the backbone's standard pretrained weights") or their own label `FIXED`, and say which
  model made them in `describe()`.
- `video_features` decodes the video once (sequential sampling), encodes in batches (a source
  extracts its own way), and caches the array as `<cache_dir>/<sha256 of the file>_<hash of
  encoder + sampling>.npy`, written atomically. A cache file that does not load as the expected
  array is recomputed. Unreadable videos raise `VideoError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from emocore.errors import EncoderWeightsError, UnknownModel, VideoError
from emocore.files import content_hash, download, save_array
from emocore.registry import ENCODERS, FEATURE_SOURCES
from emocore.video import open_video

log = logging.getLogger("emocore")

#: Frames per encoder call (batch 8–16 was the fastest for resnet18 on the CPU).
BATCH = 16
#: Bump when the feature computation changes in a way `describe()` does not show: old caches die.
FEATURES_SCHEMA = 1
#: Seconds to wait for the ImageNet weights server to answer before falling back to random weights.
IMAGENET_TIMEOUT_S = 10.0
#: The weights name meaning "the backbone's standard pretrained weights".
IMAGENET = "imagenet"
#: The weights label of a feature source: its model's own weights, fetched by `python cli.py setup`.
FIXED = "fixed"
#: How a combination of feature sources is written: "faces+audioset".
COMBINE = "+"

#: torchvision backbone -> (pooled feature size, prefix of the classifier's keys in its state dict)
BACKBONES: dict[str, tuple[int, str]] = {
    "resnet18": (512, "fc."),
    "mobilenet_v3_small": (576, "classifier."),
    "mobilenet_v3_large": (960, "classifier."),
    "efficientnet_b0": (1280, "classifier."),
}


@dataclass(frozen=True)
class StoredWeights:
    """Encoder weights carried by a checkpoint, with the `describe()` label they were made under."""

    label: str
    """e.g. "random:0" or "file:0123456789ab"."""
    state: Mapping[str, torch.Tensor]


WeightsSpec = str | Path | StoredWeights | None


@runtime_checkable
class FrameEncoder(Protocol):
    """RGB uint8 frames -> one float32 feature vector per frame."""

    name: str
    """The spec it was made from, e.g. "resnet18" or "clip:ViT-B-32"."""
    dim: int

    def describe(self) -> dict[str, object]:
        """Everything that changes the features, as plain JSON-able data."""
        ...

    def encode(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """(N, dim) float32 features of N RGB uint8 frames (H×W×3, sizes may differ)."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """Weights a checkpoint must carry to reproduce the features; None if fetchable by name."""
        ...


@runtime_checkable
class VideoFeatureSource(Protocol):
    """A video file -> (T, dim) float32 features, one row per point of the sampling grid.

    Not an image encoder: it reads what it needs from the file itself (the soundtrack, the faces
    of the sampled frames). See the module docstring."""

    name: str
    """The spec it was made from, e.g. "audioset" or "faces+audioset"."""
    dim: int

    def describe(self) -> dict[str, object]:
        """Everything that changes the features, as plain JSON-able data (with "kind": "video")."""
        ...

    def extract(self, path: Path, *, sample_rate: float, max_side: int, cache_dir: Path | None) -> np.ndarray:
        """(T, dim) float32 features of the video at `path` (VideoError when it cannot be read)."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor] | None:
        """None: a source's weights are fetched by `python cli.py setup`, never carried."""
        ...


#: What `make_encoder` builds and `train` pools: a frame encoder or a video feature source.
Backbone = FrameEncoder | VideoFeatureSource


def known_encoders() -> list[str]:
    """Names accepted by `make_encoder`, as help texts write them ("clip:ARCH"), for help texts and errors."""
    return ENCODERS.usages()


def known_feature_sources() -> list[str]:
    """The video feature sources `make_encoder` also builds, as help texts write them."""
    return FEATURE_SOURCES.usages()


def known_backbones() -> list[str]:
    """Everything `--backbone` takes: the frame encoders, the feature sources and their combination."""
    return known_encoders() + known_feature_sources() + [f"A{COMBINE}B (sources combined, e.g. faces+audioset)"]


def make_encoder(spec: str, weights: WeightsSpec = None, seed: int = 0) -> Backbone:
    """The frame encoder named by `spec` ("resnet18", "clip:ViT-B-32", ...: `emocore.registry.ENCODERS`),
    or the video feature source ("audioset", "faces", "faces+audioset": `emocore.registry.FEATURE_SOURCES`)."""
    spec = str(spec)
    if COMBINE in spec:
        return CombinedFeatures.from_spec(spec, weights)
    if spec.partition(":")[0] in FEATURE_SOURCES:
        return FEATURE_SOURCES.build(spec, weights)
    return ENCODERS.build(spec, weights, seed)


def check_fixed_weights(source: str, weights: object, model: str) -> None:
    """A feature source's weights are its model's own: None (none asked for), "imagenet" (the default,
    "standard pretrained weights") or `FIXED` pass; anything else is a ValueError naming why."""
    if weights is None or (isinstance(weights, str) and weights in (IMAGENET, FIXED)):
        return
    raise ValueError(f"{source} features come from the fixed {model} weights fetched by `python cli.py setup`: "
                     f"--weights does not apply to them (got {weights!r}; leave it out)")


def sampling_grid(duration_s: float, sample_rate: float) -> np.ndarray:
    """The times (seconds) a feature source gives rows for: k / sample_rate for k = 0 … ⌈duration ×
    rate⌉ − 1 (at least one row), the multiples of the period `Video.sample` samples frames at."""
    count = max(1, math.ceil(float(duration_s) * sample_rate - 1e-9))
    return np.arange(count, dtype=np.float64) / sample_rate


class CombinedFeatures:
    """Feature sources side by side: row k is the concatenation of each part's row k (one grid for all).

    Each part is extracted (and cached) on its own, so "faces+audioset" after "faces" and
    "audioset" decodes nothing again; rows past the shortest part are dropped (a part can hold one
    row more when the last frame falls before the end of the grid)."""

    NAME: ClassVar[str] = "combined"

    def __init__(self, parts: Sequence[VideoFeatureSource]) -> None:
        if len(parts) < 2:
            raise ValueError("a combination needs at least two feature sources")
        names = [part.name for part in parts]
        if len(set(names)) != len(names):
            raise UnknownModel(f"a feature source is combined with itself: {COMBINE.join(names)}")
        self.parts = tuple(parts)
        self.name = COMBINE.join(names)
        self.dim = sum(part.dim for part in parts)

    @classmethod
    def from_spec(cls, spec: str, weights: WeightsSpec = IMAGENET) -> "CombinedFeatures":
        """"faces+audioset" and the like: each part a registered feature source (not an image backbone)."""
        parts = []
        for part in spec.split(COMBINE):
            part = part.strip()
            name = part.partition(":")[0]
            if name in ENCODERS:
                raise UnknownModel(f"only feature sources combine ({', '.join(known_feature_sources())}); "
                                   f"{name!r} is an image backbone")
            if name not in FEATURE_SOURCES:
                raise UnknownModel(f"unknown feature source {part!r} in {spec!r}; known feature sources: "
                                   f"{', '.join(known_feature_sources())}")
            parts.append(FEATURE_SOURCES.build(part, weights))
        return cls(parts)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "backbone": self.name, "kind": "video", "weights": FIXED, "dim": self.dim,
                "parts": [part.describe() for part in self.parts], "grid": "rows aligned, cut to the shortest part"}

    def extract(self, path: Path, *, sample_rate: float, max_side: int, cache_dir: Path | None) -> np.ndarray:
        arrays = [video_features(path, part, sample_rate=sample_rate, max_side=max_side, cache_dir=cache_dir)
                  for part in self.parts]
        rows = min(len(a) for a in arrays)
        return np.ascontiguousarray(np.hstack([a[:rows] for a in arrays]), dtype=np.float32)

    def state_dict(self) -> None:
        return None


# --------------------------------------------------------------------------------------------
# torchvision backbones
# --------------------------------------------------------------------------------------------


class TorchvisionEncoder:
    """A torchvision ImageNet classifier without its classifier: global pooled features.

    Preprocessing is the IMAGENET1K_V1 weights' own (short side resized to 256, centre crop 224,
    ImageNet mean/std), done with torch ops on batches of same-sized frames.
    """

    NAME: ClassVar[str] = ""
    """Set by each backbone's subclass (the name it is registered under in `emocore.registry.ENCODERS`)."""

    def __init__(self, backbone: str, weights: WeightsSpec = IMAGENET, seed: int = 0) -> None:
        if backbone not in BACKBONES:
            raise ValueError(f"unknown torchvision backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        from torchvision.models import get_model, get_model_weights

        if isinstance(weights, str) and (weights == "random" or weights.startswith("random:")):
            text = weights.partition(":")[2]
            if text and not text.isdigit():
                raise ValueError(f"random weights take an integer seed (random:<seed>), got {weights!r}")
            seed, weights = int(text or seed), None
        self.name = backbone
        self.backbone = backbone
        self.dim, self._head_prefix = BACKBONES[backbone]
        self._imagenet = get_model_weights(backbone).IMAGENET1K_V1
        transform = self._imagenet.transforms()
        self._resize = int(transform.resize_size[0])
        self._crop = int(transform.crop_size[0])
        self._interpolation = transform.interpolation
        self._mean = torch.tensor(transform.mean).view(1, 3, 1, 1)
        self._std = torch.tensor(transform.std).view(1, 3, 1, 1)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = get_model(backbone, weights=None)
        self._drop_classifier(model)
        state, self.weights_used = self._weights(weights, seed)
        if state is not None:
            self._load(model, state, weights)
        self._model = model.eval().to(memory_format=torch.channels_last)
        for parameter in self._model.parameters():
            parameter.requires_grad_(False)

    @classmethod
    def from_name(cls, variant: str | None, weights: WeightsSpec = IMAGENET, seed: int = 0) -> "TorchvisionEncoder":
        """For `make_encoder(NAME, weights, seed)`: the subclass's backbone, which takes no variant."""
        if variant:
            raise UnknownModel(f"frame encoder {cls.NAME!r} takes no variant (got {cls.NAME}:{variant})")
        return cls(cls.NAME, weights=weights, seed=seed)

    def _drop_classifier(self, model: nn.Module) -> None:
        if self._head_prefix == "fc.":
            model.fc = nn.Identity()
        else:
            model.classifier = nn.Identity()

    def _weights(self, weights: WeightsSpec, seed: int) -> tuple[Mapping[str, torch.Tensor] | None, str]:
        """The state dict to load (None: keep the seeded random init) and its describe() label."""
        if weights is None:
            return None, f"random:{seed}"
        if isinstance(weights, StoredWeights):
            return weights.state, weights.label
        if weights == IMAGENET:
            state, reason = imagenet_state(self._imagenet.url)
            if state is None:
                log.warning(
                    "ImageNet weights for %s are unavailable (%s): features come from RANDOM weights "
                    "(seed %d) and a classifier trained on them is weak. Download %s on a connected "
                    "machine and pass the file as the weights, or put it in %s.",
                    self.backbone, reason, seed, self._imagenet.url, Path(torch.hub.get_dir()) / "checkpoints",
                )
                return None, f"random:{seed}"
            return state, IMAGENET
        path = Path(weights)
        if not path.is_file():
            raise EncoderWeightsError(f"weights file {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 — any unreadable file gets the same one-line error
            raise EncoderWeightsError(f"{path} is not a readable PyTorch state dict ({type(exc).__name__})") from exc
        if not isinstance(state, Mapping):
            raise EncoderWeightsError(f"{path} does not hold a state dict")
        return state, f"file:{content_hash(path)[:12]}"

    def _load(self, model: nn.Module, state: Mapping[str, torch.Tensor], source: WeightsSpec) -> None:
        """Load a full torchvision state dict or one without the classifier, strictly otherwise."""
        body = {k: v for k, v in state.items() if not k.startswith(self._head_prefix)}
        try:
            model.load_state_dict(body, strict=True)
        except RuntimeError as exc:
            missing = len(set(model.state_dict()) - set(body))
            raise EncoderWeightsError(
                f"the weights in {source if not isinstance(source, StoredWeights) else 'the checkpoint'} "
                f"are not {self.backbone} weights ({missing} tensors missing or mismatched)"
            ) from exc

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "backbone": self.backbone,
            "weights": self.weights_used,
            "dim": self.dim,
            "preprocess": {"resize": self._resize, "crop": self._crop, "interpolation": self._interpolation.value},
        }

    def state_dict(self) -> dict[str, torch.Tensor] | None:
        if self.weights_used == IMAGENET:
            return None
        return {k: v.detach().clone().contiguous() for k, v in self._model.state_dict().items()}

    def preprocess(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """(N, 3, crop, crop) normalised float32, channels_last; frames of one size are resized together."""
        from torchvision.transforms.v2 import functional as F

        out = torch.empty((len(frames), 3, self._crop, self._crop), dtype=torch.float32)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frames must be RGB uint8 H×W×3 arrays, got {frame.dtype} {frame.shape}")
            groups.setdefault(frame.shape, []).append(i)
        for rows in groups.values():
            batch = torch.from_numpy(np.stack([frames[i] for i in rows])).permute(0, 3, 1, 2)
            batch = F.resize(batch, [self._resize], interpolation=self._interpolation, antialias=True)
            batch = F.center_crop(batch, [self._crop, self._crop])
            out[rows] = (batch.float() / 255.0 - self._mean) / self._std
        return out.contiguous(memory_format=torch.channels_last)

    def encode(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = []
        with torch.inference_mode():
            for start in range(0, len(frames), BATCH):
                parts.append(self._model(self.preprocess(frames[start:start + BATCH])).float().numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)


class ResNet18Encoder(TorchvisionEncoder):
    """ResNet-18: 512 features."""

    NAME = "resnet18"


class MobileNetV3SmallEncoder(TorchvisionEncoder):
    """MobileNetV3 small: 576 features."""

    NAME = "mobilenet_v3_small"


class MobileNetV3LargeEncoder(TorchvisionEncoder):
    """MobileNetV3 large: 960 features."""

    NAME = "mobilenet_v3_large"


class EfficientNetB0Encoder(TorchvisionEncoder):
    """EfficientNet-B0: 1280 features."""

    NAME = "efficientnet_b0"


# --------------------------------------------------------------------------------------------
# ImageNet weights: the hub cache, else a download that gives up quickly
# --------------------------------------------------------------------------------------------


def imagenet_state(url: str, timeout: float = IMAGENET_TIMEOUT_S) -> tuple[dict[str, torch.Tensor] | None, str]:
    """The state dict at `url` via torch hub's cache folder; (None, reason) when it cannot be had.

    The file is looked for in `$TORCH_HOME/hub/checkpoints` first (where torchvision itself keeps
    it). Otherwise it is downloaded there, checked against the hash in its name, and written
    atomically; the connection (name lookup included) must answer within `timeout` seconds.
    Setting `EMOCORE_OFFLINE=1` skips the network.
    """
    target = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not target.is_file():
        if os.environ.get("EMOCORE_OFFLINE"):
            return None, "EMOCORE_OFFLINE is set"
        try:
            expected = re.search(r"-([a-f0-9]{6,})\.", target.name)  # torch hub names carry a hash prefix
            download(url, target, timeout=timeout, sha256=expected.group(1) if expected else None)
        except (OSError, ValueError) as exc:  # URLError, socket timeouts, HTTP errors are OSErrors
            return None, f"download failed: {getattr(exc, 'reason', None) or exc}"
    try:
        return torch.load(target, map_location="cpu", weights_only=True), ""
    except Exception as exc:  # noqa: BLE001 — a damaged cached file is reported, not raised
        return None, f"{target} is unreadable ({type(exc).__name__}); delete it to download again"


# --------------------------------------------------------------------------------------------
# per-video features, cached
# --------------------------------------------------------------------------------------------


#: Content hashes remembered per (absolute path, inode, size, modification and change times).
_HASHES: dict[tuple[str, int, int, int, int], str] = {}
_HASHES_LOCK = threading.Lock()
_HASHES_KEPT = 100_000


def file_hash(path: Path) -> str:
    """The file's content hash (`emocore.files.content_hash`: SHA-256 of its bytes), computed once per
    process for an unchanged file (same absolute path, inode, size, modification and change times).
    VideoError when the file cannot be read."""
    path = Path(path)
    try:
        stat = path.stat()
        remembered = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        with _HASHES_LOCK:
            known = _HASHES.get(remembered)
        if known is not None:
            return known
        digest = content_hash(path)
    except OSError as exc:
        raise VideoError(f"cannot read file ({exc.strerror or exc})") from exc
    with _HASHES_LOCK:
        if len(_HASHES) >= _HASHES_KEPT:
            _HASHES.clear()
        _HASHES[remembered] = digest
    return digest


def features_key(content: str, encoder: Backbone, sample_rate: float, max_side: int) -> str:
    """Cache file name (without folder) for a video's content hash under an encoder and sampling."""
    described = {"encoder": encoder.describe(), "sample_rate": float(sample_rate), "max_side": int(max_side),
                 "schema": FEATURES_SCHEMA}
    digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
    return f"{content}_{digest}.npy"


def video_features(
    path: Path,
    encoder: Backbone,
    *,
    sample_rate: float = 1.0,
    max_side: int = 480,
    cache_dir: Path | None,
) -> np.ndarray:
    """(T, encoder.dim) float32 features of the frames sampled at `sample_rate` per second (a feature
    source: of its rows on the sampling grid).

    With a `cache_dir`, a video already encoded under the same encoder and sampling is read back
    without decoding. Raises VideoError for a file that cannot be read as a video.
    """
    if not sample_rate > 0:
        raise ValueError(f"sampling rate must be positive, got {sample_rate}")
    if max_side < 32:
        raise ValueError(f"max side must be at least 32 pixels, got {max_side}")
    path = Path(path)
    cached: Path | None = None
    if cache_dir is not None:
        content = file_hash(path)
        cached = Path(cache_dir) / features_key(content, encoder, sample_rate, max_side)
        features = _read_cached(cached, encoder.dim)
        if features is not None:
            return features
    if isinstance(encoder, VideoFeatureSource):
        features = np.ascontiguousarray(
            encoder.extract(path, sample_rate=sample_rate, max_side=max_side, cache_dir=cache_dir), dtype=np.float32)
    else:
        features = _compute(path, encoder, sample_rate, max_side)
    if cached is not None:
        save_array(cached, features)
    return features


def _compute(path: Path, encoder: FrameEncoder, sample_rate: float, max_side: int) -> np.ndarray:
    parts: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    with open_video(path) as video:
        for frame in video.sample(sample_rate, max_side=max_side):
            batch.append(frame.image)
            if len(batch) == BATCH:
                parts.append(encoder.encode(batch))
                batch = []
    if batch:
        parts.append(encoder.encode(batch))
    if not parts:
        raise VideoError("no frames could be sampled")
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _read_cached(path: Path, dim: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        features = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        log.warning("feature cache file %s is unreadable (%s); recomputing it", path.name, exc)
        return None
    if features.ndim != 2 or features.shape[0] < 1 or features.shape[1] != dim or features.dtype != np.float32 \
            or not np.isfinite(features).all():
        log.warning("feature cache file %s holds the wrong array; recomputing it", path.name)
        return None
    log.debug("features of %s read from the cache", path.name)
    return features


__all__ = [
    "BACKBONES",
    "COMBINE",
    "FIXED",
    "IMAGENET",
    "Backbone",
    "CombinedFeatures",
    "VideoFeatureSource",
    "check_fixed_weights",
    "known_backbones",
    "known_feature_sources",
    "sampling_grid",
    "EncoderWeightsError",
    "FrameEncoder",
    "StoredWeights",
    "TorchvisionEncoder",
    "features_key",
    "file_hash",
    "imagenet_state",
    "EfficientNetB0Encoder",
    "MobileNetV3LargeEncoder",
    "MobileNetV3SmallEncoder",
    "ResNet18Encoder",
    "known_encoders",
    "make_encoder",
    "video_features",
]
