"""SIGTERM: the worker commits its offsets and the archive flushes before the process ends."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from streams import topics
from streams.archive import layout
from streams.broker import EmbeddedBroker
from streams.views import get_json
from tests.conftest import Worker, start_worker, stop_worker, wait_for
from tests.integration.test_intake import example, post, wait_trace

pytestmark = pytest.mark.integration

PARTITIONS = 4
BATCH = 3  # archive rows a topic-partition buffers before it is written


def lead_on(partition: int) -> dict[str, Any]:
    """A valid lead whose id (its Kafka key) lands on ``partition`` of leads.captured."""
    while True:
        lead_id = str(uuid.uuid4())
        if (murmur2(lead_id.encode()) & 0x7FFFFFFF) % PARTITIONS == partition:
            break
    lead = json.loads(example("lead-captured.json"))
    lead.update(leadId=lead_id, email=f"{uuid.uuid4().hex[:10]}@example.org")
    return lead


def send(worker: Worker, leads: list[dict[str, Any]]) -> None:
    for lead in leads:
        status, _, body = post(worker.base_url, "/v1/leads", json.dumps(lead).encode())
        assert status == 202, body


def stats(worker: Worker) -> dict[str, Any]:
    status, body = get_json(f"{worker.base_url}/v1/stats")
    assert status == 200
    return body


def captured_rows(archive: Path) -> set[str]:
    frame = layout.scan(archive, topics.LEADS.record).collect()
    return set(frame["lead_id"].drop_nulls().to_list())


def offsets(worker: Worker, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """(end offset, committed offset of the worker's group) per partition of ``topic``."""

    async def read() -> tuple[dict[int, int], dict[int, int]]:
        # The ends are read, not asked: the embedded broker's ListOffsets can trail.
        reader = AIOKafkaConsumer(topic, bootstrap_servers=worker.settings.bootstrap,
                                  auto_offset_reset="earliest", enable_auto_commit=False)
        await reader.start()
        ends = dict.fromkeys(range(PARTITIONS), 0)
        try:
            while batch := await reader.getmany(timeout_ms=1500):
                ends.update({tp.partition: rs[-1].offset + 1 for tp, rs in batch.items()})
        finally:
            await reader.stop()
        # Not subscribed: asks for the group's commits without joining the group.
        group = AIOKafkaConsumer(bootstrap_servers=worker.settings.bootstrap,
                                 group_id=worker.settings.app_id, enable_auto_commit=False)
        await group.start()
        try:
            committed = {
                p: await group.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS)
            }
        finally:
            await group.stop()
        return ends, committed

    return asyncio.run(read())


def test_sigterm_commits_offsets_and_flushes_the_archive(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    env = {
        "LEADFLOW_APP_ID": f"shutdown-{uuid.uuid4().hex[:8]}",
        "LEADFLOW_PARTITIONS": str(PARTITIONS),
        # Nothing is committed or archived on a timer: only the shutdown can do it.
        "LEADFLOW_COMMIT_INTERVAL_S": "3600",
        "LEADFLOW_ARCHIVE_FLUSH_S": "3600",
        "LEADFLOW_ARCHIVE_BATCH": str(BATCH),
        "LEADFLOW_ARCHIVE_DIR": str(archive),
    }
    worker = start_worker(broker, tmp_path / "worker", **env)
    try:
        # Fewer than BATCH leads on partition 1: they stay in the archiver's buffer ...
        tail = [lead_on(1) for _ in range(BATCH - 1)]
        send(worker, tail)
        for lead in tail:
            wait_trace(worker, lead["leadId"], 1)
        # ... while BATCH leads on partition 0, sent after them, are written at once: once
        # they are on disk the archiver has fetched the tail too (one fetch, every partition).
        full = [lead_on(0) for _ in range(BATCH)]
        send(worker, full)
        for lead in full:
            wait_trace(worker, lead["leadId"], 1)
        wait_for("partition 0 archived", lambda: captured_rows(archive) >= {
            lead["leadId"] for lead in full})
        assert not captured_rows(archive) & {lead["leadId"] for lead in tail}
        ends, committed = offsets(worker, topics.LEADS.name)
        assert (ends[0], ends[1]) == (BATCH, BATCH - 1)
        assert committed != ends, "offsets were committed before the shutdown"
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        try:
            code = worker.proc.wait(60)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            raise
    assert code == 0, worker.log.read_text()[-3000:]

    # The archiver wrote its buffer before the worker ended, and committed what it wrote.
    assert captured_rows(archive) == {lead["leadId"] for lead in tail + full}
    ends, committed = offsets(worker, topics.LEADS.name)
    assert committed == ends

    # A new worker of the same app reads on from the commits: nothing is processed twice.
    again = start_worker(broker, tmp_path / "worker", **env)
    try:
        fresh = [lead_on(p) for p in range(PARTITIONS)]
        send(again, fresh)
        for lead in fresh:
            wait_trace(again, lead["leadId"], 1)
        body = stats(again)
        assert body["received"].get(topics.LEADS.name) == len(fresh), body
        assert body["duplicates_total"] == 0, body
    finally:
        stop_worker(again)
