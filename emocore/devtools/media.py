"""Synthetic and derived video files for the test suite and the benchmark.

Contract
--------
* Every public function takes the output path first (plus keyword options),
  writes exactly one file there (parent directories are created), and returns
  the path as a :class:`pathlib.Path`.
* Pure PyAV (which bundles its own FFmpeg); the ffmpeg CLI is never needed.
* Deterministic: the picture/sound content is a pure function of the
  arguments (noise comes from a fixed-seed generator) and, because x264 runs
  single-threaded with ``mbtree=0`` here, the encoded bytes are identical
  from run to run (except face_clip_720p, which uses all cores and default
  x264 rate control: same content, bytes may differ slightly between runs).
* Fast: every generator except :func:`face_clip_720p` finishes well under
  2 s on a 2-core machine with the default arguments.
* Video streams are H.264 (``libx264``), ``yuv420p``, constant frame rate,
  keyframe interval (GOP) ``2 * fps`` frames (max; x264 may add scene-cut
  I-frames); frame ``i`` is shown at exactly ``i / fps`` seconds
  (``frame.time``; the MP4 muxer picks its own stream time base, e.g.
  1/12800, so compare times, not raw pts); no audio unless the function says
  otherwise.
  A clip of ``seconds`` at ``fps`` has exactly ``round(seconds * fps)`` frames.
* MP4 files are written without ``faststart`` (the ``moov`` index is at the
  END of the file) unless ``faststart=True`` is passed, which moves it to the
  start.  This is what decides how a truncated copy behaves, see
  :func:`truncated_copy`.

Rotation convention (see :func:`rotated_clip`)
----------------------------------------------
``rotation`` arguments here are the CLOCKWISE angle a player turns the
encoded picture by before showing it (the legacy ``rotate`` tag, what phones
write: ``rotation=90`` is the usual portrait phone clip).  PyAV reports the
opposite sign: ``VideoFrame.rotation`` is FFmpeg's
``av_display_rotation_get`` = the COUNTER-clockwise angle, so a ``rotation=90``
clip decodes with ``frame.rotation == -90``.  Decoded frames are NOT rotated
by PyAV; a reader gets display orientation with
``numpy.rot90(frame.to_ndarray(format="rgb24"), k=round(frame.rotation / 90))``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

PathLike = str | os.PathLike[str]
RGB = tuple[int, int, int]

# Where face_clip_720p looks for real footage when ``sources`` is not given: the demo ads that
# `python cli.py setup` fetched, in ``$EMOCORE_DEMO_DIR`` if set, else in ``cache/demo-ads/`` under the
# current folder (where the CLI puts them). From each group, the first candidate that exists is used
# (groups in order).
_DEMO_DIRS: tuple[Path, ...] = tuple(
    Path(d) for d in (os.environ.get("EMOCORE_DEMO_DIR"), os.path.join("cache", "demo-ads")) if d
)
DEFAULT_FACE_SOURCES: tuple[tuple[Path, ...], ...] = tuple(
    tuple(d / name for d in _DEMO_DIRS) for name in ("Megamind.avi", "carphone.mp4")
)


# --------------------------------------------------------------------------
# internals
# --------------------------------------------------------------------------


def _prepare(path: PathLike) -> Path:
    """Return ``path`` as a Path, creating its parent directory."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _n_frames(seconds: float, fps: int) -> int:
    """Number of frames of a ``seconds`` long clip at ``fps`` (at least 1)."""
    return max(1, round(seconds * fps))


def _texture(height: int, width: int, seed: int, amplitude: int = 6) -> np.ndarray:
    """A zero-mean int16 noise tile of shape (height+64, width+64, 3) for a moving texture."""
    rng = np.random.default_rng(seed)
    return rng.integers(-amplitude, amplitude + 1, size=(height + 64, width + 64, 3), dtype=np.int16)


def _textured(base: np.ndarray, tile: np.ndarray, i: int) -> np.ndarray:
    """``base`` (H, W, 3 int16) plus the noise tile shifted by frame index ``i``, as uint8."""
    h, w = base.shape[:2]
    dy, dx = (i * 1) % 64, (i * 2) % 64
    return np.clip(base + tile[dy : dy + h, dx : dx + w], 0, 255).astype(np.uint8)


def _add_video_stream(
    container: av.container.OutputContainer,
    *,
    size: tuple[int, int],
    fps: int,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    gop: int | None = None,
    threads: int = 1,
) -> av.video.stream.VideoStream:
    """Add a CFR yuv420p video stream of ``size`` (w, h) at ``fps`` to ``container``.

    ``threads`` is the encoder thread count (0 = auto).  With PyAV's bundled
    x264, repeated encodes of identical frames are byte-identical only with
    ``threads=1`` AND ``mbtree=0`` (slice or frame threading, or single-thread
    with macroblock-tree rate control, occasionally give a different
    bitstream), so ``threads=1`` also turns mbtree off.  B-frames stay on
    (x264 ``veryfast`` defaults), so decode order != display order.
    """
    stream = container.add_stream(codec, rate=fps)
    stream.codec_context.thread_type = "FRAME"
    stream.codec_context.thread_count = threads
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, fps)
    stream.codec_context.time_base = Fraction(1, fps)
    stream.codec_context.gop_size = gop if gop is not None else 2 * fps
    opts: dict[str, str] = {}
    if codec in ("libx264", "h264"):
        opts["preset"] = "veryfast"
        if threads == 1:
            opts["x264-params"] = "mbtree=0"
    opts.update(options or {})
    stream.codec_context.options = opts
    return stream


def _encode_video(
    path: Path,
    frames: Iterable[np.ndarray],
    *,
    size: tuple[int, int],
    fps: int,
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    faststart: bool = False,
    rotation_ccw: int | None = None,
    gop: int | None = None,
    pixel_format: str = "rgb24",
    threads: int = 1,
) -> Path:
    """Encode the RGB (or ``pixel_format``) arrays in ``frames`` as a video-only file at ``path``."""
    container_options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=container_options) as container:
        stream = _add_video_stream(
            container, size=size, fps=fps, codec=codec, options=options, gop=gop, threads=threads
        )
        if rotation_ccw is not None:
            stream.set_display_rotation(rotation_ccw)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format=pixel_format)
            if pixel_format != "yuv420p":
                frame = frame.reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


# --------------------------------------------------------------------------
# synthetic clips
# --------------------------------------------------------------------------


def cut_frame_indices(cuts: Sequence[float], fps: int) -> list[int]:
    """Index of the first frame of each new shot for cut times ``cuts`` at ``fps``.

    A cut at ``t`` seconds starts at frame ``ceil(t * fps)``: the first frame
    whose presentation time is ``>= t`` (exactly ``t`` when ``t`` is a multiple
    of ``1 / fps``).
    """
    return [math.ceil(c * fps - 1e-9) for c in cuts]


def color_cut_clip(
    path: PathLike,
    *,
    seconds: float = 4.0,
    cut_at: float = 2.0,
    cuts: Sequence[float] | None = None,
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
    colors: Sequence[RGB] = ((200, 30, 30), (30, 30, 200)),
    codec: str = "libx264",
    faststart: bool = False,
    seed: int = 0,
) -> Path:
    """Solid-colour shots separated by hard cuts at known times.

    The clip has ``round(seconds * fps)`` frames of ``size`` = (width, height)
    at ``fps``, no audio.  Shot ``k`` (k = 0, 1, ...) is filled with
    ``colors[k % len(colors)]`` (RGB) plus a zero-mean +/-6 noise texture that
    moves 1 px down / 2 px right per frame (so the encoder sees motion and
    per-frame RGB means stay within a few units of the nominal colour).
    The shot boundaries are ``cuts`` if given (strictly increasing, inside
    ``(0, seconds)``), else the single cut ``(cut_at,)``; shot ``k + 1``
    starts at frame ``ceil(cuts[k] * fps)`` (see :func:`cut_frame_indices`),
    i.e. exactly at ``cuts[k]`` seconds when that lies on the frame grid.
    With the defaults: frames 0-49 red (200, 30, 30), frames 50-99 blue
    (30, 30, 200), cut at exactly 2.0 s.  ``codec`` is any PyAV video encoder
    (e.g. ``"mpeg4"`` for ``.avi``); the container follows the file suffix.
    """
    p = _prepare(path)
    boundaries = tuple(cuts) if cuts is not None else (cut_at,)
    if list(boundaries) != sorted(set(boundaries)) or not all(0 < c < seconds for c in boundaries):
        raise ValueError(f"cuts must be strictly increasing inside (0, {seconds}): {boundaries}")
    if len(colors) < 2:
        raise ValueError("need at least two colours")
    width, height = size
    n = _n_frames(seconds, fps)
    starts = cut_frame_indices(boundaries, fps)
    bases = [np.full((height, width, 3), c, dtype=np.int16) for c in colors]
    tile = _texture(height, width, seed)

    def frames() -> Iterator[np.ndarray]:
        """The ``n`` RGB frames: shot colour chosen by the cut frame indices."""
        for i in range(n):
            shot = sum(1 for s in starts if i >= s)
            yield _textured(bases[shot % len(bases)], tile, i)

    return _encode_video(p, frames(), size=size, fps=fps, codec=codec, faststart=faststart)


def one_frame_clip(
    path: PathLike,
    *,
    size: tuple[int, int] = (320, 240),
    color: RGB = (40, 160, 40),
    fps: int = 25,
) -> Path:
    """An MP4 (H.264) with exactly one video frame: ``size`` filled with ``color`` plus light noise, no audio.

    Stream duration is one frame (``1 / fps`` seconds).
    """
    p = _prepare(path)
    width, height = size
    frame = _textured(np.full((height, width, 3), color, dtype=np.int16), _texture(height, width, 1), 0)
    return _encode_video(p, [frame], size=size, fps=fps)


def rotated_clip(
    path: PathLike,
    rotation: int = 90,
    *,
    size: tuple[int, int] = (320, 180),
    seconds: float = 1.0,
    fps: int = 25,
) -> Path:
    """A phone-style clip: encoded landscape with display-matrix rotation metadata.

    The H.264 stream is encoded at ``size`` (default 320x180, width x height),
    ``round(seconds * fps)`` frames, no audio.  Every encoded frame is dark
    grey (40) with light moving noise and a WHITE (255) block covering the
    top-left quarter of the encoded picture: rows ``[0, h//4)``, columns
    ``[0, w//4)``.

    ``rotation`` is the CLOCKWISE angle (0, 90, 180, 270; -90 == 270) a player
    turns the picture by for display.  It is written as the stream's
    DISPLAYMATRIX side data via ``VideoStream.set_display_rotation(-rotation)``
    (PyAV takes the counter-clockwise angle); the mp4 muxer stores it in the
    ``tkhd`` matrix (for 90: a=0, b=1, c=-1, d=0, the iPhone portrait matrix).

    Reading back with PyAV: every decoded frame has
    ``frame.rotation == -rotation`` normalised into [-180, 180)
    (90 -> -90, 180 -> -180, 270 -> 90), also available as
    ``frame.side_data[av.sidedata.sidedata.Type.DISPLAYMATRIX]``; the
    stream metadata has no ``rotate`` key.  Decoded pixels stay in encoded
    (landscape) orientation.  After correct rotation to display orientation
    the white block is in the:

    * 90 (default): TOP-RIGHT corner of the 180x320 portrait picture
      (rows ``[0, w//4)``, columns ``[h - h//4, h)``);
    * 270 / -90: BOTTOM-LEFT corner of the portrait picture;
    * 180: BOTTOM-RIGHT corner of the landscape picture;
    * 0: TOP-LEFT (no rotation metadata is written for 0).

    Every wrong transform (other direction, transpose, flips) puts it in a
    different corner or gives the wrong aspect.
    """
    rot = rotation % 360
    if rot not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be a multiple of 90, got {rotation}")
    p = _prepare(path)
    width, height = size
    base = np.full((height, width, 3), 40, dtype=np.int16)
    base[: height // 4, : width // 4] = 255
    tile = _texture(height, width, 2, amplitude=4)
    frames = (_textured(base, tile, i) for i in range(_n_frames(seconds, fps)))
    ccw = None if rot == 0 else (-rot if rot <= 180 else 360 - rot)  # 90 -> -90, 180 -> -180, 270 -> 90
    return _encode_video(p, frames, size=size, fps=fps, rotation_ccw=ccw)


def big_clip(
    path: PathLike,
    size: tuple[int, int] = (3840, 2160),
    seconds: float = 1.0,
    fps: int = 25,
) -> Path:
    """A large-resolution (default 4K UHD 3840x2160) H.264 clip, no audio.

    ``round(seconds * fps)`` frames (25 by default): a static horizontal grey
    ramp with a white square (side h/8) moving left to right by w/64 px per
    frame.  Encoded with x264 ``ultrafast`` straight from yuv420p planes to
    stay cheap (about 1 s for the default).
    """
    p = _prepare(path)
    width, height = size
    if width % 2 or height % 2:
        raise ValueError("size must be even for yuv420p")
    ramp = np.linspace(16, 235, width, dtype=np.float32).astype(np.uint8)
    y_base = np.broadcast_to(ramp, (height, width))
    chroma = np.full((height // 2, width), 128, dtype=np.uint8)  # U and V planes stacked
    side = height // 8

    def frames() -> Iterator[np.ndarray]:
        """yuv420p frames (H*3/2, W): ramp luma with the moving square, neutral chroma."""
        for i in range(_n_frames(seconds, fps)):
            y = y_base.copy()
            x0 = (i * (width // 64)) % max(1, width - side)
            y[height // 2 - side // 2 : height // 2 + side // 2, x0 : x0 + side] = 235
            yield np.concatenate([y, chroma])

    return _encode_video(
        p, frames(), size=size, fps=fps, options={"preset": "ultrafast"}, pixel_format="yuv420p"
    )


def with_audio_clip(
    path: PathLike,
    *,
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
    sample_rate: int = 44100,
    audio_first: bool = True,
) -> Path:
    """An MP4 with an H.264 video stream AND an AAC audio stream.

    Video: ``round(seconds * fps)`` frames of ``size``, mid-grey (128) with
    moving noise.  Audio: mono 440 Hz sine at -12 dBFS, ``sample_rate`` Hz,
    covering the same duration (AAC priming may add ~1024 samples).  With
    ``audio_first`` (default) the AUDIO stream is stream index 0 and video is
    index 1, so a reader that blindly takes ``streams[0]`` fails; select
    ``container.streams.video[0]``.
    """
    p = _prepare(path)
    width, height = size
    n_video = _n_frames(seconds, fps)
    base = np.full((height, width, 3), 128, dtype=np.int16)
    tile = _texture(height, width, 3)
    with av.open(str(p), "w") as container:
        if audio_first:
            astream = container.add_stream("aac", rate=sample_rate, layout="mono")
            vstream = _add_video_stream(container, size=size, fps=fps)
        else:
            vstream = _add_video_stream(container, size=size, fps=fps)
            astream = container.add_stream("aac", rate=sample_rate, layout="mono")
        astream.time_base = Fraction(1, sample_rate)
        chunk = 1024  # AAC frame size
        total_samples = round(seconds * sample_rate)
        sent = 0

        def push_audio(until_sample: int) -> None:
            """Encode and mux 1024-sample sine chunks up to sample ``until_sample`` (capped at the end)."""
            nonlocal sent
            while sent < min(until_sample, total_samples):
                count = min(chunk, total_samples - sent)
                t = (np.arange(sent, sent + count) / sample_rate).astype(np.float64)
                samples = (0.25 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None, :]
                aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                aframe.sample_rate = sample_rate
                aframe.pts = sent
                aframe.time_base = Fraction(1, sample_rate)
                container.mux(astream.encode(aframe))
                sent += count

        for i in range(n_video):
            push_audio(round((i + 1) * sample_rate / fps))
            vframe = av.VideoFrame.from_ndarray(_textured(base, tile, i), format="rgb24")
            vframe.pts = i
            vframe.time_base = Fraction(1, fps)
            container.mux(vstream.encode(vframe))
        push_audio(total_samples)
        container.mux(vstream.encode(None))
        container.mux(astream.encode(None))
    return p


# --------------------------------------------------------------------------
# derived / broken files
# --------------------------------------------------------------------------


def truncated_copy(src: PathLike, dst: PathLike, keep_fraction: float = 0.5) -> Path:
    """Copy only the first ``int(size * keep_fraction)`` bytes of ``src`` to ``dst``.

    Behaviour with this module's H.264 MP4 clips (checked in tests/test_media.py):

    * default MP4 (``moov`` index at the END): the index is cut off, so
      ``av.open(dst)`` itself raises ``av.error.InvalidDataError``
      ("moov atom not found"), for any ``keep_fraction < 1``;
    * ``faststart=True`` MP4 (``moov`` at the start): ``av.open`` succeeds
      and still reports the ORIGINAL frame count and duration (they come from
      the index), but only a prefix of the frames exists: decoding yields
      roughly ``keep_fraction`` of the frames, pixel-identical to the
      original, and then, because the last packet is cut mid-way, RAISES
      ``av.error.InvalidDataError`` ("avcodec_send_packet()") from
      ``container.decode``.  (If the cut happened to fall exactly on a packet
      boundary decoding would just end early; with a very small fraction the
      first keyframe itself is cut and zero frames decode before the error.)
    """
    if not 0.0 <= keep_fraction <= 1.0:
        raise ValueError("keep_fraction must be in [0, 1]")
    out = _prepare(dst)
    data = Path(src).read_bytes()
    out.write_bytes(data[: int(len(data) * keep_fraction)])
    return out


def _video_packet_spans(path: Path) -> list[tuple[int, int]]:
    """(byte offset, size) of every non-empty packet of the first video stream, in decode order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(p.pos, p.size) for p in container.demux(stream) if p.size and p.pos is not None and p.pos >= 0]


def corrupt_middle_copy(
    src: PathLike,
    dst: PathLike,
    seed: int = 0,
    *,
    span: tuple[float, float] = (0.4, 0.7),
) -> Path:
    """Copy ``src`` to ``dst`` with random bytes overwriting the middle video packets.

    ``src`` must be a video PyAV can demux.  With ``n`` video packets (decode
    order), every byte from the start of packet ``floor(span[0] * n)`` to the
    end of packet ``floor(span[1] * n) - 1`` (default: packets 40 %-70 %, plus
    any audio interleaved between them) is replaced by
    ``numpy.random.default_rng(seed)`` bytes.  Container header and index
    (``ftyp``/``moov`` for MP4, wherever they are), the first 40 % and the
    last 30 % of the packets are untouched; the file size is unchanged.  If
    the file has fewer than 3 video packets, or PyAV cannot locate them,
    ``span`` is applied to the whole file's bytes instead.

    Behaviour with this module's H.264 MP4 clips (checked in
    tests/test_media.py): ``av.open`` succeeds and stream info (frame count,
    duration, size) is unchanged; ``container.decode(video=0)`` yields the
    first frames pixel-identical to the original (at least the first ~35 %)
    and then RAISES ``av.error.InvalidDataError`` ("avcodec_send_packet()" /
    "Error splitting the input into NAL units") at the first damaged packet,
    which ends the generator.  Decoding packet by packet
    (``for pkt in container.demux(video=0): pkt.decode()`` with the error
    caught per packet) skips the damaged packets and resumes, so more frames
    come out but fewer than the original count.
    """
    data = bytearray(Path(src).read_bytes())
    try:
        packets = _video_packet_spans(Path(src))
    except (av.error.FFmpegError, IndexError):
        packets = []
    if len(packets) >= 3:
        i0 = int(span[0] * len(packets))
        chosen = packets[i0 : max(i0 + 1, int(span[1] * len(packets)))]
        lo = min(pos for pos, _ in chosen)
        hi = min(len(data), max(pos + size for pos, size in chosen))
    else:
        lo, hi = int(len(data) * span[0]), int(len(data) * span[1])
    data[lo:hi] = np.random.default_rng(seed).integers(0, 256, size=hi - lo, dtype=np.uint8).tobytes()
    out = _prepare(dst)
    out.write_bytes(bytes(data))
    return out


def text_as_video(path: PathLike) -> Path:
    """A plain-text file (a few lines of ASCII, no video at all), typically named ``*.mp4``."""
    p = _prepare(path)
    p.write_text("This is not a video.\nIt is a text file with a video extension.\n" * 4)
    return p


def zero_byte(path: PathLike) -> Path:
    """An empty (0-byte) file, typically named ``*.mp4``."""
    p = _prepare(path)
    p.write_bytes(b"")
    return p


# --------------------------------------------------------------------------
# benchmark footage
# --------------------------------------------------------------------------


def _video_info(path: Path) -> tuple[int, int, int, Fraction] | None:
    """(width, height, frame count, average rate) of the first video stream, or None if unreadable."""
    try:
        with av.open(str(path)) as container:
            s = container.streams.video[0]
            return s.width, s.height, s.frames, Fraction(s.average_rate or 0)
    except (av.error.FFmpegError, IndexError, OSError):
        return None


def _default_face_sources() -> list[Path]:
    """The first existing file of each group of :data:`DEFAULT_FACE_SOURCES`."""
    found = []
    for group in DEFAULT_FACE_SOURCES:
        for candidate in group:
            if candidate.is_file():
                found.append(candidate)
                break
    return found


def _letterbox(frame: av.VideoFrame, width: int, height: int, fit: str) -> np.ndarray:
    """``frame`` scaled to (width, height) RGB: whole picture on black bars, or cover-and-crop for ``fit="fill"``."""
    scale = (min if fit == "letterbox" else max)(width / frame.width, height / frame.height)
    sw = max(2, round(frame.width * scale / 2) * 2)
    sh = max(2, round(frame.height * scale / 2) * 2)
    scaled = frame.reformat(width=sw, height=sh, format="rgb24", interpolation="BICUBIC").to_ndarray()
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    # centre: paste (letterbox) or crop (fill)
    src_y, dst_y = max(0, (sh - height) // 2), max(0, (height - sh) // 2)
    src_x, dst_x = max(0, (sw - width) // 2), max(0, (width - sw) // 2)
    h, w = min(sh, height), min(sw, width)
    canvas[dst_y : dst_y + h, dst_x : dst_x + w] = scaled[src_y : src_y + h, src_x : src_x + w]
    return canvas


def face_clip_720p(
    path: PathLike,
    seconds: float = 30.0,
    sources: Sequence[PathLike] | None = None,
    *,
    fps: int = 30,
    size: tuple[int, int] = (1280, 720),
    fit: str = "letterbox",
    crf: int = 23,
    preset: str = "fast",
) -> Path:
    """Benchmark clip from real footage with faces: 1280x720 H.264, yuv420p, CFR, no audio.

    ``round(seconds * fps)`` frames (900 = 30 s at 30 fps by default).  The
    ``sources`` (default: Megamind.avi then carphone, found via
    :data:`DEFAULT_FACE_SOURCES`) are decoded in order, each resampled to
    ``fps`` by time (frames repeated or dropped, so playback speed is
    unchanged), scaled to ``size`` — ``fit="letterbox"`` keeps the whole
    picture centred on black bars, ``"fill"`` covers the frame and crops the
    overflow — and concatenated, looping over the sources until the clip is
    full; the last source pass is cut wherever the duration ends.  Encoded
    with libx264 ``crf`` 23, ``preset`` fast, GOP 2 s (``2 * fps`` frames),
    ``faststart`` (moov at the start, like web ads).  Takes ~20-60 s on two
    cores for the default 30 s.

    Cache-friendly: if ``path`` already holds a readable video of the right
    size, frame rate and frame count it is returned untouched.  The file is
    written to ``<path>.partial.mp4`` and renamed, so an interrupted run leaves no
    half file at ``path``.
    """
    if fit not in ("letterbox", "fill"):
        raise ValueError("fit must be 'letterbox' or 'fill'")
    p = _prepare(path)
    width, height = size
    n_out = _n_frames(seconds, fps)
    if p.is_file() and _video_info(p) == (width, height, n_out, Fraction(fps)):
        return p
    srcs = [Path(s) for s in sources] if sources is not None else _default_face_sources()
    if not srcs:
        raise FileNotFoundError("no source footage found: run `python cli.py setup` or pass sources=[...]")
    for s in srcs:
        if not s.is_file():
            raise FileNotFoundError(s)

    def frames() -> Iterator[np.ndarray]:
        """Exactly ``n_out`` letterboxed RGB frames, cycling through the sources."""
        produced = 0
        while True:
            before = produced
            for src in srcs:
                with av.open(str(src)) as container:
                    stream = container.streams.video[0]
                    stream.thread_type = "AUTO"
                    rate = Fraction(stream.average_rate or stream.guessed_rate or fps)
                    k = 0  # output frames emitted from this source
                    for i, frame in enumerate(container.decode(stream)):
                        # output frame k of this source shows source frame floor(k * rate / fps)
                        picture = None
                        while math.floor(k * rate / fps) == i:
                            if picture is None:
                                picture = _letterbox(frame, width, height, fit)
                            yield picture
                            produced += 1
                            k += 1
                            if produced >= n_out:
                                return
            if produced == before:
                raise ValueError(f"no decodable frames in {srcs}")

    tmp = p.with_name(p.name + ".partial.mp4")
    try:
        _encode_video(
            tmp,
            frames(),
            size=size,
            fps=fps,
            options={"crf": str(crf), "preset": preset},
            faststart=True,
            gop=2 * fps,
            threads=0,
        )
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


__all__ = [
    "DEFAULT_FACE_SOURCES",
    "big_clip",
    "color_cut_clip",
    "corrupt_middle_copy",
    "cut_frame_indices",
    "face_clip_720p",
    "one_frame_clip",
    "rotated_clip",
    "text_as_video",
    "truncated_copy",
    "with_audio_clip",
    "zero_byte",
]
