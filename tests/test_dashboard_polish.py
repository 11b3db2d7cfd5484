"""The dashboard's rough edges (AppTest): missing values in words on every page, key-prefix links, the
timeline's top three signals, and the read-only mode. A SYNTHETIC cache written through Store: ads with
exactly known soundtracks (tests/test_dashboard_audio.py), one with no face, and one failed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_dashboard_audio import LABELS, write_audio_cache

from emocore.store import NewAd, Store, Timeline
from pages import ad_keys as _keys, open_page as _app

PAGES = (None, "views/ad.py", "views/compare.py", "views/versions.py")
#: what a missing value must never read as
RAW_MISSING = re.compile(r"\b(None|nan|NaN|NaT|<NA>)\b")


@pytest.fixture(scope="module")
def odd_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The soundtrack cache (lanes, no audio track, failed soundtrack, not analysed) plus an ad whose frames
    hold no face and an ad that failed to index."""
    root = write_audio_cache(tmp_path_factory.mktemp("odd-cache"))
    times = np.arange(24) / 2.0
    nan = np.full((len(times), len(LABELS)), np.nan)
    with Store(root) as store:
        store.write_ad(NewAd(
            key="faceless00", content_hash="f" * 64, params_hash="p" * 64, params={}, name="landscape.mp4",
            path="/nowhere/landscape.mp4", size_bytes=1, model="fer", model_version="synthetic", labels=LABELS,
            info={"duration_s": 12.0, "has_audio": False},
            timeline=Timeline(times=times, raw=nan, smoothed=nan, faces=np.zeros(len(times), np.int64),
                              boxes=((0.0, 0.0, 0.0, 0.0, 0.0),) * len(times), shots=()),
            emotions=(), face_coverage=0.0, dominant_raw=None, face_frames=0, face_seconds=0.0,
        ))
        store.write_ad(NewAd(
            key="failed0000", content_hash="e" * 64, params_hash="p" * 64, params={}, name="broken.mp4",
            path="/nowhere/broken.mp4", size_bytes=1, model="fer", model_version="synthetic", labels=LABELS,
            status="failed", error="not a readable video (moov atom not found)",
        ))
    return root




def _shown(at: AppTest) -> list[str]:
    """Every text the page shows: text elements, metric values, and each table cell as st.dataframe draws it
    (a missing cell draws as its placeholder when one is set, else as "None")."""
    texts = [str(e.value) for kind in ("markdown", "caption", "info", "warning", "error", "subheader", "title",
                                       "text", "code") for e in getattr(at, kind)]
    texts += [f"{m.label}: {m.value}" for m in at.metric]
    for frame in at.dataframe:
        placeholder = frame.proto.placeholder if frame.proto.HasField("placeholder") else None
        table = frame.value
        for column in table.columns:
            if column in ("thumbnail", "open"):
                continue
            for value in table[column]:
                missing = value is None or (not isinstance(value, str) and bool(np.all(pd_isna(value))))
                texts.append(str(placeholder) if missing and placeholder is not None else
                             "None" if missing else str(value))
    return texts


def pd_isna(value: object) -> object:
    import pandas as pd

    return pd.isna(value)


def _raw_missing(texts: list[str]) -> list[str]:
    return [t for t in texts if RAW_MISSING.search(t.replace("\\", ""))]


@pytest.mark.parametrize("page", PAGES)
def test_no_page_shows_none_nan_or_nat(monkeypatch: pytest.MonkeyPatch, odd_cache: Path, page: str | None) -> None:
    at = _app(monkeypatch, odd_cache, page)
    assert not at.exception
    assert not _raw_missing(_shown(at))


@pytest.mark.parametrize("name", ["landscape.mp4", "silent film.mp4", "broken sound.mp4", "not analysed.mp4",
                                  "broken.mp4", "long laugh.mp4"])
def test_no_ad_page_shows_none_nan_or_nat(monkeypatch: pytest.MonkeyPatch, odd_cache: Path, name: str) -> None:
    at = _app(monkeypatch, odd_cache, "views/ad.py", ad=_keys(odd_cache)[name])
    assert not at.exception
    shown = _shown(at)
    assert not _raw_missing(shown), _raw_missing(shown)
    if name == "landscape.mp4":
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Dominant"] == "no face" and metrics["Raw top emotion"] == "no face"
        assert "1 shot." in " ".join(shown)  # not "1 shots"


@pytest.mark.parametrize("signal", ["happy", "audio:laughter"])
def test_compare_with_a_faceless_and_a_silent_ad_shows_no_none(monkeypatch: pytest.MonkeyPatch, odd_cache: Path,
                                                               signal: str) -> None:
    keys = _keys(odd_cache)
    at = _app(monkeypatch, odd_cache, "views/compare.py", emotion=signal,
              ads=",".join([keys["landscape.mp4"], keys["silent film.mp4"], keys["long laugh.mp4"]]))
    assert not at.exception
    shown = _shown(at)
    assert not _raw_missing(shown), _raw_missing(shown)


def test_the_library_says_what_missing_values_mean(monkeypatch: pytest.MonkeyPatch, odd_cache: Path) -> None:
    at = _app(monkeypatch, odd_cache)
    frame = at.dataframe[0]
    assert frame.proto.placeholder == "—"
    rows = frame.value.set_index("name")
    assert rows.loc["landscape.mp4", "dominant"] == "no face"
    assert rows.loc["landscape.mp4", "raw top emotion"] == "no face"
    assert rows.loc["broken.mp4", "dominant"] == "failed"
    assert rows.loc["broken.mp4", "failure"] == "not a readable video (moov atom not found)"
    assert rows.loc["silent film.mp4", "audio"] == "no audio"
    assert rows.loc["not analysed.mp4", "audio"] == "not analysed"
    assert rows.loc["broken sound.mp4", "audio"] == "audio failed: 12 damaged audio packets"
    # a page holding a failed ad says why under the table too (the failure column is far to the right)
    assert any("Failed on this page: broken.mp4: not a readable video (moov atom not found)" in c.value.replace(
        "\\", "") for c in at.caption)
    # every column that can hold a missing value says what it means
    import json

    helps = {name: c.get("help", "") for name, c in json.loads(frame.proto.columns).items()}
    for column in ("rank", "rank score", "mean (raw)", "percentile", "lift", "sound (s)"):
        assert "—:" in helps[column], column
    assert "too little evidence" in helps["rank"] and "no face" in helps["dominant"]
    assert "not analysed" in helps["audio"] and "no audio" in helps["audio"]


def test_a_key_prefix_in_the_link_opens_the_ad(monkeypatch: pytest.MonkeyPatch, odd_cache: Path) -> None:
    key = _keys(odd_cache)["landscape.mp4"]
    at = _app(monkeypatch, odd_cache, "views/ad.py", ad=key[:6])
    assert not at.exception and not at.warning
    assert at.title[0].value == "landscape\\.mp4"
    assert at.query_params["ad"] == [key] or at.query_params["ad"] == key
    # too short a prefix is not an ad
    at = _app(monkeypatch, odd_cache, "views/ad.py", ad=key[:3])
    assert any("No ad" in w.value for w in at.warning)


def _drawn(at: AppTest) -> set[str]:
    import json

    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    return {t["name"] for t in figure["data"] if t.get("mode") == "lines+markers"}


def test_the_timeline_draws_the_top_three_signals_by_lift(monkeypatch: pytest.MonkeyPatch, odd_cache: Path) -> None:
    import pandas as pd

    from emocore import queries

    key = _keys(odd_cache)["long laugh.mp4"]
    at = _app(monkeypatch, odd_cache, "views/ad.py", ad=key)
    assert not at.exception
    with Store(odd_cache, readonly=True) as store:
        row = queries.library(store).set_index("key").loc[key]
    lifts = {e: row[f"lift_{e}"] for e in LABELS}
    lifts |= {f"audio:{s}": row[queries.audio_column("lift", s)]
              for s in ("laughter", "applause", "music", "speech", "exciting")}
    expected = [ref for ref, _ in sorted(((r, v) for r, v in lifts.items() if not pd.isna(v)),
                                         key=lambda rv: -rv[1])[:3]]
    picker = at.multiselect(key=f"ad-signals-{key}")
    assert picker.value == expected
    names = {"laughter": "laughter", "applause": "applause/cheering", "music": "music", "speech": "speech",
             "exciting": "exciting"}
    drawn = {names[r[6:]] if r.startswith("audio:") else r for r in expected}
    assert _drawn(at) == drawn
    # the others are one click away, and the choice is kept in the link
    picker.set_value([*expected, "neutral"]).run()
    assert "neutral" in _drawn(at)
    assert at.query_params["signals"] in ([",".join([*expected, "neutral"])], ",".join([*expected, "neutral"]))
    at = _app(monkeypatch, odd_cache, "views/ad.py", ad=key, signals="all")
    assert len(_drawn(at)) == len(LABELS) + 5


def test_read_only_hides_the_buttons_that_compute(monkeypatch: pytest.MonkeyPatch, odd_cache: Path) -> None:
    key = _keys(odd_cache)["long laugh.mp4"]
    at = _app(monkeypatch, odd_cache, "views/ad.py", ad=key, t="4.5")
    assert not at.exception
    computing = {"ad-explain-now", "ad-audio-explain-now"}
    assert computing & {b.key for b in at.button}  # offered when not read-only
    at = _app(monkeypatch, odd_cache, "views/ad.py", argv=("--read-only",), ad=key, t="4.5")
    assert not at.exception
    assert not computing & {b.key for b in at.button}
    assert any("Read-only" in i.value for i in at.sidebar.info)
    assert "python cli.py explain" in " ".join(c.value for c in at.code)
