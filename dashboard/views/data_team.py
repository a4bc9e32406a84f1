"""Data team: is the score still right, and which threshold fits the contract and capacity?"""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, ui
from dashboard.data import Filters


def render(f: Filters) -> None:
    m = ui.model_context()
    q = ui.query("data_team", f, m)
    cols = st.columns(3)
    cols[0].metric("Live model", q["live_model"])
    cols[1].metric("Leads scored", f"{q['scored']:,}")
    cols[2].metric("With an outcome (labelled)", f"{q['labelled']:,}")

    st.subheader("Model versions")
    st.dataframe(q["versions"], hide_index=True)

    left, right = st.columns(2)
    left.subheader("Calibration (live outcomes)")
    if q["calibration"].is_empty():
        left.info("No labelled leads in this window yet.")
    else:
        left.altair_chart(charts.calibration(q["calibration"]), width="stretch")
    if not q["holdout_calibration"].is_empty():
        left.caption("Champion's holdout calibration (registry)")
        left.dataframe(q["holdout_calibration"], hide_index=True)
    right.subheader("Scores: converted vs disqualified")
    right.altair_chart(charts.bars(q["distribution"], "band", "leads", "outcome"),
                       width="stretch")

    st.subheader("Threshold explorer")
    ex = q["explorer"]
    if ex is None:
        st.info("Too few scored leads with complete context in this window to explore.")
    else:
        table = ex["table"]
        pick = st.slider("Threshold (score points)", 0, 100, int(ex["recommended"]),
                         key="threshold")
        row = table.filter(pl.col("threshold") == pick).row(0, named=True)
        cols = st.columns(4)
        cols[0].metric("MQLs per month", f"{row['mqls_per_month']:,.0f}")
        cols[1].metric("Expected DQ rate", _pct(row["dq_rate"]))
        cols[2].metric("Precision", _pct(row["precision"]))
        cols[3].metric("Recall", _pct(row["recall"]))
        st.altair_chart(charts.thresholds(table, ex["recommended"], ex["current"]),
                        width="stretch")
        st.markdown(f"**Recommended: {ex['recommended']}** (in force: {ex['current']}) — "
                    f"{ex['reason']}")
        st.code(ex["command"], language="bash")

    st.subheader(f"Feature weights of the live model ({q['live_model']})")
    st.altair_chart(charts.bars(q["weights"], "feature", "weight", "source", horizontal=True),
                    width="stretch", height=max(240, 28 * q["weights"].height + 60))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


ui.page("Data team", "Is the score still right? What threshold fits sales capacity and the "
        "agreed disqualification rate? Which model version scored this lead?", render)
