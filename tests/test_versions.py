"""Versions: cuts of one ad matched shot by shot (emocore/versions.py, `cli.py versions`, the Versions page).

Exact expectations from synthetic multi-shot clips (one flat colour per shot, known cuts), indexed by the
real model; the demo cut of Megamind.avi (emocore/demo_cut.py, what `setup` makes) checked against its
known edit list."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from emocore import usecases
from emocore.audio.lanes import AUDIO_SIGNALS
from emocore.demo_cut import DEMO_CUT_PLAN, build_demo_cut, ensure_demo_cut
from emocore.devtools.media import color_cut_clip
from emocore.errors import AdNotFound, VersionsError
from emocore.indexer import index_folder
from emocore.versions import VersionParams, alignment_figure, longest_in_order

ROOT = Path(__file__).resolve().parent.parent
RED, GREEN, BLUE, YELLOW, MAGENTA, CYAN = (200, 30, 30), (20, 90, 20), (30, 30, 200), (230, 220, 40), \
    (200, 40, 200), (40, 200, 210)


@pytest.fixture(scope="module")
def colour_cache(tmp_path_factory: pytest.TempPathFactory, face_model) -> Path:
    """A master of five 1 s shots (red, yellow, blue, green, magenta) and a cut of it: red, blue,
    green, yellow (moved to the end), cyan (new); magenta cut. A trimmed cut: red, yellow (0.5 s of it), blue.
    Plus an unrelated two-shot clip. (The
    colours of neighbouring shots differ enough for the shot detector: red next to a light green does not.)"""
    ads = tmp_path_factory.mktemp("versions-ads")
    color_cut_clip(ads / "master.mp4", seconds=5.0, cuts=(1, 2, 3, 4), colors=(RED, YELLOW, BLUE, GREEN, MAGENTA))
    color_cut_clip(ads / "master_cut.mp4", seconds=5.0, cuts=(1, 2, 3, 4), colors=(RED, BLUE, GREEN, YELLOW, CYAN),
                   seed=3)
    color_cut_clip(ads / "master_trim.mp4", seconds=2.5, cuts=(1, 1.5), colors=(RED, YELLOW, BLUE), seed=5)
    color_cut_clip(ads / "other.mp4", seconds=2.0, cuts=(1,), colors=((90, 90, 90), (250, 250, 250)))
    cache = tmp_path_factory.mktemp("versions-cache")
    index_folder(ads, cache, model=face_model, explain=None)
    return cache


def test_a_cut_is_matched_shot_by_shot(colour_cache: Path) -> None:
    (match,) = usecases.versions(colour_cache, ["master.mp4", "master_cut.mp4"])
    assert [len(match.reference.shots), len(match.cut.shots)] == [5, 5]
    edits = [(m.status, None if m.a is None else m.a.index, None if m.b is None else m.b.index) for m in match.matches]
    # the reference's shots in order, the added one after the row of the cut's shot before it (yellow, A's 1)
    assert edits == [("kept", 0, 0), ("moved", 1, 3), ("added", None, 4), ("kept", 2, 1), ("kept", 3, 2),
                     ("cut", 4, None)]
    assert {s: match.count(s) for s in ("kept", "moved", "cut", "added")} == {"kept": 3, "moved": 1, "cut": 1,
                                                                              "added": 1}
    assert match.summary() == ("master_cut.mp4 (5.0 s) kept 4 of 5 shots of master.mp4 (5.0 s), 1 moved; "
                               "cut 1, added 1")
    assert all(m.similarity > 0.97 for m in match.matches if m.similarity is not None)
    # the cut's time maps onto the reference's shot by shot: blue is at 1–2 s in the cut, 2–3 s in the master
    assert np.allclose(match.to_reference_time([0.5, 1.5, 3.25]), [0.5, 2.5, 1.25])
    assert np.isnan(match.to_reference_time([4.5])).all()  # cyan: no time in the master
    # per matched shot, each emotion's change with the face frames it rests on (no faces in flat colours)
    kept = match.matches[0]
    assert {c.signal for c in kept.changes} >= set(match.reference.labels)
    assert all(c.unit == "face frames" for c in kept.changes if c.kind == "emotion")


def test_a_trimmed_shot_still_matches_and_maps_by_its_start(colour_cache: Path) -> None:
    (match,) = usecases.versions(colour_cache, ["master.mp4", "master_trim.mp4"])
    assert [m.status for m in match.matches] == ["kept", "kept", "kept", "cut", "cut"]
    # blue is 1.52–2.48 s of the trim (the frame grid at 25 frames/s), 2–3 s of the master: within a frame
    assert np.allclose(match.to_reference_time([0.25, 1.25, 2.0]), [0.25, 1.25, 2.5], atol=0.05)


def test_the_in_order_run_prefers_the_longer_shots() -> None:
    # B shows A's shots 0, 2, 1: either {0, 2} or {0, 1} keeps A's order; the run covering more seconds wins
    assert longest_in_order([(0, 0), (2, 1), (1, 2)], [1.0, 3.0, 2.0]) == {0, 1}
    assert longest_in_order([(0, 0), (2, 1), (1, 2)], [1.0, 2.0, 3.0]) == {0, 2}
    assert longest_in_order([(0, 0), (2, 1), (3, 2), (1, 3)], [1.0, 1.0, 1.0, 9.0]) == {0, 1, 2}  # length first
    assert longest_in_order([], []) == set()


def test_unrelated_ads_share_no_shot_and_bad_input_is_one_line(colour_cache: Path) -> None:
    (match,) = usecases.versions(colour_cache, ["master.mp4", "other.mp4"])
    assert match.count("kept") + match.count("moved") == 0
    assert (match.count("cut"), match.count("added")) == (5, 2)
    with pytest.raises(VersionsError, match="at least one other cut"):
        usecases.versions(colour_cache, ["master.mp4", "master.mp4"])
    with pytest.raises(AdNotFound):
        usecases.versions(colour_cache, ["master.mp4", "nope.mp4"])
    with pytest.raises(VersionsError, match="max_distance"):
        VersionParams(max_distance=0)


def test_three_versions_and_the_figure(colour_cache: Path) -> None:
    matches = usecases.versions(colour_cache, ["master.mp4", "master_cut.mp4", "other.mp4"])
    assert [m.cut.name for m in matches] == ["master_cut.mp4", "other.mp4"]
    fig = alignment_figure(matches, "happy")
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 5 + 5 + 2
    assert {t.name for t in bars} == {"kept", "moved", "cut", "added"}
    links = [t for t in fig.data if t.type == "scatter" and t.showlegend is False]
    assert len(links) == 4  # one line per matched shot
    json.dumps(matches[0].to_dict())  # plain data


def test_cli_versions_prints_the_edit_list_and_json(colour_cache: Path) -> None:
    from typer.testing import CliRunner

    from cli import app

    runner = CliRunner()
    args = ["versions", "master.mp4", "master_cut.mp4", "--cache", str(colour_cache)]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "kept 4 of 5 shots" in text and "moved" in text and "added" in text
    found = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert found[0]["counts"] == {"kept": 3, "moved": 1, "cut": 1, "added": 1}
    assert [row["status"] for row in found[0]["shots"]] == ["kept", "moved", "added", "kept", "kept", "cut"]
    bad = runner.invoke(app, ["versions", "master.mp4", "--cache", str(colour_cache)])
    assert bad.exit_code == 1 and "other cut" in bad.stderr and bad.stderr.strip().count("\n") == 0


def test_the_demo_cut_matches_its_known_edit_list(tmp_path: Path, megamind: Path, face_model) -> None:
    """What `setup` builds: Megamind.avi's shots 1, 3, 2 re-encoded with their sound (shot 4 dropped)."""
    ads = tmp_path / "ads"
    ads.mkdir()
    (ads / megamind.name).write_bytes(megamind.read_bytes())
    made = build_demo_cut(megamind, ads / "Megamind_cut.mp4")
    assert made.built and made.plan == DEMO_CUT_PLAN and len(made.source_shots) == 4
    stamp = made.path.stat().st_mtime_ns
    assert ensure_demo_cut(ads) == made.path and made.path.stat().st_mtime_ns == stamp  # made once
    cache = tmp_path / "cache"
    index_folder(ads, cache, model=face_model, explain=None)
    (match,) = usecases.versions(cache, [megamind.name, "Megamind_cut.mp4"])
    assert len(match.cut.shots) == len(DEMO_CUT_PLAN)
    found = {m.a.index: m.status for m in match.matches if m.a is not None}
    assert found == made.expected() == {0: "kept", 1: "kept", 2: "moved", 3: "cut"}
    assert match.count("added") == 0
    # whole shots moved: the time map is exact at the shots' starts
    for span in match.spans:
        assert span.b_start_s + span.offset_s == pytest.approx(span.a_start_s, abs=0.05)
    # both soundtracks were read (the cut keeps its shots' sound): each audio signal's change, in seconds of sound
    assert match.reference.audio is not None and match.cut.audio is not None
    first = match.matches[0]
    assert {c.signal for c in first.changes if c.kind == "audio"} == set(AUDIO_SIGNALS)
    assert all(c.unit == "s of sound" and c.evidence_before >= 3 for c in first.changes if c.kind == "audio")


def test_the_versions_page(monkeypatch: pytest.MonkeyPatch, colour_cache: Path) -> None:
    from streamlit.testing.v1 import AppTest

    from emocore.store import Store

    with Store(colour_cache, readonly=True) as store:
        keys = {ad.name: ad.key for ad in store.ads()}
    monkeypatch.setattr(sys, "argv", ["main.py", "--cache", str(colour_cache)])
    at = AppTest.from_file(str(ROOT / "dashboard" / "main.py"), default_timeout=120)
    at.switch_page("views/versions.py")
    at.query_params["ads"] = f"{keys['master.mp4']},{keys['master_cut.mp4']}"
    at.run()
    assert not at.exception
    assert any("kept 4 of 5 shots" in m.value for m in at.markdown)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t.get("name") for t in spec["data"] if t["type"] == "bar"} == {"kept", "moved", "cut", "added"}
    table = at.dataframe[0].value
    assert list(table["status"]) == ["kept", "moved", "added", "kept", "kept", "cut"]
    assert "other.mp4" in at.multiselect(key="ver-cuts").options
    # the search box narrows what is offered (on the server); the chosen ads stay
    at.text_input(key="ver-q").input("master").run()
    assert not at.exception
    assert at.multiselect(key="ver-cuts").options == ["master_cut.mp4", "master_trim.mp4"]
    assert at.query_params["q"] in ("master", ["master"])


@pytest.mark.slow
def test_the_versions_page_in_a_browser(colour_cache: Path, tmp_path: Path) -> None:
    """The alignment figure renders in a real browser: the shot bars of both versions and the lines
    joining the matched shots."""
    from browser import assert_no_exception, assert_no_page_errors, chromium_page, goto_app, plotly_chart, \
        streamlit_server, wait_for_text

    from emocore.store import Store

    with Store(colour_cache, readonly=True) as store:
        keys = {ad.name: ad.key for ad in store.ads()}
    with streamlit_server(colour_cache) as url, chromium_page(tmp_path) as page:
        goto_app(page, f"{url}/versions?ads={keys['master.mp4']},{keys['master_cut.mp4']}")
        wait_for_text(page, "kept 4 of 5 shots")
        figure = plotly_chart(page, key="ver-align")
        figure.locator(".barlayer .point").first.wait_for()
        assert figure.locator(".barlayer .point").count() == 10  # five shots a version
        assert figure.locator(".scatterlayer .trace").count() >= 4  # the matched shots' lines, then the curves
        assert "moved" in figure.inner_text() and "added" in figure.inner_text()  # the legend
        page.screenshot(path=str(tmp_path / "versions.png"), full_page=True)
        assert_no_exception(page)
        assert_no_page_errors(page)
