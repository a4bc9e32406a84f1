"""RocksDB holds what the changelog holds, up to the offset it persists, and a restart reads
only the changelog after it.

A worker with RocksDB tables is killed (SIGKILL) mid-backlog. Read from its files: every
traces partition's database equals its changelog folded up to the offset the database
persists (never ahead of it: a write on disk that never reached the changelog was lost for
the next owner), and that offset is near the changelog's end. Restarted on the same files it
finishes the backlog with every input step once; stopped, its databases are at the end of
their changelogs, so another restart replays nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams import policies, topics
from streams.settings import Settings
from streams.simulate import generate
from streams.simulate.truth import kafka_expected_counts
from tests.conftest import start_worker, stop_worker
from tests.integration.test_scale_out import (
    _missing_steps,
    _traces,
    _wait_drained,
    _wait_received,
)
from tests.integration.test_sla_truth import FAST_CLOCK, fill, fresh_broker

pytestmark = pytest.mark.integration

OFFSET_KEY = b"__faust\0offset__"  # Faust's RocksDB store: where a partition's offset is


def on_disk(data_dir: Path, table: str) -> dict[int, tuple[int | None, dict[bytes, bytes]]]:
    """(persisted offset, every other key and value) of each partition database of
    ``table`` in a stopped worker's data dir."""
    import rocksdict

    out = {}
    for path in data_dir.rglob(f"{table}-*.db"):
        partition = int(path.name.rsplit("-", 1)[1].removesuffix(".db"))
        db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True),
                             access_type=rocksdict.AccessType.read_only())
        try:
            items = dict(db.items())
        finally:
            db.close()
        offset = items.pop(OFFSET_KEY, None)
        out[partition] = (None if offset is None else int(offset), items)
    return out


def changelog(bootstrap: str, topic: str, partitions: int) -> dict[int, list[Any]]:
    """Every record of ``topic``'s partitions: (offset, key, value)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> dict[int, list[Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            out: dict[int, list[Any]] = {p: [] for p in range(partitions)}
            batch = await consumer.getmany(timeout_ms=3000)
            while batch:
                for tp, records in batch.items():
                    out[tp.partition] += [(r.offset, r.key, r.value) for r in records]
                batch = await consumer.getmany(timeout_ms=1000)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def fold(records: list[Any], upto: int | None) -> dict[bytes, bytes]:
    state: dict[bytes, bytes] = {}
    for offset, key, value in records:
        if upto is None or offset > upto:
            break
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def check_prefix(data_dir: Path, bootstrap: str, app_id: str, partitions: int) -> dict[int, int]:
    """Each traces database is its changelog up to its offset; returns the records after
    that offset (what a restart replays) per partition."""
    disk = on_disk(data_dir, "traces")
    log = changelog(bootstrap, f"{app_id}-traces-changelog", partitions)
    tail = {}
    for p, records in log.items():
        offset, items = disk.get(p, (None, {}))
        assert items == fold(records, offset), (
            f"partition {p}: RocksDB is not its changelog up to offset {offset}: "
            f"{len(set(items) ^ set(fold(records, offset)))} keys differ")
        tail[p] = sum(1 for o, _, _ in records if offset is None or o > offset)
    return tail


@pytest.mark.timeout(300)
def test_a_killed_rocksdb_worker_restarts_from_its_files_and_loses_nothing(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    scenario = generate(23, leads=800, days=4, now=now, bad_share=0.03, wall_seconds=0,
                        policies=policies.load(Settings.load()))
    counts = kafka_expected_counts(scenario)
    assert counts is not None
    app_id = f"restart-{uuid.uuid4().hex[:8]}"
    env = {**FAST_CLOCK, "LEADFLOW_APP_ID": app_id, "LEADFLOW_STORE": "rocksdb",
           "LEADFLOW_RETRAIN_EVERY_S": "0", "LEADFLOW_RETRAIN_AFTER_LABELS": "0",
           "LEADFLOW_ARCHIVE": "false", "LEADFLOW_LOG_LEVEL": "warn"}
    data = tmp_path / "w"
    with fresh_broker(tmp_path) as broker:
        settings = fill(broker, scenario)
        parts = settings.partitions
        worker = start_worker(broker, data, **env)
        try:
            _wait_received([worker], sum(counts.values()) // 2)
            worker.proc.kill()  # SIGKILL: no flush, no commit, no close
            worker.proc.wait()
            killed = check_prefix(data, settings.bootstrap, app_id, parts)
            worker = start_worker(broker, data, **env)
            _wait_drained([worker], (*topics.INBOUND, topics.IDENTITY_RESOLVED, topics.ROUTED),
                          parts)
            traces = _traces([worker], sorted(scenario.truth))
        finally:
            stop_worker(worker)
        stopped = check_prefix(data, settings.bootstrap, app_id, parts)
    # What a restart replays: after the kill, the records sent but not yet acknowledged.
    print(f"changelog records after the persisted offsets: killed {killed}, stopped {stopped}")
    bad = _missing_steps(scenario, traces)
    assert not bad, f"{len(bad)} leads not traced exactly once (lead, want, got): {bad[:5]}"
    # Stopped: every acknowledged write is on disk with its offset, nothing left to replay.
    assert stopped == dict.fromkeys(range(parts), 0), stopped
