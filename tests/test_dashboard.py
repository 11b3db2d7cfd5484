"""The dashboard's logic in AppTest, on a real cache built from the demo clips by the real model,
and the import path `streamlit run` gives it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emocore import norms, queries
from emocore.scoring import summarise
from emocore.store import NewAd, Store, Timeline
from emocore.trust import TrustFigures, describe
from pages import ad_keys as _keys, figure as _figure, open_page as _app

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "dashboard" / "main.py")
BROKEN = "<img src=x onerror=alert(1)> broken.mp4"






def _library(cache: Path, other: Path | None = None) -> pd.DataFrame:
    """queries.library of a cache, against its own norms or those of the cache at `other`."""
    with Store(cache, readonly=True) as store:
        if other is None:
            return queries.library(store)
        return queries.library(store, norms.load_norms_from(other))


LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, SYNTHETIC cache (written through Store, no video): 12 very happy ads of 30 face
    frames each (happy around 0.6–0.85 per frame), to read the demo ads against another library."""
    root = tmp_path_factory.mktemp("archive-cache")
    rng = np.random.default_rng(7)
    times = np.arange(30) / 2.0
    with Store(root) as store:
        for i in range(12):
            happy = 0.6 + 0.02 * i + rng.normal(0.0, 0.03, len(times))
            raw = np.tile(np.full(len(LABELS), 0.0), (len(times), 1))
            raw[:, LABELS.index("happy")] = happy
            raw[:, LABELS.index("neutral")] = 1.0 - happy
            summary = summarise(times, raw, raw, LABELS, 0.5, sample_rate=2.0)
            name = f"archive ad {i:02d}.mp4"
            store.write_ad(NewAd(
                key=f"archive{i:02d}", content_hash=f"{i:064d}", params_hash="p" * 64, params={}, name=name,
                path=f"/archive/{name}", size_bytes=1, model="fer", model_version="synthetic", labels=LABELS,
                info={"duration_s": 15.0},
                timeline=Timeline(times=times, raw=raw, smoothed=raw, faces=np.ones(len(times), np.int64),
                                  boxes=((0.0, 0.0, 64.0, 64.0, 0.99),) * len(times), shots=()),
                emotions=summary.emotions, face_coverage=summary.face_coverage, dominant_raw=summary.dominant_raw,
                face_frames=summary.face_frames, face_seconds=summary.face_seconds,
            ))
    return root


def test_library_lists_every_ad_with_failures(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    at = _app(monkeypatch, demo_cache)
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["name"]) == {"carphone.mp4", "Megamind.avi", "bigbuckbunny.mp4", BROKEN}
    rows = table.set_index("name")
    assert rows.loc[BROKEN, "status"] == "failed" and "not a readable video" in rows.loc[BROKEN, "failure"]
    assert rows.loc["carphone.mp4", "open"] == f"ad?ad={_keys(demo_cache)['carphone.mp4']}"
    assert rows.loc["carphone.mp4", "thumbnail"].startswith("data:image/jpeg;base64,")
    assert rows.loc["carphone.mp4", "raw top emotion"] is not None


def test_library_default_order_is_queries_rank(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    """The default order is exactly `queries.rank`'s (what `cli.py ls --rank` prints), both ways."""
    library = _library(demo_cache)
    at = _app(monkeypatch, demo_cache)
    for emotion in ("happy", "sad", "fear"):
        at.selectbox(key="lib-emotion").set_value(emotion).run()
        table = at.dataframe[0].value
        expected = queries.rank(library, emotion)
        assert table["name"].tolist() == expected["name"].tolist()
        assert table["rank"].tolist() == expected["rank"].tolist()
        assert np.allclose(table["rank score"], expected[f"score_{emotion}"], equal_nan=True)
        assert np.allclose(table["mean (raw)"], expected[f"mean_{emotion}"], equal_nan=True)
    at.radio(key="lib-order").set_value("lowest first").run()
    expected = queries.rank(library, "fear", descending=False)
    assert at.dataframe[0].value["name"].tolist() == expected["name"].tolist()
    assert at.query_params["order"] == "asc"
    # the evidence is shown beside the figures
    rows = at.dataframe[0].value.set_index("name")
    for name in ("carphone.mp4", "Megamind.avi"):
        assert rows.loc[name, "face frames"] == library.set_index("name").loc[name, "face_frames"]
        assert rows.loc[name, "face seconds"] == pytest.approx(library.set_index("name").loc[name, "face_seconds"])


def test_library_filters(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    at = _app(monkeypatch, demo_cache, emotion="sad", evidence="1")
    table = at.dataframe[0].value
    assert table["status"].iloc[-1] == "failed"  # failed ads have no score: listed last
    scores = table["rank score"].dropna().tolist()
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    # the score filter keeps the ranked ads whose rank score is in the range
    middle = float(np.median(scores))
    at.slider(key="lib-score").set_value((0.0, round(middle, 2) + 0.001)).run()
    kept = at.dataframe[0].value["rank score"].dropna().tolist()
    assert kept == [x for x in scores if x <= round(middle, 2) + 0.001] and 0 < len(kept) < 3
    at.slider(key="lib-score").set_value((0.0, 1.0)).run()
    at.text_input(key="lib-name").set_value("MEGA").run()
    assert at.dataframe[0].value["name"].tolist() == ["Megamind.avi"]
    at.text_input(key="lib-name").set_value("").run()
    at.multiselect(key="lib-status").set_value(["failed"]).run()
    assert at.dataframe[0].value["name"].tolist() == [BROKEN]


def test_minimum_evidence_changes_what_is_ranked(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    library = _library(demo_cache)
    frames = library.set_index("name")["face_frames"]
    at = _app(monkeypatch, demo_cache, emotion="happy")
    default = norms.DEFAULT_MIN_FACE_FRAMES
    assert at.number_input(key="lib-evidence-frames").value == default
    ranked = set(at.dataframe[0].value.dropna(subset=["rank"])["name"])
    assert ranked == {n for n, f in frames.items() if f >= default}
    thin = int(((library["status"] == "ok") & (library["face_frames"] < default)).sum())
    assert thin > 0 and any(f"too little evidence to rank: {thin} ad" in c.value for c in at.caption)
    # one face frame is enough: every ad with a face is ranked, in queries.rank's order for that minimum
    at.number_input(key="lib-evidence-frames").set_value(1).run()
    table = at.dataframe[0].value
    assert table["name"].tolist() == queries.rank(library, "happy", min_face_frames=1)["name"].tolist()
    assert set(table.dropna(subset=["rank"])["name"]) == {n for n, f in frames.items() if f >= 1}
    assert at.query_params["evidence"] == "1" and at.query_params["per"] == "frames"
    # in seconds with a face: 4 s at the demo's 2 frames/s is 8 face frames
    at = _app(monkeypatch, demo_cache, emotion="happy", per="seconds", evidence="4")
    table = at.dataframe[0].value
    assert table["name"].tolist() == queries.rank(library, "happy", min_face_frames=8)["name"].tolist()
    assert any("4 s with a face = 8 face frames" in c.value for c in at.caption)
    # switching units starts from the default, not from the other unit's number
    at.radio(key="lib-evidence-unit").set_value("frames").run()
    assert at.number_input(key="lib-evidence-frames").value == default
    assert at.dataframe[0].value["name"].tolist() == queries.rank(library, "happy")["name"].tolist()


def test_library_shows_percentiles_and_lifts(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    library = _library(demo_cache).set_index("name")
    at = _app(monkeypatch, demo_cache, emotion="sad")
    table = at.dataframe[0].value.set_index("name")
    ok = library[library["status"] == "ok"].index
    enough = library.loc[ok, "face_frames"] >= norms.DEFAULT_MIN_FACE_FRAMES
    assert enough.any() and not enough.all()
    # a percentile only for an ad with enough evidence: it is a standing in the library
    assert table.loc[enough[enough].index, "percentile"].notna().all()
    assert table.loc[enough[~enough].index, "percentile"].isna().all()
    assert np.allclose(table.loc[ok, "percentile"], library.loc[ok, "pct_sad"], equal_nan=True)
    assert np.allclose(table.loc[ok, "lift"], library.loc[ok, "lift_sad"])
    # the lifted dominant; "—" for an ad with too little evidence to name one
    assert table.loc[ok, "dominant"].tolist() == library.loc[ok, "dominant"].fillna("too little evidence").tolist()
    assert table.loc[ok, "raw top emotion"].tolist() == library.loc[ok, "dominant_raw"].tolist()


def test_norms_from_another_cache(monkeypatch: pytest.MonkeyPatch, demo_cache: Path, archive: Path,
                                  tmp_path: Path) -> None:
    own, against = _library(demo_cache).set_index("name"), _library(demo_cache, archive).set_index("name")
    assert not np.allclose(own.loc["Megamind.avi", "pct_happy"], against.loc["Megamind.avi", "pct_happy"])
    for at in (_app(monkeypatch, demo_cache, emotion="happy", norms=str(archive)),  # the link
               _app(monkeypatch, demo_cache, emotion="happy", argv=("--norms", str(archive)))):  # the command line
        assert not at.exception and not at.warning
        assert at.radio(key="lib-norms-source").value == "another cache"
        table = at.dataframe[0].value.set_index("name")
        assert table.loc["Megamind.avi", "percentile"] == pytest.approx(against.loc["Megamind.avi", "pct_happy"])
        assert table.loc["Megamind.avi", "lift"] == pytest.approx(against.loc["Megamind.avi", "lift_happy"])
        assert any(f"against the ads of {archive}" in c.value.replace("\\", "") for c in at.caption)
    # back to this cache from the sidebar; the link says so
    at.radio(key="lib-norms-source").set_value("this cache").run()
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["Megamind.avi", "percentile"] == pytest.approx(own.loc["Megamind.avi", "pct_happy"])
    assert at.query_params["norms"] == ""
    # a folder that is not a cache: one clear line, and this cache's norms
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "nowhere", tmp_path / "empty"):
        at = _app(monkeypatch, demo_cache, emotion="happy", norms=str(bad))
        assert not at.exception
        assert len(at.warning) == 1 and "using this cache's norms" in at.warning[0].value
        table = at.dataframe[0].value.set_index("name")
        assert table.loc["Megamind.avi", "percentile"] == pytest.approx(own.loc["Megamind.avi", "pct_happy"])


def test_emotion_mix_counts_the_lifted_dominant(monkeypatch: pytest.MonkeyPatch, demo_cache: Path) -> None:
    library = _library(demo_cache)
    ok = library[library["status"] == "ok"]
    at = _app(monkeypatch, demo_cache)
    mix = _figure(at)
    bars = dict(zip(mix["data"][0]["x"], mix["data"][0]["y"]))
    lifted = ok["dominant"].dropna().value_counts()
    assert {e: n for e, n in bars.items() if n and e != "too little evidence"} == lifted.to_dict()
    assert bars["too little evidence"] == int(ok["dominant"].isna().sum()) > 0
    assert "lift" in mix["layout"]["title"]["text"]
    assert sum(bars.values()) == len(ok)  # every indexed ad counted once, no placeholder numbers


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
    at = _app(monkeypatch, demo_cache, "views/ad.py", ad=key, t=f"{time_s:.3f}", signals="all")
    assert not at.exception
    figure = _figure(at)
    # the face emotions (the soundtrack's lanes, on their own panel, carry meta "audio: <signal>")
    lines = [t for t in figure["data"] if t.get("mode") == "lines+markers" and not str(t.get("meta", "")).startswith(
        "audio: ")]
    assert [t["name"] for t in lines] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert len(lines[0]["x"]) == len(timeline.times)
    assert lines[0]["marker"]["opacity"] == 0  # invisible markers make points clickable
    shot_lines = [s for s in figure["layout"].get("shapes", []) if s.get("line", {}).get("dash") == "dot"]
    assert len(shot_lines) == len(timeline.shots) == 3
    assert any(t["name"] == "explained" for t in figure["data"])
    assert any(f"The moment at {time_s:.1f} s" in h.value for h in at.subheader)
    # the explanation view: both methods' overlays and their figures
    assert len(at.get("image")) >= 4
    with Store(demo_cache, readonly=True) as store:
        frame = store.explanation(key, index)
    emotion = at.selectbox(key="ad-emotion").value
    shown = [m.value.replace("\\", "") for m in at.markdown]
    for method in ("lime", "shap"):  # each method's trust figures, in emocore.trust's words
        lines = describe(TrustFigures.from_dict(frame.attribution(emotion, method).figures))
        assert any(lines[0] in m and lines[-1] in m for m in shown)
    at.slider(key="ad-opacity").set_value(0.2).run()
    assert at.query_params["opacity"] == "0.2" and not at.exception


def test_ad_page_shows_percentiles_lifts_and_evidence(monkeypatch: pytest.MonkeyPatch, demo_cache: Path,
                                                     archive: Path) -> None:
    key = _keys(demo_cache)["Megamind.avi"]
    for norms_param, other in (("", None), (str(archive), archive)):
        at = _app(monkeypatch, demo_cache, "views/ad.py", ad=key, norms=norms_param)
        assert not at.exception
        with Store(demo_cache, readonly=True) as store:
            standing = queries.ad_norms(store, key, None if other is None else norms.load_norms_from(other))
        table = next(df.value for df in at.dataframe if "percentile" in df.value.columns).set_index("emotion")
        for e in standing.emotions:
            shown = table.loc[e.emotion, ["percentile", "lift", "mean"]].to_numpy(dtype=float)
            assert np.allclose(shown, [np.nan if v is None else v for v in (e.percentile, e.lift, e.mean)],
                               atol=1e-6, equal_nan=True)
        assert table["percentile"].notna().sum() >= 2
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Face frames"] == str(standing.face_frames)
        assert metrics["Dominant"] == (standing.dominant or "—")
        assert metrics["Raw top emotion"] == standing.dominant_raw
        assert any(f"{standing.face_seconds:.1f} s with a face" in c.value for c in at.caption)
        # short metric values: nothing to cut off at the default width
        assert all(len(m.value) <= 12 for m in at.metric)


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
    assert {"first of the 3 highest sad peaks at (s)", "peak emotion (highest peak)", "sad mean"} <= set(
        differences.columns)
    at.radio(key="cmp-align").set_value("seconds").run()
    assert _figure(at, 0)["layout"]["xaxis"]["title"]["text"] == "seconds"
    # the profiles as percentiles in the library
    at.radio(key="cmp-profile-shows").set_value("percentile in the library").run()
    assert at.query_params["profile"] == "pct" and not at.exception
    library = _library(demo_cache).set_index("name")
    profile = _figure(at, 1)
    labels = profile["data"][0]["x"]
    assert profile["data"][0]["y"] == pytest.approx([library.loc["Megamind.avi", f"pct_{e}"] for e in labels])
    assert "percentile" in profile["layout"]["yaxis"]["title"]["text"]
    assert at.dataframe[0].value["sad percentile"].tolist() == pytest.approx(
        [library.loc[n, "pct_sad"] for n in ("Megamind.avi", "carphone.mp4")])


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
