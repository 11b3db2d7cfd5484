"""The zero-shot CLIP model, offline: open_clip's real ViT-B-32 with seeded random weights.

Random weights make the scores meaningless but exercise every real code path: weights resolution
(local file, a tag in the Hugging Face cache, nothing at all), preprocessing, prompt embeddings,
the frame encoder, indexing into the cache and explaining a frame.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from emocore.devtools import media
from emocore.models import load_model
from emocore.models.clip import ClipEncoder, ClipModel, ClipWeightsInvalid, ClipWeightsMissing

TAG = "laion2b_s34b_b79k"
TAG_REPO = "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: faster than two on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> ClipModel:
    """ViT-B-32 with seeded random weights over two words, shared by the module."""
    return ClipModel(["happy", "funny"], random_weights=True)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """Three 1280×720 frames and one 320×240 frame: smooth colour ramps with noise, fixed seed."""
    rng = np.random.default_rng(3)
    out = []
    for i, (h, w) in enumerate([(720, 1280)] * 3 + [(240, 320)]):
        ramp = np.linspace(0, 255, w)[None, :, None] * np.array([1.0, 0.5 + 0.2 * i, 0.2])
        noisy = ramp + rng.normal(0, 25, (h, w, 3))
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def checkpoint(model: ClipModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random model's state dict saved with torch.save: what open_clip's pretrained=<path> reads."""
    path = tmp_path_factory.mktemp("clip-weights") / "vit-b-32-random.pt"
    torch.save(model.encoder._net.model.state_dict(), path)
    return path


def test_scores_are_a_distribution_over_the_given_words(model: ClipModel, frames: list[np.ndarray]) -> None:
    probabilities = model.predict(frames)
    assert model.labels == ("happy", "funny")
    assert probabilities.shape == (4, 2) and probabilities.dtype == np.float32
    assert np.isfinite(probabilities).all() and (probabilities >= 0).all() and (probabilities <= 1).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert model.analyse(frames).faces is None
    assert model.predict([]).shape == (0, 2)


def test_words_are_validated_and_change_the_version() -> None:
    base = ClipModel(["happy", "funny"], random_weights=True)
    assert ClipModel([" happy ", "funny"], random_weights=True).labels == ("happy", "funny")
    assert ClipModel(["happy", "funny"], random_weights=True).version == base.version
    assert ClipModel(["happy", "sad"], random_weights=True).version != base.version
    assert ClipModel(["funny", "happy"], random_weights=True).version != base.version
    assert ClipModel(["happy", "funny"], random_weights=True, prompts=["a {} ad"]).version != base.version
    assert "ViT-B-32/random" in base.version
    for bad in ([], ["happy", ""], ["happy", "Happy "], "happy"):
        with pytest.raises(ValueError):
            ClipModel(bad, random_weights=True)
    with pytest.raises(ValueError, match="exactly once"):
        ClipModel(["happy"], random_weights=True, prompts=["no slot"])
    with pytest.raises(ValueError):
        ClipModel(["happy"], arch="no-such-arch", random_weights=True)


def test_no_weights_names_both_fixes_and_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(ClipWeightsMissing) as missing:
        ClipModel(["happy"])
    message = str(missing.value)
    assert "--clip-weights PATH" in message and "--clip-download" in message and TAG in message
    assert "\n" not in message
    # a known tag not in the (empty) cache, download not allowed: no network is touched
    with pytest.raises(ClipWeightsMissing, match="not on this machine"):
        ClipModel(["happy"], weights=TAG, cache_dir=tmp_path)
    # download allowed but forbidden by the environment, or the host does not answer
    monkeypatch.setenv("EMOCORE_OFFLINE", "1")
    with pytest.raises(ClipWeightsMissing, match="EMOCORE_OFFLINE"):
        ClipModel(["happy"], weights=TAG, cache_dir=tmp_path, allow_download=True)
    monkeypatch.delenv("EMOCORE_OFFLINE")
    monkeypatch.setattr("emocore.models.clip_weights.host_answers", lambda host, timeout: "no answer within 5 s")
    with pytest.raises(ClipWeightsMissing, match="unreachable"):
        ClipModel(["happy"], weights=TAG, cache_dir=tmp_path, allow_download=True)
    with pytest.raises(ClipWeightsMissing, match="does not exist"):
        ClipModel(["happy"], weights=tmp_path / "nothing.pt")
    assert time.perf_counter() - started < 5


def test_a_local_checkpoint_gives_the_same_scores(model: ClipModel, checkpoint: Path,
                                                  frames: list[np.ndarray]) -> None:
    loaded = ClipModel(["happy", "funny"], weights=checkpoint)
    assert loaded.weights.identity.startswith("file:") and loaded.weights.identity in loaded.version
    np.testing.assert_array_equal(loaded.predict(frames[:2]), model.predict(frames[:2]))


def test_a_tag_in_the_hub_cache_loads_without_the_network(model: ClipModel, checkpoint: Path,
                                                          frames: list[np.ndarray], tmp_path: Path) -> None:
    """A tag downloaded earlier (here: the checkpoint laid out like a Hugging Face cache entry)."""
    snapshot = tmp_path / TAG_REPO / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (tmp_path / TAG_REPO / "refs").mkdir()
    (tmp_path / TAG_REPO / "refs" / "main").write_text("0123abcd")
    (snapshot / "open_clip_pytorch_model.bin").symlink_to(checkpoint)
    started = time.perf_counter()
    cached = ClipModel(["happy", "funny"], weights=TAG, cache_dir=tmp_path)
    assert time.perf_counter() - started < 2
    assert cached.version.startswith(f"ViT-B-32/{TAG};")
    np.testing.assert_array_equal(cached.predict(frames[:1]), model.predict(frames[:1]))


def test_an_unreadable_checkpoint_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ClipWeightsInvalid, match="broken.pt"):
        ClipModel(["happy"], weights=bad).predict([np.zeros((32, 32, 3), np.uint8)])


def test_the_encoder_gives_unit_features_and_registers(model: ClipModel, frames: list[np.ndarray]) -> None:
    features_module = pytest.importorskip("emocore.features")
    encoder = features_module.make_encoder("clip:ViT-B-32", "random", 0)
    assert isinstance(encoder, ClipEncoder) and encoder.name == "clip:ViT-B-32" and encoder.dim == 512
    features = encoder.encode(frames)
    assert features.shape == (4, 512) and features.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(features, model.encode_images(frames))  # same seed, same weights
    assert encoder.describe()["weights"] == "random:0"
    stored = features_module.StoredWeights("random:0", encoder.state_dict())
    restored = ClipEncoder(weights=stored)
    np.testing.assert_array_equal(restored.encode(frames), features)


def test_index_writes_the_words_as_labels(model: ClipModel, tmp_path: Path) -> None:
    from emocore.indexer import index_folder
    from emocore.store import Store

    media.color_cut_clip(tmp_path / "ads" / "cut.mp4", seconds=2, cut_at=1.0)
    report = index_folder(tmp_path / "ads", tmp_path / "cache", model=model, explain=None)
    assert report.count("indexed") == 1
    with Store(tmp_path / "cache", readonly=True) as store:
        (ad,) = store.ads()
        assert list(ad.labels) == ["happy", "funny"]
        assert (ad.model, ad.model_version) == (model.spec, model.version)
        # what the cache stores rebuilds the same model (explanations on demand need it)
        assert load_model(ad.model).version == ad.model_version
        timeline = store.timeline(ad.key)
        assert timeline.raw.shape == (4, 2)
        np.testing.assert_allclose(timeline.raw.sum(axis=1), 1.0, atol=1e-4)


def test_a_frame_is_explained_at_the_model_input(frames: list[np.ndarray]) -> None:
    """ViT-S-32 here: the same code path, 4× faster than ViT-B-32 over LIME's and SHAP's samples."""
    from emocore.explain import ExplainParams, explain_frame

    model = ClipModel(["happy", "funny"], arch="ViT-S-32", random_weights=True)
    target = model.explanation_input(frames[0], None)
    assert target.image.shape == (224, 224, 3) and target.region == (280, 0, 1000, 720)
    np.testing.assert_array_equal(target.predict(target.image[None]), model.predict(frames[:1]))
    params = ExplainParams(lime_samples=64, shap_samples=100, n_segments=16)
    region, segments, image, attributions = explain_frame(model, frames[0], None, ["funny"], params)
    assert region == target.region
    assert {(a.emotion, a.method) for a in attributions} == {("funny", "lime"), ("funny", "shap")}
    for attribution in attributions:
        assert np.isfinite(attribution.weights).all() and len(attribution.weights) == segments.max() + 1
