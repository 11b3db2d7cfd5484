"""Evaluating an ad-level multi-label classifier: per-emotion metrics, baselines, calibration, folds.

    metrics = evaluate(labels, scores, emotions)          # labels N × E (0/1, NaN = no label)
    metrics_table(metrics)                                # one row per emotion, baselines beside
    summarise_folds([evaluate(...) for each fold])        # emotion → metric → (mean, std)
    kfold_indices(n, k, seed, labels=labels, groups=hashes)  # stratified, identical content together

The maths is numpy, written here (the tests check it against scikit-learn to 1e-12), with these
conventions:

- A label is positive when ≥ 0.5 (labels may be scores in [0, 1]); a prediction is positive when
  its probability ≥ `threshold`. NaN labels are excluded per emotion; an emotion with no labelled
  video at all is left out of the result (logged at INFO).
- ROC-AUC is the Mann–Whitney U statistic over average ranks, so tied scores count one half, as
  in `sklearn.metrics.roc_auc_score`. It is None when the labels hold one class only (scikit-learn
  1.9 warns and returns NaN there).
- Precision, recall and F1 are 0.0 when undefined (no predicted positives, no actual positives,
  or neither): scikit-learn 1.9's default `zero_division="warn"` gives 0.0 too, with a warning;
  no warning is raised here. F1 = 2·tp / (2·tp + fp + fn).
- Baselines on the evaluated labels: the majority class (ties go to the negative class, as in
  `DummyClassifier(strategy="most_frequent")`), and a random classifier predicting positive with
  the positive rate p (expected accuracy p² + (1 − p)², ROC-AUC 0.5).
- Fold summaries use the population standard deviation (ddof=0) over the folds that define the
  metric.
- k-fold (`assign_folds`) is stratified per emotion (a greedy iterative stratification) and keeps
  rows of one group (identical content) in one fold.

Figures (Plotly, template `plotly_white`, never shown here) are built from the results.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from emocore.charts import TEMPLATE, colour

log = logging.getLogger("emocore")

#: Labels at or above this are positive.
LABEL_THRESHOLD = 0.5
#: The metrics `summarise_folds` averages (every float field of `EmotionMetrics` but the threshold).
SUMMARY_METRICS = (
    "roc_auc", "f1", "precision", "recall", "accuracy",
    "majority_accuracy", "majority_f1", "random_accuracy", "random_roc_auc",
)


@dataclass(frozen=True)
class EmotionMetrics:
    """How well the scores of one emotion separate its labels, beside two naive baselines."""

    emotion: str
    n: int
    """Videos with a label for this emotion."""
    positives: int
    roc_auc: float | None
    """None when the labels hold one class only."""
    f1: float
    precision: float
    recall: float
    accuracy: float
    threshold: float
    """A prediction is positive when its probability ≥ threshold."""
    confusion: tuple[tuple[int, int], tuple[int, int]]
    """((tn, fp), (fn, tp)), rows the actual class, columns the predicted one (sklearn's layout)."""
    majority_accuracy: float
    """Accuracy of always predicting the majority class of these labels."""
    majority_f1: float
    """F1 of always predicting the majority class (0.0 when it is the negative class)."""
    random_accuracy: float
    """Expected accuracy of predicting positive at random with the positive rate p: p² + (1 − p)²."""
    random_roc_auc: float
    """0.5: random scores do not rank positives above negatives."""


@dataclass(frozen=True)
class CalibrationBin:
    """One equal-width bin of predicted probabilities."""

    centre: float
    mean_predicted: float
    observed_rate: float
    """Share of positive labels among the videos in the bin."""
    count: int


def _check_pair(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if labels.ndim != 2 or labels.shape != scores.shape:
        raise ValueError(f"labels and scores must be N × E arrays of one shape, got {labels.shape} and {scores.shape}")
    present = ~np.isnan(labels)
    if np.any((labels[present] < 0) | (labels[present] > 1)):
        raise ValueError("labels must be in [0, 1] (or NaN where absent)")
    given = scores[present]
    if np.any(~np.isfinite(given) | (given < 0) | (given > 1)):
        raise ValueError("scores must be probabilities in [0, 1] wherever a label is present")
    return labels, scores


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, tied values sharing the mean of their ranks."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    # a tie group occupying sorted positions start..end-1 holds ranks start+1..end: its mean
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC-AUC by the Mann–Whitney U statistic; None when `positive` holds one class only."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    u = average_ranks(scores)[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _ratio(num: int, den: int) -> float:
    # the zero-division convention of scikit-learn's default: an undefined ratio is 0.0
    return num / den if den else 0.0


def _emotion_metrics(emotion: str, positive: np.ndarray, scores: np.ndarray, threshold: float) -> EmotionMetrics:
    predicted = scores >= threshold
    tp = int(np.sum(positive & predicted))
    fp = int(np.sum(~positive & predicted))
    fn = int(np.sum(positive & ~predicted))
    tn = int(np.sum(~positive & ~predicted))
    n = len(positive)
    pos = tp + fn
    neg = n - pos
    p = pos / n
    return EmotionMetrics(
        emotion=emotion,
        n=n,
        positives=pos,
        roc_auc=roc_auc(positive, scores),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        accuracy=(tp + tn) / n,
        threshold=float(threshold),
        confusion=((tn, fp), (fn, tp)),
        majority_accuracy=max(pos, neg) / n,
        # all predicted positive: tp = pos, fp = neg, fn = 0
        majority_f1=_ratio(2 * pos, 2 * pos + neg) if pos > neg else 0.0,
        random_accuracy=p * p + (1.0 - p) * (1.0 - p),
        random_roc_auc=0.5,
    )


def evaluate(
    labels: np.ndarray,
    scores: np.ndarray,
    emotions: Sequence[str],
    threshold: float = 0.5,
) -> tuple[EmotionMetrics, ...]:
    """Per-emotion metrics of `scores` (N × E probabilities) against `labels` (N × E, 0/1 or scores
    in [0, 1] binarised at 0.5, NaN where a video has no label), in `emotions` order. An emotion
    with no labelled video is left out."""
    labels, scores = _check_pair(labels, scores)
    if len(emotions) != labels.shape[1] or len(set(emotions)) != len(emotions):
        raise ValueError(f"need {labels.shape[1]} distinct emotion names, got {list(emotions)}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    results = []
    for j, emotion in enumerate(emotions):
        present = ~np.isnan(labels[:, j])
        if not present.any():
            log.info("no labelled video for %s: left out of the evaluation", emotion)
            continue
        positive = labels[present, j] >= LABEL_THRESHOLD
        results.append(_emotion_metrics(emotion, positive, scores[present, j], threshold))
    return tuple(results)


def calibration(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> list[list[CalibrationBin]]:
    """Per emotion (column), the labelled videos in `bins` equal-width bins of [0, 1] by predicted
    probability (the last bin includes 1.0); empty bins are omitted, so counts add up to the
    emotion's labelled videos."""
    labels, scores = _check_pair(labels, scores)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    width = 1.0 / bins
    result = []
    for j in range(labels.shape[1]):
        present = ~np.isnan(labels[:, j])
        s = scores[present, j]
        positive = labels[present, j] >= LABEL_THRESHOLD
        index = np.minimum((s * bins).astype(int), bins - 1)
        column = []
        for b in np.unique(index):
            inside = index == b
            column.append(CalibrationBin(
                centre=(b + 0.5) * width,
                mean_predicted=float(s[inside].mean()),
                observed_rate=float(positive[inside].mean()),
                count=int(inside.sum()),
            ))
        result.append(column)
    return result


def label_strata(labels: np.ndarray) -> np.ndarray:
    """Per row of an N × E label matrix, its label combination as an integer code: each emotion is
    negative (< 0.5), positive (≥ 0.5) or unlabelled (NaN), and the codes sort lexicographically by
    (first emotion, second emotion, ...), negative before positive before unlabelled."""
    labels = np.asarray(labels, dtype=float)
    if labels.ndim != 2:
        raise ValueError(f"labels must be an N × E array, got shape {labels.shape}")
    digits = np.where(np.isnan(labels), 2, (np.nan_to_num(labels) >= LABEL_THRESHOLD).astype(int))
    codes = np.zeros(len(labels), dtype=np.int64)
    for column in digits.T:
        codes = codes * 3 + column
    return codes


def group_units(n: int, groups: Sequence[object] | None) -> tuple[np.ndarray, int]:
    """(unit of each row, number of units): rows with equal `groups` entries share a unit (numbered
    in order of first appearance); without groups every row is its own unit."""
    if groups is None:
        return np.arange(n), n
    if len(groups) != n:
        raise ValueError(f"{len(groups)} groups for {n} rows")
    number: dict[object, int] = {}
    units = np.array([number.setdefault(g, len(number)) for g in groups], dtype=np.int64)
    return units, len(number)


def unit_classes(labels: np.ndarray, units: np.ndarray, count: int) -> np.ndarray:
    """(count, E) class of each unit per emotion from its rows' mean label: 1 positive (≥ 0.5),
    0 negative, -1 unlabelled."""
    labels = np.asarray(labels, dtype=float)
    if labels.ndim != 2 or len(labels) != len(units):
        raise ValueError(f"labels must be an N × E array with one row per row, got shape {labels.shape}")
    merged = np.full((count, labels.shape[1]), np.nan)
    for unit in range(count):
        rows = labels[units == unit]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column stays NaN
            merged[unit] = np.nanmean(rows, axis=0)
    return np.where(np.isnan(merged), -1, (np.nan_to_num(merged) >= LABEL_THRESHOLD).astype(int))


def unit_strata(labels: np.ndarray | None, units: np.ndarray, count: int) -> np.ndarray:
    """The label-combination code (`label_strata`) of each unit's classes; all 0 without labels."""
    if labels is None:
        return np.zeros(count, dtype=np.int64)
    classes = unit_classes(labels, units, count)
    return label_strata(np.where(classes < 0, np.nan, classes.astype(float)))


def assign_folds(n: int, k: int, seed: int, *, labels: np.ndarray | None = None,
                 groups: Sequence[object] | None = None) -> np.ndarray:
    """The fold (0..k-1) of each of n rows: stratified per emotion, identical groups together.

    Rows with equal `groups` entries (e.g. the same content hash) form one unit and always share a
    fold; a unit's label per emotion is its rows' mean. The deal is a greedy iterative
    stratification (after Sechidis et al., 2011): units whose rarest (emotion, class) is rarest go
    first, in a seeded random order within equal rarity, and each goes to the fold that holds the
    least of its classes relative to a fair share (the sum over its labelled emotions of the fold's
    count of that class ÷ the class's total / k), ties to the smaller fold, then at random. Fold
    sizes (in units) differ by at most one. With one emotion, each class is spread as evenly as it
    can be: a class of c units gives every fold ⌊c/k⌋ or ⌈c/k⌉, so a class with at least k units is
    in every test fold. With several emotions, each is balanced as far as their overlap allows.
    """
    units, count = group_units(n, groups)
    if k < 2 or k > count:
        what = "distinct videos" if groups is not None else "videos"
        raise ValueError(f"k must be between 2 and the number of {what} ({count}), got {k}")
    rng = np.random.default_rng(seed)
    if labels is None:
        classes = np.full((count, 0), -1)
    else:
        classes = unit_classes(labels, units, count)
    emotions = classes.shape[1]
    totals = np.array([[(classes[:, j] == c).sum() for c in (0, 1)] for j in range(emotions)],
                      dtype=float).reshape(emotions, 2)
    share = np.maximum(totals / k, 1e-9)
    rarity = np.array([min((totals[j, c] for j, c in enumerate(row) if c >= 0), default=np.inf) for row in classes])
    order = np.lexsort((rng.random(count), rarity))  # rarest first, random among equals
    held = np.zeros((k, emotions, 2))
    size = np.zeros(k, dtype=np.int64)
    big, extra = divmod(count, k)  # `extra` folds get big + 1 units, the others big
    fold_of = np.empty(count, dtype=np.int64)
    for unit in order:
        full = size >= big + 1 if (size == big + 1).sum() < extra else size >= big
        need = np.zeros(k)
        for j, c in enumerate(classes[unit]):
            if c >= 0:
                need += held[:, j, c] / share[j, c]
        candidates = np.flatnonzero(~full)
        best = np.lexsort((rng.random(len(candidates)), size[candidates], need[candidates]))[0]
        fold = candidates[best]
        fold_of[unit] = fold
        size[fold] += 1
        for j, c in enumerate(classes[unit]):
            if c >= 0:
                held[fold, j, c] += 1
    return fold_of[units]


def kfold_indices(n: int, k: int, seed: int, *, labels: np.ndarray | None = None,
                  groups: Sequence[object] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, test) index pairs over 0..n-1 from `assign_folds`: every index in exactly one test
    fold, stratified on `labels` (N × E, NaN = unlabelled) when given, rows of one group in one
    fold; each array sorted."""
    fold = assign_folds(n, k, seed, labels=labels, groups=groups)
    return [(np.flatnonzero(fold != i), np.flatnonzero(fold == i)) for i in range(k)]


def summarise_folds(per_fold: Sequence[Sequence[EmotionMetrics]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Emotion → metric (SUMMARY_METRICS) → (mean, population std with ddof=0) over the folds.
    A fold where a metric is None (ROC-AUC of a one-class fold) or lacks the emotion is skipped
    for it; a metric None in every fold is absent."""
    values: dict[str, dict[str, list[float]]] = {}
    for fold in per_fold:
        for m in fold:
            per_metric = values.setdefault(m.emotion, {})
            for name in SUMMARY_METRICS:
                value = getattr(m, name)
                if value is not None:
                    per_metric.setdefault(name, []).append(float(value))
    return {
        emotion: {name: (float(np.mean(v)), float(np.std(v))) for name, v in per_metric.items()}
        for emotion, per_metric in values.items()
    }


_TABLE_COLUMNS = (
    "n", "positives", "roc_auc", "random_roc_auc", "accuracy", "majority_accuracy", "random_accuracy",
    "f1", "majority_f1", "precision", "recall", "threshold", "tn", "fp", "fn", "tp",
)


def metrics_table(metrics: Sequence[EmotionMetrics]) -> pd.DataFrame:
    """One row per emotion (the index), each metric beside its baselines; None becomes NaN."""
    rows = []
    for m in metrics:
        (tn, fp), (fn, tp) = m.confusion
        row = {f.name: getattr(m, f.name) for f in fields(m) if f.name not in ("emotion", "confusion")}
        row.update(tn=tn, fp=fp, fn=fn, tp=tp)
        rows.append(row)
    table = pd.DataFrame(rows, index=pd.Index([m.emotion for m in metrics], name="emotion"),
                         columns=list(_TABLE_COLUMNS))
    return table.astype({"roc_auc": float})


def to_json(metrics: Sequence[EmotionMetrics]) -> dict[str, Any]:
    """Emotion → its metrics as plain Python values (confusion as [[tn, fp], [fn, tp]], None kept)."""
    out: dict[str, Any] = {}
    for m in metrics:
        item = asdict(m)
        del item["emotion"]
        item["confusion"] = [[int(c) for c in row] for row in m.confusion]
        out[m.emotion] = {k: (v if v is None or isinstance(v, (str, list)) else _plain(v)) for k, v in item.items()}
    return out


def _plain(value: Any) -> int | float:
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


# --- figures --------------------------------------------------------------------------------------


def confusion_figure(m: EmotionMetrics) -> go.Figure:
    """The 2 × 2 confusion matrix of one emotion as an annotated heatmap of counts."""
    (tn, fp), (fn, tp) = m.confusion
    fig = go.Figure(go.Heatmap(
        z=[[tn, fp], [fn, tp]],
        x=["predicted negative", "predicted positive"],
        y=["actual negative", "actual positive"],
        text=[["true negatives", "false positives"], ["false negatives", "true positives"]],
        texttemplate="%{z}", textfont={"size": 18}, colorscale="Blues", showscale=False,
        hovertemplate="%{text}: %{z}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed")  # actual negative on top, as the matrix is written
    fig.update_layout(
        template=TEMPLATE, title=f"{m.emotion}: confusion at threshold {m.threshold:g} ({m.n} videos)",
        xaxis_title="predicted", yaxis_title="actual", margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    return fig


def calibration_figure(cal: Sequence[Sequence[CalibrationBin]], emotions: Sequence[str]) -> go.Figure:
    """Observed positive rate against mean predicted probability per bin, one trace per emotion,
    markers sized by the bin's count, beside the dashed diagonal of perfect calibration."""
    if len(cal) != len(emotions):
        raise ValueError(f"{len(cal)} calibration columns for {len(emotions)} emotions")
    fig = go.Figure(go.Scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
        line={"color": "#999999", "dash": "dash", "width": 1}, hoverinfo="skip",
    ))
    largest = max((b.count for column in cal for b in column), default=1)
    for j, (emotion, column) in enumerate(zip(emotions, cal)):
        counts = [b.count for b in column]
        fig.add_trace(go.Scatter(
            x=[b.mean_predicted for b in column], y=[b.observed_rate for b in column],
            mode="lines+markers", name=emotion, line={"color": colour(emotion, j)},
            # marker area proportional to the count, so sparse bins do not look as sure as full ones
            marker={"size": counts, "sizemode": "area", "sizeref": 2.0 * largest / 28.0**2, "sizemin": 4},
            customdata=counts,
            hovertemplate=f"{emotion}: predicted %{{x:.2f}}, observed %{{y:.2f}}"
                          "<extra>%{customdata} videos</extra>",
        ))
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(
        template=TEMPLATE, title="Calibration: observed positive rate by predicted probability",
        xaxis_title="mean predicted probability", yaxis_title="observed positive rate",
        legend_title_text="emotion", margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    return fig


__all__ = [
    "LABEL_THRESHOLD", "SUMMARY_METRICS", "CalibrationBin", "EmotionMetrics", "average_ranks",
    "assign_folds", "calibration", "calibration_figure", "confusion_figure", "evaluate", "group_units",
    "kfold_indices", "label_strata", "unit_classes", "unit_strata",
    "metrics_table", "roc_auc", "summarise_folds", "to_json",
]
