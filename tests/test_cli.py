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
    emotions = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}
    assert rows[0]["dominant"] in emotions and rows[0]["dominant_raw"] in emotions
    assert rows[0]["face_frames"] == 8 and rows[0]["face_seconds"] == pytest.approx(4.0)
    assert rows[0]["dominant_lift"] == pytest.approx(1.0) and rows[0]["duration_s"] == pytest.approx(4.0, abs=0.05)
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
                               str(tmp_path / "cache"), "--samples", "200", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "talk.mp4 at 1.00 s, sad" in done.stdout
    assert "lime: score" in done.stdout and "shap: score" in done.stdout and "hiding the top 10%" in done.stdout
    # every figure beside its yardstick, in the formatter's words; the shared agreement line once
    assert "random regions:" in done.stdout and "percentile" in done.stdout
    assert "(pure noise:" in done.stdout and done.stdout.count("LIME–SHAP agreement") == 1
    assert "seed-to-seed stability LIME" in done.stdout
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 200
    # the same moment again, by ad name, is read back from the cache
    again = runner.invoke(app, ["explain", "talk.mp4", "--at", "1.0", "--emotion", "sad", "--cache",
                                str(tmp_path / "cache"), "--samples", "200", "--method", "lime"])
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
    few = runner.invoke(app, ["explain", str(bunny), "--at", "1", "--emotion", "happy", "--samples", "100"])
    assert few.exit_code == 2 and "--samples 100 is too few: LIME over 48 segments needs at least 192" in few.stderr
    missing = runner.invoke(app, ["explain", "nothing-like-it", "--at", "1", "--emotion", "happy", "--cache", cache])
    assert missing.exit_code == 1 and "no ad" in missing.stderr


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+\.\d+", text)


def test_ls_rank_is_the_dashboards_order(demo_cache: Path) -> None:
    """`ls --rank` on a real indexed cache lists exactly queries.rank's order, with the figures."""
    from emocore import queries
    from emocore.store import Store

    with Store(demo_cache, readonly=True) as store:
        table = queries.library(store)
    for emotion, minimum in (("happy", None), ("sad", None), ("fear", 1)):
        args = ["ls", "--cache", str(demo_cache), "--rank", emotion, "--json"]
        done = runner.invoke(app, args + (["--min-evidence", str(minimum)] if minimum else []))
        assert done.exit_code == 0, done.output
        rows = json.loads(done.stdout)
        expected = queries.rank(table, emotion, **({"min_face_frames": minimum} if minimum else {}))
        assert [r["key"] for r in rows if r["key"]] == list(expected["key"])
        first = rows[0]
        assert (first["emotion"], first["rank"], first["standing"]) == (emotion, 1, "ranked")
        assert first["score"] == pytest.approx(expected.iloc[0][f"score_{emotion}"])
        assert first["mean"] == pytest.approx(expected.iloc[0][f"mean_{emotion}"])
        assert 0 <= first["percentile"] <= 100 and first["lift"] > 0 and first["face_frames"] >= 6
        assert rows[-1]["status"] == "failed" and rows[-1]["standing"] == "failed"
    bad = runner.invoke(app, ["ls", "--cache", str(demo_cache), "--rank", "joy"])
    assert bad.exit_code == 2 and "unknown emotion 'joy'" in bad.stderr
    assert runner.invoke(app, ["ls", "--cache", str(demo_cache), "--min-evidence", "0"]).exit_code == 2


def test_ls_min_evidence_moves_thin_ads_after_the_ranked_ones(demo_cache: Path) -> None:
    everything = json.loads(runner.invoke(app, ["ls", "--cache", str(demo_cache), "--rank", "happy", "--json",
                                                "--min-evidence", "1"]).stdout)
    strict = json.loads(runner.invoke(app, ["ls", "--cache", str(demo_cache), "--rank", "happy", "--json",
                                            "--min-evidence", "20"]).stdout)
    standings = [r["standing"] for r in strict]
    assert standings == sorted(standings, key=["ranked", "too little evidence", "failed"].index)
    assert all(r["face_frames"] >= 20 for r in strict if r["standing"] == "ranked")
    assert sum(r["standing"] == "ranked" for r in everything) > sum(r["standing"] == "ranked" for r in strict)


def test_tables_never_cut_a_number_short_in_a_narrow_terminal(demo_cache: Path) -> None:
    wide = json.loads(runner.invoke(app, ["ls", "--cache", str(demo_cache), "--rank", "happy", "--json"]).stdout)
    done = runner.invoke(app, ["ls", "--cache", str(demo_cache), "--rank", "happy"], env={"COLUMNS": "60"})
    assert done.exit_code == 0, done.output
    assert max(len(line) for line in done.stdout.splitlines()) <= 60
    assert "…" not in done.stdout
    for r in wide:
        if r["score"] is not None:
            assert f"{r['score']:.3f}" in done.stdout
        if r["percentile"] is not None:
            assert f"{r['percentile']:.1f}" in done.stdout
    shown = runner.invoke(app, ["show", "carphone.mp4", "--cache", str(demo_cache)], env={"COLUMNS": "60"})
    assert shown.exit_code == 0, shown.output
    assert "…" not in shown.stdout
    full = json.loads(runner.invoke(app, ["show", "carphone.mp4", "--cache", str(demo_cache), "--json"]).stdout)
    for e in full["emotions"]:
        assert f"{e['score']:.3f}" in shown.stdout and f"{e['mean']:.3f}" in shown.stdout


def test_show_prints_one_ad_in_full(demo_cache: Path, carphone: Path) -> None:
    from emocore.store import Store

    with Store(demo_cache, readonly=True) as store:
        ad = store.ad("carphone.mp4")
        timeline = store.timeline(ad.key)
        explained = store.explained_frames(ad.key)
    for ref in (ad.key, ad.key[:8], "carphone.mp4", ad.path, str(carphone)):
        done = runner.invoke(app, ["show", ref, "--cache", str(demo_cache), "--json"])
        assert done.exit_code == 0, (ref, done.output)
        assert json.loads(done.stdout)["ad"]["key"] == ad.key
    data = json.loads(done.stdout)
    assert data["evidence"]["face_frames"] == ad.face_frames == 8
    assert data["signals"]["time_s"] == pytest.approx(timeline.times.tolist())
    assert data["signals"]["raw"]["sad"] == pytest.approx(timeline.raw[:, ad.labels.index("sad")].tolist(), abs=1e-6)
    assert set(data["signals"]["smoothed"]) == set(ad.labels) and data["shots"] == list(timeline.shots)
    assert data["dominant_raw"] == ad.dominant_raw and data["dominant"] in ad.labels
    assert {e["emotion"] for e in data["emotions"]} == set(ad.labels)
    assert all(0 <= e["percentile"] <= 100 for e in data["emotions"])
    assert any(data["peaks"].values()) and data["key_frames"]
    assert {x["frame_idx"] for x in data["explanations"]} == {i for i, _, _ in explained}
    assert all("score" in x["figures"] for x in data["explanations"])
    table = runner.invoke(app, ["show", "carphone.mp4", "--cache", str(demo_cache)])
    assert table.exit_code == 0
    for words in ("evidence: a face in 8 of 8 frames", "dominant (highest lift", "Peaks", "Key frames",
                  "Shot boundaries", "Explanations (", "Signals per sampled frame"):
        assert words in table.stdout
    missing = runner.invoke(app, ["show", "nothing-like-it", "--cache", str(demo_cache)])
    assert missing.exit_code == 1 and "no ad" in missing.stderr


def test_norms_from_another_cache(tmp_path: Path, demo_cache: Path) -> None:
    """`--norms DIR` reads the ads against another library: here an archive where every ad is happier."""
    from emocore.scoring import EmotionSummary
    from emocore.store import NewAd, Store

    labels = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    with Store(tmp_path / "archive") as archive:
        for i in range(12):
            emotions = tuple(EmotionSummary(e, 0.6 + 0.03 * i if e == "happy" else 0.02, 0.95, 1.0, 1.0, 0.01)
                             for e in labels)
            archive.write_ad(NewAd(key=f"arch{i}", content_hash=f"c{i}", params_hash="p", params={}, name=f"a{i}.mp4",
                                   path=f"/archive/a{i}.mp4", size_bytes=1, model="fer", model_version="1",
                                   labels=labels, emotions=emotions, face_frames=60, face_seconds=30.0,
                                   info={"duration_s": 30.0}))
    own = json.loads(runner.invoke(app, ["show", "carphone.mp4", "--cache", str(demo_cache), "--json"]).stdout)
    done = runner.invoke(app, ["show", "carphone.mp4", "--cache", str(demo_cache), "--json",
                               "--norms", str(tmp_path / "archive")])
    assert done.exit_code == 0, done.output
    archived = json.loads(done.stdout)
    assert archived["norms"]["source"] == str(tmp_path / "archive") and archived["norms"]["ads"] == 12
    happy = {e["emotion"]: e for e in archived["emotions"]}["happy"]
    assert happy["percentile"] == 0 and happy["lift"] < {e["emotion"]: e for e in own["emotions"]}["happy"]["lift"]
    listed = runner.invoke(app, ["ls", "--cache", str(demo_cache), "--rank", "happy", "--json",
                                 "--norms", str(tmp_path / "archive")])
    assert listed.exit_code == 0 and all(r["percentile"] in (0, None) for r in json.loads(listed.stdout))
    nowhere = runner.invoke(app, ["ls", "--cache", str(demo_cache), "--norms", str(tmp_path / "none")])
    assert nowhere.exit_code == 1 and "no cache at" in nowhere.stderr


@pytest.mark.slow
def test_ls_rank_through_a_pipe_keeps_numbers_whole(demo_cache: Path) -> None:
    """A real subprocess whose stdout is a pipe (rich falls back to 80 columns): numbers stay whole."""
    done = subprocess.run([sys.executable, "cli.py", "ls", "--cache", str(demo_cache), "--rank", "happy"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**__import__("os").environ, "COLUMNS": "50"})
    assert done.returncode == 0, done.stderr
    rows = json.loads(subprocess.run([sys.executable, "cli.py", "ls", "--cache", str(demo_cache), "--rank", "happy",
                                      "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120).stdout)
    assert "…" not in done.stdout
    for r in rows:
        if r["score"] is not None:
            assert f"{r['score']:.3f}" in done.stdout and f"{r['lift']:.2f}×" in done.stdout


def test_ls_of_an_empty_cache(tmp_path: Path) -> None:
    from emocore.store import Store

    Store(tmp_path / "c").close()
    listed = runner.invoke(app, ["ls", "--cache", str(tmp_path / "c"), "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    ranked = runner.invoke(app, ["ls", "--cache", str(tmp_path / "c"), "--rank", "happy"])
    assert ranked.exit_code == 2 and "the cache holds no indexed ad" in ranked.stderr


def test_index_prominence_option(tmp_path: Path, weights_ready: None) -> None:
    bad = runner.invoke(app, ["index", str(tmp_path), "--prominence", "2"])
    assert bad.exit_code == 2 and "prominence must be in [0, 1]" in bad.stderr
    media.color_cut_clip(tmp_path / "ads" / "cut.mp4")
    done = runner.invoke(app, ["index", str(tmp_path / "ads"), "--cache", str(tmp_path / "c"), "--prominence", "0.25",
                               "--no-explain"])
    assert done.exit_code == 0, done.output
    from emocore.store import Store

    with Store(tmp_path / "c", readonly=True) as store:
        params = store.ad("cut.mp4").params["index"]
    assert params["scoring"] == {"window_s": 1.5, "threshold": 0.5, "prominence": 0.25}  # the rest: the defaults
    assert params["sample_rate"] == 2.0 and params["max_side"] == 1280
