"""Real, offline feature sets for training (emocore.models.feature_sources through emocore.features):
the soundtrack's AudioSet classes ("audioset"), the faces' emotions ("faces"), and both ("faces+audioset").

Clips are built at test time: 4 s of grey H.264 video with a 48 kHz stereo AAC track holding a real
laugh (hedgewars-data, via emocore.devtools.audio_media) or espeak-ng speech, and one without any
audio track; the faces run on the demo clips (carphone: a man's face in every frame; bikes: no face
that counts). Weights from `python cli.py setup`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import emocore.models.feature_sources as sources_module
from emocore.devtools import audio_media
from emocore.errors import CheckpointError, UnknownModel
from emocore.experiments import cross_validate
from emocore.features import (
    CombinedFeatures,
    FrameEncoder,
    VideoFeatureSource,
    known_backbones,
    make_encoder,
    sampling_grid,
    video_features,
)
from emocore.labels import LabelledVideo as Video
from emocore.labels import LabelSet
from emocore.models import load_model
from emocore.models.feature_sources import AudioSetFeatures, grid_patches
from emocore.training import TrainParams, load_checkpoint, predict_videos, save_checkpoint, train

RATE = 48000
LENGTH = 4.0
LAUGHS = ("laugh_mobster.ogg", "laugh_surfer.ogg", "laugh_default.ogg")
SPEECH = ("Hello and welcome to the show.", "Our new phone has a bigger screen.",
          "Call us today for a free quote.")


def _sound(clip: np.ndarray, at: float) -> np.ndarray:
    track = np.zeros(int(LENGTH * RATE), np.float32)
    a = int(at * RATE)
    part = clip[: track.size - a]
    track[a:a + part.size] = part
    return np.stack([track, track])


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Three clips with a real laugh at 1 s, three with espeak-ng speech at 0.5 s, one without audio."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: apt-get install -y espeak-ng")
    folder = tmp_path_factory.mktemp("feature-clips")
    made: dict[str, list[Path]] = {"laughter": [], "speech": []}
    for i, name in enumerate(LAUGHS):
        try:
            laugh = audio_media.read_pcm(audio_media.recording(name), rate=RATE)
        except RuntimeError as exc:
            pytest.fail(f"cannot fetch the test recording {name}: {exc}")
        made["laughter"].append(audio_media.audio_file(folder / f"laugh{i}.mp4", _sound(laugh, 1.0), rate=RATE,
                                                       layout="stereo", video=(64, 48, 10)))
    for i, text in enumerate(SPEECH):
        wav = folder / f"speech{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        speech = audio_media.read_pcm(wav, rate=RATE)
        made["speech"].append(audio_media.audio_file(folder / f"speech{i}.mp4", _sound(speech, 0.5), rate=RATE,
                                                     layout="stereo", video=(64, 48, 10)))
    made["silent"] = [audio_media.video_only(folder / "no-audio.mp4", seconds=LENGTH)]
    return made


@pytest.fixture(scope="module")
def audioset(audio_model) -> AudioSetFeatures:
    """The audioset source over the session's YAMNet (the same weights it would load itself)."""
    return AudioSetFeatures(model=audio_model)


def test_sources_are_built_by_name_and_say_what_they_are(weights_ready: None) -> None:
    source = make_encoder("audioset")
    assert isinstance(source, VideoFeatureSource) and not isinstance(source, FrameEncoder)
    assert source.dim == 522 and source.describe()["kind"] == "video" and source.describe()["weights"] == "fixed"
    assert str(source.describe()["model"]).startswith("yamnet w8a8-") and source.state_dict() is None
    assert make_encoder("audioset:embedding").dim == 1025
    faces = make_encoder("faces")
    assert isinstance(faces, VideoFeatureSource) and isinstance(faces, FrameEncoder) and faces.dim == 8
    both = make_encoder("faces+audioset")
    assert isinstance(both, CombinedFeatures) and both.name == "faces+audioset" and both.dim == 530
    assert [p["name"] for p in both.describe()["parts"]] == ["faces", "audioset"]
    assert {"audioset[:embedding]", "faces", "resnet18"} <= set(known_backbones())


def test_bad_source_names_and_weights_are_named_errors(weights_ready: None) -> None:
    with pytest.raises(ValueError, match="fixed YAMNet weights.*leave it out"):
        make_encoder("audioset", "random")
    with pytest.raises(ValueError, match="--weights does not apply"):
        make_encoder("faces", "model.pt")
    with pytest.raises(UnknownModel, match="audioset:embedding"):
        make_encoder("audioset:wide")
    with pytest.raises(UnknownModel, match="'resnet18' is an image backbone"):
        make_encoder("resnet18+audioset")
    with pytest.raises(UnknownModel, match="unknown feature source 'vgg'"):
        make_encoder("faces+vgg")
    with pytest.raises(UnknownModel, match="combined with itself"):
        make_encoder("faces+faces")


def test_grid_rows_take_the_patches_centred_in_them() -> None:
    assert sampling_grid(4.0, 1.0).tolist() == [0, 1, 2, 3] and sampling_grid(4.01, 2.0).size == 9
    assert sampling_grid(0.0, 1.0).tolist() == [0.0]
    starts = np.arange(6) * 0.48  # centres 0.4875, 0.9675, 1.4475, 1.9275, 2.4075, 2.8875
    rows = grid_patches(starts, sampling_grid(4.0, 1.0), 1.0)
    assert [r.tolist() for r in rows] == [[0, 1], [2, 3], [4, 5], [5]]  # past the centres: the nearest overlapping
    assert [r.tolist() for r in grid_patches(starts[:1], np.array([2.0]), 1.0)] == [[]]


def test_audioset_shapes_flag_and_no_audio(clips, audioset: AudioSetFeatures) -> None:
    laugh = video_features(clips["laughter"][0], audioset, sample_rate=1.0, max_side=64, cache_dir=None)
    assert laugh.shape == (4, 522) and laugh.dtype == np.float32 and np.isfinite(laugh).all()
    assert laugh[:, -1].tolist() == [1, 1, 1, 1]  # the track covers every second
    assert ((laugh[:, :-1] >= 0) & (laugh[:, :-1] <= 1)).all()
    twice = video_features(clips["laughter"][0], audioset, sample_rate=2.0, max_side=64, cache_dir=None)
    assert twice.shape == (8, 522)
    silent = video_features(clips["silent"][0], audioset, sample_rate=1.0, max_side=64, cache_dir=None)
    assert silent.shape == (4, 522) and not silent.any()  # no audio track: zeros, has-audio flag 0


def test_an_unusable_soundtrack_reads_as_no_audio_and_says_why(audioset: AudioSetFeatures, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    path = audio_media.empty_audio_track(tmp_path / "empty.mkv")  # an AAC stream without one packet
    found = video_features(path, audioset, sample_rate=1.0, max_side=64, cache_dir=None)
    assert found.shape[1] == 522 and len(found) >= 1 and not found.any()
    assert any("soundtrack cannot be read" in r.getMessage() and "empty.mkv" in r.getMessage()
               for r in caplog.records)


def test_audioset_is_deterministic_and_cached(clips, audioset: AudioSetFeatures, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = clips["speech"][0]
    first = video_features(path, audioset, sample_rate=1.0, max_side=64, cache_dir=tmp_path)
    again = video_features(path, AudioSetFeatures(model=audioset._model), sample_rate=1.0, max_side=64,
                           cache_dir=None)
    np.testing.assert_array_equal(first, again)
    assert len(list(tmp_path.glob("*.npy"))) == 1

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded although the features are cached")

    monkeypatch.setattr(sources_module, "decode_audio", no_decoding)
    np.testing.assert_array_equal(video_features(path, audioset, sample_rate=1.0, max_side=64, cache_dir=tmp_path),
                                  first)
    with pytest.raises(AssertionError, match="decoded"):  # another sampling is another cache entry
        video_features(path, audioset, sample_rate=2.0, max_side=64, cache_dir=tmp_path)


def test_audioset_separates_laughter_from_speech(clips, audioset: AudioSetFeatures, tmp_path: Path) -> None:
    laughter = audioset._loaded().class_index("Laughter")
    pooled = {kind: [video_features(p, audioset, sample_rate=1.0, max_side=64, cache_dir=tmp_path).mean(axis=0)
                     for p in clips[kind]] for kind in ("laughter", "speech")}
    assert min(v[laughter] for v in pooled["laughter"]) > 2 * max(v[laughter] for v in pooled["speech"])
    speech = audioset._loaded().class_index("Speech")
    assert min(v[speech] for v in pooled["speech"]) > max(v[speech] for v in pooled["laughter"])

    # and a head trained on them ranks each fold's held-out laugh above its held-out speech (3 folds of 2)
    videos = tuple(Video(p.stem, p, {"funny": float(kind == "laughter")})
                   for kind in ("laughter", "speech") for p in clips[kind])
    labels = LabelSet(videos, ("funny",), (), {})
    params = TrainParams(backbone="audioset", sample_rate=1.0, max_side=64, epochs=30)
    result = cross_validate(labels, params, folds=3, cache_dir=tmp_path)
    assert result.videos == 6 and not result.skipped_folds
    assert result.folds is not None and result.folds["funny"]["roc_auc"] == (1.0, 0.0)


def test_faces_read_each_sampled_frame_and_say_where_a_face_is(carphone: Path, tmp_path: Path,
                                                               weights_ready: None) -> None:
    faces = make_encoder("faces")
    found = video_features(carphone, faces, sample_rate=1.0, max_side=480, cache_dir=tmp_path)
    assert found.shape == (4, 8) and found[:, -1].tolist() == [1, 1, 1, 1]
    np.testing.assert_allclose(found[:, :7].sum(axis=1), 1.0, atol=1e-5)  # softmax over the 7 emotions
    bikes = carphone.parent / "bikes.mp4"
    none = video_features(bikes, faces, sample_rate=1.0, max_side=480, cache_dir=None)
    assert none.shape[1] == 8 and not none.any()  # no face that counts: zeros, face flag 0
    np.testing.assert_array_equal(video_features(carphone, faces, sample_rate=1.0, max_side=480, cache_dir=None),
                                  found)


def test_the_combination_is_both_parts_row_by_row(clips, carphone: Path, tmp_path: Path,
                                                  weights_ready: None) -> None:
    both = make_encoder("faces+audioset")
    combined = video_features(carphone, both, sample_rate=1.0, max_side=480, cache_dir=tmp_path)
    faces = video_features(carphone, both.parts[0], sample_rate=1.0, max_side=480, cache_dir=tmp_path)
    sound = video_features(carphone, both.parts[1], sample_rate=1.0, max_side=480, cache_dir=tmp_path)
    rows = min(len(faces), len(sound))
    assert combined.shape == (rows, 530)
    np.testing.assert_array_equal(combined, np.hstack([faces[:rows], sound[:rows]]))
    assert len(list(tmp_path.glob("*.npy"))) == 3  # each part cached on its own, and the whole


def test_checkpoints_record_the_source_and_frames_need_a_frame_source(clips, tmp_path: Path,
                                                                      weights_ready: None) -> None:
    videos = tuple(Video(p.stem, p, {"funny": float(kind == "laughter")})
                   for kind in ("laughter", "speech") for p in clips[kind])
    labels = LabelSet(videos, ("funny",), (), {})
    params = TrainParams(backbone="audioset", sample_rate=1.0, max_side=64, epochs=5, val_fraction=0.0)
    result = train(labels, params, cache_dir=tmp_path)
    assert result.checkpoint.encoder["name"] == "audioset" and result.checkpoint.encoder["kind"] == "video"
    assert result.checkpoint.encoder_state is None and result.checkpoint.head.dim == 522
    path = tmp_path / "audioset.pt"
    save_checkpoint(path, result.checkpoint)
    scores = predict_videos(load_checkpoint(path), [v.path for v in videos], cache_dir=tmp_path)
    assert scores.shape == (6, 1) and np.isfinite(scores).all()
    with pytest.raises(CheckpointError, match="audioset features.*not from single frames"):
        load_model(f"trained:{path}")

    faces = train(labels, replace(params, backbone="faces"), cache_dir=tmp_path)
    save_checkpoint(tmp_path / "faces.pt", faces.checkpoint)
    with load_model(f"trained:{tmp_path / 'faces.pt'}") as model:
        frames = model.analyse([np.full((48, 64, 3), 128, np.uint8)] * 2).probabilities
    assert frames.shape == (2, 1) and np.isfinite(frames).all()
