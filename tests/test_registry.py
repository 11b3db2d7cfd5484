"""The one registry of models, frame encoders and explainers: every registered name builds (or fails
with its named error), each backend's NAME is its key, unknown names list the known ones, the
pipeline picks backends from it, and adding a backend is one line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from emocore.errors import CheckpointError, ClipWeightsMissing, EmocoreError, TooFewSamples, UnknownExplainer, UnknownModel
from emocore.attribution import Attribution, Explainer, KernelShap, Lime
from emocore.features import FrameEncoder, known_encoders, make_encoder
from emocore.models import EmotionModel, FrameScores, known_models, load_model
from emocore.registry import ENCODERS, EXPLAINERS, MODELS, Backend, Registry

REGISTRIES = {"models": MODELS, "encoders": ENCODERS, "explainers": EXPLAINERS}
EVERY_NAME = [(kind, name) for kind, registry in REGISTRIES.items() for name in registry.names()]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: faster than two on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class FakeModel(EmotionModel):
    """A whole-frame model in a few lines: 'bright' is the frame's mean brightness."""

    NAME = "fake"
    version = "1"
    labels = ("bright", "dark")

    def analyse(self, frames: Sequence[np.ndarray]) -> FrameScores:
        bright = np.array([f.mean() / 255.0 for f in frames], dtype=np.float32).reshape(-1)
        return FrameScores(np.stack([bright, 1 - bright], axis=1) if len(frames) else np.zeros((0, 2), np.float32))


class Misnamed(FakeModel):
    NAME = "not-its-key"


class CountingLime(Lime):
    """LIME, counting its calls: registered over "lime" to see that the pipeline asks the registry."""

    calls = 0

    def attribute(self, image: np.ndarray, **kwargs: object) -> list[Attribution]:
        CountingLime.calls += 1
        return super().attribute(image, **kwargs)  # type: ignore[arg-type]


def quadrant(images: np.ndarray) -> np.ndarray:
    """Label 0 is the mean brightness of the top-left quadrant: a known answer."""
    score = np.asarray(images)[:, :16, :16].mean(axis=(1, 2, 3)) / 255.0
    return np.stack([score, 1.0 - score], axis=1)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    image = rng.integers(30, 120, size=(32, 32, 3)).astype(np.uint8)
    image[:16, :16] = 230
    segments = ((np.arange(32)[:, None] // 8) * 4 + np.arange(32)[None, :] // 8).astype(np.int32)
    return image, segments


def _build(kind: str, name: str) -> object:
    """The cheapest real build of each registered backend (random weights where weights are needed)."""
    if kind == "models":
        if name == "clip":
            return load_model("clip", emotions=["happy", "sad"], random_weights=True)  # network built on first use
        return load_model(name)
    if kind == "encoders":
        return make_encoder("clip:ViT-S-32" if name == "clip" else name, "random", 0)
    return EXPLAINERS.build(name, quadrant)


@pytest.mark.parametrize(("kind", "name"), EVERY_NAME)
def test_every_registered_name_builds_and_its_backend_declares_that_name(kind: str, name: str, tmp_path: Path,
                                                                         weights_ready: None) -> None:
    registry = REGISTRIES[kind]
    backend = registry.resolve(name)
    assert backend.NAME == name
    if (kind, name) == ("models", "trained"):  # needs a checkpoint: tests/test_training.py loads real ones by name
        with pytest.raises(CheckpointError, match="no-such.pt"):
            load_model(f"trained:{tmp_path / 'no-such.pt'}")
        return
    built = _build(kind, name)
    assert type(built).NAME == name
    if kind == "models":
        assert isinstance(built, EmotionModel) and built.name == name
        built.close()
    elif kind == "encoders":
        assert isinstance(built, FrameEncoder)
        frames = [np.full((40, 60, 3), 90, np.uint8), np.full((30, 30, 3), 200, np.uint8)]
        features = built.encode(frames)
        assert features.shape == (2, built.dim) and features.dtype == np.float32 and np.isfinite(features).all()
    else:
        image, segments = _grid()
        (found,) = built.attribute(image, segments=segments, labels=[0], n_samples=80, seed=0)
        assert found.method == name and found.weights.shape == (16,)
        # the top-left quadrant (segments 0, 1, 4, 5) is what the model reads
        assert set(np.argsort(-found.weights)[:4].tolist()) == {0, 1, 4, 5}


def test_names_that_need_weights_or_an_argument_fail_with_their_named_error(tmp_path: Path) -> None:
    with pytest.raises(ClipWeightsMissing):
        load_model("clip")  # no weights given: both fixes named
    with pytest.raises(ClipWeightsMissing):
        make_encoder("clip")
    with pytest.raises(UnknownModel, match="needs an argument: trained:PATH"):
        load_model("trained")
    with pytest.raises(EmocoreError, match="missing.pt"):
        load_model(f"trained:{tmp_path / 'missing.pt'}")
    with pytest.raises(UnknownModel, match="takes no argument"):
        load_model("fer:large")
    with pytest.raises(UnknownModel, match="takes no variant"):
        make_encoder("resnet18:wide")
    with pytest.raises(UnknownExplainer, match="takes no argument"):
        EXPLAINERS.build("lime:fast", quadrant)


def test_unknown_names_raise_the_named_error_listing_the_known_ones() -> None:
    with pytest.raises(UnknownModel, match=r"unknown model 'nope'; known models: fer, clip, trained:PATH$"):
        load_model("nope")
    assert known_models() == ["fer", "clip", "trained:PATH"]
    with pytest.raises(UnknownModel, match=r"unknown frame encoder 'vgg99'; known frame encoders: clip:ARCH, "
                                           r"efficientnet_b0, mobilenet_v3_large, mobilenet_v3_small, resnet18$"):
        make_encoder("vgg99")
    assert known_encoders() == ENCODERS.usages()
    with pytest.raises(UnknownExplainer, match=r"known explanation methods: lime, shap$"):
        EXPLAINERS.build("gradcam", quadrant)
    with pytest.raises(UnknownExplainer, match="unknown explanation method 'gradcam'; use lime, shap or both"):
        from emocore.explain import ExplainParams

        ExplainParams(methods=("gradcam",))
    assert isinstance(UnknownExplainer("x"), ValueError)  # a bad argument: the CLI's usage error (exit 2)


def test_each_explainer_checks_its_own_sample_rule() -> None:
    from emocore.explain import ExplainParams

    assert (Lime.min_samples(48), KernelShap.min_samples(48)) == (192, 98)
    with pytest.raises(TooFewSamples, match=r"LIME over 48 segments needs at least 192 samples \(4 per segment\)"):
        ExplainParams(lime_samples=100)
    with pytest.raises(TooFewSamples, match=r"Kernel SHAP over 48 segments needs at least 98 samples"):
        ExplainParams(methods=("shap",), shap_samples=97)
    assert ExplainParams(methods=("shap",), lime_samples=1, shap_samples=98).samples("shap") == 98
    # methods run in the registry's order whatever order they are given in (the explanation is the same)
    assert ExplainParams(methods=("shap", "lime")).ordered_methods() == ("lime", "shap")


def test_adding_a_model_is_one_registry_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake backend above is the one file; registering it is the one line. It then works by name
    everywhere a model name is taken: load_model, the indexer, the cache's record of the model."""
    from emocore.devtools import media
    from emocore.indexer import index_folder
    from emocore.store import Store

    monkeypatch.setattr(MODELS, "_backends", dict(MODELS._backends))  # undone after the test
    MODELS.register("fake", "test_registry:FakeModel")
    assert "fake" in known_models()
    with load_model("fake") as model:
        assert isinstance(model, FakeModel) and model.describe()["name"] == "fake"
    media.color_cut_clip(tmp_path / "ads" / "cut.mp4", seconds=2, cut_at=1.0)
    report = index_folder(tmp_path / "ads", tmp_path / "cache", model="fake", explain=None)
    assert report.count("indexed") == 1
    with Store(tmp_path / "cache", readonly=True) as store:
        (ad,) = store.ads()
        assert ad.model == "fake" and list(ad.labels) == ["bright", "dark"]


def test_a_backend_whose_name_is_not_its_key_or_whose_module_is_missing_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MODELS, "_backends", dict(MODELS._backends))
    MODELS.register("misnamed", "test_registry:Misnamed")
    with pytest.raises(TypeError, match="declares NAME 'not-its-key' but is registered as 'misnamed'"):
        load_model("misnamed")
    MODELS.register("absent", "emocore.models.no_such_backend:Model")
    with pytest.raises(UnknownModel, match="model 'absent' is not available here"):
        load_model("absent")
    with pytest.raises(ValueError, match="module:attribute"):
        MODELS.register("bad", "no_colon_here")
    with pytest.raises(ValueError, match="without ':'"):
        MODELS.register("a:b", "x:y")


def test_explainers_are_picked_from_the_registry_by_the_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """explain_frame asks the registry for each method: a backend registered over "lime" is the one run,
    and its result is LIME's own, bit for bit."""
    from test_indexer import RednessModel

    from emocore.explain import ExplainParams, explain_frame

    frame = np.zeros((60, 100, 3), np.uint8)
    frame[:, :50] = (220, 30, 30)
    params = ExplainParams(methods=("lime",), lime_samples=80, n_segments=12)
    plain = explain_frame(RednessModel(), frame, None, ["red"], params)
    monkeypatch.setattr(EXPLAINERS, "_backends", dict(EXPLAINERS._backends))
    EXPLAINERS.register("lime", "test_registry:CountingLime")
    counted = explain_frame(RednessModel(), frame, None, ["red"], params)
    assert CountingLime.calls == 1
    (a,), (b,) = plain[3], counted[3]
    np.testing.assert_array_equal(a.weights, b.weights)


def test_a_registry_is_the_same_shape_for_any_kind() -> None:
    """A registry of a new kind: a table of NAME -> "module:attribute", built lazily by name."""
    demo = Registry("widget", "widgets", LookupError, {"fake": "test_registry:FakeModel",
                                                      "later": Backend("no.such.module:Thing", usage="later:ARG")})
    assert demo.names() == ["fake", "later"] and demo.usages() == ["fake", "later:ARG"]
    assert isinstance(demo.build("fake"), FakeModel)  # EmotionModel.from_name: no argument, no options
    with pytest.raises(LookupError, match="known widgets: fake, later:ARG"):
        demo.build("other")
    assert issubclass(EXPLAINERS.resolve("shap"), Explainer)
