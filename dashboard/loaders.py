"""Cached reads of the cache for the pages. Loaders are keyed by the database file's modification
time, so ads written by a running index appear on the next rerun without a stale view."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from emocore.errors import CacheError
from emocore.store import DB_NAME, Store


def cache_root() -> Path:
    """The cache folder: `--cache DIR` after `--` on the streamlit command line, else `cache/`."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--cache", default="cache")
    known, _ = parser.parse_known_args(sys.argv[1:])
    return Path(known.cache)


def cache_version(root: Path) -> float:
    """Changes whenever an index commits (WAL writes touch the -wal file, checkpoints the db)."""
    stamps = [p.stat().st_mtime_ns for p in (root / DB_NAME, root / f"{DB_NAME}-wal") if p.exists()]
    return float(max(stamps, default=0))


@st.cache_data(show_spinner=False)
def load_library(root: str, version: float) -> pd.DataFrame:
    """One row per ad: identity, status, duration, dominant emotion and its mean."""
    with Store(root, readonly=True) as store:
        rows = []
        for ad in store.ads():
            figures = {e.emotion: e.mean for e in store.emotions(ad.key)}
            rows.append({
                "name": ad.name, "status": ad.status, "duration (s)": ad.duration_s,
                "dominant": ad.dominant, "face coverage": ad.face_coverage,
                **{f"mean {k}": v for k, v in figures.items()},
                "error": ad.error, "model": ad.model, "key": ad.key,
            })
    return pd.DataFrame(rows)


def open_cache_or_explain(root: Path) -> bool:
    """True when a cache is there to read; otherwise shows the command that makes one."""
    try:
        Store(root, readonly=True).close()
    except CacheError as exc:
        st.info(f"{exc}\n\nTo index the demo ads: `python cli.py setup && python cli.py index cache/demo-ads`")
        return False
    return True
