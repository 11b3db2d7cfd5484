"""Cached reads of the cache for the pages, and the command line the dashboard was started with.

Loaders take the cache's version (`emocore.usecases.cache_version`: the database files' modification
times) as an argument, so a running index's new ads appear on the next rerun while unchanged data
comes from memory. What they read comes from `emocore.usecases` and `emocore.queries`, the same
functions the command line calls. Nothing here draws a widget, indexes, or loads a model.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from emocore import queries, usecases
from emocore.errors import EmocoreError
from emocore.store import FrameExplanation, StoredAudioExplanation, cover_path
from emocore.usecases import NormsChoice, cache_version, resolve_norms

__all__ = ["NormsChoice", "cache_root", "cache_version", "key_frame_image", "library_for", "load_audio_explained", "load_audio_explanation", "load_bundle",
           "load_ads_by_key", "load_explanation", "load_library", "load_search", "norms_default", "resolve_norms", "thumbnail_for", "thumbnail_uri",
           "cover_for"]


def _command_line() -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--cache", default="cache")
    parser.add_argument("--norms", default=None)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known


def cache_root() -> Path:
    """The cache folder: `--cache DIR` after `--` on the streamlit command line, else `cache/`."""
    return Path(_command_line().cache)


def norms_default() -> str:
    """The norms folder of a link without `?norms=`: `--norms DIR` after `--` on the command line, else ""
    (this cache)."""
    return _command_line().norms or ""


@st.cache_resource(show_spinner=False, max_entries=8)
def load_library(root: str, version: int, norms_root: str | None = None, norms_version: int = 0) -> pd.DataFrame:
    """`usecases.library_table`: against this cache's own ads, or against the ads of the cache at
    `norms_root` (whose version is part of the cache key). One table shared by every rerun and session,
    read only (st.cache_data would pickle a copy on every rerun: about 0.2 s at 100,000 ads); the
    pages' filters and rankings make new tables (pandas copy-on-write), never changing it."""
    return usecases.library_table(root, norms_root)


def library_for(root: Path, choice: NormsChoice) -> pd.DataFrame:
    """The cached library table of `root` read against the chosen norms."""
    if choice.root is None:
        return load_library(str(root), cache_version(root))
    return load_library(str(root), cache_version(root), str(choice.root), cache_version(choice.root))


@st.cache_data(show_spinner=False, max_entries=256)
def load_search(root: str, version: int, text: str, limit: int, status: str | None = None) -> queries.AdSearch:
    """`usecases.search_ads`: the ads a picker offers for a search text (at most `limit`, found by SQLite)."""
    return usecases.search_ads(root, text, limit, status=status)


@st.cache_data(show_spinner=False, max_entries=256)
def load_ads_by_key(root: str, version: int, keys: tuple[str, ...]) -> tuple[queries.AdMatch, ...]:
    """`usecases.ads_by_key`: the ads a link names, in its order (keys not in the cache left out)."""
    return usecases.ads_by_key(root, keys)


@st.cache_data(show_spinner=False, max_entries=64)
def load_bundle(root: str, version: int, key: str) -> queries.AdBundle:
    return usecases.ad_bundle(root, key)


@st.cache_data(show_spinner=False, max_entries=64)
def load_audio_explained(root: str, version: int, key: str) -> tuple[int, ...]:
    """The seconds of the ad's soundtrack that have a stored explanation."""
    return usecases.explained_seconds(root, key)


@st.cache_data(show_spinner=False, max_entries=128)
def load_audio_explanation(root: str, version: int, key: str, second: int) -> StoredAudioExplanation | str:
    """The stored explanation of a soundtrack second, or the reason it cannot be shown."""
    try:
        return usecases.stored_audio_explanation(root, key, second)
    except EmocoreError as exc:
        return str(exc)


@st.cache_data(show_spinner=False, max_entries=128)
def load_explanation(root: str, version: int, key: str, frame_idx: int) -> FrameExplanation | str:
    """The frame's explanation, or the reason it cannot be shown (a corrupt or missing one)."""
    try:
        return usecases.stored_explanation(root, key, frame_idx)
    except EmocoreError as exc:
        return str(exc)


def key_frame_image(root: Path, key: str, index: int) -> np.ndarray | None:
    """The stored full-size key frame (RGB), or None when it is missing (`usecases.read_key_frame`)."""
    return usecases.read_key_frame(root, key, index)


@st.cache_data(show_spinner=False, max_entries=20_000)
def thumbnail_uri(path: str, mtime: int) -> str | None:
    """A data URI of a small JPEG (for image columns), or None when the file is missing."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def thumbnail_for(root: Path, key: str, index: int) -> str | None:
    path = usecases.locate(root).thumbnail(key, index)
    try:
        return thumbnail_uri(str(path), path.stat().st_mtime_ns)
    except OSError:
        return None


def cover_for(root: Path, key: str) -> str | None:
    """The ad's cover (its chosen frame, never a blank one when it has another: `emocore.preview.choose_cover`),
    or its first frame for an ad written without a cover."""
    path = cover_path(root, key)
    try:
        return thumbnail_uri(str(path), path.stat().st_mtime_ns)
    except OSError:
        return thumbnail_for(root, key, 0)
