"""Library: every ad in the cache, its status and emotion figures."""

from __future__ import annotations

import streamlit as st
from loaders import cache_root, cache_version, load_library, open_cache_or_explain

st.title("Library")
root = cache_root()
if open_cache_or_explain(root):
    table = load_library(str(root), cache_version(root))
    st.caption(f"{len(table)} ads in `{root}`")
    if table.empty:
        st.info("The cache holds no ads yet: `python cli.py index FOLDER`")
    else:
        st.dataframe(table, hide_index=True, width="stretch")
