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
nav = st.navigation([
    st.Page(HERE / "views" / "marketing.py", title="Marketing", url_path="marketing",
            default=True),
    st.Page(HERE / "views" / "revops.py", title="RevOps", url_path="revops"),
    st.Page(HERE / "views" / "data_team.py", title="Data team", url_path="data-team"),
    st.Page(HERE / "views" / "pipeline.py", title="Pipeline health", url_path="pipeline"),
])
nav.run()
