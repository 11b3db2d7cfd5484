"""The browser harness (tests/browser.py) against the real dashboard and a small throw-away app.

Needs Debian's chromium (`apt-get install -y chromium`); slow, so run with `--slow`.
"""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import browser as b
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}

TOY_APP = textwrap.dedent('''
    import plotly.graph_objects as go
    import streamlit as st

    xs = list(range(30))
    ys = [(x * 7) % 11 for x in xs]
    invisible = dict(marker=dict(opacity=0))
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines+markers", marker=dict(size=8, opacity=0),
                               selected=invisible, unselected=invisible))
    event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="curve")
    points = event.selection.points if event else []
    st.text(f"picked={[p.get('point_index') for p in points]}")

    colour = st.selectbox("Colour", ["red", "green"] + [f"shade {i}" for i in range(80)], key="colour")
    st.text(f"colour={colour}")
    name = st.text_input("Name", key="name")
    st.text(f"name={name}")
    st.session_state.setdefault("clicks", 0)
    if st.button("Go", key="go"):
        st.session_state.clicks += 1
    st.text(f"clicks={st.session_state.clicks}")
    st.download_button("PNG", data="name,score\\nMegamind.avi,0.5\\n\\"a, b\\",1\\n".encode(),
                       file_name="scores.csv", mime="text/csv", key="scores-csv")
    st.download_button("JSON", data=b'{"ok": true}', file_name="ok.json", key="ok-json", on_click="ignore")
''')


@pytest.fixture(scope="module")
def real_cache(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> Path:
    """The demo ads indexed by the real model through the CLI, without explanations: ~10 s."""
    cache = tmp_path_factory.mktemp("browser-cache")
    done = subprocess.run([sys.executable, "cli.py", "index", str(demo_dir), "--cache", str(cache), "--no-explain"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return cache


@pytest.fixture(scope="module")
def toy_url(tmp_path_factory: pytest.TempPathFactory):
    """One server for the throw-away app, shared by the tests below."""
    script = tmp_path_factory.mktemp("toy-app") / "toy.py"
    script.write_text(TOY_APP)
    with b.streamlit_server(script=script) as url:
        yield url


@pytest.fixture(scope="module")
def shared_page():
    with b.chromium_page() as page:
        yield page


@pytest.fixture
def page(shared_page):
    """The module's browser page, checked after the test: no exception shown, no JS error."""
    b.clear_page_errors(shared_page)
    yield shared_page
    try:
        b.assert_no_exception(shared_page)
        b.assert_no_page_errors(shared_page)
    finally:  # leave the app before its server stops, or the reconnect attempts log errors
        shared_page.goto("about:blank")


@pytest.fixture
def toy(toy_url: str, page):
    """The throw-away app in a fresh session (a new page load)."""
    b.goto_app(page, toy_url)
    return page


@pytest.fixture
def empty_url(tmp_path: Path):
    with b.streamlit_server(tmp_path / "no-cache") as url:
        yield url


@pytest.fixture
def library_url(real_cache: Path):
    with b.streamlit_server(real_cache) as url:
        yield url


# The server fixtures come before `page`, so that the page is checked while its server still runs.
def test_empty_cache_shows_the_command(empty_url: str, page) -> None:
    b.goto_app(page, empty_url)
    b.wait_for_text(page, "python cli.py index")


def test_library_lists_the_ads(library_url: str, page, demo_dir: Path) -> None:
    names = sorted(p.name for p in demo_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    assert names
    b.goto_app(page, library_url)
    b.wait_for_text(page, "Library")
    # The table is a canvas grid: the names are in its accessible table (textContent).
    for name in names:
        b.wait_for_text(page, name)


def test_click_on_plot_points(toy) -> None:
    b.wait_for_text(toy, "picked=[]")
    # Back to back, in both directions, the first and the last point: each click selects one.
    for index in (5, 17, 0, 29):
        b.click_plot_point(toy, index, key="curve")
        assert toy.get_by_text("picked=").inner_text() == f"picked=[{index}]"


def test_widgets(toy) -> None:
    b.select_option(toy, "Colour", "shade 63")  # far down a virtualised list
    assert toy.get_by_text("colour=").inner_text() == "colour=shade 63"
    b.set_text(toy, "Name", "Ann <b>&")
    assert toy.get_by_text("name=").inner_text() == "name=Ann <b>&"
    b.click_button(toy, "go")
    b.click_button(toy, "go")
    assert toy.get_by_text("clicks=").inner_text() == "clicks=2"


def test_download_saves_the_csv(toy, tmp_path: Path) -> None:
    saved = b.download(toy, "scores-csv", tmp_path)  # its label "PNG" collides with Plotly's own button
    assert saved == tmp_path / "scores.csv"
    with saved.open(newline="") as f:
        assert list(csv.reader(f)) == [["name", "score"], ["Megamind.avi", "0.5"], ["a, b", "1"]]


def test_download_without_rerun(toy, tmp_path: Path) -> None:
    """A download button with on_click="ignore" (as the dashboard's are) sends nothing: no wait."""
    started = time.monotonic()
    saved = b.download(toy, "ok-json", tmp_path)
    assert saved.read_bytes() == b'{"ok": true}'
    assert time.monotonic() - started < 4


def test_download_goes_to_the_pages_folder(toy_url: str, tmp_path: Path) -> None:
    with b.chromium_page(downloads=tmp_path / "got") as page:  # a second browser beside the shared one
        b.goto_app(page, toy_url)
        saved = b.download(page, "scores-csv")
        assert saved == tmp_path / "got" / "scores.csv" and saved.read_bytes().startswith(b"name,score\n")
        b.assert_no_page_errors(page)


def test_page_errors_catch_js_errors_but_not_offline_noise(shared_page) -> None:
    b.clear_page_errors(shared_page)
    shared_page.evaluate("() => { console.error('harness-probe'); setTimeout(() => { throw new Error('boom') }); }")
    shared_page.wait_for_timeout(200)
    errors = b.page_errors(shared_page)
    b.clear_page_errors(shared_page)
    assert any("harness-probe" in e for e in errors) and any("boom" in e for e in errors), errors
    assert b._is_noise("Failed to load resource: net::ERR_NAME_NOT_RESOLVED",
                       "https://fonts.gstatic.com/s/i/short-term/release/materialsymbolsrounded/movie/default/24px.svg")
    assert not b._is_noise("Failed to load resource: net::ERR_CONNECTION_REFUSED", "http://127.0.0.1:8501/_stcore/health")


def test_server_skips_a_taken_port(toy_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A taken port makes the new server exit while the old one answers: not mistaken for ours."""
    taken = int(toy_url.rsplit(":", 1)[1])
    ports = iter([taken])
    real_free_port = b.free_port
    monkeypatch.setattr(b, "free_port", lambda: next(ports, None) or real_free_port())
    script = tmp_path / "hello.py"
    script.write_text("import streamlit as st\nst.write('hello')\n")
    with b.streamlit_server(script=script) as url:
        assert url != toy_url and b._health(url)


def test_server_failure_shows_its_output(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match="server output") as failed:
        with b.streamlit_server(script=tmp_path / "missing.py", timeout=30):
            pass
    assert "missing.py" in str(failed.value)


def test_free_port_is_free() -> None:
    port = b.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
