"""Micro-batches: Kafka records buffered per topic-partition, written as Parquet in bulk.

A buffer is written when it holds ``batch`` records or its oldest record has waited
``flush_s`` seconds. Its files are named ``<topic>-<partition>-<first offset>-<last offset>``
and the caller commits the offsets only once they are written: at least once.

At least once means a record can come twice: after a crash between the write and the commit,
after a rebalance, and when ``leadflow replay`` publishes the archive into a fresh broker (the
worker then derives the same decisions again, with the same event ids). So each event is
archived once: a row whose identity (``event_id``; the original bytes for a record that did
not decode) is already among that record type's rows of the same day is dropped. The day's
identities are read from disk the first time a day is touched and kept as 64-bit hashes
(8 bytes a row) for the last ``seen_days`` record-days used.

``_schema_id`` is the archive's own number for the writer schema (``schemalog.py``), stable
across registries; the value keeps its original framing.

Decoding happens here too, in ``flush``, so a caller may run ``flush`` in a thread and keep
its event loop free.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from streams.archive import layout
from streams.archive.erasures import ErasureLog, scrub_rows
from streams.archive.schemalog import SchemaLog
from streams.codec import HEADER_BYTES, MAGIC
from streams.errors import LeadflowError

Decode = Callable[[bytes, str], dict[str, Any]]
TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Raw:
    """One Kafka record as consumed, before decoding."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass
class _Buffer:
    records: list[Raw] = field(default_factory=list)
    since: float = 0.0  # monotonic time of the oldest record waiting


@dataclass
class Counts:
    rows: int = 0  # rows written
    duplicates: int = 0  # rows dropped: that event is archived already
    undecodable: int = 0  # rows written with envelope columns only
    files: int = 0
    erased: int = 0  # rows of erased leads scrubbed (or left out) before writing
    tombstones: int = 0  # dead letters erased on their topic (null values): nothing to keep


def schema_id(value: bytes | None) -> int | None:
    """The schema id in a record's Confluent framing, or None when it is not framed."""
    if value is None or len(value) < HEADER_BYTES or value[0] != MAGIC:
        return None
    return int.from_bytes(value[1:HEADER_BYTES], "big")


def identity(record_name: str) -> pl.Expr:
    """One 64-bit hash per event: its event_id, else its bytes, else where it was."""
    where = pl.format("{}/{}/{}", "_topic", "_partition", "_offset")
    expr = (
        pl.when(pl.col("_value").is_not_null())
        .then(pl.col("_value").hash(seed=2))
        .otherwise(where.hash(seed=3))
    )
    if "event_id" in layout.schema(record_name):
        expr = pl.when(pl.col("event_id").is_not_null()).then(
            pl.col("event_id").hash(seed=1)).otherwise(expr)
    return expr


def _known_ids(lazy: pl.LazyFrame, record_name: str) -> pl.Series:
    """The identities of archived rows; the bytes are read only for rows without an id."""
    ident = identity(record_name).alias("__id")
    if "event_id" not in layout.schema(record_name):
        return lazy.select(ident).collect()["__id"]
    has_id = pl.col("event_id").is_not_null()
    with_id, without = pl.collect_all([
        lazy.filter(has_id).select(pl.col("event_id").hash(seed=1).alias("__id")),
        lazy.filter(~has_id).select(ident),
    ])
    return pl.concat([with_id["__id"], without["__id"]])


# What building a frame raises for a value its column cannot hold (pyarrow's ArrowInvalid and
# ArrowTypeError are ValueError and TypeError).
_UNFIT = (ValueError, TypeError, OverflowError)


class Writer:
    def __init__(
        self, root: Path, decode: Decode, *, batch: int = 5000, flush_s: float = 2.0,
        schema_of: Callable[[int], dict[str, Any]] | None = None, seen_days: int = 64,
        clock: Callable[[], float] = time.monotonic, erasures: ErasureLog | None = None,
    ) -> None:
        self.root = root
        self.decode = decode
        self.batch = max(1, batch)
        self.flush_s = flush_s
        self.clock = clock
        self.counts = Counts()
        self._buffers: dict[TopicPartition, _Buffer] = {}
        self._seen: OrderedDict[tuple[str, date], pl.Series] = OrderedDict()
        self._seen_days = seen_days
        self._schemas = SchemaLog(root, schema_of) if schema_of else None
        self._schema_of = schema_of
        self.erasures = erasures  # erased leads are scrubbed before they are written
        # (partition, key) of each dead letter scrubbed for an erased person: its topic
        # still holds the person until the caller tombstones it (then clears this).
        self.dead_letters: set[tuple[int, str]] = set()

    # -- buffering -----------------------------------------------------------------------------

    def add(self, topic: str, partition: int, records: list[Raw]) -> None:
        """Records of one topic-partition, in offset order."""
        if not records:
            return
        buffer = self._buffers.setdefault((topic, partition), _Buffer())
        if not buffer.records:
            buffer.since = self.clock()
        buffer.records.extend(records)

    def pending(self) -> int:
        return sum(len(b.records) for b in self._buffers.values())

    def due(self) -> bool:
        now = self.clock()
        return any(self._due(b, now) for b in self._buffers.values())

    def _due(self, buffer: _Buffer, now: float) -> bool:
        return bool(buffer.records) and (
            len(buffer.records) >= self.batch or now - buffer.since >= self.flush_s
        )

    def drop(self, partitions: set[TopicPartition]) -> None:
        """Forget buffered records of partitions this consumer no longer owns (the new owner
        reads them again from the last commit) and what it knows of the days on disk, which
        another process may now be writing."""
        for tp in partitions:
            self._buffers.pop(tp, None)
        self._seen = OrderedDict()

    # -- writing -------------------------------------------------------------------------------

    def flush(self, *, force: bool = False) -> dict[TopicPartition, int]:
        """Write the due buffers (every buffer with ``force``); return the offset to commit
        for each topic-partition written. A buffer that fails to write stays buffered."""
        now = self.clock()
        positions: dict[TopicPartition, int] = {}
        for tp, buffer in list(self._buffers.items()):
            if not buffer.records or not (force or self._due(buffer, now)):
                continue
            records = buffer.records
            self._write(tp, records)
            positions[tp] = records[-1].offset + 1
            if self._buffers.get(tp) is buffer:
                self._buffers[tp] = _Buffer()
        return positions

    def _write(self, tp: TopicPartition, records: list[Raw]) -> None:
        if self.erasures is None:
            return self._write_rows(tp, records)
        # Shared: an erasure's rewrite (exclusive) sees this batch on disk or is seen by it.
        with self.erasures.locked(exclusive=False):
            return self._write_rows(tp, records)

    def _writer_schema(self, registry_id: int) -> dict[str, Any] | None:
        try:
            return self._schema_of(registry_id) if self._schema_of else None
        except LeadflowError:
            return None

    def _write_rows(self, tp: TopicPartition, records: list[Raw]) -> None:
        topic, partition = tp
        record_name = layout.ARCHIVED[topic]
        kept = records
        if record_name == "DeadLetter":
            # A tombstone: an erasure deleted that dead letter (its rows are scrubbed).
            kept = [r for r in records if r.value is not None]
            self.counts.tombstones += len(records) - len(kept)
        rows = [self._row(topic, partition, record_name, r) for r in kept]
        if self.erasures is not None:
            rows, scrubbed = scrub_rows(record_name, rows, self.erasures.erased(),
                                        self._writer_schema, self.dead_letters)
            self.counts.erased += scrubbed
        if self._schemas is not None:
            ids = self._schemas.archive_ids(topic, {r["_schema_id"] for r in rows} - {None})
            for r in rows:
                r["_schema_id"] = ids.get(r["_schema_id"])
        frame = self._frame(record_name, rows).with_columns(
            identity(record_name).alias("__id"),
            pl.col("_event_time").dt.date().alias("__day"),
        ).unique("__id", keep="first", maintain_order=True)
        seen = self._seen  # drop() may replace it from the event loop meanwhile
        fresh: list[pl.DataFrame] = []
        for (day,), group in frame.partition_by("__day", as_dict=True).items():
            known = self._seen_ids(seen, record_name, day)
            new = group.filter(~pl.col("__id").is_in(known.implode()))
            if new.height:
                fresh.append(new)
        written = pl.concat(fresh) if fresh else frame.clear()
        self.counts.duplicates += len(rows) - written.height
        source = f"{topic}-{partition}-{records[0].offset}-{records[-1].offset}"
        paths = layout.write_frame(
            self.root, record_name, written.drop("__id", "__day"), source=source
        )
        self.counts.files += len(paths)
        self.counts.rows += written.height
        for part in fresh:
            key = (record_name, part["__day"][0])
            if key in seen:  # else evicted meanwhile: read from disk when next needed
                seen[key] = pl.concat([seen[key], part["__id"]])

    def _frame(self, record_name: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
        """The rows as a frame. Avro's types are wider than the archive's columns in places (an
        Avro int is read as any Python int; the column is 32-bit), so a row that decodes may
        still not fit: it is kept like an undecodable one, with its bytes and nulls, rather
        than holding back every row behind it at each retry."""
        try:
            return layout.to_frame(record_name, rows)
        except _UNFIT:
            pass
        fitted = []
        for row in rows:
            try:
                layout.to_frame(record_name, [row])
            except _UNFIT:
                row = {k: v for k, v in row.items() if k.startswith("_")}
                self.counts.undecodable += 1
            fitted.append(row)
        return layout.to_frame(record_name, fitted)

    def _row(self, topic: str, partition: int, record_name: str, raw: Raw) -> dict[str, Any]:
        try:
            record = self.decode(raw.value or b"", record_name)
        except LeadflowError:
            # Bad input is normal on an inbound topic (the intake dead-letters it); it is kept
            # as it came, with nulls in every field, so a replay sends it again.
            record = {}
            self.counts.undecodable += 1
        return {
            **record,
            "_topic": topic,
            "_partition": partition,
            "_offset": raw.offset,
            # Keys are lead ids and model names: text. Bytes that are not UTF-8 are kept
            # with replacement characters (the value keeps its original bytes).
            "_key": None if raw.key is None else raw.key.decode("utf-8", "replace"),
            "_timestamp": datetime.fromtimestamp(raw.timestamp_ms / 1000, UTC),
            "_value": raw.value,
            "_schema_id": schema_id(raw.value),
        }

    def _seen_ids(
        self, seen: OrderedDict[tuple[str, date], pl.Series], record_name: str, day: date
    ) -> pl.Series:
        key = (record_name, day)
        known = seen.get(key)
        if known is None:
            lazy = layout.scan_files(layout.files(self.root, record_name, day), record_name)
            known = _known_ids(lazy, record_name)
            while len(seen) >= self._seen_days:
                seen.popitem(last=False)
            seen[key] = known
        seen.move_to_end(key)
        return known
