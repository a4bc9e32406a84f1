"""Marketing: are we meeting the MQL volume and quality commitments, which campaigns send
leads sales disqualifies, and why?"""

from __future__ import annotations

import streamlit as st

from dashboard import charts, ui
from dashboard.data import Filters


def render(f: Filters) -> None:
    c = ui.commitments()
    q = ui.query("marketing", f, c)
    volume, by_campaign = q["volume"], q["dq_by_campaign"]
    if volume.is_empty():
        st.info("No lead crossed the score threshold in this window.")
        return
    mqls = int(by_campaign["mqls"].sum())
    dq = int(by_campaign["disqualified"].sum())
    crossed = int(volume["crossed"].sum())
    cols = st.columns(4)
    cols[0].metric("Leads that crossed", f"{crossed:,}")
    cols[1].metric("MQLs handed to sales", f"{mqls:,}")
    cols[2].metric("Disqualified share of MQLs", f"{dq / mqls:.1%}" if mqls else "–",
                   help=f"ceiling {c.max_dq_rate:.0%}")
    cols[3].metric("Months meeting the volume commitment",
                   f"{int(volume['met'].sum())} of {volume.height}",
                   help=f"at least {c.min_mqls_per_month} a month")

    st.subheader("MQL volume per month against the commitment")
    st.altair_chart(charts.mql_volume(volume), width="stretch")

    st.subheader(f"Disqualification rate by campaign (ceiling {c.max_dq_rate:.0%})")
    left, right = st.columns([3, 2])
    left.altair_chart(charts.dq_by_campaign(by_campaign, c.max_dq_rate), width="stretch",
                      height=_rows(by_campaign.height))
    right.markdown("**Campaigns to stop, and to double down on**")
    right.dataframe(q["calls"], hide_index=True, column_config=_pct("dq_rate",
                                                                    "conversion_rate"))
    st.markdown("**The reasons behind the disqualifications**")
    reasons = q["reasons"]
    worst = by_campaign.filter(by_campaign["disqualified"] > 0).head(12)["campaign_id"]
    st.altair_chart(charts.reasons(reasons.filter(reasons["campaign_id"].is_in(worst.implode()))),
                    width="stretch", height=_rows(worst.len()))

    st.subheader(f"Context completeness (target {c.min_context_complete:.0%})")
    left, right = st.columns([3, 2])
    left.altair_chart(charts.share_vs_target(q["context"], "month", "share",
                                             c.min_context_complete), width="stretch")
    right.markdown("**What was missing when a lead crossed**")
    right.dataframe(q["missing"], hide_index=True)

    st.subheader("Trend, week by week")
    st.altair_chart(charts.trend(q["trend"]), width="stretch")


def _rows(n: int) -> int:
    """A horizontal bar chart's height: every label readable."""
    return max(240, 26 * n + 70)


def _pct(*names: str) -> dict:
    return {n: st.column_config.NumberColumn(format="percent") for n in names}


ui.page("Marketing", "Are we meeting our MQL volume and quality commitments? Which campaigns "
        "send leads that sales disqualifies, and why?", render)
