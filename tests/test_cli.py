"""The command line: exit codes, messages, JSON listing, help text, and the README kept true."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli import app
from emocore.devtools import media

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
runner = CliRunner()


def _commands() -> dict:
    return dict(typer.main.get_command(app).commands)


def test_index_then_ls_json(tmp_path: Path, carphone: Path, weights_ready: None) -> None:
    ads, cache = tmp_path / "ads", tmp_path / "cache"
    ads.mkdir()
    shutil.copy(carphone, ads / "talking head.mp4")
    done = runner.invoke(app, ["index", str(ads), "--cache", str(cache)])
    assert done.exit_code == 0, done.output
    assert "indexed 1, skipped 0 unchanged, failed 0" in done.output
    listed = runner.invoke(app, ["ls", "--cache", str(cache), "--json"])
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["status"], r["frames"]) for r in rows] == [("talking head.mp4", "ok", 8)]
    assert rows[0]["dominant"] in {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert 0 < rows[0]["dominant_mean"] <= 1 and rows[0]["duration_s"] == pytest.approx(4.0, abs=0.05)
    again = runner.invoke(app, ["index", str(ads), "--cache", str(cache)])
    assert again.exit_code == 0 and "indexed 0, skipped 1 unchanged" in again.output


def test_failures_exit_3_and_are_listed(tmp_path: Path, weights_ready: None) -> None:
    ads, cache = tmp_path / "ads", tmp_path / "cache"
    media.text_as_video(ads / "not a video.mp4")
    media.color_cut_clip(ads / "fine.mp4")
    done = runner.invoke(app, ["index", str(ads), "--cache", str(cache)])
    assert done.exit_code == 3, done.output
    assert "failed 1" in done.output
    rows = json.loads(runner.invoke(app, ["ls", "--cache", str(cache), "--json", "--failed"]).stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("not a video.mp4", "failed")]
    assert rows[0]["error"].startswith("not a readable video")


def test_missing_folder_exits_1_with_one_line(tmp_path: Path) -> None:
    done = runner.invoke(app, ["index", str(tmp_path / "nowhere"), "--cache", str(tmp_path / "c")])
    assert done.exit_code == 1
    assert done.stderr.strip() == f"error: {tmp_path / 'nowhere'} does not exist"


def test_empty_folder_says_so(tmp_path: Path, weights_ready: None) -> None:
    done = runner.invoke(app, ["index", str(tmp_path), "--cache", str(tmp_path / "c")])
    assert done.exit_code == 0 and "no videos found" in done.output


def test_ls_without_a_cache_says_what_to_run(tmp_path: Path) -> None:
    done = runner.invoke(app, ["ls", "--cache", str(tmp_path / "none")])
    assert done.exit_code == 1 and "cli.py index" in done.stderr


def test_a_wrong_flag_names_the_right_one(tmp_path: Path) -> None:
    done = runner.invoke(app, ["index", str(tmp_path), "--rat", "2"])
    assert done.exit_code == 2
    assert "--rate" in done.output


def test_bad_values_are_usage_errors(tmp_path: Path) -> None:
    done = runner.invoke(app, ["index", str(tmp_path), "--rate", "0"])
    assert done.exit_code == 2 and "sample rate" in done.stderr


def test_unknown_model_is_named(tmp_path: Path) -> None:
    media.color_cut_clip(tmp_path / "a.mp4")
    done = runner.invoke(app, ["index", str(tmp_path), "--cache", str(tmp_path / "c"), "--model", "nope"])
    assert done.exit_code == 1 and "unknown model 'nope'; known models:" in done.stderr
    assert all(name in done.stderr for name in ("fer", "clip", "trained:PATH"))


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_command_has_help_and_is_in_the_readme(name: str) -> None:
    command = _commands()[name]
    assert (command.help or "").strip(), f"{name} has no help text"
    assert f"python cli.py {name}" in README, f"README does not mention `python cli.py {name}`"
    assert runner.invoke(app, [name, "--help"]).exit_code == 0


def test_cli_help_in_a_real_subprocess() -> None:
    done = subprocess.run([sys.executable, "cli.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for name in _commands():
        assert name in done.stdout


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    commands = [line for line in blocks[0].splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2, "the README's first screen gives exactly two commands"
    assert commands[0].endswith("streamlit run dashboard/main.py")
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_explain_a_moment_on_demand(tmp_path: Path, carphone: Path, weights_ready: None) -> None:
    import cv2

    video = tmp_path / "talk.mp4"
    shutil.copy(carphone, video)
    out = tmp_path / "overlay.png"
    done = runner.invoke(app, ["explain", str(video), "--at", "1.2", "--emotion", "sad", "--cache",
                               str(tmp_path / "cache"), "--samples", "100", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "talk.mp4 at 1.00 s, sad" in done.stdout
    assert "lime: score" in done.stdout and "shap: score" in done.stdout and "hiding the top 10%" in done.stdout
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 200
    # the same moment again, by ad name, is read back from the cache
    again = runner.invoke(app, ["explain", "talk.mp4", "--at", "1.0", "--emotion", "sad", "--cache",
                                str(tmp_path / "cache"), "--samples", "100", "--method", "lime"])
    assert again.exit_code == 0, again.output
    assert "lime: score" in again.stdout and "shap: score" not in again.stdout


def test_explain_says_why_it_cannot(tmp_path: Path, bunny: Path, weights_ready: None) -> None:
    cache = str(tmp_path / "cache")
    no_face = runner.invoke(app, ["explain", str(bunny), "--at", "0", "--emotion", "happy", "--cache", cache])
    assert no_face.exit_code == 1
    assert "no face at 0.0 s in bigbuckbunny.mp4" in no_face.stderr and "nearest moments with a face" in no_face.stderr
    unknown = runner.invoke(app, ["explain", str(bunny), "--at", "1", "--emotion", "joy", "--cache", cache])
    assert unknown.exit_code == 1 and "unknown emotion 'joy'" in unknown.stderr
    bad = runner.invoke(app, ["explain", str(bunny), "--at", "1", "--emotion", "happy", "--method", "gradcam"])
    assert bad.exit_code == 2 and "use lime, shap or both" in bad.stderr
    missing = runner.invoke(app, ["explain", "nothing-like-it", "--at", "1", "--emotion", "happy", "--cache", cache])
    assert missing.exit_code == 1 and "no ad" in missing.stderr
