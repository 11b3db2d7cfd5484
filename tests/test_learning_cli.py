"""`train`, `evaluate` and `index --model trained:` end to end, on a small labelled set in the Pitt
file format built from real clips (the test writes the annotation files itself)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from typer.testing import CliRunner

from cli import app
from emocore.devtools import media
from emocore.store import Store
from emocore.training import load_checkpoint, predict_videos

runner = CliRunner()
IDS = ["KONL05sae4E", "aB3dE6gH9jK", "Zz9_-Yy8Xx7", "Qw1Er2Ty3Ui", "Mn4Bv5Cx6Zl", "Pp0Oo9Ii8Uu", "Ll7Kk6Jj5Hh",
       "Gg4Ff3Dd2Ss"]


@pytest.fixture(scope="module")
def pitt(tmp_path_factory: pytest.TempPathFactory, megamind: Path, carphone: Path, bunny: Path) -> Path:
    """Eight videos named by YouTube id (three real demo clips, five synthetic colour clips) and the
    published annotation files for funny (clean: means of 5 answers) and exciting (raw: the answers)."""
    root = tmp_path_factory.mktemp("pitt")
    videos = root / "videos"
    videos.mkdir()
    for vid, clip in zip(IDS, (megamind, carphone, bunny)):
        shutil.copy(clip, videos / f"{vid}{clip.suffix}")
    colours = [((220, 40, 40), (200, 60, 30)), ((30, 40, 220), (40, 60, 200))] * 3
    for vid, pair in zip(IDS[3:], colours):
        media.color_cut_clip(videos / f"{vid}.mp4", seconds=2.0, cut_at=1.0, colors=pair, size=(160, 120))
    funny = {vid: s for vid, s in zip(IDS, (0.8, 0.2, 1.0, 0.8, 0.2, 1.0, 0.0, 0.6))}
    exciting = {vid: a for vid, a in zip(IDS, ([1, 1, 1, 0, 1], [0, 0, 1, 0, 0], [1, 1, 1, 1, 0], [0, 0, 0, 0, 0],
                                                 [1, 1, 1, 1, 1], [0, 1, 0, 0, 0], [1, 1, 0, 1, 1], [0, 0, 0, 1, 0]))}
    funny["NotOnDisk01"] = 0.4  # labelled, video missing: reported and skipped
    (root / "video_Funny_clean.json").write_text(json.dumps(funny))
    (root / "video_Exciting_raw.json").write_text(json.dumps(exciting))
    (root / "final_video_id_list.csv").write_text("".join(f"'{v}'\n" for v in [*IDS, "NotOnDisk01"]))
    return root


def _label_args(root: Path) -> list[str]:
    return ["--pitt", str(root / "video_Funny_clean.json"), "--pitt", str(root / "video_Exciting_raw.json"),
            "--videos", str(root / "videos")]


@pytest.fixture(scope="module")
def trained(pitt: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A model trained by the CLI on the fixture (random resnet18 features: no hub here)."""
    work = tmp_path_factory.mktemp("work")
    model = work / "model.pt"
    done = runner.invoke(app, ["train", *_label_args(pitt), "--weights", "random", "--epochs", "8",
                               "--val-fraction", "0.25", "--out", str(model), "--cache", str(work / "cache")])
    assert done.exit_code == 0, done.output
    assert "8 labelled videos (exciting, funny); 1 labelled but not found, skipped" in done.stdout
    assert "validation (2 videos held out)" in done.stdout
    return model, work / "cache"


def test_the_checkpoint_reloads_safely_and_predicts_the_same(trained: tuple[Path, Path], pitt: Path) -> None:
    model, cache = trained
    raw = torch.load(model, weights_only=True)  # plain tensors and containers only
    assert raw["labels"] == ["exciting", "funny"] and raw["format"] == "emocore-trained"
    assert raw["sampling"]["sample_rate"] == 1.0 and "validation" in raw["metrics"]
    paths = sorted((pitt / "videos").iterdir())
    first = predict_videos(load_checkpoint(model), paths, cache_dir=cache)
    again = predict_videos(load_checkpoint(model), paths, cache_dir=cache)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (8, 2) and ((first >= 0) & (first <= 1)).all()


def test_evaluate_matches_scikit_learn(trained: tuple[Path, Path], pitt: Path, tmp_path: Path) -> None:
    model, cache = trained
    out = tmp_path / "eval"
    done = runner.invoke(app, ["evaluate", "--model", str(model), *_label_args(pitt), "--cache", str(cache),
                               "--out", str(out)])
    assert done.exit_code == 0, done.output
    saved = json.loads((out / "metrics.json").read_text())
    assert {p.name for p in out.iterdir()} >= {"metrics.json", "metrics.csv", "calibration.html",
                                               "confusion_funny.html", "confusion_exciting.html"}
    # the same predictions, scored independently by scikit-learn
    funny = json.loads((pitt / "video_Funny_clean.json").read_text())
    exciting = json.loads((pitt / "video_Exciting_raw.json").read_text())
    paths = {p.stem: p for p in (pitt / "videos").iterdir()}
    ids = [v for v in IDS if v in paths]
    scores = predict_videos(load_checkpoint(model), [paths[v] for v in ids], cache_dir=cache)
    truth = {"exciting": [float(np.mean(exciting[v]) >= 0.5) for v in ids],
             "funny": [float(funny[v] >= 0.5) for v in ids]}
    for j, emotion in enumerate(["exciting", "funny"]):
        y, p = np.array(truth[emotion]), scores[:, j]
        got = saved["metrics"][emotion]
        assert got["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
        assert got["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5), abs=1e-9)
        assert got["f1"] == pytest.approx(f1_score(y, p >= 0.5, zero_division=0.0), abs=1e-9)
        assert got["precision"] == pytest.approx(precision_score(y, p >= 0.5, zero_division=0.0), abs=1e-9)
        assert got["recall"] == pytest.approx(recall_score(y, p >= 0.5, zero_division=0.0), abs=1e-9)
        assert got["majority_accuracy"] == pytest.approx(max(y.mean(), 1 - y.mean()))
    assert "maj. acc." in done.stdout and "exciting" in done.stdout


def test_kfold_reports_mean_and_std(trained: tuple[Path, Path], pitt: Path, tmp_path: Path) -> None:
    _, cache = trained
    done = runner.invoke(app, ["evaluate", "--kfold", "2", "--weights", "random", *_label_args(pitt),
                               "--cache", str(cache), "--out", str(tmp_path / "cv")])
    assert done.exit_code == 0, done.output
    assert "mean ± std over 2 folds" in done.stdout
    folds = json.loads((tmp_path / "cv" / "metrics.json").read_text())["folds"]
    assert set(folds) == {"exciting", "funny"}
    for emotion in folds:
        mean, std = folds[emotion]["accuracy"]
        assert 0.0 <= mean <= 1.0 and 0.0 <= std <= 0.5
    pooled = json.loads((tmp_path / "cv" / "metrics.json").read_text())["metrics"]
    assert pooled["funny"]["n"] == 8  # every labelled video is scored once, in its held-out fold


def test_index_scores_ads_with_the_trained_model(trained: tuple[Path, Path], carphone: Path, tmp_path: Path) -> None:
    model, _ = trained
    ads = tmp_path / "ads"
    ads.mkdir()
    shutil.copy(carphone, ads / "talk.mp4")
    done = runner.invoke(app, ["index", str(ads), "--model", f"trained:{model}", "--cache", str(tmp_path / "c"),
                               "--no-explain"])
    assert done.exit_code == 0, done.output
    with Store(tmp_path / "c", readonly=True) as store:
        ad = store.ad("talk.mp4")
        timeline = store.timeline(ad.key)
    assert ad.labels == ("exciting", "funny") and ad.model == f"trained:{model.resolve()}"
    assert timeline.raw.shape == (8, 2) and np.isfinite(timeline.raw).all()
    assert (timeline.faces == -1).all() and ad.face_coverage is None  # a whole-frame model finds no faces


@pytest.mark.parametrize(("name", "content", "message"), [
    ("video_Funny_clean.json", '{"KONL05sae4E": 0.5,', "video_Funny_clean.json"),
    ("video_Funny_clean.json", '{"KONL05sae4E": 1.7}', "outside [0, 1]"),
    ("video_Funny_clean.json", '{"not an id!": 0.5}', "not an id!"),
    ("video_Effective_clean.json", '{"KONL05sae4E": "3"}', "only 0/1 questions (exciting, funny)"),
])
def test_bad_label_files_give_clear_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / "videos").mkdir()
    (tmp_path / name).write_text(content)
    done = runner.invoke(app, ["train", "--pitt", str(tmp_path / name), "--videos", str(tmp_path / "videos"),
                               "--weights", "random"])
    assert done.exit_code == 1
    assert message in done.stderr and done.stderr.count("\n") == 1


def test_unknown_ids_are_errors_with_the_id_list(pitt: Path, tmp_path: Path) -> None:
    (tmp_path / "video_Funny_clean.json").write_text('{"XXXXXXXXXXX": 0.5}')
    done = runner.invoke(app, ["train", "--pitt", str(tmp_path / "video_Funny_clean.json"), "--videos",
                               str(pitt / "videos"), "--id-list", str(pitt / "final_video_id_list.csv")])
    assert done.exit_code == 1 and "unknown id" in done.stderr and "XXXXXXXXXXX" in done.stderr


def test_label_sources_are_exclusive(tmp_path: Path) -> None:
    done = runner.invoke(app, ["train", "--csv", str(tmp_path / "a.csv"), "--pitt", str(tmp_path / "b.json")])
    assert done.exit_code == 2 and "either" in done.stderr
    done = runner.invoke(app, ["evaluate", "--csv", str(tmp_path / "a.csv")])
    assert done.exit_code == 2 and "--model PATH" in done.stderr


def test_explain_a_moment_of_an_ad_scored_by_the_trained_model(trained: tuple[Path, Path], carphone: Path,
                                                              tmp_path: Path) -> None:
    model, _ = trained
    video = tmp_path / "talk.mp4"
    shutil.copy(carphone, video)
    cache = str(tmp_path / "c")
    done = runner.invoke(app, ["index", str(video), "--model", f"trained:{model}", "--cache", cache, "--no-explain"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(app, ["explain", "talk.mp4", "--at", "2", "--emotion", "funny", "--cache", cache,
                               "--samples", "100", "--method", "lime", "--out", str(tmp_path / "o.png")])
    assert done.exit_code == 0, done.output
    assert "lime: score" in done.stdout and (tmp_path / "o.png").is_file()
