"""Export of charts, tables and reports: synthetic figures and frames, so every value is known.

Tests marked slow start headless Chromium (Debian's `chromium`, or BROWSER_PATH); the others need
no browser and one of them simulates its absence.
"""

from __future__ import annotations

import base64
import html
import io
import re
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from plotly.offline import get_plotlyjs

from emocore import export
from emocore.errors import EmocoreError
from emocore.export import (
    ExportUnavailable,
    ReportSection,
    export_available,
    figure_bytes,
    report_html,
    report_pdf,
    table_csv,
)

XSS = "<script>alert(1)</script>"
#: The opening of the plotly.js bundle (its version banner): present once per embedded copy.
PLOTLYJS_BANNER = get_plotlyjs()[:120]


@pytest.fixture
def line_figure() -> go.Figure:
    """A three-point line chart with markers and a trace name found nowhere else in any page."""
    return go.Figure(go.Scatter(x=[0, 1, 2], y=[0.2, 0.9, 0.4], mode="lines+markers", name="happy-trace-7319"),
                     layout={"title": {"text": "Happy over time"}})


@pytest.fixture
def bar_figure() -> go.Figure:
    """Four touching bars that fill the plot area: black in an export that kept Streamlit's template."""
    return go.Figure(go.Bar(y=[3, 3, 3, 3]), layout={"bargap": 0})


@pytest.fixture
def frame_rgb() -> np.ndarray:
    """A 30×40 RGB frame: left half pure red, right half pure blue."""
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    image[:, :20] = (255, 0, 0)
    image[:, 20:] = (0, 0, 255)
    return image


@pytest.fixture
def streamlit_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`import streamlit`, which makes "streamlit" the default Plotly template; restored afterwards."""
    monkeypatch.setattr(pio.templates, "default", pio.templates.default)  # restored after the test
    import streamlit  # noqa: F401  (registers the template; sets the default on first import only)

    pio.templates.default = "streamlit"


@pytest.fixture
def no_browser(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No browser: BROWSER_PATH names a missing file and PATH holds an empty folder."""
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.fixture
def browser() -> str:
    """The Chromium that static export uses; a slow test without one fails with what to install."""
    path = export.browser_path()
    if path is None:
        pytest.fail("no Chromium browser: install it with `apt-get install chromium` or set BROWSER_PATH")
    return path


def _decode_png(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable PNG"
    return image


def _sections(line_figure: go.Figure, bar_figure: go.Figure, frame_rgb: np.ndarray) -> list[ReportSection]:
    table = pd.DataFrame({"ad": [XSS, "plain ad"], "happy": [0.5, 0.25]})
    return [
        ReportSection(title=f"Ad {XSS}", text=f"First paragraph {XSS}\nsecond line\n\nSecond paragraph",
                      figures=(line_figure,), images=((f"Key frame {XSS}", frame_rgb),), table=table),
        ReportSection(title="Comparison", text="Two ads side by side.", figures=(bar_figure,)),
    ]


# ---------------------------------------------------------------------------------- no browser


def test_html_export_is_standalone_and_offline(line_figure: go.Figure) -> None:
    page = figure_bytes(line_figure, "html").decode("utf-8")
    assert page.count(PLOTLYJS_BANNER) == 1
    assert "happy-trace-7319" in page and "Happy over time" in page
    assert not re.search(r"<script[^>]*\bsrc=", page), "the page loads a script from elsewhere"
    assert "cdn.plot.ly/plotly" not in page


def test_html_export_replaces_streamlit_template(streamlit_default: None) -> None:
    fig = go.Figure(go.Scatter(y=[1, 2, 3]))  # built while "streamlit" is the default
    page = figure_bytes(fig, "html").decode("utf-8")
    assert "#000011" not in page, "Streamlit's placeholder colours were exported"
    assert fig.layout.template == pio.templates["streamlit"], "the caller's figure was changed"


def test_other_templates_are_kept(line_figure: go.Figure) -> None:
    line_figure.update_layout(template="plotly_dark")
    page = figure_bytes(line_figure, "html").decode("utf-8")
    assert pio.templates["plotly_dark"].layout.paper_bgcolor in page


def test_bad_arguments_raise_value_error(line_figure: go.Figure) -> None:
    with pytest.raises(ValueError, match="format"):
        figure_bytes(line_figure, "gif")
    with pytest.raises(ValueError):
        figure_bytes(line_figure, "html", width=0)
    with pytest.raises(ValueError):
        figure_bytes({"data": []}, "html")  # type: ignore[arg-type]


def test_table_csv_round_trips() -> None:
    frame = pd.DataFrame({"ad": ["Café, \"Noël\"", XSS], "happy": [0.125, 0.5], "frames": [3, 4]})
    data = table_csv(frame)
    assert data.decode("utf-8").splitlines()[0] == "ad,happy,frames"  # unnamed index left out
    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(data)), frame)

    named = frame.set_index("ad")
    back = pd.read_csv(io.BytesIO(table_csv(named)), index_col="ad")
    pd.testing.assert_frame_equal(back, named)


def test_report_escapes_every_user_string(line_figure: go.Figure, bar_figure: go.Figure,
                                          frame_rgb: np.ndarray) -> None:
    line_figure.update_traces(name=XSS)
    table = pd.DataFrame({XSS: [1]}, index=pd.Index([XSS], name="ad"))
    sections = [*_sections(line_figure, bar_figure, frame_rgb), ReportSection(title="t", table=table)]
    page = report_html(f"Report {XSS}", sections, f"model {XSS}", static=False)
    assert XSS not in page and "<script>alert" not in page
    escaped = html.escape(XSS)
    # title (twice), section title, text, caption (alt and figcaption), table cell, header, index, footer
    assert page.count(escaped) >= 10
    assert "happy-trace-7319" not in page  # renamed above: the chart holds the escaped name instead


def test_report_embeds_plotlyjs_once_images_and_tables(line_figure: go.Figure, bar_figure: go.Figure,
                                                      frame_rgb: np.ndarray) -> None:
    page = report_html("Weekly ads", _sections(line_figure, bar_figure, frame_rgb), "fer 1.0 · cache/",
                       static=False)
    assert page.count(PLOTLYJS_BANNER) == 1
    assert page.count("Plotly.newPlot(") == 2
    assert "chart-static" not in page.split("</style>", 1)[1]  # no static copies asked for
    assert "fer 1.0 · cache/" in page and "<footer>" in page

    uris = re.findall(r'<figure class="image"><img alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 1
    image = cv2.cvtColor(_decode_png(base64.b64decode(uris[0])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(image, frame_rgb)

    table = re.search(r'<table[^>]*class="[^"]*report-table.*?</table>', page, re.S).group(0)
    headers = [html.unescape(cell) for cell in re.findall(r"<th>(.*?)</th>", table, re.S)]
    cells = [html.unescape(cell) for cell in re.findall(r"<td>(.*?)</td>", table, re.S)]
    assert headers == ["ad", "happy"]  # an unnamed index is left out, as in the CSV
    assert cells == [XSS, "0.50", "plain ad", "0.25"]  # escaped in the page, the text itself when read

    outside_bundle = page.replace(get_plotlyjs(), "")
    assert "http" not in outside_bundle, "the report refers to something online"


def test_report_without_figures_has_no_plotlyjs() -> None:
    page = report_html("Only text", [ReportSection(title="A", text="B")], "f", static=False)
    assert PLOTLYJS_BANNER not in page and "<script" not in page


def test_report_section_checks_its_parts() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        ReportSection(title="t", images=(("grey", np.zeros((4, 4), np.uint8)),))
    with pytest.raises(ValueError, match="Figure"):
        ReportSection(title="t", figures=({"data": []},))  # type: ignore[arg-type]


def test_browser_path_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    fake = tmp_path / "my-chrome"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("BROWSER_PATH", str(fake))
    assert export.browser_path() == str(fake)
    assert export_available()


def test_without_browser_static_export_says_what_to_install(no_browser: None, line_figure: go.Figure,
                                                            bar_figure: go.Figure, frame_rgb: np.ndarray) -> None:
    assert not export_available()
    for fmt in ("png", "svg", "pdf"):
        with pytest.raises(ExportUnavailable, match=re.escape("apt-get install chromium")) as caught:
            figure_bytes(line_figure, fmt)
        assert isinstance(caught.value, EmocoreError)
        assert "BROWSER_PATH" in str(caught.value)
    with pytest.raises(ExportUnavailable, match="apt-get install chromium"):
        report_pdf("<p>x</p>")
    with pytest.raises(ExportUnavailable, match="apt-get install chromium"):
        report_html("r", [ReportSection(title="a", figures=(line_figure,))], "f", static=True)

    # what needs no browser still works, and a report falls back to interactive charts only
    assert figure_bytes(line_figure, "html").lower().startswith(b"<!doctype html>")
    page = report_html("r", _sections(line_figure, bar_figure, frame_rgb), "f")
    assert page.count("Plotly.newPlot(") == 2 and 'class="chart-static"' not in page


# -------------------------------------------------------------------------------- with browser


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_png_has_the_requested_size(browser: str, line_figure: go.Figure, scale: float) -> None:
    data = figure_bytes(line_figure, "png", width=640, height=300, scale=scale)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert _decode_png(data).shape == (int(300 * scale), int(640 * scale), 3)


@pytest.mark.slow
def test_svg_and_pdf(browser: str, line_figure: go.Figure) -> None:
    svg = figure_bytes(line_figure, "svg")
    root = ET.fromstring(svg)
    assert root.tag.rsplit("}", 1)[-1] == "svg"
    assert b"Happy over time" in svg
    assert figure_bytes(line_figure, "pdf").startswith(b"%PDF")


@pytest.mark.slow
def test_export_after_streamlit_import_is_not_dark(browser: str, streamlit_default: None) -> None:
    fig = go.Figure(go.Bar(y=[3, 3, 3, 3]), layout={"bargap": 0})  # gets the "streamlit" template
    image = _decode_png(figure_bytes(fig, "png", width=400, height=300, scale=1))
    dark = (image.max(axis=2) < 60).mean()
    assert image.mean() > 200, "the export came out dark"
    assert dark < 0.01, f"{dark:.0%} of the image is near black: Streamlit's placeholder colours leaked"


@pytest.mark.slow
def test_repeated_exports_reuse_one_browser(browser: str, line_figure: go.Figure) -> None:
    figure_bytes(line_figure, "png")  # starts the browser if this is the first export
    server = export._chart_server()
    times = []
    for value in (0.3, 0.5, 0.7):  # new data each time, so the render cache cannot answer
        fig = go.Figure(line_figure).update_traces(y=[0.2, value, 0.4])
        start = time.perf_counter()
        figure_bytes(fig, "png")
        times.append(time.perf_counter() - start)
    assert export._chart_server() is server and export._chart_server().pid == server.pid
    # A fresh browser costs 2-4 s an image; a kept one ~0.2-0.35 s. The bound is loose on purpose.
    assert min(times) < 1.5, f"repeated exports took {times}"

    start = time.perf_counter()
    assert figure_bytes(fig, "png") == figure_bytes(fig, "png")
    assert time.perf_counter() - start < 1.5


@pytest.mark.slow
def test_exports_from_threads_get_their_own_results(browser: str) -> None:
    figs = [go.Figure(go.Scatter(y=[1, 2, i])) for i in range(4)]
    results: dict[tuple[int, str], bytes] = {}

    def work(i: int, fmt: str) -> None:
        results[i, fmt] = figure_bytes(figs[i], fmt, width=300, height=200, scale=1)

    threads = [threading.Thread(target=work, args=(i, fmt)) for i in range(4) for fmt in ("png", "svg", "pdf")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 12
    for i in range(4):
        assert results[i, "png"].startswith(b"\x89PNG")
        assert results[i, "svg"].startswith(b"<svg")
        assert results[i, "pdf"].startswith(b"%PDF")


@pytest.mark.slow
def test_static_report_and_pdf(browser: str, line_figure: go.Figure, bar_figure: go.Figure,
                               frame_rgb: np.ndarray) -> None:
    page = report_html("Quarterly emotion report", _sections(line_figure, bar_figure, frame_rgb), "fer 1.0")
    assert page.count(PLOTLYJS_BANNER) == 1
    svgs = re.findall(r'class="chart-static"[^>]*src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert len(svgs) == 2
    assert ET.fromstring(base64.b64decode(svgs[0])).tag.endswith("svg")
    assert XSS not in page

    pdf = report_pdf(page)
    assert pdf.startswith(b"%PDF")
    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) is not installed: the PDF's text is not checked")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    assert "Quarterly emotion report" in text
    assert "Happy over time" in text  # the static chart printed as vector text
    assert XSS in text  # shown as text, never run
