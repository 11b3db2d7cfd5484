"""Evaluation maths checked against scikit-learn, baselines against hand-worked answers, figures.

The metrics are computed with numpy in emocore.evaluation; scikit-learn here is only the reference.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score,
)

from emocore.evaluation import (
    SUMMARY_METRICS, CalibrationBin, EmotionMetrics, average_ranks, calibration, calibration_figure,
    confusion_figure, evaluate, kfold_indices, label_strata, metrics_table, summarise_folds, to_json,
)

TOL = 1e-12


def _sklearn(y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> dict:
    """The reference values, with scikit-learn's defaults (zero_division="warn" → 0.0)."""
    pred = (s >= threshold).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return {
            "roc_auc": roc_auc_score(y, s) if len(np.unique(y)) == 2 else None,
            "f1": f1_score(y, pred), "precision": precision_score(y, pred), "recall": recall_score(y, pred),
            "accuracy": accuracy_score(y, pred),
            "confusion": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        }


def _assert_matches(m: EmotionMetrics, y: np.ndarray, s: np.ndarray, threshold: float = 0.5) -> None:
    ref = _sklearn(y, s, threshold)
    if ref["roc_auc"] is None:
        assert m.roc_auc is None
    else:
        assert m.roc_auc == pytest.approx(ref["roc_auc"], abs=TOL)
    for name in ("f1", "precision", "recall", "accuracy"):
        assert getattr(m, name) == pytest.approx(ref[name], abs=TOL), name
    assert [list(r) for r in m.confusion] == ref["confusion"]
    assert (m.n, m.positives) == (len(y), int(y.sum()))


@pytest.mark.parametrize("seed", range(20))
def test_random_predictions_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    y = (rng.random((n, 3)) < rng.uniform(0.05, 0.95, 3)).astype(float)
    s = rng.random((n, 3))
    s[:, 1] = np.round(s[:, 1], 1)  # many ties
    s[:, 2] = np.clip(0.5 * s[:, 2] + 0.5 * y[:, 2], 0, 1)  # a column that is actually informative
    y[rng.random((n, 3)) < 0.2] = np.nan  # some videos unlabelled per emotion
    threshold = float(rng.choice([0.5, 0.3, 0.7]))
    metrics = evaluate(y, s, ["funny", "exciting", "sad"], threshold=threshold)
    assert [m.emotion for m in metrics] == ["funny", "exciting", "sad"]
    for j, m in enumerate(metrics):
        present = ~np.isnan(y[:, j])
        _assert_matches(m, y[present, j].astype(int), s[present, j], threshold)
        assert m.threshold == threshold


@pytest.mark.parametrize(("y", "s"), [
    pytest.param([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], id="textbook"),
    pytest.param([0, 1, 0, 1, 1, 0], [0.5, 0.5, 0.5, 0.2, 0.9, 0.2], id="ties across classes"),
    pytest.param([1, 0, 1, 0], [0.3, 0.3, 0.3, 0.3], id="all scores tied"),
    pytest.param([1, 1, 1], [0.2, 0.9, 0.6], id="one class: positives"),
    pytest.param([0, 0, 0, 0], [0.2, 0.9, 0.6, 0.1], id="one class: negatives"),
    pytest.param([0, 0, 0], [0.1, 0.2, 0.3], id="nothing positive at all"),
    pytest.param([0, 1, 0], [0.1, 0.2, 0.3], id="no predicted positive"),
    pytest.param([0, 1, 1], [0.9, 0.1, 0.0], id="perfectly wrong"),
    pytest.param([1], [0.7], id="a single video"),
])
def test_hand_made_predictions_match_sklearn(y: list[int], s: list[float]) -> None:
    (m,) = evaluate(np.array(y, float)[:, None], np.array(s)[:, None], ["funny"])
    _assert_matches(m, np.array(y), np.array(s))


def test_known_values_and_zero_division() -> None:
    # positives scored 0.35, 0.8; negatives 0.1, 0.4: 3 of 4 pairs ordered right
    (m,) = evaluate(np.array([[0], [0], [1], [1]], float), np.array([[0.1], [0.4], [0.35], [0.8]]), ["funny"])
    assert m.roc_auc == 0.75 and m.confusion == ((2, 0), (1, 1))
    assert (m.precision, m.recall, m.f1, m.accuracy) == (1.0, 0.5, 2 / 3, 0.75)
    # no predicted positives and no positives: every ratio undefined, 0.0 like sklearn's default
    (m,) = evaluate(np.zeros((3, 1)), np.full((3, 1), 0.2), ["funny"])
    assert (m.precision, m.recall, m.f1, m.roc_auc, m.accuracy) == (0.0, 0.0, 0.0, None, 1.0)


def test_nan_labels_are_excluded_per_emotion_and_scores_binarised() -> None:
    labels = np.array([[0.8, np.nan], [0.2, 1.0], [np.nan, 0.0], [0.6, 0.4]])
    scores = np.array([[0.9, np.nan], [0.3, 0.8], [np.nan, 0.1], [0.4, 0.6]])  # NaN scores only where unlabelled
    funny, exciting = evaluate(labels, scores, ["funny", "exciting"])
    assert (funny.n, funny.positives, exciting.n, exciting.positives) == (3, 2, 3, 1)
    _assert_matches(funny, np.array([1, 0, 1]), np.array([0.9, 0.3, 0.4]))
    _assert_matches(exciting, np.array([1, 0, 0]), np.array([0.8, 0.1, 0.6]))


def test_an_emotion_without_labels_is_left_out() -> None:
    labels = np.array([[1.0, np.nan], [0.0, np.nan]])
    assert [m.emotion for m in evaluate(labels, np.full((2, 2), 0.5), ["funny", "sad"])] == ["funny"]


def test_baselines_on_a_hand_made_case() -> None:
    # 10 videos: funny 3 positives, exciting 6 positives, sad 5 of each (a tie)
    labels = np.zeros((10, 3))
    labels[:3, 0] = 1
    labels[:6, 1] = 1
    labels[:5, 2] = 1
    funny, exciting, sad = evaluate(labels, np.full((10, 3), 0.5), ["funny", "exciting", "sad"])
    assert (funny.majority_accuracy, funny.majority_f1) == (0.7, 0.0)  # majority: negative
    assert funny.random_accuracy == pytest.approx(0.3**2 + 0.7**2, abs=TOL)
    assert exciting.majority_accuracy == 0.6
    assert exciting.majority_f1 == pytest.approx(2 * 6 / (2 * 6 + 4), abs=TOL)  # = 0.75
    assert exciting.random_accuracy == pytest.approx(0.52, abs=TOL)
    assert (sad.majority_accuracy, sad.majority_f1, sad.random_accuracy) == (0.5, 0.0, 0.5)
    assert {m.random_roc_auc for m in (funny, exciting, sad)} == {0.5}
    # the majority baseline is scikit-learn's most-frequent dummy, ties included
    for j, m in enumerate((funny, exciting, sad)):
        y = labels[:, j].astype(int)
        pred = DummyClassifier(strategy="most_frequent").fit(np.zeros((10, 1)), y).predict(np.zeros((10, 1)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            assert m.majority_f1 == pytest.approx(f1_score(y, pred), abs=TOL)
        assert m.majority_accuracy == pytest.approx(accuracy_score(y, pred), abs=TOL)


def test_average_ranks_share_ties() -> None:
    np.testing.assert_array_equal(average_ranks(np.array([0.3, 0.1, 0.3, 0.2, 0.3])), [4, 1, 4, 2, 4])


@pytest.mark.parametrize(("labels", "scores"), [
    (np.zeros(3), np.zeros(3)),                                   # not N × E
    (np.zeros((3, 1)), np.zeros((2, 1))),                          # shapes differ
    (np.array([[2.0]]), np.array([[0.5]])),                        # label outside [0, 1]
    (np.array([[1.0]]), np.array([[1.5]])),                        # score outside [0, 1]
    (np.array([[1.0]]), np.array([[np.nan]])),                     # NaN score where labelled
])
def test_bad_arrays_are_value_errors(labels: np.ndarray, scores: np.ndarray) -> None:
    with pytest.raises(ValueError):
        evaluate(labels, scores, ["funny"])


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError):
        evaluate(np.zeros((2, 2)), np.zeros((2, 2)), ["funny"])
    with pytest.raises(ValueError):
        evaluate(np.zeros((2, 2)), np.zeros((2, 2)), ["funny", "funny"])
    with pytest.raises(ValueError):
        evaluate(np.zeros((2, 1)), np.zeros((2, 1)), ["funny"], threshold=1.5)
    with pytest.raises(ValueError):
        calibration(np.zeros((2, 1)), np.zeros((2, 1)), bins=0)


# --- calibration ----------------------------------------------------------------------------------


def test_calibration_counts_add_up_and_bins_are_right() -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random((200, 2)) < 0.4).astype(float)
    labels[rng.random((200, 2)) < 0.25] = np.nan
    scores = rng.random((200, 2))
    scores[:5, 0] = 1.0  # the top edge belongs to the last bin
    cal = calibration(labels, scores, bins=10)
    assert len(cal) == 2
    for j, column in enumerate(cal):
        present = ~np.isnan(labels[:, j])
        assert sum(b.count for b in column) == present.sum()
        for b in column:
            inside = present & (np.abs(scores[:, j] - b.centre) <= 0.05)
            assert b.count == inside.sum()
            assert b.mean_predicted == pytest.approx(scores[inside, j].mean(), abs=TOL)
            assert b.observed_rate == pytest.approx(labels[inside, j].mean(), abs=TOL)
            assert b.centre - 0.05 <= b.mean_predicted <= b.centre + 0.05


def test_calibration_by_hand_omits_empty_bins() -> None:
    labels = np.array([[1], [0], [1], [1], [np.nan]], float)
    scores = np.array([[0.05], [0.1], [0.95], [1.0], [0.5]])
    (column,) = calibration(labels, scores, bins=4)
    assert column == [
        CalibrationBin(centre=0.125, mean_predicted=pytest.approx(0.075), observed_rate=0.5, count=2),
        CalibrationBin(centre=0.875, mean_predicted=0.975, observed_rate=1.0, count=2),
    ]


# --- folds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k"), [(10, 2), (10, 3), (7, 7), (103, 5)])
def test_kfold_covers_every_index_once(n: int, k: int) -> None:
    folds = kfold_indices(n, k, seed=1)
    assert len(folds) == k
    tests = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(n))
    for train, test in folds:
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(n))
        assert len(test) in (n // k, -(-n // k))


def test_kfold_is_reproducible_and_shuffled() -> None:
    a, b = kfold_indices(50, 5, seed=3), kfold_indices(50, 5, seed=3)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    c = kfold_indices(50, 5, seed=4)
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c))
    assert not np.array_equal(a[0][1], np.arange(10))  # not the first ten in order


@pytest.mark.parametrize("seed", range(40))
def test_kfold_stratification_keeps_both_classes_in_every_test_fold(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(8, 60)), int(rng.integers(2, 7))
    labels = (rng.random((n, 1)) < rng.uniform(0.1, 0.9)).astype(float)
    labels[rng.random(n) < 0.15] = np.nan  # some unlabelled
    folds = kfold_indices(n, k, seed, labels=labels)
    sizes = [len(test) for _, test in folds]
    assert max(sizes) - min(sizes) <= 1
    for c in (0.0, 1.0):
        total = int((labels[:, 0] == c).sum())
        per_fold = [int((labels[test, 0] == c).sum()) for _, test in folds]
        assert set(per_fold) <= {total // k, -(-total // k)}, (c, per_fold)  # as even as it can be
        if total >= k:
            assert min(per_fold) >= 1  # both classes in every test fold whenever possible


def test_kfold_stratifies_a_second_emotion_too() -> None:
    # 8 videos, (exciting, funny): exciting 4/4, funny 5 positive / 3 negative. Stratifying on the
    # label combination alone could put two of funny's negatives in one fold of two; per emotion,
    # the three negatives go to three folds and exciting stays balanced.
    labels = np.array([[1, 1], [0, 0], [1, 1], [0, 1], [1, 0], [0, 1], [1, 0], [0, 1]], float)
    for seed in range(20):
        folds = kfold_indices(8, 4, seed, labels=labels)
        assert sorted(int((labels[test, 1] == 0).sum()) for _, test in folds) == [0, 1, 1, 1]
        assert all(sorted(labels[test, 0].tolist()) == [0.0, 1.0] for _, test in folds)


def test_kfold_keeps_a_group_in_one_fold() -> None:
    labels = np.array([1.0, 0.0] * 15)[:, None]
    groups = [f"content{i // 3}" for i in range(30)]  # ten contents, three copies each
    for seed in range(10):
        folds = kfold_indices(30, 4, seed, labels=labels, groups=groups)
        for _, test in folds:
            held = {groups[i] for i in test}
            assert all(i in test for i in range(30) if groups[i] in held)  # every copy, or none
        assert sorted(len(test) for _, test in folds) == [6, 6, 9, 9]  # units: 2, 2, 3, 3
    with pytest.raises(ValueError, match="distinct videos"):
        kfold_indices(30, 11, 0, groups=groups)


@pytest.mark.parametrize(("n", "k"), [(10, 1), (10, 0), (3, 4)])
def test_kfold_bad_k(n: int, k: int) -> None:
    with pytest.raises(ValueError):
        kfold_indices(n, k, seed=0)


def test_label_strata_codes_each_combination() -> None:
    labels = np.array([[0.2, 1.0], [0.9, np.nan], [0.1, 0.7], [np.nan, 0.0], [0.6, np.nan]])
    codes = label_strata(labels)
    assert codes[1] == codes[4] and codes[0] == codes[2] and len(set(codes.tolist())) == 3
    assert codes.tolist() == [0 * 3 + 1, 1 * 3 + 2, 0 * 3 + 1, 2 * 3 + 0, 1 * 3 + 2]  # negative, positive, unlabelled


def _metrics(emotion: str, roc_auc: float | None, f1: float) -> EmotionMetrics:
    return EmotionMetrics(
        emotion=emotion, n=4, positives=2, roc_auc=roc_auc, f1=f1, precision=0.5, recall=0.5, accuracy=0.5,
        threshold=0.5, confusion=((1, 1), (1, 1)), majority_accuracy=0.5, majority_f1=0.0,
        random_accuracy=0.5, random_roc_auc=0.5,
    )


def test_summarise_folds_mean_and_population_std_skipping_none() -> None:
    folds = [
        [_metrics("funny", 0.6, 0.2), _metrics("sad", None, 0.0)],
        [_metrics("funny", 0.8, 0.4), _metrics("sad", None, 1.0)],
        [_metrics("funny", None, 0.6)],
    ]
    summary = summarise_folds(folds)
    assert summary["funny"]["roc_auc"] == pytest.approx((0.7, 0.1), abs=TOL)  # ddof=0 over the two folds
    assert summary["funny"]["f1"] == pytest.approx((0.4, np.std([0.2, 0.4, 0.6])), abs=TOL)
    assert summary["sad"]["f1"] == pytest.approx((0.5, 0.5), abs=TOL)
    assert "roc_auc" not in summary["sad"]
    assert set(summary["funny"]) == set(SUMMARY_METRICS)


# --- table, JSON, figures -------------------------------------------------------------------------


@pytest.fixture
def two_emotions() -> tuple[EmotionMetrics, ...]:
    """Metrics of 6 hand-made videos: funny has both classes, exciting only positives (no ROC-AUC)."""
    labels = np.array([[1, 1], [0, 1], [1, 1], [0, 1], [0, 1], [1, 1]], float)
    scores = np.array([[0.9, 0.8], [0.2, 0.4], [0.4, 0.7], [0.6, 0.9], [0.1, 0.6], [0.7, 0.5]])
    return evaluate(labels, scores, ["funny", "exciting"])


def test_metrics_table_rows_and_baselines(two_emotions: tuple[EmotionMetrics, ...]) -> None:
    table = metrics_table(two_emotions)
    assert list(table.index) == ["funny", "exciting"] and table.index.name == "emotion"
    assert {"roc_auc", "random_roc_auc", "accuracy", "majority_accuracy", "random_accuracy",
            "f1", "majority_f1", "tn", "fp", "fn", "tp"} <= set(table.columns)
    assert np.isnan(table.loc["exciting", "roc_auc"])
    assert table.loc["funny", "tp"] == 2 and table.loc["exciting", "tp"] == 5


def test_to_json_is_plain_and_round_trips(two_emotions: tuple[EmotionMetrics, ...]) -> None:
    data = to_json(two_emotions)
    assert json.loads(json.dumps(data)) == data
    assert data["funny"]["confusion"] == [[2, 1], [1, 2]]
    assert data["exciting"]["roc_auc"] is None
    assert type(data["funny"]["n"]) is int and type(data["funny"]["f1"]) is float
    assert EmotionMetrics(emotion="funny", **{**data["funny"], "confusion": ((2, 1), (1, 2))}) == two_emotions[0]


def test_confusion_figure(two_emotions: tuple[EmotionMetrics, ...]) -> None:
    fig = confusion_figure(two_emotions[0])
    (trace,) = fig.data
    assert isinstance(trace, go.Heatmap)
    assert [list(r) for r in trace.z] == [[2, 1], [1, 2]]
    assert trace.texttemplate == "%{z}"
    assert fig.layout.template == pio.templates["plotly_white"]
    assert "funny" in fig.layout.title.text
    assert (fig.layout.xaxis.title.text, fig.layout.yaxis.title.text) == ("predicted", "actual")


def test_calibration_figure() -> None:
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], float)
    scores = np.array([[0.9, 0.1], [0.15, 0.4], [0.85, 0.7], [0.1, 0.05]])
    cal = calibration(labels, scores, bins=5)
    fig = calibration_figure(cal, ["funny", "exciting"])
    diagonal, funny, exciting = fig.data
    assert diagonal.line.dash == "dash" and list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 1]
    assert (funny.name, exciting.name) == ("funny", "exciting")
    assert list(funny.customdata) == [b.count for b in cal[0]] == [2, 2]
    assert list(funny.marker.size) == [2, 2]
    assert "videos" in funny.hovertemplate
    assert fig.layout.template == pio.templates["plotly_white"]
    assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    with pytest.raises(ValueError):
        calibration_figure(cal, ["funny"])
