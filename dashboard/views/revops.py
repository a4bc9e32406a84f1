"""RevOps: what happened to lead X, step by step; where the time goes; who breaches the SLA."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard import charts, privacy, ui
from dashboard.data import Filters
from streams.core.durations import format_duration

PAGE = "RevOps"


def lead_search() -> None:
    st.subheader("A lead, end to end")
    text = st.text_input("Lead id or email", key="lead_search",
                         placeholder="3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53 or dana@example.com")
    if not text.strip():
        return
    found = ui.query("find", text)
    if found.is_empty():
        st.warning(f"No lead with id or email {privacy.mask_email(text) if '@' in text else text}.")
        return
    lead_id = found["lead_id"][0]
    if found.height > 1:
        lead_id = st.selectbox("Several leads share that email", found["lead_id"].to_list())
    who = ui.viewer()
    row = privacy.masked(found.filter(pl.col("lead_id") == lead_id).row(0, named=True), who)
    if who.allowed:
        ui.audit("lead identity", lead_id, PAGE)
        st.caption(f"Personal data shown to {who.identity} (logged in the audit log).")
    else:
        st.caption(f"Personal data masked for {who.identity}: ask to be added to "
                   "LEADFLOW_DASHBOARD_PII_VIEWERS.")
    st.dataframe(pl.DataFrame([row]), hide_index=True)
    steps, summary = ui.query("timeline", lead_id)
    cols = st.columns(4)
    cols[0].metric("Steps", summary["steps"])
    cols[1].metric("System time", format_duration(summary["system_ms"]))
    cols[2].metric("Human time", format_duration(summary["human_ms"]))
    first = summary["capture_to_first_touch_ms"]
    cols[3].metric("Capture to first touch", "–" if first is None else format_duration(first))
    st.dataframe(steps, hide_index=True, key="timeline")


def render(f: Filters) -> None:
    lead_search()
    q = ui.query("revops", f)
    by_owner, by_team, open_ = q["by_owner"], q["by_team"], q["open"]
    st.subheader("SLA compliance")
    met, breached = int(by_owner["met"].sum()), int(by_owner["breached"].sum())
    overdue, corrections = q["overdue"], q["corrections"]
    cols = st.columns(5)
    cols[0].metric("Sales verdicts met", f"{met / (met + breached):.1%}" if met + breached else "–")
    cols[1].metric("Overdue now", f"{overdue.height:,}",
                   help="Deadline passed, nothing read meets it, not final yet")
    cols[2].metric("Final breaches", f"{breached:,}")
    cols[3].metric("Corrections", f"{corrections.height:,}",
                   help="Final verdicts later evidence changed (a touch logged late)")
    cols[4].metric("Open breaches now", f"{open_.height:,}")
    first_touch = by_owner.filter(pl.col("clause") == "FIRST_TOUCH")
    left, right = st.columns(2)
    left.markdown("**First-touch compliance by owner**")
    left.altair_chart(charts.bars(first_touch, "owner", "met_rate", fmt="%", horizontal=True),
                      width="stretch", height=max(240, 28 * first_touch.height + 60))
    right.markdown("**By team and clause**")
    right.dataframe(by_team, hide_index=True,
                    column_config={"met_rate": st.column_config.NumberColumn(format="percent")})
    with st.expander("By owner and clause"):
        st.dataframe(by_owner, hide_index=True)

    st.subheader("Overdue now")
    st.caption("Deadline passed with nothing that meets it yet; the verdict is final once the "
               "sources' allowed lateness has passed. Chase these reps now.")
    st.dataframe(overdue.head(200), hide_index=True)
    if corrections.height:
        st.subheader("Corrections")
        st.caption("Final verdicts superseded by evidence that arrived later than allowed.")
        st.dataframe(corrections.head(200), hide_index=True)

    st.subheader("Open breaches now")
    st.caption("Breached, nothing done since, lead not closed; overdue counted to the "
               "latest verdict in the archive.")
    st.dataframe(open_.head(200).with_columns(
        overdue=pl.col("overdue").dt.total_hours().round(1)).rename(
        {"overdue": "overdue_h"}), hide_index=True)

    st.subheader("Time to first touch, by tier")
    left, right = st.columns([3, 2])
    left.altair_chart(charts.bars(q["touch_hist"], "bucket", "leads", "tier"), width="stretch")
    right.dataframe(q["touch_stats"], hide_index=True)

    st.subheader("Meetings: no-show rate")
    meetings = q["meetings"]
    if meetings.is_empty():
        st.caption("No meetings yet: they come from the calendar and CRM connectors "
                   "(meeting_booked / _cancelled / _held / _no_show activities).")
    else:
        m = meetings.row(0, named=True)
        cols = st.columns(4)
        cols[0].metric("Meetings booked", f"{m['booked']:,}")
        cols[1].metric("Held", f"{m['held']:,}", help="A held meeting is the host's touch")
        cols[2].metric("No-shows", f"{m['no_show']:,}")
        cols[3].metric("No-show rate", "–" if m["no_show_rate"] is None
                       else f"{m['no_show_rate']:.1%}",
                       help="No-shows over meetings due: booked and not cancelled")
        rate = {"no_show_rate": st.column_config.NumberColumn(format="percent")}
        left, right = st.columns(2)
        left.markdown("**By campaign**")
        left.dataframe(q["no_show_by_campaign"], hide_index=True, column_config=rate)
        right.markdown("**By rep (the host)**")
        right.dataframe(q["no_show_by_rep"], hide_index=True, column_config=rate)

    st.subheader("Where the time goes")
    stages = q["stages"]
    st.altair_chart(charts.bars(stages, "stage", "median_h", "waits_on"), width="stretch")
    st.dataframe(stages, hide_index=True,
                 column_config={"share": st.column_config.NumberColumn(format="percent")})


ui.page(PAGE, "What happened to lead X, step by step? Where did the time go: in our systems "
        "or with people? Who is breaching the SLA?", render)
