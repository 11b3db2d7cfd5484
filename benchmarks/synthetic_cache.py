"""A clearly labelled SYNTHETIC cache for benchmarking the dashboard: no real ads, no real model.

    python benchmarks/synthetic_cache.py [--ads 10000] [--frames 60] [--root cache/bench/synthetic-10k]
                                         [--writer batch|store] [--rebuild]

Every ad is named "SYNTHETIC ad NNNNN.mp4" and points at a path that does not exist
(/synthetic/...); the model is "synthetic", version "synthetic-benchmark". Per ad: `frames` samples
at 2 frames per second; per frame the 7 FER emotions' probabilities are a softmax of noise smoothed
over time (seeded, so the cache is the same on every machine), with a few stretches of frames
without a face (NaN rows), a few shot boundaries, and the per-emotion figures computed from the
timeline by emocore.scoring.smooth / summarise exactly as the indexer computes them. About 2 % of
the ads are failed ones (status "failed" with an error and nothing else). One tiny JPEG per ad is
written as the thumbnail of frame 0, in a per-ad folder as the Store lays them out.

Two writers, which produce the same rows (the default is "store": ~1 min for 10,000 ads here):
- "store": `Store.write_ad` per ad (one transaction and one thumbnail folder rename per ad);
- "batch" (faster, ~half the time): the same rows through `store.connection` in a few big transactions,
  using the schema Store created; `store.check()` must be empty at the end.

A third, `--writer figures` (`build_figures`), is for the norms and ranking benchmarks at 100,000
ads: it writes only the `ads` and `emotions` rows (no frames, shots or thumbnails; the meta row
says "figures-only"), generated vectorised in seconds. Its ads' face coverage is spread from 2 %
to 100 % on purpose, with one per-frame distribution per emotion for every ad, so a ranking that
ignores evidence puts the low-coverage ads on top.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from emocore.scoring import smooth, summarise
from emocore.store import ADS_INSERT_COLUMNS, SCHEMA_VERSION, DB_NAME, NewAd, Store, Timeline, ads_row

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_ROOT = ROOT / "cache" / "bench" / "synthetic-10k"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MODEL = "synthetic"
MODEL_VERSION = "synthetic-benchmark"
SAMPLE_RATE = 2.0
WINDOW_S = 1.5
THRESHOLD = 0.5
FAILED_SHARE = 0.02
SEED = 20240517
#: written into meta so a cache from another generator version is rebuilt, not reused
GENERATOR = "synthetic-cache-v2"


def _params() -> dict[str, object]:
    return {
        "index": {"max_side": 1280, "sample_rate": SAMPLE_RATE, "scoring": {"threshold": THRESHOLD, "window_s": WINDOW_S},
                  "shots": {"min_shot_s": 0.5, "threshold": 27.0}, "thumb_width": 240},
        "model": {"labels": list(LABELS), "name": MODEL, "version": MODEL_VERSION},
        "schema": SCHEMA_VERSION,
        "synthetic": True,
    }


def thumbnail_jpeg() -> bytes:
    """A tiny coloured JPEG (96×54): a gradient with a magenta band, so it reads as a placeholder."""
    y, x = np.mgrid[0:54, 0:96]
    image = np.stack([(x * 2.6).astype(np.uint8), (y * 4.7).astype(np.uint8), np.full_like(x, 160, np.uint8)], -1)
    image[22:32] = (200, 0, 200)
    ok, data = cv2.imencode(".jpg", image.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return data.tobytes()


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def synthetic_ads(count: int, frames: int, seed: int = SEED) -> Iterator[NewAd]:
    """`count` synthetic ads (deterministic for a seed), generated in chunks to keep memory small."""
    rng = np.random.default_rng(seed)
    params = _params()
    p_text = json.dumps(params, sort_keys=True)
    p_digest = hashlib.sha256(p_text.encode()).hexdigest()
    times = np.arange(frames, dtype=np.float64) / SAMPLE_RATE
    duration = frames / SAMPLE_RATE
    kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.5) ** 2)
    kernel /= kernel.sum()
    base = np.array([-0.6, -1.6, -1.0, 0.4, -0.2, -0.5, 0.9])  # neutral and happy common, disgust rare
    chunk = 500
    for first in range(0, count, chunk):
        n = min(chunk, count - first)
        noise = rng.normal(0.0, 1.0, (n, frames + len(kernel) - 1, len(LABELS)))
        # smooth along time (valid convolution keeps exactly `frames` samples)
        smoothed_noise = np.stack([
            np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="valid"), 1, noise[:, :, j])
            for j in range(len(LABELS))
        ], axis=-1) * 4.0
        bias = base + rng.normal(0.0, 0.8, (n, len(LABELS)))
        probs = _softmax(smoothed_noise + bias[:, None, :]).astype(np.float32)
        for k in range(n):
            i = first + k + 1
            name = f"SYNTHETIC ad {i:05d}.mp4"
            content = hashlib.sha256(f"synthetic-ad-{seed}-{i}".encode()).hexdigest()
            key = hashlib.sha256(f"{content}:{p_digest}".encode()).hexdigest()[:20]
            common = dict(key=key, content_hash=content, params_hash=p_digest, params=params, name=name,
                          path=f"/synthetic/{name}", size_bytes=int(rng.integers(2_000_000, 40_000_000)),
                          model=MODEL, model_version=MODEL_VERSION, labels=LABELS)
            if rng.random() < FAILED_SHARE:
                yield NewAd(**common, status="failed",
                            error="SYNTHETIC failure: not a readable video (moov atom not found)",
                            elapsed_s=float(rng.uniform(0.01, 0.2)))
                continue
            raw = probs[k].copy()
            faces = np.ones(frames, dtype=np.int32)
            # a few stretches with no face (cutaways, packshots); a few ads with no face at all
            if rng.random() < 0.01:
                faces[:] = 0
            else:
                for _ in range(int(rng.integers(0, 4))):
                    start = int(rng.integers(0, frames))
                    faces[start:start + int(rng.integers(1, 8))] = 0
            if rng.random() < 0.1:
                faces[faces == 1] = rng.choice([1, 2], size=int((faces == 1).sum()), p=[0.6, 0.4])
            raw[faces == 0] = np.nan
            boxes = tuple(
                None if f == 0 else (float(400 + 5 * math.sin(t)), 150.0, float(640 + 5 * math.sin(t)), 420.0, 0.99)
                for f, t in zip(faces, times)
            )
            shots = tuple(sorted(float(s) for s in rng.choice(np.arange(2, int(duration) - 1), size=int(rng.integers(1, 5)),
                                                                replace=False)))
            smoothed = smooth(times, raw, WINDOW_S, shots=shots)
            summary = summarise(times, raw, smoothed, LABELS, THRESHOLD, sample_rate=SAMPLE_RATE)
            yield NewAd(
                **common,
                info={"duration_s": duration, "fps": 25.0, "width": 1280, "height": 720, "rotation": 0,
                      "codec": "synthetic", "has_audio": True},
                timeline=Timeline(times=times, raw=raw, smoothed=smoothed, faces=faces, boxes=boxes, shots=shots),
                emotions=summary.emotions,
                face_coverage=summary.face_coverage,
                dominant_raw=summary.dominant_raw,
                face_frames=summary.face_frames,
                face_seconds=summary.face_seconds,
                elapsed_s=float(rng.uniform(3.0, 9.0)),
            )


def _json_floats(values: np.ndarray) -> str:
    # the same text Store._json_floats writes (NaN as null, 6 decimals)
    return json.dumps([None if math.isnan(v) else round(float(v), 6) for v in values.tolist()])


def _write_batch(store: Store, ads: Iterator[NewAd], jpeg: bytes, per_transaction: int = 2000) -> int:
    """The rows Store.write_ad writes, in a few big transactions (fresh cache: no deletes needed)."""
    db = store.connection
    thumbs = store.root / "thumbs"
    thumbs.mkdir(exist_ok=True)
    written = 0
    pending: list[NewAd] = []

    def flush() -> None:
        now = time.time()
        ad_rows, frame_rows, shot_rows, emotion_rows = [], [], [], []
        for n, ad in enumerate(pending):
            tl = ad.timeline
            # distinct, plausible index times (newest first)
            ad_rows.append(ads_row(ad, now - (written + n) * 0.5))
            if tl is not None:
                for i in range(len(tl.times)):
                    box = tl.boxes[i]
                    frame_rows.append((ad.key, i, float(tl.times[i]), int(tl.faces[i]),
                                       None if box is None else json.dumps([round(float(v), 2) for v in box]),
                                       _json_floats(tl.raw[i]), _json_floats(tl.smoothed[i])))
                shot_rows.extend((ad.key, i, t) for i, t in enumerate(tl.shots))
            emotion_rows.extend((ad.key, e.emotion, e.mean, e.peak, e.peak_time_s, e.share_above, e.variance)
                                for e in ad.emotions)
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(f"INSERT INTO ads ({', '.join(ADS_INSERT_COLUMNS)}) "
                           f"VALUES ({', '.join('?' * len(ADS_INSERT_COLUMNS))})", ad_rows)
            db.executemany("INSERT INTO frames (ad_key, idx, time_s, faces, box, raw, smoothed) VALUES (?,?,?,?,?,?,?)",
                           frame_rows)
            db.executemany("INSERT INTO shots (ad_key, idx, start_s) VALUES (?,?,?)", shot_rows)
            db.executemany("INSERT INTO emotions (ad_key, emotion, mean, peak, peak_time_s, share_above, variance) "
                           "VALUES (?,?,?,?,?,?,?)", emotion_rows)
        for ad in pending:
            if ad.timeline is not None:
                folder = thumbs / ad.key
                folder.mkdir(exist_ok=True)
                (folder / "00000.jpg").write_bytes(jpeg)
        pending.clear()

    for ad in ads:
        pending.append(ad)
        if len(pending) == per_transaction:
            written += len(pending)
            flush()
    written += len(pending)
    flush()
    return written


def _write_store(store: Store, ads: Iterator[NewAd], jpeg: bytes) -> int:
    written = 0
    for ad in ads:
        store.write_ad(ad, {0: jpeg} if ad.timeline is not None else None)
        written += 1
    return written


def is_built(root: Path, ads: int, frames: int) -> bool:
    if not (root / DB_NAME).is_file():
        return False
    try:
        with Store(root, readonly=True) as store:
            row = store.connection.execute("SELECT value FROM meta WHERE key = 'synthetic'").fetchone()
            columns = {c[1] for c in store.connection.execute("PRAGMA table_info(ads)")}
    except Exception:
        return False
    # a cache made before a column was added to the (unreleased) schema is rebuilt, not misread
    return (row is not None and row[0] == json.dumps({"generator": GENERATOR, "ads": ads, "frames": frames})
            and set(ADS_INSERT_COLUMNS) <= columns)


def build(root: Path = DEFAULT_ROOT, ads: int = 10_000, frames: int = 60, writer: str = "store",
          rebuild: bool = False, quiet: bool = False) -> float | None:
    """Build the cache unless an identical one is there; the seconds it took, or None if reused."""
    root = Path(root)
    if not rebuild and is_built(root, ads, frames):
        return None
    if root.exists():
        shutil.rmtree(root)
    start = time.perf_counter()
    jpeg = thumbnail_jpeg()
    with Store(root) as store:
        generated = synthetic_ads(ads, frames)
        written = (_write_batch if writer == "batch" else _write_store)(store, generated, jpeg)
        db = store.connection
        with db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('synthetic', ?)",
                       (json.dumps({"generator": GENERATOR, "ads": ads, "frames": frames}),))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        problems = store.check()
        if problems:
            raise RuntimeError(f"synthetic cache failed its check: {problems[:5]}")
        failed = db.execute("SELECT COUNT(*) FROM ads WHERE status = 'failed'").fetchone()[0]
    seconds = time.perf_counter() - start
    if not quiet:
        print(f"built SYNTHETIC cache at {root}: {written:,} ads ({failed} failed) × {frames} frames "
              f"with the {writer!r} writer in {seconds:.1f} s")
    return seconds


def build_figures(root: Path, ads: int = 100_000, frames: int = 60, rebuild: bool = False,
                  quiet: bool = False, seed: int = SEED) -> float | None:
    """A figures-only SYNTHETIC cache (ads and emotions rows); the seconds it took, or None if reused."""
    root = Path(root)
    marker = json.dumps({"generator": GENERATOR, "ads": ads, "frames": frames, "figures-only": True})
    if not rebuild and (root / DB_NAME).is_file():
        try:
            with Store(root, readonly=True) as store:
                row = store.connection.execute("SELECT value FROM meta WHERE key = 'synthetic'").fetchone()
            if row is not None and row[0] == marker:
                return None
        except Exception:
            pass
    if root.exists():
        shutil.rmtree(root)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    params = {**_params(), "figures_only": True}
    p_text = json.dumps(params, sort_keys=True)
    p_digest = hashlib.sha256(p_text.encode()).hexdigest()
    base = np.array([-0.6, -1.6, -1.0, 0.4, -0.2, -0.5, 0.9])
    now = time.time()
    chunk = 5000
    with Store(root) as store:
        db = store.connection
        for first in range(0, ads, chunk):
            n = min(chunk, ads - first)
            # one per-frame distribution per emotion for every ad (iid frames around `base`)
            probs = _softmax(base + rng.normal(0.0, 1.0, (n, frames, len(LABELS))))
            coverage = rng.uniform(0.02, 1.0, n)
            seen = rng.random((n, frames)) < coverage[:, None]
            seen[np.arange(n), rng.integers(0, frames, n)] = True  # at least one face frame
            failed = rng.random(n) < FAILED_SHARE
            count = seen.sum(axis=1)
            masked = np.where(seen[:, :, None], probs, np.nan)
            with np.errstate(invalid="ignore"):
                means = np.nanmean(masked, axis=1)
                variances = np.nanvar(masked, axis=1)
                peaks = np.nanmax(masked, axis=1)
            peak_at = np.nanargmax(np.where(seen[:, :, None], probs, -1.0), axis=1) / SAMPLE_RATE
            share = (np.where(seen[:, :, None], probs, 0.0) >= THRESHOLD).sum(axis=1) / frames
            ad_rows, emotion_rows = [], []
            for k in range(n):
                i = first + k + 1
                name = f"SYNTHETIC ad {i:06d}.mp4"
                content = hashlib.sha256(f"synthetic-figures-{seed}-{i}".encode()).hexdigest()
                key = hashlib.sha256(f"{content}:{p_digest}".encode()).hexdigest()[:20]
                common = dict(key=key, content_hash=content, params_hash=p_digest, params=params, name=name,
                              path=f"/synthetic/{name}", size_bytes=10_000_000, model=MODEL,
                              model_version=MODEL_VERSION, labels=LABELS)
                if failed[k]:
                    ad = NewAd(**common, status="failed", error="SYNTHETIC failure: not a readable video")
                else:
                    ad = NewAd(**common, info={"duration_s": frames / SAMPLE_RATE, "fps": 25.0, "width": 1280,
                                               "height": 720, "rotation": 0, "codec": "synthetic", "has_audio": True},
                               face_coverage=float(count[k] / frames), face_frames=int(count[k]),
                               face_seconds=float(count[k] / SAMPLE_RATE),
                               dominant_raw=LABELS[int(np.argmax(means[k]))])
                    emotion_rows.extend(
                        (key, LABELS[j], float(means[k, j]), float(peaks[k, j]), float(peak_at[k, j]),
                         float(share[k, j]), float(variances[k, j]))
                        for j in range(len(LABELS))
                    )
                row = list(ads_row(ad, now - (first + k) * 0.5))
                row[ADS_INSERT_COLUMNS.index("frames")] = 0 if failed[k] else frames
                if not failed[k]:  # the packed copy of the emotions rows (emocore.store.pack_figures)
                    row[ADS_INSERT_COLUMNS.index("figures")] = np.stack(
                        [means[k], variances[k], peaks[k], peak_at[k], share[k]], axis=1).astype(np.float64).tobytes()
                ad_rows.append(tuple(row))
            with db:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(f"INSERT INTO ads ({', '.join(ADS_INSERT_COLUMNS)}) "
                               f"VALUES ({', '.join('?' * len(ADS_INSERT_COLUMNS))})", ad_rows)
                db.executemany("INSERT INTO emotions (ad_key, emotion, mean, peak, peak_time_s, share_above, "
                               "variance) VALUES (?,?,?,?,?,?,?)", emotion_rows)
        with db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('synthetic', ?)", (marker,))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    seconds = time.perf_counter() - start
    if not quiet:
        print(f"built figures-only SYNTHETIC cache at {root}: {ads:,} ads in {seconds:.1f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--ads", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--writer", choices=("batch", "store", "figures"), default="store")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    if args.writer == "figures":
        took = build_figures(args.root, args.ads, args.frames, args.rebuild)
    else:
        took = build(args.root, args.ads, args.frames, args.writer, args.rebuild)
    if took is None:
        print(f"{args.root} already holds this synthetic cache (--rebuild to rebuild)")


if __name__ == "__main__":
    main()
