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
- Trust: a deletion check (score drop when the top-weighted 10% / 20% of the area is hidden,
  against random segments of the same area) and LIME–SHAP rank agreement.

Everything is seeded: the same inputs and seed give identical weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from lime.lime_base import LimeBase
from scipy.stats import spearmanr
from skimage.segmentation import slic

Predict = Callable[[np.ndarray], np.ndarray]

LIME_KERNEL_WIDTH = 0.25
#: Random region sets averaged in the deletion check's baseline.
RANDOM_SETS = 16
DELETION_AREAS = (0.1, 0.2)


@dataclass(frozen=True)
class Deletion:
    """Score drops when regions covering `area` of the image are hidden (positive = score fell).

    Whole segments are hidden until they cover `area`, so the area really hidden is a little
    more: `top_area` for the top-weighted set, `random_area` on average for the random sets.
    """

    area: float
    top_drop: float
    random_drop: float
    top_area: float
    random_area: float


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


def segment(image: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC superpixels numbered 0..K-1 (start_label=0: LIME assumes it; skimage 0.26 starts at 1)."""
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


def explain_lime(image: np.ndarray, segments: np.ndarray, predict: Predict, labels: Sequence[int],
                 samples: int, seed: int, batch: int = 64) -> list[Attribution]:
    """LIME weights per segment for each label, from one shared set of samples."""
    start = time.perf_counter()
    k = int(segments.max()) + 1
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 2, size=(samples, k))
    data[0] = 1
    fill = hidden_fill(image)
    outputs = score_masks(image, fill, segments, data, predict, batch)
    # cosine distance of each sample to the untouched image (all ones), as lime_image computes it
    norms = np.sqrt(data.sum(axis=1)) * np.sqrt(k)
    distances = 1.0 - np.divide(data.sum(axis=1), norms, out=np.zeros(samples), where=norms > 0)
    base = LimeBase(lambda d: np.sqrt(np.exp(-(d ** 2) / LIME_KERNEL_WIDTH ** 2)), random_state=seed)
    fitted = []
    for label in labels:
        intercept, pairs, r2, _ = base.explain_instance_with_data(
            data, outputs, distances, label, num_features=k, feature_selection="none"
        )
        weights = np.zeros(k)
        for feature, weight in pairs:
            weights[feature] = weight
        fitted.append((label, float(intercept), weights, float(r2)))
    seconds = time.perf_counter() - start
    return [
        Attribution("lime", label, weights, intercept, float(outputs[0, label]), r2, samples, seed,
                    seconds / len(fitted), ())
        for label, intercept, weights, r2 in fitted
    ]


def explain_shap(image: np.ndarray, segments: np.ndarray, predict: Predict, labels: Sequence[int],
                 samples: int, seed: int, batch: int = 64) -> list[Attribution]:
    """Kernel SHAP values per segment for each label (background: every segment hidden)."""
    import shap  # heavy import, only when SHAP is asked for

    start = time.perf_counter()
    k = int(segments.max()) + 1
    fill = hidden_fill(image)
    chosen = list(labels)

    def model(z: np.ndarray) -> np.ndarray:
        return score_masks(image, fill, segments, z > 0.5, predict, batch)[:, chosen]

    explainer = shap.KernelExplainer(model, np.zeros((1, k)))
    state = np.random.get_state()  # KernelExplainer samples from NumPy's global generator
    np.random.seed(seed)
    try:
        values = explainer.shap_values(np.ones((1, k)), nsamples=samples, l1_reg=False, silent=True)
    finally:
        np.random.set_state(state)
    values = np.asarray(values).reshape(k, len(chosen))
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    untouched = model(np.ones((1, k)))[0]
    seconds = time.perf_counter() - start
    return [
        Attribution("shap", label, values[:, j].astype(np.float64), float(expected[j]), float(untouched[j]),
                    None, samples, seed, seconds / len(chosen), ())
        for j, label in enumerate(chosen)
    ]


def _cover(order: np.ndarray, areas: np.ndarray, target: float) -> np.ndarray:
    """The first segments of `order` whose areas add up to at least `target`."""
    cumulative = np.cumsum(areas[order])
    return order[: int(np.searchsorted(cumulative, target - 1e-12)) + 1]


def deletion_check(image: np.ndarray, segments: np.ndarray, predict: Predict, label: int,
                   weights: np.ndarray, seed: int, batch: int = 64) -> tuple[Deletion, ...]:
    """Hide the top-weighted segments covering 10% / 20% of the area, and random ones of the same area."""
    k = len(weights)
    areas = np.bincount(segments.ravel(), minlength=k) / segments.size
    order = np.argsort(-weights, kind="stable")
    rng = np.random.default_rng(seed + 1)
    masks = [np.ones(k, dtype=bool)]
    hidden: list[float] = []
    for area in DELETION_AREAS:
        top = np.ones(k, dtype=bool)
        top[_cover(order, areas, area)] = False
        masks.append(top)
        hidden.append(float(areas[~top].sum()))
        for _ in range(RANDOM_SETS):
            rand = np.ones(k, dtype=bool)
            rand[_cover(rng.permutation(k), areas, area)] = False
            masks.append(rand)
            hidden.append(float(areas[~rand].sum()))
    scores = score_masks(image, hidden_fill(image), segments, np.array(masks), predict, batch)[:, label]
    full = scores[0]
    checks, at = [], 1
    for area in DELETION_AREAS:
        top_drop = full - scores[at]
        random_drop = float(np.mean(full - scores[at + 1: at + 1 + RANDOM_SETS]))
        random_area = float(np.mean(hidden[at: at + RANDOM_SETS]))
        checks.append(Deletion(area, float(top_drop), random_drop, hidden[at - 1], random_area))
        at += 1 + RANDOM_SETS
    return tuple(checks)


def agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation of two weight vectors over the same segments (None if undefined)."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)
