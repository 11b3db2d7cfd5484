"""The sampling pass lets the decoder drop the frames nobody needs, and changes no sample.

Every comparison is against the same file decoded frame by frame (`every_frame=True`): the samples
(index, time, pixels) must be identical, the shot boundaries the same or at most one frame later,
and the stored scores of a real index bit for bit the same.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from emocore import video as video_module
from emocore.audio.decode import decode_audio
from emocore.devtools import media
from emocore.indexer import index_folder
from emocore.models.base import EmotionModel
from emocore.params import IndexParams, ShotParams
from emocore.shots import ShotDetector
from emocore.store import Store
from emocore.video import open_video

from conftest import _demo_clip


def _pass(path: Path, every_frame: bool, audio: bool = False):
    """(samples as (index, time, image), shot boundaries, times on_frame saw, the soundtrack or None)."""
    with open_video(path, audio=audio) as video:
        detector = ShotDetector(video.info.fps, ShotParams())
        fed: list[float] = []

        def feed(t: float, tiny: np.ndarray) -> None:
            fed.append(t)
            detector.feed(t, tiny)

        sampled = video.sample(2.0, 1280, on_frame=feed, every_frame=every_frame)
        samples = [(f.index, f.time_s, f.image) for f in sampled]
        return samples, detector.boundaries(), fed, video.soundtrack() if audio else None, video.info.fps


def _within_a_frame_after(exact: list[float], found: list[float], fps: float) -> None:
    assert len(found) == len(exact), (exact, found)
    for e, f in zip(exact, found):
        assert e - 1e-6 <= f <= e + 1.01 / fps, (exact, found)


def _same_samples(a, b) -> None:
    assert [(i, t) for i, t, _ in a] == [(i, t) for i, t, _ in b]
    for (_, t, x), (_, _, y) in zip(a, b):
        assert np.array_equal(x, y), f"the sample at {t} s differs"


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone.mp4", "Megamind_cut.mp4", "Megamind-laughs.mp4",
                                  "bigbuckbunny.mp4", "Megamind.avi", "vtest.avi"])
def test_demo_ads_sample_the_same_frames_and_find_the_same_cuts(name: str) -> None:
    path = _demo_clip(name)
    full, cuts, fed_all, _, fps = _pass(path, every_frame=True)
    lean, lean_cuts, fed_lean, _, _ = _pass(path, every_frame=False)
    _same_samples(full, lean)
    _within_a_frame_after(cuts, lean_cuts, fps)
    assert np.all(np.diff(fed_lean) > 0)
    if name.endswith(".mp4") and name != "bigbuckbunny.mp4":  # H.264 with B-frames: about half is not decoded
        assert len(fed_lean) < 0.8 * len(fed_all)


def test_synthetic_cuts_are_found_at_their_frame(tmp_path: Path) -> None:
    cuts = (1.0, 2.5, 3.2)
    path = media.color_cut_clip(tmp_path / "cuts.mp4", seconds=4.0, fps=25, cuts=cuts)
    full, exact, fed_all, _, _ = _pass(path, every_frame=True)
    lean, found, fed_lean, _, _ = _pass(path, every_frame=False)
    _same_samples(full, lean)
    assert np.allclose(exact, cuts, atol=1.01 / 25)
    _within_a_frame_after(exact, found, 25)
    assert len(fed_lean) < len(fed_all)


def test_a_dropped_frame_that_could_have_been_a_sample_means_decoding_every_frame(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A plan that wrongly lets the decoder drop every frame it can: the pass notices the first sample a
    dropped frame may have been, reopens the file and carries on decoding every frame; the samples,
    the soundtrack and the order of the frames the shot detector sees are those of a full pass."""
    path = _demo_clip("Megamind-laughs.mp4")
    full, cuts, _, track, _ = _pass(path, every_frame=True, audio=True)
    monkeypatch.setattr(video_module._SkipPlan, "wanted", lambda self, t: t <= 0)
    with caplog.at_level(logging.INFO, logger="emocore"):
        lean, lean_cuts, fed, lean_track, _ = _pass(path, every_frame=False, audio=True)
    assert "decoding every frame from sample" in caplog.text
    _same_samples(full, lean)
    assert np.all(np.diff(fed) > 0)
    _within_a_frame_after(cuts, lean_cuts, 30)
    assert np.array_equal(lean_track.samples, track.samples)
    assert np.array_equal(lean_track.samples, decode_audio(path).samples)


def test_an_index_stores_the_same_scores_either_way(tmp_path: Path, face_model: EmotionModel) -> None:
    """The real model on a real clip: every stored probability bit for bit the same; the ads' keys differ
    because what was done differs (the parameters are part of the key and say which)."""
    (tmp_path / "ads").mkdir()
    for name in ("bikes.mp4", "carphone.mp4"):
        shutil.copy(_demo_clip(name), tmp_path / "ads" / name)
    stored = {}
    for every in (True, False):
        cache = tmp_path / f"cache-{every}"
        params = IndexParams(shots=ShotParams(every_frame=every))
        report = index_folder(tmp_path / "ads", cache, model=face_model, params=params, explain=None)
        assert report.count("indexed") == 2
        with Store(cache, readonly=True) as store:
            stored[every] = {name: (store.ad(name).key, store.timeline(store.ad(name).key), store.ad(name))
                             for name in ("bikes.mp4", "carphone.mp4")}
            assert all(ad.index_params.shots.every_frame is every for _, _, ad in stored[every].values())
    for name in ("bikes.mp4", "carphone.mp4"):
        (key_all, all_frames, ad_all), (key_lean, lean, ad_lean) = stored[True][name], stored[False][name]
        assert key_all != key_lean
        assert np.array_equal(all_frames.times, lean.times)
        assert np.array_equal(all_frames.raw, lean.raw, equal_nan=True)  # NaN: no face
        assert ad_all.face_frames == ad_lean.face_frames
    assert stored[False]["carphone.mp4"][2].face_frames > 0  # a clip with faces is among them


def test_the_cli_flag_decodes_every_frame(tmp_path: Path, weights_ready: None) -> None:
    from typer.testing import CliRunner

    from cli import app

    media.color_cut_clip(tmp_path / "ads" / "cuts.mp4", seconds=2.0, cut_at=1.0)
    for flags, every in (([], False), (["--every-frame"], True)):
        cache = tmp_path / f"cache-{every}"
        done = CliRunner().invoke(app, ["index", str(tmp_path / "ads"), "--cache", str(cache), "--no-explain",
                                        "--no-audio", "--no-preview", "--workers", "1", *flags])
        assert done.exit_code == 0, done.output
        with Store(cache, readonly=True) as store:
            assert store.ad("cuts.mp4").index_params.shots.every_frame is every
