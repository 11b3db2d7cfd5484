"""A real-browser harness for the Streamlit dashboard: a server in a subprocess, Debian's chromium
driven by Playwright, and helpers for the interactions the dashboard uses.

Import it from tests (it is a plain module, not a conftest):

    from browser import chromium_page, streamlit_server, wait_for_app, ...

    with streamlit_server(cache) as url, chromium_page() as page:
        goto_app(page, url)
        wait_for_text(page, "Library")
        assert_no_exception(page)
        assert not page_errors(page)

Needs Debian's browser: `apt-get install -y chromium` (Playwright's own browser download does not
work offline). Checked with streamlit 1.67.0, playwright 1.65.2, chromium 156.

Waiting: the app root carries `data-test-script-state` ("initial" before the first run, then
"running" / "notRunning" ...) and `data-test-connection-state` ("CONNECTED"). `wait_for_app`
waits until the script is not running, the connection is up, no spinner or skeleton shows and the
server has sent nothing for a short quiet spell. A quick rerun can go running -> notRunning
within one React render, leaving no trace in the DOM, so the helpers that trigger a rerun first
wait for the server to answer over the WebSocket (counted by a wrapper installed before the app's
scripts; see `expect_rerun`). Still, wait for the element you need (`wait_for_text`): some
elements paint after the script finished.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboard" / "main.py"

APT_COMMAND = "apt-get update && apt-get install -y chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}

APP = '[data-testid="stApp"]'
BUSY = ('[data-testid="stSpinner"], [data-testid="stAppSkeleton"], [data-testid="stSkeleton"], '
        '[data-testid="stStatusWidgetRunningIcon"]')

# What the server says when its port is taken (it exits then; the other server keeps answering).
PORT_TAKEN = re.compile(r"Port \d+ is not available|already in use", re.I)

# Console noise that is harmless offline: the icon font CDN (Material Symbols from fonts.gstatic.com)
# and favicon fetches fail without internet. Failed loads from the app's own server still count.
NOISE_URLS = re.compile(r"^https?://(fonts\.gstatic\.com|fonts\.googleapis\.com)/|favicon", re.I)
DEEP_LINK_PROBE = re.compile(r"://[^/]+/[^_][^/]*/_stcore/(health|host-config)")
OFFLINE_LOAD = re.compile(r"Failed to load resource: net::ERR_(NAME_NOT_RESOLVED|INTERNET_DISCONNECTED|"
                          r"NETWORK_CHANGED|NETWORK_ACCESS_DENIED|PROXY_CONNECTION_FAILED)")


# ---------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (another process may still take it
    before the server binds: `streamlit_server` retries then)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on `port` (Linux /proc), None where /proc/net is not there."""
    found: set[str] = set()
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not any(t.exists() for t in tables):
        return None
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.add(cols[9])
    return found


def _owns_port(pid: int, port: int, log: Path) -> bool:
    """Whether process `pid` is the one listening on `port`: /proc on Linux, else its welcome line."""
    inodes = _listening_inodes(port)
    if inodes is not None:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            fds = None
        if fds is not None:
            for fd in fds:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return True
            return False
    return f":{port}" in log.read_text(errors="replace")


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
            return resp.status == 200 and resp.read().strip() == b"ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen, grace: float = 5) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


@contextmanager
def streamlit_server(cache: Path | None = None, *, script: Path | None = None, timeout: float = 60,
                     extra_args: list[str] | tuple[str, ...] = ()) -> Iterator[str]:
    """Run `streamlit run` on the dashboard (or on `script`) and yield its base URL.

    The dashboard gets `-- --cache <cache>`; a `script` gets it too when `cache` is given, and
    `extra_args` are appended after `--`. The server runs from the repository root, headless, on a
    free port of 127.0.0.1, with no file watcher. It counts as up when `/_stcore/health` answers
    "ok" *and* our process is alive and owns the listening socket (a taken port makes a new server
    exit while the old one keeps answering). Its output goes to a temp file whose tail is in the
    error when it fails. On exit the server is terminated, then killed after 5 s.
    """
    target = Path(script) if script is not None else DASHBOARD
    app_args = (["--cache", str(cache)] if cache is not None else []) + list(extra_args)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="st-server-") as tmp:
        log = Path(tmp) / "streamlit.log"
        last_error = ""
        for _attempt in range(3):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, "-m", "streamlit", "run", str(target),
                   "--server.headless", "true", "--server.port", str(port),
                   "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
                   "--server.fileWatcherType", "none"]
            if app_args:
                cmd += ["--", *app_args]
            with open(log, "wb") as out:
                proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + timeout
                ready = False
                while time.monotonic() < deadline:
                    if proc.poll() is not None:
                        break
                    if _health(url) and proc.poll() is None and _owns_port(proc.pid, port, log):
                        ready = True
                        break
                    time.sleep(0.1)
                if ready:
                    yield url
                    return
                if proc.poll() is None:
                    last_error = f"streamlit did not answer on {url} within {timeout:.0f} s"
                    break
                last_error = f"streamlit exited with code {proc.returncode}"
                if not PORT_TAKEN.search(log.read_text(errors="replace")):
                    break  # a real failure, not a port race: do not retry
            finally:
                _stop(proc)
        pytest.fail(f"{last_error}: {' '.join(cmd)}\n--- server output (tail) ---\n{_tail(log)}")


# ---------------------------------------------------------------------------------------------
# The browser

_ERRORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_DOWNLOADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# Installed before the app's own scripts: counts the WebSocket messages the server sends (every
# rerun answers with some, ending with "script finished") and when the last one came.
_ACTIVITY = """
(() => {
  if (window.__stHarness) return;
  const h = window.__stHarness = {recv: 0, sent: 0, lastRecv: 0};
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => { h.recv += 1; h.lastRecv = performance.now(); });
    }
    send(data) { h.sent += 1; return super.send(data); }
  };
})();
"""


_PW: dict = {"users": 0, "manager": None, "api": None}


@contextmanager
def _playwright():
    """One Playwright driver for the process, shared by overlapping `chromium_page`s (the sync API
    allows only one running at a time in a thread); stopped when the last page closes."""
    from playwright.sync_api import sync_playwright

    if _PW["users"] == 0:
        _PW["manager"] = sync_playwright()
        _PW["api"] = _PW["manager"].__enter__()
    _PW["users"] += 1
    try:
        yield _PW["api"]
    finally:
        _PW["users"] -= 1
        if _PW["users"] == 0:
            manager, _PW["manager"], _PW["api"] = _PW["manager"], None, None
            manager.__exit__(None, None, None)


def _is_noise(text: str, url: str = "") -> bool:
    """A console error from a fetch that only fails because the machine is offline, or from
    Streamlit looking for its endpoints under a deep link's path before the root (/page/_stcore/…)."""
    if NOISE_URLS.search(url) or NOISE_URLS.search(text) or DEEP_LINK_PROBE.search(url or text):
        return True
    host = re.sub(r"^[a-z]+://([^/:]+).*$", r"\1", url, flags=re.I)
    return bool(OFFLINE_LOAD.search(text)) and host not in ("", "127.0.0.1", "localhost")


@contextmanager
def chromium_page(downloads: Path | None = None) -> Iterator:
    """A Playwright page in Debian's headless chromium with a fresh profile, 1400×1000.

    Downloads are accepted; `download` saves them into `downloads` (a temp folder when None).
    Console errors and uncaught page errors are collected for `page_errors`.
    """
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail(f"Debian's chromium is not installed: run `{APT_COMMAND}`")
    with tempfile.TemporaryDirectory(prefix="chromium-") as tmp, _playwright() as pw:
        save_to = Path(downloads) if downloads is not None else Path(tmp) / "downloads"
        save_to.mkdir(parents=True, exist_ok=True)
        context = pw.chromium.launch_persistent_context(
            user_data_dir=str(Path(tmp) / "profile"), executable_path=exe, headless=True,
            args=CHROMIUM_ARGS, accept_downloads=True, viewport=VIEWPORT,
            downloads_path=str(Path(tmp) / "raw-downloads"))
        try:
            context.add_init_script(_ACTIVITY)
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []

            def on_console(msg) -> None:
                if msg.type == "error":
                    where = (msg.location or {}).get("url", "")
                    text = f"console: {msg.text}" + (f" ({where})" if where else "")
                    if not _is_noise(msg.text, where):
                        errors.append(text)

            def on_pageerror(exc) -> None:
                errors.append(f"pageerror: {exc}")

            page.on("console", on_console)
            page.on("pageerror", on_pageerror)
            _ERRORS[page] = errors
            _DOWNLOADS[page] = save_to
            yield page
        finally:
            context.close()


def page_errors(page) -> list[str]:
    """Console errors and uncaught JS errors seen so far, without the offline noise (`NOISE`)."""
    return list(_ERRORS.get(page, []))


def clear_page_errors(page) -> None:
    """Forget the errors seen so far (a page reused by several tests)."""
    _ERRORS.get(page, []).clear()


def assert_no_page_errors(page) -> None:
    errors = page_errors(page)
    assert not errors, "JavaScript errors in the page:\n" + "\n".join(errors)


# ---------------------------------------------------------------------------------------------
# Waiting and checking

_SETTLED = """
([token, settleMs, busy]) => {
  const h = window.__stHarness || {recv: 0, lastRecv: 0};
  const app = document.querySelector('[data-testid="stApp"]');
  const idle = !!app
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && !document.querySelector(busy);
  const now = performance.now();
  if (h.waitToken !== token) { h.waitToken = token; h.busyAt = now; }
  if (!idle) { h.busyAt = now; return false; }
  return now - Math.max(h.busyAt, h.lastRecv) >= settleMs;
}
"""


def activity_mark(page) -> tuple[int, int]:
    """(messages received from the server, messages sent to it) so far: take it before an
    interaction and pass it to `wait_for_app(after=...)` (or use `expect_rerun`)."""
    recv, sent = page.evaluate("() => { const h = window.__stHarness || {recv: 0, sent: 0}; return [h.recv, h.sent] }")
    return recv, sent


def wait_for_app(page, timeout: float = 30_000, *, after: tuple[int, int] | None = None, settle_ms: int = 250,
                 send_grace_ms: int = 1_000) -> None:
    """Wait until the app finished running: script state "notRunning", connected, no spinner or
    skeleton, and no message from the server for `settle_ms`.

    With `after` (an `activity_mark` taken before an interaction): if the page sends the server
    a message within `send_grace_ms` (a widget change asks for a rerun), first wait until the
    server answers, so that a rerun that has not started yet is not taken for a finished one. An
    interaction that sends nothing (no rerun) costs `send_grace_ms`.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    start = time.monotonic()
    if after is not None:
        recv, sent = after
        try:
            page.wait_for_function("s => (window.__stHarness || {sent: 0}).sent > s", arg=sent,
                                   timeout=min(send_grace_ms, timeout), polling=20)
            asked = True
        except PlaywrightTimeout:
            asked = False
        if asked:
            left = max(timeout - (time.monotonic() - start) * 1000, 1_000)
            try:
                page.wait_for_function("r => (window.__stHarness || {recv: 0}).recv > r", arg=recv,
                                       timeout=left, polling=20)
            except PlaywrightTimeout:
                pytest.fail(f"the server did not answer the page within {timeout / 1000:.0f} s")
    left = max(timeout - (time.monotonic() - start) * 1000, 1_000)
    try:
        page.wait_for_function(_SETTLED, arg=[str(time.monotonic_ns()), settle_ms, BUSY],
                               timeout=left, polling=25)
    except PlaywrightTimeout:
        state = page.evaluate(
            "() => { const a = document.querySelector('[data-testid=\"stApp\"]');"
            " return a ? [a.getAttribute('data-test-script-state'), a.getAttribute('data-test-connection-state')] : null }")
        pytest.fail(f"the app did not settle within {timeout / 1000:.0f} s (script state, connection: {state})")


@contextmanager
def expect_rerun(page, timeout: float = 30_000) -> Iterator[None]:
    """`with expect_rerun(page): <interaction>` waits, on leaving, for the rerun it triggers."""
    before = activity_mark(page)
    yield
    wait_for_app(page, timeout, after=before)


def exceptions(page) -> list[str]:
    """Texts of the exceptions (`st.exception` / uncaught) and error alerts on the page."""
    texts = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').all_inner_texts()
    return [t.strip() for t in texts]


def assert_no_exception(page) -> None:
    found = exceptions(page)
    assert not found, "the app shows an error:\n" + "\n---\n".join(found)


def wait_for_text(page, text: str | re.Pattern, timeout: float = 15_000) -> None:
    """Wait until the app's text contains `text` (a substring or a regex)."""
    from playwright.sync_api import expect

    expect(page.locator(APP)).to_contain_text(text, timeout=timeout)


def goto_app(page, url: str, timeout: float = 30_000) -> None:
    """Open the app (url or url + path/query) and wait for its first run to finish."""
    page.goto(url)
    wait_for_app(page, timeout, after=(0, 0), send_grace_ms=timeout)  # the page asks for the first run


# ---------------------------------------------------------------------------------------------
# Widgets


def key_class(key: str) -> str:
    """The CSS class Streamlit gives the container of a widget with `key` (`.st-key-<key>`)."""
    return "st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", key.strip())


def by_key(page, key: str):
    return page.locator(f".{key_class(key)}")


def _widget(page, testid: str, label: str):
    from playwright.sync_api import expect

    label_el = page.locator('[data-testid="stWidgetLabel"]').get_by_text(label, exact=True)
    widget = page.locator(f'[data-testid="{testid}"]').filter(has=label_el)
    expect(widget).to_have_count(1)
    return widget


def select_option(page, label: str, option: str, timeout: float = 30_000) -> None:
    """Pick `option` (its shown text) in the `st.selectbox` labelled `label`; waits for the rerun."""
    box = _widget(page, "stSelectbox", label)
    before = activity_mark(page)
    box.locator('[role="combobox"]').first.click()
    # The list is virtualised: typing filters it so that the option is rendered.
    page.keyboard.type(option)
    page.locator('div[role="option"]').get_by_text(option, exact=True).first.click()
    wait_for_app(page, timeout, after=before)


def set_text(page, label: str, value: str, timeout: float = 30_000) -> None:
    """Type `value` into the `st.text_input` labelled `label` and commit it (Enter); waits for the rerun."""
    box = _widget(page, "stTextInput", label)
    before = activity_mark(page)
    field = box.locator("input")
    field.fill(value)
    field.press("Enter")
    wait_for_app(page, timeout, after=before)


def click_button(page, key: str, timeout: float = 30_000) -> None:
    """Click the `st.button` with widget key `key`; waits for the rerun."""
    before = activity_mark(page)
    by_key(page, key).locator("button").click()
    wait_for_app(page, timeout, after=before)


def download(page, key: str, dest: Path | None = None, timeout: float = 30_000) -> Path:
    """Click the `st.download_button` with widget key `key` and return the saved file (named as
    the app suggests, in `dest` or the page's downloads folder)."""
    before = activity_mark(page)
    with page.expect_download(timeout=timeout) as info:
        by_key(page, key).locator("button").click()
    got = info.value
    failure = got.failure()
    if failure:
        pytest.fail(f"download {key!r} failed: {failure}")
    folder = Path(dest) if dest is not None else _DOWNLOADS[page]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / got.suggested_filename
    got.save_as(path)
    wait_for_app(page, timeout, after=before)  # on_click="rerun" (the default) reruns the app
    return path


# ---------------------------------------------------------------------------------------------
# Plotly

# Where each drawn marker of data point `index` is, per trace: [{curve, x, y}] in page pixels.
# A trace's <g class="trace"> holds Plotly's calcdata (`__data__[0].trace.index` is its curve
# number, the index in `fig.data`); each marker path's `__data__.i` is its index in the data.
_POINT_BOXES = """
(chart, [curve, index]) => {
  const found = [];
  const traces = Array.from(chart.querySelectorAll('.scatterlayer .trace'));
  for (const [n, g] of traces.entries()) {
    const cd = g.__data__;
    const number = cd && cd[0] && cd[0].trace ? cd[0].trace.index : n;
    if (curve !== null && number !== curve) continue;
    const points = Array.from(g.querySelectorAll('.point'));
    const el = points.find(p => p.__data__ && p.__data__.i === index);
    if (!el) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    found.push({curve: number, x: r.left + r.width / 2, y: r.top + r.height / 2});
  }
  const markers = chart.querySelectorAll('.scatterlayer .trace .point').length;
  return {found, traces: traces.length, markers};
}
"""

_HOVERS = """
([gd, curve, index]) => (gd._hoverdata || []).some(
  p => p.pointNumber === index && (curve === null || p.curveNumber === curve))
"""


def plotly_chart(page, key: str | None = None, nth: int = 0):
    """The `st.plotly_chart` with widget key `key`, else the `nth` one on the page."""
    charts = (by_key(page, key) if key else page).locator('[data-testid="stPlotlyChart"]')
    return charts.nth(0 if key else nth)


def click_plot_point(page, index: int, *, key: str | None = None, nth: int = 0, trace: int | None = 0,
                     timeout: float = 30_000) -> None:
    """Click data point `index` (its position in the trace's data) of a chart drawn by
    `st.plotly_chart(..., on_select="rerun", selection_mode="points")` and wait for the rerun.

    `trace` is the trace's index in `fig.data`; None takes point `index` of whichever trace
    Plotly hovers there (for traces sharing the x values, such as a timeline's emotions, where
    lines overlap). The traces need markers (invisible ones do: opacity 0). The click is a real
    mouse click on the marker's centre, made once Plotly hovers that very point; clicking a point
    that is already selected deselects it (Plotly's toggle).
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    chart = plotly_chart(page, key, nth)
    chart.locator(".scatterlayer .trace").first.wait_for(state="attached", timeout=timeout)
    chart.scroll_into_view_if_needed()
    where = chart.evaluate(_POINT_BOXES, [trace, index])
    if not where["found"]:
        why = ("the chart has no markers: clicks need markers (opacity 0 is fine)" if not where["markers"]
               else f"no drawn point {index} in {'any trace' if trace is None else f'trace {trace}'}"
                    f" ({where['traces']} scatter traces)")
        pytest.fail(f"cannot click point {index}: {why}")
    gd = chart.locator(".js-plotly-plot").first.evaluate_handle("gd => gd")
    # Plotly counts a mousedown within `doubleClickDelay` (500 ms) of the previous one as a double
    # click, which clears the selection: let that delay pass since the chart's last mousedown.
    page.wait_for_function(
        "gd => Date.now() - (gd._mouseDownTime || 0) > (gd._context.doubleClickDelay || 500) + 50",
        arg=gd, timeout=5_000, polling=25)
    # Plotly takes the clicked point from its hover data (`gd._hoverdata`): leave the chart so the
    # last hover is cleared, hover the point, wait until Plotly hovers exactly it, then click.
    hovered = []
    for spot in where["found"]:
        page.mouse.move(1, 1)
        page.mouse.move(spot["x"], spot["y"], steps=2)
        try:
            page.wait_for_function(_HOVERS, arg=[gd, trace, index], timeout=2_000, polling=25)
        except PlaywrightTimeout:
            hovered.append(gd.evaluate("gd => (gd._hoverdata || []).map(p => [p.curveNumber, p.pointNumber])"))
            continue
        before = activity_mark(page)
        page.mouse.click(spot["x"], spot["y"])
        wait_for_app(page, timeout, after=before)
        return
    pytest.fail(f"Plotly does not hover point {index} of {'any trace' if trace is None else f'trace {trace}'} "
                f"at its marker; it hovers [trace, point] {hovered} (another trace's point on top? hovermode?)")
