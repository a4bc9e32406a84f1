"""`leadflow replay`: publish the archived inputs into a broker, so a worker rebuilds its state.

What goes back: the inbound topics (what other systems sent, undecodable records included, so
the intake dead-letters them again) and models.scoring (the models in force). Each record goes
as it was archived: its original bytes, key, partition and Kafka timestamp. Decisions
(scored, routed, SLA verdicts, dead letters) are not sent: the worker derives them again, the
same ones, because it works in event time.

Order: the order the broker received them (Kafka timestamp, then offset), across topics too,
so a partition's event-time clock never runs ahead of inputs that were in flight together the
first time. Records keep their partition, so each lead's events stay in one partition.

Schema ids: a fresh registry may number the schemas differently. Each archived schema id is
registered again (from ``<archive>/schemas.json``) and the id in the record's framing rewritten
when it changed. A record framed with an id the archive never resolved goes as it is.

``since``: only records whose event time is at or after it (models.scoring always whole). A
suffix rebuilds the state of the leads it touches from that point only: a lead captured before
``since`` is unknown to a fresh worker, and its later events are handled as such.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from streams import topics
from streams.archive import layout
from streams.archive.schemalog import SCHEMAS_FILE, SchemaLog
from streams.archive.writer import schema_id
from streams.codec import HEADER_BYTES
from streams.errors import ErrorCode, LeadflowError
from streams.settings import Settings

REPLAYED = (*topics.INBOUND, topics.MODELS)
_WHOLE = frozenset({topics.MODELS.name})  # replayed whole whatever --since says
CHUNK = 20_000  # records read and sent together
_OPEN_FILES = 64  # archive files kept in memory between chunks


@dataclass
class ReplayReport:
    root: Path
    since: datetime | None
    by_topic: Counter[str] = field(default_factory=Counter)
    rewritten: dict[str, int] = field(default_factory=dict)  # "topic old->new": records
    elapsed_s: float = 0.0

    def table(self) -> str:
        total = sum(self.by_topic.values())
        since = f" since {self.since.isoformat()}" if self.since else ""
        lines = [f"replayed {total:,} records from {self.root}{since} in {self.elapsed_s:.1f} s"]
        lines += [f"  {topic:28} {n:>10,}" for topic, n in sorted(self.by_topic.items())]
        lines += [f"  schema id {k}: {n:,} records" for k, n in sorted(self.rewritten.items())]
        return "\n".join(lines)


def plan(root: Path, since: datetime | None) -> tuple[pl.DataFrame, list[Path]]:
    """Which archived records to send, in sending order: one row each with its file and row
    in that file (the bytes are read chunk by chunk, not all at once)."""
    frames, paths = [], []
    for spec in REPLAYED:
        found = layout.files(root, spec.record)
        if not found:
            continue
        ids = {str(p): i + len(paths) for i, p in enumerate(found)}
        paths += found
        lazy = (
            layout.scan_files(found, spec.record, include_file_paths="_file")
            .with_columns(_row=pl.int_range(pl.len(), dtype=pl.UInt32).over("_file"))
            # A record type is archived from its own topic only; be sure of it.
            .filter(pl.col("_topic") == spec.name)
        )
        if since is not None and spec.name not in _WHOLE:
            lazy = lazy.filter(pl.col("_event_time") >= since)
        frames.append(lazy.select(
            pl.col("_file").replace_strict(ids, return_dtype=pl.UInt32).alias("_fid"),
            "_row", "_topic", "_partition", "_offset", "_timestamp", "_schema_id",
        ))
    if not frames:
        return pl.DataFrame(), []
    # Not by offset alone: after a replay into a fresh broker, new records start again from
    # offset 0, while their Kafka timestamps go on from where the archive's left off.
    keys = pl.concat(frames).sort("_timestamp", "_topic", "_partition", "_offset").collect()
    return keys, paths


class _Files:
    """Archive files' bytes columns, read when first needed, a few kept for the next chunk."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self._open: OrderedDict[int, pl.DataFrame] = OrderedDict()

    def rows(self, chunk: pl.DataFrame) -> pl.DataFrame:
        parts = [self._file(int(fid)) for fid in chunk["_fid"].unique()]
        return chunk.join(pl.concat(parts), on=["_fid", "_row"], how="left",
                          maintain_order="left")

    def _file(self, fid: int) -> pl.DataFrame:
        frame = self._open.get(fid)
        if frame is None:
            frame = (
                pl.read_parquet(self.paths[fid], columns=["_key", "_value"],
                                hive_partitioning=False)
                .with_row_index("_row")
                .with_columns(pl.lit(fid, dtype=pl.UInt32).alias("_fid"))
            )
            while len(self._open) >= _OPEN_FILES:
                self._open.popitem(last=False)
            self._open[fid] = frame
        self._open.move_to_end(fid)
        return frame


def schema_ids(root: Path, keys: pl.DataFrame, registry: Any) -> dict[tuple[str, int], int]:
    """(topic, archive schema id) -> the id the target registry gives that schema."""
    known = SchemaLog(root, None).read()
    mapping: dict[tuple[str, int], int] = {}
    pairs = keys.select("_topic", "_schema_id").drop_nulls().unique().iter_rows()
    for topic, old in pairs:
        entry = known.get(old)
        if entry is not None:
            mapping[(topic, old)] = registry.register(f"{topic}-value", entry["schema"])
    return mapping


def reframe(value: bytes, new_id: int) -> bytes:
    return value[:1] + new_id.to_bytes(4, "big") + value[HEADER_BYTES:]


async def replay(
    settings: Settings, root: Path, *, since: datetime | None = None, progress: bool = True,
    registry: Any = None,
) -> ReplayReport:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError, KafkaError
    from tqdm import tqdm

    from streams.kafka import ensure_topics

    started = time.monotonic()
    report = ReplayReport(root, since)
    keys, paths = plan(root, since)
    if not paths:
        raise LeadflowError(
            ErrorCode.NOT_FOUND,
            f"nothing to replay under {root} (no {'/, '.join(s.record for s in REPLAYED)}/ "
            "there): point --archive or LEADFLOW_ARCHIVE_DIR at the archive",
        )
    if registry is None:
        from streams.app import make_registry

        registry = make_registry(settings)
    if keys.height and keys["_schema_id"].drop_nulls().len() and not (
        root / SCHEMAS_FILE
    ).is_file():
        raise LeadflowError(ErrorCode.NOT_FOUND, f"{root / SCHEMAS_FILE} is missing: without "
                            "it the schema ids in the archived records cannot be resolved")
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all", linger_ms=20,
        max_request_size=settings.max_record_bytes + 65_536,
    )
    try:
        await ensure_topics(settings)
        await producer.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await producer.stop()
        raise LeadflowError(
            ErrorCode.UNAVAILABLE,
            f"no broker answers at {settings.bootstrap} ({exc}): start one first "
            "(`leadflow broker` or `leadflow up`), or set LEADFLOW_BROKER_URL",
        ) from exc
    try:
        await _check_partitions(producer, keys)
        ids = schema_ids(root, keys, registry)
        files = _Files(paths)
        guard = _erasure_guard(root)
        with tqdm(total=keys.height, unit="rec", desc="replay", disable=not progress) as bar:
            for chunk in keys.iter_slices(CHUNK):
                await _send(producer, files.rows(chunk), ids, report, guard)
                bar.update(chunk.height)
        await producer.flush()
    finally:
        await producer.stop()
    report.elapsed_s = time.monotonic() - started
    return report


async def _check_partitions(producer: Any, keys: pl.DataFrame) -> None:
    needed = keys.group_by("_topic").agg(pl.col("_partition").max()).iter_rows()
    for topic, highest in needed:
        have = await producer.partitions_for(topic)
        if highest not in have:
            raise LeadflowError(
                ErrorCode.FIELD_MISMATCH,
                f"{topic} has {len(have)} partitions here but the archive holds records of "
                f"partition {highest}: create it with at least {highest + 1} partitions "
                "(LEADFLOW_PARTITIONS) on a fresh broker",
            )


Guard = Callable[[str, str | None, bytes | None, int | None], bytes | None]


def _erasure_guard(root: Path) -> Guard | None:
    """What replay sends of an erased lead (the erasure log, ``archive/erasures.py``): its
    record scrubbed, or nothing when it did not decode. The archive was rewritten at the
    erasure already; this keeps a file restored from an older backup from bringing the
    person back."""
    from streams.archive.erasures import ErasureLog, reencode
    from streams.core.erasure import PERSONAL

    erased = ErasureLog(root).erased()
    if not erased.leads:
        return None
    schemas = SchemaLog(root, None).read()

    def guard(topic: str, key: str | None, value: bytes | None, sid: int | None
              ) -> bytes | None:
        record_name = topics.BY_NAME[topic].record
        erased_by = erased.leads.get(key or "")
        if erased_by is None or record_name not in PERSONAL:
            return value
        if value is None or sid is None or sid not in schemas:
            return None
        return reencode(value, schemas[sid]["schema"], record_name, erased_by)[0]

    return guard


async def _send(producer: Any, rows: pl.DataFrame, ids: dict[tuple[str, int], int],
                report: ReplayReport, guard: Guard | None = None) -> None:
    """One chunk: one aiokafka batch per partition at a time, in order; waits for all."""
    pending = []
    batches: dict[tuple[str, int], Any] = {}
    columns = ("_topic", "_partition", "_key", "_value", "_timestamp", "_schema_id")
    for topic, partition, key, value, ts, sid in rows.select(columns).iter_rows():
        if guard is not None:
            value = guard(topic, key, value, sid)
            if value is None:
                report.by_topic["(erased, not sent)"] += 1
                continue
        if sid is not None and (new := ids.get((topic, sid))) is not None:
            old = schema_id(value)
            if old != new:
                value = reframe(value, new)
                label = f"{topic} {old}->{new}"
                report.rewritten[label] = report.rewritten.get(label, 0) + 1
        record = {"key": None if key is None else key.encode(), "value": value,
                  "timestamp": int(ts.timestamp() * 1000), "headers": []}
        batch = batches.get((topic, partition))
        if batch is None or batch.append(**record) is None:  # none yet, or full
            if batch is not None:
                pending.append(await producer.send_batch(batch, topic, partition=partition))
            batch = batches[(topic, partition)] = producer.create_batch()
            if batch.append(**record) is None:  # larger than a batch: on its own
                del batches[(topic, partition)]
                pending.append(await producer.send(
                    topic, record["value"], record["key"], partition,
                    timestamp_ms=record["timestamp"]))
        report.by_topic[topic] += 1
    for (topic, partition), batch in batches.items():
        pending.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*pending)
