"""The leadflow dashboard: `leadflow dashboard` runs `streamlit run` on this file.

Four pages, one question each (see README "Dashboard"), in ``views/``: not ``pages/``,
which Streamlit would also serve on its own, bypassing this navigation. The sidebar's date,
campaign and owner filters apply to every page. Settings come from ``Settings.load()``
(leadflow.toml and LEADFLOW_* variables), read when a page runs, not at import.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

HERE = Path(__file__).parent

st.set_page_config(page_title="leadflow", layout="wide")
PAGES = [
    st.Page(HERE / "views" / "marketing.py", title="Marketing", url_path="marketing"),
    st.Page(HERE / "views" / "revops.py", title="RevOps", url_path="revops"),
    st.Page(HERE / "views" / "data_team.py", title="Data team", url_path="data-team"),
    st.Page(HERE / "views" / "pipeline.py", title="Pipeline health", url_path="pipeline"),
]


def _home() -> None:
    st.switch_page(PAGES[0])


# Streamlit serves its default page at / only: had Marketing been the default, /marketing
# (its URL in the address bar, a bookmark, a link) would answer "Page not found". The root
# is a hidden page of its own that moves on to the first page, at that page's URL.
nav = st.navigation([st.Page(_home, title="leadflow", url_path="home", default=True,
                             visibility="hidden"), *PAGES])
nav.run()
