"""The use-case layer (`emocore.usecases`) on its own, and the same use case reached through the CLI
(CliRunner) and through the dashboard (AppTest) giving the same result: the library's order, an
explanation computed on demand, the table of differences between two ads, a cache's paths."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from cli import app
from emocore import usecases
from emocore.errors import AdNotFound
from emocore.explain import ExplainParams
from emocore.store import DB_NAME, Store
from pages import ad_keys as _keys, open_page as _app

runner = CliRunner()




def test_locate_names_every_file_of_a_cache(tmp_path: Path, demo_cache: Path) -> None:
    paths = usecases.locate(tmp_path / "c")
    assert paths.db == tmp_path / "c" / DB_NAME and paths.wal == tmp_path / "c" / f"{DB_NAME}-wal"
    assert (paths.thumbs, paths.overlays, paths.models, paths.evaluations, paths.features) == tuple(
        tmp_path / "c" / name for name in ("thumbs", "overlays", "models", "evaluations", "features"))
    assert paths.overlay("k", 7, "happy", ("lime", "shap")).name == "k_00007_happy_both.png"
    assert paths.overlay("k", 7, "happy", ("shap",)).name == "k_00007_happy_shap.png"
    assert paths.version() == 0 and not paths.root.exists()  # naming creates nothing
    # the files the index wrote are where the paths say
    demo = usecases.locate(demo_cache)
    key = _keys(demo_cache)["carphone.mp4"]
    with Store(demo_cache, readonly=True) as store:
        explained = sorted({index for index, _, _ in store.explained_frames(key)})
    assert demo.thumbnail(key, 0).is_file() and explained
    image = usecases.read_key_frame(demo_cache, key, explained[0])
    assert image is not None and image.ndim == 3 and image.shape[2] == 3
    assert usecases.read_key_frame(demo_cache, key, 10_000) is None


def test_cache_version_changes_when_an_index_commits(tmp_path: Path) -> None:
    Store(tmp_path).close()  # a new cache: the database exists
    before = usecases.cache_version(tmp_path)
    assert before > 0
    wal = usecases.locate(tmp_path).wal
    wal.write_bytes(b"")  # a commit in WAL mode touches the -wal file, not the database
    stamp = before + 5_000_000_000
    os.utime(wal, ns=(stamp, stamp))
    assert usecases.cache_version(tmp_path) == stamp


def test_library_order_is_the_same_in_the_usecase_the_cli_and_the_dashboard(monkeypatch: pytest.MonkeyPatch,
                                                                            demo_cache: Path) -> None:
    listing = usecases.list_library(demo_cache, rank="sad")
    names = [e["name"] for e in listing.entries]
    assert listing.emotion == "sad" and listing.total == len(names) == 4
    assert [e["standing"] for e in listing.entries][-1] == "failed"
    done = runner.invoke(app, ["ls", "--cache", str(demo_cache), "--rank", "sad", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == list(listing.entries)  # the CLI prints the use case's entries as they are
    table = usecases.library_table(demo_cache)
    ranked = usecases.filter_library(table, usecases.LibraryFilters("sad"))
    assert ranked.rows["name"].tolist() == names
    at = _app(monkeypatch, demo_cache, emotion="sad")
    assert not at.exception
    assert at.dataframe[0].value["name"].tolist() == names
    # a higher minimum evidence moves ads from ranked to "too little evidence", the same everywhere
    most = int(table["face_frames"].max())
    strict = usecases.list_library(demo_cache, rank="sad", min_face_frames=most)
    assert [e["standing"] for e in strict.entries].count("ranked") == 1
    at = _app(monkeypatch, demo_cache, emotion="sad", evidence=str(most), per="frames")
    assert at.dataframe[0].value["name"].tolist() == [e["name"] for e in strict.entries]
    assert at.dataframe[0].value["rank"].tolist()[:1] == [1]


def test_filter_library(demo_cache: Path) -> None:
    table = usecases.library_table(demo_cache)
    every = usecases.filter_library(table, usecases.LibraryFilters("happy"))
    assert (every.ranked, every.thin, every.failed) == (
        (every.rows["standing"] == "ranked").sum(), (every.rows["standing"] == "too little evidence").sum(), 1)
    assert len(every.rows) == len(table) == 4
    named = usecases.filter_library(table, usecases.LibraryFilters("happy", name="CARPHONE"))
    assert named.rows["name"].tolist() == ["carphone.mp4"]
    ok_only = usecases.filter_library(table, usecases.LibraryFilters("happy", statuses=("ok",)))
    assert ok_only.failed == 0 and len(ok_only.rows) == 3
    short = usecases.filter_library(table, usecases.LibraryFilters("happy", duration=(0.0, 0.5)))
    assert short.rows["status"].tolist() == ["failed"]  # no ad that short; a failed one has no duration to judge
    none_scored = usecases.filter_library(table, usecases.LibraryFilters("happy", score=(2.0, 3.0)))
    assert none_scored.ranked == 0 and none_scored.thin == every.thin  # the unranked stay listed
    ascending = usecases.filter_library(table, usecases.LibraryFilters("happy", descending=False))
    ranked = every.rows[every.rows["standing"] == "ranked"]["name"].tolist()
    assert ascending.rows["name"].tolist()[:len(ranked)] == ranked[::-1]
    with pytest.raises(ValueError, match="unknown emotion 'joy'"):
        usecases.filter_library(table, usecases.LibraryFilters("joy"))
    assert usecases.face_frames_for(3.0, 2.0) == 6 and usecases.face_frames_for(0.1, 2.0) == 1
    assert usecases.evidence_rate(table) == pytest.approx(2.0)


def _unexplained_face_frame(cache: Path, name: str) -> tuple[str, float, str]:
    """An ad's key, the time of a face frame without an explanation, and its top raw emotion there
    (what the dashboard's "Explain … now" button explains)."""
    key = _keys(cache)[name]
    with Store(cache, readonly=True) as store:
        ad, timeline = store.ad(key), store.timeline(key)
        explained = {index for index, _, _ in store.explained_frames(key)}
    index = next(i for i in range(len(timeline.times))
                 if timeline.faces[i] > 0 and i not in explained)
    return key, float(timeline.times[index]), ad.labels[int(np.nanargmax(timeline.raw[index]))]


def test_an_explanation_is_the_same_from_the_usecase_the_cli_and_the_dashboard(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, demo_cache: Path) -> None:
    copies = {route: shutil.copytree(demo_cache, tmp_path / route) for route in ("usecase", "cli", "dashboard")}
    key, t, emotion = _unexplained_face_frame(demo_cache, "carphone.mp4")

    direct = usecases.explain_moment(copies["usecase"], key, t, emotion, ExplainParams())
    assert direct.ad.key == key and abs(direct.time_s - t) < 1e-6 and direct.emotion == emotion
    assert [a.method for a in direct.attributions] == ["lime", "shap"]
    assert direct.overlay_path == usecases.locate(copies["usecase"]).overlay(key, direct.frame.frame_idx, emotion,
                                                                            ("lime", "shap"))
    assert direct.overlay_path.is_file() and direct.key_frame is not None

    done = runner.invoke(app, ["explain", key, "--at", f"{t:.3f}", "--emotion", emotion,
                               "--cache", str(copies["cli"])])
    assert done.exit_code == 0, done.output
    written = usecases.locate(copies["cli"]).overlay(key, direct.frame.frame_idx, emotion, ("lime", "shap"))
    assert f"overlay written to {written}" in done.stdout.replace("\n", "") and written.is_file()

    at = _app(monkeypatch, copies["dashboard"], "views/ad.py", ad=key, t=f"{t:.3f}")
    assert not at.exception
    at.button(key="ad-explain-now").click().run()
    assert not at.exception and not at.error

    for route in ("cli", "dashboard"):
        with Store(copies[route], readonly=True) as store:
            stored = store.explanation(key, direct.frame.frame_idx)
        for a in direct.attributions:
            other = stored.attribution(a.emotion, a.method)
            assert other is not None, (route, a.method)
            np.testing.assert_array_equal(other.weights, a.weights)
            assert other.trust.score == a.trust.score  # (the seconds it took differ)
    # the dashboard now shows its stored explanation (`stored`: the last route's), in the trust formatter's words
    from emocore.trust import describe

    shown = " ".join(m.value for m in at.markdown).replace("\\", "")  # Markdown escapes removed
    lines = describe(stored.attribution(emotion, "lime").trust)
    assert all(line in shown for line in lines), (lines, shown)


def test_explain_moment_says_why_it_cannot(tmp_path: Path, demo_cache: Path) -> None:
    with pytest.raises(AdNotFound):
        usecases.explain_moment(demo_cache, "no-such-ad", 1.0, "happy", overlay=False)
    key = _keys(demo_cache)["carphone.mp4"]
    with pytest.raises(ValueError, match="unknown emotion 'joy'"):
        usecases.explain_moment(demo_cache, key, 1.0, "joy", overlay=False)


def test_compare_is_the_same_in_the_usecase_and_the_dashboard(monkeypatch: pytest.MonkeyPatch,
                                                              demo_cache: Path) -> None:
    keys = _keys(demo_cache)
    pair = [keys["carphone.mp4"], keys["Megamind.avi"]]
    comparison = usecases.compare_ads(demo_cache, pair, "sad")
    assert comparison.emotion == "sad" and "sad" in comparison.emotions
    assert [c.name for c in comparison.curves] == ["carphone.mp4", "Megamind.avi"]
    diff = comparison.differences
    assert diff["ad"].tolist() == ["carphone.mp4", "Megamind.avi"]
    with Store(demo_cache, readonly=True) as store:
        carphone = {e.emotion: e for e in store.emotions(pair[0])}["sad"]
    assert diff.loc[0, "sad mean"] == pytest.approx(carphone.mean)
    curves = comparison.curves_table()
    assert set(curves["ad"]) == {"carphone.mp4", "Megamind.avi"} and curves["share_of_duration"].max() <= 1.0 + 1e-9

    at = _app(monkeypatch, demo_cache, "views/compare.py", ads=",".join(pair), emotion="sad", align="share")
    assert not at.exception
    shown = at.dataframe[0].value
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), diff, check_dtype=False)

    with pytest.raises(ValueError, match="at least two ads"):
        usecases.compare_ads(demo_cache, pair[:1], "sad")
    with pytest.raises(ValueError, match="'joy' is not scored"):
        usecases.compare_ads(demo_cache, pair, "joy")


def test_debug_flag_lives_in_the_typer_context(tmp_path: Path) -> None:
    """No module-level state: `--debug` reaches the error handling through the command's context."""
    assert not hasattr(cli, "_state")
    Store(tmp_path).close()
    quiet = runner.invoke(app, ["show", "nope", "--cache", str(tmp_path)])
    assert quiet.exit_code == 1 and "no ad" in quiet.stderr.lower()
    loud = runner.invoke(app, ["--debug", "show", "nope", "--cache", str(tmp_path)])
    assert isinstance(loud.exception, AdNotFound)
    again = runner.invoke(app, ["show", "nope", "--cache", str(tmp_path)])  # nothing carried over
    assert again.exit_code == 1 and not isinstance(again.exception, AdNotFound)
