"""A video's soundtrack as YAMNet reads it: 16 kHz mono float32, decoded with PyAV.

    track = decode_audio("ad.mp4")
    if isinstance(track, NoAudio):      # the file has no audio track: nothing to score (not silence)
        ...
    else:
        track.samples, track.start_s    # float32 at 16 kHz; where the first sample sits in the file

Any channel layout (mono, stereo, 5.1, …) and rate (8 kHz, 44.1 kHz, 48 kHz, …) is downmixed
and resampled by FFmpeg's swresample (`av.AudioResampler(format="flt", layout="mono",
rate=16000)`). Damaged packets are skipped and counted (`decode_errors`); a stretch the decoder
could not fill (a gap in the timestamps, e.g. dropped packets) is filled with silence so later
sound stays at its true time (`gap_s` says how much). A track that cannot be used raises
`AudioError` with a one-line reason: an unsupported codec, more than `MAX_DECODE_ERRORS` damaged
packets, or nothing decodable at all. A file without an audio track is not an error: it gives
`NoAudio`.

Decoding in the video's own pass (one demux of the file for both): build an `AudioDecoder` on
the container, demux the video and the audio stream together, and hand it the audio packets;
`feed` never raises (a failing soundtrack must not stop the video), `finish` returns the track
or raises the AudioError that stopped it:

    decoder = audio_decoder(container)                 # None when the file has no audio track
    streams = [video_stream] + ([decoder.stream] if decoder else [])
    for packet in container.demux(*streams):
        if decoder is not None and packet.stream.index == decoder.stream.index:
            decoder.feed(packet)
            continue
        ...                                            # the video packet, as before
    track = decoder.finish() if decoder else NoAudio()
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from emocore.audio.frontend import SAMPLE_RATE
from emocore.errors import AudioError

log = logging.getLogger("emocore")

#: Damaged packets tolerated in one soundtrack before it is declared unusable.
MAX_DECODE_ERRORS = 50
#: A jump in the timestamps longer than this (seconds) is filled with silence.
GAP_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class AudioTrack:
    """A decoded soundtrack: mono float32 samples at 16 kHz, and where they came from."""

    samples: np.ndarray
    """[n] float32 at `sample_rate`, nominally in [-1, 1] (a downmix may slightly exceed it)."""
    start_s: float
    """Time of the first sample on the file's timeline (the stream's first timestamp), seconds."""
    source_rate: int
    """The stream's own sample rate, Hz."""
    source_channels: int
    source_layout: str
    """FFmpeg's name for the stream's channel layout ("stereo", "5.1", …)."""
    codec: str
    decode_errors: int
    """Damaged packets skipped."""
    gap_s: float
    """Seconds of silence inserted where the timestamps jumped (missing packets)."""
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate

    @property
    def peak(self) -> float:
        """The largest absolute sample (0.0 for pure digital silence)."""
        return float(np.max(np.abs(self.samples))) if self.samples.size else 0.0


@dataclass(frozen=True)
class NoAudio:
    """The file has no audio track: there is nothing to score (this is not silence)."""

    reason: str = "no audio track"


@dataclass(frozen=True)
class AudioFailed:
    """The file has an audio track that could not be read or scored; the video part stands on its own.

    `reason` is one line (the `AudioError` message, or the model's error)."""

    reason: str


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words for an error, without the file path it appends."""
    return (getattr(exc, "strerror", None) or str(exc)).strip() or type(exc).__name__


class AudioDecoder:
    """Decodes one audio stream's packets, in order, into an AudioTrack. See the module docstring."""

    def __init__(self, stream: av.audio.stream.AudioStream) -> None:
        self.stream = stream
        context = stream.codec_context
        self._codec = context.name if context is not None and context.name else ""
        self._failure: str | None = None if self._codec else "unsupported audio codec"
        self._layout = stream.layout.name if stream.layout is not None else ""
        self._channels = int(getattr(context, "channels", 0) or len(getattr(stream.layout, "channels", ())) or 0)
        self._rate = int(stream.rate or 0)
        self._resampler: av.AudioResampler | None = None
        self._chunks: list[np.ndarray] = []
        self._emitted = 0  # samples at 16 kHz appended so far (gap fills included)
        self._start: float | None = None
        self._next_time: float | None = None  # where the next input frame should start, seconds
        self._gap = 0.0
        self.decode_errors = 0
        self._finished = False

    @property
    def failed(self) -> str | None:
        """Why this soundtrack cannot be used, once that is known; None while it decodes."""
        return self._failure

    def feed(self, packet: av.Packet) -> None:
        """Decode one packet of this stream (packets of other streams are ignored). Never raises."""
        if self._failure is not None or self._finished or packet.stream.index != self.stream.index:
            return
        try:
            frames = packet.decode()
        except av.error.EOFError:
            return
        except av.error.FFmpegError as exc:
            self._count_error(exc)
            return
        except Exception as exc:  # noqa: BLE001 — whatever breaks here must not stop the video
            self._failure = f"audio decoding failed ({_reason(exc)})"
            return
        for frame in frames:
            self._take(frame)

    def _count_error(self, exc: BaseException) -> None:
        self.decode_errors += 1
        log.debug("audio packet skipped: %s", _reason(exc))
        if self.decode_errors > MAX_DECODE_ERRORS:
            self._failure = f"too many damaged audio packets ({_reason(exc)})"

    def _take(self, frame: av.AudioFrame) -> None:
        if self._failure is not None or frame.samples == 0:
            return
        time = frame.time
        if time is not None:
            if self._start is None:
                self._start = float(time)
            if self._next_time is not None and time - self._next_time > GAP_TOLERANCE_S:
                self._fill_gap(time - self._next_time)
            self._next_time = float(time) + frame.samples / (frame.sample_rate or self._rate or SAMPLE_RATE)
        elif self._start is None:
            self._start = 0.0
        try:
            out = self._resample(frame)
        except (ValueError, av.error.FFmpegError) as exc:
            # a stream whose rate or layout changes midway: restart the resampler from this frame
            self._flush_resampler()
            self._resampler = None
            try:
                out = self._resample(frame)
            except (ValueError, av.error.FFmpegError):
                self._failure = f"audio resampling failed ({_reason(exc)})"
                return
        self._append(out)

    def _resample(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        if self._resampler is None:
            if frame is None:
                return []
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        if frame is not None:
            frame.pts = None  # resample by order, not by timestamps: gaps are filled in _take
        return self._resampler.resample(frame)

    def _append(self, frames: list[av.AudioFrame]) -> None:
        for out in frames:
            samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            self._chunks.append(samples)
            self._emitted += samples.size

    def _fill_gap(self, seconds: float) -> None:
        count = int(round(seconds * SAMPLE_RATE))
        log.debug("audio gap of %.3f s filled with silence", seconds)
        self._chunks.append(np.zeros(count, np.float32))
        self._emitted += count
        self._gap += seconds

    def _flush_resampler(self) -> None:
        if self._resampler is not None:
            try:
                self._append(self._resample(None))
            except (ValueError, av.error.FFmpegError):
                pass

    def finish(self) -> AudioTrack:
        """Flush the decoder and resampler; the whole track, or AudioError with the reason."""
        if not self._finished:
            self._finished = True
            if self._failure is None:
                try:
                    for frame in self.stream.codec_context.decode(None):
                        self._take(frame)
                except av.error.EOFError:
                    pass
                except av.error.FFmpegError as exc:
                    self._count_error(exc)
                self._flush_resampler()
        if self._failure is not None:
            raise AudioError(self._failure)
        if self._emitted == 0:
            if self.decode_errors:
                raise AudioError(f"no decodable sound in the audio track ({self.decode_errors} damaged packets)")
            raise AudioError("the audio track holds no sound")
        samples = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        return AudioTrack(
            samples=samples,
            start_s=float(self._start or 0.0),
            source_rate=self._rate,
            source_channels=self._channels,
            source_layout=self._layout,
            codec=self._codec,
            decode_errors=self.decode_errors,
            gap_s=round(self._gap, 6),
        )


def audio_decoder(container: av.container.InputContainer) -> AudioDecoder | None:
    """A decoder for the container's first audio stream, or None when it has none."""
    if not container.streams.audio:
        return None
    return AudioDecoder(container.streams.audio[0])


def decode_audio(path: Path | str) -> AudioTrack | NoAudio:
    """The file's soundtrack at 16 kHz mono, `NoAudio` if it has none; AudioError if unusable."""
    path = Path(path)
    if not path.exists():
        raise AudioError("file does not exist")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioError(f"not a readable media file ({_reason(exc)})") from exc
    except OSError as exc:
        raise AudioError(f"cannot open file ({exc.strerror or exc})") from exc
    with container:
        decoder = audio_decoder(container)
        if decoder is None:
            return NoAudio()
        if decoder.failed is None:
            try:
                for packet in container.demux(decoder.stream):
                    decoder.feed(packet)
                    if decoder.failed is not None:
                        break
            except av.error.FFmpegError as exc:  # a demuxing error: keep what was read before it
                decoder.decode_errors += 1
                log.debug("demuxing stopped early: %s", _reason(exc))
        return decoder.finish()


__all__ = ["GAP_TOLERANCE_S", "MAX_DECODE_ERRORS", "AudioDecoder", "AudioTrack", "NoAudio", "audio_decoder",
           "decode_audio"]
