"""A demo ad with a real soundtrack: demo footage re-encoded (H.264 + AAC) with real laughter and applause
muxed at known times, so a new user sees audio lanes on the first run.

    made = build_demo_ad("cache/demo-ads/Megamind-laughs.mp4", "cache/demo-ads/Megamind.avi")
    made.laughter_s, made.applause_s        # (start, end) of each sound on the file's timeline

The sounds are real recordings from Debian packages (`emocore.devtools.audio_media.recording`:
downloaded once with `apt-get download`, SHA-256 pinned, cached): three hedgewars voice laughs
(hedgewars-data 1.0.2-6, GFDL-1.3) joined into one 4.1 s laughing moment, and 4.9 s of applause
(foobillardplus-data 3.43~svn170+dfsg-7, GPL-2). The footage's own soundtrack is replaced: silence
elsewhere, so the lanes show exactly these two moments. The file is written atomically (a partial
file renamed into place) and its content is a pure function of the arguments.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from emocore.devtools import audio_media

LAUGHS = ("laugh_mobster.ogg", "laugh_surfer.ogg", "laugh_default.ogg")
APPLAUSE = "applause.wav"
#: The demo's file name in the demo folder, and its source footage.
DEMO_NAME = "Megamind-laughs.mp4"
DEMO_SOURCE = "Megamind.avi"
RATE = 48000


@dataclass(frozen=True)
class DemoSoundtrack:
    """A built demo ad and where its sounds are (seconds on the file's timeline)."""

    path: Path
    duration_s: float
    laughter_s: tuple[float, float]
    applause_s: tuple[float, float]


def soundtrack(duration_s: float, laughter_at_s: float, applause_at_s: float, rate: int = RATE,
               laughs: Sequence[str] = LAUGHS) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """[2, n] float32 stereo: the joined laughs at `laughter_at_s`, the applause at `applause_at_s`, silence
    elsewhere (each cut at the end, summed where they overlap); with the (start, end) of each.
    `laughs`: which recordings of `audio_media.RECORDINGS` are joined (default: the three voices)."""
    laugh = np.concatenate([audio_media.read_pcm(audio_media.recording(n), rate=rate) for n in laughs])
    applause = audio_media.read_pcm(audio_media.recording(APPLAUSE), rate=rate)
    total = int(round(duration_s * rate))
    mono = np.zeros(total, np.float32)
    spans = []
    for sound, at in ((laugh, laughter_at_s), (applause, applause_at_s)):
        a = int(round(at * rate))
        b = min(total, a + sound.size)
        if not 0 <= a < total:
            raise ValueError(f"a sound at {at} s falls outside the {duration_s:.2f} s footage")
        mono[a:b] += sound[:b - a]
        spans.append((a / rate, b / rate))
    mono = np.clip(mono, -1.0, 1.0)
    return np.stack([mono, mono]), spans[0], spans[1]


def build_demo_ad(out: Path | str, video: Path | str, *, laughter_at_s: float = 1.5, applause_at_s: float = 6.5,
                  rate: int = RATE, laughs: Sequence[str] = LAUGHS) -> DemoSoundtrack:
    """Re-encode `video`'s frames as H.264 (yuv420p, its frame rate) with a 48 kHz stereo AAC soundtrack
    of real laughter and applause (see the module docstring); returns where the sounds are.

    Raises RuntimeError when the recordings cannot be fetched (apt-get), av's errors for unreadable footage.
    """
    out = Path(out)
    with av.open(str(video)) as source:
        stream = source.streams.video[0]
        fps = Fraction(stream.average_rate or 25)
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(stream)]
    if not frames:
        raise ValueError(f"{video} holds no video frame")
    duration = len(frames) / float(fps)
    channels, laughter, applause = soundtrack(duration, laughter_at_s, applause_at_s, rate, laughs)
    height, width = (s - s % 2 for s in frames[0].shape[:2])
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".partial.mp4")
    with av.open(str(part), "w", options={"movflags": "+faststart"}) as target:
        vout = target.add_stream("libx264", rate=fps)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.codec_context.options = {"preset": "veryfast", "crf": "23"}
        aout = target.add_stream("aac", rate=rate, layout="stereo")
        aout.bit_rate = 128000
        aout.time_base = Fraction(1, rate)
        sent = 0
        for i, rgb in enumerate(frames):
            while sent < channels.shape[1] and sent / rate <= i / float(fps):
                block = np.ascontiguousarray(channels[:, sent:sent + 1024])
                aframe = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                aframe.sample_rate, aframe.pts, aframe.time_base = rate, sent, Fraction(1, rate)
                target.mux(aout.encode(aframe))
                sent += block.shape[1]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:height, :width]), format="rgb24")
            frame.pts, frame.time_base = i, 1 / fps
            target.mux(vout.encode(frame))
        while sent < channels.shape[1]:
            block = np.ascontiguousarray(channels[:, sent:sent + 1024])
            aframe = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            aframe.sample_rate, aframe.pts, aframe.time_base = rate, sent, Fraction(1, rate)
            target.mux(aout.encode(aframe))
            sent += block.shape[1]
        target.mux(vout.encode(None))
        target.mux(aout.encode(None))
    os.replace(part, out)
    return DemoSoundtrack(path=out, duration_s=duration, laughter_s=laughter, applause_s=applause)


__all__ = ["APPLAUSE", "DEMO_NAME", "DEMO_SOURCE", "LAUGHS", "DemoSoundtrack", "build_demo_ad", "soundtrack"]
