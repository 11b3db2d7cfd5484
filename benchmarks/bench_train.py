"""Training throughput on the demo clips: feature extraction (cold, then cached) and head epochs.

    python benchmarks/bench_train.py [--threads 1] [--backbone resnet18] [--repeat 3]

Prints, in one run:
- feature extraction with the backbone (random weights: ImageNet weights cannot be fetched here,
  and the speed is the same) at the default sampling (1 frame/s, long side 480): videos/s and
  frames/s with a cold feature cache, and where the time goes (decoding + sampling alone, the
  encoder alone on the same frames); then the same videos with the cache warm;
- head training, mean and LSTM pooling: epochs/s on the demo clips' real features, and on
  synthetic features for a dataset of a realistic size (`--videos` × `--frames`, features drawn at
  random: only the head's speed is measured).
Medians of `--repeat` runs where it is cheap; the machine is shared and noisy, so read the ratios.
Needs the demo clips (`python cli.py setup`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import torch

import emocore.training
from emocore.features import make_encoder, video_features
from emocore.labels import LabelledVideo as Video
from emocore.labels import LabelSet
from emocore.training import TrainParams, train
from emocore.video import find_videos, open_video

ROOT = Path(__file__).resolve().parent.parent


def Labels(videos: tuple[Video, ...], emotions: tuple[str, ...] = ("funny", "exciting")) -> LabelSet:  # noqa: N802
    """A label set as emocore.labels builds it, made in code."""
    return LabelSet(tuple(videos), emotions, (), {})


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def median_time(fn: Callable[[], object], repeat: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeat))


def labels_for(paths: list[Path]) -> Labels:
    return Labels(tuple(Video(p.stem, p, {"funny": float(i % 2), "exciting": float(i % 3 == 0)})
                        for i, p in enumerate(paths)))


def epochs_per_second(labels: Labels, params: TrainParams, cache: Path) -> float:
    seconds, result = timed(lambda: train(labels, params, cache_dir=cache))
    # the encoder is built before the epochs: time it alone and take it off
    build = timed(lambda: make_encoder(params.backbone, weights=params.weights, seed=params.seed))[0]
    return len(result.history) / max(seconds - build, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CLI's default is 1)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--videos", type=int, default=500, help="synthetic dataset size for the head timing")
    parser.add_argument("--frames", type=int, default=30, help="frames per synthetic video")
    parser.add_argument("--demo", type=Path, default=ROOT / "cache" / "demo-ads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clips = find_videos(args.demo)
    if not clips:
        sys.exit(f"no demo clips in {args.demo}: run `python cli.py setup`")
    rate, side = TrainParams().sample_rate, TrainParams().max_side
    encoder = make_encoder(args.backbone, weights=None)
    print(f"{args.backbone} (random weights), {args.threads} torch thread(s), sampling {rate:g}/s, long side {side}")

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        encoder.encode([np.zeros((side, side, 3), np.uint8)])  # warm-up: first-call allocations
        cold, arrays = timed(lambda: [video_features(p, encoder, sample_rate=rate, max_side=side, cache_dir=cache)
                                      for p in clips])
        frames = sum(len(a) for a in arrays)
        n = len(clips)

        def decode_only() -> list[np.ndarray]:
            images = []
            for path in clips:
                with open_video(path) as video:
                    images.extend(f.image for f in video.sample(rate, max_side=side))
            return images

        decode_s, images = timed(decode_only)
        encode_s = timed(lambda: encoder.encode(images))[0]
        warm = median_time(lambda: [video_features(p, encoder, sample_rate=rate, max_side=side, cache_dir=cache)
                                    for p in clips], args.repeat)
        print(f"\nfeatures, {n} videos, {frames} frames ({', '.join(f'{p.name} {len(a)}' for p, a in zip(clips, arrays))})")
        print(f"  cold   {cold:7.2f} s  {n / cold:7.2f} videos/s  {frames / cold:7.1f} frames/s")
        print(f"         of which decode+sample alone {decode_s:.2f} s, encoder alone {encode_s:.2f} s "
              f"({frames / encode_s:.1f} frames/s)")
        print(f"  cached {warm:7.3f} s  {n / warm:7.1f} videos/s  {frames / warm:7.0f} frames/s  "
              f"({cold / warm:.0f}x faster)")

        demo = labels_for(clips)
        print("\nhead training, epochs/s (no early stop; encoder build time excluded)")
        for pooling in ("mean", "lstm"):
            params = TrainParams(backbone=args.backbone, weights=None, pooling=pooling, epochs=50, patience=50,
                                 val_fraction=0.2)
            rate_demo = statistics.median(epochs_per_second(demo, params, cache) for _ in range(args.repeat))
            print(f"  {pooling:4s} demo clips ({n} videos, {frames} frames): {rate_demo:8.1f} epochs/s")

        # a realistic dataset size: synthetic features stand in for the extraction (head speed only)
        rng = np.random.default_rng(0)
        synthetic = {f"v{i}": rng.standard_normal((args.frames, encoder.dim)).astype(np.float32)
                     for i in range(args.videos)}
        fake = Labels(tuple(Video(key, Path(key), {"funny": float(i % 2), "exciting": float(i % 5 == 0)})
                            for i, key in enumerate(synthetic)))
        with mock.patch.object(emocore.training, "video_features", lambda path, *a, **k: synthetic[str(path)]):
            for pooling in ("mean", "lstm"):
                params = TrainParams(backbone=args.backbone, weights=None, pooling=pooling, epochs=10, patience=10)
                print(f"  {pooling:4s} synthetic ({args.videos} videos × {args.frames} frames): "
                      f"{epochs_per_second(fake, params, cache):8.2f} epochs/s")


if __name__ == "__main__":
    main()
