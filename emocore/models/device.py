"""Where the models run: `resolve_device("auto" | "cpu" | "cuda")` and the batch sizes per device.

    device = resolve_device("auto")        # torch.device("cuda") when PyTorch sees a GPU, else cpu
    with load_model("fer", device="cuda") as model:   # DeviceUnavailable on a machine without one
        ...
    batches_for(device).detect_frames       # frames per face-detector call on that device

The CPU is the default everywhere (`DEFAULT_DEVICE`). The device is never part of an ad's key or
of a model's `describe()`: the same file indexed on either device gets the same key. On the CPU the
models run exactly the code they always ran, so `device="cpu"` equals the default bit for bit. On a
GPU only the nets' float arithmetic differs (the face detector's pyramid levels and crops are made
on the CPU either way, and the GPU's batch sizes give the CPU's results bit for bit when run on the
CPU: tests/test_device.py); the stored numbers are expected to agree within
`CROSS_DEVICE_TOLERANCE`. MTCNN is sensitive, though: a candidate at a threshold that flips moves
that frame's box and probabilities far more (one grey level of difference in 5% of a pyramid's
pixels moved probabilities by up to 0.37), so `benchmarks/device_check.sh` compares every stored
number of two caches made on both devices and reports any such frame.

Batch sizes per device (`BATCHES`):

| device | detect_frames (frames per MTCNN call) | classify_faces (crops per mini-Xception call) |
|---|---|---|
| cpu    | 8   | 64  |
| cuda   | 64  | 512 |

Inside MTCNN, P-Net levels and R-/O-Net crops are split into calls of a size of their own
(emocore/models/mtcnn.py: bigger on a GPU). On the CPU larger batches are slower (activations
fall out of the caches), and the indexer, which hands the model `detect_frames` sampled frames at a
time as the decoder delivers them, waits longer for the first batch and scores the last one after
decoding has ended: 8 frames a call made `index` 5-10 % faster than 16 on a 30 s 720p clip, with the
same results (the batch size never changes a number). On a GPU larger batches amortise the launch and
transfer cost of each call. The
explainers' perturbed images reach the model `ExplainParams.batch` (64) at a time on either
device; each call runs on the model's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from emocore.errors import DeviceUnavailable

#: Accepted device names.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
#: The device used when none is named.
DEFAULT_DEVICE = "cpu"
#: Largest difference between a stored probability or figure made on a GPU and the same one made
#: on the CPU that still counts as the same result (GPU kernels round floats differently).
CROSS_DEVICE_TOLERANCE = 1e-3
#: The same for face boxes, in pixels of the frame.
CROSS_DEVICE_BOX_PX = 0.5


@dataclass(frozen=True)
class DeviceBatches:
    """How many items one model call takes on a device."""

    detect_frames: int
    """Sampled frames per face-detector (MTCNN) call."""
    classify_faces: int
    """Face crops per classifier call."""


BATCHES: dict[str, DeviceBatches] = {
    "cpu": DeviceBatches(detect_frames=8, classify_faces=64),
    "cuda": DeviceBatches(detect_frames=64, classify_faces=512),
}


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA GPU here."""
    return bool(torch.cuda.is_available())


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device for a name: "cpu", "cuda" (or "cuda:N"), "auto" (CUDA when PyTorch sees a
    GPU, else the CPU); None is `DEFAULT_DEVICE`.

    Raises DeviceUnavailable (one line, naming `--device cpu`) for CUDA on a machine without it,
    ValueError for a name that is not a device.
    """
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = (DEFAULT_DEVICE if device is None else str(device)).strip().lower()
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not cuda_available():
            raise DeviceUnavailable(f"--device {name}: PyTorch sees no CUDA GPU here; use --device cpu (or auto)")
        try:
            chosen = torch.device(name)
        except RuntimeError:
            raise ValueError(f"unknown device {name!r}; known: {', '.join(DEVICES)}") from None
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise DeviceUnavailable(f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) here; use --device cuda")
        return chosen
    raise ValueError(f"unknown device {name!r}; known: {', '.join(DEVICES)}")


def batches_for(device: torch.device | str) -> DeviceBatches:
    """The batch sizes of `BATCHES` for a device (its type: every GPU gets the "cuda" row)."""
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    return BATCHES.get(kind, BATCHES["cpu"])


__all__ = ["BATCHES", "CROSS_DEVICE_BOX_PX", "CROSS_DEVICE_TOLERANCE", "DEFAULT_DEVICE", "DEVICES", "DeviceBatches",
           "batches_for", "cuda_available", "resolve_device"]
