"""RocksDB tables (LEADFLOW_STORE=rocksdb) and recovery across a worker restart."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker
from tests.conftest import start_worker, stop_worker
from tests.integration.test_intake import example, post, wait_trace

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("store", ["rocksdb", "memory"])
def test_traces_survive_a_worker_restart(
    broker: EmbeddedBroker, tmp_path: Path, store: str
) -> None:
    env = {"LEADFLOW_STORE": store, "LEADFLOW_APP_ID": f"durable-{uuid.uuid4().hex[:8]}"}
    lead = json.loads(example("lead-captured.json"))
    lead.update(leadId=str(uuid.uuid4()), email=f"{uuid.uuid4().hex[:8]}@example.org")
    worker = start_worker(broker, tmp_path, **env)
    try:
        assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
        before = wait_trace(worker, lead["leadId"], 1)
    finally:
        stop_worker(worker)
    if store == "rocksdb":
        assert any((tmp_path / "worker").rglob("CURRENT")), "no RocksDB database on disk"
    worker = start_worker(broker, tmp_path, **env)
    try:
        # memory: rebuilt from the changelog; rocksdb: read from disk (and the changelog tail)
        assert wait_trace(worker, lead["leadId"], 1)["steps"] == before["steps"]
        # the seen ids came back too: a replay is still a duplicate
        assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
        activity = json.loads(example("activity-recorded.json"))
        activity.update(leadId=lead["leadId"], eventId=str(uuid.uuid4()))
        assert post(worker.base_url, "/v1/activities", json.dumps(activity).encode())[0] == 202
        assert [s["kind"] for s in wait_trace(worker, lead["leadId"], 2)["steps"]] == [
            "CAPTURED", "ACTIVITY"
        ]
    finally:
        stop_worker(worker)
