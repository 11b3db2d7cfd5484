"""Turn stored explanations into images: overlays, a placed patch, a captioned figure, a PNG file.

Compute, then render: `emocore.explain` computes weights per superpixel and stores them; this
module only draws them and never changes a number. Every function takes and returns RGB uint8
arrays (H×W×3) and never modifies its inputs; nothing here shows a window or prints.

Conventions:
- A segment's weight is its contribution to the explained score. `evidence` spreads the weights
  over the pixels and divides by the largest |weight|, so the strongest segment is ±1 and the
  colours of two methods with different scales (LIME's surrogate coefficients, SHAP values) are
  comparable within each method, not between them.
- Positive evidence (raises the score) is bluish green, negative (lowers it) vermillion: two
  Okabe–Ito colours that stay distinct under the common colour-vision deficiencies. A pixel's
  tint is |evidence| × opacity, so a zero-weight segment is left exactly as it was.
- Captions are `emocore.trust.describe`'s sentences, the same words the CLI, the dashboard and
  the report print, drawn with OpenCV's Hershey fonts, which are ASCII only: "R2", "-", "+/-"
  rather than "R²", "–", "±" (`emocore.trust.ascii_text`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from emocore.files import write_bytes
from emocore.store import FrameExplanation, StoredAttribution
from emocore.trust import ascii_text, describe, method_name

#: Okabe–Ito bluish green: the segment raises the score.
POSITIVE = (0, 158, 115)
#: Okabe–Ito vermillion: the segment lowers the score.
NEGATIVE = (213, 94, 0)
SIGNS = ("both", "positive", "negative")
#: Region outlines: white, blended lightly so they never hide the evidence under them.
OUTLINE_COLOUR = (255, 255, 255)
OUTLINE_ALPHA = 0.35
#: Side of each enlarged method panel in `explanation_figure` when no width is asked for.
PANEL = 256
#: The deletion check shown in captions (the smallest hidden area the explainers store).
CAPTION_AREA = 0.1

_BACKGROUND = (255, 255, 255)
_INK = (30, 30, 30)
_MUTED = (110, 110, 110)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.42
_LINE_HEIGHT = 17
_GAP = 8


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise ValueError(f"{name} must be an H×W×3 RGB uint8 array, got {image.dtype} array of shape {image.shape}")
    return image


def _check_segments(segments: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    segments = np.asarray(segments)
    weights = np.asarray(weights, dtype=np.float64)
    if segments.ndim != 2 or not np.issubdtype(segments.dtype, np.integer):
        raise ValueError(f"segments must be an H×W integer array, got {segments.dtype} array of shape {segments.shape}")
    if weights.ndim != 1:
        raise ValueError(f"weights must be one value per segment (K,), got shape {weights.shape}")
    if segments.size and (segments.min() < 0 or segments.max() >= len(weights)):
        raise ValueError(f"segments are numbered {segments.min()}..{segments.max()} "
                         f"but there are {len(weights)} weights (segments must be 0..K-1)")
    if not np.all(np.isfinite(weights)):
        raise ValueError("weights must be finite")
    return segments, weights


def evidence(segments: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per-pixel weight divided by the largest |weight|: an H×W float map in [-1, 1].

    All-zero weights give zeros (no evidence either way), not a division by zero.
    """
    segments, weights = _check_segments(segments, weights)
    scale = float(np.abs(weights).max()) if len(weights) else 0.0
    if scale == 0.0:
        return np.zeros(segments.shape, dtype=np.float64)
    return (weights / scale)[segments]


def edges(segments: np.ndarray) -> np.ndarray:
    """H×W bool: one-pixel boundaries between segments.

    A pixel is marked when its right or lower neighbour lies in another segment. Unlike
    `skimage.segmentation.find_boundaries` (which marks both sides of a boundary between two
    non-background labels, and neither side's inner edge for label 0), this is one pixel wide
    everywhere, so enlarged panels keep thin, even lines.
    """
    segments = np.asarray(segments)
    edge = np.zeros(segments.shape, dtype=bool)
    edge[:, :-1] |= segments[:, :-1] != segments[:, 1:]
    edge[:-1, :] |= segments[:-1, :] != segments[1:, :]
    return edge


def overlay(
    image: np.ndarray,
    segments: np.ndarray,
    weights: np.ndarray,
    *,
    opacity: float = 0.5,
    sign: str = "both",
    outlines: bool = True,
) -> np.ndarray:
    """The image tinted by evidence: green where a segment raises the score, vermillion where it lowers it.

    A pixel's tint weight is |evidence| × `opacity` (0 leaves the image unchanged); `sign`
    ("both", "positive", "negative") picks which evidence is drawn. With `outlines`, segment
    boundaries are drawn thin and light over the tint. Returns a new RGB uint8 array.
    """
    image = _check_image(image, "image")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    if sign not in SIGNS:
        raise ValueError(f"unknown sign {sign!r}; use one of {', '.join(SIGNS)}")
    segments = np.asarray(segments)
    if segments.shape != image.shape[:2]:
        raise ValueError(f"segments ({segments.shape}) must have the image's height and width ({image.shape[:2]})")
    shown = evidence(segments, weights)
    if sign == "positive":
        shown = np.clip(shown, 0.0, None)
    elif sign == "negative":
        shown = np.clip(shown, None, 0.0)
    alpha = np.abs(shown) * opacity
    colour = np.where((shown >= 0)[..., None], np.array(POSITIVE, np.float64), np.array(NEGATIVE, np.float64))
    out = image.copy()
    tinted = alpha > 0  # only touch tinted pixels, so untinted ones stay bit-identical
    a = alpha[tinted][:, None]
    out[tinted] = np.round(image[tinted] * (1.0 - a) + colour[tinted] * a).astype(np.uint8)
    if outlines:
        edge = edges(segments)
        blended = out[edge] * (1.0 - OUTLINE_ALPHA) + np.array(OUTLINE_COLOUR, np.float64) * OUTLINE_ALPHA
        out[edge] = np.round(blended).astype(np.uint8)
    return out


def place(
    frame: np.ndarray,
    patch: np.ndarray,
    region: tuple[int, int, int, int],
    *,
    outline: tuple[int, int, int] | None = (255, 255, 255),
) -> np.ndarray:
    """A copy of `frame` with `patch` resized to `region` (left, top, right, bottom) and pasted there.

    The region may pass the frame's edges (a face crop is cut from a padded frame): only the part
    inside the frame is pasted, from the matching part of the resized patch. With `outline`, a
    rectangle of that colour marks the region (clipped at the frame's edges).
    """
    frame = _check_image(frame, "frame")
    patch = _check_image(patch, "patch")
    left, top, right, bottom = (int(v) for v in region)
    if right <= left or bottom <= top:
        raise ValueError(f"region {tuple(region)} must have right > left and bottom > top")
    out = frame.copy()
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
    if x1 > x0 and y1 > y0:
        w, h = right - left, bottom - top
        shrinking = w < patch.shape[1] or h < patch.shape[0]
        resized = cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        out[y0:y1, x0:x1] = resized[y0 - top:y1 - top, x0 - left:x1 - left]
    if outline is not None:
        thickness = max(1, round(min(height, width) / 360))
        # cv2 clips drawing to the image, so an off-frame edge is simply not drawn
        cv2.rectangle(out, (left, top), (right - 1, bottom - 1), tuple(int(c) for c in outline), thickness)
    return out


def caption_lines(attribution: StoredAttribution) -> list[str]:
    """The trust figures of one attribution as the figure prints them: the method and emotion, then
    `emocore.trust.describe`'s sentences (the `CAPTION_AREA` deletion check only) in ASCII."""
    lines = describe(attribution.trust, areas=(CAPTION_AREA,))
    return [f"{method_name(attribution.method)}: {attribution.emotion}"] + [ascii_text(line) for line in lines]


def _wrap(lines: Sequence[str], width: int) -> list[str]:
    """Lines broken at spaces so each fits `width` px at the caption font (a single long word stays whole)."""
    wrapped: list[str] = []
    for line in lines:
        current = ""
        for word in line.split(" "):
            trial = f"{current} {word}" if current else word
            if current and cv2.getTextSize(trial, _FONT, _FONT_SCALE, 1)[0][0] > width - 8:
                wrapped.append(current)
                current = "  " + word  # continuation lines are indented
            else:
                current = trial
        wrapped.append(current)
    return wrapped


def _text_block(lines: Sequence[str], width: int, colours: Sequence[tuple[int, int, int]] | None = None) -> np.ndarray:
    """Lines of text on the background, each shrunk if needed to fit `width`."""
    block = np.full((_LINE_HEIGHT * len(lines) + 4, width, 3), _BACKGROUND, dtype=np.uint8)
    for i, line in enumerate(lines):
        (text_w, _), _ = cv2.getTextSize(line, _FONT, _FONT_SCALE, 1)
        scale = _FONT_SCALE * min(1.0, (width - 8) / max(text_w, 1))
        colour = colours[i] if colours else _INK
        cv2.putText(block, line, (4, _LINE_HEIGHT * (i + 1) - 3), _FONT, scale, colour, 1, cv2.LINE_AA)
    return block


def _legend(width: int, words: tuple[str, str] = ("raises the score", "lowers the score")) -> np.ndarray:
    """The colour key: positive evidence, then negative, in `words`."""
    block = np.full((_LINE_HEIGHT + 6, width, 3), _BACKGROUND, dtype=np.uint8)
    x = 4
    for colour, text in zip((POSITIVE, NEGATIVE), words):
        cv2.rectangle(block, (x, 5), (x + 11, 16), colour, -1)
        cv2.putText(block, text, (x + 16, 15), _FONT, _FONT_SCALE, _MUTED, 1, cv2.LINE_AA)
        x += 16 + cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)[0][0] + 14
    return block


def _pad_width(image: np.ndarray, width: int) -> np.ndarray:
    if image.shape[1] >= width:
        return image
    pad = np.full((image.shape[0], width - image.shape[1], 3), _BACKGROUND, dtype=np.uint8)
    return np.concatenate([image, pad], axis=1)


def _stack(rows: Sequence[np.ndarray], gap: int) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    spacer = np.full((gap, width, 3), _BACKGROUND, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for row in rows:
        parts += [_pad_width(row, width), spacer]
    return np.concatenate(parts[:-1], axis=0)


def _panel(explanation: FrameExplanation, attribution: StoredAttribution, side: int, opacity: float,
           sign: str) -> np.ndarray:
    """The explained region enlarged to `side` px wide, tinted, with its caption underneath."""
    image = np.asarray(explanation.image)
    h, w = image.shape[:2]
    size = (side, max(1, round(side * h / w)))
    # tint at the enlarged size (segments by nearest neighbour) so outlines stay one pixel thin
    big = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    big_segments = cv2.resize(np.asarray(explanation.segments, dtype=np.int32), size, interpolation=cv2.INTER_NEAREST)
    tinted = overlay(big, big_segments, attribution.weights, opacity=opacity, sign=sign)
    return _stack([tinted, _text_block(_wrap(caption_lines(attribution), side), side)], 2)


def explanation_figure(
    explanation: FrameExplanation,
    emotion: str,
    *,
    frame: np.ndarray | None = None,
    methods: Sequence[str] = ("lime", "shap"),
    opacity: float = 0.5,
    sign: str = "both",
    width: int | None = None,
) -> np.ndarray:
    """One RGB image of a frame's explanations of `emotion`, for reports and the CLI.

    Side by side, for each of `methods` the explanation holds: the explained region enlarged and
    tinted by its evidence, captioned with the method, emotion and trust figures (`caption_lines`:
    score, the deletion check of the top-weighted 10% of the area against random regions, LIME's
    fit R² beside its null, LIME–SHAP agreement beside stability, samples). With `frame` (the full key
    frame), the frame with the first method's overlay placed at the explained region is drawn
    above. `width` is the figure's width in pixels (default: 256 px per method panel).
    Raises ValueError when the explanation holds none of `methods` for `emotion`.
    """
    found = [a for m in methods if (a := explanation.attribution(emotion, m)) is not None]
    if not found:
        held = sorted({f"{a.method} {a.emotion}" for a in explanation.attributions}) or ["nothing"]
        raise ValueError(f"no {' or '.join(methods) or 'method'} explanation of {emotion!r} in this frame "
                         f"(it holds: {', '.join(held)})")
    if width is not None and width < 64 * len(found):
        raise ValueError(f"width must be at least {64 * len(found)} px for {len(found)} panels, got {width}")
    total = width if width is not None else PANEL * len(found) + _GAP * (len(found) - 1)
    side = (total - _GAP * (len(found) - 1)) // len(found)
    panels = [_panel(explanation, a, side, opacity, sign) for a in found]
    height = max(p.shape[0] for p in panels)
    spacer = np.full((height, _GAP, 3), _BACKGROUND, dtype=np.uint8)
    row: list[np.ndarray] = []
    for p in panels:
        tall = np.full((height, p.shape[1], 3), _BACKGROUND, dtype=np.uint8)
        tall[: p.shape[0]] = p
        row += [tall, spacer]
    rows = [np.concatenate(row[:-1], axis=1)]
    if frame is not None:
        frame = _check_image(frame, "frame")
        first = found[0]
        patch = overlay(np.asarray(explanation.image), np.asarray(explanation.segments), first.weights,
                        opacity=opacity, sign=sign, outlines=False)
        placed = place(frame, patch, explanation.region)
        fh, fw = placed.shape[:2]
        size = (total, max(1, round(total * fh / fw)))
        scaled = cv2.resize(placed, size, interpolation=cv2.INTER_AREA if fw > total else cv2.INTER_LINEAR)
        title = f"{explanation.time_s:.1f} s (frame {explanation.frame_idx}): {first.method.upper()} for {emotion}"
        rows = [_text_block([title], total), scaled] + rows
    rows.append(_legend(total))
    figure = _stack(rows, _GAP)
    border = _GAP // 2
    return cv2.copyMakeBorder(figure, border, border, border, border, cv2.BORDER_CONSTANT, value=_BACKGROUND)


def save_png(path: Path | str, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG (colours converted to OpenCV's BGR), creating the folder.

    Encoded in memory and written atomically with Python's file API, so the file is PNG whatever the
    suffix and non-ASCII paths work (cv2.imwrite fails silently on some).
    """
    image = _check_image(image, "image")
    path = Path(path)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode a PNG for {path}")
    return write_bytes(path, data.tobytes())  # atomic: a reader never sees half a PNG
