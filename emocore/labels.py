"""Ad-level labels for training a classifier: the Pitt video-ads annotations, or a team's own CSV.

    labels = load_pitt([Path("video_Funny_clean.json")], Path("ads/"), protocol=True)
    labels = load_csv(Path("my_labels.csv"))
    y, paths = labels.matrix()        # N × E scores in [0, 1], NaN where a video has no label

Every loader returns a `LabelSet`: the videos found on disk with their scores (emotion → score in
[0, 1]; an emotion a video has no label for is absent, which training masks), the sorted emotion
names, the labelled keys whose video file was not found (`missing`: reported, never an error),
and how many labels per emotion the Pitt protocol dropped.

The Pitt protocol (Hussain et al., CVPR 2017), per emotion: a score ≥ 0.7
becomes 1.0, ≤ 0.3 becomes 0.0, anything in between is dropped. `dropped` counts over every
labelled key, whether or not its video is on disk, so it matches the published statistics. A video
the protocol leaves with no label at all is not included anywhere (neither `videos` nor `missing`).

Bad input raises `LabelError` with one line naming the file and the offending entry (a YouTube id
or a CSV line number). Only the 0/1 questions (funny, exciting) of the Pitt files can be labels.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emocore.errors import FolderNotFound, LabelError
from emocore.video import VIDEO_EXTENSIONS

log = logging.getLogger("emocore")

#: The Pitt questions answered 0/1 by each annotator: the only ones that can be classifier labels.
PITT_BINARY_QUESTIONS = ("exciting", "funny")
#: The Pitt protocol: scores at or above are positive, at or below negative, the rest dropped.
PROTOCOL_POSITIVE = 0.7
PROTOCOL_NEGATIVE = 0.3
#: Scores at or above this are positive when labels are binarised.
BINARY_THRESHOLD = 0.5
CSV_COLUMNS = ("path", "emotion", "score")

_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_PITT_FILE = re.compile(r"video_(?P<question>.+)_(?P<kind>clean|raw)\.json")
_EMOTION = re.compile(r"[a-z0-9_ -]+")


@dataclass(frozen=True)
class LabelledVideo:
    """One video and its labels."""

    key: str
    """The YouTube id (Pitt) or the path as written in the CSV."""
    path: Path
    scores: dict[str, float]
    """Emotion → score in [0, 1]; an emotion this video has no label for is absent."""


@dataclass(frozen=True)
class LabelSet:
    """The labelled videos found on disk, and what was left out and why."""

    videos: tuple[LabelledVideo, ...]
    """Sorted by key."""
    emotions: tuple[str, ...]
    """Sorted; every emotion the label files name, even one left with no label."""
    missing: tuple[str, ...]
    """Labelled keys whose video file was not found (sorted): reported and skipped."""
    dropped: dict[str, int]
    """Per emotion, labels dropped by the Pitt protocol (0 for every emotion without it)."""

    def __len__(self) -> int:
        return len(self.videos)

    def matrix(self) -> tuple[np.ndarray, list[Path]]:
        """Scores as an N × E float array (columns in `emotions` order, NaN where absent), and the
        N video paths in the same order."""
        y = np.full((len(self.videos), len(self.emotions)), np.nan)
        column = {e: j for j, e in enumerate(self.emotions)}
        for i, video in enumerate(self.videos):
            for emotion, score in video.scores.items():
                y[i, column[emotion]] = score
        return y, [v.path for v in self.videos]

    def binary(self, threshold: float = BINARY_THRESHOLD) -> np.ndarray:
        """`matrix()` binarised: 1.0 where score ≥ threshold, 0.0 below, NaN kept where absent."""
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        y, _ = self.matrix()
        return np.where(np.isnan(y), np.nan, (y >= threshold).astype(float))


# --- the Pitt annotation files ----------------------------------------------------------------


def load_pitt(
    files: Sequence[Path],
    videos: Path,
    *,
    protocol: bool = False,
    id_list: Path | None = None,
) -> LabelSet:
    """Labels from the published Pitt files `video_<Emotion>_clean.json` (a mean of the annotators'
    0/1 answers per id) or `video_<Emotion>_raw.json` (the list of answers; the score is their
    mean), one file per emotion, merged by YouTube id. The video of id X is `<videos>/X.<ext>` for a
    video extension in any case. `id_list` (the published `final_video_id_list.csv`) makes an id
    outside it an error. `protocol=True` applies the paper's ≥ 0.7 / ≤ 0.3 protocol.
    """
    if not files:
        raise ValueError("no Pitt label files given")
    known = _read_id_list(Path(id_list)) if id_list is not None else None
    per_emotion: dict[str, dict[str, float]] = {}
    source: dict[str, Path] = {}
    for file in map(Path, files):
        emotion, kind = _pitt_question(file)
        if emotion in source:
            raise LabelError(
                f"{file}: a second file for {emotion} (already read {source[emotion]}); give one file per emotion"
            )
        source[emotion] = file
        per_emotion[emotion] = _read_pitt_file(file, kind, known, id_list)
    scores: dict[str, dict[str, float]] = {}
    for emotion, by_id in per_emotion.items():
        for key, score in by_id.items():
            scores.setdefault(key, {})[emotion] = score
    on_disk = _video_files(Path(videos))
    return _label_set(scores, sorted(per_emotion), protocol, lambda key: on_disk.get(key), str(videos))


def _pitt_question(file: Path) -> tuple[str, str]:
    """(emotion, "clean" | "raw") from a Pitt file name; only 0/1 questions are accepted."""
    match = _PITT_FILE.fullmatch(file.name)
    if match is None:
        raise LabelError(
            f"{file}: not a Pitt annotation file name (expected video_<Emotion>_clean.json or video_<Emotion>_raw.json)"
        )
    emotion = match["question"].lower()
    if emotion not in PITT_BINARY_QUESTIONS:
        raise LabelError(
            f"{file}: {match['question']} is not a 0/1 question; only 0/1 questions "
            f"({', '.join(sorted(PITT_BINARY_QUESTIONS))}) can be labels"
        )
    return emotion, match["kind"]


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise LabelError(f"{file}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise LabelError(f"{file}: not UTF-8 text (byte {exc.start})") from exc


def _read_pitt_file(file: Path, kind: str, known: frozenset[str] | None, id_list: Path | None) -> dict[str, float]:
    """Id → score in [0, 1] from one clean or raw file, every id and value checked."""
    try:
        data = json.loads(_read_text(file))
    except json.JSONDecodeError as exc:
        raise LabelError(f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise LabelError(f"{file}: expected a JSON object of YouTube id → answers, found a {type(data).__name__}")
    scores: dict[str, float] = {}
    for key, value in data.items():
        if not _YOUTUBE_ID.fullmatch(key):
            raise LabelError(f"{file}: id {key!r} is not a YouTube id (11 characters of A-Z a-z 0-9 _ -)")
        if known is not None and key not in known:
            raise LabelError(f"{file}: unknown id {key!r} (not in {id_list})")
        scores[key] = _clean_score(file, key, value) if kind == "clean" else _raw_score(file, key, value)
    return scores


def _is_number(value: object) -> bool:
    # JSON true/false arrive as bool, a subclass of int: not an annotator's answer
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _clean_score(file: Path, key: str, value: object) -> float:
    if not _is_number(value):
        raise LabelError(f"{file}: id {key!r}: score {value!r} is not a number")
    score = float(value)  # type: ignore[arg-type]
    if not 0.0 <= score <= 1.0:  # also false for NaN
        raise LabelError(f"{file}: id {key!r}: score {value!r} is outside [0, 1]")
    return score


def _raw_score(file: Path, key: str, value: object) -> float:
    if not isinstance(value, list) or not value:
        raise LabelError(f"{file}: id {key!r}: expected a non-empty list of 0/1 answers, found {value!r}")
    if not all(_is_number(a) and a in (0, 1) for a in value):
        raise LabelError(f"{file}: id {key!r}: answers {value!r} are not all 0 or 1")
    return sum(value) / len(value)


def _read_id_list(path: Path) -> frozenset[str]:
    """The ids of `final_video_id_list.csv`: one a line, in single quotes (quotes optional here)."""
    ids = set()
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        entry = line.strip().strip(",").strip().strip("'\"")
        if not entry:
            continue
        if not _YOUTUBE_ID.fullmatch(entry):
            raise LabelError(f"{path}: line {number}: {line.strip()!r} is not a YouTube id")
        ids.add(entry)
    return frozenset(ids)


def _video_files(folder: Path) -> dict[str, Path]:
    """File stem → path for the video files directly in `folder` (extension in any case)."""
    if not folder.is_dir():
        raise FolderNotFound(f"{folder}: no such folder of videos")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in VIDEO_EXTENSIONS or not path.is_file():
            continue
        if path.stem in found:
            log.info("several video files for %s; using %s", path.stem, found[path.stem].name)
            continue
        found[path.stem] = path
    return found


# --- a team's own CSV ---------------------------------------------------------------------------


def load_csv(path: Path, *, protocol: bool = False) -> LabelSet:
    """Labels from a CSV with the columns `path`, `emotion` and `score` (any order, other columns
    ignored), one row per (video, emotion). Relative paths are resolved against the CSV's folder;
    a video's rows are merged; emotion names are lower-cased and stripped.
    """
    path = Path(path)
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise LabelError(f"{path}: empty file, expected the header {','.join(CSV_COLUMNS)}")
    names = [h.strip() for h in header]
    absent = [c for c in CSV_COLUMNS if c not in names]
    if absent:
        raise LabelError(
            f"{path}: line 1: the header must name the columns {', '.join(CSV_COLUMNS)} (missing: {', '.join(absent)})"
        )
    at = {c: names.index(c) for c in CSV_COLUMNS}
    folder = path.parent
    scores: dict[str, dict[str, float]] = {}
    key_of: dict[str, str] = {}  # normalised path → the key as first written
    seen: dict[tuple[str, str], int] = {}  # (normalised path, emotion) → line number
    emotions: set[str] = set()
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(at.values()):
            raise LabelError(f"{path}: line {line}: expected {len(names)} columns, found {len(row)}")
        written = row[at["path"]].strip()
        if not written:
            raise LabelError(f"{path}: line {line}: empty path")
        emotion = row[at["emotion"]].strip().lower()
        if not _EMOTION.fullmatch(emotion):
            raise LabelError(
                f"{path}: line {line}: emotion {row[at['emotion']]!r} must be letters, digits, '_', '-' or spaces"
            )
        score = _csv_score(path, line, row[at["score"]])
        # the same file written two ways (./a.mp4, a.mp4) is the same video
        video = os.path.normpath(folder / Path(written).expanduser())
        if (video, emotion) in seen:
            raise LabelError(
                f"{path}: line {line}: a second {emotion} label for {written} (first on line {seen[video, emotion]})"
            )
        seen[video, emotion] = line
        key_of.setdefault(video, written)
        scores.setdefault(key_of[video], {})[emotion] = score
        emotions.add(emotion)
    if not seen:
        raise LabelError(f"{path}: no label rows after the header")
    paths = {key: Path(video) for video, key in key_of.items()}
    return _label_set(
        scores, sorted(emotions), protocol, lambda key: paths[key] if paths[key].is_file() else None, str(path)
    )


def _csv_score(path: Path, line: int, cell: str) -> float:
    try:
        score = float(cell)
    except ValueError:
        raise LabelError(f"{path}: line {line}: score {cell.strip()!r} is not a number") from None
    if not 0.0 <= score <= 1.0:  # also false for NaN
        raise LabelError(f"{path}: line {line}: score {cell.strip()!r} is outside [0, 1]")
    return score


# --- shared -------------------------------------------------------------------------------------


def _protocol(score: float) -> float | None:
    """The Pitt protocol for one score: 1.0, 0.0, or None (dropped)."""
    if score >= PROTOCOL_POSITIVE:
        return 1.0
    if score <= PROTOCOL_NEGATIVE:
        return 0.0
    return None


def _label_set(
    scores: Mapping[str, Mapping[str, float]],
    emotions: Iterable[str],
    protocol: bool,
    locate: Callable[[str], Path | None],
    where: str,
) -> LabelSet:
    """The LabelSet of key → {emotion: score}: protocol applied, then videos located on disk
    (`locate(key)` gives the path or None)."""
    emotions = tuple(sorted(emotions))
    dropped = dict.fromkeys(emotions, 0)
    videos: list[LabelledVideo] = []
    missing: list[str] = []
    for key in sorted(scores):
        kept: dict[str, float] = {}
        for emotion, score in sorted(scores[key].items()):
            value = _protocol(score) if protocol else score
            if value is None:
                dropped[emotion] += 1
            else:
                kept[emotion] = value
        if not kept:
            continue
        found = locate(key)
        if found is None:
            missing.append(key)
            log.debug("no video file for %s", key)
        else:
            videos.append(LabelledVideo(key=key, path=found, scores=kept))
    if missing:
        # expected for Pitt (many of its videos are gone from YouTube): information, not an error
        log.info("%d of %d labelled videos not found (%s); first: %s",
                 len(missing), len(missing) + len(videos), where, missing[0])
    if protocol:
        log.info("the Pitt protocol dropped %s", ", ".join(f"{n} {e}" for e, n in dropped.items()))
    return LabelSet(videos=tuple(videos), emotions=emotions, missing=tuple(missing), dropped=dropped)


__all__ = [
    "BINARY_THRESHOLD", "CSV_COLUMNS", "PITT_BINARY_QUESTIONS", "PROTOCOL_NEGATIVE", "PROTOCOL_POSITIVE",
    "LabelError", "LabelSet", "LabelledVideo", "load_csv", "load_pitt",
]
