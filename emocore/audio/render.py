"""Draw an explained soundtrack moment: the evidence map over the log-mel spectrogram, the waveform above.

Compute, then render: `emocore.audio.explain` computes the weights; this module only draws them
(RGB uint8 arrays, inputs untouched, nothing shown or printed). The conventions are the faces'
(`emocore.render`): bluish green where a region raises the lane value, vermillion where it lowers it,
each method's weights divided by its largest |weight|; captions are `emocore.trust.describe`'s
sentences in ASCII, after a line saying when scores are log-odds. The spectrogram is drawn in grey
(time left to right, low mel bands at the bottom), so the tint stays readable; the waveform strip
above spans the same time axis.

    figure = audio_explanation_figure(found, "laughter")      # both methods, one above the other
    save_png("laugh.png", figure)
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from emocore.audio.explain import AudioExplanation, probability
from emocore.render import (  # one look for every explanation figure: the face overlays' page and type
    _BACKGROUND,
    _legend,
    _text_block,
    _wrap,
    CAPTION_AREA,
    overlay,
    save_png,
)
from emocore.trust import ascii_text, describe, method_name

#: Width of the figure in pixels when none is asked for.
WIDTH = 640
#: Height of the spectrogram panel and of the waveform strip, in pixels.
SPECTROGRAM_HEIGHT = 192
WAVEFORM_HEIGHT = 64
_WAVE = (60, 60, 60)


def spectrogram_image(spectrogram: np.ndarray, width: int, height: int = SPECTROGRAM_HEIGHT) -> np.ndarray:
    """[height, width, 3] grey picture of a [frames, 64] log-mel: time → x, low bands at the bottom.

    Grey levels span the log offset's floor (ln 0.001, silence) to the spectrogram's own maximum.
    """
    spec = np.asarray(spectrogram, np.float64)
    low, high = np.log(0.001), max(float(spec.max()), np.log(0.001) + 1e-6)
    grey = np.clip((spec - low) / (high - low), 0.0, 1.0)
    picture = np.round(255 * grey.T[::-1]).astype(np.uint8)  # [64, frames], high bands on top
    picture = cv2.resize(picture, (width, height), interpolation=cv2.INTER_NEAREST)
    return np.repeat(picture[..., None], 3, axis=2)


def segments_image(segments: np.ndarray, width: int, height: int = SPECTROGRAM_HEIGHT) -> np.ndarray:
    """The region map laid out like `spectrogram_image`."""
    shown = np.ascontiguousarray(np.asarray(segments, np.int32).T[::-1])
    return cv2.resize(shown, (width, height), interpolation=cv2.INTER_NEAREST)


def waveform_image(waveform: np.ndarray, width: int, height: int = WAVEFORM_HEIGHT) -> np.ndarray:
    """[height, width, 3]: the waveform's min–max envelope per pixel column, full scale = the strip's height."""
    out = np.full((height, width, 3), _BACKGROUND, np.uint8)
    samples = np.asarray(waveform, np.float64)
    middle = height // 2
    cv2.line(out, (0, middle), (width - 1, middle), (200, 200, 200), 1)
    if samples.size == 0:
        return out
    columns = np.array_split(samples, width) if samples.size >= width else [samples[[i * samples.size // width]]
                                                                             for i in range(width)]
    for x, chunk in enumerate(columns):
        if chunk.size:
            top = int(round(middle - np.clip(chunk.max(), -1, 1) * (middle - 1)))
            bottom = int(round(middle - np.clip(chunk.min(), -1, 1) * (middle - 1)))
            cv2.line(out, (x, top), (x, bottom), _WAVE, 1)
    return out


def audio_explanation_figure(explanation: AudioExplanation, lane: str, *, methods: Sequence[str] = ("lime", "shap"),
                             width: int = WIDTH, opacity: float = 0.55) -> np.ndarray:
    """One RGB image: a title, the waveform, then per method the tinted spectrogram and its trust figures.

    Raises ValueError when the explanation holds none of `methods` for `lane`.
    """
    found = [a for m in methods if (a := explanation.attribution(lane, m)) is not None]
    if not found:
        held = sorted({f"{a.method} {a.lane}" for a in explanation.attributions}) or ["nothing"]
        raise ValueError(f"no {' or '.join(methods) or 'method'} explanation of {lane!r} here "
                         f"(it holds: {', '.join(held)})")
    if width < 160:
        raise ValueError(f"width must be at least 160 px, got {width}")
    grey = spectrogram_image(explanation.spectrogram, width)
    regions = segments_image(explanation.grid.segments, width)
    hz = explanation.grid.band_hz
    title = (f"{lane} at {explanation.second}-{explanation.second + 1} s: window "
             f"{explanation.start_s:.2f}-{explanation.end_s:.2f} s, mel bands {hz[0, 0]:.0f}-{hz[-1, 1]:.0f} Hz "
             f"(low at the bottom)")
    rows = [_text_block(_wrap([title], width), width), waveform_image(explanation.waveform, width)]
    for a in found:
        weights = np.asarray(a.weights, np.float64).reshape(-1)
        rows.append(overlay(grey, regions, weights, opacity=opacity))
        lines = [f"{method_name(a.method)}: {lane}"]
        if explanation.params.space == "log-odds":
            lines.append(f"scores are log-odds ln(p/(1-p)), 0 = even odds: {a.figures.score:.2f} is a probability "
                         f"of {probability(a.figures.score):.2f}")
        lines += [ascii_text(line) for line in describe(a.figures, (CAPTION_AREA,))]
        rows.append(_text_block(_wrap(lines, width), width))
    rows.append(_legend(width, ("raises the lane value", "lowers it")))
    spacer = np.full((6, width, 3), _BACKGROUND, np.uint8)
    parts: list[np.ndarray] = []
    for row in rows:
        parts += [row, spacer]
    figure = np.concatenate(parts[:-1], axis=0)
    return cv2.copyMakeBorder(figure, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=_BACKGROUND)


__all__ = ["audio_explanation_figure", "save_png", "segments_image", "spectrogram_image", "waveform_image"]
