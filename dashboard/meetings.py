"""Meetings over the archive: booked, cancelled, held and no-shows, per campaign and per rep.

A meeting event is an ``ActivityRecorded`` of type MEETING_* (what the Calendly, Chili Piper
and CRM connectors send). Its rep is the host named in its properties (``repId``), else the
lead's latest owner; its campaign is its own, else the lead's.

The no-show rate is no-shows over the meetings that were due: those booked and not
cancelled, or, where the source reports outcomes but not bookings, those held or missed
(whichever is more). Calendly reports no-shows but never "held", so the rate cannot be over
held + no-shows alone.
"""

from __future__ import annotations

import polars as pl

from dashboard.data import Archive, Filters, keep_leads, key, lead_campaigns, lead_owners

KINDS = {"MEETING_BOOKED": "booked", "MEETING_RESCHEDULED": "rescheduled",
         "MEETING_CANCELLED": "cancelled", "MEETING_HELD": "held", "MEETING_NO_SHOW": "no_show"}


def meeting_events(a: Archive, f: Filters) -> pl.LazyFrame:
    """One row per meeting event in the window: lead key, kind, campaign, rep."""
    lf = a.scan("ActivityRecorded", f).filter(pl.col("activity_type").is_in(list(KINDS)))
    lf = keep_leads(lf.with_columns(key()), a, f)
    lf = lf.select(
        "k", kind=pl.col("activity_type").replace_strict(KINDS, return_dtype=pl.String),
        own_campaign="campaign_id",
        host=pl.col("properties").str.json_path_match("$.repId"),
    )
    return lf.join(lead_campaigns(a), on="k", how="left").join(
        lead_owners(a), on="k", how="left",
    ).select(
        "k", "kind",
        campaign_id=pl.coalesce("own_campaign", "campaign_id"),
        rep_id=pl.coalesce("host", "owner_id"),
    )


def _rates(events: pl.DataFrame, by: str) -> pl.DataFrame:
    counts = [(pl.col("kind") == kind).sum().alias(kind) for kind in KINDS.values()]
    return events.group_by(by).agg(*counts).with_columns(
        due=pl.max_horizontal(pl.col("booked") - pl.col("cancelled"),
                              pl.col("held") + pl.col("no_show")),
    ).with_columns(
        no_show_rate=pl.when(pl.col("due") > 0).then(pl.col("no_show") / pl.col("due")),
    ).sort(["no_show_rate", by], descending=[True, False], nulls_last=True)


def no_shows(a: Archive, f: Filters) -> dict[str, pl.DataFrame]:
    """The no-show KPI: overall, per campaign and per rep."""
    events = meeting_events(a, f).collect()
    overall = _rates(events.with_columns(all=pl.lit("all")), "all").drop("all")
    return {"meetings": overall,
            "no_show_by_campaign": _rates(events, "campaign_id"),
            "no_show_by_rep": _rates(events, "rep_id")}
