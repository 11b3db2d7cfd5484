"""The project's own MTCNN (emocore/models/mtcnn.py) on real pictures and video.

Weights: pnet.pt, rnet.pt, onet.pt from the facenet-pytorch wheel, in `emocore.assets.weights_dir()`
(filled by `python cli.py setup`). The talking-head clip is the conftest `carphone` fixture.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import skimage.data
import torch

from emocore.assets import weights_dir
from emocore.models.mtcnn import MTCNN, ONet, PNet, RNet, _nms

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def detector(weights_ready: None) -> MTCNN:
    folder = weights_dir()
    return MTCNN.from_files(*(folder / f"{name}.pt" for name in ("pnet", "rnet", "onet")), min_face_size=40)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def carphone_frames(carphone: Path) -> list[np.ndarray]:
    frames = []
    with av.open(str(carphone)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == 40:
                break
    return frames


def _check_boxes(boxes: np.ndarray, image: np.ndarray) -> None:
    """The output contract: float32 (k, 5), inside the image, ordered largest first."""
    height, width = image.shape[:2]
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 2] <= width)
    assert np.all(boxes[:, 1] >= 0) and np.all(boxes[:, 3] <= height)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert np.all((boxes[:, 4] > 0) & (boxes[:, 4] <= 1))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    assert np.all(np.diff(area) <= 0)


def test_weights_load_strictly_into_own_modules(weights_ready: None) -> None:
    folder = weights_dir()
    for module, name in ((PNet(), "pnet"), (RNet(), "rnet"), (ONet(), "onet")):
        path = folder / f"{name}.pt"
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)


def test_astronaut_has_exactly_one_face(detector: MTCNN, astronaut: np.ndarray) -> None:
    (boxes,) = detector.detect([astronaut])
    _check_boxes(boxes, astronaut)
    assert boxes.shape == (1, 5)
    x1, y1, x2, y2, confidence = boxes[0]
    # measured: about (180, 59, 268, 174), brow to chin, cheek to cheek
    assert 165 <= x1 <= 195 and 245 <= x2 <= 285, boxes
    assert 40 <= y1 <= 80 and 155 <= y2 <= 190, boxes
    assert confidence > 0.95


def test_landmarks_sit_on_the_face(detector: MTCNN, astronaut: np.ndarray) -> None:
    (found,) = detector.detect_with_landmarks([astronaut])
    assert found.landmarks.shape == (1, 5, 2)
    (left_eye, right_eye, nose, mouth_left, mouth_right) = found.landmarks[0]
    # measured: eyes near (204, 101) and (247, 103), mouth corners near y 140
    assert left_eye[0] < nose[0] < right_eye[0]
    assert left_eye[1] < nose[1] < mouth_left[1] and right_eye[1] < nose[1] < mouth_right[1]
    assert np.allclose(left_eye, (204, 101), atol=8) and np.allclose(right_eye, (247, 103), atol=8)


def test_blank_and_noise_have_no_faces(detector: MTCNN) -> None:
    grey = np.full((360, 640, 3), 128, dtype=np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, size=(360, 640, 3), dtype=np.uint8)
    found = detector.detect([grey, noise])
    assert [b.shape for b in found] == [(0, 5), (0, 5)]
    assert all(b.dtype == np.float32 for b in found)


def test_tiny_and_empty_inputs(detector: MTCNN) -> None:
    # smaller than the minimum face: no pyramid level at all
    assert detector.detect([np.zeros((20, 30, 3), dtype=np.uint8)])[0].shape == (0, 5)
    assert detector.detect([]) == []
    with pytest.raises(ValueError):
        detector.detect([np.zeros((64, 64), dtype=np.uint8)])


def test_talking_head_video_one_face_per_frame(detector: MTCNN, carphone_frames: list[np.ndarray]) -> None:
    assert len(carphone_frames) >= 30
    found = []
    for start in range(0, len(carphone_frames), 8):
        found += detector.detect(carphone_frames[start:start + 8])
    for boxes, frame in zip(found, carphone_frames):
        _check_boxes(boxes, frame)
    exactly_one = sum(len(boxes) == 1 for boxes in found)
    assert exactly_one >= 0.95 * len(carphone_frames), [len(b) for b in found]


def test_batch_gives_the_same_boxes_as_single_frames(
    detector: MTCNN, astronaut: np.ndarray, carphone_frames: list[np.ndarray]
) -> None:
    a, b = carphone_frames[0], carphone_frames[20]
    # a same-size pair (one P-Net call per scale for both) and a mixed-size trio
    for batch in ([a, b], [a, astronaut, b]):
        together = detector.detect(batch)
        for image, boxes in zip(batch, together):
            (alone,) = detector.detect([image])
            assert boxes.shape == alone.shape and len(alone) >= 1
            np.testing.assert_allclose(boxes[:, :4], alone[:, :4], atol=1e-3)
            np.testing.assert_allclose(boxes[:, 4], alone[:, 4], atol=1e-4)


def test_face_cut_by_the_border_is_clipped(detector: MTCNN, astronaut: np.ndarray) -> None:
    # the face (x ≈ 180–268, y ≈ 59–174) cut by the left and by the top edge: the nets see crops
    # reaching outside the image, and the boxes come back clipped to it
    left = np.ascontiguousarray(astronaut[:, 205:])
    top = np.ascontiguousarray(astronaut[95:, :])
    corner = np.ascontiguousarray(astronaut[90:, 210:])
    found = detector.detect([left, top, corner])
    for image, boxes in zip((left, top, corner), found):
        _check_boxes(boxes, image)
    assert len(found[0]) >= 1 and found[0][0, 0] == 0.0
    assert len(found[1]) >= 1 and found[1][0, 1] == 0.0


def test_nms_is_torchvisions_kernel() -> None:
    """The detector's IoU NMS keeps exactly what `torchvision.ops.nms` keeps, in the same order: ties,
    duplicates, nested and disjoint boxes, at the thresholds the detector uses."""
    from torchvision.ops import nms

    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(300, 2, generator=generator) * 600
    boxes = torch.cat([corners, corners + 12 + torch.rand(300, 2, generator=generator) * 200], dim=1)
    boxes[150:200] = boxes[100:150]  # exact duplicates
    scores = torch.rand(300, generator=generator)
    scores[::7] = 0.5  # ties
    for threshold in (0.3, 0.5, 0.7):
        kept = _nms()(boxes, scores, threshold)
        assert torch.equal(kept, nms(boxes, scores, threshold))
        assert 0 < len(kept) < len(boxes)


def test_the_detector_runs_without_importing_torchvision(weights_ready: None) -> None:
    """Loading the default model and finding a face never imports torchvision (nor torch's compiler, which
    it imports): that import costs about 2 CPU s in every worker process. A fresh interpreter, as a worker."""
    script = ("import sys, skimage.data; from emocore.models import load_model; "
              "scores = load_model().analyse([skimage.data.astronaut()]); "
              "print(int(scores.face_counts[0]), 'torchvision' in sys.modules, 'torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False", "False"], done.stdout
