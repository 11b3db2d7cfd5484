"""Turn charts and tables into files for decks, and sections into one self-contained report.

Contract:
- `figure_bytes(fig, fmt)` renders a Plotly figure as PNG, SVG or PDF (through kaleido and one
  headless Chromium kept open for the whole process) or as a standalone HTML page that works
  offline (plotly.js embedded, no CDN). Exports never change the caller's figure: a figure whose
  template is empty or Streamlit's (which `import streamlit` makes the default, and whose colours
  are placeholders the Streamlit front end fills in) is exported with `plotly_white`; any other
  template is kept.
- `table_csv(frame)` is the table as UTF-8 CSV with a header; the index is written only if named.
- `report_html(title, sections, footer)` is one HTML file with no external reference at all:
  interactive charts (plotly.js embedded once for every chart), and, when `static`, the same charts
  as embedded SVG images that replace them when printed; images as embedded PNG; tables as HTML
  tables. Every caller-supplied string is HTML-escaped. `report_pdf(html)` prints it to PDF (A4
  landscape) with headless Chromium.
- Static output (PNG, SVG, PDF, static report charts) needs a Chrome or Chromium browser:
  `BROWSER_PATH` if it names an executable file, else `chromium` (or a usual Chrome name) on PATH.
  Without one these raise `ExportUnavailable`, whose message says what to install; HTML and CSV
  never need a browser. `export_available()` is the cheap check.

Speed: the browser starts lazily on the first static export (~2 s) and then serves every export
of the process (~0.15-0.35 s an image), from any thread. The last `RENDER_CACHE_SIZE` renders are
kept by content, so a rerun that asks for the same chart again gets the bytes back at once.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import hashlib
import html
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from emocore.errors import ExportUnavailable

log = logging.getLogger("emocore")

#: What `figure_bytes` can write; html needs no browser.
FORMATS = ("png", "svg", "pdf", "html")
#: The Debian/Ubuntu command that makes static export available.
INSTALL_HINT = "apt-get install chromium"
#: Browser executables looked for on PATH, in order, when BROWSER_PATH names none.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: The template exports get when the figure has none, or Streamlit's.
EXPORT_TEMPLATE = "plotly_white"
#: Renders kept by content (bytes of PNG/SVG/PDF), newest last.
RENDER_CACHE_SIZE = 64
#: Seconds allowed to start the browser, and to render one image.
START_TIMEOUT = 60.0
RENDER_TIMEOUT = 60.0
#: Seconds allowed to print a report to PDF.
PDF_TIMEOUT = 120.0
#: Size of the static copy of each report chart, in CSS pixels (it is scaled to the page width).
REPORT_CHART_SIZE = (1100, 480)


# --------------------------------------------------------------------------------------------
# Finding the browser


def browser_path() -> str | None:
    """The browser static export uses: BROWSER_PATH if it is an executable file, else one on PATH."""
    return _find_browser(os.environ.get("BROWSER_PATH") or None, os.environ.get("PATH") or "")


def export_available() -> bool:
    """Whether PNG, SVG and PDF export can run: a browser is found (cached lookup, no start-up)."""
    return browser_path() is not None


# Keyed on the two variables it reads, so a changed BROWSER_PATH or PATH is seen at once and the
# usual call is a dictionary lookup.
_browser_cache: dict[tuple[str | None, str], str | None] = {}


def _find_browser(env_path: str | None, search_path: str) -> str | None:
    key = (env_path, search_path)
    if key not in _browser_cache:
        found = None
        if env_path and os.path.isfile(env_path) and os.access(env_path, os.X_OK):
            found = env_path
        else:
            for name in BROWSER_NAMES:
                found = shutil.which(name, path=search_path)
                if found:
                    break
        _browser_cache[key] = found
    return _browser_cache[key]


def _unavailable_message(what: str) -> str:
    env = os.environ.get("BROWSER_PATH")
    where = f"BROWSER_PATH={env!r} is not an executable file and none is on PATH" if env else "none is on PATH"
    return (f"{what} needs a Chromium browser and {where}: install it with `{INSTALL_HINT}` "
            "(Debian/Ubuntu), or set BROWSER_PATH to a Chrome or Chromium executable. "
            "HTML and CSV export work without it.")


def _require_browser(what: str) -> str:
    path = browser_path()
    if path is None:
        raise ExportUnavailable(_unavailable_message(what))
    return path


# --------------------------------------------------------------------------------------------
# One browser for the whole process


class _ChartServer:
    """One kaleido instance (one headless browser, one tab) on its own event-loop thread.

    kaleido's own `start_sync_server` is not used: when its browser fails to start or dies, its
    callers wait forever, and two threads calling it at once can receive each other's images.
    Here each call is a future with a timeout, and kaleido's tab queue serialises the renders.
    """

    def __init__(self, browser: str) -> None:
        import kaleido

        self.browser = browser
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emocore-export", daemon=True)
        self._thread.start()
        # mathjax=False: kaleido would otherwise load MathJax from a CDN on every render.
        self._kaleido = kaleido.Kaleido(n=1, timeout=RENDER_TIMEOUT, mathjax=False, path=browser)
        try:
            self._call(self._kaleido.open(), START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def _call(self, coroutine: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    @property
    def pid(self) -> int:
        """The browser's process id (the same for every export this server makes)."""
        return self._kaleido.subprocess.pid

    def render(self, figure: dict[str, Any], opts: dict[str, Any]) -> bytes:
        return self._call(self._kaleido.calc_fig(figure, opts=opts), RENDER_TIMEOUT + 5)

    def close(self) -> None:
        if self._loop.is_running():
            try:
                self._call(self._kaleido.close(), 10)
            except Exception as error:  # noqa: BLE001 - closing a browser that already died
                log.debug("closing the export browser: %s", error)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


_server: _ChartServer | None = None
_server_lock = threading.Lock()
_closes_at_exit = False


def _chart_server() -> _ChartServer:
    """The process's browser, started on first use (thread-safe)."""
    global _server, _closes_at_exit
    browser = _require_browser("Exporting charts as PNG, SVG or PDF")
    with _server_lock:
        if _server is not None and _server.browser != browser:
            _server.close()
            _server = None
        if _server is None:
            log.debug("starting the export browser %s", browser)
            try:
                _server = _ChartServer(browser)
            except Exception as error:
                raise ExportUnavailable(
                    f"The browser {browser} did not start for chart export "
                    f"({type(error).__name__}: {error.args[0] if error.args else error}); "
                    f"reinstall it with `{INSTALL_HINT}` or set BROWSER_PATH to a working Chrome or Chromium."
                ) from error
            if not _closes_at_exit:
                # Registered after the browser's temporary profile exists: atexit runs handlers last
                # in, first out, so the browser is closed before tempfile's finalizer removes its
                # profile (the other order leaves a traceback "Directory not empty" at exit).
                atexit.register(close_export_browser)
                _closes_at_exit = True
        return _server


def close_export_browser() -> None:
    """Close the export browser if one is open; the next static export starts a new one."""
    global _server
    with _server_lock:
        if _server is not None:
            _server.close()
            _server = None


def _discard_server(server: _ChartServer) -> None:
    global _server
    with _server_lock:
        if _server is server:
            _server = None
    server.close()


# --------------------------------------------------------------------------------------------
# Figures


_render_cache: OrderedDict[str, bytes] = OrderedDict()
_render_cache_lock = threading.Lock()


def _export_dict(fig: go.Figure) -> dict[str, Any]:
    """The figure as a dict with an explicit, exportable template; the figure itself is untouched."""
    if not isinstance(fig, go.Figure):
        raise ValueError(f"expected a plotly.graph_objects.Figure, got {type(fig).__name__}")
    data = fig.to_dict()
    template = data.get("layout", {}).get("template")
    if not template or _is_streamlit_template(template):
        data.setdefault("layout", {})["template"] = pio.templates[EXPORT_TEMPLATE].to_plotly_json()
    return data


def _is_streamlit_template(template: dict[str, Any]) -> bool:
    """Streamlit's template, or one built on it: its colours are placeholders ("#000001"...)."""
    if "streamlit" not in pio.templates:  # registered by `import streamlit`
        return False
    streamlit = pio.templates["streamlit"].to_plotly_json()
    colorway = streamlit.get("layout", {}).get("colorway")
    return template == streamlit or (colorway is not None and template.get("layout", {}).get("colorway") == colorway)


def _check_size(width: int, height: int, scale: float) -> None:
    if int(width) != width or int(height) != height or width < 10 or height < 10:
        raise ValueError(f"width and height must be whole numbers of pixels, at least 10; got {width}×{height}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")


def _render(data: dict[str, Any], fmt: str, width: int, height: int, scale: float) -> bytes:
    opts = {"format": fmt, "width": int(width), "height": int(height), "scale": float(scale)}
    # plotly's encoder writes numpy arrays in full (str() would elide long ones into "...").
    key = hashlib.sha256((pio.to_json(data, validate=False) + json.dumps(opts, sort_keys=True)).encode()).hexdigest()
    with _render_cache_lock:
        if key in _render_cache:
            _render_cache.move_to_end(key)
            return _render_cache[key]
    result = _render_with_retry(data, opts)
    with _render_cache_lock:
        _render_cache[key] = result
        while len(_render_cache) > RENDER_CACHE_SIZE:
            _render_cache.popitem(last=False)
    return result


def _render_with_retry(data: dict[str, Any], opts: dict[str, Any]) -> bytes:
    """Render on the shared browser; a browser that failed (closed, crashed) is replaced once."""
    failure: Exception | None = None
    for _ in range(2):
        server = _chart_server()
        try:
            return server.render(data, opts)
        except TimeoutError as error:
            _discard_server(server)  # stuck: the next export starts a fresh browser
            raise ExportUnavailable(f"The browser took over {RENDER_TIMEOUT:.0f} s to render the chart as "
                                    f"{opts['format']}; it is restarted on the next export") from error
        except Exception as error:
            _discard_server(server)
            if failure is None:
                log.warning("the export browser failed (%s: %s); starting a new one", type(error).__name__, error)
            failure = error
    raise ExportUnavailable(f"The browser failed to render the chart as {opts['format']} "
                            f"({type(failure).__name__}: {failure})") from failure


def figure_bytes(fig: go.Figure, fmt: str, *, width: int = 1100, height: int = 500, scale: float = 2.0) -> bytes:
    """The figure as a file's bytes: png, svg, pdf (through the shared browser) or standalone html.

    width and height are layout pixels; scale multiplies the PNG's pixels (a 1100×500 figure at
    scale 2 is a 2200×1000 PNG). For html, height is the chart's height and its width follows
    the window. Raises ExportUnavailable for png/svg/pdf when no browser is available.
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    _check_size(width, height, scale)
    data = _export_dict(fig)
    if fmt == "html":
        page = pio.to_html(data, include_plotlyjs=True, full_html=True, validate=False,
                           config={"displaylogo": False, "responsive": True},
                           default_width="100%", default_height=f"{int(height)}px")
        return page.encode("utf-8")
    return _render(data, fmt, width, height, scale)


# --------------------------------------------------------------------------------------------
# Tables


def _named_index(frame: pd.DataFrame) -> bool:
    return any(name is not None for name in frame.index.names)


def table_csv(frame: pd.DataFrame) -> bytes:
    """The table as UTF-8 CSV with a header row; the index is a column only if it has a name."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    return frame.to_csv(index=_named_index(frame), lineterminator="\n").encode("utf-8")


# --------------------------------------------------------------------------------------------
# Reports


@dataclass(frozen=True, eq=False)
class ReportSection:
    """One part of a report, drawn in this order: title, text, figures, images, table.

    text is plain text (blank lines separate paragraphs); images are (caption, H×W×3 RGB uint8).
    eq=False: sections hold DataFrames and figures, which have no single truth value of `==`.
    """

    title: str
    text: str = ""
    figures: tuple[go.Figure, ...] = ()
    images: tuple[tuple[str, np.ndarray], ...] = ()
    table: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not isinstance(self.text, str):
            raise ValueError("a report section's title and text must be strings")
        for fig in self.figures:
            if not isinstance(fig, go.Figure):
                raise ValueError(f"report figures must be plotly Figures, got {type(fig).__name__}")
        for item in self.images:
            if len(item) != 2 or not isinstance(item[0], str):
                raise ValueError("report images must be (caption, RGB array) pairs")
            image = np.asarray(item[1])
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
                raise ValueError(f"report image {item[0]!r} must be an H×W×3 RGB uint8 array, "
                                 f"got {image.dtype} array of shape {image.shape}")
        if self.table is not None and not isinstance(self.table, pd.DataFrame):
            raise ValueError(f"a report table must be a pandas DataFrame, got {type(self.table).__name__}")


_CSS = """
@page { size: A4 landscape; margin: 12mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0 auto; max-width: 1180px; padding: 24px 28px; color: #1f2328; background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  "Liberation Sans", "DejaVu Sans", sans-serif; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #d0d7de;
  break-after: avoid; page-break-after: avoid; }
p { margin: 0 0 8px; max-width: 80ch; }
.chart { margin: 10px 0 16px; break-inside: avoid; page-break-inside: avoid; }
.chart-static { display: none; width: 100%; height: auto; }
.images { display: flex; flex-wrap: wrap; gap: 14px; margin: 10px 0 16px; }
figure.image { margin: 0; break-inside: avoid; page-break-inside: avoid; max-width: 100%; }
figure.image img { display: block; max-width: 100%; max-height: 150mm; height: auto;
  border: 1px solid #d0d7de; }
figcaption { font-size: 12px; color: #57606a; margin-top: 4px; max-width: 60ch; }
.table-wrap { overflow-x: auto; margin: 10px 0 16px; }
table.report-table { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
table.report-table th, table.report-table td { border-bottom: 1px solid #d8dee4; padding: 4px 10px;
  text-align: left; vertical-align: top; }
table.report-table th { background: #f3f5f7; text-align: left; }
table.report-table tr { break-inside: avoid; page-break-inside: avoid; }
table.report-table thead { display: table-header-group; }
footer { margin-top: 32px; padding-top: 8px; border-top: 1px solid #d0d7de; font-size: 11.5px;
  color: #57606a; overflow-wrap: anywhere; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  .static .chart-live { display: none; }
  .static .chart-static { display: block; }
  .table-wrap { overflow: visible; }
  .modebar-container { display: none !important; }
}
"""


def _text_html(text: str) -> str:
    paragraphs = [part.strip() for part in text.replace("\r\n", "\n").split("\n\n") if part.strip()]
    return "\n".join("<p>" + html.escape(part).replace("\n", "<br>\n") + "</p>" for part in paragraphs)


def _png_data_uri(image: np.ndarray) -> str:
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("an image could not be encoded as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _chart_html(data: dict[str, Any], chart_id: str, alt: str, static: bool) -> str:
    live = pio.to_html(data, include_plotlyjs=False, full_html=False, validate=False, div_id=chart_id,
                       config={"displaylogo": False, "responsive": True},
                       default_width="100%", default_height=f"{REPORT_CHART_SIZE[1]}px")
    parts = [f'<div class="chart">\n<div class="chart-live">{live}</div>']
    if static:
        width, height = REPORT_CHART_SIZE
        svg = _render(data, "svg", width, height, 1.0)
        # An <img> keeps each SVG's ids and any markup in it apart from the page.
        uri = "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
        parts.append(f'<img class="chart-static" alt="{html.escape(alt)}" src="{uri}" '
                     f'width="{width}" height="{height}">')
    parts.append("</div>")
    return "\n".join(parts)


def _figure_alt(fig: go.Figure, number: int) -> str:
    title = fig.layout.title.text if fig.layout.title is not None else None
    return f"Chart {number}: {title}" if title else f"Chart {number}"


def _section_html(section: ReportSection, number: int, chart_count: int, static: bool) -> tuple[str, int]:
    parts = [f'<section id="section-{number}">', f"<h2>{html.escape(section.title)}</h2>"]
    if section.text:
        parts.append(_text_html(section.text))
    for fig in section.figures:
        chart_count += 1
        parts.append(_chart_html(_export_dict(fig), f"chart-{chart_count}", _figure_alt(fig, chart_count), static))
    if section.images:
        parts.append('<div class="images">')
        for caption, image in section.images:
            parts.append(f'<figure class="image"><img alt="{html.escape(caption)}" src="{_png_data_uri(image)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("</div>")
    if section.table is not None:
        table = section.table.to_html(index=_named_index(section.table), escape=True, border=0,
                                      classes="report-table", na_rep="")
        parts.append(f'<div class="table-wrap">{table}</div>')
    parts.append("</section>")
    return "\n".join(parts), chart_count


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    # The bundle holds no "</script" today; escaping it keeps a future one from ending the tag.
    return get_plotlyjs().replace("</script", "<\\/script")


def report_html(title: str, sections: Sequence[ReportSection], footer: str, *, static: bool | None = None) -> str:
    """One self-contained HTML report: no external fonts, scripts or URLs; prints on A4 landscape.

    static: also embed every chart as an SVG image, shown instead of the interactive chart when
    printed (default: when a browser is available). True without a browser raises
    ExportUnavailable. The footer (e.g. model name and version, cache path) closes the page.
    """
    if not isinstance(title, str) or not isinstance(footer, str):
        raise ValueError("the report's title and footer must be strings")
    sections = tuple(sections)
    for section in sections:
        if not isinstance(section, ReportSection):
            raise ValueError(f"report sections must be ReportSection, got {type(section).__name__}")
    if static is None:
        static = export_available()
    elif static:
        _require_browser("A report with printable (static) charts")
    has_charts = any(section.figures for section in sections)

    body: list[str] = []
    chart_count = 0
    for number, section in enumerate(sections, start=1):
        part, chart_count = _section_html(section, number, chart_count, static)
        body.append(part)

    head = ['<meta charset="utf-8">', '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>"]
    if has_charts:
        head.append(f'<script type="text/javascript">{_plotlyjs()}</script>')
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>", *head, "</head>",
        f'<body class="{"static" if static else "live"}">',
        f"<header><h1>{html.escape(title)}</h1></header>",
        "<main>", *body, "</main>",
        f"<footer>{html.escape(footer)}</footer>",
        "</body>",
        "</html>",
        "",
    ])


def report_pdf(html_text: str, *, timeout: float = PDF_TIMEOUT) -> bytes:
    """The report printed to PDF by headless Chromium (A4 landscape from the report's CSS).

    A report made with static charts prints them as vector SVG; without them Chromium is given a
    virtual-time budget to run plotly.js first. Raises ExportUnavailable without a browser, or
    when the browser fails or runs past `timeout` seconds.
    """
    browser = _require_browser("Exporting a report as PDF")
    with tempfile.TemporaryDirectory(prefix="emocore-pdf-", ignore_cleanup_errors=True) as tmp:
        folder = Path(tmp)
        page = folder / "report.html"
        page.write_text(html_text, encoding="utf-8")
        out = folder / "out.pdf"
        command = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-dev-shm-usage", "--hide-scrollbars",
            f"--user-data-dir={folder / 'profile'}", "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=10000", f"--print-to-pdf={out}", "--no-pdf-header-footer",
            page.as_uri(),
        ]
        # Own session, so a timeout ends the browser's whole process group, helpers included.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise ExportUnavailable(f"The browser took over {timeout:.0f} s to print the report to PDF") from None
        if not out.is_file() or out.stat().st_size == 0:
            tail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
            raise ExportUnavailable(f"The browser {browser} did not print the report (exit code "
                                    f"{process.returncode}): {' | '.join(tail) or 'no message'}")
        return out.read_bytes()
