"""Soundtracks for the tests and the audio benchmark, built at test time with PyAV, and the real
recordings they can carry (fetched from Debian packages once, cached).

Contract: every builder takes the output path first, writes exactly one file (parent folders
created) and returns it as a Path; content is a pure function of the arguments. Pure PyAV (its
bundled FFmpeg), no ffmpeg CLI.

Real recordings (`emocore.assets.recording`, re-exported here; never committed; extracted from Debian
packages with `apt-get download` and `dpkg-deb --fsys-tarfile`, SHA-256 pinned, kept in
`emocore/weights/recordings/` or `$EMOCORE_TEST_AUDIO`, so a run downloads each package at most once):

| name | package | licence |
|---|---|---|
| laugh_mobster.ogg, laugh_surfer.ogg, laugh_default.ogg | hedgewars-data 1.0.2-6 (Data/Sounds/voices/*/Laugh.ogg) | GFDL-1.3 |
| hedgewars_main_theme.ogg (upbeat), hedgewars_nature.ogg (calm) | hedgewars-data 1.0.2-6 (Data/Music/) | GPL-2 |
| applause.wav | foobillardplus-data 3.43~svn170+dfsg-7 (data/applause.wav) | GPL-2 |
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# the real recordings live with the other assets (the demo ad `setup` builds uses them too)
from emocore.assets import RECORDINGS, Recording, recording, recordings_dir  # re-exported
from emocore.provision import read_pcm  # re-exported


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.25) -> np.ndarray:
    """[n] float32 sine of `freq` Hz, n = round(seconds × rate)."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "5.1": 6, "5.1(side)": 6}


def audio_file(
    path: Path | str,
    channels: np.ndarray,
    *,
    rate: int,
    layout: str = "mono",
    codec: str = "aac",
    video: tuple[int, int, int] | None = None,
    bitrate: int | None = None,
    offset_s: float = 0.0,
    video_seconds: float | None = None,
) -> Path:
    """A file holding `channels` ([c, n] float32 in [-1, 1], c matching `layout`) as one audio stream.

    `codec`: "aac", "libopus", "pcm_s16le", … (the container comes from the file name: .mp4,
    .mkv, .wav). `video=(width, height, fps)` adds a grey H.264 video stream covering the same
    duration, muxed before the audio (interleaved as a real ad is). `offset_s` starts the audio
    stream that late on the file's timeline (its first timestamp), the video still at 0.
    `video_seconds`: the video's length when it differs from the sound's (e.g. 1 s of picture
    around a few milliseconds of sound).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = np.atleast_2d(np.asarray(channels, np.float32))
    if data.shape[0] != _LAYOUT_CHANNELS.get(layout, data.shape[0]):
        raise ValueError(f"{data.shape[0]} channels do not fit layout {layout}")
    total = data.shape[1]
    with av.open(str(p), "w") as container:
        vstream = None
        if video is not None:
            width, height, fps = video
            vstream = container.add_stream("libx264", rate=fps)
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
            vstream.codec_context.options = {"preset": "ultrafast"}
        astream = container.add_stream(codec, rate=rate, layout=layout)
        if bitrate:
            astream.bit_rate = bitrate
        astream.time_base = Fraction(1, rate)
        fmt = astream.codec_context.format.name if astream.codec_context.format else "fltp"
        planar = fmt.endswith("p")
        frame_size = astream.codec_context.frame_size or 1024
        n_video = round((total / rate if video_seconds is None else video_seconds) * video[2]) if video else 0
        grey = np.full((video[1], video[0], 3), 128, np.uint8) if video is not None else None
        sent = shown = 0
        while sent < total or shown < n_video:
            if vstream is not None and shown < n_video and (sent >= total or shown / video[2] <= sent / rate):
                frame = av.VideoFrame.from_ndarray(grey, format="rgb24")
                frame.pts, frame.time_base = shown, Fraction(1, video[2])
                container.mux(vstream.encode(frame))
                shown += 1
                continue
            block = data[:, sent:sent + frame_size]
            if fmt.startswith("s16"):
                array = np.clip(np.round(block * 32767), -32768, 32767).astype(np.int16)
            else:
                array = block.astype(np.float32)
            if not planar:
                array = array.T.reshape(1, -1)
            aframe = av.AudioFrame.from_ndarray(np.ascontiguousarray(array), format=fmt, layout=layout)
            aframe.sample_rate, aframe.time_base = rate, Fraction(1, rate)
            aframe.pts = sent + round(offset_s * rate)
            container.mux(astream.encode(aframe))
            sent += block.shape[1]
        container.mux(astream.encode(None))
        if vstream is not None:
            container.mux(vstream.encode(None))
    return p


def laugh_clip(path: Path | str, at_s: float = 2.5, seconds: float = 6.0, rate: int = 48000) -> tuple[Path, float]:
    """A `seconds` long MP4 (grey 64×48 H.264 at 10 frames/s, mono AAC at `rate`) with two real laughs
    joined (hedgewars-data voices Mobster and Surfer, 2.45 s) at `at_s` and silence around them; and
    where the laugh ends, seconds. RuntimeError when the recordings cannot be fetched."""
    laugh = np.concatenate([read_pcm(recording(n), rate=rate) for n in ("laugh_mobster.ogg", "laugh_surfer.ogg")])
    sound = np.zeros(int(seconds * rate), np.float32)
    start = int(at_s * rate)
    sound[start:start + laugh.size] = laugh[:max(0, sound.size - start)]
    return audio_file(path, sound[None], rate=rate, video=(64, 48, 10)), at_s + laugh.size / rate


def video_only(path: Path | str, seconds: float = 1.0, size: tuple[int, int] = (64, 48), fps: int = 10) -> Path:
    """An MP4 with a grey H.264 video stream and no audio stream at all."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(p), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast"}
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 128, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return p


def empty_audio_track(path: Path | str, size: tuple[int, int] = (64, 48), fps: int = 10) -> Path:
    """A Matroska file with 1 s of grey H.264 video and a declared AAC stereo stream holding no packet."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(p), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        audio = container.add_stream("aac", rate=48000, layout="stereo")
        for i in range(fps):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 128, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        container.mux(audio.encode(None))
    return p


def _audio_packet_spans(path: Path) -> list[tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [(p.pos, p.size) for p in container.demux(stream) if p.size and p.pos is not None and p.pos >= 0]


def damaged_audio_copy(src: Path | str, dst: Path | str, *, span: tuple[float, float] = (0.4, 0.6),
                       seed: int = 0, every: int = 1) -> Path:
    """A copy of `src` with the payload of audio packets in `span` (fractions of the packet list;
    every `every`-th one) overwritten with seeded random bytes; headers, index, video and the
    other packets untouched, size unchanged."""
    data = bytearray(Path(src).read_bytes())
    packets = _audio_packet_spans(Path(src))
    chosen = packets[int(span[0] * len(packets)):max(int(span[0] * len(packets)) + 1, int(span[1] * len(packets)))]
    rng = np.random.default_rng(seed)
    for pos, size in chosen[::every]:
        data[pos:pos + size] = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(data))
    return out


def dropped_audio_copy(src: Path | str, dst: Path | str, *, drop: tuple[float, float]) -> Path:
    """A remux of `src` (audio only) without the packets whose time falls in `drop` (seconds)."""
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as source, av.open(str(out), "w") as target:
        in_stream = source.streams.audio[0]
        out_stream = target.add_stream_from_template(in_stream)
        for packet in source.demux(in_stream):
            if packet.dts is None:
                continue
            t = float(packet.pts * in_stream.time_base) if packet.pts is not None else None
            if t is not None and drop[0] <= t < drop[1]:
                continue
            packet.stream = out_stream
            target.mux(packet)
    return out


__all__ = ["RECORDINGS", "Recording", "audio_file", "damaged_audio_copy", "dropped_audio_copy", "empty_audio_track", "laugh_clip",
           "read_pcm", "recording", "recordings_dir", "tone", "video_only"]
