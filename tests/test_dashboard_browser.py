"""The dashboard in a real browser (Debian's chromium through Playwright) against `streamlit run`
on a free local port, over a real cache of the demo clips: what only a browser shows."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pandas as pd
import pytest

from browser import (
    assert_no_exception,
    assert_no_page_errors,
    chromium_page,
    click_button,
    click_plot_point,
    download,
    goto_app,
    select_option,
    set_text,
    streamlit_server,
    wait_for_app,
    wait_for_text,
)
from emocore.store import Store
from pages import ad_keys as _keys

pytestmark = pytest.mark.slow

APP_MAIN = '[data-testid="stMain"]'


@pytest.fixture(scope="module")
def served(demo_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """One dashboard server and one browser page for the module (starting them costs seconds)."""
    downloads = tmp_path_factory.mktemp("downloads")
    with streamlit_server(demo_cache) as url, chromium_page(downloads) as page:
        yield url, page, downloads



def test_library_filter_sort_and_open_an_ad(served, demo_cache: Path) -> None:
    url, page, _ = served
    goto_app(page, url)
    wait_for_text(page, "Library")
    for name in ("carphone.mp4", "Megamind.avi", "bigbuckbunny.mp4"):
        wait_for_text(page, name)
    assert_no_exception(page)
    select_option(page, "Rank by", "sad")
    assert "emotion=sad" in page.url
    set_text(page, "Find (name, path or key prefix)", "mega")
    wait_for_text(page, "Shown")
    assert re.search(r"Shown\s*1\b", page.locator('[data-testid="stApp"]').inner_text())
    assert "q=mega" in page.url
    # one click on the row opens the ad
    grid = page.locator('[data-testid="stDataFrame"]').first
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + 36 + 30)
    wait_for_app(page)
    wait_for_text(page, "Megamind.avi")
    wait_for_text(page, "emotions and soundtrack over time")
    assert "/ad" in page.url and f"ad={_keys(demo_cache)['Megamind.avi']}" in page.url
    assert_no_exception(page)
    assert_no_page_errors(page)


def _headers(page, has_text: str) -> list[str]:
    """The column headers of the first dataframe whose text holds `has_text`, as its accessible grid
    gives them (the cells themselves are painted on a canvas)."""
    grid = page.locator('[data-testid="stDataFrame"]').filter(has_text=has_text).first
    grid.wait_for()
    return [h.strip() for h in grid.locator('[role="columnheader"]').all_text_contents()]


def test_library_shows_evidence_and_percentiles(served, demo_cache: Path) -> None:
    """At the default width the ranking's figures and their evidence are on screen, not scrolled away."""
    url, page, _ = served
    goto_app(page, f"{url}/?emotion=happy")
    wait_for_text(page, "too little evidence to rank")
    wait_for_text(page, "Minimum evidence to rank")
    headers = _headers(page, "rank score")
    assert headers[:3] == ["rank", "", "name"] or headers[:2] == ["rank", "name"]
    assert {"rank score", "mean (raw)", "percentile", "lift", "face frames", "face seconds", "dominant",
            "raw top emotion"} <= set(headers)
    grid = page.locator('[data-testid="stDataFrame"]').first
    box, app = grid.bounding_box(), page.locator(APP_MAIN).bounding_box()
    assert box["x"] + box["width"] <= app["x"] + app["width"] + 1  # the table fits the page
    wait_for_text(page, "too little evidence")  # the mix's bucket
    # the ad page: each emotion against the library
    goto_app(page, f"{url}/ad?ad={_keys(demo_cache)['carphone.mp4']}")
    wait_for_text(page, "Against the library")
    assert {"emotion", "mean", "percentile", "lift"} <= set(_headers(page, "percentile"))
    for label in ("Dominant", "Raw top emotion", "Face frames"):
        wait_for_text(page, label)
    assert_no_exception(page)
    assert_no_page_errors(page)


def test_click_a_timeline_point_shows_the_overlays(served, demo_cache: Path) -> None:
    url, page, _ = served
    key = _keys(demo_cache)["Megamind.avi"]
    with Store(demo_cache, readonly=True) as store:
        index, time_s, _ = store.explained_frames(key)[-1]
    goto_app(page, f"{url}/ad?ad={key}&t=0")
    wait_for_text(page, "The moment at 0.0 s")
    click_plot_point(page, index, key="ad-timeline", trace=None)
    wait_for_text(page, f"The moment at {time_s:.1f} s")
    wait_for_text(page, "LIME")
    wait_for_text(page, "SHAP")
    wait_for_text(page, "hiding the top 10%")
    images = page.locator('[data-testid="stImage"] img')
    assert images.count() >= 4
    assert f"t={time_s:.3f}" in page.url
    assert_no_exception(page)


def test_download_png_and_csv_of_the_timeline(served, demo_cache: Path) -> None:
    url, page, downloads = served
    key = _keys(demo_cache)["carphone.mp4"]
    goto_app(page, f"{url}/ad?ad={key}")
    wait_for_text(page, "emotions and soundtrack over time")
    opener = page.locator(".st-key-ad-timeline-export button").first
    opener.click()  # open the Export popover
    csv_path = download(page, "ad-timeline-export-csv", downloads)
    table = pd.read_csv(csv_path)
    assert {"time_s", "faces", "happy_raw", "happy_smoothed", "shot"} <= set(table.columns) and len(table) == 8
    assert "audio_laughter" in table.columns and table["audio_laughter"].isna().all()  # carphone: no audio track
    click_button(page, "ad-timeline-export-prepare")
    png_button = page.locator(".st-key-ad-timeline-export-png button")
    if not png_button.is_visible():
        opener.click()
    png_path = download(page, "ad-timeline-export-png", downloads)
    image = cv2.imread(str(png_path))
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image is not None and image.shape[1] >= 1000
    assert image.mean() > 200  # a white chart, not the blackened streamlit template
    assert_no_exception(page)


def test_compare_two_ads(served, demo_cache: Path) -> None:
    url, page, _ = served
    keys = _keys(demo_cache)
    goto_app(page, f"{url}/compare?ads={keys['Megamind.avi']},{keys['carphone.mp4']}&emotion=sad")
    wait_for_text(page, "sad over time")
    wait_for_text(page, "Emotion profile")
    wait_for_text(page, "Differences")
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 2
    select_option(page, "Emotion or soundtrack signal", "happy")
    wait_for_text(page, "happy over time")
    assert_no_exception(page)
    assert_no_page_errors(page)


def test_no_page_shows_an_exception_on_odd_links(served) -> None:
    url, page, _ = served
    for path in ("/?emotion=nonsense&min=abc&bogus=1", "/ad?ad=does-not-exist&t=zz", "/compare?ads=x,y"):
        goto_app(page, url + path)
        assert_no_exception(page)
    wait_for_text(page, "Not in this cache")


@pytest.fixture(scope="module")
def laughs_cache(demo_dir: Path, face_model, audio_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo ad with a real soundtrack (Megamind footage, real laughter 1.5–5.6 s and applause
    6.5–11.3 s, made by `python cli.py setup`), indexed with faces and soundtrack (no explanations)."""
    import shutil

    from emocore.indexer import index_folder
    from emocore.provision import DEMO_NAME

    clip = demo_dir / DEMO_NAME
    if not clip.is_file():
        pytest.fail(f"{clip} is missing: run `python cli.py setup` first")
    ads = tmp_path_factory.mktemp("laughs-ads")
    shutil.copy(clip, ads / clip.name)
    cache = tmp_path_factory.mktemp("laughs-cache")
    index_folder(ads, cache, model=face_model, explain=None, audio=audio_model)
    return cache


def test_the_ad_page_draws_the_real_soundtrack_lanes(laughs_cache: Path, tmp_path: Path) -> None:
    """A real indexed clip with laughter: the laughter lane is drawn under the faces and peaks in the laugh."""
    from emocore.provision import DEMO_NAME

    key = _keys(laughs_cache)[DEMO_NAME]
    with streamlit_server(laughs_cache) as url, chromium_page(tmp_path) as page:
        # every signal (by default the timeline draws the top three); a first run under load: the lanes are read
        goto_app(page, f"{url}/ad?ad={key}&signals=all", timeout=120_000)
        wait_for_text(page, "emotions and soundtrack over time", timeout=60_000)
        wait_for_text(page, "The soundtrack there", timeout=60_000)
        chart = page.locator('.st-key-ad-timeline [data-testid="stPlotlyChart"] .js-plotly-plot').first
        chart.wait_for()
        legend = [t.strip() for t in chart.locator(".legendtext").all_text_contents()]
        assert {"laughter", "applause/cheering", "music", "speech", "loudness (dBFS)", "happy"} <= set(legend)
        # the drawn traces (`_fullData`: Plotly's decoded copy of the figure's typed arrays)
        traces = chart.evaluate("el => el._fullData.map(t => ({name: t.name, meta: t.meta, x: Array.from(t.x || []),"
                                " y: Array.from(t.y || []).map(v => v === null ? NaN : Number(v))}))")
        laughter = next(t for t in traces if t["meta"] == "audio: laughter" and t["name"] == "laughter")
        inside = [y for x, y in zip(laughter["x"], laughter["y"]) if 1.0 <= x < 6.0 and y == y]
        outside = [y for x, y in zip(laughter["x"], laughter["y"]) if (x < 1.0 or x >= 7.0) and y == y]
        assert inside and max(inside) >= 0.5, laughter
        assert not outside or max(outside) < max(inside)
        wait_for_text(page, "s of sound")
        assert_no_exception(page)
        assert_no_page_errors(page)
