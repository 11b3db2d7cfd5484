"""`train`, `evaluate` and `index --model trained:` end to end, on a small labelled set in the Pitt
file format built from real clips (the test writes the annotation files itself)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from typer.testing import CliRunner

from cli import app
from emocore.files import content_hash
from emocore.devtools import media
from emocore.store import Store
from emocore.training import load_checkpoint, predict_videos, save_checkpoint

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
    for i, (vid, pair) in enumerate(zip(IDS[3:], colours)):  # distinct textures: five distinct contents
        media.color_cut_clip(videos / f"{vid}.mp4", seconds=2.0, cut_at=1.0, colors=pair, size=(160, 120), seed=i)
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
                               "--val-fraction", "0.25", "--test-fraction", "0.25", "--out", str(model),
                               "--cache", str(work / "cache")], env={"COLUMNS": "60"})
    assert done.exit_code == 0, done.output
    assert "8 labelled videos (exciting, funny); 1 labelled but not found, skipped" in done.stdout
    text = " ".join(done.stdout.split())
    assert "trained on 4 videos" in text
    assert "model-selection scores on the validation split (2 videos): they chose the epoch, so they are optimistic" \
        in text
    assert "test scores (2 videos never seen in training or epoch selection)" in text
    # a 60-column console: every figure is printed whole, none cut to "1.0…"
    metrics = torch.load(model, weights_only=True)["metrics"]
    for split in ("validation", "test"):
        for figures in metrics[split].values():
            for name in ("roc_auc", "f1", "precision", "recall", "accuracy", "majority_accuracy", "majority_f1",
                         "random_accuracy"):
                assert figures[name] is None or f"{figures[name]:.3f}" in done.stdout, (split, name)
    assert "…" not in done.stdout
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


def test_evaluate_leaves_out_what_the_model_has_seen(trained: tuple[Path, Path], pitt: Path, tmp_path: Path) -> None:
    model, cache = trained
    out = tmp_path / "eval"
    done = runner.invoke(app, ["evaluate", "--model", str(model), *_label_args(pitt), "--cache", str(cache),
                               "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "left out 6 labelled videos the model was trained or validated on" in " ".join(done.stdout.split())
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["videos"] == 2 and len(saved["left_out"]) == 6
    # the two scored are the checkpoint's test split
    recorded = torch.load(model, weights_only=True)["videos"]
    scored = {content_hash(p) for p in (pitt / "videos").iterdir() if p.stem not in saved["left_out"]}
    assert scored == set(recorded["test"]) and len(recorded["train"]) == 4 and len(recorded["validation"]) == 2
    assert {p.name for p in out.iterdir()} >= {"metrics.json", "metrics.csv", "calibration.html",
                                               "confusion_funny.html", "confusion_exciting.html"}


@pytest.fixture(scope="module")
def csv_model(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A model trained by the CLI on a CSV of four colour clips (two reddish funny=1, two bluish funny=0;
    no validation split), and four new clips it has never seen: (its CSV, the model, the new clips' folder)."""
    _, cache = trained
    root = tmp_path_factory.mktemp("csv")
    (root / "seen").mkdir()
    (root / "new").mkdir()
    rows = ["path,emotion,score"]
    for i, colour in enumerate([(220, 40, 40), (210, 60, 50), (30, 40, 220), (50, 60, 210)]):
        media.color_cut_clip(root / "seen" / f"s{i}.mp4", seconds=2.0, cut_at=1.0, colors=(colour, colour),
                             size=(96, 64), seed=i)
        rows.append(f"seen/s{i}.mp4,funny,{1.0 if i < 2 else 0.0}")
    for i, colour in enumerate([(230, 50, 30), (200, 30, 60), (40, 30, 230), (60, 50, 200)]):
        media.color_cut_clip(root / "new" / f"n{i}.mp4", seconds=2.0, cut_at=1.0, colors=(colour, colour),
                             size=(96, 64), seed=10 + i)
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    model = root / "model.pt"
    done = runner.invoke(app, ["train", "--csv", str(root / "train.csv"), "--weights", "random", "--epochs", "30",
                               "--val-fraction", "0", "--out", str(model), "--cache", str(cache)])
    assert done.exit_code == 0, done.output
    assert "no test split" in done.stdout and "model-selection" not in done.stdout
    return root / "train.csv", model, root


def test_evaluate_on_the_training_csv_refuses(csv_model: tuple[Path, Path, Path], trained: tuple[Path, Path]) -> None:
    labels, model, _ = csv_model
    done = runner.invoke(app, ["evaluate", "--model", str(model), "--csv", str(labels), "--cache", str(trained[1])])
    assert done.exit_code == 1
    assert done.stderr.count("\n") == 1 and "all 4 readable labelled videos were used to train model.pt" in done.stderr
    assert "nothing held out" in done.stderr


def test_evaluate_scores_only_the_new_videos_and_matches_scikit_learn(
    csv_model: tuple[Path, Path, Path], trained: tuple[Path, Path], tmp_path: Path
) -> None:
    _, model, root = csv_model
    # two training videos (one under another name: same content) and four new ones
    shutil.copy(root / "seen" / "s2.mp4", tmp_path / "renamed.mp4")
    new = [root / "new" / f"n{i}.mp4" for i in range(4)]
    rows = [f"{root / 'seen' / 's0.mp4'},funny,1", f"{tmp_path / 'renamed.mp4'},funny,0"]
    rows += [f"{path},funny,{1 if i < 2 else 0}" for i, path in enumerate(new)]
    (tmp_path / "mixed.csv").write_text("path,emotion,score\n" + "\n".join(rows) + "\n")
    out = tmp_path / "eval"
    done = runner.invoke(app, ["evaluate", "--model", str(model), "--csv", str(tmp_path / "mixed.csv"),
                               "--cache", str(trained[1]), "--out", str(out)], env={"COLUMNS": "60"})
    assert done.exit_code == 0, done.output
    text = " ".join(done.stdout.split())
    assert "left out 2 labelled videos the model was trained or validated on" in text and "scored 4" in text
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["videos"] == 4 and saved["metrics"]["funny"]["n"] == 4
    assert sorted(saved["left_out"]) == sorted([str(root / "seen" / "s0.mp4"), str(tmp_path / "renamed.mp4")])
    # the same predictions, scored independently by scikit-learn
    y = np.array([1, 1, 0, 0])
    p = predict_videos(load_checkpoint(model), new, cache_dir=trained[1])[:, 0]
    got = saved["metrics"]["funny"]
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, p >= 0.5), abs=1e-9)
    assert got["f1"] == pytest.approx(f1_score(y, p >= 0.5, zero_division=0.0), abs=1e-9)
    assert got["precision"] == pytest.approx(precision_score(y, p >= 0.5, zero_division=0.0), abs=1e-9)
    assert got["recall"] == pytest.approx(recall_score(y, p >= 0.5, zero_division=0.0), abs=1e-9)
    assert got["majority_accuracy"] == pytest.approx(0.5)
    for name in ("roc_auc", "f1", "precision", "recall", "accuracy", "majority_accuracy"):
        assert f"{got[name]:.3f}" in done.stdout  # whole, in a 60-column console
    assert "…" not in done.stdout


def test_a_checkpoint_without_its_videos_is_refused_by_evaluate(csv_model: tuple[Path, Path, Path],
                                                               trained: tuple[Path, Path], tmp_path: Path) -> None:
    """Format 1 did not record its training videos: it still scores ads, but evaluate refuses it."""
    labels, model, _ = csv_model
    old = dataclasses.replace(load_checkpoint(model), version=1, videos=None)
    save_checkpoint(tmp_path / "old.pt", old)
    assert load_checkpoint(tmp_path / "old.pt").labels == ("funny",)
    assert "videos" not in torch.load(tmp_path / "old.pt", weights_only=True)  # written as format 1 was
    done = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "old.pt"), "--csv", str(labels),
                               "--cache", str(trained[1])])
    assert done.exit_code == 1 and done.stderr.count("\n") == 1
    assert "did not record its training videos" in done.stderr and "retrain" in done.stderr


def test_kfold_reports_mean_std_and_the_folds_skipped(trained: tuple[Path, Path], pitt: Path, tmp_path: Path) -> None:
    _, cache = trained
    # funny has 3 negatives among 8 videos: in 4 folds of 2, at least one test part is all positive
    done = runner.invoke(app, ["evaluate", "--kfold", "4", "--weights", "random", *_label_args(pitt),
                               "--cache", str(cache), "--out", str(tmp_path / "cv")], env={"COLUMNS": "60"})
    assert done.exit_code == 0, done.output
    assert "mean ± std over 4 folds" in done.stdout
    saved = json.loads((tmp_path / "cv" / "metrics.json").read_text())
    folds = saved["folds"]
    assert set(folds) == {"exciting", "funny"}
    for emotion in folds:
        mean, std = folds[emotion]["accuracy"]
        assert 0.0 <= mean <= 1.0 and 0.0 <= std <= 0.5
        for name in ("roc_auc", "f1", "accuracy", "majority_accuracy"):
            if name in folds[emotion]:
                assert "{:.3f} ± {:.3f}".format(*folds[emotion][name]) in done.stdout, (emotion, name)
    assert saved["metrics"]["funny"]["n"] == 8  # every labelled video is scored once, in its held-out fold
    skipped = saved["skipped_folds"]
    # exciting (4 of each) is in every fold; funny's 3 negatives fill 3 of the 4 test parts at best
    assert len(skipped) == 1 and skipped[0]["emotion"] == "funny"
    for gap in skipped:
        assert gap["positives"] == gap["videos"] == 2 and "only positives" in gap["reason"]
        assert f"fold {gap['fold']} skipped for funny: only positives in the test part (2 videos): ROC-AUC " \
               "undefined" in " ".join(done.stdout.split())
    assert "…" not in done.stdout


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
                               "--samples", "192", "--method", "lime", "--out", str(tmp_path / "o.png")])
    assert done.exit_code == 0, done.output
    assert "lime: score" in done.stdout and (tmp_path / "o.png").is_file()


@pytest.mark.parametrize("width", [200, 80, 60, 30])
def test_metric_tables_never_cut_a_figure(width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawn as a table where it fits, as one block per emotion where it does not: every figure whole."""
    import io

    from rich.console import Console

    import cli
    from emocore.evaluation import evaluate

    metrics = evaluate(np.array([[1, 0], [0, 1], [1, 1], [0, 0]], float),
                       np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.6], [0.3, 0.1]]), ["funny", "heartwarming"])
    console = Console(file=io.StringIO(), width=width)
    monkeypatch.setattr(cli, "out", console)
    cli._metrics_table(metrics, "test scores (4 videos never seen in training or epoch selection)")
    text = console.file.getvalue()
    assert "…" not in text and "heartwarming" in text
    for m in metrics:
        for value in (m.roc_auc, m.f1, m.precision, m.recall, m.accuracy, m.majority_accuracy, m.majority_f1,
                      m.random_accuracy):
            assert f"{value:.3f}" in text
    assert ("┃" in text) == (width >= 120)  # the full table needs about 100 columns
