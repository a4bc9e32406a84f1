"""A read cache of the archive: each month's closed days merged into one Parquet file.

The archive keeps a directory per record type and day, and the archive agent writes a file
per micro-batch into it: a year is thousands of files per record type, and reading a column
from a file costs about as much fixed time as reading a few thousand of its rows. Measured
on the 1M-lead archive (365 files per type): one column of 1M lead ids 0.26 s from the day
files, 0.06 s from one file; a page's queries 0.68 s → 0.22 s (Marketing).

So the dashboard reads past months from its own copy: ``<cache>/<Record>/<YYYY-MM>.parquet``
holds every row of that month's *closed* days (before today, UTC) with the ``date`` column,
and ``<YYYY-MM>.json`` lists the day files it was made from (name, size, mtime). A month is
used only while those files are exactly what the archive still holds; a late file (a
replay, a straggler) makes it stale, and the month is read from the day files until the next
``refresh`` rebuilds it. Today's files and anything not cached are read as they are. The
archive stays the only truth; deleting the cache only makes the dashboard slower.

One lead's rows (RevOps' timeline) are a needle in ten million: nothing orders the archive by
lead, so a filter on ``lead_id`` reads the lead id of every row. Records with a lead id
therefore get a second copy of each month, ``<YYYY-MM>.by-lead.parquet``: the same rows
sorted by lead id (a stable sort: each lead's rows keep the archive's order) in row groups
of a few thousand rows with min/max statistics, so polars reads one row group per month for
a lead and skips the rest. Measured on the 1M-lead archive: a lead's timeline 1.2 s → 0.15 s,
for twice the disk (582 → 1,191 MB) and a build of ~40 s instead of ~13 s. A copy rather
than sorting the month file itself: the pages sort and group a year of rows by time, and
rows in time order made them 10-35 % cheaper in CPU than rows in lead order.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from streams.archive import layout

Source = tuple[str, int, int]  # file name relative to the record dir, size, mtime_ns
Manifest = dict[str, list[list[str | int]]]  # day -> its files, as Source lists

# Bumped when what a cached month holds changes: a cache of another format is rebuilt.
FORMAT = 2
BY_LEAD = ".by-lead.parquet"
# Rows per row group of the lead-ordered copy: a lead costs one group per month. Measured
# on the 1M-lead archive, a timeline took 0.15-0.2 s with 2,048 or 4,096 rows, 0.27 s with
# 16,384; past that the fixed cost of opening 84 month files dominates.
LEAD_ROW_GROUP = 4096


def _sources(root: Path, record: str) -> dict[str, dict[str, list[Source]]]:
    """month -> day -> the day's files, as they are now."""
    out: dict[str, dict[str, list[Source]]] = defaultdict(lambda: defaultdict(list))
    for day, e in layout.entries(root, record):
        st = e.stat()
        name = f"{layout.PARTITION}={day}/{e.name}"
        out[day[:7]][day].append((name, st.st_size, st.st_mtime_ns))
    return out


def _manifest(days: dict[str, list[Source]]) -> Manifest:
    return {day: sorted([list(s) for s in files]) for day, files in sorted(days.items())}


def _days_filter(days: list[str]) -> pl.Expr:
    """Only these days' rows of a cached month file. A rebuild may replace the file between
    planning a scan (which reads the newly closed day from its day files) and running it."""
    parsed = sorted(date.fromisoformat(d) for d in days)
    runs = [[parsed[0], parsed[0]]]
    for day in parsed[1:]:
        if (day - runs[-1][1]).days == 1:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    # Ranges, not is_in: statistics decide them per row group, and is_in over a list of
    # dates cost 4 ms per file (a month without rows on some days: a quiet record type).
    return pl.any_horizontal(pl.col(layout.PARTITION).is_between(lo, hi) for lo, hi in runs)


class ReadCache:
    def __init__(self, root: Path, cache: Path, *, lead_row_group: int = LEAD_ROW_GROUP
                 ) -> None:
        self.root, self.cache, self.lead_row_group = root, cache, lead_row_group

    def _meta(self, record: str, month: str) -> Manifest | None:
        """The manifest of a cached month in this format, or None."""
        meta = self.cache / record / f"{month}.json"
        try:
            found = json.loads(meta.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(found, dict) or found.get("format") != FORMAT:
            return None
        days: Manifest = found["days"]
        return days

    def refresh(self, record: str, *, today: date | None = None) -> int:
        """Rebuild the months of ``record`` whose closed days changed; how many."""
        today = today or datetime.now(UTC).date()
        built = 0
        for month, days in _sources(self.root, record).items():
            closed = {d: f for d, f in days.items() if date.fromisoformat(d) < today}
            if not closed:
                continue
            manifest = _manifest(closed)
            if self._meta(record, month) == manifest:
                continue
            self._build(record, month, manifest)
            built += 1
        return built

    def _build(self, record: str, month: str, manifest: Manifest) -> None:
        base = self.root / record
        files = [base / str(name) for day in manifest.values() for name, _, _ in day]
        frame = pl.scan_parquet(
            files, hive_partitioning=True, hive_schema={layout.PARTITION: pl.Date()},
            schema=layout.schema(record), missing_columns="insert", extra_columns="ignore",
        ).select(*layout.schema(record).keys(), layout.PARTITION)
        target = self.cache / record / f"{month}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        frame.sink_parquet(tmp, compression="zstd", statistics=True)
        if "lead_id" in layout.schema(record):
            by_lead = target.with_name(f"{month}{BY_LEAD}")
            tmp_lead = by_lead.with_name(f".{by_lead.name}.{os.getpid()}.tmp")
            # From the merged file (one read): the sort holds the month in memory either way.
            pl.scan_parquet(tmp).sort("lead_id", maintain_order=True, nulls_last=True
                                      ).sink_parquet(tmp_lead, compression="zstd",
                                                     statistics=True,
                                                     row_group_size=self.lead_row_group)
            os.replace(tmp_lead, by_lead)
        os.replace(tmp, target)  # data first, then the manifest that vouches for it
        meta = target.with_suffix(".json")
        tmp_meta = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps({"format": FORMAT, "days": manifest}))
        os.replace(tmp_meta, meta)

    def scan(self, record: str, *, by_lead: bool = False) -> pl.LazyFrame:
        """Every row of ``record``, from fresh cached months plus the day files of the rest,
        in the archive's order (day by day): the same rows, columns and order as
        ``layout.scan``, which "first"/"latest" per lead rely on.

        ``by_lead``: the cached months' lead-ordered copies instead, for a filter on
        ``lead_id`` (see the module's doc). The same rows and columns; each lead's rows in
        the archive's order, leads in lead id order within a month."""
        sources = _sources(self.root, record)
        base = self.root / record
        columns = {**layout.schema(record), layout.PARTITION: pl.Date()}
        suffix = BY_LEAD if by_lead and "lead_id" in columns else ".parquet"
        parts: list[pl.LazyFrame] = []
        # Runs of consecutive months from the cache, and of day files, each one scan: one
        # scan of twelve files plans and runs faster than twelve scans.
        raw: list[Path] = []
        cached: list[Path] = []
        cached_days: list[str] = []

        def flush() -> None:
            if raw:
                parts.append(pl.scan_parquet(
                    list(raw), hive_partitioning=True,
                    hive_schema={layout.PARTITION: pl.Date()}, schema=layout.schema(record),
                    missing_columns="insert", extra_columns="ignore").select(*columns))
                raw.clear()
            if cached:
                parts.append(pl.scan_parquet(list(cached), schema=columns).filter(
                    _days_filter(cached_days)))
                cached.clear()
                cached_days.clear()

        for month in sorted(sources):
            days = sources[month]
            manifest = self._meta(record, month)
            usable = manifest is not None and all(
                _manifest({d: days.get(d, [])})[d] == files for d, files in manifest.items())
            covered = set(manifest or ()) if usable else set()
            if covered:
                if raw:
                    flush()
                cached.append(self.cache / record / f"{month}{suffix}")
                cached_days.extend(covered)
            rest = [base / name for d in sorted(days) if d not in covered
                    for name, _, _ in sorted(days[d])]
            if rest:
                if cached:
                    flush()
                raw.extend(rest)
        flush()
        if not parts:
            return pl.LazyFrame(schema=columns)
        return parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")

    def refresh_all(self, *, today: date | None = None) -> int:
        return sum(self.refresh(r, today=today) for r in layout.ARCHIVED.values())
