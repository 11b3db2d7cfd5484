"""The dashboard's polish in a real browser (Debian's chromium through Playwright, a 1400 px wide window)
over the real demo cache: the viewer toolbar, a timeline as wide as the page, a frame's thumbnail on
hover, metrics that fit, and no "None" on any page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser import assert_no_exception, assert_no_page_errors, chromium_page, goto_app, streamlit_server, wait_for_text
from pages import ad_keys as _keys

pytestmark = pytest.mark.slow

#: the page's main column (its content box: the block inside the padding)
MAIN_COLUMN = '[data-testid="stMain"] [data-testid="stMainBlockContainer"] > [data-testid="stVerticalBlock"]'
TIMELINE = '.st-key-ad-timeline .js-plotly-plot'


@pytest.fixture(scope="module")
def served(demo_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    with streamlit_server(demo_cache) as url, chromium_page(tmp_path_factory.mktemp("downloads")) as page:
        yield url, page



def test_the_toolbar_offers_no_deploy(served) -> None:
    url, page = served
    goto_app(page, url)
    wait_for_text(page, "Library")
    toolbar = page.locator('[data-testid="stToolbar"]')
    assert "Deploy" not in (toolbar.inner_text() if toolbar.count() else "")
    assert page.get_by_role("button", name=re.compile("Deploy")).count() == 0
    assert page.title().startswith("emocore")


def test_the_timeline_spans_the_page_and_hover_shows_the_frame(served, demo_cache: Path) -> None:
    url, page = served
    goto_app(page, f"{url}/ad?ad={_keys(demo_cache)['Megamind.avi']}")
    wait_for_text(page, "The moment at")
    chart = page.locator(TIMELINE).first
    chart.wait_for()
    chart.scroll_into_view_if_needed()
    column = page.locator(MAIN_COLUMN).first.bounding_box()
    drawn = chart.bounding_box()
    assert drawn["width"] >= 0.9 * column["width"], (drawn, column)
    # the watcher attaches the hover listener to the drawn chart
    page.wait_for_function("el => el.__emocoreHover === true", arg=chart.element_handle(), timeout=10_000)
    # hover the tenth point of the first face emotion drawn, where Plotly puts its marker
    where = chart.evaluate("""el => {
        const n = el._fullData.findIndex(t => t.mode === 'lines+markers' && !String(t.meta || '').startsWith('audio'));
        const t = el._fullData[n];
        const xa = el._fullLayout[t.xaxis.replace('x', 'xaxis')], ya = el._fullLayout[t.yaxis.replace('y', 'yaxis')];
        let i = 10; while (i < t.x.length && !Number.isFinite(Number(t.y[i]))) i += 1;
        const r = el.getBoundingClientRect();
        return {n, i, t: Number(t.x[i]), x: r.left + xa._offset + xa.l2p(t.x[i]),
                y: r.top + ya._offset + ya.l2p(t.y[i])};
    }""")
    page.mouse.move(1, 1)
    page.mouse.move(where["x"], where["y"], steps=3)
    page.wait_for_function("([gd, n, i]) => (gd._hoverdata || []).some(p => p.curveNumber === n "
                           "&& p.pointNumber === i)", arg=[chart.element_handle(), where["n"], where["i"]], timeout=10_000)
    thumb = page.locator("#emocore-hover-thumb")
    thumb.wait_for(state="visible", timeout=10_000)
    # the thumbnail of the hovered frame (the pointer passed over other points on its way)
    page.wait_for_function("([box, text]) => box.innerText.trim() === text",
                           arg=[thumb.element_handle(), f"frame at {where['t']:.1f} s"], timeout=10_000)
    assert thumb.locator("img").get_attribute("src").startswith("data:image/jpeg;base64,")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.locator("img").element_handle())
    page.mouse.move(1, 1)
    thumb.wait_for(state="hidden", timeout=10_000)
    assert_no_exception(page)
    assert_no_page_errors(page)


@pytest.mark.parametrize("name", ["Megamind.avi", "carphone.mp4", "bigbuckbunny.mp4",
                                  "<img src=x onerror=alert(1)> broken.mp4"])
def test_metrics_fit_and_no_page_shows_none(served, demo_cache: Path, name: str) -> None:
    url, page = served
    goto_app(page, f"{url}/ad?ad={_keys(demo_cache)[name]}")
    wait_for_text(page, "Ad" if "broken" in name else "The moment at")
    cut = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stMetricValue"]'))
        .filter(m => { const d = m.querySelector('div') || m; return d.scrollWidth > d.clientWidth + 1; })
        .map(m => m.innerText)""")
    assert not cut
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert not re.search(r"\b(None|nan|NaN|NaT)\b", text)
    if "broken" in name:  # a failed ad says why, in an error box
        assert "Indexing failed: not a readable video" in text
    else:
        assert_no_exception(page)
