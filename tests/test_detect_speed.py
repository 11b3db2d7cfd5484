"""Following faces between full searches (`FaceEmotionModel(redetect_every=N)`, `MTCNN.refine`).

Full detection stays the default and gives the same numbers whatever the call; following faces is
opt-in, changes the model's version (so the ad's key) and keeps the clip's figures within a stated
tolerance of full detection on a real demo clip. Its speed is measured by
benchmarks/bench_index.py --redetect-every N, not here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data

from emocore.indexer import IndexParams, params_hash
from emocore.models.fer import FaceEmotionModel
from emocore.models.mtcnn import MTCNN
from emocore.video import open_video

#: Following faces every 4 frames against full detection, on Megamind.avi as the indexer samples
#: it: measured |Δ mean| ≤ 0.04 per emotion (per frame up to 0.67: the classifier swings with
#: small box changes), the same dominant emotion and the same face frames.
MEAN_TOLERANCE = 0.05


def _sampled(path: Path) -> tuple[list[np.ndarray], list[float]]:
    params = IndexParams()
    with open_video(path) as video:
        frames = list(video.sample(params.sample_rate, params.max_side))
    return [f.image for f in frames], [f.source_scale for f in frames]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def following(weights_ready: None) -> FaceEmotionModel:
    return FaceEmotionModel(redetect_every=4)


@pytest.fixture(scope="module")
def full(weights_ready: None) -> FaceEmotionModel:
    return FaceEmotionModel()


def test_full_detection_is_the_default_and_keeps_the_key(full, following) -> None:
    assert full.redetect_every == 1 and "track" not in full.version
    params = IndexParams()
    assert params_hash(full, params)[0] == params_hash(FaceEmotionModel(redetect_every=1), params)[0]
    assert params_hash(following, params)[0] != params_hash(full, params)[0]
    with pytest.raises(ValueError, match="redetect_every"):
        FaceEmotionModel(redetect_every=0)


def test_by_default_the_indexer_call_searches_every_frame_in_full(full, carphone: Path) -> None:
    frames, scales = _sampled(carphone)
    alone = [full.analyse([f], [s]).probabilities[0] for f, s in zip(frames, scales)]
    np.testing.assert_array_equal(full.analyse_scaled(frames, scales).probabilities, np.stack(alone))


def test_refine_follows_a_moved_face_and_finds_none_on_a_blank(full) -> None:
    detector: MTCNN = full._loaded()[0]
    astronaut = skimage.data.astronaut()
    face = detector.detect([astronaut])[0][0]
    moved = face.copy()
    moved[[0, 2]] += 12  # the face as it stood a moment before, 12 px to the right
    found = detector.refine([astronaut, np.zeros_like(astronaut)], [moved[None], moved[None]])
    assert len(found[0].boxes) == 1 and _iou(found[0].boxes[0], face) > 0.85
    assert found[0].boxes[0, 4] > 0.9 and found[0].landmarks.shape == (1, 5, 2)
    assert len(found[1].boxes) == 0
    assert [len(d.boxes) for d in detector.refine([astronaut], [np.zeros((0, 5))])] == [0]
    with pytest.raises(ValueError, match="seed"):
        detector.refine([astronaut], [])


def test_following_searches_fewer_frames_in_full(following, full, carphone: Path, monkeypatch) -> None:
    frames, scales = _sampled(carphone)
    detector: MTCNN = following._loaded()[0]
    searched: list[int] = []
    real = detector.detect
    monkeypatch.setattr(detector, "detect", lambda images, **kw: searched.append(len(images)) or real(images, **kw))
    followed = following.detect(frames, scales, sequence=True)
    assert sum(searched) < len(frames)
    monkeypatch.undo()
    reference = full.detect(frames, scales)
    for got, want in zip(followed, reference):
        assert len(got) and len(want) and _iou(got[0], want[0]) > 0.7
    # without `sequence` (frames that need not follow each other) every frame is searched in full
    for got, want in zip(following.detect(frames, scales), reference):
        np.testing.assert_array_equal(got, want)


def test_following_keeps_the_clip_figures_within_the_tolerance(following, full, megamind: Path) -> None:
    frames, scales = _sampled(megamind)
    step = full.frames_per_call  # as the indexer hands them over
    a = np.concatenate([full.analyse_scaled(frames[i:i + step], scales[i:i + step]).probabilities
                        for i in range(0, len(frames), step)])
    b = np.concatenate([following.analyse_scaled(frames[i:i + step], scales[i:i + step]).probabilities
                        for i in range(0, len(frames), step)])
    found_a, found_b = np.isfinite(a[:, 0]), np.isfinite(b[:, 0])
    assert found_a.sum() >= 10 and abs(int(found_a.sum()) - int(found_b.sum())) <= 1
    mean_a, mean_b = np.nanmean(a, axis=0), np.nanmean(b, axis=0)
    assert np.abs(mean_a - mean_b).max() <= MEAN_TOLERANCE
    assert mean_a.argmax() == mean_b.argmax()
    assert not np.array_equal(a[found_a & found_b], b[found_a & found_b])  # it did follow, not search
