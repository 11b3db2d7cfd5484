"""The soundtrack's key moments and its stored explanations: `index` explains the peaks of laughter,
applause, funny and exciting with LIME and SHAP and stores them (one row per second), a stored
explanation draws the same figure as the fresh one, a corrupt one is recomputed, rewriting the ad or
its soundtrack drops them, and `explain --emotion laughter` explains any second on demand.

The clip is built at test time: a real laugh (hedgewars-data voices, GFDL-1.3, fetched by
emocore.devtools.audio_media) at 2.5 s in 6 s of grey video with silence around it; real models.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from emocore.audio.decode import AudioTrack, decode_audio
from emocore.audio.explain import AudioExplainParams, explain_audio_moment
from emocore.audio.lanes import AudioLanes
from emocore.audio.render import audio_explanation_figure, save_png
from emocore.devtools import audio_media
from emocore.errors import AdNotFound, AudioError, CorruptExplanation
from emocore.explain import ExplainParams, audio_explain_hash, explain_audio_ad, explain_audio_second, stored_audio
from emocore.explain.keyframes import AudioKeyParams, plan_audio_moments
from emocore.indexer import index_folder
from emocore.store import NewAd, Store

RATE = 48000
LAUGH_AT = 2.5
#: 4 time slices × 3 mel-band groups, the fewest samples each method accepts there: about a second a moment.
SMALL = AudioExplainParams(time_slices=4, mel_bands=3, lime_samples=48, shap_samples=48, draws=16)
runner = CliRunner()


@pytest.fixture(scope="module")
def laugh_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A 6 s MP4 (grey 64×48 H.264, 48 kHz mono AAC) with two real laughs joined (2.45 s) at 2.5 s; and where
    the laugh ends."""
    try:
        return audio_media.laugh_clip(tmp_path_factory.mktemp("laugh-ads") / "laugh.mp4", LAUGH_AT, rate=RATE)
    except RuntimeError as exc:
        pytest.fail(f"cannot fetch the test recordings: {exc}")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, laugh_clip: tuple[Path, float], face_model,
            audio_model) -> tuple[Path, str, int]:
    """The clip indexed with its soundtrack and explained (the audio key moments at SMALL settings): the
    cache, the ad's key, and how many key frames and moments `index` reported explaining."""
    cache = tmp_path_factory.mktemp("laugh-cache")
    report = index_folder(laugh_clip[0], cache, model=face_model, audio=audio_model,
                          explain=ExplainParams(audio=SMALL))
    (outcome,) = report.outcomes
    assert outcome.status == "indexed" and outcome.audio == "ok", outcome
    return cache, outcome.ad_key, outcome.explained


@pytest.fixture()
def cache_copy(indexed: tuple[Path, str, int], tmp_path: Path) -> Path:
    """A copy of the indexed cache a test may change."""
    return Path(shutil.copytree(indexed[0], tmp_path / "cache"))


def test_index_explains_a_laughter_peak_within_a_second_of_the_laugh(indexed, laugh_clip, face_model,
                                                                     audio_model) -> None:
    cache, key, explained = indexed
    laugh_end = laugh_clip[1]
    with Store(cache, readonly=True) as store:
        lanes = store.audio(key)
        assert isinstance(lanes, AudioLanes)
        moments = store.audio_explained_seconds(key)
        digest = audio_explain_hash(audio_model, SMALL)
        # exactly the planned peaks: laughter and funny (a cue of laughter alone) peak together; nothing
        # else reaches 0.5 in a laugh surrounded by silence
        plan = plan_audio_moments(lanes, AudioKeyParams())
        assert {m.second: m.signals for m in moments} == plan and explained == len(plan)
        assert all(m.explain_hash == digest for m in moments)
        laughs = [m.second for m in moments if "laughter" in m.signals]
        assert laughs and set(laughs) <= {2, 3, 4}
        best = max(laughs, key=lambda s: lanes.column("laughter")[s])
        assert LAUGH_AT - 1 <= best + 0.5 <= laugh_end + 1  # the loudest laugh second: inside the laugh
        assert all("funny" in m.signals for m in moments if "laughter" in m.signals)
        found = store.audio_explanation(key, best)
        assert found.second == best and found.start_s <= best and found.end_s >= best + 1
        assert {(a.emotion, a.method) for a in found.attributions} == {
            (s, m) for s in ("laughter", "funny") for m in ("lime", "shap")}
        lime = found.attribution("laughter", "lime").trust
        assert lime.segments == 12 and lime.samples == 48
        assert lime.frame_score == pytest.approx(lime.score, abs=1e-4)  # the explained score is the indexed one
        assert found.weights("laughter", "shap").shape == (4, 3)
        assert found.levels.dtype == np.uint8 and found.levels.shape == (found.frame_edges[-1], 64)
        assert found.envelope.shape == (1024, 2) and np.abs(found.envelope.astype(float)).max() > 0.1
    again = index_folder(laugh_clip[0], cache, model=face_model, audio=audio_model,
                         explain=ExplainParams(audio=SMALL))
    assert again.outcomes[0].status == "skipped" and again.outcomes[0].explained == 0  # stored: not redone


def test_a_stored_explanation_draws_what_the_fresh_one_draws(cache_copy: Path, indexed, laugh_clip, audio_model,
                                                            tmp_path: Path) -> None:
    """Seeded: explaining the stored second again gives the stored weights; and the fresh explanation,
    stored and read back, draws the same PNG bytes."""
    key = indexed[1]
    with Store(cache_copy) as store:
        lanes = store.audio(key)
        second = store.audio_explained_seconds(key)[0]
        stored = store.audio_explanation(key, second.second)
        track = decode_audio(laugh_clip[0])
        assert isinstance(track, AudioTrack)
        fresh = explain_audio_moment(track, audio_model, float(second.second), second.signals, SMALL, indexed=lanes)
        for a in fresh.attributions:
            np.testing.assert_array_equal(stored.weights(a.lane, a.method), a.weights)
            # the same figures, but for the time it took
            assert replace(stored.attribution(a.lane, a.method).trust, seconds=a.figures.seconds) == a.figures
        assert stored.patches == fresh.patches and stored.start_s == fresh.start_s and stored.end_s == fresh.end_s
        step = (stored.level_range[1] - stored.level_range[0]) / 255
        np.testing.assert_allclose(stored.spectrogram, fresh.spectrogram, atol=step / 2 + 1e-5)
        store.write_audio_explanation(stored_audio(key, "fresh", fresh, {"space": SMALL.space}))
        again = store.audio_explanation(key, second.second, "fresh")
    for signal in second.signals:
        drawn, redrawn = (audio_explanation_figure(e, signal) for e in (fresh, again))
        np.testing.assert_array_equal(drawn, redrawn)
        assert save_png(tmp_path / "fresh.png", drawn).read_bytes() == save_png(tmp_path / "stored.png",
                                                                                 redrawn).read_bytes()


def test_a_corrupt_stored_second_is_recomputed(cache_copy: Path, laugh_clip, audio_model, indexed,
                                              caplog: pytest.LogCaptureFixture) -> None:
    key = indexed[1]
    with Store(cache_copy) as store:
        second = store.audio_explained_seconds(key)[0].second
    with sqlite3.connect(cache_copy / "emocore.sqlite") as db:
        db.execute("UPDATE audio_explanations SET spectrogram = ? WHERE second = ?", (b"not a png", second))
    with Store(cache_copy) as store:
        with pytest.raises(CorruptExplanation, match=f"second {second} of the soundtrack"):
            store.audio_explanation(key, second)
        assert explain_audio_ad(store, store.ad(key), laugh_clip[0], audio_model, ExplainParams(audio=SMALL)) == 1
        assert "recomputing" in caplog.text
        assert store.audio_explanation(key, second).levels.shape[1] == 64
        with pytest.raises(AdNotFound):
            store.audio_explanation(key, 5)


def test_replacing_the_soundtrack_or_rewriting_the_ad_drops_them(cache_copy: Path, indexed) -> None:
    key = indexed[1]
    with Store(cache_copy) as store:
        ad, lanes = store.ad(key), store.audio(key)
        assert store.audio_explained_seconds(key)
        store.write_audio(key, lanes, ad.audio_model)
        assert store.audio_explained_seconds(key) == []
    shutil.rmtree(cache_copy)
    shutil.copytree(indexed[0], cache_copy)
    with Store(cache_copy) as store:
        ad = store.ad(key)
        assert store.audio_explained_seconds(key)
        store.write_ad(NewAd(key=key, content_hash=ad.content_hash, params_hash="p", params={}, name=ad.name,
                             path=ad.path, size_bytes=1, model=ad.model, model_version=ad.model_version,
                             labels=ad.labels))
        assert store.audio_explained_seconds(key) == []


def test_explain_laughter_on_demand_prints_the_trust_figures(cache_copy: Path, indexed, audio_model,
                                                            tmp_path: Path) -> None:
    key = indexed[1]
    figure = tmp_path / "laugh.png"
    args = ["explain", key, "--at", "3.5", "--emotion", "laughter", "--samples", "100", "--cache", str(cache_copy),
            "--out", str(figure)]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    out = " ".join(done.output.split())
    assert "laugh.mp4 at 3–4 s" in out and "is a probability of" in out
    assert "lime: score" in out and "shap: score" in out and "hiding the top 10%" in out
    assert "LIME–SHAP agreement" in out and "100 samples, seed 0, 24 segments" in out
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Store(cache_copy, readonly=True) as store:
        stored = store.audio_explanation(key, 3, audio_explain_hash(audio_model, AudioExplainParams(lime_samples=100,
                                                                                   shap_samples=100)))
        assert stored.signals == ("laughter",)
        created = {(m.second, m.explain_hash): m.created_at for m in store.audio_explained_seconds(key)}
    again = runner.invoke(app, args)  # stored now: read back, not recomputed
    assert again.exit_code == 0 and " ".join(again.output.split()) == out
    with Store(cache_copy, readonly=True) as store:
        assert {(m.second, m.explain_hash): m.created_at for m in store.audio_explained_seconds(key)} == created


def test_explain_says_why_there_is_nothing_to_explain(cache_copy: Path, indexed, face_model, audio_model,
                                                     tmp_path: Path) -> None:
    key = indexed[1]
    unknown = runner.invoke(app, ["explain", key, "--at", "3", "--emotion", "giggles", "--cache", str(cache_copy)])
    assert unknown.exit_code == 1
    message = " ".join(unknown.stderr.split())
    assert "unknown emotion 'giggles'" in message and "face emotions: angry" in message
    assert "audio signals: laughter, applause" in message and "loudness" not in message
    silent = runner.invoke(app, ["explain", key, "--at", "9", "--emotion", "laughter", "--cache", str(cache_copy)])
    assert silent.exit_code == 1 and "no sound at 9 s in laugh.mp4" in silent.stderr
    with Store(cache_copy) as store:
        ad = store.ad(key)
        store.write_audio(key, None, None)  # as `index --no-audio` leaves it
        with pytest.raises(AudioError, match="not analysed: index without --no-audio"):
            explain_audio_second(store, store.ad(key), Path(ad.path), audio_model, 3.0, "laughter", SMALL)
    mute = audio_media.video_only(tmp_path / "mute.mp4", seconds=2.0)
    report = index_folder(mute, cache_copy, model=face_model, audio=audio_model, explain=None)
    assert report.outcomes[0].audio == "none"
    done = runner.invoke(app, ["explain", str(mute), "--at", "1", "--emotion", "laughter", "--cache", str(cache_copy)])
    assert done.exit_code == 1 and "mute.mp4 has no audio track" in " ".join(done.stderr.split())
