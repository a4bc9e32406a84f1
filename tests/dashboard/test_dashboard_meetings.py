"""The no-show KPI over an archive holding known meetings."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from dashboard import generate, meetings
from dashboard.data import Archive, Filters


def archive_with_meetings(root: Path) -> tuple[Archive, pl.DataFrame]:
    frames = generate.generate(200, seed=5, days=10)
    routed = frames["LeadRouted"].filter(pl.col("owner_id").is_not_null())
    a, b = routed["lead_id"][0], routed["lead_id"][1]
    plan = [  # lead, kind, host (None: the lead's owner), campaign (None: the lead's)
        (a, "MEETING_BOOKED", "rep-x", "cmp-m"), (a, "MEETING_NO_SHOW", "rep-x", "cmp-m"),
        (a, "MEETING_BOOKED", "rep-x", "cmp-m"), (a, "MEETING_HELD", "rep-x", "cmp-m"),
        (b, "MEETING_BOOKED", None, "cmp-m"), (b, "MEETING_CANCELLED", None, "cmp-m"),
        (b, "MEETING_BOOKED", None, "cmp-m"), (b, "MEETING_NO_SHOW", None, "cmp-m"),
        (b, "MEETING_BOOKED", "rep-y", None),  # due, outcome not known yet
    ]
    acts = frames["ActivityRecorded"]
    base = acts.head(len(plan))
    made = base.with_columns(
        lead_id=pl.Series([p[0] for p in plan]),
        activity_type=pl.Series([p[1] for p in plan]),
        properties=pl.Series([json.dumps({"meetingId": f"m{i}", **({"repId": p[2]} if p[2]
                                                                    else {})})
                              for i, p in enumerate(plan)]),
        campaign_id=pl.Series([p[3] for p in plan], dtype=pl.String),
    )
    frames["ActivityRecorded"] = pl.concat([acts.filter(
        ~pl.col("activity_type").str.starts_with("MEETING_")), made])
    generate.write(root, frames)
    return Archive(root), routed


def test_no_show_rate_per_campaign_and_per_rep(tmp_path: Path) -> None:
    archive, routed = archive_with_meetings(tmp_path / "archive")
    got = meetings.no_shows(archive, Filters())
    overall = got["meetings"].row(0, named=True)
    assert (overall["booked"], overall["cancelled"], overall["held"], overall["no_show"]) == (
        5, 1, 1, 2)
    assert overall["due"] == 4 and overall["no_show_rate"] == 0.5
    rep_b = routed.filter(pl.col("lead_id") == routed["lead_id"][1])["owner_id"][0]
    by_rep = {r["rep_id"]: r for r in got["no_show_by_rep"].iter_rows(named=True)}
    assert by_rep["rep-x"]["no_show_rate"] == 0.5  # one of two booked
    assert by_rep[rep_b]["no_show_rate"] == 1.0  # the lead's owner hosted: one due, missed
    assert by_rep["rep-y"]["no_show_rate"] == 0.0
    by_campaign = {r["campaign_id"]: r for r in got["no_show_by_campaign"].iter_rows(named=True)}
    assert by_campaign["cmp-m"]["no_show"] == 2 and by_campaign["cmp-m"]["due"] == 3


def test_bookings_without_outcomes_have_no_no_shows(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    frames = generate.generate(300, seed=3, days=10)
    booked = frames["ActivityRecorded"].filter(pl.col("activity_type") == "MEETING_BOOKED")
    generate.write(root, frames)
    overall = meetings.no_shows(Archive(root), Filters())["meetings"].row(0, named=True)
    assert overall["booked"] == booked.height > 0
    assert overall["no_show"] == 0 and overall["no_show_rate"] == 0.0
