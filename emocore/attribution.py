"""LIME and SHAP over the same superpixels and the same prediction function, plus trust figures.

Both explainers take an image (RGB uint8), a segment map (H×W ints 0..K-1: the interpretable
features), a prediction function `predict(images N×H×W×3) -> N×L` and the label indices to
explain; neither knows about models. A "hidden" segment is painted the image's mean colour, in both
methods, so their numbers describe the same perturbations. (Not each segment's own mean colour,
`lime_image`'s default: that keeps every region's average, so it cannot reveal a model that reads
average brightness, and a blur keeps it too.) Images are perturbed at the resolution the model
reads, in one reused buffer per batch.

- LIME: the `lime` package's `LimeBase` fits its weighted ridge surrogate over binary samples
  drawn here the way `lime_image` draws them (the first sample keeps every segment; cosine
  distance to it; kernel width 0.25), but images are built and scored in batches, not one by one.
- SHAP: the `shap` package's KernelExplainer on the same binary segment features (background: all
  hidden), every evaluation batched.
- Trust (no extra model evaluations except the deletion check's):
  - seed-to-seed stability: the surrogate refitted on two disjoint halves of the same model
    evaluations (LIME: the even and the odd samples; SHAP: the kernel-weighted regression of
    Kernel SHAP, solved here exactly as shap solves it, over the enumerated coalitions plus half
    of the random ones each, random coalitions kept with their complements), the Spearman
    correlation of the two half maps, and the Spearman–Brown prediction 2r / (1 + r) of the
    correlation two full-size runs with different seeds would give;
  - LIME's R² beside its null (the same surrogate fitted to the outputs shuffled across the same
    samples, `NULL_DRAWS` times) and its R² on held-out samples (fit on one half, score the other);
  - a deletion check: the score drop when the top-weighted 10% / 20% of the area is hidden,
    against `RANDOM_DRAWS` random sets of segments of the same area (drawn once per label and
    shared by both methods): their mean, spread, the top drop's percentile among them and its z;
  - LIME–SHAP rank agreement.

Everything is seeded and uses its own generator: the same inputs and seed give identical weights,
whatever runs in other threads. shap 0.51's KernelExplainer takes no seed and draws its coalitions
from NumPy's global generator, so that draw (milliseconds, before any model evaluation) runs under
a module lock with the global generator seeded and then restored; the model runs outside the lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from emocore.errors import TooFewSamples, UnknownExplainer
from emocore.trust import LIME_MIN_PER_SEGMENT, Deletion, spearman_brown

# lime (scikit-learn), shap, scipy and skimage's SLIC cost seconds to import: they are imported where they are
# used, so reading the explainers' names and sample rules (`ExplainParams`) does not pay for them.

__all__ = ["Attribution", "Deletion", "Explainer", "KernelShap", "Lime", "agreement", "deletion_check",
           "deletion_checks", "explain_lime", "explain_shap", "segment"]

Predict = Callable[[np.ndarray], np.ndarray]

LIME_KERNEL_WIDTH = 0.25
#: Random region sets per hidden area in the deletion check (shared by LIME and SHAP of one label).
RANDOM_DRAWS = 32
DELETION_AREAS = (0.1, 0.2)
#: Shuffles of LIME's outputs whose mean R² is its null.
NULL_DRAWS = 8

#: Held while shap's KernelExplainer draws its coalitions from NumPy's global generator.
_GLOBAL_RNG_LOCK = threading.Lock()


@dataclass(frozen=True)
class Attribution:
    """One method's explanation of one label: a weight per segment and how far to trust it."""

    method: str
    label: int
    weights: np.ndarray
    """(K,) float: positive = the segment raises the score."""
    base: float
    """LIME: the surrogate's intercept. SHAP: the expected value (all segments hidden)."""
    score: float
    """The model's score for the label on the untouched image."""
    fit_r2: float | None
    """LIME: R² of the surrogate on its samples. SHAP: None (Shapley values are not a fit)."""
    samples: int
    seed: int
    seconds: float
    deletion: tuple[Deletion, ...]
    stability_half: float | None = None
    """Spearman correlation of the maps fitted on two disjoint halves of the same evaluations."""
    fit_r2_null: float | None = None
    """LIME: mean R² of the same surrogate on the outputs shuffled across the samples."""
    fit_r2_heldout: float | None = None
    """LIME: R² on held-out samples (fit on one half, scored on the other; mean of both ways)."""

    @property
    def stability(self) -> float | None:
        """Seed-to-seed stability at the full sample count: Spearman–Brown of `stability_half`."""
        return spearman_brown(self.stability_half)


def segment(image: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels numbered 0..K-1 (start_label=0: LIME assumes it; skimage 0.26 starts at 1)."""
    from skimage.segmentation import slic

    labels = slic(image, n_segments=n_segments, compactness=compactness, start_label=0, channel_axis=-1)
    _, dense = np.unique(labels, return_inverse=True)  # no gaps in the numbering
    return dense.reshape(labels.shape).astype(np.int32)


def hidden_fill(image: np.ndarray) -> np.ndarray:
    """What a hidden segment looks like: the image's mean colour everywhere."""
    mean = image.reshape(-1, image.shape[2]).mean(axis=0)
    return np.broadcast_to(np.round(mean).astype(np.uint8), image.shape)


def score_masks(image: np.ndarray, fill: np.ndarray, segments: np.ndarray, masks: np.ndarray,
                predict: Predict, batch: int) -> np.ndarray:
    """Model output for each mask row (True = segment kept), built and scored `batch` at a time."""
    masks = np.asarray(masks, dtype=bool)
    out = []
    buffer = np.empty((min(batch, len(masks)), *image.shape), dtype=image.dtype)
    for start in range(0, len(masks), batch):
        keep = masks[start:start + batch][:, segments]  # (b, H, W)
        images = buffer[: len(keep)]
        images[...] = fill
        np.copyto(images, image, where=keep[..., None])
        out.append(np.asarray(predict(images), dtype=np.float64))
    return np.concatenate(out) if out else np.zeros((0, 0))


def _lime_kernel(d: np.ndarray) -> np.ndarray:
    return np.sqrt(np.exp(-(d ** 2) / LIME_KERNEL_WIDTH ** 2))


def _weighted_r2(y: np.ndarray, predicted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """R² with sample weights, per column, as scikit-learn's `score(..., sample_weight=...)` computes it."""
    w = weights.reshape(-1, *([1] * (y.ndim - 1)))
    total = np.sum(w * (y - np.average(y, axis=0, weights=weights)) ** 2, axis=0)
    residual = np.sum(w * (y - predicted) ** 2, axis=0)
    return np.where(total > 0, 1.0 - residual / np.where(total > 0, total, 1.0), 0.0)


def weighted_ridge(x: np.ndarray, y: np.ndarray, weights: np.ndarray,
                   alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The surrogate LIME fits (scikit-learn's `Ridge(alpha=1)` with an intercept and sample weights),
    solved in closed form for one or many target columns at once: (intercept, coefficients)."""
    x_mean = np.average(x, axis=0, weights=weights)
    y_mean = np.average(y, axis=0, weights=weights)
    xc, yc = x - x_mean, y - y_mean
    wx = weights[:, None] * xc
    coef = np.linalg.solve(xc.T @ wx + alpha * np.eye(x.shape[1]), wx.T @ yc)
    return y_mean - x_mean @ coef, coef


def explain_lime(image: np.ndarray, segments: np.ndarray, predict: Predict, labels: Sequence[int],
                 samples: int, seed: int, batch: int = 64) -> list[Attribution]:
    """LIME weights per segment for each label, from one shared set of samples, with trust figures.

    The map and its R² are LimeBase's; the half-sample refits (stability, held-out R²) and the
    shuffled-output refits (null R²) solve the same ridge in closed form (`weighted_ridge`).
    Raises TooFewSamples (a ValueError) below `LIME_MIN_PER_SEGMENT` samples per segment.
    """
    from lime.lime_base import LimeBase

    start = time.perf_counter()
    k = int(segments.max()) + 1
    Lime.check_samples(samples, k)
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 2, size=(samples, k))
    data[0] = 1
    fill = hidden_fill(image)
    outputs = score_masks(image, fill, segments, data, predict, batch)
    # cosine distance of each sample to the untouched image (all ones), as lime_image computes it
    norms = np.sqrt(data.sum(axis=1)) * np.sqrt(k)
    distances = 1.0 - np.divide(data.sum(axis=1), norms, out=np.zeros(samples), where=norms > 0)
    kernel = _lime_kernel(distances)
    base = LimeBase(_lime_kernel, random_state=seed)
    x = data.astype(np.float64)
    a, b = np.arange(0, samples, 2), np.arange(1, samples, 2)  # the two halves: even and odd samples
    shuffles = np.random.default_rng([seed, 2]).permuted(np.tile(np.arange(samples), (NULL_DRAWS, 1)), axis=1)
    found = []
    for label in labels:
        intercept, pairs, r2, _ = base.explain_instance_with_data(
            data, outputs, distances, label, num_features=k, feature_selection="none")
        weights = np.zeros(k)
        for feature, weight in pairs:
            weights[feature] = weight
        y = outputs[:, label]
        (i_a, w_a), (i_b, w_b) = (weighted_ridge(x[rows], y[rows], kernel[rows]) for rows in (a, b))
        heldout = 0.5 * float(_weighted_r2(y[b], i_a + x[b] @ w_a, kernel[b])
                              + _weighted_r2(y[a], i_b + x[a] @ w_b, kernel[a]))
        noise = y[shuffles].T  # (samples, NULL_DRAWS): the outputs shuffled across the same samples
        i_n, w_n = weighted_ridge(x, noise, kernel)
        null = float(np.mean(_weighted_r2(noise, i_n + x @ w_n, kernel)))
        found.append((label, float(intercept), weights, float(r2), agreement(w_a, w_b), null, heldout))
    seconds = time.perf_counter() - start
    return [
        Attribution("lime", label, weights, intercept, float(outputs[0, label]), r2, samples, seed,
                    seconds / len(found), (), half, null, heldout)
        for label, intercept, weights, r2, half, null, heldout in found
    ]


@contextmanager
def _seeded_global_rng(seed: int) -> Iterator[Callable[[], None]]:
    """Hold the lock with NumPy's global generator seeded; yields `release()`, which restores it and lets go.

    `release` may be called early (once the library has drawn what it needs); it runs at the latest
    on leaving the block, exceptions included.
    """
    _GLOBAL_RNG_LOCK.acquire()
    state = np.random.get_state()
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            np.random.set_state(state)
            _GLOBAL_RNG_LOCK.release()

    try:
        np.random.seed(seed)
        yield release
    finally:
        release()


def _kernel_explainer(model: Callable[[np.ndarray], np.ndarray], k: int, release: Callable[[], None]):
    """A shap KernelExplainer that gives the global generator back once its coalitions are drawn.

    KernelExplainer.explain draws every coalition, then calls `run()` to evaluate the model on them,
    then solves; no draw happens after `run()` starts, so releasing there keeps the model outside the lock.
    """
    import shap  # heavy import, only when SHAP is asked for

    class Kernel(shap.KernelExplainer):
        def run(self) -> None:
            release()
            super().run()

    return Kernel(model, np.zeros((1, k)))


def _enumerated_sizes(m: int, nsamples: int) -> int:
    """How many coalition sizes Kernel SHAP enumerates completely (shap 0.51's rule, KernelExplainer.explain)."""
    from scipy.special import binom

    sizes = int(np.ceil((m - 1) / 2.0))
    paired = int(np.floor((m - 1) / 2.0))
    weights = np.array([(m - 1.0) / (i * (m - i)) for i in range(1, sizes + 1)])
    weights[:paired] *= 2
    weights /= weights.sum()
    left, remaining, full = nsamples, weights.copy(), 0
    for size in range(1, sizes + 1):
        count = binom(m, size) * (2 if size <= paired else 1)
        if left * remaining[size - 1] / count >= 1.0 - 1e-8:
            full += 1
            left -= count
            if remaining[size - 1] < 1.0:
                remaining /= 1 - remaining[size - 1]
        else:
            break
    return full


def kernel_shap_solve(masks: np.ndarray, kernel_weights: np.ndarray, outputs: np.ndarray, fx: float,
                      fnull: float) -> np.ndarray:
    """Shapley values from evaluated coalitions: Kernel SHAP's constrained weighted least squares,
    solved as shap 0.51 solves it (identity link, no L1 selection), so a subset of the coalitions
    can be refitted by the same estimator."""
    total = fx - fnull
    adjusted = outputs - fnull - masks[:, -1] * total
    x = masks[:, :-1] - masks[:, -1:]
    wx = kernel_weights[:, None] * x
    try:
        w = np.linalg.solve(x.T @ wx, wx.T @ adjusted)
    except np.linalg.LinAlgError:
        root = np.sqrt(kernel_weights)
        w = np.linalg.lstsq(root[:, None] * x, root * adjusted, rcond=None)[0]
    phi = np.append(w, total - w.sum())
    phi[np.abs(phi) < 1e-10] = 0.0
    return phi


def _shap_halves(masks: np.ndarray, kernel_weights: np.ndarray,
                 nsamples: int) -> tuple[tuple[np.ndarray, np.ndarray], ...] | None:
    """Two (rows, kernel weights) halves, each with every enumerated coalition and half of the random
    ones (a random coalition stays with its complement), their random weights rescaled to the full
    set's total. None when shap drew (almost) no random coalitions: then two seeds give (almost)
    the same values."""
    m = masks.shape[1]
    full = _enumerated_sizes(m, nsamples)
    sizes = masks.sum(axis=1)
    fixed = np.flatnonzero((sizes <= full) | (sizes >= m - full))
    drawn = np.setdiff1d(np.arange(len(masks)), fixed)
    if len(drawn) < 4:
        return None
    groups, current, i = np.empty(len(drawn), dtype=int), -1, 0
    while i < len(drawn):  # shap appends a coalition's complement right after it
        current += 1
        groups[i] = current
        if i + 1 < len(drawn) and np.array_equal(masks[drawn[i + 1]], 1 - masks[drawn[i]]):
            groups[i + 1] = current
            i += 1
        i += 1
    total = kernel_weights[drawn].sum()
    halves = []
    for parity in (0, 1):
        rows = drawn[groups % 2 == parity]
        weights = kernel_weights.copy()
        weights[rows] *= total / kernel_weights[rows].sum()
        halves.append((np.concatenate([fixed, rows]), weights))
    return tuple(halves)


def explain_shap(image: np.ndarray, segments: np.ndarray, predict: Predict, labels: Sequence[int],
                 samples: int, seed: int, batch: int = 64) -> list[Attribution]:
    """Kernel SHAP values per segment for each label (background: every segment hidden), with stability."""
    start = time.perf_counter()
    k = int(segments.max()) + 1
    fill = hidden_fill(image)
    chosen = list(labels)

    def model(z: np.ndarray) -> np.ndarray:
        return score_masks(image, fill, segments, z > 0.5, predict, batch)[:, chosen]

    with _seeded_global_rng(seed) as release:
        explainer = _kernel_explainer(model, k, release)
        values = explainer.shap_values(np.ones((1, k)), nsamples=samples, l1_reg=False, silent=True)
    values = np.asarray(values).reshape(k, len(chosen))
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    untouched = np.atleast_1d(np.asarray(explainer.fx, dtype=np.float64))
    halves = None
    if k > 1 and getattr(explainer, "maskMatrix", None) is not None:
        masks = np.asarray(explainer.maskMatrix)[: explainer.nsamplesAdded]
        halves = _shap_halves(masks, np.asarray(explainer.kernelWeights)[: len(masks)], explainer.nsamples)
    found = []
    for j, label in enumerate(chosen):
        if halves is None:
            half = 1.0 if k > 1 else None  # every coalition enumerated: another seed gives the same values
        else:
            ey = np.asarray(explainer.ey)[:, j]
            maps = [kernel_shap_solve(masks[rows], weights[rows], ey[rows], untouched[j], expected[j])
                    for rows, weights in halves]
            half = agreement(*maps)
        found.append((label, j, half))
    seconds = time.perf_counter() - start
    return [
        Attribution("shap", label, values[:, j].astype(np.float64), float(expected[j]), float(untouched[j]),
                    None, samples, seed, seconds / len(chosen), (), half)
        for label, j, half in found
    ]


def _cover(order: np.ndarray, areas: np.ndarray, target: float) -> np.ndarray:
    """The first segments of `order` whose areas add up to at least `target`."""
    cumulative = np.cumsum(areas[order])
    return order[: int(np.searchsorted(cumulative, target - 1e-12)) + 1]


def deletion_checks(image: np.ndarray, segments: np.ndarray, predict: Predict, label: int,
                    weights: Mapping[str, np.ndarray], seed: int, batch: int = 64,
                    draws: int = RANDOM_DRAWS) -> dict[str, tuple[Deletion, ...]]:
    """For each map in `weights`: hide its top-weighted segments covering 10% / 20% of the area, and
    compare the score drop with hiding `draws` random sets of the same area (the same random sets
    for every map)."""
    if draws < 2:
        raise ValueError(f"the deletion check needs at least 2 random draws, got {draws}")
    names = list(weights)
    k = int(segments.max()) + 1
    areas = np.bincount(segments.ravel(), minlength=k) / segments.size
    rng = np.random.default_rng([seed, 1])
    masks = [np.ones(k, dtype=bool)]
    for area in DELETION_AREAS:
        for name in names:
            top_mask = np.ones(k, dtype=bool)
            top_mask[_cover(np.argsort(-np.asarray(weights[name]), kind="stable"), areas, area)] = False
            masks.append(top_mask)
        for _ in range(draws):
            random_mask = np.ones(k, dtype=bool)
            random_mask[_cover(rng.permutation(k), areas, area)] = False
            masks.append(random_mask)
    hidden = [float(areas[~mask].sum()) for mask in masks]
    scores = score_masks(image, hidden_fill(image), segments, np.array(masks), predict, batch)[:, label]
    drops = scores[0] - scores
    checks: dict[str, list[Deletion]] = {name: [] for name in names}
    at = 1
    for area in DELETION_AREAS:
        tops = range(at, at + len(names))
        drawn = slice(at + len(names), at + len(names) + draws)
        random_drops = drops[drawn]
        mean, std = float(random_drops.mean()), float(random_drops.std(ddof=1))
        for name, row in zip(names, tops):
            top = float(drops[row])
            below = np.sum(random_drops < top - 1e-12)
            ties = np.sum(np.abs(random_drops - top) <= 1e-12)
            checks[name].append(Deletion(
                area=area, top_drop=top, random_drop=mean, random_std=std,
                percentile=float(100.0 * (below + 0.5 * ties) / draws),
                z=None if std < 1e-12 else (top - mean) / std, draws=draws,
                top_area=hidden[row], random_area=float(np.mean(hidden[drawn])),
            ))
        at += len(names) + draws
    return {name: tuple(found) for name, found in checks.items()}


def deletion_check(image: np.ndarray, segments: np.ndarray, predict: Predict, label: int,
                   weights: np.ndarray, seed: int, batch: int = 64, draws: int = RANDOM_DRAWS) -> tuple[Deletion, ...]:
    """The deletion check of one map (see `deletion_checks`)."""
    return deletion_checks(image, segments, predict, label, {"map": weights}, seed, batch, draws)["map"]


def agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation of two weight vectors over the same segments (None if undefined)."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    from scipy.stats import rankdata

    # Pearson's r of the average ranks: scipy's spearmanr without its input checks (10× faster)
    ra, rb = rankdata(a) - (len(a) + 1) / 2, rankdata(b) - (len(b) + 1) / 2
    return float(np.clip(ra @ rb / np.sqrt((ra @ ra) * (rb @ rb)), -1.0, 1.0))


# --------------------------------------------------------------------------------------------
# the explainers as backends: one interface, picked by name from emocore.registry.EXPLAINERS
# --------------------------------------------------------------------------------------------


class Explainer:
    """Attributes a prediction function's outputs to the segments of an image (Captum's interface).

        explainer = EXPLAINERS.build("lime", predict)      # or Lime(predict)
        found = explainer.attribute(image, segments=segments, labels=[3], n_samples=500, seed=0)

    `predict(images N×H×W×3 uint8) -> N×L`; `segments` (H×W ints 0..K-1) is the feature mask;
    `labels` the output columns to explain. Returns one `Attribution` per label, in order. Each
    backend declares its `NAME` (its key in the registry) and its sample rule (`min_samples`).
    """

    NAME: ClassVar[str] = ""
    TITLE: ClassVar[str] = ""
    """The method's name in messages ("LIME")."""
    RULE: ClassVar[str] = ""
    """The sample rule in words ("4 per segment"), for messages."""

    def __init__(self, forward_fn: Predict) -> None:
        self.forward_fn = forward_fn

    @classmethod
    def from_name(cls, argument: str | None, forward_fn: Predict) -> "Explainer":
        """For `EXPLAINERS.build(NAME, forward_fn)`: explainers take no argument after their name."""
        if argument is not None:
            raise UnknownExplainer(f"unknown explanation method {cls.NAME + ':' + argument!r}: "
                                   f"{cls.NAME!r} takes no argument")
        return cls(forward_fn)

    @classmethod
    def min_samples(cls, segments: int) -> int:
        """The fewest samples (model evaluations) the method accepts over `segments` segments."""
        return 1

    @classmethod
    def check_samples(cls, samples: int, segments: int) -> None:
        """TooFewSamples (a ValueError) when `samples` is below `min_samples(segments)`."""
        needed = cls.min_samples(segments)
        if samples < needed:
            raise TooFewSamples(f"{cls.TITLE} over {segments} segments needs at least {needed} samples "
                                f"({cls.RULE}), got {samples}")

    def attribute(self, image: np.ndarray, *, segments: np.ndarray, labels: Sequence[int], n_samples: int,
                  seed: int, batch: int = 64) -> list[Attribution]:
        """One `Attribution` per label: a weight per segment, with its trust figures."""
        raise NotImplementedError


class Lime(Explainer):
    """LIME over the segments (`explain_lime`)."""

    NAME = "lime"
    TITLE = "LIME"
    RULE = f"{LIME_MIN_PER_SEGMENT} per segment"

    @classmethod
    def min_samples(cls, segments: int) -> int:
        return LIME_MIN_PER_SEGMENT * segments

    def attribute(self, image: np.ndarray, *, segments: np.ndarray, labels: Sequence[int], n_samples: int,
                  seed: int, batch: int = 64) -> list[Attribution]:
        return explain_lime(image, segments, self.forward_fn, labels, n_samples, seed, batch)


class KernelShap(Explainer):
    """Kernel SHAP over the segments (`explain_shap`)."""

    NAME = "shap"
    TITLE = "Kernel SHAP"
    RULE = "2 per segment + 2"

    @classmethod
    def min_samples(cls, segments: int) -> int:
        return 2 * segments + 2

    def attribute(self, image: np.ndarray, *, segments: np.ndarray, labels: Sequence[int], n_samples: int,
                  seed: int, batch: int = 64) -> list[Attribution]:
        return explain_shap(image, segments, self.forward_fn, labels, n_samples, seed, batch)
