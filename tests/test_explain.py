"""Explanations: LIME and SHAP find a known attribution, are reproducible (also from parallel
threads), carry trust figures with yardsticks (stability, R² null, deletion percentile), pass the
deletion check on real faces, are stored with the ad, resume after kill -9, and survive corruption."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emocore.errors import CorruptExplanation, TooFewSamples
from processes import kill_9_when
from emocore.explain import ExplainParams, explain_hash
from emocore.attribution import (
    deletion_check,
    deletion_checks,
    explain_lime,
    explain_shap,
    kernel_shap_solve,
    segment,
    weighted_ridge,
)
from emocore.explain.keyframes import KeyFrameParams, plan_key_frames
from emocore.indexer import index_folder
from emocore.store import Store
from emocore.trust import TrustFigures
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
    first, again = (explainer(image, segments, quadrant_model, [0, 1], 256, 3) for _ in range(2))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.weights, b.weights)
    (other,) = explainer(image, segments, quadrant_model, [0], 256, 4)
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
    # the real peaks (find_peaks, prominence 0.1) are 2 and 8; 3 and 7 are their shoulders, not
    # moments of their own; 10 has no face; 11 (0.1) is below the floor
    assert plan == {2: ("happy",), 8: ("happy",)}
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
                # the explained function is the indexed one: the same grey crop, the same classifier
                # (the stored frame score is rounded to 6 decimals)
                assert abs(figures["score"] - figures["frame_score"]) < 1e-6
                assert figures["agreement"] is not None and -1 <= figures["agreement"] <= 1
                assert (figures["fit_r2"] is None) == (a.method == "shap")
                trust = TrustFigures.from_dict(figures)
                assert json.loads(json.dumps(trust.to_dict())) == figures  # stored as the record's dict
                assert trust.method == a.method and trust.samples == 200 and trust.segments == len(a.weights)
                assert trust.stability is not None and trust.other_stability is not None
                assert -1 <= trust.stability_half <= 1
                assert (trust.fit_r2_null is None) == (trust.fit_r2_heldout is None) == (a.method == "shap")
                for d in trust.deletion:
                    assert d.draws == 32 and 0 <= d.percentile <= 100 and d.random_std >= 0
    assert maps[0].keys() == maps[1].keys()
    for key in maps[0]:
        np.testing.assert_array_equal(maps[0][key], maps[1][key])


def test_a_second_run_explains_nothing_and_a_corrupt_explanation_is_redone(
    tmp_path: Path, face_model, carphone: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ads, cache = tmp_path / "ads", tmp_path / "cache"
    ads.mkdir()
    shutil.copy(carphone, ads / "talk.mp4")
    params = ExplainParams(lime_samples=200, shap_samples=100)
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
    cmd = [sys.executable, str(ROOT / "cli.py"), "index", str(ads), "--cache", str(cache), "--samples", "200"]
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


# --- trust figures and their yardsticks ------------------------------------------------------------

def _grid_segments() -> np.ndarray:
    return ((np.arange(64)[:, None] // 8) * GRID + np.arange(64)[None, :] // 8).astype(np.int32)


def linear_model(images: np.ndarray) -> np.ndarray:
    """A 'model' with a known answer: label 0 is a weighted sum of the 64 grid cells' mean brightness,
    every cell with its own distinct weight (so every rank is meaningful)."""
    cells = np.asarray(images, np.float64).reshape(len(images), GRID, 8, GRID, 8, 3).mean(axis=(2, 4, 5)) / 255.0
    score = cells.reshape(len(images), -1) @ np.linspace(-1.0, 1.0, GRID * GRID) / 8.0
    return np.stack([score, -score], axis=1)


class NoiseModel:
    """Pure noise: outputs that do not depend on the image at all (seeded, so the test is exact)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.rng.random((len(images), 2))


@pytest.mark.parametrize("explainer", [explain_lime, explain_shap])
def test_stability_is_high_for_a_hand_set_model_and_near_zero_for_noise(explainer) -> None:
    image, _ = _quadrant_case()
    segments = _grid_segments()
    (steady,) = explainer(image, segments, linear_model, [0], 500, 0)
    # (Kernel SHAP recovers an additive model exactly from any coalitions: both halves agree fully)
    assert steady.stability_half > 0.9 and steady.stability >= steady.stability_half  # Spearman–Brown raises it
    (noise,) = explainer(image, segments, NoiseModel(1), [0], 500, 0)
    assert abs(noise.stability_half) < 0.35 and abs(noise.stability) < 0.5


def test_lime_r2_sits_beside_its_null_and_held_out_r2() -> None:
    image, segments = _quadrant_case()
    (noise,) = explain_lime(image, segments, NoiseModel(2), [0], 256, 0)
    # pure noise: the R² on its own samples is what the shuffled outputs give, held out it is worthless
    assert noise.fit_r2 > 0.1 and abs(noise.fit_r2 - noise.fit_r2_null) < 0.1
    assert noise.fit_r2_heldout < 0
    (real,) = explain_lime(image, segments, quadrant_model, [0], 256, 0)
    assert real.fit_r2 > 0.95 and real.fit_r2_heldout > 0.95 and real.fit_r2_null < 0.4


def test_the_refits_solve_the_libraries_own_estimators() -> None:
    """The half-sample refits use the same estimators as the maps: LIME's ridge and shap's regression."""
    from lime.lime_base import LimeBase

    from emocore.attribution import (
        _kernel_explainer,
        _lime_kernel,
        _seeded_global_rng,
        hidden_fill,
        score_masks,
    )

    rng = np.random.default_rng(0)
    data = rng.integers(0, 2, size=(300, 20))
    data[0] = 1
    y = data @ rng.normal(size=20) + rng.normal(scale=0.3, size=300)
    distances = rng.random(300)
    intercept, pairs, _, _ = LimeBase(_lime_kernel, random_state=0).explain_instance_with_data(
        data, y[:, None], distances, 0, num_features=20, feature_selection="none")
    mine, coef = weighted_ridge(data.astype(float), y, _lime_kernel(distances))
    assert mine == pytest.approx(intercept, abs=1e-9)
    np.testing.assert_allclose(coef[[f for f, _ in pairs]], [w for _, w in pairs], atol=1e-9)

    image, segments = _quadrant_case()
    fill = hidden_fill(image)
    with _seeded_global_rng(0) as release:
        kernel = _kernel_explainer(lambda z: score_masks(image, fill, segments, z > 0.5, quadrant_model, 64), 64,
                                   release)
        values = np.asarray(kernel.shap_values(np.ones((1, 64)), nsamples=300, l1_reg=False, silent=True))
    masks = kernel.maskMatrix[: kernel.nsamplesAdded]
    for j in range(2):
        solved = kernel_shap_solve(masks, kernel.kernelWeights, kernel.ey[:, j], kernel.fx[j], kernel.fnull[j])
        np.testing.assert_allclose(solved, values.reshape(64, 2)[:, j], atol=1e-12)


def test_deletion_percentile_places_the_top_drop_among_random_draws() -> None:
    image, _ = _quadrant_case()
    segments = _grid_segments()

    def one_segment(images: np.ndarray) -> np.ndarray:
        """Reads exactly one segment: the mean brightness of grid cell 0 (top left)."""
        score = np.asarray(images)[:, :8, :8].mean(axis=(1, 2, 3)) / 255.0
        return np.stack([score, 1 - score], axis=1)

    right, wrong = np.zeros(64), np.zeros(64)
    right[0] = 1.0
    wrong[0], wrong[63] = -1.0, 1.0  # points at cell 63, and ranks cell 0 last
    checks = deletion_checks(image, segments, one_segment, 0, {"right": right, "wrong": wrong}, seed=0)
    for good, bad in zip(checks["right"], checks["wrong"]):
        assert good.random_drop == bad.random_drop  # the same random draws for both maps
        # a random draw either hides cell 0 too (the same drop: a tie, counted half) or drops nothing
        ties = round(good.random_drop * good.draws / good.top_drop)
        assert 0 < ties < good.draws / 2
        assert good.percentile == pytest.approx(100 * (good.draws - ties / 2) / good.draws)
        assert good.percentile > 75 and good.z > 1.0
        # hiding cell 63 changes nothing: it only ties with the draws that missed cell 0
        assert bad.top_drop == 0.0 and bad.percentile == pytest.approx(50 * (bad.draws - ties) / bad.draws)
    (only,) = deletion_check(image, segments, one_segment, 0, right, 0, draws=8)[:1]
    assert only.draws == 8
    constant = deletion_check(image, segments, lambda im: np.ones((len(im), 2)), 0, right, 0)[0]
    assert constant.percentile == 50.0 and constant.z is None  # all tied: no better than random


def test_too_few_samples_per_segment_is_a_clear_error() -> None:
    with pytest.raises(TooFewSamples, match="LIME over 48 segments needs at least 192 samples"):
        ExplainParams(lime_samples=100)
    with pytest.raises(TooFewSamples, match="Kernel SHAP over 48 segments needs at least 98"):
        ExplainParams(methods=("shap",), shap_samples=50)
    assert ExplainParams(methods=("shap",), lime_samples=20, shap_samples=98).lime_samples == 20  # LIME not asked
    image, segments = _quadrant_case()
    with pytest.raises(ValueError, match="LIME over 64 segments needs at least 256 samples"):
        explain_lime(image, segments, quadrant_model, [0], 200, 0)


def test_parallel_explanations_equal_their_solo_results() -> None:
    """Two explanations of different frames in two threads give bit-identical weights to each alone,
    and NumPy's global generator is left as it was."""
    image, segments = _quadrant_case()
    other = np.ascontiguousarray(image[::-1, ::-1])

    def slow(images: np.ndarray) -> np.ndarray:
        time.sleep(0.002)  # let the other thread run between batches
        return quadrant_model(images)

    jobs = [(explainer, frame, seed) for explainer in (explain_shap, explain_lime)
            for frame, seed in ((image, 0), (other, 1))]
    solo = [fn(frame, segments, slow, [0, 1], 256, seed, 32) for fn, frame, seed in jobs]
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    results: dict[int, list] = {}

    def run(i: int) -> None:
        fn, frame, seed = jobs[i]
        results[i] = fn(frame, segments, slow, [0, 1], 256, seed, 32)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, alone in enumerate(solo):
        for a, b in zip(alone, results[i]):
            np.testing.assert_array_equal(a.weights, b.weights)
            assert a.stability_half == b.stability_half and a.fit_r2_null == b.fit_r2_null
    np.testing.assert_array_equal(np.random.get_state()[1], before)
