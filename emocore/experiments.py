"""Train and evaluate ad-level classifiers end to end: labels in, checkpoint and metrics out.

    labels = read_labels(csv=Path("labels.csv"))
    run = train_model(labels, TrainParams(test_fraction=0.2), out=Path("cache/models/ads.pt"),
                      cache_dir=Path("cache/features"))
    run.validation, run.test          # model-selection scores (they chose the epoch), test scores
    result = evaluate_model(run.checkpoint_path, read_labels(csv=Path("new_ads.csv")),
                            cache_dir=Path("cache/features"))   # leaves out what the model has seen
    cv = cross_validate(labels, TrainParams(), folds=5, cache_dir=Path("cache/features"))
    save_evaluation(result, Path("cache/evaluations/ads"))

The pieces: `emocore.labels` reads label files, `emocore.training` extracts (cached) frame
features and fits the head, `emocore.evaluation` does the maths. Metrics always come with the
majority-class and random baselines next to them.

Honest figures: a checkpoint records its training, validation and test videos by content hash;
`evaluate_model` leaves out the ones that trained the model or chose its epoch and refuses
(NothingHeldOut) when none remains. k-fold keeps identical content in one fold and reports the
folds where an emotion's test labels hold one class (ROC-AUC undefined there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from emocore import evaluation
from emocore.errors import CheckpointError, NothingHeldOut, VideoError
from emocore.evaluation import CalibrationBin, EmotionMetrics
from emocore.features import file_hash
from emocore.files import write_bytes, write_json
from emocore.labels import LabelledVideo, LabelSet, load_csv, load_pitt
from emocore.training import Checkpoint, TrainParams, load_checkpoint, predict_videos, save_checkpoint, train

Progress = Callable[[str, int, int], None]
log = logging.getLogger("emocore")


def read_labels(*, pitt: Sequence[Path] = (), videos: Path | None = None, csv: Path | None = None,
                protocol: bool = False, id_list: Path | None = None) -> LabelSet:
    """Labels from the Pitt annotation files (with the folder of `<id>.<ext>` videos) or a CSV."""
    if bool(pitt) == bool(csv):
        raise ValueError("give either Pitt annotation files (--pitt, with --videos) or a CSV (--csv), not both")
    if pitt:
        if videos is None:
            raise ValueError("Pitt annotation files need the folder of videos named <id>.<ext> (--videos)")
        return load_pitt(list(pitt), videos, protocol=protocol, id_list=id_list)
    assert csv is not None
    return load_csv(csv, protocol=protocol)


@dataclass(frozen=True)
class TrainingRun:
    checkpoint_path: Path
    validation: tuple[EmotionMetrics, ...]
    """Model-selection scores: the restored model on the validation split, which chose its epoch
    (so optimistic). Empty without a validation split."""
    epochs: int
    best_epoch: int
    trained_on: int
    validated_on: int
    skipped: tuple[tuple[str, str], ...]
    """(video, reason) for videos left out."""
    encoder: dict[str, object]
    test: tuple[EmotionMetrics, ...] = ()
    """The restored model on the test split, which neither training nor epoch selection saw (empty
    without `TrainParams.test_fraction`)."""
    tested_on: int = 0


def train_model(labels: LabelSet, params: TrainParams, *, out: Path, cache_dir: Path,
                progress: Progress | None = None) -> TrainingRun:
    """Train on `labels`, score the validation (model-selection) and test splits, save the checkpoint
    with those metrics."""
    result = train(labels, params, cache_dir=cache_dir, progress=progress)
    emotions = list(result.checkpoint.labels)
    val, test = result.validation, result.test
    metrics = evaluation.evaluate(val.labels, val.probabilities, emotions) if len(val.keys) else ()
    tested = evaluation.evaluate(test.labels, test.probabilities, emotions) if len(test.keys) else ()
    checkpoint = replace(result.checkpoint, metrics={
        "validation": evaluation.to_json(metrics),
        "validation_is": "model selection: the validation split chose the epoch, so these scores are optimistic",
        "test": evaluation.to_json(tested),
        "validated_on": len(val.keys), "trained_on": len(result.train_keys), "tested_on": len(test.keys),
    })
    save_checkpoint(out, checkpoint)
    return TrainingRun(out, tuple(metrics), len(result.history), result.best_epoch, len(result.train_keys),
                       len(val.keys), tuple((s.key, s.reason) for s in result.skipped),
                       dict(result.checkpoint.encoder), tuple(tested), len(test.keys))


@dataclass(frozen=True)
class SkippedFold:
    """A k-fold test part where one emotion's ROC-AUC is undefined: its labels hold one class (or none)."""

    fold: int
    """From 1."""
    emotion: str
    videos: int
    """Labelled videos of this emotion in the fold's test part."""
    positives: int

    @property
    def reason(self) -> str:
        if self.videos == 0:
            return "no labelled video in the test part"
        only = "positives" if self.positives == self.videos else "negatives"
        return f"only {only} in the test part ({self.videos} videos): ROC-AUC undefined"


@dataclass(frozen=True)
class EvaluationResult:
    emotions: tuple[str, ...]
    metrics: tuple[EmotionMetrics, ...]
    calibration: tuple[tuple[CalibrationBin, ...], ...]
    """Per emotion (in `emotions` order)."""
    videos: int
    skipped: tuple[tuple[str, str], ...]
    folds: dict[str, dict[str, tuple[float, float]]] | None = None
    """k-fold only: emotion → metric → (mean, std) over the folds that define it."""
    source: str = ""
    """What was evaluated (checkpoint path, or the k-fold set-up)."""
    left_out: tuple[str, ...] = ()
    """Evaluating a checkpoint: labelled videos left out because the model was trained or validated
    on their content (by content hash)."""
    skipped_folds: tuple[SkippedFold, ...] = ()
    """k-fold only: (fold, emotion) pairs whose test part holds one class, left out of that emotion's
    ROC-AUC mean ± std."""
    fold_count: int = 0
    """k-fold only: k."""


def _aligned(labels: LabelSet, emotions: Sequence[str]) -> tuple[list[LabelledVideo], np.ndarray]:
    """The videos with at least one of `emotions` labelled, and their label matrix (NaN = unlabelled)."""
    rows, kept = [], []
    for video in labels.videos:
        row = [video.scores.get(e, np.nan) for e in emotions]
        if not np.isnan(row).all():
            rows.append(row)
            kept.append(video)
    return kept, np.array(rows, dtype=np.float64).reshape(len(rows), len(emotions))


def _predict(checkpoint: Checkpoint, videos: Sequence[LabelledVideo], cache_dir: Path,
             progress: Progress | None = None) -> tuple[dict[int, np.ndarray], dict[str, str]]:
    """Ad-level probabilities by position in `videos`, and (key → reason) for the unreadable ones.

    One pass builds the encoder once; only if a video cannot be read is it redone video by video.
    """
    try:
        scores = predict_videos(checkpoint, [v.path for v in videos], cache_dir=cache_dir, progress=progress)
        return dict(enumerate(scores)), {}
    except VideoError:
        found, skipped = {}, {}
        for i, video in enumerate(videos):
            try:
                found[i] = predict_videos(checkpoint, [video.path], cache_dir=cache_dir)[0]
            except VideoError as exc:
                skipped[video.key] = str(exc)
        return found, skipped


def _content_hashes(videos: Sequence[LabelledVideo]) -> tuple[list[str | None], dict[str, str]]:
    """Each video's content hash (None when unreadable), and (key → reason) for the unreadable ones."""
    hashes: list[str | None] = []
    unreadable: dict[str, str] = {}
    for video in videos:
        try:
            hashes.append(file_hash(video.path))
        except VideoError as exc:
            hashes.append(None)
            unreadable[video.key] = str(exc)
    return hashes, unreadable


def evaluate_model(checkpoint_path: Path, labels: LabelSet, *, cache_dir: Path,
                   progress: Progress | None = None) -> EvaluationResult:
    """Score the labelled videos the model has not seen and compare with the labels.

    Videos whose content hash is among the checkpoint's training or validation videos are left out
    (`EvaluationResult.left_out`); NothingHeldOut when none remains. A format-1 checkpoint did not
    record its videos: CheckpointError (evaluating it could score its own training set).
    """
    checkpoint = load_checkpoint(checkpoint_path)
    seen = checkpoint.seen_videos
    if seen is None:
        raise CheckpointError(
            f"{checkpoint_path} was saved by an older emocore (checkpoint format {checkpoint.version}) that "
            "did not record its training videos, so they cannot be left out of an evaluation: retrain it"
        )
    emotions = checkpoint.labels
    unknown = [e for e in labels.emotions if e not in emotions]
    if not set(labels.emotions) & set(emotions):
        raise ValueError(f"the labels ({', '.join(labels.emotions)}) share no emotion with the model "
                         f"({', '.join(emotions)})")
    videos, truth = _aligned(labels, emotions)
    hashes, skipped = _content_hashes(videos)
    left_out = [v.key for v, h in zip(videos, hashes) if h is not None and h in seen]
    held = [i for i, h in enumerate(hashes) if h is not None and h not in seen]
    if not held and left_out:
        raise NothingHeldOut(
            f"all {len(left_out)} readable labelled videos were used to train {Path(checkpoint_path).name} or choose "
            "its epoch: nothing held out to evaluate on (label other videos, or train with --test-fraction)"
        )
    if left_out:
        log.info("left out %d videos the model was trained or validated on", len(left_out))
    scores, unreadable = _predict(checkpoint, [videos[i] for i in held], cache_dir, progress)
    skipped.update(unreadable)
    if not scores:
        raise ValueError("no labelled video could be scored")
    keep = [held[p] for p in sorted(scores)]
    predicted = np.vstack([scores[p] for p in sorted(scores)])
    truth = truth[keep]
    if unknown:
        log.info("labels for %s are not emotions of this model: not evaluated", ", ".join(unknown))
    return EvaluationResult(emotions, evaluation.evaluate(truth, predicted, emotions),
                            tuple(tuple(c) for c in evaluation.calibration(truth, predicted)), len(keep),
                            tuple(skipped.items()), source=str(checkpoint_path), left_out=tuple(left_out))


def _undefined_auc(fold: int, emotions: Sequence[str], truth: np.ndarray) -> list[SkippedFold]:
    """The emotions whose labels in this fold's scored test part (`truth`) hold fewer than two classes."""
    found = []
    for j, emotion in enumerate(emotions):
        labelled = truth[~np.isnan(truth[:, j]), j]
        positives = int((labelled >= evaluation.LABEL_THRESHOLD).sum())
        if positives in (0, len(labelled)):
            found.append(SkippedFold(fold, emotion, len(labelled), positives))
    return found


def cross_validate(labels: LabelSet, params: TrainParams, *, folds: int, cache_dir: Path,
                   progress: Progress | None = None) -> EvaluationResult:
    """k-fold: train on k−1 folds, score the held-out fold; metrics pooled over all held-out
    predictions, plus mean ± std of each fold's metrics.

    Folds come from `emocore.evaluation.kfold_indices`: stratified on the label combination, and the
    same content (equal content hashes, e.g. one video under two names) always in one fold. A fold
    whose test part holds one class of an emotion is reported in `skipped_folds` and left out of that
    emotion's ROC-AUC mean (its other metrics still count).
    """
    emotions = tuple(labels.emotions)
    videos, truth = _aligned(labels, emotions)
    hashes, skipped = _content_hashes(videos)
    groups = [h if h is not None else f"unreadable:{v.key}" for v, h in zip(videos, hashes)]
    distinct = len(set(groups))
    if folds < 2 or folds > distinct:
        raise ValueError(f"k-fold needs 2 ≤ k ≤ {distinct} (distinct labelled videos), got {folds}")
    predicted = np.full(truth.shape, np.nan)
    per_fold = []
    undefined: list[SkippedFold] = []
    pairs = evaluation.kfold_indices(len(videos), folds, params.seed, labels=truth, groups=groups)
    for n, (train_rows, test_rows) in enumerate(pairs, 1):
        fold_labels = replace(labels, videos=tuple(videos[i] for i in train_rows), missing=())
        result = train(fold_labels, replace(params, val_fraction=0.0, test_fraction=0.0), cache_dir=cache_dir)
        skipped.update({s.key: s.reason for s in result.skipped})
        held_out, unreadable = _predict(result.checkpoint, [videos[i] for i in test_rows], cache_dir)
        skipped.update(unreadable)
        for position, scores in held_out.items():
            predicted[test_rows[position]] = scores
        held = [i for i in test_rows if not np.isnan(predicted[i]).any()]
        undefined += _undefined_auc(n, emotions, truth[held])
        if held:
            per_fold.append(evaluation.evaluate(truth[held], predicted[held], emotions))
        if progress:
            progress("folds", n, folds)
    for gap in undefined:
        log.info("fold %d, %s: %s", gap.fold, gap.emotion, gap.reason)
    scored = ~np.isnan(predicted).any(axis=1)
    return EvaluationResult(
        emotions, evaluation.evaluate(truth[scored], predicted[scored], emotions),
        tuple(tuple(c) for c in evaluation.calibration(truth[scored], predicted[scored])), int(scored.sum()),
        tuple(skipped.items()), evaluation.summarise_folds(per_fold),
        source=f"{folds}-fold cross-validation of {params.backbone} ({params.pooling} pooling), seed {params.seed}",
        skipped_folds=tuple(undefined), fold_count=folds,
    )


def save_evaluation(result: EvaluationResult, out_dir: Path) -> list[Path]:
    """metrics.json, metrics.csv, a confusion matrix per emotion and the calibration chart (HTML,
    and PNG where a browser is available) into `out_dir`."""
    from emocore import export

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    summary = {
        "source": result.source, "videos": result.videos, "metrics": evaluation.to_json(result.metrics),
        "folds": None if result.folds is None else {e: {m: list(v) for m, v in ms.items()}
                                                    for e, ms in result.folds.items()},
        "skipped": [list(s) for s in result.skipped],
        "left_out": list(result.left_out),
        "skipped_folds": [{"fold": f.fold, "emotion": f.emotion, "videos": f.videos, "positives": f.positives,
                           "reason": f.reason} for f in result.skipped_folds],
    }
    write_json(out_dir / "metrics.json", summary)
    write_bytes(out_dir / "metrics.csv", export.table_csv(evaluation.metrics_table(result.metrics)))
    written += [out_dir / "metrics.json", out_dir / "metrics.csv"]
    figures = {f"confusion_{m.emotion}": evaluation.confusion_figure(m) for m in result.metrics}
    figures["calibration"] = evaluation.calibration_figure([list(c) for c in result.calibration],
                                                           list(result.emotions))
    formats = ["html"] + (["png"] if export.export_available() else [])
    for name, figure in figures.items():
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            try:
                write_bytes(path, export.figure_bytes(figure, fmt))
            except export.ExportUnavailable:
                continue
            written.append(path)
    return written
