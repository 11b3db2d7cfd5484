"""Train an ad-level multi-label classifier ("funny", "exciting", ...) on labelled videos.

    result = train(labels, TrainParams(backbone="resnet18", pooling="mean"), cache_dir=Path("cache/features"))
    save_checkpoint(Path("model.pt"), result.checkpoint)
    probabilities = predict_videos(load_checkpoint(Path("model.pt")), paths, cache_dir=Path("cache/features"))

How: every labelled video's frames are sampled and encoded by a frame encoder (`emocore.features`,
cached per video, so retraining a head never decodes again), or the video is read by a feature
source (its soundtrack's AudioSet classes, its faces' emotions: one row per sampling step); a
small head pools the frame features over time (their mean, or an LSTM's last state) and gives
one logit per emotion. Labels are scores in [0, 1]; a missing score (NaN) is masked out of the
loss. Emotions are weighted against imbalance (BCE `pos_weight` = negatives / positives in the
training split). The split
(`split_videos`) is seeded, stratified on the label combination, and keeps identical content (the
same file bytes under two names) in one part; training uses Adam and stops early on the validation
loss, restoring the best epoch. The validation split thus chooses the epoch, and its scores are
model-selection scores (optimistic); `test_fraction` holds out a test split that neither training
nor epoch selection sees. Same data, same parameters, same seed: identical weights.

The checkpoint is a typed record (`Checkpoint`), saved as a plain dict that
`torch.load(..., weights_only=True)` reads (`Checkpoint.to_dict` / `from_dict`, see
`CHECKPOINT_FORMAT`); it records the content hashes (SHA-256 of the file's bytes) of its training,
validation and test videos (`Checkpoint.seen_videos` gives the first two, which evaluation leaves out), and
it carries the encoder's weights whenever they cannot be fetched by name, so the file alone
reproduces the features (a feature source's weights are fetched by setup: its `describe()` names
the model). A trained head also scores single frames (`VideoHead.frame_logits`), which is how
`emocore.models.trained` plugs into `index` (`frame_encoder_for`: not for soundtrack features).

Nothing here prints: progress goes to `progress(stage, done, total)` with stage "features" (videos)
or "epochs"; an early stop ends with a call where done == total.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

import emocore
from emocore.errors import CheckpointError, EmocoreError, TrainingError
from emocore.files import atomic_open
from emocore.features import Backbone, FrameEncoder, StoredWeights, file_hash, make_encoder, video_features

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

log = logging.getLogger("emocore")

CHECKPOINT_FORMAT = "emocore-trained"
#: 2 records the content hashes of the training, validation and test videos ("videos"); 1 did not.
CHECKPOINT_VERSION = 2
POOLINGS = ("mean", "lstm")
#: Dropout before the head's linear layer.
DROPOUT = 0.2
#: Largest BCE positive weight (an emotion with one positive among hundreds would swamp the loss).
MAX_POS_WEIGHT = 100.0

Progress = Callable[[str, int, int], None]
_Record = TypeVar("_Record", bound="DataclassInstance")


class LabelledVideo(Protocol):
    """One video and its scores; an emotion absent from `scores` is unlabelled."""

    @property
    def key(self) -> str: ...

    @property
    def path(self) -> Path: ...

    @property
    def scores(self) -> Mapping[str, float]: ...


class LabelledVideos(Protocol):
    """What `train` needs of a label set (emocore.labels.LabelSet is one)."""

    @property
    def videos(self) -> Sequence[LabelledVideo]: ...

    @property
    def emotions(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class TrainParams:
    """Everything that changes a trained model (stored in its checkpoint)."""

    backbone: str = "resnet18"
    """Frame encoder spec: a torchvision backbone, or e.g. "clip:ViT-B-32"; or a video feature source
    (`emocore.features.VideoFeatureSource`): "audioset", "audioset:embedding", "faces", "faces+audioset"."""
    weights: str | None = "imagenet"
    """"imagenet" (fetched; random with a warning when offline), a state-dict file path, or None (random).
    Feature sources take only their fixed weights ("imagenet", the default, stands for them)."""
    pooling: str = "mean"
    """"mean" or "lstm"."""
    sample_rate: float = 1.0
    max_side: int = 480
    epochs: int = 50
    batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    """Share of videos that choose the epoch (early stopping): their scores are model-selection scores."""
    test_fraction: float = 0.0
    """Share of videos held out as a test split, never seen in training or epoch selection (0: none)."""
    patience: int = 8
    seed: int = 0
    hidden: int = 128
    """LSTM hidden size."""

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if not self.sample_rate > 0:
            raise ValueError(f"sample rate must be positive, got {self.sample_rate}")
        if self.max_side < 32:
            raise ValueError(f"max side must be at least 32 pixels, got {self.max_side}")
        if self.epochs < 1 or self.batch < 1 or self.patience < 1 or self.hidden < 1:
            raise ValueError("epochs, batch, patience and hidden must be at least 1")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError("the learning rate must be positive and the weight decay non-negative")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"validation fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.test_fraction < 1:
            raise ValueError(f"test fraction must be in [0, 1), got {self.test_fraction}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"validation and test fractions ({self.val_fraction} + {self.test_fraction}) "
                             "must leave videos to train on")


@dataclass(frozen=True)
class EpochLoss:
    epoch: int
    """From 1."""
    train_loss: float
    val_loss: float | None
    """None without a validation split."""


@dataclass(frozen=True)
class Validation:
    """The restored model's predictions on held-out videos (the validation or the test split)."""

    keys: tuple[str, ...]
    probabilities: np.ndarray
    """(N, E) float32, ad-level."""
    labels: np.ndarray
    """(N, E) float32 scores, NaN where unlabelled."""


@dataclass(frozen=True)
class SkippedVideo:
    key: str
    path: Path
    reason: str


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Checkpoint
    """Ready for `save_checkpoint`; its `metrics` are the caller's to fill (`dataclasses.replace`)."""
    history: tuple[EpochLoss, ...]
    best_epoch: int
    validation: Validation
    """Predictions on the validation split, which chose the epoch: model-selection scores, optimistic."""
    train_keys: tuple[str, ...]
    test: Validation
    """Predictions on the test split (empty without `test_fraction`): never seen in training or epoch selection."""
    skipped: tuple[SkippedVideo, ...]
    """Videos left out, with a one-line reason (unreadable, or no label at all)."""


class VideoHead(nn.Module):
    """Frame features (B, T, dim) -> (B, E) emotion logits, pooled by their mean or an LSTM.

    Features are first standardised with the training frames' mean and scale (buffers, saved with
    the weights), which keeps the head's learning rate meaningful whatever the encoder's scale.
    """

    def __init__(self, dim: int, labels: int, pooling: str = "mean", hidden: int = 128,
                 dropout: float = DROPOUT) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.pooling = pooling
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_scale", torch.ones(dim))
        self.lstm = nn.LSTM(dim, hidden, batch_first=True) if pooling == "lstm" else None
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden if self.lstm is not None else dim, labels)

    def set_normalisation(self, frames: torch.Tensor) -> None:
        """Standardise with the mean and scale of these (N, dim) training frames."""
        std = frames.std(dim=0, unbiased=False) if len(frames) > 1 else torch.ones(frames.shape[1])
        self.feature_mean.copy_(frames.mean(dim=0))
        self.feature_scale.copy_(torch.where(std > 1e-12, std, torch.ones_like(std)))

    def _normalised(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.feature_mean) / self.feature_scale

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, dim) zero-padded features and (B,) true lengths -> (B, E) logits."""
        x = self._normalised(features)
        if self.lstm is None:
            mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)
            pooled = (x * mask).sum(dim=1) / lengths[:, None].to(x.dtype)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (hidden, _) = self.lstm(packed)
            pooled = hidden[-1]
        return self.linear(self.dropout(pooled))

    def frame_logits(self, features: torch.Tensor) -> torch.Tensor:
        """(N, dim) features of N single frames -> (N, E): each frame scored as a one-frame video."""
        return self.forward(features.unsqueeze(1), torch.ones(len(features), dtype=torch.long))


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean BCE over the labelled entries only: NaN targets add nothing to the loss or the gradient."""
    labelled = ~torch.isnan(targets)
    losses = F.binary_cross_entropy_with_logits(
        logits, torch.where(labelled, targets, torch.zeros_like(targets)), pos_weight=pos_weight, reduction="none"
    )
    return torch.where(labelled, losses, torch.zeros_like(losses)).sum() / labelled.sum().clamp(min=1)


def positive_weights(targets: np.ndarray) -> np.ndarray:
    """Per emotion, negatives / positives among the labelled (soft scores count fractionally); 1 if either is 0."""
    labelled = ~np.isnan(targets)
    positives = np.where(labelled, targets, 0.0).sum(axis=0)
    negatives = np.where(labelled, 1.0 - targets, 0.0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((positives > 0) & (negatives > 0), negatives / positives, 1.0)
    return np.clip(ratio, 1.0 / MAX_POS_WEIGHT, MAX_POS_WEIGHT).astype(np.float32)


@dataclass(frozen=True)
class Split:
    """Row indices (sorted) of the training, validation and test parts of a labelled set."""

    train: np.ndarray
    validation: np.ndarray
    """Chooses the epoch (early stopping): its scores are model-selection scores, optimistic."""
    test: np.ndarray
    """Never seen in training or epoch selection."""


def split_videos(labels: np.ndarray, *, val_fraction: float, test_fraction: float = 0.0, seed: int,
                 groups: Sequence[object] | None = None) -> Split:
    """A seeded split of the rows of `labels` (N × E scores, NaN = unlabelled) into train, validation, test.

    Stratified on the label combination (`emocore.evaluation.label_strata`: each emotion negative,
    positive or unlabelled); rows with equal `groups` entries (the same content hash) form one unit
    and stay in one part. Each stratum's units are shuffled and ranked by their position's fraction
    of the stratum, so the lowest ranks hold about the same share of every stratum: the lowest go
    to test, the next to validation. Counts are in units: round(units × fraction), at least one
    when the fraction is positive, and at least one unit always stays in training (validation gives
    way first).
    """
    from emocore.evaluation import group_units, unit_strata  # here: it loads plotly, which `index` never needs

    n = len(labels)
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"validation ({val_fraction}) and test ({test_fraction}) fractions must be in [0, 1) "
                         "and leave some videos for training")
    units, count = group_units(n, groups)
    n_test = min(count - 1, max(1, round(count * test_fraction))) if test_fraction > 0 and count > 1 else 0
    n_val = min(count - 1 - n_test, max(1, round(count * val_fraction))) if val_fraction > 0 and count > 1 else 0
    rng = np.random.default_rng(seed)
    strata = unit_strata(labels, units, count)
    rank = np.empty(count)
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        rank[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    order = np.argsort(rank, kind="stable")
    part = np.zeros(count, dtype=np.int64)  # 0 train, 1 validation, 2 test
    part[order[:n_test]] = 2
    part[order[n_test:n_test + n_val]] = 1
    row_part = part[units]
    return Split(np.flatnonzero(row_part == 0), np.flatnonzero(row_part == 1), np.flatnonzero(row_part == 2))


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch for a block without touching the caller's random state or determinism setting."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=warn_only)


def _batch(features: Sequence[torch.Tensor], rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    chosen = [features[i] for i in rows]
    return pad_sequence(chosen, batch_first=True), torch.tensor([len(f) for f in chosen], dtype=torch.long)


def _evaluate(head: VideoHead, features: Sequence[torch.Tensor], targets: torch.Tensor, rows: np.ndarray,
              pos_weight: torch.Tensor, batch: int) -> tuple[float, np.ndarray]:
    """Mean masked loss over `rows` (eval mode) and their probabilities."""
    head.eval()
    total, count, probabilities = 0.0, 0, []
    with torch.inference_mode():
        for start in range(0, len(rows), batch):
            part = rows[start:start + batch]
            x, lengths = _batch(features, part)
            logits = head(x, lengths)
            labelled = int((~torch.isnan(targets[part])).sum())
            total += float(masked_loss(logits, targets[part], pos_weight)) * labelled
            count += labelled
            probabilities.append(torch.sigmoid(logits).numpy())
    stacked = np.concatenate(probabilities) if probabilities else np.zeros((0, targets.shape[1]), np.float32)
    return (total / count if count else math.nan), stacked.astype(np.float32)


def _label_matrix(videos: Sequence[LabelledVideo], emotions: Sequence[str]) -> np.ndarray:
    targets = np.full((len(videos), len(emotions)), np.nan, dtype=np.float32)
    for i, video in enumerate(videos):
        for j, emotion in enumerate(emotions):
            score = video.scores.get(emotion)
            if score is None or (isinstance(score, float) and math.isnan(score)):
                continue
            if not 0.0 <= float(score) <= 1.0:
                raise ValueError(f"{video.key}: score for {emotion!r} must be in [0, 1], got {score}")
            targets[i, j] = float(score)
    return targets


def train(labelled: LabelledVideos, params: TrainParams = TrainParams(), *, cache_dir: Path | None,
          progress: Progress | None = None) -> TrainResult:
    """Train a head on `labelled`'s videos; see the module docstring. Raises TrainingError with < 2 usable videos."""
    emotions = list(labelled.emotions)
    if not emotions:
        raise ValueError("the label set names no emotions")
    if len(set(emotions)) != len(emotions):
        raise ValueError("the label set names an emotion twice")
    report = progress or (lambda stage, done, total: None)
    videos = list(labelled.videos)
    all_targets = _label_matrix(videos, emotions)

    encoder = make_encoder(params.backbone, weights=params.weights, seed=params.seed)
    kept: list[int] = []
    contents: list[str] = []
    skipped: list[SkippedVideo] = []
    features: list[torch.Tensor] = []
    report("features", 0, len(videos))
    for i, video in enumerate(videos):
        if np.isnan(all_targets[i]).all():
            skipped.append(SkippedVideo(video.key, Path(video.path), "no emotion is labelled"))
        else:
            try:
                content = file_hash(Path(video.path))
                array = video_features(Path(video.path), encoder, sample_rate=params.sample_rate,
                                       max_side=params.max_side, cache_dir=cache_dir)
            except EmocoreError as exc:  # VideoError, and encoder failures on odd files
                log.warning("skipping %s: %s", video.key, exc)
                skipped.append(SkippedVideo(video.key, Path(video.path), str(exc)))
            else:
                kept.append(i)
                contents.append(content)
                features.append(torch.from_numpy(array))
        report("features", i + 1, len(videos))
    if len(kept) < 2:
        raise TrainingError(f"only {len(kept)} of {len(videos)} videos are readable and labelled; need at least 2")

    targets_np = all_targets[kept]
    keys = [videos[i].key for i in kept]
    split = split_videos(targets_np, val_fraction=params.val_fraction, test_fraction=params.test_fraction,
                         seed=params.seed, groups=contents)
    train_rows, val_rows, test_rows = split.train, split.validation, split.test
    targets = torch.from_numpy(targets_np)
    pos_weight = torch.from_numpy(positive_weights(targets_np[train_rows]))
    log.info("training on %d videos, validating (choosing the epoch) on %d, testing on %d (%s pooling, %s features)",
             len(train_rows), len(val_rows), len(test_rows), params.pooling, encoder.describe().get("weights"))

    history: list[EpochLoss] = []
    with _seeded(params.seed):
        head = VideoHead(encoder.dim, len(emotions), params.pooling, params.hidden)
        head.set_normalisation(torch.cat([features[i] for i in train_rows]))
        optimiser = torch.optim.Adam(head.parameters(), lr=params.lr, weight_decay=params.weight_decay)
        rng = np.random.default_rng(params.seed)
        best = (math.inf, 0, copy.deepcopy(head.state_dict()))
        stale = 0
        report("epochs", 0, params.epochs)
        for epoch in range(1, params.epochs + 1):
            head.train()
            total, count = 0.0, 0
            order = rng.permutation(train_rows)
            for start in range(0, len(order), params.batch):
                part = order[start:start + params.batch]
                labelled_entries = int((~torch.isnan(targets[part])).sum())
                x, lengths = _batch(features, part)
                loss = masked_loss(head(x, lengths), targets[part], pos_weight)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * labelled_entries
                count += labelled_entries
            train_loss = total / max(count, 1)
            val_loss = _evaluate(head, features, targets, val_rows, pos_weight, params.batch)[0] if len(val_rows) else None
            history.append(EpochLoss(epoch, train_loss, val_loss))
            monitored = val_loss if val_loss is not None and not math.isnan(val_loss) else train_loss
            if monitored < best[0] - 1e-7:
                best, stale = (monitored, epoch, copy.deepcopy(head.state_dict())), 0
            else:
                stale += 1
            report("epochs", epoch, params.epochs)
            if stale >= params.patience:
                log.info("early stop after epoch %d (best epoch %d)", epoch, best[1])
                report("epochs", params.epochs, params.epochs)
                break
        head.load_state_dict(best[2])
    head.eval()

    val_probabilities = _evaluate(head, features, targets, val_rows, pos_weight, params.batch)[1]
    test_probabilities = _evaluate(head, features, targets, test_rows, pos_weight, params.batch)[1]
    checkpoint = Checkpoint(
        labels=tuple(emotions),
        encoder=encoder.describe(),
        pooling=params.pooling,
        sampling=CheckpointSampling(float(params.sample_rate), int(params.max_side)),
        head=HeadShape(encoder.dim, params.hidden, DROPOUT),
        head_state={k: v.detach().clone() for k, v in head.state_dict().items()},
        # plain types only (a weights file given as a Path is kept as its string)
        params=replace(params, weights=str(params.weights)) if isinstance(params.weights, Path) else params,
        # content hashes (SHA-256 of the files' bytes), so evaluation can leave these videos out
        videos=SeenVideos(*(tuple(sorted({contents[i] for i in rows})) for rows in (train_rows, val_rows, test_rows))),
        training=TrainingSummary(
            best_epoch=best[1],
            epochs_run=len(history),
            best_loss=float(best[0]),
            monitored="validation" if len(val_rows) else "training",
            videos={"train": len(train_rows), "validation": len(val_rows), "test": len(test_rows),
                    "skipped": len(skipped)},
        ),
        encoder_state=encoder.state_dict(),
        emocore=emocore.__version__,
    )
    return TrainResult(
        checkpoint=checkpoint,
        history=tuple(history),
        best_epoch=best[1],
        validation=Validation(tuple(keys[i] for i in val_rows), val_probabilities, targets_np[val_rows]),
        train_keys=tuple(keys[i] for i in train_rows),
        test=Validation(tuple(keys[i] for i in test_rows), test_probabilities, targets_np[test_rows]),
        skipped=tuple(skipped),
    )


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------

_REQUIRED = ("labels", "encoder", "pooling", "sampling", "head", "head_state")


@dataclass(frozen=True)
class CheckpointSampling:
    """How a checkpoint's videos were sampled; a video is scored with the same."""

    sample_rate: float
    max_side: int


@dataclass(frozen=True)
class HeadShape:
    """What `VideoHead` to build before loading a checkpoint's head weights."""

    dim: int
    """Frame feature size (the encoder's `dim`)."""
    hidden: int
    """LSTM hidden size (unused by mean pooling)."""
    dropout: float = DROPOUT


@dataclass(frozen=True)
class TrainingSummary:
    """How training went: the epoch kept, the epochs run, its loss, what chose it, videos per part."""

    best_epoch: int
    epochs_run: int
    best_loss: float
    monitored: str
    """"validation" (the validation loss chose the epoch) or "training" (no validation split)."""
    videos: dict[str, int]
    """Videos per part: "train", "validation", "test" (format 2) and "skipped"."""


@dataclass(frozen=True)
class SeenVideos:
    """Content hashes (SHA-256 of the files' bytes) of a checkpoint's training, validation and test videos."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A trained model as saved: `to_dict` gives plain types and tensors only, so the file is read back
    with `torch.load(..., weights_only=True)`; `from_dict` checks what it reads (CheckpointError).

    Not compared with `==` (tensors inside): compare `to_dict()`s, tensors with `torch.equal`.
    """

    labels: tuple[str, ...]
    """The emotions, in the order of the head's outputs."""
    encoder: dict[str, object]
    """The frame encoder's `describe()`: what `encoder_for` rebuilds and checks."""
    pooling: str
    sampling: CheckpointSampling
    head: HeadShape
    head_state: dict[str, torch.Tensor]
    params: TrainParams = TrainParams()
    """What it was trained with (a field an older checkpoint lacks takes its default)."""
    videos: SeenVideos | None = None
    """None for a format-1 checkpoint, which did not record them (its training set is unknown)."""
    training: TrainingSummary | None = None
    metrics: dict[str, object] = field(default_factory=dict)
    """The caller's figures (emocore.experiments: validation and test metrics as JSON)."""
    encoder_state: dict[str, torch.Tensor] | None = None
    """The encoder's weights whenever they cannot be fetched by name, so the file alone reproduces the features."""
    emocore: str = ""
    """The emocore version that trained it."""
    version: int = CHECKPOINT_VERSION

    @property
    def seen_videos(self) -> frozenset[str] | None:
        """Content hashes of the videos that trained the model or chose its epoch (training and
        validation splits); None for a format-1 checkpoint, which did not record them."""
        if self.version < 2 or self.videos is None:
            return None
        return frozenset(self.videos.train + self.videos.validation)

    def to_dict(self) -> dict[str, object]:
        """The dict `save_checkpoint` writes: plain types and tensors (what weights_only loading accepts)."""
        out: dict[str, object] = {
            "format": CHECKPOINT_FORMAT,
            "version": self.version,
            "labels": list(self.labels),
            "encoder": dict(self.encoder),
            "pooling": self.pooling,
            "sampling": asdict(self.sampling),
            "params": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self.params).items()},
            "head": asdict(self.head),
            "head_state": dict(self.head_state),
            "metrics": dict(self.metrics),
            "emocore": self.emocore,
        }
        if self.training is not None:
            out["training"] = asdict(self.training)
        if self.videos is not None:
            out["videos"] = {part: list(hashes) for part, hashes in asdict(self.videos).items()}
        if self.encoder_state is not None:
            out["encoder_state"] = dict(self.encoder_state)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, source: str = "the checkpoint") -> "Checkpoint":
        """Read what `to_dict` wrote (or a format-1 dict); CheckpointError naming `source` when it is not one.

        Fields a record lacks take their defaults; an unknown training parameter or a value of the
        wrong kind is damage."""
        if not isinstance(data, Mapping) or data.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{source} is not an emocore model checkpoint")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise CheckpointError(f"{source} is damaged (no format version)")
        if version > CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{source} was made by a newer emocore (checkpoint format {version}; this one reads up to "
                f"{CHECKPOINT_VERSION}): upgrade emocore"
            )
        missing = [key for key in _REQUIRED + (("videos",) if version >= 2 else ()) if key not in data]
        if missing:
            raise CheckpointError(f"{source} is damaged (missing {', '.join(missing)})")
        try:
            return cls(
                labels=tuple(_strings(data["labels"], "labels")),
                encoder=dict(_mapping(data["encoder"], "encoder")),
                pooling=str(data["pooling"]),
                sampling=_record(CheckpointSampling, data["sampling"], "sampling"),
                head=_record(HeadShape, data["head"], "head"),
                head_state=_tensors(data["head_state"], "head_state"),
                params=_record(TrainParams, data.get("params") or {}, "params"),
                videos=(SeenVideos(**{part: tuple(_strings(hashes, f"videos {part}")) for part, hashes
                                      in _mapping(data["videos"], "videos").items()})
                        if version >= 2 else None),
                training=None if data.get("training") is None else _record(TrainingSummary, data["training"],
                                                                            "training"),
                metrics=dict(_mapping(data.get("metrics") or {}, "metrics")),
                encoder_state=None if data.get("encoder_state") is None else _tensors(data["encoder_state"],
                                                                                       "encoder_state"),
                emocore=str(data.get("emocore", "")),
                version=version,
            )
        except (TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{source} is damaged ({exc})") from exc


def _mapping(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} is not a mapping")
    return value


def _strings(value: object, what: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{what} is not a list of strings")
    return list(value)


def _tensors(value: object, what: str) -> dict[str, torch.Tensor]:
    found = _mapping(value, what)
    tensors = {str(k): v for k, v in found.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(found):
        raise TypeError(f"{what} holds something other than tensors")
    return tensors


def _record(cls: type[_Record], value: object, what: str) -> _Record:
    """A frozen dataclass from its `asdict` (missing fields: their defaults; unknown keys: TypeError)."""
    found = _mapping(value, what)
    names = {f.name for f in fields(cls)}
    unknown = sorted(str(k) for k in found if k not in names)
    if unknown:
        raise TypeError(f"{what} holds unknown fields {', '.join(unknown)}")
    return cls(**found)


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write a checkpoint atomically (a temporary file renamed into place)."""
    with atomic_open(path) as out:
        torch.save(checkpoint.to_dict(), out)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint with `weights_only=True`; CheckpointError with a one-line reason otherwise.

    A format-1 checkpoint (no record of its videos) still loads, so it can score ads; its
    `seen_videos` is None and `emocore.experiments.evaluate_model` refuses it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — pickles, zips, truncations all fail in their own way
        raise CheckpointError(f"{path} is not an emocore model checkpoint ({type(exc).__name__})") from exc
    return Checkpoint.from_dict(data, source=str(path))


def head_for(checkpoint: Checkpoint) -> VideoHead:
    """The checkpoint's trained head, in eval mode."""
    shape = checkpoint.head
    head = VideoHead(shape.dim, len(checkpoint.labels), checkpoint.pooling, shape.hidden, shape.dropout)
    try:
        head.load_state_dict(checkpoint.head_state)
    except RuntimeError as exc:
        raise CheckpointError("the checkpoint's head weights do not fit its own description") from exc
    return head.eval()


def encoder_for(checkpoint: Checkpoint) -> Backbone:
    """The frame encoder (or video feature source) the checkpoint was trained on, giving the same features.

    Raises CheckpointError when that encoder cannot be rebuilt here (e.g. ImageNet weights that
    cannot be fetched): scoring with other features would give confident nonsense.
    """
    described = checkpoint.encoder
    state = checkpoint.encoder_state
    label = described.get("weights")
    weights = (StoredWeights(str(label), state) if state is not None
               else None if label is None else str(label))
    encoder = make_encoder(str(described["name"]), weights=weights, seed=checkpoint.params.seed)
    if encoder.describe() != described and described.get("kind") == "video":
        raise CheckpointError(
            f"the model needs {described['name']} features made by {described.get('model', 'another model')}, "
            f"but here they are made by {encoder.describe().get('model')}: retrain it"
        )
    if encoder.describe() != described:
        raise CheckpointError(
            f"the model needs {described['name']} features with {described.get('weights')} weights, "
            f"but here the encoder has {encoder.describe().get('weights')} weights"
        )
    return encoder


def frame_encoder_for(checkpoint: Checkpoint) -> FrameEncoder:
    """`encoder_for`, for scoring single frames (`index --model trained:PATH`): CheckpointError when the
    checkpoint's features are not one frame's (the soundtrack: a frame has no sound)."""
    encoder = encoder_for(checkpoint)
    if not isinstance(encoder, FrameEncoder):
        raise CheckpointError(
            f"the model was trained on {encoder.name} features, which are read from the whole video (its "
            "soundtrack), not from single frames: score videos with `evaluate --model`, not `index --model trained:`"
        )
    return encoder


def predict_videos(checkpoint: Checkpoint | Path, paths: Sequence[Path], *, cache_dir: Path | None,
                   progress: Progress | None = None) -> np.ndarray:
    """(N, E) ad-level probabilities of the checkpoint's emotions for each video (VideoError if unreadable)."""
    if not isinstance(checkpoint, Checkpoint):
        checkpoint = load_checkpoint(Path(checkpoint))
    encoder, head = encoder_for(checkpoint), head_for(checkpoint)
    sampling = checkpoint.sampling
    out = np.zeros((len(paths), len(checkpoint.labels)), dtype=np.float32)
    for i, path in enumerate(paths):
        features = video_features(Path(path), encoder, sample_rate=sampling.sample_rate,
                                  max_side=sampling.max_side, cache_dir=cache_dir)
        with torch.inference_mode():
            logits = head(torch.from_numpy(features)[None], torch.tensor([len(features)]))
        out[i] = torch.sigmoid(logits)[0].numpy()
        if progress is not None:
            progress("features", i + 1, len(paths))
    return out


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointSampling",
    "HeadShape",
    "SeenVideos",
    "TrainingSummary",
    "EpochLoss",
    "LabelledVideos",
    "SkippedVideo",
    "TrainParams",
    "TrainResult",
    "TrainingError",
    "Validation",
    "VideoHead",
    "encoder_for",
    "frame_encoder_for",
    "head_for",
    "load_checkpoint",
    "masked_loss",
    "positive_weights",
    "predict_videos",
    "save_checkpoint",
    "Split",
    "split_videos",
    "train",
]
