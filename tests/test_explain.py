"""Explanations: LIME and SHAP find a known attribution, are reproducible, pass the deletion check
on real faces, are stored with the ad, resume after kill -9, and survive corruption."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emocore.errors import CorruptExplanation
from processes import kill_9_when
from emocore.explain import ExplainParams, explain_hash
from emocore.explain.attribution import deletion_check, explain_lime, explain_shap, segment
from emocore.explain.keyframes import KeyFrameParams, plan_key_frames
from emocore.indexer import index_folder
from emocore.store import Store
from emocore.video import open_video

ROOT = Path(__file__).resolve().parent.parent
GRID = 8  # an 8×8 grid of square segments on a 64×64 image
QUADRANT = {r * GRID + c for r in range(GRID // 2) for c in range(GRID // 2)}  # the top-left segments


def _quadrant_case() -> tuple[np.ndarray, np.ndarray]:
    """A textured image whose top-left quadrant is bright, cut into an 8×8 grid of segments."""
    rng = np.random.default_rng(7)
    image = rng.integers(40, 140, size=(64, 64, 3)).astype(np.uint8)
    image[:32, :32] = rng.integers(200, 255, size=(32, 32, 3))
    segments = (np.arange(64)[:, None] // 8) * GRID + np.arange(64)[None, :] // 8
    return image, segments.astype(np.int32)


def quadrant_model(images: np.ndarray) -> np.ndarray:
    """A 'model' with a known answer: label 0 is the mean brightness of the top-left quadrant only."""
    score = np.asarray(images)[:, :32, :32].mean(axis=(1, 2, 3)) / 255.0
    return np.stack([score, 1.0 - score], axis=1)


@pytest.mark.parametrize("explainer", [explain_lime, explain_shap])
def test_both_methods_put_the_weight_on_the_quadrant_the_model_reads(explainer) -> None:
    image, segments = _quadrant_case()
    (found,) = explainer(image, segments, quadrant_model, [0], 400, 0)
    top = set(np.argsort(-found.weights)[: len(QUADRANT)].tolist())
    assert top == QUADRANT
    outside = np.abs(np.delete(found.weights, sorted(QUADRANT)))
    assert outside.max() < 0.25 * found.weights[sorted(QUADRANT)].min()
    assert found.score == pytest.approx(quadrant_model(image[None])[0, 0])


def test_lime_surrogate_fits_a_linear_model_and_the_deletion_check_sees_it() -> None:
    image, segments = _quadrant_case()
    (found,) = explain_lime(image, segments, quadrant_model, [0], 400, 0)
    assert found.fit_r2 > 0.95  # the toy model is linear in the segments: LIME fits it
    for check in deletion_check(image, segments, quadrant_model, 0, found.weights, 0):
        assert check.top_drop > 2 * check.random_drop > 0


@pytest.mark.parametrize("explainer", [explain_lime, explain_shap])
def test_same_seed_same_map(explainer) -> None:
    image, segments = _quadrant_case()
    first, again = (explainer(image, segments, quadrant_model, [0, 1], 200, 3) for _ in range(2))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.weights, b.weights)
    (other,) = explainer(image, segments, quadrant_model, [0], 200, 4)
    assert not np.array_equal(other.weights, first[0].weights)


def test_segments_are_numbered_from_zero_without_gaps() -> None:
    import skimage.data

    segments = segment(skimage.data.astronaut()[::4, ::4], 48, 10.0)
    assert segments.min() == 0
    assert set(np.unique(segments)) == set(range(segments.max() + 1))


def test_key_frames_are_peaks_with_faces_apart_and_above_the_floor() -> None:
    times = np.arange(12) * 0.5
    nan = np.nan
    happy = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.1, 0.1, 0.7, 0.75, 0.2, nan, 0.1])
    sad = np.array([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, nan, 0.1])
    raw = np.stack([happy, sad], axis=1)
    raw[10] = nan  # no face: never a key frame, whatever smoothing put there
    smoothed = np.nan_to_num(raw, nan=0.99)
    plan = plan_key_frames(times, raw, smoothed, ["happy", "sad"], {"happy": 0.4, "sad": 0.1},
                           KeyFrameParams(top_emotions=1, top_moments=3, min_gap_s=1.0, floor=0.25))
    # by smoothed score: 2, then 3 (too close to 2), 8, 7 (too close to 8), 4; 10 has no face
    assert plan == {2: ("happy",), 4: ("happy",), 8: ("happy",)}
    asked = plan_key_frames(times, raw, smoothed, ["happy", "sad"], {"happy": 0.4, "sad": 0.1},
                            KeyFrameParams(emotions=("sad",), floor=0.0, top_moments=1))
    assert list(asked.values()) == [("sad",)]
    with pytest.raises(ValueError, match="unknown emotion 'joy'"):
        plan_key_frames(times, raw, smoothed, ["happy", "sad"], {}, KeyFrameParams(emotions=("joy",)))


def test_the_explained_frame_is_the_best_raw_frame_of_the_moment() -> None:
    times = np.arange(6) * 0.5
    raw = np.array([[0.1], [0.5], [0.6], [0.9], [0.2], [0.1]])
    smoothed = np.array([[0.3], [0.4], [0.66], [0.57], [0.4], [0.15]])  # peaks at frame 2
    plan = plan_key_frames(times, raw, smoothed, ["happy"], {"happy": 0.4},
                           KeyFrameParams(top_moments=1, floor=0.2), window_s=1.0)
    assert plan == {3: ("happy",)}


def test_deletion_check_on_real_faces(face_model, carphone: Path, megamind: Path) -> None:
    """Hiding the top regions drops the score more than hiding random regions, on average."""
    params = ExplainParams(lime_samples=300, shap_samples=300)
    gaps = {"lime": [], "shap": []}
    for clip in (carphone, megamind):
        with open_video(clip) as video:
            frames = [f.image for f in video.sample(1.0, 1280)]
        scores = face_model.analyse(frames)
        for frame, faces, probs in list(zip(frames, scores.faces, scores.probabilities))[::2]:
            if not len(faces):
                continue
            target = face_model.explanation_input(frame, faces[0])
            segments = segment(target.image, params.n_segments, params.compactness)
            label = int(np.argmax(probs))
            for explainer in (explain_lime, explain_shap):
                (found,) = explainer(target.image, segments, target.predict, [label], 300, 0)
                for check in deletion_check(target.image, segments, target.predict, label, found.weights, 0):
                    gaps[found.method].append(check.top_drop - check.random_drop)
    for method, values in gaps.items():
        assert len(values) >= 10
        assert np.mean(values) > 0.05, (method, values)


def test_index_stores_reproducible_explanations(tmp_path: Path, face_model, carphone: Path) -> None:
    ads = tmp_path / "ads"
    ads.mkdir()
    shutil.copy(carphone, ads / "talk.mp4")
    params = ExplainParams(lime_samples=200, shap_samples=200)
    maps = []
    for run in ("a", "b"):
        report = index_folder(ads, tmp_path / run, model=face_model, explain=params)
        assert report.outcomes[0].explained >= 1
        with Store(tmp_path / run, readonly=True) as store:
            ad = store.ad("talk.mp4")
            frames = store.explained_frames(ad.key)
            explained = [store.explanation(ad.key, idx) for idx, _, _ in frames]
            assert store.key_frame_path(ad.key, frames[0][0]).is_file()
        maps.append({(e.frame_idx, a.emotion, a.method): a.weights for e in explained for a in e.attributions})
        for e in explained:
            assert e.explain_hash == explain_hash(face_model, params)
            for a in e.attributions:
                figures = a.figures
                assert {"score", "frame_score", "base", "samples", "seed", "seconds", "deletion", "agreement"} <= set(figures)
                assert abs(figures["score"] - figures["frame_score"]) < 0.05  # the explained function is the model
                assert figures["agreement"] is not None and -1 <= figures["agreement"] <= 1
                assert (figures["fit_r2"] is None) == (a.method == "shap")
    assert maps[0].keys() == maps[1].keys()
    for key in maps[0]:
        np.testing.assert_array_equal(maps[0][key], maps[1][key])


def test_a_second_run_explains_nothing_and_a_corrupt_explanation_is_redone(
    tmp_path: Path, face_model, carphone: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ads, cache = tmp_path / "ads", tmp_path / "cache"
    ads.mkdir()
    shutil.copy(carphone, ads / "talk.mp4")
    params = ExplainParams(lime_samples=100, shap_samples=100)
    first = index_folder(ads, cache, model=face_model, explain=params).outcomes[0].explained
    assert index_folder(ads, cache, model=face_model, explain=params).outcomes[0].explained == 0
    with Store(cache, readonly=True) as store:
        key = store.ad("talk.mp4").key
        index = store.explained_frames(key)[0][0]
    with sqlite3.connect(cache / "emocore.sqlite") as db:
        db.execute("UPDATE explained_frames SET segments = x'00ff' WHERE frame_idx = ?", (index,))
    with Store(cache, readonly=True) as store, pytest.raises(CorruptExplanation, match="corrupt"):
        store.explanation(key, index)
    with caplog.at_level(logging.WARNING, logger="emocore"):
        again = index_folder(ads, cache, model=face_model, explain=params).outcomes[0]
    assert again.status == "skipped" and again.explained == 1 and first >= 1
    assert any("corrupt" in r.getMessage() for r in caplog.records)
    with Store(cache, readonly=True) as store:
        assert store.explanation(key, index).segments.max() > 0


def test_no_explain_writes_no_explanations(tmp_path: Path, face_model, carphone: Path) -> None:
    ads = tmp_path / "ads"
    ads.mkdir()
    shutil.copy(carphone, ads / "talk.mp4")
    outcome = index_folder(ads, tmp_path / "cache", model=face_model, explain=None).outcomes[0]
    assert outcome.explained == 0
    with Store(tmp_path / "cache", readonly=True) as store:
        assert store.explained_frames(store.ad("talk.mp4").key) == []


@pytest.mark.slow
def test_kill_9_while_explaining_then_rerun_resumes(tmp_path: Path, demo_dir: Path, weights_ready: None) -> None:
    ads, cache = tmp_path / "ads", tmp_path / "cache"
    ads.mkdir()
    for name in ("Megamind.avi", "carphone.mp4"):
        shutil.copy(demo_dir / name, ads / name)
    cmd = [sys.executable, str(ROOT / "cli.py"), "index", str(ads), "--cache", str(cache), "--samples", "150"]
    kill_9_when(cmd, ROOT, cache / "emocore.sqlite", "SELECT COUNT(*) FROM explained_frames")
    with Store(cache) as store:
        assert store.check() == []
        before = sum(len(store.explained_frames(ad.key)) for ad in store.ads())
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    with Store(cache, readonly=True) as store:
        after = {ad.name: len(store.explained_frames(ad.key)) for ad in store.ads()}
    assert sum(after.values()) > before >= 1
    assert after["Megamind.avi"] >= 3 and after["carphone.mp4"] >= 1
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "explained 0 key frames" in again.stdout


def test_a_whole_frame_model_is_explained_over_the_whole_frame() -> None:
    """Models without faces explain the whole frame (scaled down), through the same machinery."""
    from test_indexer import RednessModel

    from emocore.explain import explain_frame

    frame = np.zeros((120, 200, 3), np.uint8)
    frame[:, :100] = (220, 30, 30)  # red left half, blue right half
    frame[:, 100:] = (30, 30, 220)
    region, segments, image, found = explain_frame(RednessModel(), frame, None, ["red"],
                                                   ExplainParams(lime_samples=150, shap_samples=150, n_segments=16))
    assert region == (0, 0, 200, 120) and image.shape[1] == 160 and segments.shape == image.shape[:2]
    for attribution in found:
        left = set(np.unique(segments[:, :70]).tolist())
        top = int(np.argmax(attribution.weights))
        assert top in left, attribution.method  # red lives on the left: that is what raises "red"
        assert attribution.figures["deletion"][0]["top_drop"] > attribution.figures["deletion"][0]["random_drop"]
