"""Soundtrack speed against the video's floor: a 30 s 1280×720 H.264 ad with a 48 kHz stereo AAC track.

    python benchmarks/bench_audio.py [--repeat 3] [--threads 1]

Prints, in one run: the time to fully decode the clip's video (the floor: PyAV, frame-threaded,
every frame, as bench_index.py measures it), then each step of the soundtrack alone and as a
ratio of that floor: decoding (demux + AAC decode + resampling to 16 kHz mono), YAMNet's log-mel
front end, the model (62 patches, one per call), and their sum (target ≤ 0.25×); and the cost of
decoding the soundtrack inside the video's own demux pass (video + audio packets in one pass,
against the video alone; the target for `index` with audio is ≤ 1.15×); then the per-second lanes
(`emocore.audio.lanes`) and one explanation of the loudest laughter second with the default
parameters (`emocore.audio.explain`), as ratios of the same floor. Medians of `--repeat`
runs; the machine is shared and noisy, so read the ratios. Last, `index` itself on the clip
(`emocore.indexer.index_folder`, the face model, no explanations, a fresh cache each time) with
the soundtrack against `--no-audio` (target ≤ 1.15×), the two alternating, `--index-repeat` each
(default 1: one run).

The clip is built once (kept in cache/bench/): the 720p footage bench_index.py builds from the demo
ads, with a soundtrack of real recordings (the laughs and applause the tests use, from Debian
packages) looped to 30 s; if those cannot be fetched, a mix of tones and noise.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from timing import median_time  # beside this script

from emocore.devtools import audio_media, media
from emocore.audio.decode import AudioTrack, audio_decoder, decode_audio
from emocore.audio.explain import AudioExplainParams, explain_audio_moment
from emocore.audio.frontend import log_mel_patches
from emocore.audio.lanes import AudioLanes, lanes_from_scores, score_lanes
from emocore.audio.yamnet import load_audio_model
from emocore.indexer import index_folder
from emocore.models import load_model

ROOT = Path(__file__).resolve().parent.parent
RATE = 48000


def soundtrack(seconds: float) -> tuple[np.ndarray, str]:
    """[2, n] float32 at 48 kHz, and what it is."""
    try:
        names = ["applause.wav", "laugh_mobster.ogg", "laugh_surfer.ogg", "laugh_default.ogg"]
        pieces = [audio_media.read_pcm(audio_media.recording(n), rate=RATE) for n in names]
        mono = np.concatenate(pieces)
        what = "real applause and laughs (Debian recordings), looped"
    except RuntimeError:
        t = np.arange(int(4 * RATE)) / RATE
        mono = (0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size))
        what = "440 Hz tone and noise, looped"
    total = int(seconds * RATE)
    mono = np.resize(mono.astype(np.float32), total)
    return np.stack([mono, 0.8 * mono]), what


def ad_with_soundtrack(video: Path, out: Path) -> tuple[Path, str]:
    """`video`'s packets (copied, not re-encoded) plus a 48 kHz stereo AAC track, interleaved."""
    with av.open(str(video)) as source:
        duration = float(source.streams.video[0].duration * source.streams.video[0].time_base)
    channels, what = soundtrack(duration)
    if out.is_file():
        return out, what
    part = out.with_suffix(".partial.mp4")
    with av.open(str(video)) as source, av.open(str(part), "w", options={"movflags": "+faststart"}) as target:
        vin = source.streams.video[0]
        vout = target.add_stream_from_template(vin)
        aout = target.add_stream("aac", rate=RATE, layout="stereo")
        aout.bit_rate = 128000
        aout.time_base = Fraction(1, RATE)
        sent = 0
        frame_size = 1024

        def push_audio(until_s: float) -> None:
            nonlocal sent
            while sent < channels.shape[1] and sent / RATE <= until_s:
                block = np.ascontiguousarray(channels[:, sent:sent + frame_size])
                frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = RATE, sent, Fraction(1, RATE)
                target.mux(aout.encode(frame))
                sent += block.shape[1]

        for packet in source.demux(vin):
            if packet.dts is None:
                continue
            push_audio(float(packet.dts * vin.time_base) + 0.1)
            packet.stream = vout
            target.mux(packet)
        push_audio(float("inf"))
        target.mux(aout.encode(None))
    part.rename(out)
    return out, what


def video_pass(path: Path, with_audio: bool) -> None:
    """Every video frame decoded (the floor), and, if asked, the soundtrack read in the same demux as
    `index` reads it (emocore.video: audio packets kept during the pass, decoded when it ends)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        decoder = audio_decoder(container) if with_audio else None
        streams = [video] + ([decoder.stream] if decoder is not None else [])
        held = []
        for packet in container.demux(*streams):
            if decoder is not None and packet.stream.index == decoder.stream.index:
                held.append(packet)
                continue
            packet.decode()
        if decoder is not None:
            for packet in held:
                decoder.feed(packet)
            decoder.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (the default is 1)")
    parser.add_argument("--index-repeat", type=int, default=1, help="runs of `index` with and without audio")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads for `index` (the CLI's default)")
    args = parser.parse_args()

    clip_dir = ROOT / "cache" / "bench"
    silent = media.face_clip_720p(clip_dir / "face_720p_30s.mp4", seconds=30)
    clip, what = ad_with_soundtrack(silent, clip_dir / "face_720p_30s_aac48k.mp4")
    track = decode_audio(clip)
    assert isinstance(track, AudioTrack)
    with av.open(str(clip)) as container:
        v, a = container.streams.video[0], container.streams.audio[0]
        print(f"clip: {clip.name}, {v.codec_context.width}×{v.codec_context.height} {v.codec_context.name}, "
              f"{a.codec_context.name} {a.rate} Hz {a.layout.name}, {track.duration_s:.1f} s of sound: {what}")

    model = load_audio_model(threads=args.threads)
    spec = log_mel_patches(track.samples)
    model.scores_of(spec)  # warm up

    # the two video passes alternate, so a busy moment of the machine hits both alike
    passes: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeat):
        for with_audio in (False, True):
            passes[with_audio].append(median_time(lambda: video_pass(clip, with_audio), 1))
    floor, shared = statistics.median(passes[False]), statistics.median(passes[True])
    decoding = median_time(lambda: decode_audio(clip), args.repeat)
    front = median_time(lambda: log_mel_patches(track.samples), args.repeat)
    scoring = median_time(lambda: model.score_patches(spec.patches), args.repeat)
    total = decoding + front + scoring
    n = spec.patches.shape[0]

    print(f"\nvideo full decode (floor)   {floor:6.3f} s")
    print("soundtrack, each step alone:")
    print(f"  decode + resample         {decoding:6.3f} s   {decoding / floor:.3f}× floor")
    print(f"  log-mel front end         {front:6.3f} s   {front / floor:.3f}× floor")
    print(f"  YAMNet, {n} patches       {scoring:6.3f} s   {scoring / floor:.3f}× floor "
          f"({1000 * scoring / n:.2f} ms/patch, {args.threads} thread)")
    print(f"  audio scoring alone       {total:6.3f} s   {total / floor:.3f}× floor (target ≤ 0.25×)")
    print(f"\nvideo pass + soundtrack in the same demux  {shared:6.3f} s   {shared / floor:.3f}× the video pass alone")
    print(f"  + front end and model     {shared + front + scoring:6.3f} s   "
          f"{(shared + front + scoring) / floor:.3f}× (the audio part of `index` with audio; target ≤ 1.15×)")

    # lanes and an explanation (emocore.audio.lanes / emocore.audio.explain), against the same floor
    scores = model.scores_of(spec)
    per_second = median_time(lambda: lanes_from_scores(scores, track, "yamnet"), args.repeat)
    lanes = median_time(lambda: score_lanes(track, model, spec=spec), args.repeat)
    found = score_lanes(track, model, spec=spec)
    assert isinstance(found, AudioLanes)
    at = (found.peaks("laughter", k=1) or found.peaks("applause", k=1, min_value=0.0))[0]
    lane = "laughter" if found.peaks("laughter", k=1) else "applause"
    params = AudioExplainParams()
    explain_audio_moment(track, model, at, (lane,), AudioExplainParams(methods=("shap",), shap_samples=60), spec=spec)
    explaining = median_time(lambda: explain_audio_moment(track, model, at, (lane,), params, spec=spec), 1)
    print(f"\nper-second lanes from the scores  {per_second:6.3f} s   {per_second / floor:.3f}× floor")
    print(f"score_lanes (front end reused)   {lanes:6.3f} s   {lanes / floor:.3f}× floor")
    print(f"explain {lane} at {at} s ({params.time_slices}×{params.mel_bands} regions, LIME {params.lime_samples} + "
          f"SHAP {params.shap_samples} samples + deletion check)  {explaining:6.3f} s   {explaining / floor:.2f}× floor")

    # `index` itself: the soundtrack in the same demux pass, scored by the decode thread beside the face model
    import torch

    torch.set_num_threads(args.torch_threads)
    faces = load_model("fer")

    def index_once(audio: bool) -> None:
        with tempfile.TemporaryDirectory(prefix="bench-audio-") as cache:
            report = index_folder(clip, cache, model=faces, explain=None, audio=model if audio else False)
            assert [o.audio for o in report.outcomes] == (["ok"] if audio else [None]), report.outcomes

    index_once(True)  # warm up
    runs: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.index_repeat):
        for audio in (False, True):
            started = time.process_time()
            runs[audio].append(median_time(lambda: index_once(audio), 1))
            cpu[audio].append(time.process_time() - started)
    plain, heard = statistics.median(runs[False]), statistics.median(runs[True])
    plain_cpu, heard_cpu = statistics.median(cpu[False]), statistics.median(cpu[True])
    print(f"\nindex --no-audio  {plain:6.3f} s   {plain / floor:.2f}× floor   (CPU {plain_cpu:.3f} s, all threads)")
    print(f"index with audio  {heard:6.3f} s   {heard / floor:.2f}× floor   (CPU {heard_cpu:.3f} s)")
    print(f"  index with audio / index --no-audio: {heard / plain:.3f}× wall clock, {heard_cpu / plain_cpu:.3f}× CPU "
          f"(target ≤ 1.15×; torch threads {args.torch_threads}, onnxruntime threads {args.threads}; on a busy "
          f"machine the CPU ratio is the steadier one)")
    faces.close()
    model.close()


if __name__ == "__main__":
    main()
