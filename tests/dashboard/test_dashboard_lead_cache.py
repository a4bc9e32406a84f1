"""The read cache's lead-ordered months: one lead's rows read through them are exactly the
archive's, whether they sit in cached months, in today's day files or in a late file."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from dashboard import data, timeline
from dashboard.readcache import BY_LEAD, ReadCache
from streams.archive import layout
from tests.dashboard.conftest import Small

# The small archive runs from late August to 2026-10-31: with this "today", August and
# September are cached whole, October up to the 19th, and the rest is read from day files.
TODAY = date(2026, 10, 20)
LEAD_RECORDS = [r for r in sorted(layout.ARCHIVED.values()) if "lead_id" in layout.schema(r)]


@pytest.fixture
def archive(small: Small, tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    shutil.copytree(small.root, root)
    return root


def _spanning_lead(small: Small) -> str:
    """A routed and touched lead with events both before ``TODAY`` and on or after it."""
    days = pl.concat([
        small.frames[r].select("lead_id", day=pl.col("_event_time").dt.date())
        for r in timeline.INBOUND
    ])
    span = days.group_by("lead_id").agg(first=pl.col("day").min(), last=pl.col("day").max())
    touched = small.frames["SalesTouchLogged"].select("lead_id")
    routed = small.frames["LeadRouted"].select("lead_id")
    found = span.filter((pl.col("first") < TODAY) & (pl.col("last") >= TODAY)).join(
        touched, on="lead_id", how="semi").join(routed, on="lead_id", how="semi")
    return str(found.sort("lead_id")["lead_id"][0])


def _late_touch(small: Small, lead: str, at: datetime, event_id: str) -> pl.DataFrame:
    row = small.frames["SalesTouchLogged"].filter(pl.col("lead_id") == lead).head(1)
    when = pl.lit(at, pl.Datetime("ms", "UTC"))
    return row.with_columns(event_id=pl.lit(event_id), occurred_at=when.cast(
        row.schema["occurred_at"]), _event_time=when.cast(row.schema["_event_time"]))


def test_timeline_through_the_cache_has_every_event(small: Small, archive: Path,
                                                    tmp_path: Path) -> None:
    """Cached months, today's day files and a late file in a cached month: the timeline read
    through the lead-ordered cache is the one read from the day files, step for step."""
    lead = _spanning_lead(small)
    cache = tmp_path / "cache"
    assert ReadCache(archive, cache, lead_row_group=64).refresh_all(today=TODAY) >= 1
    cached, plain = data.Archive(archive, cache=cache), data.Archive(archive)

    def same() -> pl.DataFrame:
        got, summary = timeline.lead_timeline(cached, lead)
        want, want_summary = timeline.lead_timeline(plain, lead)
        assert got.equals(want) and summary == want_summary
        return got

    before = same()
    plan = cached.lead_rows("ActivityRecorded", [lead]).explain()
    assert BY_LEAD in plan and "date=2026-10-2" in plan  # both sources are read

    # A late touch into a cached day (its month goes stale) and one today.
    late = _late_touch(small, lead, datetime(2026, 10, 5, 12, tzinfo=UTC), "late-touch")
    today = _late_touch(small, lead, datetime(2026, 10, 25, 9, tzinfo=UTC), "today-touch")
    layout.write_frame(archive, "SalesTouchLogged", pl.concat([late, today]), source="late")
    after = same()
    touches = after.filter(pl.col("step") == "TOUCH").height
    assert touches == before.filter(pl.col("step") == "TOUCH").height + 2

    assert ReadCache(archive, cache, lead_row_group=64).refresh_all(today=TODAY) >= 1
    assert same().equals(after)


@pytest.mark.parametrize("record", LEAD_RECORDS)
def test_lead_ordered_months_keep_each_leads_rows_in_order(archive: Path, tmp_path: Path,
                                                           record: str) -> None:
    """The lead-ordered copy holds the month's rows sorted by lead id in row groups whose
    lead id ranges do not overlap (what lets polars skip them), each lead's rows in the
    archive's order."""
    rc = ReadCache(archive, tmp_path / "cache", lead_row_group=64)
    rc.refresh(record, today=TODAY)
    month = pq.ParquetFile(tmp_path / "cache" / record / f"2026-09{BY_LEAD}").metadata
    assert month.num_rows > 64 * 2
    col = month.schema.names.index("lead_id")
    ranges = [(g.column(col).statistics.min, g.column(col).statistics.max)
              for g in (month.row_group(i) for i in range(month.num_row_groups))]
    assert len(ranges) > 2 and all(lo <= hi for lo, hi in ranges)
    assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:], strict=False))

    def per_lead(lf: pl.LazyFrame) -> pl.DataFrame:
        return lf.group_by("lead_id").agg("event_id").sort("lead_id").collect()

    assert per_lead(rc.scan(record, by_lead=True)).equals(per_lead(layout.scan(archive, record)))
    assert per_lead(rc.scan(record)).equals(per_lead(layout.scan(archive, record)))


def test_a_month_rebuilt_under_a_reader_counts_no_row_twice(archive: Path,
                                                            tmp_path: Path) -> None:
    """A reader holding the previous manifest reads the newly closed days from their day
    files; the rebuilt month file (which has them too) must not add them again."""
    cache = tmp_path / "cache"
    rc = ReadCache(archive, cache)
    record = "ActivityRecorded"
    rc.refresh(record, today=date(2026, 10, 10))
    meta = cache / record / "2026-10.json"
    previous = meta.read_text()
    assert rc.refresh(record, today=TODAY) == 1  # October now holds days up to the 19th
    meta.write_text(previous)  # ... but this reader planned with the manifest before it

    def rows(lf: pl.LazyFrame) -> list[str]:
        return sorted(lf.select("event_id").collect()["event_id"].to_list())

    want = rows(layout.scan(archive, record))
    assert rows(rc.scan(record)) == want
    assert rows(rc.scan(record, by_lead=True)) == want


def test_a_day_without_files_in_a_cached_month(small: Small, tmp_path: Path) -> None:
    """A day that had no file when its month was cached is read from its day files once it
    has some, and a rebuilt month that holds it does not count it twice either."""
    root, cache, record = tmp_path / "archive", tmp_path / "cache", "LeadRouted"
    frame, day, gap = small.frames[record], pl.col("_event_time").dt.date(), date(2026, 9, 10)
    layout.write_frame(root, record, frame.filter(day != gap), source="before")
    rc = ReadCache(root, cache)
    assert rc.refresh(record, today=TODAY) >= 1
    meta = cache / record / "2026-09.json"
    previous = meta.read_text()
    layout.write_frame(root, record, frame.filter(day == gap), source="late")

    def rows(lf: pl.LazyFrame) -> list[str]:
        return sorted(lf.select("event_id").collect()["event_id"].to_list())

    want = rows(layout.scan(root, record))
    assert len(want) == frame.height
    assert rows(rc.scan(record)) == want and rows(rc.scan(record, by_lead=True)) == want
    assert rc.refresh(record, today=TODAY) == 1
    meta.write_text(previous)
    assert rows(rc.scan(record)) == want and rows(rc.scan(record, by_lead=True)) == want


def test_a_cache_of_the_previous_format_is_rebuilt(archive: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    rc = ReadCache(archive, cache)
    record = "LeadRouted"
    rc.refresh(record, today=TODAY)
    meta = cache / record / "2026-09.json"
    # Format 1 was the bare manifest, and had no lead-ordered copy.
    meta.write_text(json.dumps(json.loads(meta.read_text())["days"]))
    (cache / record / f"2026-09{BY_LEAD}").unlink()
    assert f"2026-09{BY_LEAD}" not in rc.scan(record, by_lead=True).explain()  # day files
    assert rc.refresh(record, today=TODAY) == 1
    assert f"2026-09{BY_LEAD}" in rc.scan(record, by_lead=True).explain()


def test_find_leads_through_the_cache(small: Small, archive: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ReadCache(archive, cache).refresh_all(today=TODAY)
    cached, plain = data.Archive(archive, cache=cache), data.Archive(archive)
    lead = _spanning_lead(small)
    email = small.frames["LeadCaptured"].filter(pl.col("lead_id") == lead)["email"][0]
    for text in (f"  {email.upper()} ", lead.upper(), email):
        got = timeline.find_leads(cached, text)
        assert got.equals(timeline.find_leads(plain, text))
        assert got["lead_id"].to_list() == [lead]
    assert timeline.find_leads(cached, "nobody@nowhere.example").is_empty()
