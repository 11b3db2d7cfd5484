"""Helpers for the tests that run the dashboard's pages in Streamlit's AppTest, and read what they drew.

Import it from tests (a plain module, not a conftest):

    from pages import ad_keys, figure, open_page

    at = open_page(monkeypatch, cache, "views/ad.py", ad=ad_keys(cache)["carphone.mp4"])
    spec = figure(at)                      # the first Plotly chart, arrays decoded to lists
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from emocore.store import Store

MAIN = str(Path(__file__).resolve().parent.parent / "dashboard" / "main.py")


def open_page(monkeypatch: pytest.MonkeyPatch, cache: Path, page: str | None = None, *, argv: tuple[str, ...] = (),
              **params: str) -> AppTest:
    """The dashboard on `cache` (plus `argv`, e.g. ("--read-only",)), switched to `page` with `params`
    as its link's query parameters, after its first run."""
    monkeypatch.setattr(sys, "argv", ["main.py", "--cache", str(cache), *argv])
    at = AppTest.from_file(MAIN, default_timeout=120)
    if page:
        at.switch_page(page)
    for name, value in params.items():
        at.query_params[name] = value
    return at.run()


def ad_keys(cache: Path) -> dict[str, str]:
    """Every ad's key, by file name."""
    with Store(cache, readonly=True) as store:
        return {ad.name: ad.key for ad in store.ads()}


def plain(value: object) -> object:
    """Plotly 7 ships arrays as typed binary blocks ({"dtype", "bdata"}): decode them to lists."""
    if isinstance(value, dict):
        if set(value) >= {"dtype", "bdata"}:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            return array.reshape(value["shape"]).tolist() if "shape" in value else array.tolist()
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def figure(at: AppTest, index: int = 0) -> dict:
    """The `index`-th Plotly chart the page drew, as plain JSON."""
    return plain(json.loads(at.get("plotly_chart")[index].proto.spec))
