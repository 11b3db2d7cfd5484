"""Index speed against its floor: a 30 s 1280×720 H.264 ad at 2 frames per second.

    python benchmarks/bench_index.py [--repeat 3] [--threads 1] [--device cpu] [--detect-min-px N]
                                     [--redetect-every N]

Prints, in one run: the time to fully decode the clip (the floor: PyAV, frame-threaded, every
frame), the time `index --no-explain` takes on it (cold cache, model already loaded, as in a
batch; explanations are timed by bench_explain.py), their ratio (goal ≤ 1.5×), the same with
`--every-frame` (every frame decoded for shot detection, as the index did before it let the
decoder drop the frames no sample needs), the process CPU seconds the index took (all threads:
what a bigger machine or a cluster multiplies), and where the time goes: the sampling pass
(decode + shot detection + conversion of the sampled frames, with how many frames were decoded),
face detection, and classification, each measured alone.
Medians of `--repeat` runs; the floor and both indexes are measured round after round (each ratio
compares runs made back to back: the machine's speed drifts by a quarter between minutes), and the
index's ratio is printed with its range over the rounds.

`--detect-min-px N` also measures detecting less: the face model with its pyramid starting at N
pixels of the detection copy instead of 32 (fewer, coarser levels), against the default on the same
frames: detection CPU time, frames with a face, and how far the scored probabilities move (per
frame and the clip's mean per emotion).

`--redetect-every N` also measures following faces: the face model searching every N-th
sampled frame in full and the frames between by O-Net around the previous frame's faces
(`FaceEmotionModel(redetect_every=N)`), against full detection, as the indexer calls it (batches
of the model's `frames_per_call` consecutive frames) on this clip and on every demo clip
(cache/demo-ads): detection CPU, face frames, how far the probabilities move per frame and per clip
(largest |Δ mean| of an emotion over the face frames) and whether the clip's dominant emotion stays.

The clip is indexed as a file (not its folder, which other benchmarks fill with their caches).

The clip is built once from the demo footage (Megamind.avi + carphone.mp4, scaled to 720p and
looped to 30 s; `python cli.py setup` fetches them) and kept in cache/bench/.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from timing import interleaved_times, median_time  # beside this script

from emocore.devtools import media
from emocore.indexer import IndexParams, index_folder
from emocore.models import load_model
from emocore.models.fer import FaceEmotionModel
from emocore.params import ShotParams
from emocore.shots import ShotDetector
from emocore.video import open_video

ROOT = Path(__file__).resolve().parent.parent


def full_decode(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return sum(1 for _ in container.decode(stream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CLI's default is 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the models' device)")
    parser.add_argument("--detect-min-px", type=int, default=None,
                        help="also compare detection with the pyramid starting at N px of the detection copy")
    parser.add_argument("--redetect-every", type=int, default=None,
                        help="also compare following faces between full searches every N frames")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    clip_dir = ROOT / "cache" / "bench"
    clip = media.face_clip_720p(clip_dir / "face_720p_30s.mp4", seconds=30)
    params = IndexParams()
    with open_video(clip) as video:
        info = video.info
    print(f"clip: {clip.name}, {info.width}×{info.height}, {info.duration_s:.1f} s, {info.fps:g} fps, "
          f"{info.codec}; sampling {params.sample_rate:g} frames/s; torch threads {args.threads}")

    model = load_model("fer", device=args.device)
    with open_video(clip) as video:
        frames = [f.image for f in video.sample(params.sample_rate, params.max_side)]
    model.analyse(frames[:4])  # load the weights and warm up before timing

    every = IndexParams(shots=ShotParams(every_frame=True))
    decoded: dict[bool, int] = {}

    def sampling_pass(shots: ShotParams = params.shots) -> None:
        with open_video(clip) as video:
            detector = ShotDetector(video.info.fps, shots)
            seen = []
            for _ in video.sample(params.sample_rate, params.max_side, on_frame=lambda t, tiny: (
                    seen.append(t), detector.feed(t, tiny)), every_frame=shots.every_frame):
                pass
            decoded[shots.every_frame] = len(seen)

    faces = model.detect(frames)

    def index_once(chosen: IndexParams = params) -> None:
        with tempfile.TemporaryDirectory() as cache:
            # scores only: explanations are timed by bench_explain.py
            report = index_folder(clip, cache, model=model, params=chosen, explain=None, audio=False)
            assert report.count("indexed") == 1, report

    cpu_seconds: dict[bool, list[float]] = {True: [], False: []}

    def index_counted(chosen: IndexParams) -> None:
        start = time.process_time()
        index_once(chosen)
        cpu_seconds[chosen.shots.every_frame].append(time.process_time() - start)

    # the floor and both indexes round after round: each ratio compares runs made back to back
    rounds = interleaved_times({"floor": lambda: full_decode(clip), "index": lambda: index_counted(params),
                                "every": lambda: index_counted(every)}, args.repeat)
    floor, indexed, indexed_every = (statistics.median(rounds[name]) for name in ("floor", "index", "every"))
    ratios = sorted(i / f for i, f in zip(rounds["index"], rounds["floor"]))
    ratios_every = sorted(i / f for i, f in zip(rounds["every"], rounds["floor"]))
    sampling = median_time(sampling_pass, args.repeat)
    sampling_every = median_time(lambda: sampling_pass(every.shots), args.repeat)
    detection = median_time(lambda: model.detect(frames), args.repeat)
    classification = median_time(lambda: model.classify(frames, faces), args.repeat)
    with_face = sum(1 for f in faces if len(f))

    print(f"\nfull decode (floor)      {floor:6.2f} s   ({info.frame_count / floor:.0f} frames/s)")
    print(f"index                    {indexed:6.2f} s   ratio {statistics.median(ratios):.2f}× the floor "
          f"(goal ≤ 1.5×; {ratios[0]:.2f}-{ratios[-1]:.2f}× over the {len(ratios)} rounds)")
    print(f"index CPU time           {statistics.median(cpu_seconds[False]):6.2f} CPU s per ad (process, all threads)")
    print(f"index --every-frame      {indexed_every:6.2f} s   ratio {statistics.median(ratios_every):.2f}× the floor, "
          f"{statistics.median(cpu_seconds[True]):.2f} CPU s per ad (every frame decoded for shots, as before)")
    print("\nwhere the time goes (each part measured alone; index overlaps decoding with the model):")
    print(f"  sampling pass          {sampling:6.2f} s   {sampling / floor:.2f}× floor "
          f"(decode + shot detection + {len(frames)} frames converted; {decoded[False]} of "
          f"{decoded[True]} frames decoded)")
    print(f"    with --every-frame   {sampling_every:6.2f} s   {sampling_every / floor:.2f}× floor")
    print(f"  face detection         {detection:6.2f} s   {1000 * detection / len(frames):.0f} ms/frame "
          f"({with_face}/{len(frames)} frames with a face)")
    print(f"  classification         {classification:6.2f} s   "
          f"{1000 * classification / max(with_face, 1):.1f} ms/face")
    print(f"  sum of parts           {sampling + detection + classification:6.2f} s   "
          f"vs index {indexed:.2f} s (the rest: thumbnails, hashing, SQLite)")
    if args.detect_min_px is not None:
        compare_detection(model, frames, args.detect_min_px, args.repeat, args.device)
    if args.redetect_every is not None:
        compare_following(model, [clip, *demo_clips()], args.redetect_every, args.device)


def compare_detection(model: FaceEmotionModel, frames: list, start_px: int, repeat: int, device: str) -> None:
    """Detection with the pyramid starting at `start_px` against the default, on the same frames."""
    candidate = load_model("fer", device=device, detect_min_px=start_px)
    base, other = model.analyse(frames), candidate.analyse(frames)
    cpu_base = median_cpu(lambda: model.detect(frames), repeat)
    cpu_other = median_cpu(lambda: candidate.detect(frames), repeat)
    a, b = base.probabilities, other.probabilities
    found_a, found_b = np.isfinite(a[:, 0]), np.isfinite(b[:, 0])
    both = found_a & found_b
    per_frame = float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0
    means = float(np.abs(a[both].mean(0) - b[both].mean(0)).max()) if both.any() else 0.0
    print(f"\ndetecting less: pyramid from {start_px} px of the detection copy (default {model.detect_min_px})")
    print(f"  detection CPU          {cpu_base:6.2f} → {cpu_other:.2f} CPU s ({cpu_other / cpu_base:.2f}×)")
    print(f"  frames with a face     {int(found_a.sum())} → {int(found_b.sum())} of {len(frames)}; "
          f"face counts differ in {int((base.face_counts != other.face_counts).sum())} frames")
    print(f"  probabilities moved    per frame up to {per_frame:.3f}; clip mean per emotion up to {means:.3f}")


def demo_clips() -> list[Path]:
    folder = ROOT / "cache" / "demo-ads"
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []


def compare_following(model: FaceEmotionModel, clips: list[Path], every: int, device: str) -> None:
    """Faces followed between full searches every `every` frames against full detection, per clip."""
    following = load_model("fer", device=device, redetect_every=every)
    params = IndexParams()
    print(f"\nfollowing faces: full search every {every} sampled frames, O-Net around the last faces between")
    print(f"  {'clip':24s} {'frames':>6s} {'face frames':>12s} {'model CPU s':>14s} "
          f"{'max |Δ| frame':>14s} {'max |Δ mean|':>13s}  dominant")
    totals = [0.0, 0.0]
    worst = 0.0
    for clip in clips:
        with open_video(clip) as video:
            sampled = list(video.sample(params.sample_rate, params.max_side))
        frames, scales = [f.image for f in sampled], [f.source_scale for f in sampled]
        runs = []
        for m in (model, following):
            start = time.process_time()
            step = m.frames_per_call  # as the indexer hands them over
            probabilities = np.concatenate([m.analyse_scaled(frames[i:i + step], scales[i:i + step]).probabilities
                                            for i in range(0, len(frames), step)])
            runs.append((probabilities, time.process_time() - start))
        (a, cpu_a), (b, cpu_b) = runs
        totals[0] += cpu_a
        totals[1] += cpu_b
        found_a, found_b = np.isfinite(a[:, 0]), np.isfinite(b[:, 0])
        both = found_a & found_b
        per_frame = float(np.abs(a[both] - b[both]).max()) if both.any() else 0.0
        if found_a.any() and found_b.any():
            mean_a, mean_b = np.nanmean(a, axis=0), np.nanmean(b, axis=0)
            means = float(np.abs(mean_a - mean_b).max())
            same = "same" if mean_a.argmax() == mean_b.argmax() else "CHANGED"
        else:
            means, same = 0.0, "same" if found_a.any() == found_b.any() else "CHANGED"
        worst = max(worst, means)
        print(f"  {clip.name:24s} {len(frames):6d} {int(found_a.sum()):5d} → {int(found_b.sum()):<4d} "
              f"{cpu_a:6.2f} → {cpu_b:<5.2f} {per_frame:14.3f} {means:13.3f}  {same}")
    print(f"  all clips: detection + classification CPU {totals[0]:.2f} → {totals[1]:.2f} s "
          f"({totals[1] / max(totals[0], 1e-9):.2f}×); largest |Δ mean| {worst:.3f}")


def median_cpu(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


if __name__ == "__main__":
    main()
