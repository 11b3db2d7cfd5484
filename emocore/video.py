"""Reading a video: its true metadata, and frames sampled at a fixed rate in one sequential pass.

    with open_video(path) as video:
        video.info.duration_s, video.info.rotation
        for frame in video.sample(rate=2.0, max_side=1280):
            frame.time_s, frame.image          # RGB uint8, upright (rotation applied)
            frame.source_scale                 # original pixels per pixel of frame.image

Sampling never seeks: it decodes in order (PyAV, frame-threaded) and converts only the frames it
keeps. It does not decode what nobody needs: a packet whose frame no sample can be is handed to
the decoder with `skip_frame=NONREF`, so the decoder drops it when no other frame is predicted
from it (a non-reference frame: about half of an H.264 ad's frames with B-frames) and decodes it
otherwise. The sampled frames are exactly those of a full decode: which packet may be a sample is
decided from its timestamp (in MP4/MOV and Matroska/WebM, which store one per packet; AVI
files are decoded whole), and `sample` checks every sample it yields against the packets that
may have been dropped; if one of them could have been the sample (irregular timestamps), or the
timestamps turn unreliable, it reopens the file and carries on from that sample decoding every
frame (`sample(every_frame=True)` does so from the start). On a 30 s 720p H.264 ad this cuts the
pass's decoding CPU by about 40 %. The same pass can feed a cheap per-frame signal to a shot
detector (`on_frame`): a tiny BGR image, built from the decoder's own planes with no colour
conversion of the full frame, of every frame decoded.

Errors while opening raise `VideoError` with a one-line reason. Decoding errors after the first
frames are tolerated: the broken packets are skipped and counted, so a video with a corrupt middle
still yields its readable frames (`Video.decode_errors` says how many were skipped).

The soundtrack in the same pass: `open_video(path, audio=True)` demuxes the video and the first
audio stream together, so the file is read once, and keeps the audio packets (compressed: about
16 kB per second of 128 kb/s AAC). Once `sample` has run to the end of the file,
`Video.soundtrack()` hands them, in order, to an `emocore.audio.decode.AudioDecoder` (16 kHz
mono) and returns the track (or `NoAudio`; an `AudioError` when it is unusable): the same
samples `decode_audio` reads. Decoding them between the video packets instead cost about 15% more
CPU than the video pass alone on a 30 s 720p H.264 + AAC clip (the frame-threaded video decoder
waits on it), against about 3% after the pass. A failing soundtrack never stops the video. A pass
that stops early (`sample(keep=…)`, for explanations) has no soundtrack: open those without `audio`.

    with open_video(path, audio=True) as video:
        for frame in video.sample(rate=2.0):
            ...
        track = video.soundtrack()         # AudioTrack | NoAudio, or AudioError
"""

from __future__ import annotations

import logging
import math
import bisect
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from emocore.audio.decode import AudioDecoder, AudioTrack, NoAudio, audio_decoder
from emocore.errors import AudioError, VideoError

log = logging.getLogger("emocore")

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"})

#: Long side (pixels) of the tiny frames handed to shot detection.
TINY_SIDE = 96
_PLANAR_YUV = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"}
#: Containers that store each packet's presentation time, so a packet's frame is known before decoding
#: it (AVI stores none: its times are counted, and a dropped frame would shift them).
_OWN_PTS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"})
#: Decoding errors tolerated in one file before it is declared unreadable.
MAX_DECODE_ERRORS = 50


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, as a player would show it (width and height after rotation)."""

    duration_s: float
    fps: float
    frame_count: int
    """The container's frame count, or duration × fps when it does not say."""
    width: int
    height: int
    rotation: int
    """Degrees clockwise a player rotates the coded picture for display: 0, 90, 180 or 270."""
    codec: str
    has_audio: bool


@dataclass(frozen=True)
class SampledFrame:
    index: int
    """Position among the sampled frames, from 0."""
    time_s: float
    image: np.ndarray
    """RGB uint8, upright."""
    source_scale: float = 1.0
    """Original (decoded, upright) pixels per pixel of `image`: the long side's ratio, 1.0 unless
    `max_side` scaled the frame down (a 1920×1080 frame sampled at 1280 px: 1.5)."""


def _rotation_of(stream: av.video.stream.VideoStream, first: av.VideoFrame | None) -> int:
    """Clockwise display rotation from the display matrix, normalised to 0/90/180/270."""
    angle = 0.0
    if first is not None and getattr(first, "rotation", None) is not None:
        angle = float(first.rotation)
    elif stream.metadata.get("rotate"):
        angle = -float(stream.metadata["rotate"])
    # FFmpeg's display-matrix angle is counter-clockwise; players turn the picture clockwise.
    return int(round(-angle / 90.0)) % 4 * 90


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-(rotation // 90)))


def _fit(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Size that fits `max_side` on the long side, even numbers, never upscaled."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def tiny_bgr(frame: av.VideoFrame) -> np.ndarray:
    """A small BGR picture of the frame (long side ≈ TINY_SIDE), from the decoder's planes.

    For planar YUV the planes are subsampled by slicing and only the tiny result is converted;
    other pixel formats go through swscale at the tiny size.
    """
    width, height = frame.width, frame.height
    if frame.format.name in _PLANAR_YUV:
        y_plane, u_plane, v_plane = (
            np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size) for plane in frame.planes
        )
        cw = frame.planes[1].width
        ch = frame.planes[1].height
        step = max(1, math.ceil(max(cw, ch) / TINY_SIDE))
        u = u_plane[:ch:step, :cw:step]
        v = v_plane[:ch:step, :cw:step]
        sy, sx = height // ch, width // cw
        y = y_plane[: ch * sy : step * sy, : cw * sx : step * sx][: u.shape[0], : u.shape[1]]
        return cv2.cvtColor(np.dstack((y, u, v)), cv2.COLOR_YUV2BGR)
    tw, th = _fit(width, height, TINY_SIDE)
    return frame.reformat(width=tw, height=th, format="bgr24").to_ndarray()


class _SkipPlan:
    """Which packets the decoder may drop: those whose frame cannot be a sample.

    A frame at time t is sampled when a multiple of the period lies in (time of the frame before it,
    t]. Without looking ahead, the frame before is taken to be at most 1.5 frame durations earlier:
    a packet is `wanted` when a multiple lies in (t − 1.5 frames, t]. Timestamps that jump further
    are caught by `hides`, which the sampler asks for each sample it is about to yield."""

    def __init__(self, period: float, start: float, time_base: Fraction, frame_s: float) -> None:
        self.period = period
        self.start = start
        self.time_base = time_base
        self.reach = 1.5 * frame_s + 1e-5
        self.dropped: list[float] = []
        """Times of the packets handed over with NONREF (whether or not the decoder dropped them), sorted."""

    def time(self, pts: int) -> float:
        """A packet's time, computed as `FrameClock` computes its frame's."""
        return float(pts * self.time_base) - self.start

    def wanted(self, t: float) -> bool:
        below = math.floor((t + 1e-5) / self.period) * self.period
        return below > t - self.reach

    def drop(self, t: float) -> None:
        bisect.insort(self.dropped, t)

    def hides(self, low: float, high: float) -> bool:
        """True when a packet that may have been dropped lies in [low, high)."""
        i = bisect.bisect_left(self.dropped, low)
        return i < len(self.dropped) and self.dropped[i] < high

    def forget_before(self, t: float) -> None:
        """Samples before `t` are settled: their packets need no more checking."""
        del self.dropped[:bisect.bisect_left(self.dropped, t)]


class _DecodeAll(Exception):
    """Raised inside `Video.sample` when a dropped packet may have been a sample: decode again, every frame."""


class FrameClock:
    """Each decoded frame's time on the video's own timeline, seconds from its first frame: the frame's
    timestamp while timestamps hold; once one is missing or goes backwards, frames decoded / fps from
    then on (decoders emit frames in display order, so a timestamp going backwards, as packed B-frames
    in AVI give, means the labels are wrong, not the order). The index and the previews both read time
    with it, so a preview's frame times are the index's."""

    def __init__(self, fps: float | None) -> None:
        self.step = 1.0 / (fps or 25.0)
        self.start: float | None = None
        """The first frame's timestamp (None when timestamps were unreliable from the start)."""
        self.last = -math.inf
        self.counted = False
        """True once timestamps proved unreliable."""

    def time(self, n: int, frame: av.VideoFrame) -> float:
        """The time of `frame`, the `n`-th decoded (from 0)."""
        t = self.last
        if not self.counted and frame.time is not None:
            if self.start is None:
                self.start = frame.time
            t = frame.time - self.start
            self.counted = t <= self.last
        else:
            self.counted = True
        if self.counted:
            t = max(n * self.step, self.last + self.step)
        self.last = t
        return t


class Video:
    """An open video file, checked to decode at least one frame. Use `open_video(path)`; sample once.

    With `audio`, the first audio stream is decoded in the same demux pass (`soundtrack()`)."""

    def __init__(self, path: Path, audio: bool = False) -> None:
        self.path = Path(path)
        self.decode_errors = 0
        self._with_audio = audio
        self._audio: AudioDecoder | None = None
        self._demuxed = False  # True once the demux pass reached the end of the file
        self._audio_packets: list[av.Packet] = []  # held until the pass ends (see the module docstring)
        self._plan: _SkipPlan | None = None  # set by `sample` unless every frame is wanted
        try:
            self._container = av.open(str(self.path), metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise VideoError(f"not a readable video ({_reason(exc)})") from exc
        except OSError as exc:
            raise VideoError(f"cannot open file ({exc.strerror or exc})") from exc
        try:
            if audio and self._container.streams.video:
                self._audio = audio_decoder(self._container)
            self.info = self._probe()
        except Exception:
            self._container.close()
            raise

    def _probe(self) -> VideoInfo:
        """Stream facts, plus the first decoded frame (rotation lives in the frames' side data)."""
        container = self._container
        if not container.streams.video:
            raise VideoError("no video stream in the file")
        stream = container.streams.video[0]
        if stream.codec_context is None or not stream.codec_context.name:
            raise VideoError("unknown video codec")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        duration = 0.0
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        frames = int(stream.frames or 0) or (round(duration * fps) if fps else 0)
        width = stream.codec_context.width
        height = stream.codec_context.height
        if not width or not height:
            raise VideoError("the video stream has no picture size (truncated or corrupt header)")
        self._pending = self._frames()
        try:
            self._first: av.VideoFrame | None = next(self._pending, None)
        except av.error.FFmpegError as exc:
            raise VideoError(f"decoding failed ({_reason(exc)})") from exc
        if self._first is None:
            raise VideoError("no decodable frames")
        rotation = _rotation_of(stream, self._first)
        if rotation % 180:
            width, height = height, width
        return VideoInfo(
            duration_s=duration,
            fps=fps,
            frame_count=frames,
            width=width,
            height=height,
            rotation=rotation,
            codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio),
        )

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """The frames from the start: the one decoded while probing, then the rest."""
        if self._first is None:
            raise VideoError("a video can be sampled only once")
        first, self._first = self._first, None
        yield first
        yield from self._pending

    def _frames(self) -> Iterator[av.VideoFrame]:
        """Every decodable frame in order (but those `_plan` lets the decoder drop); broken packets are
        skipped and counted. The audio packets of the same demux are kept for the soundtrack's decoder."""
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        context = stream.codec_context
        skipping = False
        sound = self._audio if self._audio is not None and self._audio.failed is None else None
        streams = [stream] if sound is None else [stream, sound.stream]
        video_done = False
        for packet in self._container.demux(*streams):
            if sound is not None and packet.stream.index == sound.stream.index:
                self._audio_packets.append(packet)
                continue
            if video_done:
                continue
            plan = self._plan
            if plan is not None and packet.pts is None:
                plan = self._plan = None  # no time to decide by: decode everything from here
            drop = False
            if plan is not None:
                t = plan.time(packet.pts)
                drop = not plan.wanted(t)
                if drop:
                    plan.drop(t)
            if drop != skipping:
                context.skip_frame = "NONREF" if drop else "DEFAULT"
                skipping = drop
            try:
                frames = packet.decode()
            except av.error.EOFError:
                video_done = True  # the soundtrack may still have packets to read
                continue
            except av.error.FFmpegError as exc:
                self.decode_errors += 1
                if self.decode_errors > MAX_DECODE_ERRORS:
                    raise VideoError(f"too many decoding errors ({_reason(exc)})") from exc
                continue
            yield from frames
        self._demuxed = True

    def _reopen(self) -> None:
        """Start decoding the file again from its first frame, every frame (see `sample`)."""
        self._container.close()
        self._container = av.open(str(self.path), metadata_errors="ignore")
        if self._with_audio and self._container.streams.video:
            self._audio = audio_decoder(self._container)
        self._audio_packets = []
        self._demuxed = False
        self._plan = None
        self.decode_errors = 0
        self._pending = self._frames()
        self._first = next(self._pending, None)

    def soundtrack(self) -> AudioTrack | NoAudio:
        """The soundtrack decoded in the sampling pass (16 kHz mono), `NoAudio` if the file has no audio
        track. AudioError when it is unusable, or when the pass stopped before the end of the file."""
        if not self._with_audio:
            raise ValueError("open the video with audio=True to decode its soundtrack in the same pass")
        if self._audio is None:
            return NoAudio()
        if not self._demuxed:
            raise AudioError("the video pass stopped before the end of the file: the soundtrack is incomplete")
        packets, self._audio_packets = self._audio_packets, []
        for packet in packets:  # the decoder never raises; it stops reading once the track has failed
            self._audio.feed(packet)
        return self._audio.finish()

    def sample(
        self,
        rate: float,
        max_side: int | None = None,
        on_frame: Callable[[float, np.ndarray], None] | None = None,
        keep: Collection[int] | None = None,
        every_frame: bool = False,
    ) -> Iterator[SampledFrame]:
        """Frames at `rate` per second (the first frame at or after each multiple of 1/rate).

        `max_side` bounds the long side of the returned images. `on_frame(time_s, tiny_bgr)`, if
        given, sees each decoded frame in order (for shot detection) before sampling decides: every
        frame with `every_frame`, else the frames the decoder had to decode (the samples and the
        frames others are predicted from; see the module docstring). `keep`, if given, yields only
        the sampled frames with those indices (and stops after the last), with the same indices and
        times as a full pass. The samples are the same whichever `every_frame`.
        """
        last_wanted = max(keep) if keep else None
        if rate <= 0:
            raise ValueError(f"sampling rate must be positive, got {rate}")
        period = 1.0 / rate
        stream = self._container.streams.video[0]
        if not every_frame and self._container.format.name in _OWN_PTS and self._first is not None \
                and self._first.time is not None and stream.time_base and self.info.fps > 0:
            self._plan = _SkipPlan(period, self._first.time, stream.time_base, 1.0 / self.info.fps)
        fed = -math.inf  # the last time on_frame saw: after a restart it sees only later frames
        resume = 0  # samples before this index were yielded before a restart
        while True:
            try:
                yield from self._sample_pass(period, max_side, on_frame, keep, last_wanted, resume, fed)
                return
            except _DecodeAll as restart:
                resume, fed = restart.args
                log.info("%s: timestamps too irregular to skip frames; decoding every frame from sample %d",
                         self.path.name, resume)
                try:
                    self._reopen()
                except av.error.FFmpegError as exc:
                    raise VideoError(f"decoding failed ({_reason(exc)})") from exc

    def _sample_pass(
        self, period: float, max_side: int | None, on_frame: Callable[[float, np.ndarray], None] | None,
        keep: Collection[int] | None, last_wanted: int | None, resume: int, fed: float,
    ) -> Iterator[SampledFrame]:
        """One decoding pass of `sample`, yielding the samples from index `resume` on; raises
        `_DecodeAll(index, fed)` when a frame the decoder was let drop may have been that sample."""
        next_t = 0.0
        index = 0
        rotation = self.info.rotation
        clock = FrameClock(self.info.fps)
        try:
            for n, frame in enumerate(self._decoded()):
                t = clock.time(n, frame)
                plan = self._plan
                if clock.counted and plan is not None:
                    if plan.dropped:  # times now count decoded frames: the dropped ones would be missing
                        raise _DecodeAll(index, fed)
                    self._plan = plan = None
                if on_frame is not None and t > fed:
                    on_frame(t, _rotate(tiny_bgr(frame), rotation))
                    fed = t
                if t + 1e-6 < next_t:
                    continue
                if plan is not None:
                    if plan.hides(next_t - 1e-6, t):
                        raise _DecodeAll(index, fed)
                    plan.forget_before(t)
                if index >= resume and (keep is None or index in keep):
                    if rotation % 180:
                        w, h = _fit(frame.height, frame.width, max_side)
                        w, h = h, w
                    else:
                        w, h = _fit(frame.width, frame.height, max_side)
                    image = frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
                    yield SampledFrame(index=index, time_s=round(t, 6), image=_rotate(image, rotation),
                                       source_scale=max(frame.width, frame.height) / max(w, h))
                index += 1
                next_t = (math.floor(t / period + 1e-9) + 1) * period
                if last_wanted is not None and index > last_wanted:
                    return
        except av.error.FFmpegError as exc:
            raise VideoError(f"decoding failed ({_reason(exc)})") from exc

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "Video":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_video(path: Path | str, audio: bool = False) -> Video:
    """Open a video for reading (`audio`: decode its soundtrack in the same pass, see `Video.soundtrack`);
    raises VideoError with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise VideoError("file does not exist")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError("empty file (0 bytes)")
    return Video(path, audio=audio)


def _reason(exc: BaseException) -> str:
    """FFmpeg's own words for an error, without the file path it appends."""
    return (getattr(exc, "strerror", None) or str(exc)).strip()


def find_videos(root: Path) -> list[Path]:
    """Video files under `root` (recursive, by extension, case-insensitive), sorted; or `root` itself."""
    if root.is_file():
        return [root]
    return sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in VIDEO_EXTENSIONS and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and (p.is_file() or p.is_symlink())
    )


__all__ = ["FrameClock", "VIDEO_EXTENSIONS", "SampledFrame", "Video", "VideoInfo", "find_videos", "open_video"]
