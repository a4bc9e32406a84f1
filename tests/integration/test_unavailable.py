"""When the broker does not acknowledge, the API says 503 with Retry-After, not 202."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker
from streams.views import get_json
from tests.conftest import start_worker, stop_worker
from tests.integration.test_intake import example, post

pytestmark = pytest.mark.integration


def test_a_lost_broker_gives_503_with_retry_after(tmp_path: Path) -> None:
    broker = EmbeddedBroker(0, tmp_path / "broker.log").start()
    worker = start_worker(broker, tmp_path / "worker", LEADFLOW_SEND_TIMEOUT_S="2")
    try:
        assert post(worker.base_url, "/v1/leads", example("lead-captured.json"))[0] == 202
        broker.stop()
        status, headers, problem = post(
            worker.base_url, "/v1/leads", example("lead-captured.json")
        )
        assert (status, problem["code"]) == (503, "UNAVAILABLE")
        assert headers["Retry-After"] == "1"
        assert headers["Content-Type"].startswith("application/problem+json")
        status, health = get_json(f"{worker.base_url}/v1/health")
        assert (status, health["broker"]) == (503, "unreachable")
    finally:
        stop_worker(worker, timeout=5)  # a graceful stop would wait for the lost broker
        broker.stop()
