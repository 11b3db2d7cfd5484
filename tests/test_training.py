"""Frame features (emocore.features), training (emocore.training) and the trained model (emocore.models.trained).

Exact behaviour is checked on tiny synthetic clips: reddish shots labelled funny=1, bluish ones
funny=0, which even randomly initialised resnet18 features separate (ImageNet weights cannot be
downloaded here, so every test uses `weights=None` or a local file). The real demo clips get a
smoke run of the whole path: train, save, reload, score frames through `load_model`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import emocore.features as features_module
from emocore.devtools import media
from emocore.labels import LabelledVideo as Video
from emocore.labels import LabelSet
from emocore.errors import UnknownModel, VideoError
from emocore.features import (
    EncoderWeightsError,
    TorchvisionEncoder,
    imagenet_state,
    make_encoder,
    video_features,
)
from emocore.models import load_model
from emocore.models.trained import TrainedModel
from emocore.training import (
    CheckpointError,
    TrainingError,
    TrainParams,
    VideoHead,
    Checkpoint,
    CheckpointSampling,
    head_for,
    load_checkpoint,
    masked_loss,
    positive_weights,
    predict_videos,
    save_checkpoint,
    split_videos,
    train,
)
from emocore.experiments import cross_validate
from emocore.files import content_hash

RED_SHADES = [(200 + 8 * i, 30 + 6 * i, 30 + 4 * i) for i in range(6)]
BLUE_SHADES = [(30 + 4 * i, 30 + 6 * i, 200 + 8 * i) for i in range(6)]
#: Fast test sampling: every clip is 2 s, so 2 frames each.
FAST = dict(weights=None, sample_rate=1.0, max_side=64, epochs=40, val_fraction=0.25, patience=8)


def Labels(videos: tuple[Video, ...], emotions: tuple[str, ...] = ("funny", "exciting")) -> LabelSet:  # noqa: N802
    """A label set as emocore.labels builds it, made in code."""
    return LabelSet(tuple(videos), emotions, (), {})


@pytest.fixture(scope="module")
def colour_clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Twelve 2 s 64×48 clips at 5 fps (media.color_cut_clip): six in shades of red, then six of blue."""
    folder = tmp_path_factory.mktemp("colours")
    return [
        media.color_cut_clip(folder / f"clip{i:02d}.mp4", seconds=2, cut_at=1, fps=5, size=(64, 48),
                             colors=(colour, colour), seed=i)
        for i, colour in enumerate(RED_SHADES + BLUE_SHADES)
    ]


@pytest.fixture(scope="module")
def colour_labels(colour_clips: list[Path]) -> Labels:
    """funny = 1 for the red clips, 0 for the blue; exciting labelled on two thirds only (NaN elsewhere)."""
    videos = []
    for i, path in enumerate(colour_clips):
        scores = {"funny": 1.0 if i < 6 else 0.0}
        if i % 3:
            scores["exciting"] = float(i % 2)
        videos.append(Video(path.stem, path, scores))
    return Labels(tuple(videos))


@pytest.fixture(scope="module")
def feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature cache shared by the module's trainings, so each clip is decoded once."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="module")
def trained_mean(colour_labels: Labels, feature_cache: Path):
    """A mean-pooling head trained on the colour clips (random resnet18 features)."""
    return train(colour_labels, TrainParams(pooling="mean", **FAST), cache_dir=feature_cache)


@pytest.fixture(scope="module")
def checkpoint_file(trained_mean, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`trained_mean` saved to disk."""
    path = tmp_path_factory.mktemp("model") / "colours.pt"
    save_checkpoint(path, trained_mean.checkpoint)
    return path


def _accuracy(result) -> float:
    funny = result.validation.labels[:, 0]
    return float(((result.validation.probabilities[:, 0] >= 0.5) == (funny >= 0.5)).mean())


def _frame(colour: tuple[int, int, int], size: tuple[int, int] = (48, 64)) -> np.ndarray:
    return np.full((*size, 3), colour, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone, dim", [("resnet18", 512), ("mobilenet_v3_small", 576),
                                           ("mobilenet_v3_large", 960), ("efficientnet_b0", 1280)])
def test_every_backbone_gives_pooled_features(backbone: str, dim: int) -> None:
    encoder = make_encoder(backbone)
    frames = [_frame((200, 30, 30)), _frame((30, 30, 200), (90, 160))]  # two sizes in one call
    out = encoder.encode(frames)
    assert encoder.dim == dim and out.shape == (2, dim) and out.dtype == np.float32
    assert encoder.describe()["weights"] == "random:0" and encoder.describe()["backbone"] == backbone
    assert encoder.encode([]).shape == (0, dim)


def test_random_weights_are_seeded() -> None:
    frames = [_frame((120, 60, 30))]
    same = make_encoder("mobilenet_v3_small", seed=3).encode(frames)
    assert np.array_equal(same, make_encoder("mobilenet_v3_small", seed=3).encode(frames))
    assert not np.array_equal(same, make_encoder("mobilenet_v3_small", seed=4).encode(frames))


def test_random_weights_by_name() -> None:
    assert make_encoder("mobilenet_v3_small", weights="random:3").describe()["weights"] == "random:3"
    assert make_encoder("mobilenet_v3_small", weights="random", seed=2).describe()["weights"] == "random:2"
    frames = [_frame((90, 60, 30))]
    assert np.array_equal(make_encoder("mobilenet_v3_small", weights="random:3").encode(frames),
                          make_encoder("mobilenet_v3_small", seed=3).encode(frames))


def test_unknown_encoder_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModel, match="resnet18"):
        make_encoder("vgg99")
    with pytest.raises(UnknownModel):
        make_encoder("resnet18:wide")


def test_weights_from_a_file(tmp_path: Path) -> None:
    source = TorchvisionEncoder("mobilenet_v3_small", weights=None, seed=7)
    path = tmp_path / "mnv3.pt"
    torch.save(source.state_dict(), path)
    loaded = TorchvisionEncoder("mobilenet_v3_small", weights=path)
    assert str(loaded.describe()["weights"]).startswith("file:") and len(str(loaded.describe()["weights"])) == 17
    assert loaded.state_dict() is not None
    frames = [_frame((10, 200, 90))]
    assert np.array_equal(loaded.encode(frames), source.encode(frames))
    with pytest.raises(EncoderWeightsError, match="not resnet18 weights"):
        TorchvisionEncoder("resnet18", weights=path)
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(EncoderWeightsError):
        TorchvisionEncoder("resnet18", weights=tmp_path / "junk.pt")


def test_imagenet_offline_falls_back_to_random_fast_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("EMOCORE_OFFLINE", raising=False)

    def unreachable(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    start = time.perf_counter()
    encoder = make_encoder("mobilenet_v3_small", weights="imagenet", seed=2)
    assert time.perf_counter() - start < 5
    assert encoder.describe()["weights"] == "random:2"
    assert encoder.state_dict() is not None  # so a checkpoint alone reproduces these features
    assert any("RANDOM weights" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_server_that_never_answers_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def hang(*args: object, **kwargs: object) -> None:
        time.sleep(3)

    monkeypatch.setattr(urllib.request, "urlopen", hang)
    start = time.perf_counter()
    state, reason = imagenet_state("https://example.invalid/resnet18-f37072fd.pth", timeout=0.2)
    assert state is None and "0.2 s" in reason and time.perf_counter() - start < 1.5


def test_imagenet_weights_come_from_the_torch_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file already in $TORCH_HOME/hub/checkpoints is used without the network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried the network"))
    source = TorchvisionEncoder("mobilenet_v3_small", weights=None, seed=5)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(source.state_dict(), tmp_path / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth")
    encoder = make_encoder("mobilenet_v3_small", weights="imagenet")
    assert encoder.describe()["weights"] == "imagenet" and encoder.state_dict() is None
    assert np.array_equal(encoder.encode([_frame((1, 2, 3))]), source.encode([_frame((1, 2, 3))]))


def test_feature_cache_hit_avoids_decoding(colour_clips: list[Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Path] = []
    real_open = features_module.open_video
    monkeypatch.setattr(features_module, "open_video", lambda path: opened.append(path) or real_open(path))
    encoder = make_encoder("mobilenet_v3_small")
    first = video_features(colour_clips[0], encoder, sample_rate=2.0, max_side=64, cache_dir=tmp_path)
    again = video_features(colour_clips[0], encoder, sample_rate=2.0, max_side=64, cache_dir=tmp_path)
    assert len(opened) == 1 and np.array_equal(first, again) and first.shape == (4, 576)
    video_features(colour_clips[0], encoder, sample_rate=1.0, max_side=64, cache_dir=tmp_path)
    video_features(colour_clips[0], make_encoder("mobilenet_v3_small", seed=1), sample_rate=2.0, max_side=64,
                   cache_dir=tmp_path)
    assert len(opened) == 3  # another sampling rate, another encoder: other keys
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_a_corrupt_cache_file_is_recomputed(colour_clips: list[Path], tmp_path: Path) -> None:
    encoder = make_encoder("mobilenet_v3_small")
    first = video_features(colour_clips[1], encoder, max_side=64, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.npy")
    cached.write_bytes(cached.read_bytes()[:100])
    assert np.array_equal(video_features(colour_clips[1], encoder, max_side=64, cache_dir=tmp_path), first)
    np.save(cached, np.zeros((2, 3), dtype=np.float32))  # loads, but the wrong array
    assert np.array_equal(video_features(colour_clips[1], encoder, max_side=64, cache_dir=tmp_path), first)
    assert np.array_equal(np.load(cached), first)


def test_a_bad_video_raises_video_error(tmp_path: Path) -> None:
    with pytest.raises(VideoError):
        video_features(media.text_as_video(tmp_path / "text.mp4"), make_encoder("mobilenet_v3_small"),
                       cache_dir=tmp_path)


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def test_mean_pooling_learns_red_from_blue(trained_mean) -> None:
    assert len(trained_mean.validation.keys) == 3 and len(trained_mean.train_keys) == 9
    assert _accuracy(trained_mean) > 0.9
    assert trained_mean.history[trained_mean.best_epoch - 1].val_loss == min(h.val_loss for h in trained_mean.history)
    assert np.isfinite([h.train_loss for h in trained_mean.history]).all()


def test_lstm_pooling_trains_too(colour_labels: Labels, feature_cache: Path) -> None:
    result = train(colour_labels, TrainParams(pooling="lstm", hidden=32, **FAST), cache_dir=feature_cache)
    assert _accuracy(result) > 0.9
    assert result.checkpoint.pooling == "lstm" and "lstm.weight_ih_l0" in result.checkpoint.head_state


def test_training_is_deterministic(trained_mean, colour_labels: Labels, feature_cache: Path) -> None:
    torch.manual_seed(1234)  # the caller's random state must not matter, nor be changed
    before = torch.get_rng_state()
    again = train(colour_labels, TrainParams(pooling="mean", **FAST), cache_dir=feature_cache)
    assert torch.equal(torch.get_rng_state(), before)
    for name, tensor in trained_mean.checkpoint.head_state.items():
        assert torch.equal(tensor, again.checkpoint.head_state[name]), name
    other = train(colour_labels, TrainParams(pooling="mean", **{**FAST, "seed": 1}), cache_dir=feature_cache)
    assert not torch.equal(other.checkpoint.head_state["linear.weight"],
                           trained_mean.checkpoint.head_state["linear.weight"])


def test_progress_is_reported(colour_labels: Labels, feature_cache: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    train(colour_labels, TrainParams(**{**FAST, "epochs": 3}), cache_dir=feature_cache,
          progress=lambda *call: calls.append(call))
    assert ("features", 12, 12) in calls and calls[-1] == ("epochs", 3, 3)


def test_masked_labels_add_nothing() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    targets = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    loss = masked_loss(logits, targets)
    loss.backward()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([2.0, 0.5, 3.0]), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.isclose(loss, expected)
    assert logits.grad[0, 1] == 0 and (logits.grad[[0, 1, 1], [0, 0, 1]] != 0).all()
    weights = positive_weights(np.array([[1.0, np.nan], [0.0, np.nan], [0.0, 1.0], [0.0, 1.0]], dtype=np.float32))
    assert weights.tolist() == [3.0, 1.0]  # 3 negatives per positive; all-positive column: 1


def test_partly_labelled_emotion_and_unusable_videos(colour_labels: Labels, feature_cache: Path, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    broken = media.text_as_video(tmp_path / "broken.mp4")
    videos = colour_labels.videos + (Video("broken", broken, {"funny": 1.0}),
                                     Video("unlabelled", colour_labels.videos[0].path, {}))
    result = train(Labels(videos), TrainParams(**FAST), cache_dir=feature_cache)
    reasons = {s.key: s.reason for s in result.skipped}
    assert reasons.keys() == {"broken", "unlabelled"} and "no emotion" in reasons["unlabelled"]
    assert any("skipping broken" in r.getMessage() for r in caplog.records)
    assert len(result.train_keys) + len(result.validation.keys) == 12
    # "exciting" is unlabelled (NaN) for a third of the clips: the losses stay finite all the same
    assert np.isfinite([h.train_loss for h in result.history] + [h.val_loss for h in result.history]).all()
    assert np.isfinite(result.validation.probabilities).all()


def test_too_few_videos_and_bad_params(colour_labels: Labels, feature_cache: Path) -> None:
    with pytest.raises(TrainingError, match="need at least 2"):
        train(Labels(colour_labels.videos[:1]), TrainParams(**FAST), cache_dir=feature_cache)
    with pytest.raises(ValueError):
        TrainParams(pooling="max")
    with pytest.raises(ValueError):
        TrainParams(val_fraction=1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        train(Labels((Video("a", colour_labels.videos[0].path, {"funny": 2.0}),) + colour_labels.videos[1:]),
              TrainParams(**FAST), cache_dir=feature_cache)


def test_split_is_seeded_and_stratified() -> None:
    labels = np.array([1.0] * 10 + [0.0] * 10)[:, None]
    split = split_videos(labels, val_fraction=0.2, seed=0)
    assert len(split.validation) == 4 and labels[split.validation, 0].sum() == 2 and len(split.test) == 0
    assert sorted(np.concatenate([split.train, split.validation]).tolist()) == list(range(20))
    assert np.array_equal(split_videos(labels, val_fraction=0.2, seed=0).validation, split.validation)
    assert not np.array_equal(split_videos(labels, val_fraction=0.2, seed=1).validation, split.validation)
    assert len(split_videos(labels, val_fraction=0.0, seed=0).validation) == 0


def test_split_has_a_stratified_test_part_apart_from_validation() -> None:
    # two emotions: the combination (funny, exciting) is what is stratified on
    labels = np.array([[1, 1]] * 10 + [[1, 0]] * 10 + [[0, 1]] * 10 + [[0, np.nan]] * 10, dtype=float)
    split = split_videos(labels, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert (len(split.train), len(split.validation), len(split.test)) == (24, 8, 8)
    assert not set(split.test) & set(split.validation) and not set(split.test) & set(split.train)
    for part in (split.validation, split.test):  # 2 of every combination in each held-out part
        combos = [tuple(row) for row in np.nan_to_num(labels[part], nan=-1)]
        assert sorted(combos.count(c) for c in set(combos)) == [2, 2, 2, 2]
    with pytest.raises(ValueError, match="leave some videos"):
        split_videos(labels, val_fraction=0.5, test_fraction=0.5, seed=0)


def test_split_keeps_identical_content_in_one_part() -> None:
    labels = np.array([1.0, 0.0] * 10)[:, None]
    groups = [f"h{i // 2}" for i in range(20)]  # rows 2k and 2k+1 are the same content
    for seed in range(5):
        split = split_videos(labels, val_fraction=0.3, test_fraction=0.3, seed=seed, groups=groups)
        for part in (split.train, split.validation, split.test):
            assert all((row ^ 1) in part for row in part)  # its twin is in the same part
        assert len(split.test) == 6 and len(split.validation) == 6  # 3 units of 2 each


def test_training_never_sees_the_test_split(colour_labels: Labels, feature_cache: Path) -> None:
    result = train(colour_labels, TrainParams(**{**FAST, "test_fraction": 0.25}), cache_dir=feature_cache)
    test, val, trained = set(result.test.keys), set(result.validation.keys), set(result.train_keys)
    assert len(test) == 3 and len(val) == 3 and len(trained) == 6
    assert not test & val and not test & trained
    funny = {v.key: v.scores["funny"] for v in colour_labels.videos}
    assert sorted(funny[k] for k in test) in ([0.0, 1.0, 1.0], [0.0, 0.0, 1.0])  # both classes
    paths = {v.key: v.path for v in colour_labels.videos}
    recorded = result.checkpoint.videos
    for part, keys in ((recorded.train, trained), (recorded.validation, val), (recorded.test, test)):
        assert list(part) == sorted(content_hash(paths[k]) for k in keys)
    assert result.checkpoint.seen_videos == frozenset(recorded.train + recorded.validation)
    # the test predictions are the restored model's, on exactly those videos
    np.testing.assert_allclose(predict_videos(result.checkpoint, [paths[k] for k in result.test.keys],
                                              cache_dir=feature_cache), result.test.probabilities, atol=1e-6)


def test_the_same_content_under_two_names_stays_in_one_split(colour_labels: Labels, feature_cache: Path,
                                                            tmp_path: Path) -> None:
    copies = []
    for video in colour_labels.videos[:4]:  # each of four clips again under another name
        twin = tmp_path / f"copy-{video.path.name}"
        twin.write_bytes(video.path.read_bytes())
        copies.append(Video(f"copy-{video.key}", twin, video.scores))
    labels = Labels(colour_labels.videos + tuple(copies))
    for seed in range(2):
        result = train(labels, TrainParams(**{**FAST, "epochs": 2, "seed": seed, "test_fraction": 0.25}),
                       cache_dir=feature_cache)
        for keys in (result.train_keys, result.validation.keys, result.test.keys):
            assert all((f"copy-{k}" in keys) == (k in keys) for k in (v.key for v in colour_labels.videos[:4]))


def test_kfold_keeps_copies_in_one_fold_and_reports_one_class_folds(
    colour_labels: Labels, feature_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emocore.experiments as experiments

    twin = tmp_path / "same-as-clip00.mp4"
    twin.write_bytes(colour_labels.videos[0].path.read_bytes())
    # funny: 7 positive (6 red + the copy), 6 negative; "sad" has 3 labels: a one-class test part is certain
    videos = tuple(Video(v.key, v.path, {**v.scores, **({"sad": 1.0} if i < 3 else {})})
                   for i, v in enumerate(colour_labels.videos)) + (Video("twin", twin, {"funny": 1.0}),)
    labels = LabelSet(videos, ("exciting", "funny", "sad"), (), {})
    trained_on: list[set[str]] = []
    real_train = experiments.train
    monkeypatch.setattr(experiments, "train", lambda fold, *a, **k: trained_on.append(
        {v.key for v in fold.videos}) or real_train(fold, *a, **k))
    result = cross_validate(labels, TrainParams(**{**FAST, "epochs": 3}), folds=3, cache_dir=feature_cache)
    assert len(trained_on) == 3 and result.videos == 13 and result.fold_count == 3
    # the copy and its original are trained on together, or held out together
    assert all(("twin" in keys) == (videos[0].key in keys) for keys in trained_on)
    # stratified: each of the 3 test parts holds 2 or 3 of funny's 7 positives (so both classes)
    for keys in trained_on:
        held_out = [v for v in videos if v.key not in keys]
        positives = sum(v.scores["funny"] >= 0.5 for v in held_out)
        assert 2 <= positives <= 3 and positives < len(held_out)
    skipped = {(f.fold, f.emotion): f for f in result.skipped_folds}
    # sad: labelled positive on 3 videos only, so every fold's test part has one class (or none)
    assert {e for _, e in skipped} == {"sad"} and len(skipped) == 3
    assert all("ROC-AUC undefined" in f.reason or "no labelled video" in f.reason for f in skipped.values())
    assert "roc_auc" not in result.folds["sad"] and "accuracy" in result.folds["sad"]


# ---------------------------------------------------------------------------------------------
# checkpoints, prediction and the trained model
# ---------------------------------------------------------------------------------------------


def test_checkpoint_reloads_with_weights_only_and_predicts_the_same(
    trained_mean, checkpoint_file: Path, colour_labels: Labels, tmp_path: Path
) -> None:
    raw = torch.load(checkpoint_file, weights_only=True)
    assert raw["format"] == "emocore-trained" and raw["version"] == 2 and raw["labels"] == ["funny", "exciting"]
    assert raw["encoder"]["weights"] == "random:0" and "encoder_state" in raw  # random: the file carries them
    assert raw["params"]["pooling"] == "mean" and raw["sampling"] == {"sample_rate": 1.0, "max_side": 64}
    checkpoint = load_checkpoint(checkpoint_file)
    by_key = {v.key: v.path for v in colour_labels.videos}
    paths = [by_key[key] for key in trained_mean.validation.keys]
    # an empty feature cache: features recomputed from the checkpoint's own encoder weights
    predicted = predict_videos(checkpoint, paths, cache_dir=tmp_path)
    np.testing.assert_allclose(predicted, trained_mean.validation.probabilities, atol=1e-6)
    assert np.array_equal(predict_videos(checkpoint_file, paths, cache_dir=tmp_path), predicted)


def test_bad_checkpoints_are_named(tmp_path: Path, trained_mean) -> None:
    (tmp_path / "junk.pt").write_text("not a model")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    save_checkpoint(tmp_path / "newer.pt", dataclasses.replace(trained_mean.checkpoint, version=99))
    with pytest.raises(CheckpointError, match="not an emocore model checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not an emocore model checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="newer emocore"):
        load_checkpoint(tmp_path / "newer.pt")
    with pytest.raises(CheckpointError, match="no such model file"):
        load_model(f"trained:{tmp_path / 'missing.pt'}")


def _same_checkpoint(a: Checkpoint, b: Checkpoint) -> None:
    """Field by field (tensors with torch.equal: a Checkpoint is not compared with ==)."""
    for f in dataclasses.fields(Checkpoint):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name in ("head_state", "encoder_state") and x is not None:
            assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f.name
        else:
            assert x == y, f.name


def test_the_checkpoint_record_round_trips_through_its_file(trained_mean, checkpoint_file: Path) -> None:
    """Checkpoint.to_dict is what the file holds (plain types and tensors, read with weights_only=True), and
    from_dict / load_checkpoint give the same typed record back."""
    made = trained_mean.checkpoint
    _same_checkpoint(Checkpoint.from_dict(made.to_dict()), made)
    loaded = load_checkpoint(checkpoint_file)
    _same_checkpoint(loaded, made)
    raw = torch.load(checkpoint_file, weights_only=True)
    assert set(raw) == {"format", "version", "labels", "encoder", "pooling", "sampling", "params", "head", "head_state",
                        "training", "videos", "metrics", "emocore", "encoder_state"}
    assert raw["head"] == {"dim": loaded.head.dim, "hidden": 128, "dropout": 0.2}
    assert raw["training"]["videos"] == {"train": 9, "validation": 3, "test": 0, "skipped": 0}
    assert loaded.params == TrainParams(pooling="mean", **FAST) and loaded.sampling == CheckpointSampling(1.0, 64)
    assert loaded.training is not None and loaded.training.best_epoch == trained_mean.best_epoch
    assert len(loaded.videos.train) == 9 and len(loaded.seen_videos) == 12


def test_damaged_checkpoint_records_are_named(trained_mean, tmp_path: Path) -> None:
    good = trained_mean.checkpoint.to_dict()
    cases = {
        "missing head_state": {k: v for k, v in good.items() if k != "head_state"},
        "sampling holds unknown fields frames": {**good, "sampling": {**good["sampling"], "frames": 3}},
        "labels is not a list of strings": {**good, "labels": "funny"},
        "head_state holds something other than tensors": {**good, "head_state": {"linear.weight": [1.0]}},
        "params holds unknown fields colour": {**good, "params": {**good["params"], "colour": "red"}},
        "no format version": {**good, "version": "2"},
    }
    for reason, data in cases.items():
        torch.save(data, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=reason) as caught:
            load_checkpoint(tmp_path / "bad.pt")
        assert str(tmp_path / "bad.pt") in str(caught.value) and "\n" not in str(caught.value)
    # format 1 (no record of its videos, no test count) still loads and scores; its videos are unknown
    old = {k: v for k, v in good.items() if k != "videos"}
    old["version"] = 1
    old["training"] = {**good["training"], "videos": {"train": 9, "validation": 3, "skipped": 0}}
    old["params"] = {k: v for k, v in good["params"].items() if k != "test_fraction"}  # format 1 predates it
    loaded = Checkpoint.from_dict(old)
    assert loaded.videos is None and loaded.seen_videos is None and loaded.params.test_fraction == 0.0
    assert head_for(loaded).pooling == "mean"


def test_frame_logits_score_a_frame_as_a_one_frame_video() -> None:
    torch.manual_seed(0)
    for pooling in ("mean", "lstm"):
        head = VideoHead(8, 3, pooling, hidden=4).eval()
        frames = torch.randn(5, 8)
        one_by_one = torch.cat([head(f[None, None], torch.tensor([1])) for f in frames])
        torch.testing.assert_close(head.frame_logits(frames), one_by_one)


def test_trained_model_scores_frames_through_load_model(checkpoint_file: Path, caplog) -> None:
    with load_model(f"trained:{checkpoint_file}") as model:
        assert isinstance(model, TrainedModel) and model.name == "trained" and len(model.version) == 12
        assert model.labels == ("funny", "exciting")
        assert load_model(model.spec).version == model.version
        frames = [_frame(RED_SHADES[0]), _frame(BLUE_SHADES[0]), _frame(RED_SHADES[3], (120, 160))]
        scores = model.analyse(frames)
        assert scores.faces is None and scores.probabilities.shape == (3, 2)
        assert scores.probabilities.dtype == np.float32
        assert ((scores.probabilities >= 0) & (scores.probabilities <= 1)).all()
        funny = scores.probabilities[:, 0]
        assert funny[0] > 0.5 > funny[1] and funny[2] > 0.5
        assert model.analyse([]).probabilities.shape == (0, 2)
        explain = model.explanation_input(frames[0], None)  # the base class's whole frame: LIME/SHAP work
        assert explain is not None and explain.predict(explain.image[None]).shape == (1, 2)


def test_unknown_model_lists_the_prefix_forms() -> None:
    with pytest.raises(UnknownModel, match=r"known models: fer, .*trained:PATH"):
        load_model("nope")
    with pytest.raises(UnknownModel, match="needs an argument"):
        load_model("trained:")


def test_demo_clips_smoke(megamind: Path, carphone: Path, bunny: Path, tmp_path: Path) -> None:
    """Real footage end to end: features, an LSTM head, a checkpoint, frames scored by load_model."""
    labels = Labels((Video("megamind", megamind, {"funny": 1.0, "exciting": 1.0}),
                     Video("carphone", carphone, {"funny": 0.0, "exciting": 0.0}),
                     Video("bunny", bunny, {"funny": 1.0})))
    params = TrainParams(weights=None, pooling="lstm", sample_rate=0.5, max_side=240, epochs=5, val_fraction=0.34)
    result = train(labels, params, cache_dir=tmp_path / "features")
    assert len(result.validation.keys) == 1 and not result.skipped
    assert len(list((tmp_path / "features").glob("*.npy"))) == 3
    save_checkpoint(tmp_path / "demo.pt", result.checkpoint)
    with load_model(f"trained:{tmp_path / 'demo.pt'}") as model:
        from emocore.video import open_video

        with open_video(carphone) as video:
            frames = [f.image for f in video.sample(1.0, max_side=240)]
        probabilities = model.predict(frames)
        assert probabilities.shape == (len(frames), 2) and np.isfinite(probabilities).all()
    assert head_for(load_checkpoint(tmp_path / "demo.pt")).pooling == "lstm"


@pytest.mark.slow
def test_clip_features_train_and_reload(colour_labels: Labels, tmp_path: Path) -> None:
    """The CLIP encoder (emocore.models.clip, random weights) through train, checkpoint and load_model."""
    pytest.importorskip("open_clip")
    params = TrainParams(backbone="clip:ViT-B-32", **{**FAST, "weights": "random", "epochs": 5})
    result = train(colour_labels, params, cache_dir=tmp_path)
    assert result.checkpoint.encoder["name"] == "clip:ViT-B-32" and result.checkpoint.encoder_state is not None
    save_checkpoint(tmp_path / "clip.pt", result.checkpoint)
    by_key = {v.key: v.path for v in colour_labels.videos}
    predicted = predict_videos(tmp_path / "clip.pt", [by_key[k] for k in result.validation.keys],
                               cache_dir=tmp_path / "fresh")
    np.testing.assert_allclose(predicted, result.validation.probabilities, atol=1e-5)
    with load_model(f"trained:{tmp_path / 'clip.pt'}") as model:
        assert model.predict([_frame(RED_SHADES[0])]).shape == (1, 2)
