"""Label sources: the Pitt annotation files (their published formats) and CSVs.

Every file is written in tmp_path; video files are empty (label loading only looks for them).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from emocore.errors import FolderNotFound
from emocore.labels import LabelError, LabelSet, LabelledVideo, load_csv, load_pitt

# four well-formed YouTube ids (11 characters of A-Z a-z 0-9 _ -); the first is the dataset documentation's example
ID_MP4, ID_UPPER, ID_WEBM, ID_GONE = "KONL05sae4E", "a1b2c3d4e5f", "Zz_-0123456", "noVideo0001"


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    """A folder of empty "videos" named by YouTube id: one .mp4, one .MP4 (extension case must not
    matter), one .webm; ID_GONE has only a .txt file, so its video is missing."""
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in (f"{ID_MP4}.mp4", f"{ID_UPPER}.MP4", f"{ID_WEBM}.webm", f"{ID_GONE}.txt"):
        (folder / name).write_bytes(b"")
    return folder


@pytest.fixture
def id_list(tmp_path: Path) -> Path:
    """`final_video_id_list.csv` as published: one id a line in single quotes (ID_WEBM left out)."""
    path = tmp_path / "final_video_id_list.csv"
    path.write_text("".join(f"'{i}'\n" for i in (ID_MP4, ID_UPPER, ID_GONE)))
    return path


def _pitt(tmp_path: Path, name: str, data: object) -> Path:
    """A Pitt annotation file as published: a JSON object of YouTube id → answers."""
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(LabelError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, "messages are one line"
    return message


# --- Pitt ---------------------------------------------------------------------------------------


def test_clean_file_scores_paths_and_missing(tmp_path: Path, videos: Path, caplog: pytest.LogCaptureFixture) -> None:
    funny = _pitt(tmp_path, "video_Funny_clean.json",
                  {ID_MP4: 0.4, ID_UPPER: 1.0, ID_WEBM: 0, ID_GONE: 0.8})
    caplog.set_level(logging.INFO, logger="emocore")
    labels = load_pitt([funny], videos)
    assert labels.emotions == ("funny",)
    assert len(labels) == 3
    assert [(v.key, v.path.name, v.scores) for v in labels.videos] == [
        (ID_MP4, f"{ID_MP4}.mp4", {"funny": 0.4}),
        (ID_WEBM, f"{ID_WEBM}.webm", {"funny": 0.0}),
        (ID_UPPER, f"{ID_UPPER}.MP4", {"funny": 1.0}),
    ]
    assert labels.missing == (ID_GONE,)
    assert labels.dropped == {"funny": 0}
    missing_logs = [r for r in caplog.records if "not found" in r.getMessage()]
    assert missing_logs and all(r.levelno == logging.INFO for r in missing_logs)


def test_raw_file_score_is_the_mean_of_the_answers(tmp_path: Path, videos: Path) -> None:
    exciting = _pitt(tmp_path, "video_Exciting_raw.json",
                     {ID_MP4: [1, 0, 1, 1, 0], ID_UPPER: [0, 0, 0, 0, 0], ID_WEBM: [1, 1, 0, 1]})
    labels = load_pitt([exciting], videos)
    assert labels.emotions == ("exciting",)
    assert {v.key: v.scores["exciting"] for v in labels.videos} == {ID_MP4: 0.6, ID_UPPER: 0.0, ID_WEBM: 0.75}
    assert labels.missing == ()


def test_two_emotions_are_merged_by_id(tmp_path: Path, videos: Path) -> None:
    funny = _pitt(tmp_path, "video_Funny_clean.json", {ID_MP4: 0.2, ID_UPPER: 0.8})
    exciting = _pitt(tmp_path, "video_Exciting_raw.json", {ID_MP4: [1, 1, 1, 0, 1], ID_WEBM: [0, 0, 1, 0, 0]})
    labels = load_pitt([funny, exciting], videos)
    assert labels.emotions == ("exciting", "funny")  # sorted, whatever the file order
    y, paths = labels.matrix()
    assert [p.stem for p in paths] == [ID_MP4, ID_WEBM, ID_UPPER]
    np.testing.assert_array_equal(y, [[0.8, 0.2], [0.2, np.nan], [np.nan, 0.8]])
    np.testing.assert_array_equal(labels.binary(), [[1, 0], [0, np.nan], [np.nan, 1]])
    assert labels.videos[1].scores == {"exciting": 0.2}  # no funny label: absent, not 0


def test_protocol_keeps_the_unambiguous_and_counts_the_dropped(tmp_path: Path, videos: Path) -> None:
    funny = _pitt(tmp_path, "video_Funny_clean.json",
                  {ID_MP4: 0.7, ID_UPPER: 0.4, ID_WEBM: 0.3, ID_GONE: 0.6})
    exciting = _pitt(tmp_path, "video_Exciting_raw.json",
                     {ID_MP4: [1, 0, 1, 0, 0], ID_UPPER: [1, 1, 0, 1, 0], ID_WEBM: [0, 0, 0, 0, 0]})
    labels = load_pitt([funny, exciting], videos, protocol=True)
    # ID_UPPER: funny 0.4 and exciting 0.6 both dropped, so the video is left out altogether
    assert [(v.key, v.scores) for v in labels.videos] == [
        (ID_MP4, {"funny": 1.0}),                       # exciting 0.4 dropped
        (ID_WEBM, {"exciting": 0.0, "funny": 0.0}),
    ]
    # dropped counts every labelled id, on disk or not (ID_GONE's 0.6 too)
    assert labels.dropped == {"exciting": 2, "funny": 2}
    assert labels.missing == ()  # ID_GONE lost its only label: nothing to miss
    np.testing.assert_array_equal(labels.matrix()[0], [[np.nan, 1.0], [0.0, 0.0]])


def test_protocol_missing_video_with_a_kept_label(tmp_path: Path, videos: Path) -> None:
    funny = _pitt(tmp_path, "video_Funny_clean.json", {ID_GONE: 1.0, ID_MP4: 0.0})
    labels = load_pitt([funny], videos, protocol=True)
    assert labels.missing == (ID_GONE,)
    assert [v.key for v in labels.videos] == [ID_MP4]


def test_id_list_accepts_known_ids(tmp_path: Path, videos: Path, id_list: Path) -> None:
    funny = _pitt(tmp_path, "video_Funny_clean.json", {ID_MP4: 0.4, ID_GONE: 0.2})
    labels = load_pitt([funny], videos, id_list=id_list)
    assert [v.key for v in labels.videos] == [ID_MP4] and labels.missing == (ID_GONE,)


def test_unknown_id_with_id_list(tmp_path: Path, videos: Path, id_list: Path) -> None:
    funny = _pitt(tmp_path, "video_Funny_clean.json", {ID_MP4: 0.4, ID_WEBM: 0.2})
    message = _error(load_pitt, [funny], videos, id_list=id_list)
    assert "video_Funny_clean.json" in message and "unknown id" in message and ID_WEBM in message


def test_malformed_id_list_line(tmp_path: Path, videos: Path) -> None:
    ids = tmp_path / "final_video_id_list.csv"
    ids.write_text(f"'{ID_MP4}'\n'short'\n")
    funny = _pitt(tmp_path, "video_Funny_clean.json", {ID_MP4: 0.4})
    message = _error(load_pitt, [funny], videos, id_list=ids)
    assert "final_video_id_list.csv" in message and "line 2" in message and "short" in message


@pytest.mark.parametrize("name", [
    "video_Effective_clean.json", "video_Sentiments_clean.json", "video_Topics_clean.json",
    "video_Language_raw.json", "video_QA_Action_raw.json", "video_QA_Reason_raw.json",
])
def test_only_zero_one_questions_can_be_labels(tmp_path: Path, videos: Path, name: str) -> None:
    path = _pitt(tmp_path, name, {ID_MP4: "1"})
    message = _error(load_pitt, [path], videos)
    assert name in message and "only 0/1 questions (exciting, funny)" in message


def test_file_name_must_be_a_pitt_name(tmp_path: Path, videos: Path) -> None:
    path = _pitt(tmp_path, "funny.json", {ID_MP4: 0.4})
    assert "video_<Emotion>_clean.json" in _error(load_pitt, [path], videos)


def test_clean_and_raw_for_one_emotion(tmp_path: Path, videos: Path) -> None:
    clean = _pitt(tmp_path, "video_Funny_clean.json", {ID_MP4: 0.4})
    raw = _pitt(tmp_path, "video_Funny_raw.json", {ID_MP4: [0, 1, 0, 1, 0]})
    message = _error(load_pitt, [clean, raw], videos)
    assert "video_Funny_raw.json" in message and "second file for funny" in message


@pytest.mark.parametrize("key", ["KONL05sae4", "KONL05sae4E0", "KONL05sae4!", "https://youtu"])
def test_malformed_id(tmp_path: Path, videos: Path, key: str) -> None:
    path = _pitt(tmp_path, "video_Funny_clean.json", {ID_MP4: 0.4, key: 0.2})
    message = _error(load_pitt, [path], videos)
    assert "video_Funny_clean.json" in message and repr(key) in message and "not a YouTube id" in message


def test_malformed_json_names_line_and_column(tmp_path: Path, videos: Path) -> None:
    path = tmp_path / "video_Funny_clean.json"
    path.write_text('{\n  "KONL05sae4E": 0.4,\n  "a1b2c3d4e5f": 0.2,,\n}')
    message = _error(load_pitt, [path], videos)
    assert "video_Funny_clean.json" in message and "line 3, column 22" in message


def test_json_that_is_not_an_object(tmp_path: Path, videos: Path) -> None:
    path = _pitt(tmp_path, "video_Funny_clean.json", [0.4, 0.2])
    assert "expected a JSON object" in _error(load_pitt, [path], videos)


@pytest.mark.parametrize(("value", "why"), [
    (1.2, "outside [0, 1]"), (-0.2, "outside [0, 1]"), (float("nan"), "outside [0, 1]"),
    ("0.4", "not a number"), (None, "not a number"), (True, "not a number"), ([0, 1], "not a number"),
])
def test_bad_clean_score_names_the_id(tmp_path: Path, videos: Path, value: object, why: str) -> None:
    path = _pitt(tmp_path, "video_Funny_clean.json", {ID_MP4: 0.4, ID_UPPER: value})  # json writes NaN
    message = _error(load_pitt, [path], videos)
    assert "video_Funny_clean.json" in message and ID_UPPER in message and why in message


@pytest.mark.parametrize("value", [[0, 1, 2], [0, "1", 1], [0, None], [True, False], [0, 0.5], [], 0.4, "1"])
def test_bad_raw_answers_name_the_id(tmp_path: Path, videos: Path, value: object) -> None:
    path = _pitt(tmp_path, "video_Exciting_raw.json", {ID_MP4: [0, 1], ID_WEBM: value})
    message = _error(load_pitt, [path], videos)
    assert "video_Exciting_raw.json" in message and ID_WEBM in message


def test_unreadable_label_file(tmp_path: Path, videos: Path) -> None:
    assert "cannot read" in _error(load_pitt, [tmp_path / "video_Funny_clean.json"], videos)


def test_videos_folder_must_exist(tmp_path: Path) -> None:
    funny = _pitt(tmp_path, "video_Funny_clean.json", {ID_MP4: 0.4})
    with pytest.raises(FolderNotFound):
        load_pitt([funny], tmp_path / "nowhere")


def test_no_files_is_a_bad_argument(videos: Path) -> None:
    with pytest.raises(ValueError):
        load_pitt([], videos)


# --- CSV ----------------------------------------------------------------------------------------


@pytest.fixture
def ads(tmp_path: Path) -> Path:
    """A team's folder: labels.csv will sit here beside ads/a.mp4 and ads/b.mov (empty files)."""
    (tmp_path / "ads").mkdir()
    for name in ("a.mp4", "b.mov"):
        (tmp_path / "ads" / name).write_bytes(b"")
    return tmp_path


def _csv(folder: Path, text: str) -> Path:
    path = folder / "labels.csv"
    path.write_text(text)
    return path


def test_csv_rows_are_merged_per_video(ads: Path, tmp_path: Path) -> None:
    absolute = ads / "ads" / "b.mov"
    path = _csv(ads, "score,note,emotion,path\n"             # any column order, an extra column
                     "0.8,great,Funny ,ads/a.mp4\n"
                     "0.25,,exciting,./ads/a.mp4\n"        # same video written another way
                     f"1,,funny,{absolute}\n"
                     "\n"                                   # blank lines are skipped
                     "0.5,,funny,ads/gone.mp4\n")
    labels = load_csv(path)
    assert labels.emotions == ("exciting", "funny")
    assert [(v.key, v.path, v.scores) for v in labels.videos] == [
        (str(absolute), absolute, {"funny": 1.0}),
        ("ads/a.mp4", ads / "ads" / "a.mp4", {"funny": 0.8, "exciting": 0.25}),
    ]
    assert labels.missing == ("ads/gone.mp4",)
    assert labels.dropped == {"exciting": 0, "funny": 0}


def test_csv_protocol(ads: Path) -> None:
    path = _csv(ads, "path,emotion,score\nads/a.mp4,funny,0.9\nads/a.mp4,exciting,0.5\nads/b.mov,funny,0.5\n")
    labels = load_csv(path, protocol=True)
    assert [(v.key, v.scores) for v in labels.videos] == [("ads/a.mp4", {"funny": 1.0})]
    assert labels.dropped == {"exciting": 1, "funny": 1}


def test_csv_duplicate_label_names_both_lines(ads: Path) -> None:
    path = _csv(ads, "path,emotion,score\nads/a.mp4,funny,0.9\nads/b.mov,funny,0\n./ads/a.mp4,FUNNY,0.1\n")
    message = _error(load_csv, path)
    assert "labels.csv" in message and "line 4" in message and "first on line 2" in message


@pytest.mark.parametrize(("score", "why"), [
    ("1.5", "outside [0, 1]"), ("-0.1", "outside [0, 1]"), ("nan", "outside [0, 1]"),
    ("yes", "not a number"), ("", "not a number"),
])
def test_csv_bad_score_names_the_line(ads: Path, score: str, why: str) -> None:
    path = _csv(ads, f"path,emotion,score\nads/a.mp4,funny,0.9\nads/b.mov,funny,{score}\n")
    message = _error(load_csv, path)
    assert "labels.csv: line 3" in message and why in message


@pytest.mark.parametrize("emotion", ["", "  ", "fünny", "funny!"])
def test_csv_bad_emotion_name(ads: Path, emotion: str) -> None:
    path = _csv(ads, f"path,emotion,score\nads/a.mp4,{emotion},0.9\n")
    assert "labels.csv: line 2" in _error(load_csv, path)


def test_csv_header_must_name_the_columns(ads: Path) -> None:
    message = _error(load_csv, _csv(ads, "file,emotion,score\nads/a.mp4,funny,1\n"))
    assert "line 1" in message and "missing: path" in message
    assert "expected the header" in _error(load_csv, _csv(ads, ""))
    assert "no label rows" in _error(load_csv, _csv(ads, "path,emotion,score\n"))


def test_csv_short_row_and_empty_path(ads: Path) -> None:
    assert "line 2: expected 3 columns" in _error(load_csv, _csv(ads, "path,emotion,score\nads/a.mp4,funny\n"))
    assert "line 2: empty path" in _error(load_csv, _csv(ads, "path,emotion,score\n ,funny,1\n"))


def test_label_set_helpers_on_a_hand_made_set() -> None:
    labels = LabelSet(
        videos=(LabelledVideo("x", Path("x.mp4"), {"funny": 0.5}), LabelledVideo("y", Path("y.mp4"), {"sad": 0.2})),
        emotions=("funny", "sad"), missing=(), dropped={"funny": 0, "sad": 0},
    )
    np.testing.assert_array_equal(labels.binary(), [[1, np.nan], [np.nan, 0]])  # 0.5 is positive
    np.testing.assert_array_equal(labels.binary(0.1), [[1, np.nan], [np.nan, 1]])
    assert labels.matrix()[0].shape == (2, 2) and len(labels) == 2
    assert LabelSet((), ("funny",), (), {}).matrix()[0].shape == (0, 1)
    with pytest.raises(ValueError):
        labels.binary(0.0)
    assert math.isnan(labels.matrix()[0][0, 1])
