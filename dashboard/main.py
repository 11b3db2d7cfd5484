"""The dashboard's router: `streamlit run dashboard/main.py [-- --cache DIR]`.

Streamlit puts only `dashboard/` on sys.path, so the project root is added here to make `emocore`
importable. The dashboard reads the cache only: it never indexes or loads a model.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="emocore: emotions in video ads", layout="wide")
page = st.navigation([st.Page("views/library.py", title="Library", default=True)])
page.run()
