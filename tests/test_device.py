"""Where the models run (`--device`): the CPU stays the default and equals `--device cpu` bit for bit;
CUDA on a machine without it is a one-line error naming `--device cpu`; auto falls back to the CPU.
The GPU path itself runs in benchmarks/device_check.sh on a machine with a GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli import app
from emocore.errors import DeviceUnavailable
from emocore.indexer import index_folder
from emocore.models import load_model
from emocore.models.base import EmotionModel
from emocore.models.device import BATCHES, batches_for, resolve_device
from emocore.video import open_video
from test_workers import assert_same, cache_contents

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def _compare_caches():
    spec = importlib.util.spec_from_file_location("compare_caches", ROOT / "benchmarks" / "compare_caches.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_device_names() -> None:
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    assert batches_for("cpu") == BATCHES["cpu"]
    assert batches_for(torch.device("cuda", 1)) == BATCHES["cuda"]


@no_gpu
def test_auto_is_the_cpu_and_cuda_is_a_one_line_error(weights_ready: None) -> None:
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceUnavailable) as caught:
        resolve_device("cuda")
    assert "\n" not in str(caught.value) and "--device cpu" in str(caught.value)
    with pytest.raises(DeviceUnavailable, match="--device cpu"):
        load_model("fer", device="cuda")
    with load_model("fer", device="auto") as model:
        assert model.device == torch.device("cpu")


def test_cpu_equals_the_default_bit_for_bit(face_model, megamind: Path) -> None:
    """`device="cpu"` runs exactly the default's code: same boxes, probabilities, sizes, version."""
    with open_video(megamind) as video:
        frames = [f.image for f in video.sample(2.0, 1280)][:12]
    with load_model("fer", device="cpu") as on_cpu:
        assert on_cpu.describe() == face_model.describe()  # the device is not part of the key
        assert on_cpu.batches == face_model.batches == BATCHES["cpu"]
        a, b = face_model.analyse(frames), on_cpu.analyse(frames)
    assert (a.face_counts > 0).sum() >= 6
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    np.testing.assert_array_equal(a.face_px, b.face_px)
    for x, y in zip(a.faces, b.faces):
        np.testing.assert_array_equal(x, y)


def test_the_gpu_path_reads_what_the_cpu_reads(face_model, megamind: Path) -> None:
    """The GPU path's own choices (its batch sizes: 64 frames per MTCNN call, every frame of a
    pyramid level in one P-Net call, 2,048 crops per R-/O-Net call, 512 faces per classifier call),
    run here on the CPU, give the CPU's boxes and probabilities bit for bit: what is left to differ
    on a GPU is the nets' float arithmetic alone (benchmarks/device_check.sh measures that)."""
    import dataclasses

    from emocore.models.fer import FaceEmotionModel
    from emocore.models.mtcnn import MTCNN

    class GpuCalls(MTCNN):
        _on_gpu = property(lambda self: True)  # the GPU's call sizes; the device stays the CPU

    with open_video(megamind) as video:
        frames = [f.image for f in video.sample(2.0, 1280)][:20]
    detector, classifier = face_model._loaded()
    model = FaceEmotionModel()
    model._nets = (GpuCalls(detector.pnet, detector.rnet, detector.onet, min_face_size=detector.min_face_size),
                   classifier)
    model.batches = dataclasses.replace(BATCHES["cuda"])
    a, b = face_model.analyse(frames), model.analyse(frames)
    assert (a.face_counts > 0).sum() >= 10
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    for x, y in zip(a.faces, b.faces):
        np.testing.assert_array_equal(x, y)


def test_audio_provider_choice(audio_model) -> None:
    from emocore.audio.yamnet import load_audio_model, providers_for

    assert providers_for("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert providers_for("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="unknown device"):
        providers_for("tpu", ["CPUExecutionProvider"])
    assert audio_model.provider == "CPUExecutionProvider"
    if "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers():
        with load_audio_model(device="cuda") as fallback:  # says which ran: the CPU
            assert fallback.provider == "CPUExecutionProvider"


@no_gpu
def test_cli_device(tmp_path: Path, carphone: Path, weights_ready: None) -> None:
    """`index --device cuda` here: one line naming --device cpu, exit 1, nothing written; `--device cpu`
    and `--device auto` store exactly what the default stores, under the same key."""
    bad = runner.invoke(app, ["index", str(carphone), "--cache", str(tmp_path / "bad"), "--device", "cuda",
                              "--no-explain", "--no-audio", "--workers", "1"])
    assert bad.exit_code == 1
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--device cpu" in lines[0], bad.output
    assert not (tmp_path / "bad" / "emocore.sqlite").exists()
    caches = {}
    for name, extra in (("default", []), ("cpu", ["--device", "cpu"]), ("auto", ["--device", "auto"])):
        caches[name] = tmp_path / name
        done = runner.invoke(app, ["index", str(carphone), "--cache", str(caches[name]), "--no-explain",
                                   "--no-audio", "--workers", "1", *extra])
        assert done.exit_code == 0, done.output
    compare = _compare_caches().compare
    for name in ("cpu", "auto"):
        assert compare(caches["default"] / "emocore.sqlite", caches[name] / "emocore.sqlite") == 0


def test_compare_caches_sees_a_changed_number(tmp_path: Path, carphone: Path, weights_ready: None) -> None:
    """The checker of benchmarks/device_check.sh fails on a stored number moved past its tolerance."""
    import shutil
    import sqlite3

    cache = tmp_path / "a"
    done = runner.invoke(app, ["index", str(carphone), "--cache", str(cache), "--no-explain", "--no-audio",
                               "--workers", "1"])
    assert done.exit_code == 0, done.output
    shutil.copytree(cache, tmp_path / "b")
    compare = _compare_caches().compare
    a, b = cache / "emocore.sqlite", tmp_path / "b" / "emocore.sqlite"
    assert compare(a, b) == 0
    with sqlite3.connect(b) as db:
        db.execute("UPDATE emotions SET mean = mean + 0.0005 WHERE emotion = 'happy'")
    assert compare(a, b) == 0  # within 1e-3
    with sqlite3.connect(b) as db:
        db.execute("UPDATE emotions SET mean = mean + 0.01 WHERE emotion = 'happy'")
    assert compare(a, b) == 1


def test_compare_caches_reads_explanations_but_not_their_timing(tmp_path: Path, carphone: Path,
                                                                 weights_ready: None) -> None:
    """Two runs explain the same key frames with the same numbers but not in the same seconds: the checker
    reads them as the same, and still fails on an explanation's number moved past its tolerance."""
    import shutil
    import sqlite3

    cache = tmp_path / "a"
    done = runner.invoke(app, ["index", str(carphone), "--cache", str(cache), "--no-audio", "--workers", "1"])
    assert done.exit_code == 0, done.output
    shutil.copytree(cache, tmp_path / "b")
    compare = _compare_caches().compare
    a, b = cache / "emocore.sqlite", tmp_path / "b" / "emocore.sqlite"
    with sqlite3.connect(b) as db:
        moved = db.execute("UPDATE explanations SET figures = json_set(figures, '$.seconds', "
                           "json_extract(figures, '$.seconds') + 5)").rowcount
    assert moved > 0
    assert compare(a, b) == 0
    with sqlite3.connect(b) as db:
        db.execute("UPDATE explanations SET figures = json_set(figures, '$.score', "
                   "json_extract(figures, '$.score') + 0.05)")
    assert compare(a, b) == 1


class _Calls(EmotionModel):
    """Wraps a model, recording how many frames each call hands it; same identity, so the same keys."""

    def __init__(self, inner: EmotionModel, per_call: int) -> None:
        self.inner, self.frames_per_call, self.sizes = inner, per_call, []
        self.name, self.version, self.labels = inner.name, inner.version, inner.labels

    def analyse(self, frames):  # type: ignore[no-untyped-def]
        return self.analyse_scaled(frames, [1.0] * len(frames))

    def analyse_scaled(self, frames, scales):  # type: ignore[no-untyped-def]
        self.sizes.append(len(frames))
        return self.inner.analyse_scaled(frames, scales)


def test_the_indexer_hands_frames_per_call_and_the_size_changes_no_number(face_model, megamind: Path,
                                                                         tmp_path: Path) -> None:
    assert face_model.frames_per_call == BATCHES["cpu"].detect_frames
    stored = []
    for per_call in (face_model.frames_per_call, 16, 5):
        model = _Calls(face_model, per_call)
        report = index_folder(megamind, tmp_path / f"cache{per_call}", model=model, explain=None, audio=False)
        assert report.count("indexed") == 1
        assert max(model.sizes) == per_call and all(n == per_call for n in model.sizes[:-1])
        stored.append(cache_contents(tmp_path / f"cache{per_call}"))
    for other in stored[1:]:  # the same numbers to 1e-6, whatever the call size (on the demo clips: bit for bit)
        assert_same(stored[0], other)
