"""The archive is the durable record: the embedded broker (in memory) is lost, a fresh one is
started, `leadflow replay` publishes the archive into it, and a fresh worker reaches the same
traces and SLA verdicts as before. The archive holds each event once, before and after."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from aiokafka import TopicPartition

from streams import policies, topics
from streams.archive import layout
from streams.codec import Codec
from streams.kafka import ensure_topics
from streams.registry import FileRegistry
from streams.settings import Settings
from streams.simulate import DUPLICATE, generate, send_kafka
from streams.simulate.kafka_sender import kafka_plan
from streams.views import get_json
from tests.conftest import Worker, start_worker, stop_worker
from tests.integration.test_sla_truth import FAST_CLOCK, collect, fresh_broker

pytestmark = pytest.mark.integration

# When this worker processed each event (its wall clock) and what is computed from it: the
# ingestion lag of each step and the worst one in the summary.
OBSERVATION_TIME = {"observed_at", "lag_ms", "max_lag_ms"}
@pytest.fixture(scope="module")
def scenario() -> Any:
    now = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    return generate(11, leads=100, days=3, now=now, bad_share=0.03, wall_seconds=0,
                    policies=policies.load(Settings.load()))


def archive_env(archive: Path) -> dict[str, str]:
    return {**FAST_CLOCK, "LEADFLOW_ARCHIVE_DIR": str(archive),
            "LEADFLOW_ARCHIVE_FLUSH_S": "0.5"}


def traces(worker: Worker, lead_ids: Iterator[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for lead_id in lead_ids:
        status, body = get_json(f"{worker.base_url}/v1/leads/{lead_id}/trace")
        if status == 200:
            out[lead_id] = body
    return out


def comparable(trace: dict[str, Any]) -> dict[str, Any]:
    """A trace without what depends on this worker's run rather than on the events: when it
    observed each step (OBSERVATION_TIME). Everything else, the order of steps of one
    millisecond and the scores noted beside events included, must come out the same."""
    steps = [{k: v for k, v in s.items() if k not in OBSERVATION_TIME} for s in trace["steps"]]
    summary = {k: v for k, v in trace["summary"].items() if k not in OBSERVATION_TIME}
    return {**trace, "steps": steps, "summary": summary}


def difference(before: dict[str, Any], after: dict[str, Any], lead_id: str) -> str:
    a, b = comparable(before[lead_id]), comparable(after[lead_id])
    lines = [f"lead {lead_id}"]
    lines += [f"  {k}: {a[k]!r} -> {b[k]!r}" for k in a if k != "steps" and a[k] != b[k]]
    lines += [f"  - {s}" for s in a["steps"] if s not in b["steps"]]
    lines += [f"  + {s}" for s in b["steps"] if s not in a["steps"]]
    return "\n".join(lines)


def archived(root: Path, record: str) -> pl.DataFrame:
    return layout.scan(root, record).collect()


def wait_archived(root: Path, record: str, rows: int) -> pl.DataFrame:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        frame = archived(root, record)
        if frame.height >= rows:
            return frame
        time.sleep(0.5)
    raise AssertionError(f"{record}: {archived(root, record).height} rows archived, want {rows}")


def repeats(scenario: Any) -> Counter[str]:
    """Per topic, the deliveries that repeat an event the topic already had (its id)."""
    plans = (kafka_plan(d) for d in scenario.deliveries)
    return Counter(p.topic for p in plans if p.expected == DUPLICATE)


def caught_up(worker: Worker) -> None:
    """Wait until the archive consumer has committed every record on the archived topics."""
    from aiokafka import AIOKafkaConsumer

    async def ends() -> dict[TopicPartition, int]:
        # Read, not asked: the embedded broker's ListOffsets answer can trail the last record.
        consumer = AIOKafkaConsumer(*layout.ARCHIVED, bootstrap_servers=worker.settings.bootstrap,
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            out: dict[TopicPartition, int] = {}
            while batch := await consumer.getmany(timeout_ms=2000):
                out.update({tp: records[-1].offset + 1 for tp, records in batch.items()})
            return out
        finally:
            await consumer.stop()

    async def behind(ends: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        # Not subscribed: it reads the group's commits without joining the group.
        consumer = AIOKafkaConsumer(bootstrap_servers=worker.settings.bootstrap,
                                    group_id=f"{worker.settings.app_id}-archive",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            committed = {tp: await consumer.committed(tp) or 0 for tp in ends}
            return {tp: end - committed[tp] for tp, end in ends.items() if end > committed[tp]}
        finally:
            await consumer.stop()

    last = asyncio.run(ends())
    deadline = time.monotonic() + 60
    while (lag := asyncio.run(behind(last))) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not lag, f"the archive has not committed {lag}"


def replay_cli(broker_port: int, registry: Path, archive: Path) -> str:
    env = {**os.environ, "LEADFLOW_BROKER_PORT": str(broker_port),
           "LEADFLOW_SCHEMA_REGISTRY_FILE": str(registry)}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "replay", "--archive", str(archive)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_fresh_broker_and_worker_rebuild_the_same_state_from_the_archive(
    tmp_path: Path, scenario: Any
) -> None:
    archive = tmp_path / "archive"
    lead_ids = sorted(scenario.truth)

    # First life: the scenario's history on the inbound topics, a worker with the archive on.
    with fresh_broker(tmp_path / "first") as broker:
        settings = Settings.load(env={**os.environ, "LEADFLOW_BROKER_PORT": str(broker.port)})
        asyncio.run(ensure_topics(settings))
        sent = asyncio.run(send_kafka(
            scenario, settings.bootstrap, Codec(FileRegistry(settings.registry_path)),
            progress=False, realtime=False))
        worker = start_worker(broker, tmp_path / "first" / "worker", **archive_env(archive))
        try:
            verdicts = collect(worker, scenario)
            before = traces(worker, iter(lead_ids))
            wait_archived(archive, "SlaEvaluated", len(verdicts))
            # Every delivery is archived, bad ones too, less repeats of an event (its id).
            for spec in topics.INBOUND:
                rows = sent.by_topic[spec.name] - repeats(scenario)[spec.name]
                assert wait_archived(archive, spec.record, rows).height == rows
        finally:
            stop_worker(worker)
    assert len(before) == len(lead_ids)
    undecodable = sum(archived(archive, s.record)["event_id"].null_count() for s in topics.INBOUND)
    assert undecodable > 0, "the scenario's garbage bytes are archived too"
    sla_before = archived(archive, "SlaEvaluated")

    # Second life: the broker's memory is gone. A fresh broker whose registry numbers the
    # schemas differently (another subject registered first), a fresh worker data dir.
    with fresh_broker(tmp_path / "second") as broker:
        registry = Path(os.environ["LEADFLOW_SCHEMA_REGISTRY_FILE"])
        FileRegistry(registry).register("unrelated-value", {
            "type": "record", "name": "Unrelated", "fields": [{"name": "x", "type": "int"}]})
        out = replay_cli(broker.port, registry, archive)
        assert "schema id" in out, f"no schema id was rewritten:\n{out}"
        for spec in (*topics.INBOUND, topics.MODELS):
            if archived(archive, spec.record).height:
                assert spec.name in out
        worker = start_worker(broker, tmp_path / "second" / "worker", **archive_env(archive))
        try:
            again = collect(worker, scenario)
            after = traces(worker, iter(lead_ids))
            caught_up(worker)  # whatever the replay re-derived has been through the archive
            sla_after = archived(archive, "SlaEvaluated")
        finally:
            stop_worker(worker)
        assert "archive: cannot write" not in worker.log.read_text()

    # Verdicts and corrections come again, the same; overdue notices follow the clock's ticks.
    def judged(records: list[dict]) -> list[tuple]:
        return sorted((v["event_id"], v["verdict"], v["evaluated_at"]) for v in records
                      if v["status"] != "OVERDUE")

    assert judged(again) == judged(verdicts)
    assert sorted(after) == sorted(before)
    differ = [i for i in lead_ids if comparable(after[i]) != comparable(before[i])]
    assert not differ, f"{len(differ)} traces differ, e.g.:\n{difference(before, after, differ[0])}"
    # The archive still holds each verdict once: the re-derived ones were recognised.
    judged_before = sla_before.filter(pl.col("status") != "OVERDUE")
    judged_after = sla_after.filter(pl.col("status") != "OVERDUE")
    assert judged_after.height == judged_before.height
    assert sla_after["event_id"].n_unique() == sla_after.height
    for spec in topics.INBOUND:
        rows = archived(archive, spec.record)
        assert rows["event_id"].drop_nulls().n_unique() == rows["event_id"].drop_nulls().len()
