"""Smoothing and per-ad figures, on hand-made signals whose answers are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emocore.scoring import ScoringParams, find_moments, smooth, summarise

NAN = math.nan


def test_smooth_is_a_centred_moving_average_over_seconds() -> None:
    times = np.arange(6) * 0.5  # 2 frames a second
    values = np.array([[0.0], [0.0], [1.0], [0.0], [0.0], [0.0]])
    out = smooth(times, values, window_s=1.0)  # each frame averages itself and its two neighbours
    np.testing.assert_allclose(out[:, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0, 0], atol=1e-6)


def test_smooth_skips_missing_frames_instead_of_counting_zero() -> None:
    times = np.arange(5) * 0.5
    values = np.array([[0.9], [NAN], [0.3], [NAN], [NAN]])
    out = smooth(times, values, window_s=1.0)
    np.testing.assert_allclose(out[:3, 0], [0.9, 0.6, 0.3], atol=1e-6)
    assert out[3, 0] == pytest.approx(0.3)
    assert math.isnan(out[4, 0])  # nothing seen in its whole window


def test_smooth_zero_window_keeps_raw_values() -> None:
    values = np.array([[0.1, 0.9], [0.5, 0.5]])
    np.testing.assert_array_equal(smooth(np.array([0.0, 0.5]), values, 0), values.astype(np.float32))


def test_one_odd_frame_does_not_make_the_peak() -> None:
    times = np.arange(20) * 0.5
    sad = np.full(20, 0.2)
    sad[3] = 0.95  # a single odd frame
    sad[10:16] = 0.7  # a sustained sad moment
    raw = sad[:, None]
    summary = summarise(times, raw, smooth(times, raw, 1.5), ["sad"], threshold=0.5)
    figures = summary.by_emotion()["sad"]
    assert 5.0 <= figures.peak_time_s <= 7.5
    assert figures.peak == pytest.approx(0.7, abs=1e-6)


def test_summary_figures() -> None:
    times = np.arange(4) * 0.5
    raw = np.array([[0.8, 0.2], [0.6, 0.4], [NAN, NAN], [0.2, 0.8]])
    summary = summarise(times, raw, raw, ["happy", "sad"], threshold=0.5)
    happy, sad = summary.by_emotion()["happy"], summary.by_emotion()["sad"]
    assert happy.mean == pytest.approx((0.8 + 0.6 + 0.2) / 3)
    assert (happy.peak, happy.peak_time_s) == (pytest.approx(0.8), 0.0)
    assert happy.share_above == pytest.approx(2 / 4)  # no-face frames count as not above
    assert sad.share_above == pytest.approx(1 / 4)
    assert summary.dominant_raw == "happy"
    assert summary.face_coverage == pytest.approx(3 / 4)


def test_summary_without_any_face() -> None:
    raw = np.full((3, 2), NAN)
    summary = summarise(np.arange(3.0), raw, raw, ["happy", "sad"], threshold=0.5)
    assert summary.dominant_raw is None
    assert summary.face_coverage == 0.0
    assert all(e.mean is None and e.peak is None for e in summary.emotions)


def test_smoothing_never_crosses_a_shot_boundary() -> None:
    times = np.arange(8) * 0.5
    values = np.array([[0.0]] * 4 + [[1.0]] * 4)  # a cut at 2.0 s between two flat shots
    across = smooth(times, values, window_s=1.0)
    within = smooth(times, values, window_s=1.0, shots=(2.0,))
    assert across[3, 0] == pytest.approx(1 / 3) and across[4, 0] == pytest.approx(2 / 3)  # what it used to do
    np.testing.assert_allclose(within[:, 0], values[:, 0], atol=1e-6)  # each shot keeps its own level


def test_a_lone_face_frame_keeps_its_value_and_counts_as_one_frame_of_evidence() -> None:
    times = np.arange(10) * 0.5
    raw = np.full((10, 1), NAN)
    raw[4] = 0.95
    smoothed = smooth(times, raw, 1.5)
    assert smoothed[4, 0] == pytest.approx(0.95)
    summary = summarise(times, raw, smoothed, ["happy"], threshold=0.5, sample_rate=2.0)
    assert (summary.face_frames, summary.face_seconds) == (1, 0.5)
    assert summary.by_emotion()["happy"].variance == 0.0


def test_evidence_counts_face_frames_and_seconds_and_the_raw_variance() -> None:
    times = np.arange(6) * 0.5
    raw = np.array([[0.2], [0.4], [NAN], [0.6], [NAN], [0.8]])
    summary = summarise(times, raw, raw, ["happy"], threshold=0.5, sample_rate=2.0)
    assert summary.face_frames == 4 and summary.face_seconds == pytest.approx(2.0)
    assert summary.by_emotion()["happy"].variance == pytest.approx(np.var([0.2, 0.4, 0.6, 0.8]))


def test_a_sustained_plateau_is_one_peak_and_a_separate_bump_is_another() -> None:
    """One 7 s smile (3 s to 10 s) and a short moment at 17 s, at 2 frames/s: exactly two peaks."""
    times = np.arange(0, 22, 0.5)
    rng = np.random.default_rng(3)
    happy = 0.1 + rng.uniform(-0.02, 0.02, len(times))
    happy[(times >= 3) & (times <= 10)] = 0.7 + rng.uniform(-0.03, 0.03, ((times >= 3) & (times <= 10)).sum())
    happy[(times >= 16.5) & (times <= 17.5)] = 0.5
    raw = happy[:, None]
    smoothed = smooth(times, raw, 1.5)
    found = find_moments(times, smoothed[:, 0], prominence=0.1)
    assert len(found) == 2
    assert 3.0 <= found[0].time_s <= 10.0 and found[0].value == pytest.approx(0.7, abs=0.05)
    assert found[1].time_s == pytest.approx(17.0)


def test_peaks_need_the_prominence() -> None:
    times = np.arange(9) * 0.5
    column = np.array([0.1, 0.5, 0.45, 0.5, 0.1, 0.1, NAN, 0.3, 0.1])
    assert [p.index for p in find_moments(times, column, prominence=0.1)] == [1, 7]  # 0.45 dip: one moment
    assert [p.index for p in find_moments(times, column, prominence=0.01)] == [1, 3, 7]
    assert find_moments(times, np.full(9, NAN), prominence=0.1) == ()


def test_scoring_params_refuse_a_bad_prominence() -> None:
    with pytest.raises(ValueError, match="prominence"):
        ScoringParams(prominence=2.0)


def test_key_frames_and_queries_peaks_come_from_the_real_peaks(tmp_path) -> None:
    """The user's case: one sustained 7 s smile used to give three "peaks" (5, 7, 9 s) and the
    moment at 17 s was missed; now the smile is one key frame and 17 s is the other."""
    from emocore import queries
    from emocore.explain.keyframes import KeyFrameParams, plan_key_frames
    from emocore.store import NewAd, Store, Timeline

    times = np.arange(0, 22, 0.5)
    happy = np.full(len(times), 0.1)
    smile = (times >= 3) & (times <= 10)
    happy[smile] = 0.7 + 0.02 * np.sin(times[smile] * 3)  # a held smile, wobbling a little
    happy[(times >= 16.5) & (times <= 17.5)] = 0.45
    raw = np.stack([happy, 1 - happy], axis=1)
    smoothed = smooth(times, raw, 1.5)
    plan = plan_key_frames(times, raw, smoothed, ["happy", "sad"], {"happy": 0.4, "sad": 0.6},
                           KeyFrameParams(emotions=("happy",), top_moments=3), window_s=1.5)
    moments = sorted(times[i] for i in plan)
    assert len(moments) == 2 and 3.0 <= moments[0] <= 10.0 and moments[1] == pytest.approx(17.0, abs=0.5)
    labels = ("happy", "sad")
    summary = summarise(times, raw, smoothed, labels, 0.5, sample_rate=2.0)
    with Store(tmp_path) as store:
        store.write_ad(NewAd(key="k", content_hash="c", params_hash="p", params={}, name="smile.mp4", path="/smile.mp4",
                             size_bytes=1, model="toy", model_version="1", labels=labels, emotions=summary.emotions,
                             timeline=Timeline(times=times, raw=raw, smoothed=smoothed,
                                               faces=np.ones(len(times), np.int32),
                                               boxes=((0, 0, 9, 9, 1.0),) * len(times), shots=()),
                             face_frames=summary.face_frames, face_seconds=summary.face_seconds))
        found = queries.peaks(queries.ad_bundle(store, "k"))["happy"]
    assert len(found) == 2 and 3.0 <= found[0][0] <= 10.0 and found[1][0] == pytest.approx(17.0)
