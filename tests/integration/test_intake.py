"""End to end through the embedded broker: HTTP and Kafka in, traces and dead letters out."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams import topics, webhooks
from streams.access.client import headers as client_headers
from streams.codec import Codec
from streams.registry import FileRegistry
from tests.conftest import API_KEY, EXAMPLES, SECRET, Worker

pytestmark = pytest.mark.integration


def post(base: str, path: str, body: bytes, headers: dict[str, str] | None = None):
    """POST with the tests' API key (conftest.API_KEY) unless ``headers`` say otherwise."""
    req = urllib.request.Request(
        base + path, data=body, method="POST",
        headers={"Content-Type": "application/json", **client_headers(API_KEY),
                 **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def signed(body: bytes, msg_id: str | None = None) -> dict[str, str]:
    return webhooks.sign(SECRET, msg_id or f"msg_{uuid.uuid4().hex}", body)


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


INPUT_KINDS = {"CAPTURED", "ACTIVITY", "TOUCH", "STATUS_CHANGED", "ALIASED"}


def wait_trace(worker: Worker, lead_id: str, steps: int, timeout: float = 20) -> dict[str, Any]:
    """The trace once it holds ``steps`` input steps; ``steps`` in the answer are those input
    steps only (what intake wrote), ``all_steps`` includes what the handoff derived."""
    from streams.views import fetch_trace

    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = fetch_trace(worker.base_url, lead_id)
        if status == 200:
            body["all_steps"] = body["steps"]
            body["steps"] = [s for s in body["steps"] if s["kind"] in INPUT_KINDS]
            if len(body["steps"]) >= steps:
                return body
        time.sleep(0.1)
    raise AssertionError(f"trace of {lead_id} did not reach {steps} steps: {body}")


def read_topic(worker: Worker, spec: topics.TopicSpec) -> list[dict[str, Any]]:
    """Every record on ``spec``'s topic so far, decoded."""
    codec = Codec(FileRegistry(worker.settings.registry_path))

    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            spec.name, bootstrap_servers=worker.settings.bootstrap,
            auto_offset_reset="earliest", enable_auto_commit=False,
        )
        await consumer.start()
        try:
            out = []
            batch = await consumer.getmany(timeout_ms=2000)
            while batch:
                for records in batch.values():
                    out += [codec.decode(r.value, spec.record) for r in records]
                batch = await consumer.getmany(timeout_ms=500)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def dead_letters(worker: Worker) -> list[dict[str, Any]]:
    return read_topic(worker, topics.DEAD_LETTERS)


def test_example_bodies_make_one_trace_in_event_time_order(worker: Worker) -> None:
    responses = [
        post(worker.base_url, "/v1/leads", example("lead-captured.json")),
        post(worker.base_url, "/v1/activities", example("activity-recorded.json")),
    ]
    for name in ("crm-lead-status-updated.json", "crm-lead-touch-logged.json"):
        body = example(name)
        responses.append(post(worker.base_url, "/v1/webhooks/crm", body, signed(body)))
    for status, headers, body in responses:
        assert status == 202, body
        assert headers["X-Correlation-Id"] == body["correlationId"]
    lead_id = "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"
    trace = wait_trace(worker, lead_id, 4)
    kinds = [s["kind"] for s in trace["steps"]]
    assert kinds == ["CAPTURED", "ACTIVITY", "TOUCH", "STATUS_CHANGED"]
    correlation_ids = {b["correlationId"] for *_, b in responses}
    assert {s["correlation_id"] for s in trace["steps"]} == correlation_ids
    assert trace["steps"][0]["since_previous_ms"] is None
    # 09:15:42 -> 09:31:05 event time between capture and the demo request
    assert trace["steps"][1]["since_previous_ms"] == (15 * 60 + 23) * 1000
    # observed after it happened (the example status change is dated later today: lag < 0)
    assert all(s["lag_ms"] > 0 for s in trace["steps"][:3])


def test_replayed_webhook_changes_nothing(worker: Worker) -> None:
    lead_id = str(uuid.uuid4())
    lead = json.loads(example("lead-captured.json"))
    lead.update(leadId=lead_id, email=f"{lead_id[:8]}@example.org")
    assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
    touch = json.loads(example("crm-lead-touch-logged.json"))
    touch["payload"]["leadId"] = lead_id
    body = json.dumps(touch).encode()
    headers = signed(body, "msg_replayed")
    assert post(worker.base_url, "/v1/webhooks/crm", body, headers)[0] == 202
    assert post(worker.base_url, "/v1/webhooks/crm", body, headers)[0] == 202
    wait_trace(worker, lead_id, 2)
    time.sleep(1.0)
    assert len(wait_trace(worker, lead_id, 2)["steps"]) == 2


def test_same_email_under_a_second_lead_id_becomes_an_alias(worker: Worker) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    lead = json.loads(example("lead-captured.json"))
    lead.update(leadId=first, email="Pat.Doe@Example.ORG", timestamp="2026-11-20T10:00:00Z")
    assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
    lead.update(leadId=second, email="pat.doe@example.org", timestamp="2026-11-21T10:00:00Z")
    assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
    trace = wait_trace(worker, second, 3)  # both captures + the one alias link
    assert trace["canonicalLeadId"] == first
    assert [s["kind"] for s in trace["steps"]] == ["CAPTURED", "CAPTURED", "ALIASED"]
    assert [s["lead_id"] for s in trace["steps"][:2]] == [first, second]
    assert wait_trace(worker, first, 3)["aliases"] == [second]


@pytest.mark.parametrize(
    ("path", "mutate", "status", "code"),
    [
        ("/v1/leads", lambda b: b.pop("email"), 422, "MISSING_FIELD"),
        ("/v1/leads", lambda b: b.update(email="not-an-email"), 422, "INVALID_EMAIL"),
        ("/v1/leads", lambda b: b.update(companySize="lots"), 422, "INVALID_ENUM"),
        ("/v1/leads", lambda b: b.update(timestamp="1970-01-02T00:00:00Z"), 422,
         "TIMESTAMP_ABSURD"),
        ("/v1/activities", lambda b: b.update(type="teleport"), 422, "INVALID_ENUM"),
    ],
)
def test_contract_violations_are_problems_and_dead_letters(
    worker: Worker, path: str, mutate: Any, status: int, code: str
) -> None:
    name = "lead-captured.json" if path == "/v1/leads" else "activity-recorded.json"
    body = json.loads(example(name))
    mutate(body)
    raw = json.dumps(body).encode()
    got, headers, problem = post(worker.base_url, path, raw)
    assert (got, problem["code"]) == (status, code)
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == status and problem["detail"]
    letters = [d for d in dead_letters(worker) if d["correlation_id"] == problem["correlationId"]]
    assert [(d["error_code"], d["original_value"]) for d in letters] == [(code, raw)]


def test_http_transport_errors(worker: Worker) -> None:
    body = example("crm-lead-status-updated.json")
    status, _, problem = post(worker.base_url, "/v1/webhooks/crm", body, {"webhook-id": "x"})
    assert (status, problem["code"]) == (401, "BAD_SIGNATURE")
    status, _, problem = post(worker.base_url, "/v1/leads", b"{not json")
    assert (status, problem["code"]) == (400, "BAD_ENCODING")
    # JSON under another media type (found by tests/integration/test_fuzz_intake.py: taken)
    lead = example("lead-captured.json")
    status, headers, problem = post(worker.base_url, "/v1/leads", lead,
                                    {"Content-Type": "text/plain"})
    assert (status, problem["code"], problem["field"]) == (415, "BAD_ENCODING", "Content-Type")
    assert headers["Content-Type"].startswith("application/problem+json")
    status, _, _ = post(worker.base_url, "/v1/leads", lead,
                        {"Content-Type": "application/json; charset=utf-8"})
    assert status == 202
    big = b'{"pad": "' + b"x" * (worker.settings.max_request_bytes + 10) + b'"}'
    status, _, problem = post(worker.base_url, "/v1/leads", big)
    assert (status, problem["code"]) == (413, "TOO_LARGE")


def test_kafka_producers_bad_records_are_dead_lettered_with_their_origin(worker: Worker) -> None:
    codec = Codec(FileRegistry(worker.settings.registry_path))
    lead_id = str(uuid.uuid4())
    good = {
        "event_id": str(uuid.uuid4()), "lead_id": lead_id, "activity_type": "PRICING_PAGE_VIEW",
        "campaign_id": None, "properties": {}, "occurred_at": _now(), "source_system": "kafka",
        "correlation_id": None,
    }
    spec = topics.ACTIVITY
    unknown_id = b"\x00\x7f\xff\xff\xf0" + b"\x02"

    async def produce() -> list[Any]:
        producer = AIOKafkaProducer(bootstrap_servers=worker.settings.bootstrap)
        await producer.start()
        try:
            return [
                await producer.send_and_wait(spec.name, value, key=lead_id.encode())
                for value in (b"garbage", unknown_id, codec.encode(spec.subject, spec.record, good))
            ]
        finally:
            await producer.stop()

    sent = asyncio.run(produce())
    trace = wait_trace(worker, lead_id, 1)
    assert trace["steps"][0]["kind"] == "ACTIVITY"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        letters = {
            d["source_offset"]: d for d in dead_letters(worker)
            if d["source_topic"] == spec.name and d["original_key"] == lead_id.encode()
        }
        if len(letters) == 2:
            break
    assert letters[sent[0].offset]["error_code"] == "BAD_ENCODING"
    assert letters[sent[0].offset]["original_value"] == b"garbage"
    assert letters[sent[0].offset]["source_partition"] == sent[0].partition
    assert letters[sent[1].offset]["error_code"] == "UNKNOWN_SCHEMA"


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
