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


def _sources(root: Path, record: str) -> dict[str, dict[str, list[Source]]]:
    """month -> day -> the day's files, as they are now."""
    out: dict[str, dict[str, list[Source]]] = defaultdict(lambda: defaultdict(list))
    base = root / record
    for path in layout.files(root, record):
        day = path.parent.name.split("=", 1)[1]
        st = path.stat()
        out[day[:7]][day].append((str(path.relative_to(base)), st.st_size, st.st_mtime_ns))
    return out


def _manifest(days: dict[str, list[Source]]) -> dict[str, list[list[str | int]]]:
    return {day: sorted([list(s) for s in files]) for day, files in sorted(days.items())}


class ReadCache:
    def __init__(self, root: Path, cache: Path) -> None:
        self.root, self.cache = root, cache

    def refresh(self, record: str, *, today: date | None = None) -> int:
        """Rebuild the months of ``record`` whose closed days changed; how many."""
        today = today or datetime.now(UTC).date()
        built = 0
        for month, days in _sources(self.root, record).items():
            closed = {d: f for d, f in days.items() if date.fromisoformat(d) < today}
            if not closed:
                continue
            manifest = _manifest(closed)
            meta = self.cache / record / f"{month}.json"
            if meta.exists() and json.loads(meta.read_text()) == manifest:
                continue
            self._build(record, month, manifest)
            built += 1
        return built

    def _build(self, record: str, month: str, manifest: dict[str, list[list[str | int]]]
               ) -> None:
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
        os.replace(tmp, target)  # data first, then the manifest that vouches for it
        meta = target.with_suffix(".json")
        tmp_meta = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(manifest))
        os.replace(tmp_meta, meta)

    def scan(self, record: str) -> pl.LazyFrame:
        """Every row of ``record``, from fresh cached months plus the day files of the rest,
        in the archive's order (day by day): the same rows, columns and order as
        ``layout.scan``, which "first"/"latest" per lead rely on."""
        sources = _sources(self.root, record)
        base = self.root / record
        columns = {**layout.schema(record), layout.PARTITION: pl.Date()}
        parts: list[pl.LazyFrame] = []
        raw: list[Path] = []

        def flush() -> None:
            if raw:
                parts.append(pl.scan_parquet(
                    list(raw), hive_partitioning=True,
                    hive_schema={layout.PARTITION: pl.Date()}, schema=layout.schema(record),
                    missing_columns="insert", extra_columns="ignore").select(*columns))
                raw.clear()

        for month in sorted(sources):
            days = sources[month]
            meta = self.cache / record / f"{month}.json"
            manifest = json.loads(meta.read_text()) if meta.exists() else None
            usable = manifest is not None and all(
                _manifest({d: days.get(d, [])})[d] == files for d, files in manifest.items())
            covered = set(manifest or ()) if usable else set()
            if usable:
                flush()
                parts.append(pl.scan_parquet(meta.with_suffix(".parquet"), schema=columns))
            raw.extend(base / name for d in sorted(days) if d not in covered
                       for name, _, _ in sorted(days[d]))
        flush()
        if not parts:
            return pl.LazyFrame(schema=columns)
        return parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")

    def refresh_all(self, *, today: date | None = None) -> int:
        return sum(self.refresh(r, today=today) for r in layout.ARCHIVED.values())
