"""Explaining a soundtrack moment: LIME and SHAP over a time × mel-band grid of a real laugh's
spectrogram, muxed into a test video at a known time. Seeded and reproducible, the explained score
is the indexed lane value, the weights have the grid's shape, hiding the top regions lowers the
laughter more than random regions of the same area, and the figure draws it.

Real recordings come from Debian packages (emocore.devtools.audio_media: fetched once, cached); the
model from `python cli.py setup`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emocore.audio.decode import AudioTrack, NoAudio, decode_audio
from emocore.audio.explain import (
    AudioExplainParams, AudioExplanation, explain_audio_moment, log_odds, probability, region_grid,
    spectrogram_levels, waveform_envelope,
)
from emocore.audio.lanes import AudioLanes, score_lanes
from emocore.audio.render import (
    audio_explanation_figure, envelope_image, spectrogram_image, waveform_image,
)
from emocore.devtools import audio_media
from emocore.errors import AudioError, TooFewSamples
from emocore.render import NEGATIVE, POSITIVE, save_png

RATE = 48000
LAUGH_AT = 2.5
#: Small enough for a test (24 regions, 100 samples a method: about a second), large enough for LIME.
PARAMS = AudioExplainParams(lime_samples=100, shap_samples=100)


@pytest.fixture(scope="module")
def track(tmp_path_factory: pytest.TempPathFactory) -> AudioTrack:
    """6 s MP4 (grey H.264 + 48 kHz mono AAC): two real laughs joined (hedgewars-data voices Mobster and
    Surfer, GFDL-1.3; 2.45 s) at 2.5 s, silence around them; decoded."""
    try:
        clip, _ = audio_media.laugh_clip(tmp_path_factory.mktemp("laugh") / "laugh.mp4", LAUGH_AT, rate=RATE)
    except RuntimeError as exc:
        pytest.fail(f"cannot fetch the test recordings: {exc}")
    decoded = decode_audio(clip)
    assert isinstance(decoded, AudioTrack)
    return decoded


@pytest.fixture(scope="module")
def lanes(track: AudioTrack, audio_model) -> AudioLanes:
    found = score_lanes(track, audio_model)
    assert isinstance(found, AudioLanes)
    return found


@pytest.fixture(scope="module")
def explained(track: AudioTrack, audio_model, lanes: AudioLanes) -> AudioExplanation:
    """Laughter at 2.5 s, both methods, seed 0: the second the laughs start in. Its patches read 1.92–3.36 s,
    silence for the first 0.58 s, so the explanation has somewhere wrong to point."""
    return explain_audio_moment(track, audio_model, 2.5, ("laughter",), PARAMS, indexed=lanes)


def test_the_explained_score_is_the_indexed_lane_value(explained: AudioExplanation, lanes: AudioLanes,
                                                     track: AudioTrack, audio_model) -> None:
    """On the log-odds scale by default (for laughter: the largest logit of its classes), or as a probability."""
    assert explained.second == 2 and explained.patches == (4, 5) and explained.start_s == pytest.approx(1.92)
    value = float(lanes.column("laughter")[2])
    assert value > 0.5
    scores = audio_model.scores(track.samples)
    group = ["Laughter", "Baby laughter", "Giggle", "Snicker", "Belly laugh", "Chuckle, chortle"]
    largest = max(float(scores.column(c)[i]) for c in group for i in explained.patches)
    for method in ("lime", "shap"):
        figures = explained.attribution("laughter", method).figures
        assert figures.score == pytest.approx(largest, abs=1e-4)
        assert figures.frame_score == pytest.approx(figures.score, abs=1e-4)
        assert probability(figures.score) == pytest.approx(value, abs=1e-6)
        assert figures.segments == 24 and figures.seed == 0 and figures.samples == 100
    plain = explain_audio_moment(track, audio_model, 2.5, ("laughter",),
                                 AudioExplainParams(methods=("shap",), shap_samples=60, space="probability"),
                                 indexed=lanes)
    assert plain.score("laughter") == pytest.approx(value, abs=1e-6)
    assert plain.attribution("laughter", "shap").figures.frame_score == pytest.approx(value, abs=1e-6)
    assert log_odds(np.array(value)) == pytest.approx(explained.score("laughter"), abs=1e-4)


def test_weights_have_the_grids_shape_and_the_grid_covers_the_spectrogram(explained: AudioExplanation) -> None:
    grid = explained.grid
    assert grid.shape == (6, 4)
    frames = 48 * (len(explained.patches) - 1) + 96
    assert explained.spectrogram.shape == (frames, 64) and grid.segments.shape == (frames, 64)
    assert sorted(np.unique(grid.segments).tolist()) == list(range(24))
    # region r = slice × 4 + band: time runs down the rows, mel bands across
    assert grid.segments[0, 0] == 0 and grid.segments[0, -1] == 3 and grid.segments[-1, 0] == 20
    assert grid.time_edges_s[0] == pytest.approx(explained.start_s) and grid.time_edges_s[-1] == pytest.approx(
        explained.end_s)
    assert explained.start_s <= 2.0 and explained.end_s >= 3.0
    assert grid.band_hz[0, 0] > 125 and grid.band_hz[-1, 1] < 7500
    for a in explained.attributions:
        assert a.weights.shape == grid.shape and np.isfinite(a.weights).all() and np.abs(a.weights).max() > 0
    # the waveform excerpt is the sound the window reads
    assert explained.waveform.size == pytest.approx((explained.end_s - explained.start_s) * 16000, abs=400)
    assert np.abs(explained.waveform).max() > 0.1


def test_the_evidence_lies_in_the_laugh_not_the_silence_before_it(explained: AudioExplanation) -> None:
    laughing = explained.grid.time_edges_s[1:] > LAUGH_AT + 0.1  # slices holding more than 0.1 s of laugh
    assert laughing.tolist() == [False, False, True, True, True, True]
    for method in ("lime", "shap"):
        weights = explained.attribution("laughter", method).weights
        top_slice = np.unravel_index(np.argmax(weights), weights.shape)[0]
        assert laughing[top_slice], method
        assert np.clip(weights[laughing], 0, None).sum() > 2 * np.clip(weights[~laughing], 0, None).sum(), method


def test_hiding_the_top_regions_lowers_laughter_more_than_random_regions(explained: AudioExplanation) -> None:
    for method in ("lime", "shap"):
        figures = explained.attribution("laughter", method).figures
        top10 = next(d for d in figures.deletion if d.area == pytest.approx(0.1))
        assert top10.draws == 32
        assert top10.top_drop > top10.random_drop, method
        assert probability(figures.score - top10.top_drop) < 0.5 * probability(figures.score), method
    lime = explained.attribution("laughter", "lime").figures
    assert lime.agreement is not None and lime.fit_r2 is not None and lime.fit_r2_null is not None


def test_seeded_and_reproducible(track: AudioTrack, audio_model, explained: AudioExplanation) -> None:
    again = explain_audio_moment(track, audio_model, 2.9, ("laughter",), PARAMS)  # the same second
    for method in ("lime", "shap"):
        np.testing.assert_array_equal(again.attribution("laughter", method).weights,
                                      explained.attribution("laughter", method).weights)
    other = explain_audio_moment(track, audio_model, 2.5, ("laughter",),
                                 AudioExplainParams(methods=("lime",), lime_samples=100, seed=1))
    assert not np.array_equal(other.attribution("laughter", "lime").weights,
                              explained.attribution("laughter", "lime").weights)
    assert other.attribution("laughter", "shap") is None


def test_no_audio_no_sound_and_bad_arguments_are_refused(track: AudioTrack, audio_model) -> None:
    with pytest.raises(AudioError, match="no audio track"):
        explain_audio_moment(NoAudio(), audio_model, 1.0, ("laughter",), PARAMS)
    with pytest.raises(AudioError, match="no sound at 9"):
        explain_audio_moment(track, audio_model, 9.0, ("laughter",), PARAMS)
    with pytest.raises(ValueError, match="laughter"):
        explain_audio_moment(track, audio_model, 2.5, ("laughs",), PARAMS)
    with pytest.raises(TooFewSamples, match="96"):
        AudioExplainParams(lime_samples=50)
    with pytest.raises(ValueError, match="method"):
        AudioExplainParams(methods=("gradcam",))
    with pytest.raises(ValueError, match="log-odds"):
        AudioExplainParams(space="logit")


def test_region_grid_numbers_slices_then_bands() -> None:
    grid = region_grid(144, 6, 4, start_s=1.0)
    assert grid.frame_edges.tolist() == [0, 24, 48, 72, 96, 120, 144]
    assert grid.band_edges.tolist() == [0, 16, 32, 48, 64]
    assert grid.segments[23, 15] == 0 and grid.segments[24, 16] == 5 and grid.segments[143, 63] == 23
    assert grid.time_edges_s.tolist() == pytest.approx([1.0, 1.24, 1.48, 1.72, 1.96, 2.2, 2.44])


def test_the_figure_draws_the_map_over_the_spectrogram(explained: AudioExplanation, tmp_path: Path) -> None:
    figure = audio_explanation_figure(explained, "laughter", width=480)
    assert figure.dtype == np.uint8 and figure.ndim == 3 and figure.shape[1] == 480 + 8
    # both evidence colours' hues appear (blended over grey), as in the faces' overlays
    pixels = figure.reshape(-1, 3).astype(int)
    greenish = (pixels[:, 1] - pixels[:, 0] > 30).sum()
    assert greenish > 1000
    assert save_png(tmp_path / "laugh.png", figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no lime or shap explanation of 'applause'"):
        audio_explanation_figure(explained, "applause")
    assert POSITIVE != NEGATIVE


def test_spectrogram_is_drawn_with_low_bands_at_the_bottom() -> None:
    spec = np.full((10, 64), np.log(0.001), np.float32)
    spec[:, 0] = 2.0  # only the lowest band sounds
    picture = spectrogram_image(spec, width=40, height=64)
    assert picture[-1].min() == 255 and picture[0].max() == 0


def test_what_a_figure_draws_is_what_the_cache_keeps() -> None:
    """256 grey levels from silence (ln 0.001) to the window's maximum; each envelope column the min and max
    of its span of samples (float16); the strip drawn from the envelope alone."""
    spec = np.full((20, 64), np.log(0.001), np.float32)
    spec[5, 3], spec[6, 3] = 1.5, (np.log(0.001) + 1.5) / 2
    levels, (low, high) = spectrogram_levels(spec)
    assert levels.dtype == np.uint8 and levels.shape == (20, 64)
    assert (low, high) == pytest.approx((np.log(0.001), 1.5))
    assert levels[5, 3] == 255 and levels[6, 3] in (127, 128) and levels[0, 0] == 0
    samples = np.sin(np.linspace(0, 40 * np.pi, 10_000)).astype(np.float32) * 0.5
    samples[2500] = 0.9
    envelope = waveform_envelope(samples, columns=100)
    assert envelope.shape == (100, 2) and envelope.dtype == np.float16
    assert float(envelope[25, 1]) == pytest.approx(0.9, abs=1e-3)  # column 25 holds samples 2500–2599
    assert float(envelope[:, 0].min()) == pytest.approx(-0.5, abs=1e-3)
    short = waveform_envelope(np.array([0.1, -0.2], np.float32), columns=4)  # fewer samples than columns
    assert short[:, 0].tolist() == pytest.approx([0.1, 0.1, -0.2, -0.2], abs=1e-3)
    np.testing.assert_array_equal(waveform_image(samples, 200), envelope_image(waveform_envelope(samples), 200))
