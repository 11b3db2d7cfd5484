"""Widget groups the pages share: each `*_ui()` lays out a few widgets and returns what the user chose;
plus the small helpers every page uses (link parameters, Markdown escaping, the empty-cache message)."""

from __future__ import annotations

import hashlib
import argparse
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

from loaders import NormsChoice, cache_version, load_ads_by_key, load_search, norms_default, resolve_norms

from emocore import export, queries, usecases
from emocore.errors import CacheError
from emocore.trust import TrustFigures, describe

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
        # made when clicked (several MB with plotly.js inside: rendering it on every page run cost 0.1 s)
        st.download_button("Interactive HTML", lambda: _rendered(figure_json, "html"), f"{slug}.html", "text/html",
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


def norms_wanted() -> str:
    """The norms folder asked for: the link's `?norms=` ("" = this cache), else `loaders.norms_default()`."""
    return st.query_params.get("norms", norms_default())


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



@dataclass(frozen=True)
class AdOptions:
    """What an ad picker offers: the chosen ads first, then at most `limit` of the search's matches."""

    keys: tuple[str, ...]
    labels: dict[str, str]
    """Each offered key's label (the name; a failed ad's with its status)."""
    missing: tuple[str, ...]
    """Keys asked for (the link's) that are not in the cache or not of the wanted status."""

    def label(self, key: str) -> str:
        return self.labels.get(key, key)


def ad_search_ui(root: Path, prefix: str, chosen: Sequence[str], *, status: str | None = None,
                 limit: int = queries.SEARCH_LIMIT) -> AdOptions:
    """The search box of an ad picker: the text typed is searched by SQLite (`usecases.search_ads`: name,
    path, key prefix) and at most `limit` matches come back, so the browser never receives every ad's
    name. Returns the options for the page's select box: the `chosen` keys (those in the cache) first."""
    text = st.text_input("Find an ad", key=f"{prefix}-find", placeholder="name, path or key prefix",
                         help="Searches every ad in the cache by name, path or the start of its key; "
                              f"the best {limit} matches are offered below")
    version = cache_version(root)
    found = load_search(str(root), version, text, limit, status)
    named = load_ads_by_key(str(root), version, tuple(k for k in chosen if k))
    present = tuple(m for m in named if status is None or m.status == status)
    known = {m.key for m in present}
    offered = [*present, *(m for m in found.matches if m.key not in known)]
    if text.strip():
        if not found.matches:
            st.caption(f"No ad matches {plain(text.strip())!r}.")
        elif found.more:
            st.caption(f"The best {limit} matches of {plain(text.strip())!r} are offered: type more to narrow.")
        else:
            st.caption(f"{len(found.matches):,} ad{'s' if len(found.matches) != 1 else ''} match "
                       f"{plain(text.strip())!r}.")
    elif found.more:
        st.caption(f"The {limit} newest ads are offered: type a name, path or key prefix to find any other.")
    return AdOptions(tuple(m.key for m in offered), {m.key: m.label for m in offered},
                     tuple(k for k in chosen if k and k not in known))


def trust_ui(figures: TrustFigures) -> None:
    """One attribution's trust figures, in `emocore.trust.describe`'s words (as the CLI and report print them)."""
    lines = describe(figures)
    st.markdown("\n".join(f"- {plain(line)}" for line in lines))


def open_cache_or_explain(root: Path) -> bool:
    """True when a cache is there to read; otherwise shows the command that makes one."""
    try:
        usecases.check_cache(root)
    except CacheError as exc:
        st.info(f"{exc}\n\nTo index the demo ads: `python cli.py demo`; your own: `python cli.py index FOLDER "
                f"--cache {root}`")
        return False
    return True


def empty_cache_note(root: Path) -> None:
    """What to run when the cache holds no ads yet."""
    st.info(f"The cache at `{root}` holds no ads yet: `python cli.py index FOLDER --cache {root}`")


#: Every page's link parameters: a page drops the other pages' ones silently (they follow a page switch).
PAGE_PARAMS = {
    "library": {"emotion", "min", "max", "q", "status", "dmin", "dmax", "order", "page", "size", "evidence", "per",
                "norms"},
    "ad": {"ad", "t", "emotion", "method", "opacity", "sign", "show", "norms", "audio", "signals"},
    "compare": {"ads", "emotion", "align", "profile", "norms"},
    "versions": {"ads", "emotion", "q", "norms"},
}


def warn_unknown_params(page: str) -> None:
    """Drop other pages' link parameters; a visible note (not a traceback) for ones no page knows."""
    known = PAGE_PARAMS[page]
    everyone = set().union(*PAGE_PARAMS.values())
    for name in set(st.query_params.keys()) - known:
        del st.query_params[name]
        if name not in everyone:
            st.warning(f"Ignored unknown link parameter: {plain(name)}", icon="⚠️")


def param_float(name: str, default: float | None = None) -> float | None:
    """A numeric query parameter; a malformed one is reported and ignored."""
    value = st.query_params.get(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        st.warning(f"Link parameter {name}={value!r} is not a number; ignored.")
        return default


def explain_command(path: str, t: float, emotion: str, root: Path) -> str:
    """The exact CLI command that explains a moment, quoted for a POSIX shell."""
    return shlex.join(["python", "cli.py", "explain", path, "--at", f"{t:.2f}", "--emotion", emotion,
                       "--cache", str(root)])


def plain(text: str) -> str:
    """Text safe to put in Markdown: every Markdown/HTML character escaped, shown as typed."""
    return "".join("\\" + c if c in "\\`*_{}[]()#+-.!|<>~$&" else c for c in str(text))


#: The words a missing value reads as, with what each means (the tooltip of the column or metric showing it).
MISSING = {
    "no face": "The face model found no face in the ad's sampled frames: no face emotion to measure",
    "no audio": "The file has no audio track",
    "not analysed": "Not measured: the soundtrack was not read (indexed with --no-audio), or the ad failed",
    "too little evidence": "Too few face frames (or seconds of sound) to rank it or name a dominant emotion",
    "failed": "Indexing failed: the reason is in the failure column",
}


def missing(value: object, words: str = "—") -> str:
    """A value for display: `words` where it is missing (None, NaN, NaT, ""), else the value as text."""
    if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
        return words
    return str(value)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """ "1 shot", "2 shots" (`nouns` for irregular plurals)."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def read_only() -> bool:
    """Whether the dashboard serves read-only: `streamlit run dashboard/main.py -- --read-only` hides every
    button that computes (explanations on demand); what the cache holds is shown as usual."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--read-only", action="store_true")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return bool(known.read_only)


def read_only_note(what: str) -> None:
    """Where a computing button would be: why it is not there."""
    st.caption(f"Read-only dashboard: {what} can be computed with the command above, not here.")
