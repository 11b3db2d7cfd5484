"""The browser preview's cost against `index`: a 30 s 1280×720 AVI (MPEG-4 part 2 video, AC-3 stereo sound).

    python benchmarks/bench_preview.py [--repeat 3] [--threads 1]

Prints, in one run: the proxy alone (`emocore.preview.encode_preview`: decode, scale, x264 with the
default `PreviewParams`, AAC; median of `--repeat`) with its size; then `index` on the clip (the face model, no
explanations, a fresh cache each time; with and without the soundtrack) without the proxy
(`--no-preview`) and with it, and the ratio of the proxy's cost to the index without it. The machine
is shared and noisy: read the ratios.

The clip is built once (kept in cache/bench/): the 720p footage with a soundtrack that bench_audio.py
builds (cache/bench/face_720p_30s_aac48k.mp4; else bench_index.py's silent footage with a tone),
re-encoded as an AVI the way old archives hold them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from timing import median_time  # beside this script

from emocore.devtools import media
from emocore.indexer import index_folder
from emocore.models import load_model
from emocore.preview import PreviewParams, encode_preview

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "cache" / "bench"


def avi_clip() -> Path:
    """cache/bench/face_720p_30s.avi: MPEG-4 part 2 video (4 Mb/s) and AC-3 48 kHz stereo, 30 s 1280×720."""
    target = BENCH / "face_720p_30s.avi"
    if target.is_file():
        return target
    source = BENCH / "face_720p_30s_aac48k.mp4"
    if not source.is_file():
        source = media.face_clip_720p(BENCH / "face_720p_30s.mp4")
    partial = target.with_suffix(".partial.avi")
    with av.open(str(source)) as inp, av.open(str(partial), "w", format="avi") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("mpeg4", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt, vout.bit_rate = vin.width, vin.height, "yuv420p", 4_000_000
        count = 0
        for count, frame in enumerate(inp.decode(vin), 1):
            frame.pts, frame.time_base = count - 1, Fraction(1) / vin.average_rate
            out.mux(vout.encode(frame.reformat(format="yuv420p")))
        out.mux(vout.encode(None))
        seconds = count / float(vin.average_rate)
    _add_sound(partial, source, seconds)
    partial.rename(target)
    return target


def _add_sound(path: Path, source: Path, seconds: float) -> None:
    """Remux `path`'s video with the source's sound (or a tone) encoded as AC-3 into the same file."""
    staged = path.with_suffix(".sound.avi")
    with av.open(str(path)) as video, av.open(str(source)) as sound, av.open(str(staged), "w", format="avi") as out:
        vin = video.streams.video[0]
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream("ac3", rate=48_000, layout="stereo")
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48_000)
        if sound.streams.audio:
            chunks = [c for f in sound.decode(sound.streams.audio[0]) for c in resampler.resample(f)]
        else:
            t = np.arange(int(seconds * 48_000)) / 48_000
            tone = np.tile((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), (2, 1))
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
            frame.sample_rate = 48_000
            chunks = resampler.resample(frame)
        sent = 0
        for chunk in chunks:
            chunk.pts, chunk.time_base = sent, Fraction(1, 48_000)
            sent += chunk.samples
            out.mux(aout.encode(chunk))
        out.mux(aout.encode(None))
        for packet in video.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)
    staged.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads for the index runs")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    clip = avi_clip()
    with av.open(str(clip)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        print(f"clip: {clip.name}: {v.codec_context.name} {v.width}×{v.height}, {a.codec_context.name} "
              f"{a.rate} Hz, {c.duration / 1e6:.1f} s, {clip.stat().st_size / 1e6:.1f} MB")
    with tempfile.TemporaryDirectory() as scratch:
        made = []
        cpu = time.process_time()
        proxy_s = median_time(lambda: made.append(encode_preview(clip, Path(scratch) / "p.mp4", PreviewParams())),
                              args.repeat)
        proxy_cpu = (time.process_time() - cpu) / args.repeat
        info = made[-1]
        print(f"proxy alone: {proxy_s:.2f} s wall (median of {args.repeat}), {proxy_cpu:.2f} s CPU (mean); "
              f"{info.width}×{info.height} H.264 + AAC, {info.size_bytes / 1e6:.1f} MB "
              f"({info.size_bytes * 8 / info.duration_s / 1e6:.2f} Mb/s), {info.duration_s:.2f} s")
        model = load_model("fer")
        try:
            for audio in (False, True):
                times: dict[str, float] = {}
                cpus: dict[str, float] = {}
                shares = []
                for preview in (None, PreviewParams()):
                    start, cpu = time.perf_counter(), time.process_time()
                    report = index_folder(clip, Path(tempfile.mkdtemp(dir=scratch)), model=model, explain=None,
                                          audio=audio, preview=preview)
                    times["with" if preview else "without"] = time.perf_counter() - start
                    cpus["with" if preview else "without"] = time.process_time() - cpu
                    shares.append(report.outcomes[0].preview_s)
                label = "faces + soundtrack" if audio else "faces only"
                print(f"index ({label}, no explanations): --no-preview {times['without']:.1f} s wall / "
                      f"{cpus['without']:.1f} s CPU; with the proxy {times['with']:.1f} s / {cpus['with']:.1f} s CPU "
                      f"({shares[1]:.1f} s wall of it): proxy ÷ index = {shares[1] / times['without']:.2f} wall, "
                      f"{(cpus['with'] - cpus['without']) / cpus['without']:.2f} CPU")
        finally:
            model.close()


if __name__ == "__main__":
    main()
