"""Draw an explained soundtrack moment: the evidence map over the log-mel spectrogram, the waveform above.

Compute, then render: `emocore.audio.explain` computes the weights; this module only draws them
(RGB uint8 arrays, inputs untouched, nothing shown or printed). The conventions are the faces'
(`emocore.render`): bluish green where a region raises the lane value, vermillion where it lowers it,
each method's weights divided by its largest |weight|; captions are `emocore.trust.describe`'s
sentences in ASCII, after a line saying when scores are log-odds. The spectrogram is drawn in grey
(time left to right, low mel bands at the bottom), so the tint stays readable; the waveform strip
above spans the same time axis.

A figure draws the spectrogram at 256 grey levels and the waveform from its min/max envelope
(`emocore.audio.explain.spectrogram_levels`, `waveform_envelope`): exactly what the cache keeps of
an explained second, so a stored explanation (`emocore.store.StoredAudioExplanation`) draws the
same bytes as the fresh one it was stored from.

    figure = audio_explanation_figure(found, "laughter")      # both methods, one above the other
    figure = audio_explanation_figure(store.audio_explanation(key, 3), "laughter")   # the same, stored
    save_png("laugh.png", figure)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from emocore.audio.explain import (
    AudioExplanation, probability, region_grid, spectrogram_levels, waveform_envelope,
)
from emocore.render import (  # one look for every explanation figure: the face overlays' page and type
    _BACKGROUND,
    _legend,
    _text_block,
    _wrap,
    CAPTION_AREA,
    overlay,
    save_png,
)
from emocore.store import StoredAudioExplanation
from emocore.trust import TrustFigures, ascii_text, describe, method_name

#: Width of the figure in pixels when none is asked for.
WIDTH = 640
#: Height of the spectrogram panel and of the waveform strip, in pixels.
SPECTROGRAM_HEIGHT = 192
WAVEFORM_HEIGHT = 64
_WAVE = (60, 60, 60)


def levels_image(levels: np.ndarray, width: int, height: int = SPECTROGRAM_HEIGHT) -> np.ndarray:
    """[height, width, 3] grey picture of [frames, 64] grey levels: time → x, low bands at the bottom."""
    picture = np.ascontiguousarray(np.asarray(levels, np.uint8).T[::-1])  # [64, frames], high bands on top
    picture = cv2.resize(picture, (width, height), interpolation=cv2.INTER_NEAREST)
    return np.repeat(picture[..., None], 3, axis=2)


def spectrogram_image(spectrogram: np.ndarray, width: int, height: int = SPECTROGRAM_HEIGHT) -> np.ndarray:
    """[height, width, 3] grey picture of a [frames, 64] log-mel: time → x, low bands at the bottom.

    Grey levels span the log offset's floor (ln 0.001, silence) to the spectrogram's own maximum.
    """
    return levels_image(spectrogram_levels(spectrogram)[0], width, height)


def segments_image(segments: np.ndarray, width: int, height: int = SPECTROGRAM_HEIGHT) -> np.ndarray:
    """The region map laid out like `spectrogram_image`."""
    shown = np.ascontiguousarray(np.asarray(segments, np.int32).T[::-1])
    return cv2.resize(shown, (width, height), interpolation=cv2.INTER_NEAREST)


def envelope_image(envelope: np.ndarray, width: int, height: int = WAVEFORM_HEIGHT) -> np.ndarray:
    """[height, width, 3]: a waveform's [columns, 2] min–max envelope (`waveform_envelope`) drawn one
    vertical line per pixel column, full scale = the strip's height."""
    out = np.full((height, width, 3), _BACKGROUND, np.uint8)
    middle = height // 2
    cv2.line(out, (0, middle), (width - 1, middle), (200, 200, 200), 1)
    pairs = np.asarray(envelope, np.float64).reshape(-1, 2)
    if pairs.size == 0:
        return out
    starts = (np.arange(width, dtype=np.int64) * pairs.shape[0]) // width
    lows = np.minimum.reduceat(pairs[:, 0], starts)
    highs = np.maximum.reduceat(pairs[:, 1], starts)
    for x in range(width):
        top = int(round(middle - np.clip(highs[x], -1, 1) * (middle - 1)))
        bottom = int(round(middle - np.clip(lows[x], -1, 1) * (middle - 1)))
        cv2.line(out, (x, top), (x, bottom), _WAVE, 1)
    return out


def waveform_image(waveform: np.ndarray, width: int, height: int = WAVEFORM_HEIGHT) -> np.ndarray:
    """[height, width, 3]: the waveform's min–max envelope per pixel column, full scale = the strip's height."""
    return envelope_image(waveform_envelope(waveform), width, height)


@dataclass(frozen=True)
class _Drawn:
    """What a figure draws of an explained second, fresh or stored alike."""

    second: int
    start_s: float
    end_s: float
    band_hz: np.ndarray
    levels: np.ndarray
    segments: np.ndarray
    envelope: np.ndarray
    space: str
    weights: dict[tuple[str, str], tuple[np.ndarray, TrustFigures]]
    held: tuple[str, ...]


def _drawn(explanation: AudioExplanation | StoredAudioExplanation) -> _Drawn:
    if isinstance(explanation, StoredAudioExplanation):
        e = explanation
        grid = region_grid(e.levels.shape[0], e.time_slices, e.mel_bands, e.start_s)
        if not (np.array_equal(grid.frame_edges, e.frame_edges) and np.array_equal(grid.band_edges, e.band_edges)):
            raise ValueError(f"the stored grid of second {e.second} is not a {e.time_slices} × {e.mel_bands} grid")
        return _Drawn(e.second, e.start_s, e.end_s, e.band_hz, e.levels, grid.segments, e.envelope, e.space,
                      {(a.emotion, a.method): (a.weights, a.trust) for a in e.attributions},
                      tuple(f"{a.method} {a.emotion}" for a in e.attributions))
    e = explanation
    return _Drawn(e.second, e.start_s, e.end_s, e.grid.band_hz, spectrogram_levels(e.spectrogram)[0], e.grid.segments,
                  waveform_envelope(e.waveform), e.params.space,
                  {(a.lane, a.method): (a.weights, a.figures) for a in e.attributions},
                  tuple(f"{a.method} {a.lane}" for a in e.attributions))


def audio_explanation_figure(explanation: AudioExplanation | StoredAudioExplanation, lane: str, *,
                             methods: Sequence[str] = ("lime", "shap"), width: int = WIDTH,
                             opacity: float = 0.55) -> np.ndarray:
    """One RGB image: a title, the waveform, then per method the tinted spectrogram and its trust figures.

    `explanation`: fresh (`AudioExplanation`) or stored (`StoredAudioExplanation`): the same bytes.
    Raises ValueError when the explanation holds none of `methods` for `lane`.
    """
    drawn = _drawn(explanation)
    found = [(m, drawn.weights[(lane, m)]) for m in methods if (lane, m) in drawn.weights]
    if not found:
        held = sorted(drawn.held) or ["nothing"]
        raise ValueError(f"no {' or '.join(methods) or 'method'} explanation of {lane!r} here "
                         f"(it holds: {', '.join(held)})")
    if width < 160:
        raise ValueError(f"width must be at least 160 px, got {width}")
    grey = levels_image(drawn.levels, width)
    regions = segments_image(drawn.segments, width)
    hz = drawn.band_hz
    title = (f"{lane} at {drawn.second}-{drawn.second + 1} s: window "
             f"{drawn.start_s:.2f}-{drawn.end_s:.2f} s, mel bands {hz[0, 0]:.0f}-{hz[-1, 1]:.0f} Hz "
             f"(low at the bottom)")
    rows = [_text_block(_wrap([title], width), width), envelope_image(drawn.envelope, width)]
    for method, (weights, figures) in found:
        rows.append(overlay(grey, regions, np.asarray(weights, np.float64).reshape(-1), opacity=opacity))
        lines = [f"{method_name(method)}: {lane}"]
        if drawn.space == "log-odds":
            lines.append(f"scores are log-odds ln(p/(1-p)), 0 = even odds: {figures.score:.2f} is a probability "
                         f"of {probability(figures.score):.2f}")
        lines += [ascii_text(line) for line in describe(figures, (CAPTION_AREA,))]
        rows.append(_text_block(_wrap(lines, width), width))
    rows.append(_legend(width, ("raises the lane value", "lowers it")))
    spacer = np.full((6, width, 3), _BACKGROUND, np.uint8)
    parts: list[np.ndarray] = []
    for row in rows:
        parts += [row, spacer]
    figure = np.concatenate(parts[:-1], axis=0)
    return cv2.copyMakeBorder(figure, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=_BACKGROUND)


__all__ = ["audio_explanation_figure", "envelope_image", "levels_image", "save_png", "segments_image",
           "spectrogram_image", "waveform_image"]
