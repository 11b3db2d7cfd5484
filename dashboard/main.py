"""The dashboard's router: `streamlit run dashboard/main.py [-- --cache DIR]`.

Streamlit puts only `dashboard/` on sys.path, so the project root is added here to make `emocore`
importable. The dashboard reads the cache; it never indexes, and loads a model only when a user
asks for a new explanation on the Ad page.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="emocore: emotions in video ads", page_icon=":material/movie:", layout="wide")
page = st.navigation([
    st.Page("views/library.py", title="Library", icon=":material/video_library:", default=True),
    st.Page("views/ad.py", title="Ad", icon=":material/movie:", url_path="ad"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
])
page.run()
