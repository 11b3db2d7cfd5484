"""YAMNet's log-mel front end, exactly as YAMNet's own source defines it, in NumPy.

    spec = log_mel_patches(waveform_16k)      # waveform: 1-D float, 16 kHz mono, in [-1, 1]
    spec.patches                              # [n, 96, 64] float32: what the model reads
    spec.start_s                              # where each 0.96 s patch starts in the waveform

The definition (tensorflow/models, research/audioset/yamnet: params.py and features.py):

- the waveform is zero-padded at its end to a whole number of patches: at least
  0.96 + 0.025 − 0.010 = 0.975 s (15,600 samples), then up to a whole number of 0.48 s hops;
- STFT magnitude (`tf.abs(tf.signal.stft)`): frames of 400 samples (25 ms) every 160 samples
  (10 ms), only whole frames (no padding at the end), a periodic Hann window, FFT length 512
  (the frame zero-padded to it), 257 bins;
- a mel filterbank as `tf.signal.linear_to_mel_weight_matrix` builds it: 64 triangular bands
  evenly spaced on the HTK mel scale (mel = 1127 ln(1 + f/700)) between 125 and 7,500 Hz, each
  triangle linear in mel (not in Hz), unnormalised (peak weight 1), the DC bin weighted 0;
  this is not librosa's (Slaney) filterbank;
- `log(mel + 0.001)`;
- patches of 96 frames (0.96 s) every 48 frames (0.48 s), only whole patches.

Patch `i` therefore covers samples `i·7680 … i·7680 + 15,600` of the padded waveform: it starts at
`0.48·i` s and its centre is at `0.48·i + 0.4875` s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
"""The sample rate YAMNet reads, in Hz (mono)."""
STFT_WINDOW_SECONDS = 0.025
STFT_HOP_SECONDS = 0.010
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_WINDOW_SECONDS = 0.96
PATCH_HOP_SECONDS = 0.48

WINDOW_SAMPLES = int(round(SAMPLE_RATE * STFT_WINDOW_SECONDS))  # 400
HOP_SAMPLES = int(round(SAMPLE_RATE * STFT_HOP_SECONDS))  # 160
FFT_LENGTH = 2 ** int(np.ceil(np.log(WINDOW_SAMPLES) / np.log(2.0)))  # 512
SPECTROGRAM_BINS = FFT_LENGTH // 2 + 1  # 257
PATCH_FRAMES = int(round(PATCH_WINDOW_SECONDS / STFT_HOP_SECONDS))  # 96
PATCH_HOP_FRAMES = int(round(PATCH_HOP_SECONDS / STFT_HOP_SECONDS))  # 48
# YAMNet casts these float products to int32 (truncation), as here.
MIN_SAMPLES = int((PATCH_WINDOW_SECONDS + STFT_WINDOW_SECONDS - STFT_HOP_SECONDS) * SAMPLE_RATE)  # 15600
PATCH_HOP_SAMPLES = int(PATCH_HOP_SECONDS * SAMPLE_RATE)  # 7680
#: Seconds of waveform one patch reads (the padding minimum): 0.975 s.
PATCH_SPAN_SECONDS = MIN_SAMPLES / SAMPLE_RATE


@dataclass(frozen=True)
class LogMelPatches:
    """A waveform's log-mel spectrogram and the patches cut from it for the model."""

    log_mel: np.ndarray
    """[frames, 64] float32: every 10 ms frame of the padded waveform."""
    patches: np.ndarray
    """[n, 96, 64] float32: 0.96 s patches every 0.48 s (n ≥ 1)."""
    start_s: np.ndarray
    """[n] float64: where each patch starts in the waveform, in seconds (0.48·i)."""
    duration_s: float
    """Length of the waveform before padding, in seconds."""

    @property
    def center_s(self) -> np.ndarray:
        """[n]: the middle of the span each patch reads (start + 0.4875 s)."""
        return self.start_s + PATCH_SPAN_SECONDS / 2


def _hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_matrix(
    num_mel_bins: int = MEL_BANDS,
    num_spectrogram_bins: int = SPECTROGRAM_BINS,
    sample_rate: float = SAMPLE_RATE,
    lower_edge_hertz: float = MEL_MIN_HZ,
    upper_edge_hertz: float = MEL_MAX_HZ,
) -> np.ndarray:
    """[num_spectrogram_bins, num_mel_bins] weights, as `tf.signal.linear_to_mel_weight_matrix`."""
    if not 0.0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate / 2:
        raise ValueError(f"mel edges must satisfy 0 <= {lower_edge_hertz} < {upper_edge_hertz} <= Nyquist")
    linear_hz = np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins)[1:]  # the DC bin stays 0
    bins_mel = _hertz_to_mel(linear_hz)[:, None]
    edges = np.linspace(_hertz_to_mel(lower_edge_hertz), _hertz_to_mel(upper_edge_hertz), num_mel_bins + 2)
    lower, center, upper = edges[:-2][None, :], edges[1:-1][None, :], edges[2:][None, :]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(lower_slopes, upper_slopes))
    return np.pad(weights, [(1, 0), (0, 0)]).astype(np.float32)


_MEL = mel_matrix()
_WINDOW = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW_SAMPLES) / WINDOW_SAMPLES))  # periodic Hann


def pad_waveform(waveform: np.ndarray) -> np.ndarray:
    """Zero-pad at the end to at least 0.975 s, then to a whole number of 0.48 s hops (YAMNet's rule)."""
    samples = np.asarray(waveform, dtype=np.float32).reshape(-1)
    count = max(samples.size, MIN_SAMPLES)
    hops = -(-(count - MIN_SAMPLES) // PATCH_HOP_SAMPLES)  # ceil
    padded = MIN_SAMPLES + hops * PATCH_HOP_SAMPLES
    return np.pad(samples, (0, padded - samples.size))


def stft_magnitude(waveform: np.ndarray) -> np.ndarray:
    """[frames, 257] float32: |STFT| with 400-sample periodic-Hann frames every 160 samples, FFT 512."""
    samples = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if samples.size < WINDOW_SAMPLES:
        return np.zeros((0, SPECTROGRAM_BINS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, WINDOW_SAMPLES)[::HOP_SAMPLES]
    return np.abs(np.fft.rfft(frames * _WINDOW, n=FFT_LENGTH, axis=-1)).astype(np.float32)


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """[frames, 64] float32: log(mel(|STFT|) + 0.001) of the waveform as given (no padding)."""
    return np.log(stft_magnitude(waveform) @ _MEL + np.float32(LOG_OFFSET)).astype(np.float32)


def frame_patches(log_mel_frames: np.ndarray) -> np.ndarray:
    """[n, 96, 64]: whole 96-frame patches every 48 frames (a view, not a copy)."""
    if log_mel_frames.shape[0] < PATCH_FRAMES:
        return np.zeros((0, PATCH_FRAMES, log_mel_frames.shape[1]), log_mel_frames.dtype)
    windows = np.lib.stride_tricks.sliding_window_view(log_mel_frames, PATCH_FRAMES, axis=0)[::PATCH_HOP_FRAMES]
    return windows.transpose(0, 2, 1)


def log_mel_patches(waveform: np.ndarray) -> LogMelPatches:
    """YAMNet's input for a 16 kHz mono waveform: padded, log-mel, cut into patches."""
    samples = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(samples)):
        raise ValueError("the waveform holds NaN or infinite samples")
    frames = log_mel(pad_waveform(samples))
    patches = np.ascontiguousarray(frame_patches(frames))
    return LogMelPatches(
        log_mel=frames,
        patches=patches,
        start_s=np.arange(patches.shape[0]) * PATCH_HOP_SECONDS,
        duration_s=samples.size / SAMPLE_RATE,
    )


__all__ = [
    "FFT_LENGTH", "HOP_SAMPLES", "LOG_OFFSET", "MEL_BANDS", "MEL_MAX_HZ", "MEL_MIN_HZ", "PATCH_FRAMES",
    "PATCH_HOP_SECONDS", "PATCH_SPAN_SECONDS", "PATCH_WINDOW_SECONDS", "SAMPLE_RATE", "WINDOW_SAMPLES",
    "LogMelPatches", "frame_patches", "log_mel", "log_mel_patches", "mel_matrix", "pad_waveform", "stft_magnitude",
]
