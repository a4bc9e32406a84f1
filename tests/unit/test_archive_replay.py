"""Replay's plan (what goes back, in which order), schema id rewriting and its errors."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams import schemas, topics
from streams.archive import layout
from streams.archive.replay import plan, reframe, replay, schema_ids
from streams.archive.schemalog import SCHEMAS_FILE
from streams.archive.writer import schema_id
from streams.errors import ErrorCode, LeadflowError
from streams.registry import FileRegistry
from streams.settings import Settings

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)


def row(spec: topics.TopicSpec, partition: int, offset: int, kafka_time: datetime,
        event_time: datetime, sid: int | None = 1) -> dict[str, Any]:
    record = schemas.samples(schemas.latest(spec.record))[0]
    return {**record, "occurred_at": event_time, "_topic": spec.name, "_partition": partition,
            "_offset": offset, "_key": "k", "_timestamp": kafka_time,
            "_value": b"\x00" + (sid or 0).to_bytes(4, "big") + bytes([offset]),
            "_schema_id": sid}


def write(root: Path, spec: topics.TopicSpec, rows: list[dict[str, Any]], source: str) -> None:
    layout.write_batch(root, spec.record, rows, source=source)


def test_records_go_back_in_the_order_the_broker_received_them(tmp_path: Path) -> None:
    t = [T0 + timedelta(milliseconds=i) for i in range(6)]
    # A capture and its activity, a status change; event times on different days.
    write(tmp_path, topics.LEADS, [row(topics.LEADS, 0, 0, t[0], T0 - timedelta(days=2)),
                                  row(topics.LEADS, 0, 1, t[3], T0)], "a")
    write(tmp_path, topics.ACTIVITY, [row(topics.ACTIVITY, 0, 0, t[1], T0 - timedelta(days=1)),
                                     row(topics.ACTIVITY, 1, 0, t[4], T0)], "b")
    write(tmp_path, topics.STATUS, [row(topics.STATUS, 2, 5, t[2], T0)], "c")
    # Decisions are derived again by the worker, never replayed.
    write(tmp_path, topics.SCORED, [row(topics.SCORED, 0, 0, t[0], T0)], "d")
    keys, paths = plan(tmp_path, None)
    assert keys.select("_topic", "_partition", "_offset").rows() == [
        (topics.LEADS.name, 0, 0), (topics.ACTIVITY.name, 0, 0), (topics.STATUS.name, 2, 5),
        (topics.LEADS.name, 0, 1), (topics.ACTIVITY.name, 1, 0),
    ]
    assert all(p.parent.parent.name in {"LeadCaptured", "ActivityRecorded", "LeadStatusChanged"}
               for p in paths)


def test_since_keeps_later_events_and_every_model(tmp_path: Path) -> None:
    old, new = T0 - timedelta(days=3), T0
    write(tmp_path, topics.LEADS, [row(topics.LEADS, 0, 0, old, old),
                                  row(topics.LEADS, 0, 1, new, new)], "a")
    model = row(topics.MODELS, 0, 0, old, old)
    write(tmp_path, topics.MODELS, [model], "m")
    keys, _ = plan(tmp_path, T0 - timedelta(days=1))
    assert keys.select("_topic", "_offset").rows() == [
        (topics.MODELS.name, 0), (topics.LEADS.name, 1)]


def test_schema_ids_are_registered_again_and_rewritten(tmp_path: Path) -> None:
    schema = schemas.latest("LeadCaptured")
    (tmp_path / SCHEMAS_FILE).write_text(json.dumps(
        {"7": {"schema": schema, "subjects": [topics.LEADS.subject]}}))
    write(tmp_path, topics.LEADS, [row(topics.LEADS, 0, 0, T0, T0, sid=7),
                                  row(topics.LEADS, 0, 1, T0, T0, sid=None)], "a")
    registry = FileRegistry(tmp_path / "fresh.json")
    registry.register("other-value", schemas.latest("ActivityRecorded"))  # takes id 1
    keys, _ = plan(tmp_path, None)
    assert schema_ids(tmp_path, keys, registry) == {(topics.LEADS.name, 7): 2}
    assert registry.subjects()[topics.LEADS.subject] == [2]
    value = b"\x00\x00\x00\x00\x07body"
    assert reframe(value, 2) == b"\x00\x00\x00\x00\x02body"
    assert schema_id(reframe(value, 2)) == 2


def test_an_empty_archive_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LeadflowError, match="nothing to replay under") as err:
        asyncio.run(replay(Settings(), tmp_path, progress=False))
    assert err.value.code is ErrorCode.NOT_FOUND


def test_no_broker_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, topics.LEADS, [row(topics.LEADS, 0, 0, T0, T0, sid=None)], "a")
    settings = Settings(broker_port=1, data_dir=str(tmp_path))  # nothing listens on port 1
    with pytest.raises(LeadflowError, match="start one first") as err:
        asyncio.run(replay(settings, tmp_path, progress=False,
                           registry=FileRegistry(tmp_path / "r.json")))
    assert err.value.code is ErrorCode.UNAVAILABLE
