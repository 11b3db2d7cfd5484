"""Explanation speed against its floor and against the libraries' defaults, on a real 720p face frame.

    python benchmarks/bench_explain.py [--repeat 3] [--threads 1] [--library-samples 50]
                                       [--index | --no-index] [--index-repeat 1]
                                       [--libraries | --no-libraries] [--stability-frames 10]

The frame: the 30 s 1280×720 benchmark clip (cache/bench/, built once from the demo footage, as in
bench_index.py) sampled at 2 frames/s; the frame whose largest face gets the most confident
emotion is explained for that emotion (deterministic).

Measured (medians of `--repeat` runs; the machine is shared and noisy, so read the ratios):
- ours: `explain_lime` and `explain_shap` at the shipped settings (`ExplainParams()`) on the face
  region the model reads (`FaceEmotionModel.explanation_input`), every prediction call counted
  and timed, so each method's own work (time outside the model) is shown beside its total. Their
  trust figures are included: the half-sample refits (stability), LIME's null and held-out R²;
  the deletion check (its own model evaluations, shared by both maps of a label) is timed on its
  own line;
- the floor: the same number of model evaluations alone (`target.predict` on copies of the
  region, built beforehand) at the best of several batch sizes → ours / floor, target ≤ 1.5×.
  Ours and the floors run interleaved, repeat by repeat, so a burst of load on the machine
  hits both sides of the ratio;
- the libraries' defaults at the same number of evaluations, on the full frame with the same face
  model (classified at the face boxes of the original frame): LIME's `LimeImageExplainer`
  (quickshift, each hidden superpixel filled with its own mean, batch 10) and SHAP's Partition
  explainer with the `inpaint_telea` and `blur(128,128)` Image maskers (masker and explainer
  built once, one warm-up call outside the timing, `outputs=` passed) → speed-up of ours, target
  ≥ 3×. LIME and the inpaint masker cost 0.1–0.3 s an evaluation at 720p, so after a warm-up
  call they run once at `--library-samples` evaluations and once at a fifth of that, and the
  time at the full count is read off the straight line through the two points (each is a fixed
  cost plus a loop over evaluations); `--library-samples 500` measures them directly instead
  (several minutes);
- with `--index` (default): `index_folder` over cache/demo-ads without and with explanations
  (fresh caches, the model loaded once), `--index-repeat` times each (one by default: two
  passes over five clips take ~1 minute), and the frames explained.

- with `--stability-frames N` (default 10): on N face frames of the demo ads (the clips in turn),
  each method's half-split stability and its Spearman–Brown prediction beside the true Spearman
  correlation between seeds 0 and 1 at the full sample count, and the LIME–SHAP agreement.

The whole run takes about 4 minutes on two cores.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TQDM_DISABLE", "1")  # lime_image draws a progress bar it offers no switch for

import numpy as np  # noqa: E402
import torch  # noqa: E402

from emocore.devtools import media  # noqa: E402
from emocore.explain import ExplainParams  # noqa: E402
from emocore.attribution import deletion_checks, explain_lime, explain_shap, segment  # noqa: E402
from emocore.indexer import index_folder  # noqa: E402
from emocore.models import load_model  # noqa: E402
from emocore.models.base import EmotionModel  # noqa: E402
from emocore.trust import LIME_MIN_PER_SEGMENT  # noqa: E402
from emocore.video import open_video  # noqa: E402

Predict = Callable[[np.ndarray], np.ndarray]

FLOOR_BATCHES = (16, 32, 64, 128, 256)
FLOOR_TARGET = 1.5
SPEEDUP_TARGET = 3.0
#: The libraries' batch sizes in this comparison: LIME's default, and SHAP's usual 50.
LIME_BATCH = 10
SHAP_BATCH = 50
SHAP_WARMUP_EVALS = 20


class Counted:
    """A prediction function that counts the images it scores and the seconds spent in it
    (mutable on purpose: it is a counter)."""

    def __init__(self, fn: Predict) -> None:
        self.fn = fn
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, images: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = self.fn(images)
        self.seconds += time.perf_counter() - start
        self.calls += len(images)
        return out

    def reset(self) -> None:
        self.calls, self.seconds = 0, 0.0


@dataclass(frozen=True)
class Run:
    """One timed run: wall seconds, evaluations made, seconds inside the prediction function."""

    seconds: float
    evals: int
    in_predict: float = 0.0


@dataclass(frozen=True)
class Result:
    """A measured (or estimated) configuration, as the table prints it."""

    name: str
    seconds: float
    evals: int
    in_predict: float | None = None
    note: str = ""


def timed(fn: Callable[[], object], counter: Counted | None = None) -> Run:
    if counter is not None:
        counter.reset()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return Run(seconds, counter.calls if counter else 0, counter.seconds if counter else 0.0)


def medians(runs: list[Run], name: str, note: str = "") -> Result:
    return Result(name, statistics.median(r.seconds for r in runs), runs[-1].evals,
                  statistics.median(r.in_predict for r in runs), note)


def floor_run(predict: Predict, image: np.ndarray, count: int, batch: int) -> Callable[[], None]:
    """`count` evaluations of `predict` alone, `batch` at a time, on copies built beforehand."""
    copies = np.repeat(image[None], min(batch, count), axis=0)

    def run() -> None:
        for start in range(0, count, batch):
            predict(copies[: min(batch, count - start)])

    return run


def line_through(small: Run, large: Run, n: int) -> float:
    """Seconds at `n` evaluations on the straight line through two measured runs."""
    per_eval = (large.seconds - small.seconds) / (large.evals - small.evals)
    return large.seconds + per_eval * (n - large.evals)


def _estimated(small: Run, large: Run, n: int) -> str:
    return (f"estimated at {n} evals: the line through {small.seconds:.1f} s at {small.evals} "
            f"and {large.seconds:.1f} s at {large.evals} evals")


def pick_frame(model: EmotionModel, clip: Path) -> tuple[int, float, np.ndarray, np.ndarray, int, float]:
    """The sampled frame whose largest face is most confidently one emotion (the first on ties):
    its index, time, image, faces, top label and that label's probability."""
    with open_video(clip) as video:
        sampled = list(video.sample(2.0, 1280))
    frames = [s.image for s in sampled]
    faces = model.detect(frames)
    probs = model.classify(frames, faces)
    top = np.nan_to_num(probs, nan=-1.0).max(axis=1)  # a frame without a face: a NaN row → -1
    best = int(np.argmax(top))
    if top[best] < 0:
        raise SystemExit(f"no face found in {clip}")
    label = int(np.argmax(probs[best]))
    return best, sampled[best].time_s, frames[best], faces[best], label, float(probs[best, label])


def ours_and_floors(target, segments: np.ndarray, label: int, params: ExplainParams,
                    repeat: int) -> tuple[Result, Result, dict[int, dict[int, float]], dict[str, np.ndarray]]:
    """Our two methods and the floors, interleaved repeat by repeat; floors[batch][evals] = seconds; the maps."""
    counter = Counted(target.predict)

    def lime_once() -> None:
        maps["lime"] = explain_lime(target.image, segments, counter, [label], params.lime_samples, params.seed,
                                    params.batch)[0].weights

    def shap_once() -> None:
        maps["shap"] = explain_shap(target.image, segments, counter, [label], params.shap_samples, params.seed,
                                    params.batch)[0].weights

    maps: dict[str, np.ndarray] = {}

    lime_runs, shap_runs = [], []
    floor_runs: dict[int, dict[int, list[float]]] = {b: {} for b in FLOOR_BATCHES}
    for _ in range(repeat):
        lime_runs.append(timed(lime_once, counter))
        shap_runs.append(timed(shap_once, counter))
        for batch in FLOOR_BATCHES:
            for count in {lime_runs[-1].evals, shap_runs[-1].evals}:
                seconds = timed(floor_run(target.predict, target.image, count, batch)).seconds
                floor_runs[batch].setdefault(count, []).append(seconds)
    floors = {b: {n: statistics.median(t) for n, t in by_count.items()} for b, by_count in floor_runs.items()}
    return (medians(lime_runs, f"ours: LIME, batch {params.batch}"),
            medians(shap_runs, f"ours: SHAP (Kernel), batch {params.batch}"), floors, maps)


def library_lime(frame: np.ndarray, fn: Counted, label: int, n: int, samples: int, direct: bool) -> Result:
    from lime import lime_image

    name = f"LIME defaults (quickshift), batch {LIME_BATCH}"

    def run(count: int) -> Callable[[], object]:
        explainer = lime_image.LimeImageExplainer(random_state=0)
        return lambda: explainer.explain_instance(frame, fn, labels=(label,), top_labels=None, num_samples=count,
                                                  batch_size=LIME_BATCH, random_seed=0)

    run(2)()  # the first call loads quickshift's code and warms the caches; keep it out of the timing
    if direct:
        return medians([timed(run(n), fn)], name, "measured: 1 run")
    small, large = timed(run(max(2, samples // 5)), fn), timed(run(samples), fn)
    return Result(name, line_through(small, large, n), n, None, _estimated(small, large, n))


def library_shap(frame: np.ndarray, fn: Counted, masker, names: list[str], label: int, n: int, samples: int,
                 direct: bool, repeat: int) -> Result:
    """The Partition explainer over `masker` (built by the caller, once): timed after a warm-up call."""
    import shap

    explainer = shap.Explainer(fn, masker, output_names=names)
    name = f"SHAP Partition, {masker.input_mask_value}, batch {SHAP_BATCH}"

    def run(count: int) -> Callable[[], object]:
        return lambda: explainer(frame[None], max_evals=count, batch_size=SHAP_BATCH, outputs=[label], silent=True)

    run(SHAP_WARMUP_EVALS)()  # the first call compiles; keep it out of the timing
    if direct:
        return medians([timed(run(n), fn) for _ in range(repeat)], name)
    small, large = timed(run(max(SHAP_WARMUP_EVALS, samples // 5)), fn), timed(run(samples), fn)
    return Result(name, line_through(small, large, n), n, None, _estimated(small, large, n))


def same_tree(masker, mask_value: str):
    """An Image masker for `mask_value` sharing `masker`'s partition tree.

    The tree depends only on the image shape and takes ~30 s to build at 720p; rebuilding it for a
    second masker would only lengthen the run. The result holds what `Image(mask_value, shape)`
    would build.
    """
    twin = copy.copy(masker)
    twin.input_mask_value = twin.mask_value = mask_value
    twin.blur_kernel = tuple(map(int, mask_value[5:-1].split(","))) if mask_value.startswith("blur(") else None
    twin._blur_value_cache = None
    twin.last_xid = None
    return twin


def index_times(model: EmotionModel, repeat: int) -> tuple[float, float, int]:
    """Median seconds to index the demo ads without and with explanations, and the frames explained."""
    folder = ROOT / "cache" / "demo-ads"
    explained = 0

    def once(explain: ExplainParams | None) -> float:
        nonlocal explained
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            report = index_folder(folder, cache, model=model, explain=explain)
            seconds = time.perf_counter() - start
        if report.failed:
            raise SystemExit(f"indexing failed: {report.failed}")
        explained = sum(o.explained for o in report.outcomes)
        return seconds

    plain = statistics.median(once(None) for _ in range(repeat))
    full = statistics.median(once(ExplainParams()) for _ in range(repeat))
    return plain, full, explained


@dataclass(frozen=True)
class StabilityRow:
    """One explained frame: a method's half-split stability, its Spearman–Brown prediction, the true
    two-seed Spearman at the full sample count, and the LIME–SHAP agreement."""

    clip: str
    time_s: float
    method: str
    half: float
    predicted: float
    two_seeds: float
    agreement: float


def demo_face_frames(model: EmotionModel, count: int) -> list[tuple[str, float, np.ndarray, tuple, int]]:
    """Up to `count` frames with a face from the demo ads (every clip in turn, 1 frame/s, evenly spread):
    clip name, time, frame, largest face, most probable label."""
    per_clip: list[list[tuple[str, float, np.ndarray, tuple, int]]] = []
    for clip in sorted((ROOT / "cache" / "demo-ads").iterdir()):
        with open_video(clip) as video:
            sampled = list(video.sample(1.0, 1280))
        frames = [s.image for s in sampled]
        faces = model.detect(frames)
        probs = model.classify(frames, faces)
        found = [(clip.name, s.time_s, s.image, f[0], int(np.nanargmax(p)))
                 for s, f, p in zip(sampled, faces, probs) if len(f)]
        per_clip.append(found[::4] + found[2::4] + found[1::2])  # spread over the clip first
    chosen: list[tuple[str, float, np.ndarray, tuple, int]] = []
    for i in range(max(map(len, per_clip), default=0)):  # the clips in turn
        chosen += [found[i] for found in per_clip if i < len(found)]
    return chosen[:count]


def stability_rows(model: EmotionModel, params: ExplainParams, count: int) -> list[StabilityRow]:
    """Half-split stability against a true second seed (seed + 1) at the full sample count, per method."""
    from emocore.attribution import agreement

    rows = []
    for clip, time_s, frame, face, label in demo_face_frames(model, count):
        target = model.explanation_input(frame, face)
        segments = segment(target.image, params.n_segments, params.compactness)
        runs = {}
        for name, explainer, samples in (("lime", explain_lime, params.lime_samples),
                                         ("shap", explain_shap, params.shap_samples)):
            runs[name] = [explainer(target.image, segments, target.predict, [label], samples, seed, params.batch)[0]
                          for seed in (params.seed, params.seed + 1)]
        agree = agreement(runs["lime"][0].weights, runs["shap"][0].weights)
        for name, (first, second) in runs.items():
            if first.stability_half is None:
                continue
            rows.append(StabilityRow(clip, time_s, name, first.stability_half, first.stability,
                                     agreement(first.weights, second.weights), agree))
    return rows


def print_stability(rows: list[StabilityRow]) -> None:
    print(f"\nstability: half-split (one run) against two seeds at the full sample count, {len(rows) // 2} demo "
          "face frames")
    print(f"{'':8}{'half-split':>11}{'Spearman-Brown':>16}{'two seeds':>11}{'SB - two seeds':>16}"
          f"{'|SB - two|':>12}{'corr over frames':>18}")
    for method in ("lime", "shap"):
        mine = [r for r in rows if r.method == method]
        if not mine:
            continue
        half, predicted, two = (np.array([getattr(r, f) for r in mine]) for f in ("half", "predicted", "two_seeds"))
        corr = float(np.corrcoef(predicted, two)[0, 1]) if len(mine) > 2 and predicted.std() > 0 else float("nan")
        print(f"{method.upper():8}{half.mean():11.2f}{predicted.mean():16.2f}{two.mean():11.2f}"
              f"{(predicted - two).mean():+16.2f}{np.abs(predicted - two).mean():12.2f}{corr:18.2f}")
        print(f"{'':8}range {half.min():.2f}–{half.max():.2f}{'':4}{predicted.min():.2f}–{predicted.max():.2f}"
              f"{'':6}{two.min():.2f}–{two.max():.2f}")
    agree = np.array([r.agreement for r in rows if r.method == "lime"])
    if len(agree):
        print(f"LIME–SHAP agreement on the same frames: median {np.median(agree):.2f} "
              f"(range {agree.min():.2f}–{agree.max():.2f})")


def libraries(model: EmotionModel, frame: np.ndarray, faces: np.ndarray, label: int, lime: Result, shap_: Result,
              params: ExplainParams, args: argparse.Namespace, shap_cold: float) -> None:
    """The libraries' defaults on the full frame at our evaluation counts, and how much faster ours is."""
    library = Counted(lambda images: model.classify(list(images), [faces] * len(images)))
    lib_lime = library_lime(frame, library, label, lime.evals, args.library_samples,
                            args.library_samples >= params.lime_samples)
    import shap

    start = time.perf_counter()
    inpaint = shap.maskers.Image("inpaint_telea", frame.shape)
    masker_s = time.perf_counter() - start
    names = list(model.labels)
    lib_inpaint = library_shap(frame, library, inpaint, names, label, shap_.evals, args.library_samples,
                               args.library_samples >= params.shap_samples, args.repeat)
    lib_blur = library_shap(frame, library, same_tree(inpaint, "blur(128,128)"), names, label, shap_.evals,
                            shap_.evals, True, args.repeat)
    print("\nthe libraries' defaults on the full frame, same evaluations (ratio: how much faster ours is)")
    for result, ours in ((lib_lime, lime), (lib_inpaint, shap_), (lib_blur, shap_)):
        speedup = result.seconds / ours.seconds
        own = f"{result.seconds - result.in_predict:9.2f}s" if result.in_predict is not None else f"{'':10}"
        print(f"{result.name:42}{result.seconds:8.2f}{result.evals:6d}{own}{speedup:8.1f}×  "
              f"≥ {SPEEDUP_TARGET:g}× faster: {verdict(speedup >= SPEEDUP_TARGET)}")
        if result.note:
            print(f"  {result.note}")
    print(f"  not timed above, paid once per process: SHAP's import and first small call {shap_cold:.1f} s; "
          f"the 720p Image masker's partition tree {masker_s:.1f} s")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CLI's default is 1)")
    parser.add_argument("--library-samples", type=int, default=50,
                        help="evaluations at which LIME's defaults and the inpaint masker run (at least the shipped "
                             "sample count: measured at it)")
    parser.add_argument("--index", action=argparse.BooleanOptionalAction, default=True,
                        help="also time index_folder over cache/demo-ads without and with explanations")
    parser.add_argument("--index-repeat", type=int, default=1)
    parser.add_argument("--libraries", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the libraries' defaults on the full frame")
    parser.add_argument("--stability-frames", type=int, default=10,
                        help="demo face frames on which the half-split stability is checked against two seeds "
                             "(0: skip)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wall = time.perf_counter()

    clip = media.face_clip_720p(ROOT / "cache" / "bench" / "face_720p_30s.mp4", seconds=30)  # ~35 s the first time
    model = load_model("fer")
    index, at_s, frame, faces, label, prob = pick_frame(model, clip)
    params = ExplainParams()
    target = model.explanation_input(frame, faces[0])
    segments = segment(target.image, params.n_segments, params.compactness)
    print(f"frame: {clip.name} #{index} at {at_s:.1f} s, {frame.shape[1]}×{frame.shape[0]}; face at "
          f"{', '.join(f'{v:.0f}' for v in faces[0][:4])}; explaining {model.labels[label]} ({prob:.2f}); "
          f"torch threads {args.threads}")
    print(f"ours: the face region, {target.image.shape[1]}×{target.image.shape[0]} px, {int(segments.max()) + 1} SLIC "
          f"segments; LIME {params.lime_samples} / SHAP {params.shap_samples} samples")

    # warm-up, untimed: the model's first calls, and SHAP's import plus one small call
    k = int(segments.max()) + 1
    explain_lime(target.image, segments, target.predict, [label], max(100, LIME_MIN_PER_SEGMENT * k), 0, params.batch)
    start = time.perf_counter()
    explain_shap(target.image, segments, target.predict, [label], 100, 0, params.batch)
    shap_cold = time.perf_counter() - start
    lime, shap_, floors, maps = ours_and_floors(target, segments, label, params, args.repeat)

    def best(evals: int) -> tuple[int, float]:
        batch = min(FLOOR_BATCHES, key=lambda b: floors[b][evals])
        return batch, floors[batch][evals]

    print(f"\n{'':42}{'seconds':>8}{'evals':>6}{'own work':>10}{'ratio':>9}  target")
    for result in (lime, shap_):
        batch, floor = best(result.evals)
        ratio = result.seconds / floor
        own = result.seconds - (result.in_predict or 0.0)
        print(f"{result.name:42}{result.seconds:8.2f}{result.evals:6d}{own:9.2f}s{ratio:8.2f}×  "
              f"≤ {FLOOR_TARGET:g}× its floor: {verdict(ratio <= FLOOR_TARGET)}")
        print(f"{f'  floor: the model alone, batch {batch}':42}{floor:8.2f}{result.evals:6d}")
    print("  floor by batch size: " + ", ".join(f"{b}: {floors[b][lime.evals]:.2f} s" for b in FLOOR_BATCHES)
          + f" ({lime.evals} evals)")
    counter = Counted(target.predict)
    checked = [timed(lambda: deletion_checks(target.image, segments, counter, label, maps, params.seed, params.batch),
                     counter) for _ in range(args.repeat)]
    check = medians(checked, "")
    floor = statistics.median(timed(floor_run(target.predict, target.image, check.evals, params.batch)).seconds
                              for _ in range(args.repeat))
    print(f"{'deletion check, both maps of one label':42}{check.seconds:8.2f}{check.evals:6d}"
          f"{check.seconds - check.in_predict:9.2f}s{check.seconds / floor:8.2f}×  (not part of the ratios above)")

    if args.libraries:
        library = Counted(lambda images: model.classify(list(images), [faces] * len(images)))
        library_floor = medians([timed(floor_run(library, frame, lime.evals, SHAP_BATCH))], "")
        print(f"{'  floor on the full 720p frame, batch 50':42}{library_floor.seconds:8.2f}{lime.evals:6d}"
              f"{'':10}{library_floor.seconds / best(lime.evals)[1]:8.2f}×  of ours (1 run)")
        libraries(model, frame, faces, label, lime, shap_, params, args, shap_cold)

    if args.stability_frames:
        print_stability(stability_rows(model, params, args.stability_frames))

    if args.index:
        plain, full, explained = index_times(model, args.index_repeat)
        runs = f"median of {args.index_repeat}" if args.index_repeat > 1 else "1 run each"
        print(f"\nindex cache/demo-ads ({runs}, model loaded once):")
        print(f"  scores only               {plain:7.2f} s")
        print(f"  with ExplainParams()      {full:7.2f} s   {full / plain:.2f}× scores only; {explained} frames "
              f"explained, {(full - plain) / max(explained, 1):.2f} s each")
    print(f"\nbenchmark wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
