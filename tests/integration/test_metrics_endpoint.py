"""GET /metrics, GET /v1/health's assignment and the worker's JSON log lines, on a real worker."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams import policies, topics
from streams.access.client import headers as client_headers
from streams.views import get_json
from tests.conftest import API_KEY, SECRET, Worker, wait_for
from tests.integration.test_intake import example, post, wait_trace

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(worker: Worker) -> tuple[str, Samples]:
    request = urllib.request.Request(f"{worker.base_url}/metrics",
                                     headers=client_headers(API_KEY))
    with urllib.request.urlopen(request, timeout=10) as resp:
        content_type = resp.headers["Content-Type"]
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return content_type, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_health_and_logs_of_a_worker(worker: Worker) -> None:
    lead = json.loads(example("lead-captured.json"))
    email = f"ops.{uuid.uuid4().hex[:8]}@northwind-analytics.io"
    lead.update(leadId=str(uuid.uuid4()), email=email)
    assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
    bad = {**lead, "leadId": str(uuid.uuid4()), "email": "dana.whitfield(at)northwind"}
    assert post(worker.base_url, "/v1/leads", json.dumps(bad).encode())[0] == 422
    wait_trace(worker, lead["leadId"], 1)
    captured = topics.LEADS.name
    # The trace is readable a moment before intake acknowledges the batch that wrote it.
    wait_for("the lead acknowledged", lambda: value(
        scrape(worker)[1], "leadflow_processing_seconds_count", topic=captured) == 1,
        timeout=30)

    content_type, samples = scrape(worker)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert value(samples, "leadflow_events_in_total", topic=captured) == 1
    assert value(samples, "leadflow_events_out_total", topic=captured) == 1  # the API's send
    assert value(samples, "leadflow_dead_letters_total", code="INVALID_EMAIL") == 1
    assert value(samples, "leadflow_http_rejected_total", code="INVALID_EMAIL") == 1
    assert value(samples, "leadflow_events_accepted_total", kind="lead") == 1
    assert value(samples, "leadflow_processing_seconds_bucket", topic=captured, le="+Inf") == 1
    assert value(samples, "leadflow_processing_seconds_sum", topic=captured) > 0
    version = policies.load(worker.settings).model.version
    assert value(samples, "leadflow_model_info", version=version) == 1
    assert value(samples, "leadflow_recovering") == 0
    assert value(samples, "process_resident_memory_bytes") > 0
    # Lag per partition of every inbound topic, back to 0 once the offsets are committed.
    for p in range(worker.settings.partitions):
        wait_for(f"lag of {captured}/{p} at 0", lambda p=p: value(
            scrape(worker)[1], "leadflow_consumer_lag", topic=captured, partition=str(p)) == 0,
            timeout=30)

    # The same figures in GET /v1/stats (the dashboard's Pipeline health page reads them).
    lag = get_json(f"{worker.base_url}/v1/stats")[1]["consumer_lag"]
    assert lag[captured] == {str(p): 0 for p in range(worker.settings.partitions)}

    status, health = get_json(f"{worker.base_url}/v1/health")
    assert status == 200
    partitions = list(range(worker.settings.partitions))
    assert health["assignment"][captured] == partitions
    assert value(samples, "leadflow_assigned_partitions") == sum(
        len(ps) for ps in health["assignment"].values())

    # stderr is a file here, so the log is JSON lines; and nothing personal or secret in it.
    text = worker.log.read_text()
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert entries and all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    assert email not in text and "Whitfield" not in text and SECRET not in text
