"""Widget groups the pages share: each `*_ui()` lays out a few widgets and returns what the user chose."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

from loaders import NormsChoice, norms_default, norms_wanted, plain, resolve_norms

from emocore import export

NORMS_SOURCES = ("this cache", "another cache")


@st.cache_data(show_spinner=False, max_entries=256)
def _rendered(figure_json: str, fmt: str) -> bytes:
    return export.figure_bytes(pio.from_json(figure_json), fmt)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "chart"


def export_ui(fig: go.Figure, table: pd.DataFrame | None, name: str, key: str) -> None:
    """Download buttons for a chart: HTML and CSV at once; PNG and SVG rendered on request (cached)."""
    figure_json = fig.to_json()
    slug = _slug(name)
    with st.popover("Export", icon=":material/download:", key=key):
        st.download_button("Interactive HTML", _rendered(figure_json, "html"), f"{slug}.html", "text/html",
                           key=f"{key}-html", on_click="ignore")
        if table is not None:
            st.download_button("Data (CSV)", export.table_csv(table), f"{slug}.csv", "text/csv",
                               key=f"{key}-csv", on_click="ignore")
        if not export.export_available():
            st.caption("PNG and SVG need a browser for rendering: `apt-get install chromium`")
            return
        digest = hashlib.sha1(figure_json.encode()).hexdigest()[:12]
        if st.session_state.get(f"{key}-ready") == digest or st.button("Prepare PNG and SVG", key=f"{key}-prepare"):
            st.session_state[f"{key}-ready"] = digest
            try:
                png, svg = _rendered(figure_json, "png"), _rendered(figure_json, "svg")
            except export.ExportUnavailable as exc:
                st.caption(str(exc))
                return
            st.download_button("Image (PNG)", png, f"{slug}.png", "image/png", key=f"{key}-png", on_click="ignore")
            st.download_button("Vector (SVG)", svg, f"{slug}.svg", "image/svg+xml", key=f"{key}-svg",
                               on_click="ignore")


def chart(fig: go.Figure, table: pd.DataFrame | None, name: str, key: str, **select: object) -> object:
    """A Plotly chart with its export buttons beneath; returns the selection state when `on_select` is given."""
    state = st.plotly_chart(fig, key=key, theme=None, **select)
    export_ui(fig, table, name, f"{key}-export")
    return state


def report_ui(title: str, sections: Callable[[], list[export.ReportSection]], footer: str, key: str,
              view: str) -> None:
    """A one-click report of the view, built on request: HTML always, PDF where a browser is available.

    `view` identifies what the report shows (ads, emotion, alignment…): a report prepared for
    another view is never offered.
    """
    slug = _slug(title)
    stored = st.session_state.get(key)
    if st.button("Prepare report", key=f"{key}-prepare", icon=":material/description:"):
        with st.spinner("Building the report…"):
            try:
                html = export.report_html(title, sections(), footer)
            except export.ExportUnavailable as exc:  # a browser that is there but fails: interactive charts only
                st.caption(str(exc))
                html = export.report_html(title, sections(), footer, static=False)
            pdf = None
            if export.export_available():
                try:
                    pdf = export.report_pdf(html)
                except export.ExportUnavailable as exc:
                    st.caption(str(exc))
            stored = st.session_state[key] = {"view": view, "html": html.encode(), "pdf": pdf}
    if stored and stored["view"] == view:
        left, right = st.columns(2)
        left.download_button("Report (HTML)", stored["html"], f"{slug}.html", "text/html", key=f"{key}-html",
                             on_click="ignore")
        if stored["pdf"]:
            right.download_button("Report (PDF)", stored["pdf"], f"{slug}.pdf", "application/pdf",
                                  key=f"{key}-pdf", on_click="ignore")
        else:
            right.caption("PDF needs a browser: `apt-get install chromium`")


def norms_ui(root: Path, key: str) -> NormsChoice:
    """The sidebar's "Norms from" setting: this cache, or another cache folder typed in (from the link's
    `?norms=`, else `--norms DIR`). A folder that cannot serve gets a one-line warning and this cache."""
    wanted = norms_wanted()
    with st.sidebar:
        source = st.radio("Norms from", NORMS_SOURCES, index=1 if wanted else 0, key=f"{key}-norms-source",
                          horizontal=True,
                          help="Percentiles, lifts and the dominant emotion compare each ad with these ads: this "
                               "cache's own, or another cache's (e.g. last year's archive).")
        folder = ""
        if source == "another cache":
            folder = st.text_input("Norms cache folder", wanted, key=f"{key}-norms-folder",
                                   placeholder="path/to/other/cache")
    choice = resolve_norms(root, folder)
    if choice.problem:
        st.warning(plain(choice.problem), icon="⚠️")
    default = norms_default()
    value = folder.strip() if source == "another cache" else ""
    if value == default:
        st.query_params.pop("norms", None)
    else:
        st.query_params["norms"] = value
    return choice

