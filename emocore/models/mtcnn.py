"""MTCNN face detector (Zhang et al. 2016), the project's own batched PyTorch implementation.

Contract
--------
* `MTCNN.from_files(pnet, rnet, onet, *, min_face_size=40, thresholds=(0.6, 0.7, 0.7),
  scale_factor=0.709)` loads the three pretrained state dicts shipped in the
  `facenet-pytorch==2.6.0` wheel (plain state dicts, `weights_only=True`, strict key match).
* `MTCNN.detect(images, min_face_size=None)` takes RGB uint8 H×W×3 arrays (sizes may differ
  within a call) and returns, per image, a float32 array (k, 5) of `x1, y1, x2, y2, confidence`
  in image pixels, sorted largest face first; `(0, 5)` when there is none. Coordinates are pixel *edges* (a box covering pixel
  columns 10..19 is x1=10, x2=20), clipped to the image. `min_face_size` (≥ 12, may be
  fractional) overrides the detector's own for that call: where the pyramid starts. It is a
  search setting, not a filter: box regression can return boxes somewhat smaller than it (a
  32 px start found 25×30 px faces), so a caller with a size rule applies it to the boxes.
* `MTCNN.detect_with_landmarks(images)` returns `Detections`: the same boxes plus five landmarks per
  face, (k, 5, 2) x/y: left eye, right eye, nose, left and right mouth corner, as seen in the image.
* `MTCNN.refine(images, seeds, passes=2)` looks for faces only near given boxes (e.g. the previous
  sampled frame's): O-Net alone on the squared seeds, `passes` reads, the last one thresholded,
  then the same Min-NMS and output as `detect_with_landmarks`. Its boxes are near, not equal to,
  what a full search finds (a few pixels apart), which the emotion classifier notices.
* Batched: P-Net runs over all same-size images of a pyramid scale together; R-Net and O-Net run
  over the candidate crops of all images together (never one call per crop). A
  frame's result does not depend on the rest of the batch (NMS runs per image; only float rounding
  of batched convs differs, ~1e-5 px).
* Runs on the CPU by default; `MTCNN.to(device)` (or `from_files(..., device=)`) moves the three
  nets to a GPU, where they run in bigger calls. Everything else stays on the CPU, the pyramid
  levels included: MTCNN is sensitive to its input (resizing the levels in float and rounding,
  which moves under 5% of the pixels by one grey level, moved boxes by up to 46 px and a face's
  probabilities by up to 0.37 on the demo clips), so the GPU reads exactly the CPU's levels and
  crops and only the nets' float arithmetic differs. On the CPU the code path is exactly the
  CPU-only one. Runs under `torch.inference_mode`; never changes torch's or OpenCV's thread counts.
  One torch thread (and one OpenCV thread), min_face_size 40: ~16 ms a 640×360 frame alone,
  ~12 ms in batches of 8; 1280×720 ~30 ms. Big batches are split internally where that runs
  faster (P-Net levels over _PNET_CALL_PIXELS, crops over _CROPS_PER_CALL).

Pipeline (as the paper and the reference implementations): P-Net over a pyramid starting at
12/min_face_size and shrinking by scale_factor, NMS 0.5 per scale, box regression, NMS 0.7
across scales (on the regressed boxes, which line up across scales better than the raw windows),
squaring; R-Net on 24×24 crops, NMS 0.7, regression, squaring; O-Net on 48×48 crops,
regression, then NMS 0.7 over the *smaller* box's area. Pyramid levels are antialiased bilinear
resizes; crops are bilinear samples (`cv2.remap`, one call per image and octave), read from a
2×-downscaled copy when a box is over twice the crop size so that big faces are not aliased.

Orientation (checked against the weights' behaviour, not assumed): the original Caffe MTCNN was
trained on transposed (x/y swapped) images. In the facenet-pytorch files, P-Net's kernels were
already transposed at conversion, and R-Net/O-Net keep the original kernels but must flatten their
last feature map in (W, H, C) order before the dense layers. With exactly that wiring all three
nets take ordinary, untransposed RGB images in NCHW, regressions are (dx1, dy1, dx2, dy2) in
image x/y, and landmarks are 5 x's then 5 y's. On astronaut() face crops this wiring gives R-Net
0.998 / O-Net 1.000 on the face and ≤ 0.08 on background, and shifting a crop by 15 px moves the
predicted edges back by about as much; the alternatives (transposed input, transposed kernels,
(H, W, C) flatten) separate faces from background less well or not at all, and their regressions
do not follow a shifted crop.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("emocore")

def _heads(features: torch.Tensor, *convs: nn.Conv2d) -> torch.Tensor:
    """All 1×1 output convs of P-Net as one matrix product over a channels-last map: (N, H, W, Σout).

    A 1×1 conv with 2 or 4 outputs is slow as a conv on channels-last data; as a GEMM over the
    (N·H·W, C) view it costs almost nothing.
    """
    weight = torch.cat([c.weight.flatten(1) for c in convs])
    bias = torch.cat([c.bias for c in convs])  # type: ignore[misc]
    return F.linear(features.permute(0, 2, 3, 1), weight, bias)


def _face_probability(logits: torch.Tensor) -> torch.Tensor:
    # softmax over (not face, face) taken at "face": the sigmoid of the logit difference
    return torch.sigmoid(logits[..., 1] - logits[..., 0])


class PNet(nn.Module):
    """Proposal net: fully convolutional, one 12×12 window per output cell, stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, 3, H, W) normalised RGB -> face probability (N, H', W'), regression (N, H', W', 4)."""
        # channels-last: 3-4× faster convs and max-pools on CPU for these thin layers
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        out = _heads(x, self.conv4_1, self.conv4_2)
        return _face_probability(out[..., :2]), out[..., 2:]


class RNet(nn.Module):
    """Refine net on 24×24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (K, 3, 24, 24) normalised RGB -> face probability (K,), regression (K, 4)."""
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # the dense weights expect the Caffe/TF (transposed) flatten order: W, H, C
        x = x.permute(0, 3, 2, 1).flatten(1)
        x = self.prelu4(self.dense4(x))
        return _face_probability(self.dense5_1(x)), self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48×48 crops: final score, box regression and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (K, 3, 48, 48) -> probability (K,), regression (K, 4), landmarks (K, 10: 5 x then 5 y)."""
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = x.permute(0, 3, 2, 1).flatten(1)  # W, H, C order, as in RNet
        x = self.prelu5(self.dense5(x))
        return _face_probability(self.dense6_1(x)), self.dense6_2(x), self.dense6_3(x)


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, largest first."""

    boxes: np.ndarray
    """(k, 5) float32: x1, y1, x2, y2, confidence, in image pixels (edges), clipped to the image."""
    landmarks: np.ndarray
    """(k, 5, 2) float32 x, y: left eye, right eye, nose, left mouth corner, right mouth corner."""


@dataclass(frozen=True)
class _Candidates:
    """Boxes of every image of a call, flattened; `image[i]` is the call position of box i's image."""

    boxes: torch.Tensor  # (K, 4) x1, y1, x2, y2 float32, pixel edges
    scores: torch.Tensor  # (K,)
    image: torch.Tensor  # (K,) int64

    def take(self, keep: torch.Tensor) -> "_Candidates":
        return _Candidates(self.boxes[keep], self.scores[keep], self.image[keep])

    def take_images(self, call_index: torch.Tensor) -> "_Candidates":
        """The same boxes with `image` mapped through `call_index` (batch position -> call position)."""
        return _Candidates(self.boxes, self.scores, call_index[self.image])

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


_Net = TypeVar("_Net", bound=nn.Module)


def _load(module: _Net, path: Path) -> _Net:
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    return module.eval().requires_grad_(False)


def _apply_regression(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Shift each box edge by the net's offsets, given as fractions of the box's width/height."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + reg * size


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square about its centre (the nets were trained on square crops)."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1, keepdim=True) / 2
    return torch.cat([centre - half, centre + half], dim=1)


@functools.cache
def _nms() -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """torchvision's compiled IoU NMS, the very kernel `torchvision.ops.nms` calls (`torch.ops.torchvision.nms`).

    `import torchvision` costs about 2 CPU s in each process (its model and op modules import torch's
    compiler, `torch._dynamo`), a cost every worker process would pay before its first frame; only
    torchvision's compiled ops library is needed here. So that library (`_C*` beside torchvision's
    `__init__`, the file torchvision loads itself) is loaded directly, in milliseconds; where it is
    not found, or does not load, torchvision is imported as usual.
    """
    try:
        return torch.ops.torchvision.nms  # torchvision's ops already loaded in this process
    except AttributeError:
        pass
    spec = importlib.util.find_spec("torchvision")  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in map(Path, folders):
        for library in sorted(folder.glob("_C*")):
            if library.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
                try:
                    torch.ops.load_library(str(library))
                    return torch.ops.torchvision.nms
                except (OSError, AttributeError):
                    continue
    from torchvision.ops import nms

    return nms


def _nms_per_image(boxes: torch.Tensor, scores: torch.Tensor, image: torch.Tensor, threshold: float) -> torch.Tensor:
    """IoU NMS within each image; returns kept indices.

    Not `batched_nms`: for small inputs it shifts each image's boxes by a large per-image offset,
    which changes float32 rounding of the overlaps, so a frame's result would depend on its
    position in the batch. One `nms` call per image keeps batches and single frames identical.
    """
    if image.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    kept = []
    for i in torch.unique(image).tolist():
        rows = torch.nonzero(image == i, as_tuple=True)[0]
        kept.append(rows[_nms()(boxes[rows], scores[rows], threshold)])
    return torch.cat(kept)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS per group where overlap is intersection over the *smaller* box's area.

    MTCNN's last stage uses this ("Min" mode) so that a box nested in a bigger face (an eye, a mouth)
    goes even though its IoU with the face is small. Few boxes reach this stage, so a K×K matrix and
    a short loop are cheap. Returns the kept indices, best first.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64)
    order = torch.argsort(scores, descending=True)
    b = boxes[order].numpy().astype(np.float64)
    g = groups[order].numpy()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iw = np.clip(np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1]), 0, None)
    overlap = iw * ih / np.maximum(np.minimum(area[:, None], area[None, :]), 1e-9)
    suppress = (overlap > threshold) & (g[:, None] == g[None, :])
    alive = np.ones(len(b), dtype=bool)
    keep: list[int] = []
    for i in range(len(b)):
        if alive[i]:
            keep.append(i)
            alive &= ~suppress[i]
    return order[torch.as_tensor(keep, dtype=torch.int64)]


def _check_images(images: Sequence[np.ndarray]) -> None:
    for i, image in enumerate(images):
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0):
            raise ValueError(f"image {i} must be an RGB uint8 H×W×3 array")


def _box_rows(boxes: np.ndarray) -> np.ndarray:
    """(k, 4) float32 x1, y1, x2, y2 of a (k, ≥4) array (extra columns dropped; empty → (0, 4))."""
    a = np.asarray(boxes, dtype=np.float32)
    if a.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if a.ndim != 2 or a.shape[1] < 4 or not np.isfinite(a[:, :4]).all():
        raise ValueError(f"seed boxes must be a finite (k, ≥4) array, got shape {a.shape}")
    return np.ascontiguousarray(a[:, :4])


# cv2.remap wants maps under 32767 rows; crops are sampled in chunks of this many.
_REMAP_CHUNK = 600
_MAX_OCTAVE = 16
# Input pixels per P-Net call. Batching saves per-call overhead on small pyramid levels, but past
# about this size P-Net's activations fall out of the CPU caches and each image costs twice as
# much (measured: a 432×768 level, 18.7 ms an image in calls of 1–2 images, 38–44 ms in calls of
# 4–8), so big levels run a few images at a time.
_PNET_CALL_PIXELS = 700_000
# Crops per R-Net / O-Net call, for the same reason: per crop, calls of 32–64 ran 1.5–2× faster
# than calls of 256–1024 (R-Net ~55 vs ~95 µs, O-Net ~260 vs ~570 µs on one thread).
_CROPS_PER_CALL = 64
# On a GPU, calls are cheap per item and costly per launch: far bigger calls.
_GPU_PNET_CALL_PIXELS = 32_000_000
_GPU_CROPS_PER_CALL = 2048


def _run_chunked(net: nn.Module, crops: torch.Tensor, per_call: int = _CROPS_PER_CALL,
                 device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
    """`net(crops)` in slices of `per_call` crops (run on `device`), outputs concatenated on the CPU."""
    if device is None or device.type == "cpu":
        if crops.shape[0] <= per_call:
            return tuple(net(crops))
        outs = [net(crops[i:i + per_call]) for i in range(0, crops.shape[0], per_call)]
        return tuple(torch.cat(parts) for parts in zip(*outs))
    outs = [tuple(o.cpu() for o in net(crops[i:i + per_call].to(device))) for i in range(0, crops.shape[0], per_call)]
    return tuple(torch.cat(parts) for parts in zip(*outs))


class _CropSampler:
    """Square crops of candidate boxes, resampled with bilinear interpolation.

    One `cv2.remap` per image and octave (never one call per crop) on the uint8 frame: no float
    copy of the whole frame is made, which would cost more than the crops themselves on 720p
    batches. A box more than twice the crop size is sampled from a 2×-downscaled (area-averaged)
    copy of the frame, so bilinear sampling never skips pixels: a 300 px face shrunk to 24 px
    reads as an average, not as aliased point samples. Outside the frame reads as black, as in
    the original implementation's zero padding.
    """

    def __init__(self, images: Sequence[np.ndarray]) -> None:
        self._octaves: list[list[np.ndarray]] = [[np.ascontiguousarray(image)] for image in images]

    def _octave(self, image: int, level: int) -> np.ndarray:
        levels = self._octaves[image]
        while len(levels) <= level:
            prev = levels[-1]
            size = ((prev.shape[1] + 1) // 2, (prev.shape[0] + 1) // 2)
            levels.append(cv2.resize(prev, size, interpolation=cv2.INTER_AREA))
        return levels[level]

    def __call__(self, boxes: np.ndarray, image: np.ndarray, side: int) -> np.ndarray:
        """(K, side, side, 3) uint8 crops of `boxes` (K, 4) from call images `image` (K,)."""
        out = np.zeros((len(boxes), side, side, 3), dtype=np.uint8)
        extent = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        # octave where the box spans [side, 2·side) px; capped so a wild box cannot ask for more
        # halvings than a frame has
        level = np.floor(np.log2(np.clip(extent / side, 1.0, 2.0 ** _MAX_OCTAVE))).astype(np.int64)
        centres = (np.arange(side, dtype=np.float64) + 0.5) / side
        for key in np.unique(np.stack([image, level], axis=1), axis=0):
            i, lvl = int(key[0]), int(key[1])
            rows = np.flatnonzero((image == i) & (level == lvl))
            base = self._octaves[i][0]
            src = self._octave(i, lvl)
            sx, sy = src.shape[1] / base.shape[1], src.shape[0] / base.shape[0]
            b = boxes[rows].astype(np.float64)
            # bin centres in pixel-centre coordinates of the source octave
            gx = ((b[:, 0:1] + centres * (b[:, 2:3] - b[:, 0:1])) * sx - 0.5).astype(np.float32)
            gy = ((b[:, 1:2] + centres * (b[:, 3:4] - b[:, 1:2])) * sy - 0.5).astype(np.float32)
            for start in range(0, len(rows), _REMAP_CHUNK):
                part = slice(start, start + _REMAP_CHUNK)
                k = len(rows[part])
                map_x = np.broadcast_to(gx[part, None, :], (k, side, side)).reshape(k * side, side)
                map_y = np.broadcast_to(gy[part, :, None], (k, side, side)).reshape(k * side, side)
                crops = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
                out[rows[part]] = crops.reshape(k, side, side, 3)
        return out


class MTCNN:
    """Three-stage cascade: P-Net over an image pyramid, then R-Net and O-Net on the survivors."""

    def __init__(
        self,
        pnet: PNet,
        rnet: RNet,
        onet: ONet,
        *,
        min_face_size: int = 40,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        scale_factor: float = 0.709,
    ) -> None:
        if min_face_size < 12:
            raise ValueError("min_face_size must be at least 12 px (P-Net's window)")
        if not 0.0 < scale_factor < 1.0:
            raise ValueError("scale_factor must be between 0 and 1")
        if len(thresholds) != 3:
            raise ValueError("thresholds must hold three numbers (P-Net, R-Net, O-Net)")
        self.pnet = pnet
        self.rnet = rnet
        self.onet = onet
        self.min_face_size = int(min_face_size)
        self.thresholds = (float(thresholds[0]), float(thresholds[1]), float(thresholds[2]))
        self.scale_factor = float(scale_factor)
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> "MTCNN":
        """Run the three nets on `device` from now on (returns self)."""
        self.device = torch.device(device)
        for net in (self.pnet, self.rnet, self.onet):
            net.to(self.device)
        return self

    @property
    def _on_gpu(self) -> bool:
        return self.device.type != "cpu"

    @property
    def _crops_per_call(self) -> int:
        return _GPU_CROPS_PER_CALL if self._on_gpu else _CROPS_PER_CALL

    @classmethod
    def from_files(
        cls,
        pnet: Path,
        rnet: Path,
        onet: Path,
        *,
        min_face_size: int = 40,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        scale_factor: float = 0.709,
        device: torch.device | str = "cpu",
    ) -> "MTCNN":
        """Build the detector from the three facenet-pytorch state-dict files, on `device`."""
        return cls(
            _load(PNet(), pnet), _load(RNet(), rnet), _load(ONet(), onet),
            min_face_size=min_face_size, thresholds=thresholds, scale_factor=scale_factor,
        ).to(device)

    # -- public API -------------------------------------------------------------------------------

    def detect(self, images: Sequence[np.ndarray], min_face_size: float | None = None) -> list[np.ndarray]:
        """Per image a float32 (k, 5) array x1, y1, x2, y2, confidence, largest face first.

        `min_face_size` (pixels, ≥ 12) replaces the detector's own for this call: where the
        pyramid starts, not a filter on the boxes.
        """
        return [found.boxes for found in self.detect_with_landmarks(images, min_face_size)]

    def detect_with_landmarks(self, images: Sequence[np.ndarray],
                              min_face_size: float | None = None) -> list[Detections]:
        """Boxes as `detect`, plus five landmarks per face."""
        if min_face_size is not None and not min_face_size >= 12:
            raise ValueError("min_face_size must be at least 12 px (P-Net's window)")
        _check_images(images)
        if len(images) == 0:
            return []
        with torch.inference_mode():
            return self._detect(images, self.min_face_size if min_face_size is None else float(min_face_size))

    def refine(self, images: Sequence[np.ndarray], seeds: Sequence[np.ndarray], passes: int = 2) -> list[Detections]:
        """Faces near known boxes, by O-Net alone: no pyramid, no P-Net, no R-Net.

        `seeds[i]`: (k, ≥4) boxes x1, y1, x2, y2 in `images[i]`'s pixels (e.g. the faces found in the
        previous sampled frame of the same shot). Each seed is squared and read by O-Net, whose box
        regression moves it onto the face; `passes` O-Net reads in all (the second starts from the
        first's regressed box, which follows a face that moved further). A seed whose last read
        scores under the O-Net threshold is dropped; the survivors go through the same Min-NMS and
        clipping as `detect_with_landmarks`, whose output format this is. About 3–5 ms a 640×360
        frame with a face or two (one torch thread), against ~20 ms for a full search of it alone.
        """
        if len(seeds) != len(images):
            raise ValueError(f"got {len(seeds)} seed arrays for {len(images)} images")
        if passes < 1:
            raise ValueError("passes must be at least 1")
        _check_images(images)
        if len(images) == 0:
            return []
        with torch.inference_mode():
            rows = [_box_rows(s) for s in seeds]
            boxes = torch.from_numpy(np.concatenate(rows))
            image = torch.as_tensor(np.repeat(np.arange(len(images)), [len(r) for r in rows]), dtype=torch.int64)
            found = _Candidates(_square(boxes), torch.ones(len(boxes)), image)
            sampler = _CropSampler(images)
            for _ in range(passes - 1):
                found = self._usable(found)
                if len(found) == 0:
                    break
                _, reg, _ = _run_chunked(self.onet, self._crops(sampler, found, 48), self._crops_per_call, self.device)
                found = _Candidates(_square(_apply_regression(found.boxes, reg)), found.scores, found.image)
            boxes, scores, image, points = self._stage_onet(sampler, found)
            return self._collect(images, boxes, scores, image, points)

    def scales(self, height: int, width: int, min_face_size: float | None = None) -> list[float]:
        """The pyramid: 12/min_face_size first, shrinking by scale_factor while the short side ≥ 12 px."""
        first = 12.0 / (self.min_face_size if min_face_size is None else min_face_size)
        side = min(height, width) * first
        out: list[float] = []
        while side >= 12.0:
            out.append(first * self.scale_factor ** len(out))
            side *= self.scale_factor
        return out

    # -- the cascade ------------------------------------------------------------------------------

    def _detect(self, images: Sequence[np.ndarray], min_face_size: float) -> list[Detections]:
        sampler = _CropSampler(images)
        proposed = self._stage_pnet(images, min_face_size)
        refined = self._stage_rnet(sampler, proposed)
        boxes, scores, image, points = self._stage_onet(sampler, refined)
        log.debug("mtcnn: %d frames, %d P-Net proposals, %d after R-Net, %d faces",
                  len(images), len(proposed), len(refined), len(boxes))
        return self._collect(images, boxes, scores, image, points)

    def _stage_pnet(self, images: Sequence[np.ndarray], min_face_size: float) -> _Candidates:
        """Candidate squares from P-Net over the pyramid of every image."""
        # Same-size images share one tensor, so P-Net runs once per scale over all of them (or
        # over as many as fit _PNET_CALL_PIXELS: see there).
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault((image.shape[0], image.shape[1]), []).append(i)
        parts: list[_Candidates] = []
        for (height, width), members in groups.items():
            stacked = (np.ascontiguousarray(images[members[0]])[None] if len(members) == 1
                       else np.stack([images[i] for i in members]))
            # (N, 3, H, W) view of the NHWC bytes: channels-last uint8, which torch resizes fast
            pixels = torch.from_numpy(stacked).permute(0, 3, 1, 2)
            call_index = torch.as_tensor(members, dtype=torch.int64)
            for scale in self.scales(height, width, min_face_size):
                size = (math.ceil(height * scale), math.ceil(width * scale))
                budget = _GPU_PNET_CALL_PIXELS if self._on_gpu else _PNET_CALL_PIXELS
                per_call = max(1, budget // (size[0] * size[1]))
                for start in range(0, len(members), per_call):
                    # antialiased bilinear: a proper low-pass for the downscale, and torch's fast
                    # uint8 channels-last kernel (on the CPU whatever the device: see the docstring)
                    level = F.interpolate(pixels[start:start + per_call], size=size, mode="bilinear",
                                          antialias=True, align_corners=False)
                    normalised = (level.float() - 127.5) * (1.0 / 128.0)
                    if self._on_gpu:
                        normalised = normalised.to(self.device)
                    prob, reg = self.pnet(normalised)
                    prob, reg = prob.cpu(), reg.cpu()  # no copy on the CPU
                    found = self._proposals(prob, reg, size, (height, width))
                    if found is not None:
                        parts.append(found.take_images(call_index[start:start + per_call]))
        if not parts:
            empty = torch.zeros((0, 4))
            return _Candidates(empty, empty[:, 0], torch.zeros(0, dtype=torch.int64))
        found = _Candidates(torch.cat([p.boxes for p in parts]), torch.cat([p.scores for p in parts]),
                            torch.cat([p.image for p in parts]))
        # across scales, per image
        found = found.take(_nms_per_image(found.boxes, found.scores, found.image, 0.7))
        return _Candidates(_square(found.boxes), found.scores, found.image)

    def _proposals(
        self, prob: torch.Tensor, reg: torch.Tensor, size: tuple[int, int], image_size: tuple[int, int]
    ) -> _Candidates | None:
        """Regressed boxes in image pixels from one P-Net output, after NMS 0.5 per image.

        `image` of the result indexes the P-Net batch; None when no cell passes the threshold.
        """
        n, y, x = torch.nonzero(prob >= self.thresholds[0], as_tuple=True)
        if n.numel() == 0:
            return None
        scores = prob[n, y, x]
        # output cell (y, x) sees the 12×12 window at (2x, 2y) of this pyramid level; map back
        # with the level's true per-axis scale (its size was rounded up)
        height, width = image_size
        to_image = torch.tensor([width / size[1], height / size[0]] * 2)
        corner = torch.stack([x, y], dim=1).float() * 2.0
        boxes = torch.cat([corner, corner + 12.0], dim=1) * to_image
        keep = _nms_per_image(boxes, scores, n, 0.5)
        return _Candidates(_apply_regression(boxes[keep], reg[n[keep], y[keep], x[keep]]),
                           scores[keep], n[keep])

    def _crops(self, sampler: _CropSampler, found: _Candidates, side: int) -> torch.Tensor:
        """(K, 3, side, side) normalised crops, channels-last."""
        pixels = sampler(found.boxes.numpy(), found.image.numpy(), side)
        crops = torch.from_numpy(pixels).permute(0, 3, 1, 2)
        return (crops.float() - 127.5) * (1.0 / 128.0)

    @staticmethod
    def _usable(found: _Candidates) -> _Candidates:
        # a box regressed to (nearly) nothing has no pixels to look at
        size = found.boxes[:, 2:] - found.boxes[:, :2]
        return found.take(torch.nonzero((size >= 1.0).all(dim=1), as_tuple=True)[0])

    def _stage_rnet(self, sampler: _CropSampler, found: _Candidates) -> _Candidates:
        found = self._usable(found)
        if len(found) == 0:
            return found
        prob, reg = _run_chunked(self.rnet, self._crops(sampler, found, 24), self._crops_per_call, self.device)
        ok = torch.nonzero(prob >= self.thresholds[1], as_tuple=True)[0]
        found, reg = _Candidates(found.boxes[ok], prob[ok], found.image[ok]), reg[ok]
        keep = _nms_per_image(found.boxes, found.scores, found.image, 0.7)
        return _Candidates(_square(_apply_regression(found.boxes[keep], reg[keep])),
                           found.scores[keep], found.image[keep])

    def _stage_onet(
        self, sampler: _CropSampler, found: _Candidates
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        found = self._usable(found)
        if len(found) == 0:
            return found.boxes, found.scores, found.image, torch.zeros((0, 5, 2))
        prob, reg, marks = _run_chunked(self.onet, self._crops(sampler, found, 48), self._crops_per_call, self.device)
        ok = torch.nonzero(prob >= self.thresholds[2], as_tuple=True)[0]
        boxes, scores, image, reg, marks = found.boxes[ok], prob[ok], found.image[ok], reg[ok], marks[ok]
        size = boxes[:, 2:] - boxes[:, :2]
        points = torch.stack([boxes[:, None, 0] + marks[:, :5] * size[:, None, 0],
                              boxes[:, None, 1] + marks[:, 5:] * size[:, None, 1]], dim=2)
        boxes = _apply_regression(boxes, reg)
        keep = _nms_min(boxes, scores, image, 0.7)
        return boxes[keep], scores[keep], image[keep], points[keep]

    @staticmethod
    def _collect(
        images: Sequence[np.ndarray],
        boxes: torch.Tensor,
        scores: torch.Tensor,
        image: torch.Tensor,
        points: torch.Tensor,
    ) -> list[Detections]:
        boxes_np = boxes.numpy().astype(np.float32)
        scores_np = scores.numpy().astype(np.float32)
        image_np = image.numpy()
        points_np = points.numpy().astype(np.float32)
        out: list[Detections] = []
        for i, frame in enumerate(images):
            mine = np.flatnonzero(image_np == i)
            height, width = frame.shape[:2]
            b = boxes_np[mine]
            b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
            b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
            area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            alive = np.flatnonzero(area > 0)  # a box regressed wholly off the image shows nothing
            order = alive[np.argsort(-area[alive], kind="stable")]
            rows = np.concatenate([b[order], scores_np[mine][order, None]], axis=1)
            out.append(Detections(np.ascontiguousarray(rows, dtype=np.float32),
                                  np.ascontiguousarray(points_np[mine][order], dtype=np.float32)))
        return out


__all__ = ["MTCNN", "Detections", "ONet", "PNet", "RNet"]
