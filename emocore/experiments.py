"""Train and evaluate ad-level classifiers end to end: labels in, checkpoint and metrics out.

    labels = read_labels(csv=Path("labels.csv"))
    run = train_model(labels, TrainParams(), out=Path("cache/models/ads.pt"), cache_dir=Path("cache/features"))
    result = evaluate_model(run.checkpoint_path, labels, cache_dir=Path("cache/features"))
    cv = cross_validate(labels, TrainParams(), folds=5, cache_dir=Path("cache/features"))
    save_evaluation(result, Path("cache/evaluations/ads"))

The pieces: `emocore.labels` reads label files, `emocore.training` extracts (cached) frame
features and fits the head, `emocore.evaluation` does the maths. Metrics always come with the
majority-class and random baselines next to them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from emocore import evaluation
from emocore.errors import VideoError
from emocore.evaluation import CalibrationBin, EmotionMetrics
from emocore.labels import LabelledVideo, LabelSet, load_csv, load_pitt
from emocore.training import TrainParams, load_checkpoint, predict_videos, save_checkpoint, train

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
    """Metrics of the restored model on the held-out videos (empty without a validation split)."""
    epochs: int
    best_epoch: int
    trained_on: int
    validated_on: int
    skipped: tuple[tuple[str, str], ...]
    """(video, reason) for videos left out."""
    encoder: dict[str, object]


def train_model(labels: LabelSet, params: TrainParams, *, out: Path, cache_dir: Path,
                progress: Progress | None = None) -> TrainingRun:
    """Train on `labels`, evaluate on the validation split, save the checkpoint (with its metrics)."""
    result = train(labels, params, cache_dir=cache_dir, progress=progress)
    emotions = list(result.checkpoint["labels"])  # type: ignore[arg-type]
    val = result.validation
    metrics = evaluation.evaluate(val.labels, val.probabilities, emotions) if len(val.keys) else ()
    checkpoint = {**result.checkpoint, "metrics": {"validation": evaluation.to_json(metrics),
                                                     "validated_on": len(val.keys),
                                                     "trained_on": len(result.train_keys)}}
    save_checkpoint(out, checkpoint)
    return TrainingRun(out, tuple(metrics), len(result.history), result.best_epoch, len(result.train_keys),
                       len(val.keys), tuple((s.key, s.reason) for s in result.skipped),
                       dict(result.checkpoint["encoder"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class EvaluationResult:
    emotions: tuple[str, ...]
    metrics: tuple[EmotionMetrics, ...]
    calibration: tuple[tuple[CalibrationBin, ...], ...]
    """Per emotion (in `emotions` order)."""
    videos: int
    skipped: tuple[tuple[str, str], ...]
    folds: dict[str, dict[str, tuple[float, float]]] | None = None
    """k-fold only: emotion → metric → (mean, std) over the folds."""
    source: str = ""
    """What was evaluated (checkpoint path, or the k-fold set-up)."""


def _aligned(labels: LabelSet, emotions: Sequence[str]) -> tuple[list[LabelledVideo], np.ndarray]:
    """The videos with at least one of `emotions` labelled, and their label matrix (NaN = unlabelled)."""
    rows, kept = [], []
    for video in labels.videos:
        row = [video.scores.get(e, np.nan) for e in emotions]
        if not np.isnan(row).all():
            rows.append(row)
            kept.append(video)
    return kept, np.array(rows, dtype=np.float64).reshape(len(rows), len(emotions))


def _predict(checkpoint: dict[str, object], videos: Sequence[LabelledVideo], cache_dir: Path,
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


def evaluate_model(checkpoint_path: Path, labels: LabelSet, *, cache_dir: Path,
                   progress: Progress | None = None) -> EvaluationResult:
    """Score every labelled video with a trained model and compare with the labels."""
    checkpoint = load_checkpoint(checkpoint_path)
    emotions = tuple(checkpoint["labels"])  # type: ignore[arg-type]
    unknown = [e for e in labels.emotions if e not in emotions]
    if not set(labels.emotions) & set(emotions):
        raise ValueError(f"the labels ({', '.join(labels.emotions)}) share no emotion with the model "
                         f"({', '.join(emotions)})")
    videos, truth = _aligned(labels, emotions)
    scores, skipped = _predict(checkpoint, videos, cache_dir, progress)
    if not scores:
        raise ValueError("no labelled video could be scored")
    keep = sorted(scores)
    predicted = np.vstack([scores[i] for i in keep])
    truth = truth[keep]
    if unknown:
        log.info("labels for %s are not emotions of this model: not evaluated", ", ".join(unknown))
    return EvaluationResult(emotions, evaluation.evaluate(truth, predicted, emotions),
                            tuple(tuple(c) for c in evaluation.calibration(truth, predicted)), len(keep),
                            tuple(skipped.items()), source=str(checkpoint_path))


def cross_validate(labels: LabelSet, params: TrainParams, *, folds: int, cache_dir: Path,
                   progress: Progress | None = None) -> EvaluationResult:
    """k-fold: train on k−1 folds, score the held-out fold; metrics pooled over all held-out
    predictions, plus mean ± std of each fold's metrics."""
    emotions = tuple(labels.emotions)
    videos, truth = _aligned(labels, emotions)
    if folds < 2 or folds > len(videos):
        raise ValueError(f"k-fold needs 2 ≤ k ≤ {len(videos)} (labelled videos), got {folds}")
    predicted = np.full(truth.shape, np.nan)
    per_fold = []
    skipped: dict[str, str] = {}
    for n, (train_rows, test_rows) in enumerate(evaluation.kfold_indices(len(videos), folds, params.seed), 1):
        fold_labels = replace(labels, videos=tuple(videos[i] for i in train_rows), missing=())
        result = train(fold_labels, replace(params, val_fraction=0.0), cache_dir=cache_dir)
        skipped.update({s.key: s.reason for s in result.skipped})
        held_out, unreadable = _predict(result.checkpoint, [videos[i] for i in test_rows], cache_dir)
        skipped.update(unreadable)
        for position, scores in held_out.items():
            predicted[test_rows[position]] = scores
        held = [i for i in test_rows if not np.isnan(predicted[i]).any()]
        if held:
            per_fold.append(evaluation.evaluate(truth[held], predicted[held], emotions))
        if progress:
            progress("folds", n, folds)
    scored = ~np.isnan(predicted).any(axis=1)
    return EvaluationResult(
        emotions, evaluation.evaluate(truth[scored], predicted[scored], emotions),
        tuple(tuple(c) for c in evaluation.calibration(truth[scored], predicted[scored])), int(scored.sum()),
        tuple(skipped.items()), evaluation.summarise_folds(per_fold),
        source=f"{folds}-fold cross-validation of {params.backbone} ({params.pooling} pooling), seed {params.seed}",
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
    }
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    (out_dir / "metrics.csv").write_bytes(export.table_csv(evaluation.metrics_table(result.metrics)))
    written += [out_dir / "metrics.json", out_dir / "metrics.csv"]
    figures = {f"confusion_{m.emotion}": evaluation.confusion_figure(m) for m in result.metrics}
    figures["calibration"] = evaluation.calibration_figure([list(c) for c in result.calibration],
                                                           list(result.emotions))
    formats = ["html"] + (["png"] if export.export_available() else [])
    for name, figure in figures.items():
        for fmt in formats:
            path = out_dir / f"{name}.{fmt}"
            try:
                path.write_bytes(export.figure_bytes(figure, fmt))
            except export.ExportUnavailable:
                continue
            written.append(path)
    return written
