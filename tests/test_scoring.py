"""Smoothing and per-ad figures, on hand-made signals whose answers are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emocore.scoring import smooth, summarise

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
    assert summary.dominant == "happy"
    assert summary.face_coverage == pytest.approx(3 / 4)


def test_summary_without_any_face() -> None:
    raw = np.full((3, 2), NAN)
    summary = summarise(np.arange(3.0), raw, raw, ["happy", "sad"], threshold=0.5)
    assert summary.dominant is None
    assert summary.face_coverage == 0.0
    assert all(e.mean is None and e.peak is None for e in summary.emotions)
