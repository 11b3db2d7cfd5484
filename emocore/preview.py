"""What a browser can play, a playable proxy for the rest, and each ad's cover frame.

    browser_playability(path)            # Playability: playable as it is, or why not
    encode_preview(path, out)            # PreviewInfo: an H.264/AAC MP4 proxy written to `out`
    frame_look(image)                    # FrameLook: luminance mean/std and detail of one frame
    choose_cover(looks, face_px)         # Cover: the sampled frame the library shows for the ad
    choose_player(path, proxy)           # Player: the original, its proxy, or nothing and why

The rule for playing a file as it is (what Chromium, Firefox and Safari all decode, without plug-ins):

- container .mp4 / .m4v / .mov with H.264 (8-bit 4:2:0), VP9 or AV1 video, and AAC, MP3 or Opus sound
  (or none);
- container .webm with VP8, VP9 or AV1 video and Opus or Vorbis sound (or none).

Anything else (.avi, .mkv, .mov with ProRes, HEVC, MPEG-4 part 2, 10-bit or 4:2:2/4:4:4 H.264, AC-3
or PCM sound, ...) gets a proxy: H.264 (yuv420p, libx264 from PyAV's bundled FFmpeg, `PreviewParams`:
preset ultrafast, CRF 28) and AAC in an
MP4 whose index is at the front (`movflags=+faststart`, so it streams and seeks before it has fully
loaded), at most 720p (shorter side ≤ 720 and longer side ≤ 1280, never upscaled), the soundtrack kept
(mono stays mono, more channels become stereo). Its time 0 is the video's first frame, as the index's
frame times are, so a moment at t seconds in the index is at t seconds in the proxy; a file whose
timestamps run backwards (packed B-frames in AVI) is timed by frame count, as the index does.
The display rotation of the source is kept as the proxy's rotation tag.

The cover: the sampled frame with the largest scored face, among frames that are not blank; without
any face (a faceless ad, a whole-frame model), the most detailed non-blank frame; if every frame is
blank, the most detailed one. A frame is blank when its luminance is nearly flat (std < BLANK_STD) or
nearly black (mean < BLANK_DARK) or nearly white (mean > BLANK_BRIGHT): black openings, fades and
flashes never become the cover.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from emocore.errors import PreviewError, VideoError
from emocore.video import FrameClock

log = logging.getLogger("emocore")

#: Containers (by file suffix) and the codecs in them that browsers play: (video codecs, audio codecs).
BROWSER_FORMATS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    **{suffix: (frozenset({"h264", "vp9", "av1"}), frozenset({"aac", "mp3", "opus"}))
       for suffix in (".mp4", ".m4v", ".mov")},
    ".webm": (frozenset({"vp8", "vp9", "av1"}), frozenset({"opus", "vorbis"})),
}
#: The MIME type a browser is told for each playable container.
MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/mp4", ".webm": "video/webm"}
#: H.264 pixel formats browsers decode (8-bit 4:2:0).
H264_PIXEL_FORMATS = frozenset({"yuv420p", "yuvj420p"})
#: Sample rates the AAC encoder takes as they are; others are resampled to 48 kHz.
AAC_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000})

#: A frame is blank (never a cover) below this luminance std (0-255 grey levels)...
BLANK_STD = 6.0
#: ... or below this mean luminance (black), or above BLANK_BRIGHT (white).
BLANK_DARK = 8.0
BLANK_BRIGHT = 247.0
#: Frames are measured at this long side (pixels) at most.
LOOK_SIDE = 160


@dataclass(frozen=True)
class Playability:
    """Whether a browser plays a file as it is."""

    playable: bool
    reason: str
    """One line: what the file holds, and (when not playable) what a browser cannot play."""
    mime: str | None = None
    """The MIME type to serve it with, when playable."""


def playability_of(suffix: str, video_codec: str | None, pixel_format: str | None,
                   audio_codec: str | None) -> Playability:
    """The rule (module docstring) for a file of this suffix holding these streams."""
    suffix = suffix.lower()
    if suffix not in BROWSER_FORMATS:
        return Playability(False, f"browsers cannot play {suffix or 'these'} files")
    videos, audios = BROWSER_FORMATS[suffix]
    if video_codec not in videos:
        return Playability(False, f"browsers cannot play {video_codec or 'this'} video in {suffix} files")
    if video_codec == "h264" and pixel_format not in H264_PIXEL_FORMATS:
        return Playability(False, f"browsers cannot play H.264 in {pixel_format or 'this pixel format'}")
    if audio_codec is not None and audio_codec not in audios:
        return Playability(False, f"browsers cannot play {audio_codec} sound in {suffix} files")
    sound = f" with {audio_codec} sound" if audio_codec else ""
    return Playability(True, f"{video_codec} video{sound} in {suffix}: browsers play it as it is", MIME[suffix])


def browser_playability(path: Path | str) -> Playability:
    """Whether a browser plays the video file at `path` as it is (reads the container's headers only).
    VideoError when the file cannot be opened or has no video stream."""
    path = Path(path)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise VideoError("no video stream in the file")
            stream = container.streams.video[0]
            audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
            return playability_of(path.suffix, stream.codec_context.name, stream.codec_context.pix_fmt, audio)
    except av.error.FFmpegError as exc:
        raise VideoError(f"not a readable video ({getattr(exc, 'strerror', None) or exc})") from exc
    except OSError as exc:
        raise VideoError(f"cannot open file ({exc.strerror or exc})") from exc


@dataclass(frozen=True)
class PreviewParams:
    """How proxies are encoded."""

    max_short_side: int = 720
    """At most 720p: the shorter side of the picture, in pixels (never upscaled)."""
    max_long_side: int = 1280
    crf: int = 28
    """x264's constant rate factor (lower: better and bigger)."""
    preset: str = "ultrafast"
    """x264's speed preset: `ultrafast` took about half the CPU time of `veryfast` on a 30 s 720p AVI
    (about 1.6 Mb/s at CRF 28 against 1 Mb/s at CRF 26: `benchmarks/bench_preview.py`)."""
    audio_bitrate: int = 128_000
    threads: int = 0
    """Encoder threads (0: as many as FFmpeg chooses)."""


@dataclass(frozen=True)
class PreviewInfo:
    """A proxy as written."""

    path: Path
    width: int
    height: int
    """The coded picture's size (before the rotation tag)."""
    duration_s: float
    """From the first video frame to the end of the last one."""
    frames: int
    audio: bool
    """Whether the soundtrack was kept (False: the source has none, or it could not be decoded)."""
    audio_dropped: bool
    """The source has an audio stream that could not be decoded: the proxy is silent."""
    size_bytes: int
    elapsed_s: float


def preview_size(width: int, height: int, params: PreviewParams = PreviewParams()) -> tuple[int, int]:
    """The proxy's (width, height) for a source picture: scaled down to fit ≤ 720p, even sides."""
    short, long = min(width, height), max(width, height)
    scale = min(1.0, params.max_short_side / short, params.max_long_side / long)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def encode_preview(source: Path | str, target: Path | str, params: PreviewParams = PreviewParams()) -> PreviewInfo:
    """Encode the browser proxy of `source` into `target` (an .mp4 path the caller owns: write it to a
    temporary name and rename it; nothing here is atomic). PreviewError with a one-line reason when the
    video cannot be encoded; a soundtrack that cannot be decoded is dropped (logged), not an error."""
    start = time.perf_counter()
    source, target = Path(source), Path(target)
    try:
        container = av.open(str(source), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError) as exc:
        raise PreviewError(f"cannot open {source.name} ({getattr(exc, 'strerror', None) or exc})") from exc
    try:
        if not container.streams.video:
            raise PreviewError(f"{source.name} has no video stream")
        return _encode(container, source, target, params, start)
    except av.error.FFmpegError as exc:
        raise PreviewError(f"encoding the preview of {source.name} failed "
                           f"({' '.join(str(getattr(exc, 'strerror', None) or exc).split())})") from exc
    finally:
        container.close()


def _encode(container: av.container.InputContainer, source: Path, target: Path, params: PreviewParams,
            start: float) -> PreviewInfo:
    vin = container.streams.video[0]
    vin.thread_type = "AUTO"
    ain = container.streams.audio[0] if container.streams.audio else None
    rate = vin.average_rate or vin.guessed_rate or vin.base_rate or Fraction(25)
    fps = float(rate)
    width, height = preview_size(vin.codec_context.width, vin.codec_context.height, params)
    time_base = Fraction(1, 90_000)
    with av.open(str(target), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.time_base = time_base
        vout.codec_context.time_base = time_base
        vout.codec_context.framerate = rate
        vout.codec_context.thread_count = params.threads
        vout.codec_context.options = {"preset": params.preset, "crf": str(params.crf)}
        aout = resampler = None
        if ain is not None and ain.codec_context.sample_rate:
            channels = ain.codec_context.channels or 2
            sample_rate = ain.codec_context.sample_rate if ain.codec_context.sample_rate in AAC_RATES else 48_000
            layout = "mono" if channels == 1 else "stereo"
            aout = out.add_stream("aac", rate=sample_rate, layout=layout)
            aout.bit_rate = params.audio_bitrate
            aout.time_base = Fraction(1, sample_rate)
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
        rotated = False
        pending_audio: list[av.AudioFrame] = []  # sound decoded before the first picture: its offset is unknown
        sent_samples: int | None = None
        sound_ok = aout is not None
        frames = 0
        clock = FrameClock(fps)

        def send_audio(frame: av.AudioFrame | None) -> None:
            """Resample and encode one decoded sound frame (None: flush the resampler)."""
            nonlocal sent_samples, sound_ok
            try:
                resampled = resampler.resample(frame)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("the soundtrack of %s could not be resampled for its preview: %s", source, exc)
                sound_ok = False
                return
            for chunk in resampled:
                if sent_samples is None:
                    start = clock.start if clock.start is not None else 0.0
                    offset = (frame.time - start) if frame is not None and frame.time is not None else 0.0
                    sent_samples = max(0, round(offset * aout.rate))
                chunk.pts = sent_samples
                chunk.time_base = aout.time_base
                sent_samples += chunk.samples
                out.mux(aout.encode(chunk))

        streams = [vin] if ain is None or aout is None else [vin, ain]
        for packet in container.demux(*streams):
            if ain is not None and packet.stream.index == ain.index:
                if not sound_ok:
                    continue
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:  # damaged sound: skip the packet, as the index does
                    log.debug("skipped a damaged audio packet of %s: %s", source, exc)
                    continue
                for frame in decoded:
                    if frames == 0:  # no picture yet: where the sound starts against it is not known
                        pending_audio.append(frame)
                    else:
                        send_audio(frame)
                continue
            try:
                decoded = packet.decode()
            except av.error.EOFError:
                continue
            except av.error.FFmpegError as exc:
                log.debug("skipped a damaged video packet of %s: %s", source, exc)
                continue
            for frame in decoded:
                t = clock.time(frames, frame)
                if not rotated:
                    rotated = True
                    if frame.rotation:
                        vout.set_display_rotation(frame.rotation)
                if frame.width == width and frame.height == height and frame.format.name == "yuv420p":
                    picture = frame  # already the proxy's size and format: no scaling pass
                else:
                    picture = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
                picture.pts = round(t / time_base)
                picture.time_base = time_base
                out.mux(vout.encode(picture))
                frames += 1
                if pending_audio:
                    for held in pending_audio:
                        send_audio(held)
                    pending_audio.clear()
        if frames == 0:
            raise PreviewError(f"no decodable frames in {source.name}")
        out.mux(vout.encode(None))
        if aout is not None:
            if sound_ok:
                for held in pending_audio:
                    send_audio(held)
                send_audio(None)
            out.mux(aout.encode(None))
    duration = clock.last + clock.step
    kept = aout is not None and sound_ok and bool(sent_samples)
    return PreviewInfo(path=target, width=width, height=height, duration_s=duration, frames=frames, audio=kept,
                       audio_dropped=ain is not None and not kept,
                       size_bytes=target.stat().st_size, elapsed_s=time.perf_counter() - start)


@dataclass(frozen=True)
class Player:
    """What the ad page plays: the original file, its proxy, or nothing (and why, in one line)."""

    source: str
    """'original', 'preview' or 'none'."""
    path: Path | None
    mime: str | None
    reason: str


def choose_player(original: Path | str, proxy: Path | None) -> Player:
    """The original when a browser plays it as it is, else the stored proxy (`proxy`: its path when the
    cache holds one), else nothing, with the reason."""
    original = Path(original)
    if original.is_file():
        try:
            found = browser_playability(original)
        except VideoError as exc:
            found = Playability(False, f"the file is not a readable video ({exc})")
        if found.playable:
            return Player("original", original, found.mime, found.reason)
        if proxy is not None:
            return Player("preview", proxy, "video/mp4", f"{found.reason}: playing its preview (H.264, at most 720p)")
        return Player("none", None, None, f"{found.reason}, and the cache holds no preview of it "
                                          "(`python cli.py index` without --no-preview makes one)")
    if proxy is not None:
        return Player("preview", proxy, "video/mp4",
                      f"the video file is no longer at {original}: playing its preview (H.264, at most 720p)")
    return Player("none", None, None, f"the video file is no longer at {original}")


# -- the cover --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameLook:
    """How a frame looks, for choosing a cover: its luminance (0-255) and how much detail it has."""

    mean: float
    std: float
    detail: float
    """Mean absolute Laplacian of the luminance at LOOK_SIDE: edges and texture."""

    @property
    def blank(self) -> bool:
        """Nearly flat, black or white (module docstring)."""
        return self.std < BLANK_STD or self.mean < BLANK_DARK or self.mean > BLANK_BRIGHT


def frame_look(image: np.ndarray) -> FrameLook:
    """The look of one RGB uint8 frame (measured at LOOK_SIDE pixels at most)."""
    h, w = image.shape[:2]
    scale = min(1.0, LOOK_SIDE / max(h, w))
    small = image if scale >= 1.0 else cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                  interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else small
    detail = float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())
    return FrameLook(mean=float(grey.mean()), std=float(grey.std()), detail=detail)


@dataclass(frozen=True)
class Cover:
    """The sampled frame an ad is shown by."""

    index: int
    reason: str
    """'largest face', 'most detailed' (no face in a non-blank frame) or 'all blank' (every frame is)."""


def choose_cover(looks: list[FrameLook] | tuple[FrameLook, ...], face_px: np.ndarray | None = None) -> Cover:
    """The cover among sampled frames (module docstring): `looks` per frame, `face_px` per frame the
    scored face's size in pixels (NaN: none). ValueError when there are no frames."""
    if not looks:
        raise ValueError("no frames to choose a cover from")
    detail = np.array([look.detail for look in looks])
    usable = np.array([not look.blank for look in looks])
    faces = np.full(len(looks), np.nan) if face_px is None or len(face_px) != len(looks) else np.asarray(face_px, float)
    with_face = usable & np.isfinite(faces)
    if with_face.any():
        best = np.flatnonzero(with_face)
        # the largest face; among equal faces the more detailed frame
        return Cover(int(best[np.lexsort((-detail[best], -faces[best]))[0]]), "largest face")
    if usable.any():
        best = np.flatnonzero(usable)
        return Cover(int(best[np.argmax(detail[best])]), "most detailed")
    return Cover(int(np.argmax(detail)), "all blank")


__all__ = ["AAC_RATES", "BROWSER_FORMATS", "Cover", "FrameLook", "MIME", "Playability", "Player", "PreviewInfo",
           "PreviewParams", "browser_playability", "choose_cover", "choose_player", "encode_preview", "frame_look",
           "playability_of", "preview_size"]
