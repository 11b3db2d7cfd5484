"""Which backbone a trained funny classifier should use, offline: k-fold ROC-AUC per backbone.

    python benchmarks/bench_backbones.py [--folds 5] [--seeds 0,1,2] [--threads 1]
                                         [--backbones resnet18,audioset,audioset:embedding,faces,faces+audioset]

Builds a labelled set at run time (kept in cache/bench/backbones/ with its labels.csv): 24 clips of
4 s, each a distinct segment of real demo footage (Megamind, carphone, bigbuckbunny, bikes and
vtest from `python cli.py setup`) under a 48 kHz stereo AAC soundtrack. Half the segments of each
source (a fixed seeded pattern) get real laughter (one of the three hedgewars laughs, at a varying
time and level, alone or over music or speech: "funny" = 1), the others none (espeak-ng speech, one
of two hedgewars music themes, foobillardplus applause, speech over music, or no audio track at
all: "funny" = 0). The label lies in the soundtrack only and every source is balanced between the
classes, so image features cannot know it: a backbone that beats 0.5 reads something real.

For each backbone, `emocore.experiments.cross_validate` (what `python cli.py evaluate --kfold K
--csv cache/bench/backbones/labels.csv --backbone B` runs) with each seed; prints the mean ± sd of
the per-fold ROC-AUC (over folds × seeds), the pooled ROC-AUC (all held-out predictions of a seed
together; mean ± sd over seeds) and the feature extraction time. resnet18 runs with random weights
(ImageNet's cannot be downloaded here: what `train` falls back to offline).

Read image features' figures against 0.5 and below it: the label is independent of the footage but
balanced within each source, so a head that memorises footage predicts a held-out segment from its
source-mates in training, which hold slightly more of the other class (the usual k-fold artefact of
a label the features do not carry): below 0.5 means "learns nothing real", not "anti-informative".
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from emocore.devtools import audio_media
from emocore.experiments import cross_validate
from emocore.features import make_encoder, video_features
from emocore.labels import load_csv
from emocore.training import TrainParams

ROOT = Path(__file__).resolve().parent.parent
RATE = 48000
LENGTH = 4.0
#: (demo clip, start second) of each 4 s footage segment: 24 distinct ones, in pairs from one source.
SEGMENTS = (("Megamind.avi", 0.0), ("Megamind.avi", 5.0), ("carphone.mp4", 0.0), ("bigbuckbunny.mp4", 0.0),
            ("bikes.mp4", 0.0), ("bikes.mp4", 5.0)) + tuple(("vtest.avi", 4.0 * i) for i in range(18))
LAUGHS = ("laugh_mobster.ogg", "laugh_surfer.ogg", "laugh_default.ogg")
SENTENCES = ("Hello and welcome to the show.", "Our new phone has a bigger screen and a better camera.",
             "Call us today for a free quote.", "The best coffee in town, every morning.",
             "Drive safely, and enjoy the ride.", "Now with twice the flavour.")
DEFAULT_BACKBONES = ("resnet18", "audioset", "audioset:embedding", "faces", "faces+audioset")


def footage(name: str, start: float, max_side: int = 480) -> tuple[list[np.ndarray], Fraction]:
    """The RGB frames of 4 s of a demo clip from `start`, long side at most `max_side`, even sizes."""
    frames = []
    with av.open(str(ROOT / "cache" / "demo-ads" / name)) as source:
        stream = source.streams.video[0]
        fps = Fraction(stream.average_rate or 25)
        for i, frame in enumerate(source.decode(stream)):
            t = i / float(fps)
            if t < start:
                continue
            if t >= start + LENGTH:
                break
            scale = min(1.0, max_side / max(frame.width, frame.height))
            w, h = (max(2, int(frame.width * scale) // 2 * 2), max(2, int(frame.height * scale) // 2 * 2))
            frames.append(frame.reformat(width=w, height=h, format="rgb24").to_ndarray())
    return frames, fps


def mux(out: Path, frames: list[np.ndarray], fps: Fraction, sound: np.ndarray | None) -> Path:
    """H.264 of `frames`, with `sound` ([n] mono float32 at RATE) as 48 kHz stereo AAC, or no audio track."""
    with av.open(str(out), "w") as target:
        vout = target.add_stream("libx264", rate=fps)
        vout.height, vout.width = frames[0].shape[:2]
        vout.pix_fmt = "yuv420p"
        vout.codec_context.options = {"preset": "veryfast", "crf": "23"}
        aout = None
        if sound is not None:
            aout = target.add_stream("aac", rate=RATE, layout="stereo")
            aout.time_base = Fraction(1, RATE)
            channels = np.stack([sound, sound]).astype(np.float32)
        sent = 0
        for i, rgb in enumerate(frames):
            while aout is not None and sent < channels.shape[1] and sent / RATE <= i / float(fps):
                block = np.ascontiguousarray(channels[:, sent:sent + 1024])
                aframe = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                aframe.sample_rate, aframe.pts, aframe.time_base = RATE, sent, Fraction(1, RATE)
                target.mux(aout.encode(aframe))
                sent += block.shape[1]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, 1 / fps
            target.mux(vout.encode(frame))
        while aout is not None and sent < channels.shape[1]:
            block = np.ascontiguousarray(channels[:, sent:sent + 1024])
            aframe = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            aframe.sample_rate, aframe.pts, aframe.time_base = RATE, sent, Fraction(1, RATE)
            target.mux(aout.encode(aframe))
            sent += block.shape[1]
        target.mux(vout.encode(None))
        if aout is not None:
            target.mux(aout.encode(None))
    return out


def _place(track: np.ndarray, clip: np.ndarray, at: float, gain: float) -> None:
    a = int(at * RATE)
    part = clip[: max(0, track.size - a)]
    track[a:a + part.size] += gain * part


def _window(music: np.ndarray, j: int) -> np.ndarray:
    n = int(LENGTH * RATE)
    start = (j * 3 * RATE) % max(1, music.size - n)
    return music[start:start + n]


def soundtracks(folder: Path) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """The recordings (mono, RATE) and the espeak-ng sentences."""
    sounds = {name: audio_media.read_pcm(audio_media.recording(name), rate=RATE)
              for name in LAUGHS + ("hedgewars_main_theme.ogg", "hedgewars_nature.ogg", "applause.wav")}
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install -y espeak-ng")
    speech = []
    for i, text in enumerate(SENTENCES):
        wav = folder / f"speech{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        speech.append(audio_media.read_pcm(wav, rate=RATE))
    return sounds, speech


def build_set(folder: Path) -> Path:
    """The 24 clips and labels.csv (path, emotion, score) in `folder`; returns the CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = folder / "labels.csv"
    if labels.is_file():
        return labels
    sounds, speech = soundtracks(folder)
    n = int(LENGTH * RATE)
    rows = []
    # which segments get laughter: half of each source, neighbours not alternating (adjacent vtest
    # segments look alike, and a strict alternation would make every neighbour the opposite class)
    pattern = [1, 0, 0, 1, 1, 0] + np.random.default_rng(0).permutation([1] * 9 + [0] * 9).tolist()
    for j, (name, start) in enumerate(SEGMENTS):
        frames, fps = footage(name, start)
        v = j // 2  # the variant of the soundtrack
        main, nature = _window(sounds["hedgewars_main_theme.ogg"], v), _window(sounds["hedgewars_nature.ogg"], v)
        sound: np.ndarray | None = np.zeros(n, np.float32)
        label = float(pattern[j])
        if label:  # one of the laughs, at a varying time and level, over silence, music or speech
            background = v % 4
            if background == 1:
                _place(sound, main, 0.0, 0.3)
            elif background == 2:
                _place(sound, speech[v % len(speech)], 0.0, 0.5)
            elif background == 3:
                _place(sound, nature, 0.0, 0.3)
            _place(sound, sounds[LAUGHS[v % 3]], 0.3 + 0.5 * (v % 4), 1.0 - 0.1 * (v % 3))
        else:  # speech, music, applause, speech over music, or no audio track at all
            kind = v % 6
            if kind == 0:
                _place(sound, speech[(v + 1) % len(speech)], 0.3, 0.9)
            elif kind == 1:
                _place(sound, main, 0.0, 0.6)
            elif kind == 2:
                _place(sound, sounds["applause.wav"], 0.2, 0.8)
            elif kind == 3:
                _place(sound, nature, 0.0, 0.6)
            elif kind == 4:
                _place(sound, main, 0.0, 0.3)
                _place(sound, speech[(v + 2) % len(speech)], 0.2, 0.6)
            else:
                sound = None
        out = folder / f"{Path(name).stem}-{start:g}-{'laugh' if label else 'plain'}.mp4"
        mux(out, frames, fps, None if sound is None else np.clip(sound, -1, 1))
        rows.append((out.name, "funny", label))
    with open(labels.with_suffix(".partial"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "emotion", "score"])
        writer.writerows(rows)
    os.replace(labels.with_suffix(".partial"), labels)
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backbones", default=",".join(DEFAULT_BACKBONES))
    parser.add_argument("--out", type=Path, default=ROOT / "cache" / "bench" / "backbones")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    labels_csv = build_set(args.out)
    labels = load_csv(labels_csv)
    positives = sum(v.scores["funny"] >= 0.5 for v in labels.videos)
    print(f"labelled set: {len(labels.videos)} clips of {LENGTH:g} s ({positives} with laughter), "
          f"{len(SEGMENTS)} distinct footage segments, every source half with, half without laughter; "
          f"{args.folds}-fold, seeds {args.seeds}")
    print(f"{'backbone':<22} {'dim':>5} {'features s':>10} {'per-fold ROC-AUC':>18} {'pooled ROC-AUC':>16}")
    for backbone in args.backbones.split(","):
        weights = "random" if backbone in ("resnet18", "mobilenet_v3_small", "mobilenet_v3_large",
                                           "efficientnet_b0") else None
        cache = args.out / "features"
        encoder = make_encoder(backbone, weights=weights, seed=0)
        start = time.perf_counter()
        for video in labels.videos:
            video_features(video.path, encoder, sample_rate=1.0, max_side=480, cache_dir=cache)
        extract = time.perf_counter() - start
        fold_aucs, pooled = [], []
        for seed in seeds:
            params = TrainParams(backbone=backbone, weights=weights, seed=seed)
            result = cross_validate(labels, params, folds=args.folds, cache_dir=cache)
            pooled.append(result.metrics[0].roc_auc)
            # per-fold ROC-AUC: score each held-out fold on its own (cross_validate reports mean ± sd)
            assert result.folds is not None
            mean, sd = result.folds["funny"]["roc_auc"]
            fold_aucs.append((mean, sd))
        means = [m for m, _ in fold_aucs]
        within = statistics.mean(sd for _, sd in fold_aucs)
        label = backbone + (" (random)" if weights else "")
        print(f"{label:<22} {encoder.dim:>5} {extract:>10.1f} "
              f"{statistics.mean(means):>9.3f} ± {within:<6.3f} "
              f"{statistics.mean(pooled):>8.3f} ± {statistics.pstdev(pooled):<5.3f}", flush=True)
    print("per-fold: mean over seeds of each seed's mean over folds ± the mean over seeds of its sd over folds; "
          "pooled: all held-out predictions of a seed at once, mean ± sd over seeds. Chance is 0.5; features that "
          "carry nothing about the label can fall below it here (see the docstring).")
    print(f"reproduce one row: python cli.py evaluate --kfold {args.folds} --csv {labels_csv} --backbone audioset")


if __name__ == "__main__":
    main()
