"""The face size rule, the stored face size, and the explained function being the indexed one.

Real face pixels: the astronaut of the scikit-image wheel (her face box is about 88×115 px in the
512×512 picture), pasted at chosen sizes onto a noisy grey background; and carphone.mp4 (conftest).
The rule: a face whose box's shorter side is under `min_face_px` (32) pixels of the ORIGINAL frame
is never scored nor counted.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from emocore.devtools import media
from emocore import queries
from emocore.indexer import IndexParams, index_folder
from emocore.models.fer import FaceEmotionModel, face_sizes
from emocore.models.mini_xception import classify_faces, cut_faces
from emocore.models.mtcnn import MTCNN
from emocore.store import Store
from emocore.video import open_video

#: The astronaut's head and shoulders: a 170×200 px patch whose face box is ~88 px wide.
_PATCH = (slice(20, 220), slice(140, 310))
_FACE_TO_PATCH = 88 / 170


def _frame(faces: list[tuple[int, int, float]], size: tuple[int, int] = (480, 640), seed: int = 0) -> np.ndarray:
    """A noisy grey H×W frame with the astronaut pasted at (x, y) so her face is about `px` wide."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(110, 12, (*size, 3)), 0, 255).astype(np.uint8)
    patch = skimage.data.astronaut()[_PATCH]
    for x, y, px in faces:
        w = int(round(px / _FACE_TO_PATCH))
        h = int(round(w * 200 / 170))
        image[y:y + h, x:x + w] = cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA)
    return image


@pytest.fixture(scope="module")
def seeing_all(weights_ready: None) -> FaceEmotionModel:
    """No rule (P-Net's 12 px) and a search down to 12 px: it finds the small faces."""
    return FaceEmotionModel(min_face_px=12, detect_min_px=12)


@pytest.fixture(scope="module")
def searching(weights_ready: None) -> FaceEmotionModel:
    """The default rule (32 px of the original frame), searching down to 12 px of the detection
    copy: small faces are found, so only the rule can drop them."""
    return FaceEmotionModel(detect_min_px=12)


def test_a_small_face_is_never_scored_and_the_same_face_enlarged_is(face_model, seeing_all, searching) -> None:
    assert face_model.min_face_px == 32
    small = _frame([(200, 150, 24)])
    (found,) = seeing_all.detect([small])
    assert len(found) == 1 and 16 <= face_sizes(found)[0] < 32  # the face is there, and small
    for model in (face_model, searching):
        scores = model.analyse([small])
        assert np.isnan(scores.probabilities).all() and scores.face_counts.tolist() == [0]
        assert np.isnan(scores.face_px).all()
        # classify applies the rule to boxes it is given, too
        assert np.isnan(model.classify([small], [found])).all()

    large = _frame([(200, 150, 96)])
    scores = face_model.analyse([large])
    assert scores.face_counts.tolist() == [1]
    np.testing.assert_allclose(scores.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert 80 <= scores.face_px[0] <= 115
    assert scores.face_px[0] == pytest.approx(face_sizes(scores.faces[0][:1])[0])


def test_only_the_large_face_counts_beside_a_small_one(face_model, seeing_all, searching) -> None:
    frame = _frame([(60, 100, 100), (400, 250, 24)])
    both = seeing_all.detect([frame])[0]
    assert len(both) == 2 and face_sizes(both[1:])[0] < 32 <= face_sizes(both[:1])[0]
    for model in (face_model, searching):
        scores = model.analyse([frame])
        assert scores.face_counts.tolist() == [1]
        (kept,) = scores.faces
        assert kept[0, 0] < 200  # the large face, on the left
        assert scores.face_px[0] == pytest.approx(face_sizes(both[:1])[0], rel=0.03)
        alone = model.classify([frame], [kept[:1]])
        np.testing.assert_array_equal(scores.probabilities, alone)


def test_the_rule_applies_in_original_pixels_when_the_frame_was_scaled_down(face_model, searching) -> None:
    # a 24 px face in a frame shown at half its original size is 48 px in the original: kept
    frame = _frame([(200, 150, 24)])
    assert searching.analyse([frame], [1.0]).face_counts.tolist() == [0]
    scores = searching.analyse_scaled([frame], [2.0])
    assert scores.face_counts.tolist() == [1]
    box = scores.faces[0][0]
    assert 190 <= box[0] <= 230 and 140 <= box[1] <= 190  # boxes stay in the given frame's pixels
    assert scores.face_px[0] == pytest.approx(2.0 * face_sizes(box[None])[0], rel=1e-6)
    assert 36 <= scores.face_px[0] <= 60
    # and the other way: a stricter minimum drops a face that is large enough at scale 1 only
    strict = FaceEmotionModel(min_face_px=64)
    assert strict.version != face_model.version  # the rule is part of the cache key
    mid = _frame([(200, 150, 44)])
    assert strict.analyse([mid], [1.0]).face_counts.tolist() == [0]
    assert strict.analyse([mid], [2.0]).face_counts.tolist() == [1]
    # the search never starts below the minimum, and at 1/20 of a large frame's detection copy
    assert face_model.pyramid_start(272, 640) == 32  # bikes.mp4: exactly at the minimum
    assert face_model.pyramid_start(720, 1280) == 32  # 32 px of the 640 px copy: 64 original px
    assert FaceEmotionModel(min_face_px=100).pyramid_start(720, 1280) == 50
    assert searching.pyramid_start(480, 640, 2.0) == 16
    with pytest.raises(ValueError, match="scales"):
        face_model.analyse([frame], [0.0])
    with pytest.raises(ValueError, match="scales"):
        face_model.analyse([frame, frame], [1.0])


def test_the_pyramid_starts_where_the_caller_says(weights_ready: None) -> None:
    from emocore.assets import weights_dir

    folder = weights_dir()
    detector = MTCNN.from_files(*(folder / f"{n}.pt" for n in ("pnet", "rnet", "onet")), min_face_size=40)
    frame = _frame([(200, 150, 16)])
    assert len(detector.detect([frame])[0]) == 0
    assert len(detector.detect([frame], min_face_size=12)[0]) == 1
    assert detector.scales(480, 640, 24)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least 12"):
        detector.detect([frame], min_face_size=8)


def test_sampled_frames_carry_their_scale_after_rotation(tmp_path: Path) -> None:
    clip = media.rotated_clip(tmp_path / "phone.mp4", 90, size=(320, 180), seconds=0.2)
    with open_video(clip) as video:
        (first, *_) = list(video.sample(5.0, max_side=160))
    assert first.image.shape == (160, 90, 3) and first.source_scale == pytest.approx(2.0)
    with open_video(clip) as video:
        assert next(iter(video.sample(5.0))).source_scale == 1.0


def test_index_stores_the_scored_face_size_in_original_pixels(tmp_path: Path, searching) -> None:
    # a portrait phone clip (coded landscape, rotated 90° for display), 720×1280 upright, indexed at
    # max_side 640 (half size): a 150 px face and a 48 px face that is only 24 px in the scored frame
    upright = _frame([(80, 200, 150), (480, 900, 48)], size=(1280, 720))
    coded = np.ascontiguousarray(np.rot90(upright, k=1))  # the player turns it back clockwise
    ads = tmp_path / "ads"
    ads.mkdir()
    media._encode_video(ads / "phone.mp4", [coded] * 5, size=(1280, 720), fps=5, rotation_ccw=-90,
                        options={"crf": "12"})
    index_folder(ads, tmp_path / "cache", model=searching, params=IndexParams(max_side=640), explain=None)
    with Store(tmp_path / "cache", readonly=True) as store:
        ad = store.ad("phone.mp4")
        assert (ad.width, ad.height) == (720, 1280)
        timeline = store.timeline(ad.key)
        table = queries.timeline_table(queries.ad_bundle(store, ad.key))
    assert len(timeline.times) == 2
    assert timeline.faces.tolist() == [2, 2]  # the 48 px face counts: the rule is in original pixels
    truth = searching.analyse([upright])  # the same faces, found at full size
    assert truth.face_counts.tolist() == [2]
    np.testing.assert_allclose(timeline.face_px, truth.face_px[0], rtol=0.05)
    assert timeline.boxes[0][2] <= 360  # the box itself is in the scored (half-size) frame's pixels
    np.testing.assert_allclose(table["face_px"].to_numpy(), timeline.face_px)


def test_the_store_keeps_face_px_and_nan_means_no_face(tmp_path: Path, face_model, carphone: Path) -> None:
    ads = tmp_path / "ads"
    ads.mkdir()
    shutil.copy(carphone, ads / "talk.mp4")
    index_folder(ads, tmp_path / "cache", model=face_model, explain=None)
    with Store(tmp_path / "cache", readonly=True) as store:
        timeline = store.timeline(store.ad("talk.mp4").key)
    seen = ~np.isnan(timeline.raw).any(axis=1)
    assert seen.sum() >= 7
    assert (timeline.face_px[seen] >= 32).all() and np.isnan(timeline.face_px[~seen]).all()
    for box, px in zip(timeline.boxes, timeline.face_px):
        if box is not None:  # carphone is indexed at full size: face_px is the box's shorter side
            assert px == pytest.approx(min(box[2] - box[0], box[3] - box[1]), abs=0.01)


def test_the_explained_function_is_the_indexed_one_bit_for_bit(face_model, carphone: Path) -> None:
    with open_video(carphone) as video:
        frames = [f.image for f in video.sample(2.0, 1280)]
    scores = face_model.analyse(frames)
    checked = 0
    for frame, faces, probabilities in zip(frames, scores.faces, scores.probabilities):
        if not len(faces):
            continue
        for side in (64, 128):
            target = face_model.explanation_input(frame, faces[0], side)
            image = target.image
            assert image.shape == (side, side, 3)
            assert (image[..., 0] == image[..., 1]).all() and (image[..., 0] == image[..., 2]).all()
            grey = cut_faces(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), faces[:1])[0]
            np.testing.assert_array_equal(image[::side // 64, ::side // 64, 0], grey)
            np.testing.assert_array_equal(target.predict(image[None])[0], probabilities)
            np.testing.assert_array_equal(target.predict(np.stack([image] * 5)), np.tile(probabilities, (5, 1)))
        checked += 1
    assert checked >= 6


def test_a_face_gets_the_same_probabilities_alone_or_in_a_batch(weights_ready: None) -> None:
    from emocore.assets import weight_file
    from emocore.models.mini_xception import load_mini_xception

    faces = np.load(Path(__file__).parent / "data" / "fer_reference.npz")["faces"][:9].astype(np.float32)
    model = load_mini_xception(weight_file("mini_xception"))
    together = classify_faces(faces, model)
    for i in range(len(faces)):
        np.testing.assert_array_equal(classify_faces(faces[i:i + 1], model)[0], together[i])
    assert not math.isnan(float(together.sum()))
