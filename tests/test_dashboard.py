"""The dashboard's logic in AppTest, on a real cache built from the demo clips by the real model,
and the import path `streamlit run` gives it."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from emocore.store import Store

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "dashboard" / "main.py")
BROKEN = "<img src=x onerror=alert(1)> broken.mp4"


def _app(monkeypatch: pytest.MonkeyPatch, cache: Path, page: str | None = None, **params: str) -> AppTest:
    monkeypatch.setattr(sys, "argv", ["main.py", "--cache", str(cache)])
    at = AppTest.from_file(MAIN, default_timeout=120)
    if page:
        at.switch_page(page)
    for name, value in params.items():
        at.query_params[name] = value
    return at.run()


def _keys(cache: Path) -> dict[str, str]:
    with Store(cache, readonly=True) as store:
        return {ad.name: ad.key for ad in store.ads()}


def _plain(value: object) -> object:
    """Plotly 7 ships arrays as typed binary blocks ({"dtype", "bdata"}): decode them to lists."""
    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            return array.reshape(value["shape"]).tolist() if "shape" in value else array.tolist()
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _figure(at: AppTest, index: int = 0) -> dict:
    return _plain(json.loads(at.get("plotly_chart")[index].proto.spec))


def test_library_lists_every_ad_with_failures(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    at = _app(monkeypatch, demo_cache)
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["name"]) == {"carphone.mp4", "Megamind.avi", "bigbuckbunny.mp4", BROKEN}
    rows = table.set_index("name")
    assert rows.loc[BROKEN, "status"] == "failed" and "not a readable video" in rows.loc[BROKEN, "failure"]
    assert rows.loc["carphone.mp4", "open"] == f"ad?ad={_keys(demo_cache)['carphone.mp4']}"
    assert rows.loc["carphone.mp4", "thumbnail"].startswith("data:image/jpeg;base64,")
    mix = _figure(at)
    assert sum(mix["data"][0]["y"]) == 3  # the three indexed ads' dominant emotions, no placeholder numbers


def test_library_ranks_and_filters(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    at = _app(monkeypatch, demo_cache, emotion="sad", order="desc")
    table = at.dataframe[0].value
    scores = table["mean sad"].dropna().tolist()
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    assert table["status"].iloc[-1] == "failed"  # failed ads have no score: listed last
    at.selectbox(key="lib-emotion").set_value("happy").run()
    at.radio(key="lib-order").set_value("lowest first").run()
    scores = at.dataframe[0].value["mean happy"].dropna().tolist()
    assert scores == sorted(scores)
    assert at.query_params["emotion"] == "happy" and at.query_params["order"] == "asc"
    at.text_input(key="lib-name").set_value("MEGA").run()
    assert at.dataframe[0].value["name"].tolist() == ["Megamind.avi"]
    at.text_input(key="lib-name").set_value("").run()
    at.multiselect(key="lib-status").set_value(["failed"]).run()
    assert at.dataframe[0].value["name"].tolist() == [BROKEN]


def test_library_view_restores_from_its_link(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    at = _app(monkeypatch, demo_cache, emotion="fear", min="0.2", max="0.9", q="a", order="asc", bogus="1")
    assert at.selectbox(key="lib-emotion").value == "fear"
    assert at.slider(key="lib-score").value == (0.2, 0.9)
    assert at.text_input(key="lib-name").value == "a"
    assert at.radio(key="lib-order").value == "lowest first"
    assert any("bogus" in w.value for w in at.warning)
    assert not at.exception


def test_ad_page_timeline_and_explanations(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    key = _keys(demo_cache)["Megamind.avi"]
    with Store(demo_cache, readonly=True) as store:
        index, time_s, _ = store.explained_frames(key)[0]
        timeline = store.timeline(key)
    at = _app(monkeypatch, demo_cache, "views/ad.py", ad=key, t=f"{time_s:.3f}")
    assert not at.exception
    figure = _figure(at)
    lines = [t for t in figure["data"] if t.get("mode") == "lines+markers"]
    assert [t["name"] for t in lines] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert len(lines[0]["x"]) == len(timeline.times)
    assert lines[0]["marker"]["opacity"] == 0  # invisible markers make points clickable
    shot_lines = [s for s in figure["layout"].get("shapes", []) if s.get("line", {}).get("dash") == "dot"]
    assert len(shot_lines) == len(timeline.shots) == 3
    assert any(t["name"] == "explained" for t in figure["data"])
    assert any(f"The moment at {time_s:.1f} s" in h.value for h in at.subheader)
    # the explanation view: both methods' overlays and their figures
    assert len(at.get("image")) >= 4
    figures = [df.value for df in at.dataframe]
    assert len(figures) == 2 and all("drop, top 10% hidden" in set(f["figure"]) for f in figures)
    at.slider(key="ad-opacity").set_value(0.2).run()
    assert at.query_params["opacity"] == "0.2" and not at.exception


def test_ad_page_moment_without_explanation_gives_the_command(monkeypatch: pytest.MonkeyPatch,
                                                            demo_cache: Path) -> None:
    key = _keys(demo_cache)["Megamind.avi"]
    with Store(demo_cache, readonly=True) as store:
        explained = {i for i, _, _ in store.explained_frames(key)}
        timeline = store.timeline(key)
    index = next(i for i in range(len(timeline.times)) if i not in explained and timeline.faces[i] > 0)
    at = _app(monkeypatch, demo_cache, "views/ad.py", ad=key, t=f"{timeline.times[index]:.3f}")
    assert not at.exception
    assert any("python cli.py explain" in c.value and f"--at {timeline.times[index]:.2f}" in c.value for c in at.code)
    assert at.button(key="ad-explain-now") is not None
    at.button(key="ad-nearest").click().run()
    nearest = min(explained, key=lambda i: abs(timeline.times[i] - timeline.times[index]))
    assert at.query_params["t"] == f"{timeline.times[nearest]:.3f}"
    assert any(f"The moment at {timeline.times[nearest]:.1f} s" in h.value for h in at.subheader)


def test_ad_page_failed_ad_and_unknown_ad(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    at = _app(monkeypatch, demo_cache, "views/ad.py", ad=_keys(demo_cache)[BROKEN])
    assert not at.exception
    assert any("Indexing failed: not a readable video" in e.value for e in at.error)
    assert "<img" not in at.title[0].value.replace("\\<img", "")  # the name is escaped, never HTML
    unknown = _app(monkeypatch, demo_cache, "views/ad.py", ad="nope")
    assert any("No ad nope" in w.value for w in unknown.warning) and not unknown.exception


def test_compare_two_ads(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    keys = _keys(demo_cache)
    pair = f"{keys['Megamind.avi']},{keys['carphone.mp4']}"
    at = _app(monkeypatch, demo_cache, "views/compare.py", ads=pair, emotion="sad", align="share")
    assert not at.exception
    overlay, profile = _figure(at, 0), _figure(at, 1)
    assert [t["name"] for t in overlay["data"]] == ["Megamind.avi", "carphone.mp4"]
    assert overlay["layout"]["xaxis"]["title"]["text"] == "% of the ad's duration"
    assert max(overlay["data"][0]["x"]) <= 100.0
    assert [t["name"] for t in profile["data"]] == ["Megamind.avi", "carphone.mp4"]
    differences = at.dataframe[0].value
    assert differences["ad"].tolist() == ["Megamind.avi", "carphone.mp4"]
    assert {"time to first peak (s)", "peak emotion (highest peak)", "sad mean"} <= set(differences.columns)
    at.radio(key="cmp-align").set_value("seconds").run()
    assert _figure(at, 0)["layout"]["xaxis"]["title"]["text"] == "seconds"


def test_empty_state_gives_the_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for page in (None, "views/ad.py", "views/compare.py"):
        at = _app(monkeypatch, tmp_path / "no-cache", page)
        assert not at.exception
        assert "python cli.py" in at.info[0].value


def test_emocore_comes_from_the_installed_package_with_only_the_dashboard_on_the_path(tmp_path: Path) -> None:
    """`streamlit run dashboard/main.py` puts only dashboard/ on sys.path: the pages import emocore from the
    installed project (`pip install -e .`), and main.py adds nothing to the path."""
    code = (
        "import importlib.metadata, runpy, sys\n"
        f"sys.path = [{str(ROOT / 'dashboard')!r}] + [p for p in sys.path if p and 'site-packages' in p or 'lib/python' in p]\n"
        f"assert {str(ROOT)!r} not in sys.path\n"
        "before = list(sys.path)\n"
        f"runpy.run_path({MAIN!r}, run_name='__main__')\n"
        "assert sys.path == before, sys.path\n"
        "import emocore, emocore.store\n"
        "assert importlib.metadata.version('emocore') == emocore.__version__\n"
        "print(emocore.store.__file__)\n"
    )
    done = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"is emocore installed (`pip install -e .`)? {done.stderr}"
    assert Path(done.stdout.strip().splitlines()[-1]) == ROOT / "emocore" / "store.py"


def test_without_the_installed_package_the_dashboard_says_what_to_run(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "emocore" else find_spec(name, *a))
    at = _app(monkeypatch, tmp_path)
    assert not at.exception
    assert [e.value for e in at.error] == ["emocore is not installed in this Python: run `pip install -e .` in the "
                                           "project's folder."]
    assert not at.dataframe
