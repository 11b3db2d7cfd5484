"""Cached reads of the cache for the pages, plus the small helpers every page shares.

Loaders take the cache's version (the database files' modification times) as an argument, so a
running index's new ads appear on the next rerun while unchanged data comes from memory. Nothing
here indexes or loads a model.
"""

from __future__ import annotations

import argparse
import base64
import shlex
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from emocore import norms, queries
from emocore.errors import CacheError, EmocoreError
from emocore.store import DB_NAME, FrameExplanation, Store, thumbnail_path


def _command_line() -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--norms", default=None)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known


def cache_root() -> Path:
    """The cache folder: `--cache DIR` after `--` on the streamlit command line, else `cache/`."""
    return Path(_command_line().cache)


@dataclass(frozen=True)
class NormsChoice:
    """Where the library norms (percentiles, lifts, the lifted dominant) come from."""

    root: Path | None
    """Another cache folder, or None for the browsed cache itself."""
    label: str
    """How pages name it: "this cache" or the other folder's path."""
    problem: str | None = None
    """Why a requested folder could not be used (the page then falls back to this cache), or None."""


def norms_default() -> str:
    """The norms folder of a link without `?norms=`: `--norms DIR` after `--` on the command line, else ""
    (this cache)."""
    return _command_line().norms or ""


def norms_wanted() -> str:
    """The norms folder asked for: the link's `?norms=` ("" = this cache), else `norms_default()`."""
    return st.query_params.get("norms", norms_default())


def resolve_norms(cache: Path, wanted: str | None) -> NormsChoice:
    """The usable norms source for `wanted`: a folder holding an emocore cache with ads scored, or
    this cache (with the reason) when it is empty, missing, not a cache or the browsed cache itself."""
    if not wanted or not wanted.strip():
        return NormsChoice(None, "this cache")
    folder = Path(wanted.strip()).expanduser()
    try:
        if folder.resolve() == cache.resolve():
            return NormsChoice(None, "this cache")
    except OSError:
        pass
    shown = str(folder)
    if not folder.is_dir():
        return NormsChoice(None, "this cache", f"Norms folder {shown} does not exist; using this cache's norms.")
    if not (folder / DB_NAME).is_file():
        return NormsChoice(None, "this cache",
                           f"Norms folder {shown} holds no emocore cache ({DB_NAME}); using this cache's norms.")
    try:
        with Store(folder, readonly=True) as store:
            scored = store.connection.execute("SELECT COUNT(*) FROM ads WHERE status = 'ok'").fetchone()[0]
    except (EmocoreError, sqlite3.Error) as exc:
        return NormsChoice(None, "this cache",
                           f"Norms folder {shown} cannot be read ({exc}); using this cache's norms.")
    if not scored:
        return NormsChoice(None, "this cache", f"Norms folder {shown} holds no indexed ads; using this cache's norms.")
    return NormsChoice(folder, shown)


def cache_version(root: Path) -> int:
    """Changes whenever an index commits (WAL writes touch the -wal file, checkpoints the db)."""
    stamps = [p.stat().st_mtime_ns for p in (root / DB_NAME, root / f"{DB_NAME}-wal") if p.exists()]
    return max(stamps, default=0)


@st.cache_data(show_spinner=False, max_entries=8)
def load_library(root: str, version: int, norms_root: str | None = None, norms_version: int = 0) -> pd.DataFrame:
    """The library table (queries.library), its percentiles and lifts against this cache's own ads,
    or against the ads of the cache at `norms_root` (whose version is part of the cache key)."""
    with Store(root, readonly=True) as store:
        if norms_root is None:
            return queries.library(store)
        with Store(norms_root, readonly=True) as other:
            library_norms = norms.load_norms(other)
        return queries.library(store, library_norms)


def library_for(root: Path, choice: NormsChoice) -> pd.DataFrame:
    """The cached library table of `root` read against the chosen norms."""
    if choice.root is None:
        return load_library(str(root), cache_version(root))
    return load_library(str(root), cache_version(root), str(choice.root), cache_version(choice.root))


@st.cache_data(show_spinner=False, max_entries=64)
def load_bundle(root: str, version: int, key: str) -> queries.AdBundle:
    with Store(root, readonly=True) as store:
        return queries.ad_bundle(store, key)


@st.cache_data(show_spinner=False, max_entries=128)
def load_explanation(root: str, version: int, key: str, frame_idx: int) -> FrameExplanation | str:
    """The frame's explanation, or the reason it cannot be shown (a corrupt or missing one)."""
    try:
        with Store(root, readonly=True) as store:
            return store.explanation(key, frame_idx)
    except EmocoreError as exc:
        return str(exc)


@st.cache_data(show_spinner=False, max_entries=20_000)
def thumbnail_uri(path: str, mtime: int) -> str | None:
    """A data URI of a small JPEG (for image columns), or None when the file is missing."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def thumbnail_for(root: Path, key: str, index: int) -> str | None:
    path = thumbnail_path(root, key, index)
    try:
        return thumbnail_uri(str(path), path.stat().st_mtime_ns)
    except OSError:
        return None


def open_cache_or_explain(root: Path) -> bool:
    """True when a cache is there to read; otherwise shows the command that makes one."""
    try:
        Store(root, readonly=True).close()
    except CacheError as exc:
        st.info(f"{exc}\n\nTo index the demo ads: `python cli.py demo`; your own: `python cli.py index FOLDER "
                f"--cache {root}`")
        return False
    return True


#: Every page's link parameters: a page drops the other pages' ones silently (they follow a page switch).
PAGE_PARAMS = {
    "library": {"emotion", "min", "max", "q", "status", "dmin", "dmax", "order", "page", "evidence", "per", "norms"},
    "ad": {"ad", "t", "emotion", "method", "opacity", "sign", "show", "norms"},
    "compare": {"ads", "emotion", "align", "profile", "norms"},
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
