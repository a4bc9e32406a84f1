"""The archive writer: micro-batches, offsets to commit, each event archived once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from streams import schemas, topics
from streams.archive import layout
from streams.archive.schemalog import SCHEMAS_FILE
from streams.archive.writer import Raw, Writer
from streams.codec import Codec
from streams.registry import FileRegistry

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)
TOPIC = topics.ACTIVITY.name


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def codec(tmp_path: Path) -> Codec:
    return Codec(FileRegistry(tmp_path / "registry.json"))


def activity(codec: Codec, i: int, at: datetime = T0) -> Raw:
    record = {**schemas.samples(schemas.latest("ActivityRecorded"))[1],
              "event_id": str(uuid.UUID(int=i + 1)), "occurred_at": at}
    value = codec.encode(topics.ACTIVITY.subject, "ActivityRecorded", record)
    return Raw(offset=i, key=record["lead_id"].encode(), value=value,
               timestamp_ms=int((at + timedelta(minutes=1)).timestamp() * 1000))


def writer(tmp_path: Path, codec: Codec, clock: Clock | None = None, **kw: Any) -> Writer:
    return Writer(tmp_path / "archive", codec.decode, schema_of=codec.registry.schema,
                  clock=clock or Clock(), **kw)


def archived(tmp_path: Path, record: str = "ActivityRecorded") -> pl.DataFrame:
    return layout.scan(tmp_path / "archive", record).sort("_offset").collect()


def test_a_full_buffer_is_written_and_its_next_offset_returned(tmp_path: Path,
                                                               codec: Codec) -> None:
    w = writer(tmp_path, codec, batch=3)
    w.add(TOPIC, 2, [activity(codec, i) for i in range(2)])
    assert not w.due() and w.flush() == {}
    w.add(TOPIC, 2, [activity(codec, 2)])
    assert w.due()
    assert w.flush() == {(TOPIC, 2): 3}
    assert [p.name for p in layout.files(tmp_path / "archive", "ActivityRecorded")] == [
        f"{TOPIC}-2-0-2.parquet"]
    got = archived(tmp_path)
    assert got["_offset"].to_list() == [0, 1, 2] and got["_partition"].to_list() == [2] * 3
    assert got["_event_time"].to_list() == [T0] * 3
    assert w.pending() == 0 and w.counts.rows == 3


def test_a_waiting_buffer_is_written_after_flush_s(tmp_path: Path, codec: Codec) -> None:
    clock = Clock()
    w = writer(tmp_path, codec, clock, batch=100, flush_s=2.0)
    w.add(TOPIC, 0, [activity(codec, 0)])
    clock.now += 1.9
    w.add(TOPIC, 0, [activity(codec, 1)])  # the oldest record sets the pace
    assert not w.due()
    clock.now += 0.1
    assert w.due() and w.flush() == {(TOPIC, 0): 2}


def test_each_event_is_archived_once_whatever_the_batches(tmp_path: Path, codec: Codec) -> None:
    """A crash between write and commit: the same offsets come again, cut differently, in a
    new process; a replay into a fresh broker: the same events at other offsets."""
    records = [activity(codec, i) for i in range(6)]
    first = writer(tmp_path, codec)
    first.add(TOPIC, 0, records[:4])
    first.flush(force=True)
    again = writer(tmp_path, codec)  # a restarted process: knows only what is on disk
    again.add(TOPIC, 0, records[2:])
    assert again.flush(force=True) == {(TOPIC, 0): 6}
    moved = [Raw(r.offset + 100, r.key, r.value, r.timestamp_ms) for r in records]
    again.add(TOPIC, 3, moved + moved)
    again.flush(force=True)
    got = archived(tmp_path)
    assert got["_offset"].to_list() == list(range(6))
    assert again.counts.rows == 2 and again.counts.duplicates == 2 + 12


def test_an_undecodable_record_is_kept_with_its_bytes(tmp_path: Path, codec: Codec) -> None:
    w = writer(tmp_path, codec)
    w.add(TOPIC, 1, [Raw(7, None, b"\x00\x00\x00\x00\x63garbage", int(T0.timestamp() * 1000)),
                     Raw(8, b"k", b"not framed", int(T0.timestamp() * 1000))])
    w.flush(force=True)
    got = archived(tmp_path)
    assert got["_value"].to_list() == [b"\x00\x00\x00\x00\x63garbage", b"not framed"]
    # id 99 is not in the registry: no archive id, the bytes go back as they are
    assert got["_schema_id"].to_list() == [None, None] and got["_key"].to_list() == [None, "k"]
    assert got["event_id"].to_list() == [None, None]
    assert got["_event_time"].to_list() == [T0, T0]  # the Kafka record's time
    assert w.counts.undecodable == 2


def test_schema_ids_are_the_archives_own_across_registries(tmp_path: Path,
                                                          codec: Codec) -> None:
    w = writer(tmp_path, codec)
    w.add(TOPIC, 0, [activity(codec, 0)])
    w.add(TOPIC, 1, [Raw(0, None, b"\x00\x00\x00\x00\x63x", 0)])  # id 99: not registered
    w.flush(force=True)
    log = json.loads((tmp_path / "archive" / SCHEMAS_FILE).read_text())
    (sid,) = log  # the first registry's numbering, while it is free
    assert log[sid]["subjects"] == [topics.ACTIVITY.subject]
    assert log[sid]["schema"] == codec.registry.schema(int(sid))
    # A fresh broker's registry numbers another schema first: its id 1 is not ours.
    fresh = Codec(FileRegistry(tmp_path / "fresh.json"))
    fresh.encode(topics.LEADS.subject, "LeadCaptured",
                 schemas.samples(schemas.latest("LeadCaptured"))[0])
    later = Writer(tmp_path / "archive", fresh.decode, schema_of=fresh.registry.schema)
    later.add(topics.LEADS.name, 0, [Raw(0, None, fresh.encode(
        topics.LEADS.subject, "LeadCaptured",
        schemas.samples(schemas.latest("LeadCaptured"))[1]), 0)])
    later.add(TOPIC, 0, [activity(fresh, 9)])  # the activity schema: id 2 there
    later.flush(force=True)
    log = json.loads((tmp_path / "archive" / SCHEMAS_FILE).read_text())
    assert sorted(log) == ["1", "2"]
    assert log["1"]["subjects"] == [topics.ACTIVITY.subject]
    assert log["2"]["subjects"] == [topics.LEADS.subject]
    got = archived(tmp_path).filter(pl.col("_partition") == 0)
    assert got["_schema_id"].to_list() == [1, 1]  # one schema, one id, whoever numbered it
    assert layout.scan(tmp_path / "archive", "LeadCaptured").collect()["_schema_id"].to_list(
        ) == [2]


def test_dropped_partitions_lose_their_buffer(tmp_path: Path, codec: Codec) -> None:
    w = writer(tmp_path, codec)
    w.add(TOPIC, 0, [activity(codec, 0)])
    w.add(TOPIC, 1, [activity(codec, 1)])
    w.drop({(TOPIC, 0)})
    assert w.flush(force=True) == {(TOPIC, 1): 2}


def test_a_failed_write_keeps_the_rows_for_the_next_try(tmp_path: Path, codec: Codec) -> None:
    w = writer(tmp_path, codec)
    (tmp_path / "archive").write_text("a file where the archive directory should be")
    w.add(TOPIC, 0, [activity(codec, 0)])
    with pytest.raises(OSError):
        w.flush(force=True)
    (tmp_path / "archive").unlink()
    assert w.flush(force=True) == {(TOPIC, 0): 1}
    assert archived(tmp_path).height == 1


def test_an_undecodable_record_is_archived_once_too(tmp_path: Path, codec: Codec) -> None:
    garbage = Raw(3, None, b"not framed", int(T0.timestamp() * 1000))
    for _ in range(2):  # two processes, say: the second knows the first only from disk
        w = writer(tmp_path, codec)
        w.add(TOPIC, 0, [garbage, activity(codec, 4)])
        w.flush(force=True)
    other = Raw(5, None, b"other bytes", garbage.timestamp_ms)
    w.add(TOPIC, 0, [other])
    w.flush(force=True)
    assert archived(tmp_path)["_offset"].to_list() == [3, 4, 5]


def test_a_record_that_decodes_but_does_not_fit_a_column_is_kept_with_its_bytes(
    tmp_path: Path, codec: Codec
) -> None:
    """An Avro int is read as any Python int; the archive's column is 32-bit. Such a lead
    (the intake dead-letters it) once stopped the archive of its partition for good: every
    retry failed on it again (found by tests/integration/test_fuzz_intake.py)."""
    import io

    import fastavro

    spec = topics.LEADS
    good = {**schemas.samples(schemas.latest("LeadCaptured"))[1], "occurred_at": T0}
    framed = codec.encode(spec.subject, spec.record, good)
    wide = json.loads(json.dumps(schemas.latest("LeadCaptured")))
    next(f for f in wide["fields"] if f["name"] == "marketing_score")["type"] = ["null", "long"]
    body = io.BytesIO()
    bad = {**good, "event_id": str(uuid.uuid4()), "marketing_score": 2**31}
    fastavro.schemaless_writer(body, fastavro.parse_schema(wide), bad)
    ms = int(T0.timestamp() * 1000)
    w = writer(tmp_path, codec)
    w.add(spec.name, 0, [Raw(0, b"a", framed, ms), Raw(1, b"b", framed[:5] + body.getvalue(), ms),
                         Raw(2, b"c", framed, ms)])
    assert w.flush(force=True) == {(spec.name, 0): 3}
    got = archived(tmp_path, "LeadCaptured")
    assert got["_offset"].to_list() == [0, 1]  # offset 2 repeats offset 0's event
    assert got["marketing_score"].to_list() == [good["marketing_score"], None]
    assert got["_value"][1] == framed[:5] + body.getvalue()
    assert w.counts.undecodable == 1
