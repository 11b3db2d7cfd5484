"""Explain a soundtrack moment: LIME and SHAP over time–frequency regions of its log-mel spectrogram.

    with load_audio_model() as model:
        found = explain_audio_moment(track, model, at_s=4.2, lanes=("laughter",))
    found.attribution("laughter", "lime").weights     # [time slices, mel bands]: evidence per region
    found.attribution("laughter", "lime").figures     # emocore.trust.TrustFigures, as for faces

What is explained is exactly the lane value of the second holding `at_s` (see `emocore.audio.lanes`),
on the log-odds scale by default: ln(p / (1 − p)), 0 = even odds (for a lane of classes, that is its
largest logit). Scores in the trust figures (the explained score, the indexed one beside it, the
deletion drops) are then log-odds too; `probability()` turns a score back. Log-odds, not
probabilities, because YAMNet's sigmoid saturates: over eight real-laugh moments (two clips, two
moments, two seeds; 6 × 4 regions, 100 samples), hiding the top 10% of the regions sat on average at
the 71st (LIME) / 82nd (SHAP) percentile of random regions of the same area on the probability
scale, at the 91st / 87th on the log-odds scale, and LIME–SHAP agreement rose from 0.07 to 0.41
(filling hidden regions with silence, or with each band's mean, did worse). The value is
the largest lane probability among the YAMNet patches centred in that second, two or three 0.96 s
patches 0.48 s apart. The explained region is the log-mel spectrogram those patches read (frames
48·i … 48·j + 96 of the track's log-mel, 1.44 s for two patches, 1.92 s for three), cut into a grid
of `time_slices` equal time slices × `mel_bands` equal groups of mel bands (equal on the mel scale,
low to high); region `r = slice × mel_bands + band`. A perturbed spectrogram is cut back into the
same patches and scored by the model, so the score of the untouched region is the indexed lane value.

The spectrogram is handed to the shared attribution machinery (`emocore.attribution`) as a
one-channel uint8 image holding the model's own 8-bit input codes (the graph quantises its input
anyway, so this is exact, not an approximation). A hidden region is filled with the window's mean
log-mel (its mean input code), as a hidden face region is painted the crop's mean colour: the sound
there is replaced by a flat, average-level spectrum, not by silence (a block of silence is itself a
strong sound class to YAMNet). Cues are explained the same way; their loudness term is the second's
measured level, held fixed (editing the spectrogram does not change the waveform's RMS).

Trust figures are the faces' (`TrustFigures`): the deletion check against random regions of the
same area (the same random draws for both methods), LIME–SHAP agreement beside each method's
seed-to-seed stability, LIME's fit R² beside its null and held-out R², samples, seed. Everything is
seeded: the same track, moment, lanes and parameters give identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from emocore.audio.decode import AudioTrack, NoAudio
from emocore.audio.frontend import (
    HOP_SAMPLES, LOG_OFFSET, MEL_BANDS, MEL_MAX_HZ, MEL_MIN_HZ, PATCH_FRAMES, PATCH_HOP_FRAMES, SAMPLE_RATE, STFT_HOP_SECONDS,
    WINDOW_SAMPLES, LogMelPatches, log_mel_patches,
)
from emocore.audio.lanes import (
    CUE_NAMES, LANE_NAMES, AudioLanes, cue_values, loudness_per_second, patch_lanes, pool_patches, second_patches,
)
from emocore.audio.yamnet import AudioModel
from emocore.errors import AudioError, TooFewSamples
from emocore.trust import LIME_MIN_PER_SEGMENT, TrustFigures

METHODS = ("lime", "shap")
#: The scales an explanation can attribute a lane on (see the module docstring).
SPACES = ("log-odds", "probability")
#: Probabilities are clipped to [EPS, 1 − EPS] before their log-odds are taken.
EPS = 1e-6
#: What the prediction function returns, column by column: every lane, then every cue.
OUTPUT_NAMES: tuple[str, ...] = (*LANE_NAMES, *CUE_NAMES)
#: Spans of the window whose waveform min and max a figure draws (and the cache keeps: the samples are not).
ENVELOPE_COLUMNS = 1024
#: The log-mel of silence (the front end's log offset, ln 0.001): grey level 0 of a drawn spectrogram.
SILENCE_LOG_MEL = math.log(LOG_OFFSET)


@dataclass(frozen=True)
class AudioExplainParams:
    """How an audio moment is explained. The defaults: 6 time slices × 4 mel-band groups = 24 regions
    (about 0.24 s × 16 mel bands each over two patches), 200 samples per method."""

    methods: tuple[str, ...] = METHODS
    time_slices: int = 6
    mel_bands: int = 4
    lime_samples: int = 200
    shap_samples: int = 200
    seed: int = 0
    batch: int = 64
    draws: int = 32
    """Random region sets per hidden area in the deletion check."""
    space: str = "log-odds"
    """What is attributed: the lane value's "log-odds" (ln p / (1 − p)) or its "probability"."""

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"unknown explanation method {bad[0] if bad else ''!r}; use lime, shap or both")
        if not 2 <= self.time_slices <= PATCH_FRAMES:
            raise ValueError(f"time_slices must be between 2 and {PATCH_FRAMES}, got {self.time_slices}")
        if not 1 <= self.mel_bands <= MEL_BANDS:
            raise ValueError(f"mel_bands must be between 1 and {MEL_BANDS}, got {self.mel_bands}")
        if self.space not in SPACES:
            raise ValueError(f"unknown space {self.space!r}; use {' or '.join(SPACES)}")
        if self.draws < 2:
            raise ValueError(f"the deletion check needs at least 2 random draws, got {self.draws}")
        k = self.regions
        if "lime" in self.methods and self.lime_samples < LIME_MIN_PER_SEGMENT * k:
            raise TooFewSamples(f"LIME over {k} regions needs at least {LIME_MIN_PER_SEGMENT * k} samples "
                                f"({LIME_MIN_PER_SEGMENT} per region), got {self.lime_samples}")
        if "shap" in self.methods and self.shap_samples < 2 * k + 2:
            raise TooFewSamples(f"Kernel SHAP over {k} regions needs at least {2 * k + 2} samples "
                                f"(2 per region + 2), got {self.shap_samples}")

    @property
    def regions(self) -> int:
        return self.time_slices * self.mel_bands


@dataclass(frozen=True)
class RegionGrid:
    """The explained regions: `time_slices` × `mel_bands` rectangles of the window's spectrogram."""

    time_slices: int
    mel_bands: int
    frame_edges: np.ndarray
    """[time_slices + 1] frame indices in the window where each slice starts (the last: the window's end)."""
    band_edges: np.ndarray
    """[mel_bands + 1] mel-band indices (0…64) where each group starts (the last: 64)."""
    time_edges_s: np.ndarray
    """[time_slices + 1] the slices' edges on the file's timeline, seconds (10 ms frame hops)."""
    band_hz: np.ndarray
    """[mel_bands, 2] centre frequencies (Hz) of the lowest and highest mel band in each group."""
    segments: np.ndarray
    """[frames, 64] int32 region of each spectrogram cell: slice × mel_bands + band."""

    @property
    def shape(self) -> tuple[int, int]:
        return (self.time_slices, self.mel_bands)


@dataclass(frozen=True)
class AudioAttribution:
    """One method's explanation of one lane or cue: a weight per region, and how far to trust it."""

    lane: str
    method: str
    weights: np.ndarray
    """[time_slices, mel_bands] float: positive = the region raises the lane value."""
    figures: TrustFigures


@dataclass(frozen=True)
class AudioExplanation:
    """An explained soundtrack second: the regions, the spectrogram, the waveform, and the attributions."""

    second: int
    """The explained second [second, second + 1) of the file's timeline."""
    patches: tuple[int, ...]
    """The YAMNet patches whose largest value is the second's lane value."""
    start_s: float
    """Where the window (the first patch) starts on the file's timeline."""
    grid: RegionGrid
    spectrogram: np.ndarray
    """[frames, 64] float32 log-mel of the window (10 ms frames; mel bands low to high)."""
    waveform: np.ndarray
    """[n] float32 16 kHz mono samples the window reads."""
    waveform_start_s: float
    sample_rate: int
    loudness_dbfs: float
    """The second's RMS level (held fixed in cues)."""
    attributions: tuple[AudioAttribution, ...]
    params: AudioExplainParams

    @property
    def end_s(self) -> float:
        return self.start_s + self.spectrogram.shape[0] * STFT_HOP_SECONDS

    def attribution(self, lane: str, method: str) -> AudioAttribution | None:
        return next((a for a in self.attributions if a.lane == lane and a.method == method), None)

    def score(self, lane: str) -> float:
        """The explained score of `lane` on the untouched spectrogram: the indexed lane value, as
        log-odds (`params.space`, the default) or as a probability."""
        found = next((a for a in self.attributions if a.lane == lane), None)
        if found is None:
            raise ValueError(f"{lane!r} was not explained here; explained: "
                             f"{', '.join(sorted({a.lane for a in self.attributions}))}")
        return found.figures.score


def log_odds(p: np.ndarray) -> np.ndarray:
    """ln(p / (1 − p)) of probabilities clipped to [EPS, 1 − EPS] (0 = even odds)."""
    p = np.clip(np.asarray(p, np.float64), EPS, 1.0 - EPS)
    return np.log(p / (1.0 - p))


def probability(log_odds_value: float) -> float:
    """The probability of a log-odds score (the inverse of `log_odds`)."""
    return float(1.0 / (1.0 + math.exp(-log_odds_value)))


def _mel_centres_hz() -> np.ndarray:
    def mel(hz: float) -> float:
        return 1127.0 * math.log(1.0 + hz / 700.0)

    edges = np.linspace(mel(MEL_MIN_HZ), mel(MEL_MAX_HZ), MEL_BANDS + 2)
    return 700.0 * (np.exp(edges[1:-1] / 1127.0) - 1.0)


def region_grid(frames: int, time_slices: int, mel_bands: int, start_s: float) -> RegionGrid:
    """The grid over a [frames, 64] spectrogram starting at `start_s` on the file's timeline."""
    frame_edges = np.round(np.linspace(0, frames, time_slices + 1)).astype(int)
    band_edges = np.round(np.linspace(0, MEL_BANDS, mel_bands + 1)).astype(int)
    slice_of = np.searchsorted(frame_edges, np.arange(frames), side="right") - 1
    band_of = np.searchsorted(band_edges, np.arange(MEL_BANDS), side="right") - 1
    segments = (slice_of[:, None] * mel_bands + band_of[None, :]).astype(np.int32)
    centres = _mel_centres_hz()
    band_hz = np.array([[centres[a], centres[b - 1]] for a, b in zip(band_edges[:-1], band_edges[1:])])
    return RegionGrid(time_slices, mel_bands, frame_edges, band_edges,
                      start_s + frame_edges * STFT_HOP_SECONDS, band_hz, segments)


def spectrogram_levels(spectrogram: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """A [frames, 64] log-mel as 256 grey levels (uint8, same shape), with the log-mel values of levels 0
    and 255: silence (`SILENCE_LOG_MEL`) and the window's own maximum. What figures draw and the cache
    keeps (a level spans (maximum − silence) / 255 of log-mel, under 0.05 for a full-scale window)."""
    spec = np.asarray(spectrogram, np.float64)
    low = SILENCE_LOG_MEL
    high = max(float(spec.max()) if spec.size else low, low + 1e-6)
    levels = np.round(255 * np.clip((spec - low) / (high - low), 0.0, 1.0)).astype(np.uint8)
    return levels, (low, high)


def waveform_envelope(waveform: np.ndarray, columns: int = ENVELOPE_COLUMNS) -> np.ndarray:
    """[columns, 2] float16: the min and max of the samples in each of `columns` equal spans of the
    waveform (column i starts at sample ⌊i·n / columns⌋; a span shorter than a sample holds the sample
    at its start). A downsampled waveform, enough to draw it; zeros when there are no samples."""
    samples = np.asarray(waveform, np.float32).reshape(-1)
    if samples.size == 0:
        return np.zeros((columns, 2), np.float16)
    starts = (np.arange(columns, dtype=np.int64) * samples.size) // columns
    return np.stack([np.minimum.reduceat(samples, starts), np.maximum.reduceat(samples, starts)],
                    axis=1).astype(np.float16)


def _check_names(lanes: Sequence[str]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(lanes))
    bad = [n for n in names if n not in OUTPUT_NAMES]
    if bad or not names:
        raise ValueError(f"cannot explain {bad[0] if bad else 'nothing'!r}; explainable: {', '.join(OUTPUT_NAMES)}")
    return names


def explain_audio_moment(
    track: AudioTrack | NoAudio,
    model: AudioModel,
    at_s: float,
    lanes: Sequence[str] = ("laughter",),
    params: AudioExplainParams | None = None,
    indexed: AudioLanes | None = None,
    spec: LogMelPatches | None = None,
) -> AudioExplanation:
    """Explain the lanes (or cues) of the second holding `at_s` (file time, seconds) with LIME and SHAP.

    `indexed`: the ad's indexed lanes, whose value of that second is recorded beside the explained
    score (`TrustFigures.frame_score`). `spec`: the track's log-mel patches when already computed.
    Raises AudioError when the file has no audio track or no sound at `at_s`; ValueError for an
    unknown lane.
    """
    # lime, shap, sklearn and scipy cost a second to import: only explaining pays it
    from emocore.attribution import agreement, deletion_checks, explain_lime, explain_shap

    params = params or AudioExplainParams()
    names = _check_names(lanes)
    if isinstance(track, NoAudio):
        raise AudioError(f"nothing to explain: {track.reason}")
    spec = spec if spec is not None else log_mel_patches(track.samples)
    end = track.start_s + track.duration_s
    second = math.floor(at_s)
    starts = track.start_s + spec.start_s
    found = second_patches(starts, second + 1)[second] if second >= 0 else np.zeros(0, int)
    found = found[starts[found] < end] if found.size else found
    if not found.size:
        raise AudioError(f"no sound at {at_s:g} s (the soundtrack covers {track.start_s:.2f}–{end:.2f} s)")
    first, last = int(found.min()), int(found.max())
    f0, f1 = first * PATCH_HOP_FRAMES, last * PATCH_HOP_FRAMES + PATCH_FRAMES
    spectrogram = np.ascontiguousarray(spec.log_mel[f0:f1], dtype=np.float32)
    quant = model.quantisation
    codes = quant.quantise(spectrogram)[..., None]  # [frames, 64, 1]: the model's input, as an image
    offsets = [(int(i) - first) * PATCH_HOP_FRAMES for i in found]
    loudness = float(loudness_per_second(track.samples, track.start_s, second + 1, track.sample_rate)[second])
    scale, zero = np.float32(quant.input_scale), np.float32(quant.input_zero_point)

    def predict(images: np.ndarray) -> np.ndarray:
        x = (images[..., 0].astype(np.float32) - zero) * scale  # back to log-mel; re-quantised identically
        cut = np.stack([x[:, o:o + PATCH_FRAMES] for o in offsets], axis=1)  # [N, P, 96, 64]
        logits = model.score_patches(cut.reshape(-1, PATCH_FRAMES, MEL_BANDS)).logits
        values = pool_patches(patch_lanes(logits, model.class_names).reshape(len(images), len(offsets), -1), axis=1)
        out = np.concatenate([values, cue_values(values, np.full(len(images), loudness))], axis=1)
        return log_odds(out) if params.space == "log-odds" else out

    grid = region_grid(spectrogram.shape[0], params.time_slices, params.mel_bands, track.start_s + spec.start_s[first])
    labels = [OUTPUT_NAMES.index(n) for n in names]
    found_maps = []
    if "lime" in params.methods:
        found_maps += explain_lime(codes, grid.segments, predict, labels, params.lime_samples, params.seed,
                                   params.batch)
    if "shap" in params.methods:
        found_maps += explain_shap(codes, grid.segments, predict, labels, params.shap_samples, params.seed,
                                   params.batch)
    deletions = {}
    for label in labels:  # the random draws are shared by the methods of one lane
        maps = {a.method: a.weights for a in found_maps if a.label == label}
        checks = deletion_checks(codes, grid.segments, predict, label, maps, params.seed, params.batch,
                                 params.draws)
        deletions.update({(method, label): c for method, c in checks.items()})
    attributions = []
    for a in found_maps:
        other = next((b for b in found_maps if b.label == a.label and b.method != a.method), None)
        name = OUTPUT_NAMES[a.label]
        frame_score = None
        if indexed is not None and second < indexed.seconds:
            value = float(indexed.column(name)[second])
            if not math.isnan(value):
                frame_score = float(log_odds(np.array(value))) if params.space == "log-odds" else value
        figures = TrustFigures(
            method=a.method, score=a.score, frame_score=frame_score, base=a.base, samples=a.samples, seed=a.seed,
            seconds=round(a.seconds, 4), segments=params.regions, deletion=deletions[(a.method, a.label)],
            stability=a.stability, stability_half=a.stability_half,
            agreement=None if other is None else agreement(a.weights, other.weights),
            other_stability=None if other is None else other.stability,
            fit_r2=a.fit_r2, fit_r2_null=a.fit_r2_null, fit_r2_heldout=a.fit_r2_heldout,
        )
        attributions.append(AudioAttribution(name, a.method, a.weights.reshape(grid.shape), figures))
    a0 = f0 * HOP_SAMPLES
    a1 = min(track.samples.size, (f1 - 1) * HOP_SAMPLES + WINDOW_SAMPLES)
    return AudioExplanation(
        second=second, patches=tuple(int(i) for i in found), start_s=float(grid.time_edges_s[0]), grid=grid,
        spectrogram=spectrogram, waveform=np.array(track.samples[a0:max(a0, a1)], np.float32),
        waveform_start_s=track.start_s + a0 / SAMPLE_RATE, sample_rate=SAMPLE_RATE, loudness_dbfs=loudness,
        attributions=tuple(attributions), params=params,
    )


__all__ = ["ENVELOPE_COLUMNS", "EPS", "METHODS", "SILENCE_LOG_MEL", "spectrogram_levels", "waveform_envelope", "OUTPUT_NAMES", "SPACES", "AudioAttribution", "AudioExplainParams", "AudioExplanation",
           "RegionGrid", "explain_audio_moment", "log_odds", "probability", "region_grid"]
