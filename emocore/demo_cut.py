"""A real second cut of a demo ad, for the Versions view (`setup` makes it): shots dropped and
reordered, re-encoded.

`build_demo_cut(source, out)` finds the source's shots with the indexer's own detector
(`emocore.shots.ShotDetector` fed by `Video.sample`, the same pass and parameters as `index`), then
writes the shots `DEMO_CUT_PLAN` names, in that order, as H.264 (yuv420p, the source's frame rate)
with the matching stretches of its soundtrack as 48 kHz stereo AAC. Made once (an existing file is
left alone) and atomically (written beside the target, then renamed).

The known edit list of `setup`'s cut of Megamind.avi (4 shots: cuts at about 4.13, 6.46 and 8.38 s):
the cut is shots 1, 3, 2 of the source: shot 1 kept, shots 2 and 3 swapped (shot 2, the longer one,
stays on the in-order run: kept; shot 3 moved), shot 4 cut, nothing added (`DemoCut.expected`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from emocore.errors import EmocoreError
from emocore.files import temp_path
from emocore.params import IndexParams
from emocore.shots import ShotDetector
from emocore.versions import longest_in_order
from emocore.video import open_video

DEMO_CUT_SOURCE = "Megamind.avi"
DEMO_CUT_NAME = "Megamind_cut.mp4"
#: The source's shots (0-based) the demo cut is made of, in its order.
DEMO_CUT_PLAN: tuple[int, ...] = (0, 2, 1)
AUDIO_RATE = 48_000

log = logging.getLogger("emocore")


@dataclass(frozen=True)
class DemoCut:
    """A cut written by `build_demo_cut`: where, from which shots of the source, and what a match must find."""

    path: Path
    source_shots: tuple[tuple[float, float], ...]
    """Every shot of the source as (start_s, end_s)."""
    plan: tuple[int, ...]
    """The source's shots in the cut, in the cut's order."""
    built: bool
    """False when the file was already there."""

    def expected(self) -> dict[int, str]:
        """Per source shot (0-based) its status in a match of the cut against the source: "cut" when
        left out; among the kept ones, those off the longest in-order run (ties: the run covering most
        of the source's seconds) "moved", the rest "kept"."""
        pairs = [(a, b) for b, a in enumerate(self.plan)]
        weights = [self.source_shots[a][1] - self.source_shots[a][0] for a, _ in pairs]
        run = longest_in_order(pairs, weights)  # the same rule the matcher applies
        status = {a: "cut" for a in range(len(self.source_shots))}
        status.update({a: "kept" if k in run else "moved" for k, (a, _) in enumerate(pairs)})
        return status


def source_shots(source: Path | str, params: IndexParams = IndexParams()) -> tuple[tuple[float, float], ...]:
    """The shots of a video as (start_s, end_s), found as `index` finds them."""
    with open_video(source) as video:
        detector = ShotDetector(video.info.fps, params.shots)
        last = 0.0
        for frame in video.sample(params.sample_rate, params.max_side, on_frame=detector.feed,
                                  every_frame=params.shots.every_frame):
            last = frame.time_s
        duration = float(video.info.duration_s or last)
    starts = [0.0, *detector.boundaries()]
    return tuple(zip(starts, [*starts[1:], duration]))


def cut_video(source: Path | str, out: Path | str, spans: Sequence[tuple[float, float]]) -> Path:
    """Write the stretches `spans` ([start_s, end_s) of the source, in this order) of `source`'s
    frames and soundtrack (when it has one) to `out` (H.264 + AAC MP4), atomically."""
    out = Path(out)
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        fps = Fraction(stream.average_rate or 25)
        frames: list[tuple[float, np.ndarray]] = []
        for frame in container.decode(stream):
            if frame.time is not None:
                frames.append((float(frame.time), frame.to_ndarray(format="rgb24")))
    sound = _soundtrack(source)
    if not frames:
        raise ValueError(f"{source} holds no video frame")
    height, width = (s - s % 2 for s in frames[0][1].shape[:2])
    chosen = [rgb for a, b in spans for t, rgb in frames if a - 1e-6 <= t < b - 1e-6]
    pieces = [] if sound is None else [sound[:, round(a * AUDIO_RATE):round(b * AUDIO_RATE)] for a, b in spans]
    channels = None if sound is None else np.ascontiguousarray(np.concatenate(pieces, axis=1), dtype=np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = temp_path(out)
    try:
        with av.open(str(part), "w", format="mp4", options={"movflags": "+faststart"}) as target:
            vout = target.add_stream("libx264", rate=fps)
            vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
            vout.codec_context.options = {"preset": "veryfast", "crf": "23"}
            aout = None
            if channels is not None:
                aout = target.add_stream("aac", rate=AUDIO_RATE, layout="stereo")
                aout.bit_rate = 128000
            sent = 0
            for i, rgb in enumerate(chosen):
                while aout is not None and channels is not None and sent < channels.shape[1] \
                        and sent / AUDIO_RATE <= i / float(fps):
                    sent = _send_audio(target, aout, channels, sent)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:height, :width]), format="rgb24")
                frame.pts, frame.time_base = i, 1 / fps
                target.mux(vout.encode(frame))
            while aout is not None and channels is not None and sent < channels.shape[1]:
                sent = _send_audio(target, aout, channels, sent)
            target.mux(vout.encode(None))
            if aout is not None:
                target.mux(aout.encode(None))
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return out


def _send_audio(target: av.container.OutputContainer, stream: av.AudioStream, channels: np.ndarray, sent: int) -> int:
    block = np.ascontiguousarray(channels[:, sent:sent + 1024])
    frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, sent, Fraction(1, AUDIO_RATE)
    target.mux(stream.encode(frame))
    return sent + block.shape[1]


def _soundtrack(source: Path | str) -> np.ndarray | None:
    """(2, samples) float32 at 48 kHz from the file's start, or None without an audio track."""
    with av.open(str(source)) as container:
        if not container.streams.audio:
            return None
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        blocks = []
        for packet in container.demux(container.streams.audio[0]):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:  # a damaged packet: its stretch is left out, as players do
                continue
            for frame in decoded:
                for out in resampler.resample(frame):
                    blocks.append(out.to_ndarray())
        for out in resampler.resample(None):
            blocks.append(out.to_ndarray())
    return np.concatenate(blocks, axis=1).astype(np.float32) if blocks else None


def build_demo_cut(source: Path | str, out: Path | str, plan: Sequence[int] = DEMO_CUT_PLAN) -> DemoCut:
    """The second cut of `source` made of its shots `plan` (0-based, in the cut's order); an existing
    `out` is kept (made once). ValueError when the plan names a shot the source does not have."""
    shots = source_shots(source)
    if any(not 0 <= k < len(shots) for k in plan):
        raise ValueError(f"{Path(source).name} has {len(shots)} shots; the plan names {list(plan)}")
    out = Path(out)
    built = not out.is_file()
    if built:
        cut_video(source, out, [shots[k] for k in plan])
    return DemoCut(out, shots, tuple(plan), built)


def ensure_demo_cut(demo_dir: Path | str, report: Callable[[str], None] = log.info) -> Path | None:
    """`setup`'s step: the demo cut of Megamind.avi in `demo_dir`, made once. Returns its path, or None
    (reported) when the source clip is missing or cannot be cut: the other demo ads still stand."""
    source, target = Path(demo_dir) / DEMO_CUT_SOURCE, Path(demo_dir) / DEMO_CUT_NAME
    if target.is_file():
        return target
    if not source.is_file():
        report(f"skipped demo cut {DEMO_CUT_NAME}: its source {DEMO_CUT_SOURCE} is missing")
        return None
    report(f"building demo cut {DEMO_CUT_NAME} (shots {', '.join(str(k + 1) for k in DEMO_CUT_PLAN)} of "
           f"{DEMO_CUT_SOURCE}) for `versions`")
    try:
        return build_demo_cut(source, target).path
    except (ValueError, OSError, av.error.FFmpegError, EmocoreError) as exc:
        report(f"skipped demo cut {DEMO_CUT_NAME}: {exc}")
        return None


__all__ = ["DEMO_CUT_NAME", "DEMO_CUT_PLAN", "DEMO_CUT_SOURCE", "DemoCut", "build_demo_cut", "cut_video",
           "ensure_demo_cut", "source_shots"]
