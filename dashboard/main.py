"""The dashboard's router: `streamlit run dashboard/main.py [-- --cache DIR]`.

Each page is a file under `views/` holding a `render()` function, which runs when the file runs as the
page (`if __name__ == "__main__": render()`): registering the files keeps each page's URL (`/ad?ad=...`)
and lets `streamlit.testing` switch to a page by its file. Pages parse widgets and links, call
`emocore.usecases` through the cached loaders (`loaders`), and draw with the shared widgets (`widgets`).
Streamlit puts only `dashboard/` on sys.path (so the pages import `loaders` and `widgets` by name);
`emocore` is imported from the installed package (`pip install -e .`). The dashboard reads the
cache; it never indexes, and loads a model only when a user asks for a new explanation on the Ad page.
With `-- --read-only` (a dashboard shared with a team) it never loads a model: the buttons that compute
are hidden, and the sidebar says so.
"""

from __future__ import annotations

import importlib.util

import streamlit as st

st.set_page_config(page_title="emocore: emotions in video ads", page_icon=":material/movie:", layout="wide")
if importlib.util.find_spec("emocore") is None:
    st.error("emocore is not installed in this Python: run `pip install -e .` in the project's folder.")
    st.stop()
from widgets import read_only  # noqa: E402  (after the check above: widgets imports emocore)

page = st.navigation([
    st.Page("views/library.py", title="Library", icon=":material/video_library:", default=True),
    st.Page("views/ad.py", title="Ad", icon=":material/movie:", url_path="ad"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page("views/versions.py", title="Versions", icon=":material/difference:", url_path="versions"),
])
if read_only():
    st.sidebar.info("Read-only: this dashboard shows what the cache holds; explanations are computed with "
                    "`python cli.py explain`, not here.", icon=":material/lock:")
page.run()
