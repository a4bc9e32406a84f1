"""A configuration that hands leads without a lawful basis to sales: the seed's MQL object
is routed at once (its own module, so its own broker: another worker on the same topics
would route the same leads under the default configuration)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Worker, start_worker, stop_worker
from tests.integration.test_incomplete_leads import context_verdict, full_trace, seed_body
from tests.integration.test_intake import post

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def worker(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    data = tmp_path_factory.mktemp("consent-optional")
    toml, n = re.subn(r"(?m)^consent_required = true", "consent_required = false",
                      (REPO / "leadflow.toml").read_text())
    assert n == 1
    config = data / "leadflow.toml"
    config.write_text(toml)
    w = start_worker(broker, data / "worker", LEADFLOW_CONFIG=str(config))
    yield w
    stop_worker(w)


def test_configured_so_the_seed_object_is_routed_at_once(worker: Worker) -> None:
    lead_id = str(uuid.uuid4())
    body = seed_body(lead_id)
    assert post(worker.base_url, "/v1/leads", json.dumps(body).encode())[0] == 202
    trace = full_trace(worker, lead_id, lambda kinds: "ROUTED" in kinds, timeout=60)
    kinds = [s["kind"] for s in trace["steps"]]
    assert "HELD" not in kinds and "MQL" in kinds
    assert context_verdict(trace)["detail"] == "missing: region, size_band, consent"
    routed = next(s for s in trace["steps"] if s["kind"] == "ROUTED")["detail"]
    assert routed.get("owner") or routed.get("queue")  # the rules that apply, or the queue
