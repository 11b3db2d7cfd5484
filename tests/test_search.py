"""Finding ads at scale: `queries.search_ads` (SQLite: name, path, key prefix, with a limit), the
dashboard's ad pickers built on it (never more options than the limit), and the library's paging.

The cache is SYNTHETIC (written through Store, no video): 130 ads of 10 face frames each, whose names
and paths are chosen to tell the kinds of match apart."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from emocore import queries, usecases
from emocore.scoring import summarise
from emocore.store import NewAd, Store, Timeline
from pages import open_page as _app

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FILLERS = 120
#: name -> path of the ads that are not fillers
NAMED = {
    "Summer sale 15s.mp4": "/campaigns/2026/summer/Summer sale 15s.mp4",
    "summer sale 30s master.mov": "/masters/summer sale 30s master.mov",
    "Winter 100% off.mp4": "/campaigns/winter/Winter 100% off.mp4",
    "a_b test.mp4": "/tests/a_b test.mp4",
    "aXb test.mp4": "/tests/aXb test.mp4",
    "Spring.mp4": "/archive/summer-leftovers/Spring.mp4",
}
BROKEN = "Summer broken.mp4"


def _key(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()[:20]


def _jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((36, 64, 3), 120, np.uint8))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """130 SYNTHETIC ads: the fillers first (oldest), the named ones, then a failed one (newest)."""
    root = tmp_path_factory.mktemp("search-cache")
    rng = np.random.default_rng(12)
    times = np.arange(10) / 2.0
    ads = [(f"filler {i:03d}.mp4", f"/archive/filler/filler {i:03d}.mp4") for i in range(FILLERS)]
    ads += list(NAMED.items())
    jpeg = _jpeg()
    with Store(root) as store:
        for i, (name, path) in enumerate(ads):
            raw = rng.dirichlet(np.ones(len(LABELS)), len(times))
            summary = summarise(times, raw, raw, LABELS, 0.5, sample_rate=2.0)
            store.write_ad(NewAd(
                key=_key(name), content_hash=f"{i:064d}", params_hash="p" * 64, params={}, name=name, path=path,
                size_bytes=1, model="fer", model_version="synthetic", labels=LABELS, info={"duration_s": 5.0},
                timeline=Timeline(times=times, raw=raw, smoothed=raw, faces=np.ones(len(times), np.int64),
                                  boxes=((0.0, 0.0, 64.0, 64.0, 0.99),) * len(times), shots=()),
                emotions=summary.emotions, face_coverage=summary.face_coverage, dominant_raw=summary.dominant_raw,
                face_frames=summary.face_frames, face_seconds=summary.face_seconds,
            ), {0: jpeg})
        store.write_ad(NewAd(key=_key(BROKEN), content_hash="f" * 64, params_hash="p" * 64, params={}, name=BROKEN,
                             path=f"/campaigns/{BROKEN}", size_bytes=1, model="fer", model_version="synthetic",
                             labels=LABELS, status="failed", error="not a readable video"))
    return root


def _search(cache: Path, text: str, limit: int = queries.SEARCH_LIMIT, offset: int = 0,
            status: str | None = None) -> queries.AdSearch:
    return usecases.search_ads(cache, text, limit, offset, status=status)


def _names(found: queries.AdSearch) -> list[str]:
    return [m.name for m in found.matches]


def test_search_by_name_any_case_best_matches_first(cache: Path) -> None:
    found = _search(cache, "SUMMER")
    # name prefixes (by name, any case), then names containing it, then paths containing it
    assert _names(found) == ["Summer broken.mp4", "Summer sale 15s.mp4", "summer sale 30s master.mov", "Spring.mp4"]
    assert [m.matched for m in found.matches] == ["name prefix"] * 3 + ["path contains"]
    assert found.matches[0].status == "failed" and found.matches[0].label == "Summer broken.mp4 (failed)"
    assert not found.more
    exact = _search(cache, "summer sale 15s.MP4")
    assert _names(exact) == ["Summer sale 15s.mp4"] and exact.matches[0].matched == "name"
    assert _names(_search(cache, "sale 30")) == ["summer sale 30s master.mov"]


def test_search_by_path_and_key_prefix(cache: Path) -> None:
    found = _search(cache, "campaigns/2026")
    assert _names(found) == ["Summer sale 15s.mp4"] and found.matches[0].matched == "path contains"
    key = _key("Spring.mp4")
    by_prefix = _search(cache, key[:6])
    assert by_prefix.matches[0].key == key and by_prefix.matches[0].matched == "key prefix"
    whole = _search(cache, key)
    assert [m.key for m in whole.matches] == [key] and whole.matches[0].matched == "key"
    # fewer than KEY_PREFIX characters never match a key by chance
    short = key[:queries.KEY_PREFIX - 1]
    assert all(short.lower() in (m.name + m.path).lower() for m in _search(cache, short).matches)


def test_search_limit_offset_and_more(cache: Path) -> None:
    first = _search(cache, "filler", limit=50)
    assert len(first.matches) == 50 and first.more
    assert _names(first) == [f"filler {i:03d}.mp4" for i in range(50)]
    second = _search(cache, "filler", limit=50, offset=50)
    assert _names(second) == [f"filler {i:03d}.mp4" for i in range(50, 100)] and second.more
    last = _search(cache, "filler", limit=50, offset=100)
    assert len(last.matches) == FILLERS - 100 and not last.more
    with pytest.raises(ValueError, match="limit of at least 1"):
        _search(cache, "filler", limit=0)
    with pytest.raises(ValueError, match="unknown status"):
        _search(cache, "filler", status="gone")


def test_search_takes_wildcards_literally_and_filters_status(cache: Path) -> None:
    assert _names(_search(cache, "100%")) == ["Winter 100% off.mp4"]
    assert _names(_search(cache, "a_b")) == ["a_b test.mp4"]  # "_" is not "any character"
    assert _names(_search(cache, "%")) == ["Winter 100% off.mp4"]
    assert BROKEN not in _names(_search(cache, "summer", status="ok"))
    assert _names(_search(cache, "summer", status="failed")) == [BROKEN]
    assert _search(cache, "no such ad").matches == ()


def test_empty_search_gives_the_newest_and_names_by_key(cache: Path) -> None:
    newest = _search(cache, "  ", limit=3)
    assert _names(newest) == [BROKEN, "Spring.mp4", "aXb test.mp4"] and newest.more
    assert {m.matched for m in newest.matches} == {"newest"}
    named = usecases.ads_by_key(cache, [_key("Spring.mp4"), "nope", _key("filler 007.mp4")])
    assert [m.name for m in named] == ["Spring.mp4", "filler 007.mp4"]


def test_search_scans_the_narrow_index(cache: Path) -> None:
    with Store(cache, readonly=True) as store:
        plan = " ".join(str(row) for row in store.connection.execute(
            "EXPLAIN QUERY PLAN SELECT key, name, path, status FROM ads WHERE name LIKE '%x%' OR path LIKE '%x%'"))
    assert "COVERING INDEX ads_search" in plan


def test_library_filter_matches_like_the_search(cache: Path) -> None:
    table = usecases.library_table(cache)
    for text in ("summer", "campaigns/2026", _key("Spring.mp4")[:8], "100%", "a_b", "FILLER 01"):
        expected = {m.key for m in _search(cache, text, limit=500).matches}
        assert set(table["key"][queries.matching(table, text)]) == expected, text


# --- the dashboard -----------------------------------------------------------------------------------



def test_ad_picker_offers_at_most_the_limit_and_searches(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    at = _app(monkeypatch, cache, "views/ad.py")
    assert not at.exception
    picker = at.selectbox(key="ad-pick")
    assert len(picker.options) <= queries.SEARCH_LIMIT + 1 < 131
    at.text_input(key="ad-find").set_value("summer sale").run()
    picker = at.selectbox(key="ad-pick")
    offered = set(picker.options)
    assert {"Summer sale 15s.mp4", "summer sale 30s master.mov"} <= offered and len(offered) <= 3
    picker.set_value(_key("summer sale 30s master.mov")).run()
    assert not at.exception
    assert at.query_params["ad"] == _key("summer sale 30s master.mov")
    assert "summer sale 30s master" in at.title[0].value.replace("\\", "")


def test_ad_deep_link_to_an_ad_beyond_the_first_matches(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    old = _key("filler 003.mp4")  # among the oldest: not in the newest ads offered
    assert old not in {m.key for m in _search(cache, "").matches}
    at = _app(monkeypatch, cache, "views/ad.py", ad=old)
    assert not at.exception
    assert "filler 003" in at.title[0].value.replace("\\", "")
    assert at.selectbox(key="ad-pick").value == old
    assert len(at.selectbox(key="ad-pick").options) <= queries.SEARCH_LIMIT + 1


def test_compare_picker_offers_at_most_the_limit(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    pair = f"{_key('filler 001.mp4')},{_key('Spring.mp4')}"
    at = _app(monkeypatch, cache, "views/compare.py", ads=pair)
    assert not at.exception
    picker = at.multiselect(key="cmp-ads")
    assert picker.value == [_key("filler 001.mp4"), _key("Spring.mp4")]
    assert len(picker.options) <= queries.SEARCH_LIMIT + 2
    assert BROKEN not in picker.options  # only analysed ads can be compared
    at.text_input(key="cmp-find").set_value("winter").run()
    picker = at.multiselect(key="cmp-ads")
    assert set(picker.options) == {"filler 001.mp4", "Spring.mp4", "Winter 100% off.mp4"}


def test_library_pages_in_rank_order(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    ranked = queries.rank(usecases.library_table(cache), "happy")
    at = _app(monkeypatch, cache, emotion="happy")
    assert not at.exception
    assert at.dataframe[0].value["name"].tolist() == ranked["name"].head(50).tolist()
    at.number_input(key="lib-page").set_value(2).run()
    assert at.dataframe[0].value["name"].tolist() == ranked["name"].iloc[50:100].tolist()
    assert at.query_params["page"] == "2"
    at.selectbox(key="lib-page-size").set_value(100).run()
    shown = at.dataframe[0].value["name"].tolist()
    assert shown == ranked["name"].iloc[100:].tolist()  # page 2 of 100 rows: the rest
    at.text_input(key="lib-name").set_value("summer").run()
    found = at.dataframe[0].value["name"].tolist()
    assert sorted(found) == sorted(["Summer sale 15s.mp4", "summer sale 30s master.mov", "Spring.mp4", BROKEN])
