"""Incomplete but real leads, through the embedded broker: accepted, traced, judged, routed.

The seed's "MQL Schema v2.1" object (``tests/fixtures/mql-schema-v2.1.json``: size band
"201+", no region, no consent block) is posted exactly as written."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streams import topics
from tests.conftest import EXAMPLES, Worker
from tests.integration.test_intake import post, read_topic

pytestmark = pytest.mark.integration

SEED = Path(__file__).parents[1] / "fixtures" / "mql-schema-v2.1.json"


def full_trace(worker: Worker, lead_id: str, until: Any, timeout: float = 30) -> dict[str, Any]:
    from streams.views import fetch_trace

    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = fetch_trace(worker.base_url, lead_id)
        if status == 200 and until([s["kind"] for s in body["steps"]]):
            return body
        time.sleep(0.2)
    raise AssertionError(f"trace of {lead_id} never got there: {body}")


def seed_body(lead_id: str | None = None) -> dict[str, Any]:
    body = json.loads(SEED.read_text())
    if lead_id:
        body["leadId"] = lead_id
    return body


def context_verdict(trace: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in trace["steps"] if s["kind"] == "SLA"
               and s["detail"]["clause"] == "CONTEXT_COMPLETE"]
    return step["detail"]


def test_the_seed_object_is_accepted_traced_judged_and_held_for_a_basis(
    worker: Worker,
) -> None:
    raw = SEED.read_bytes()  # verbatim
    status, _, answer = post(worker.base_url, "/v1/leads", raw)
    assert status == 202, answer
    lead_id = json.loads(raw)["leadId"]
    trace = full_trace(worker, lead_id, lambda kinds: "HELD" in kinds and "SLA" in kinds)
    kinds = [s["kind"] for s in trace["steps"]]
    assert kinds[0] == "CAPTURED" and "MQL" not in kinds and "ROUTED" not in kinds
    captured = trace["steps"][0]["detail"]
    assert captured["company_size"] == "SIZE_201_PLUS" and captured.get("region") in (None, "")
    verdict = context_verdict(trace)
    assert (verdict["verdict"], verdict["party"]) == ("BREACHED", "MARKETING")
    assert verdict["detail"] == "missing: region, size_band, consent"
    held = next(s for s in trace["steps"] if s["kind"] == "HELD")
    assert held["detail"]["waiting_for"] == "consent"
    letters = [d for d in read_topic(worker, topics.DEAD_LETTERS)
               if d.get("correlation_id") == answer["correlationId"]]
    assert letters == []
    # Marketing records the lawful basis (a re-capture): now sales gets it.
    again = seed_body()
    again.update(timestamp="2026-11-21T09:30:00Z", consent={
        "lawfulBasis": "legitimate interest", "consentTimestamp": "2026-11-21T09:29:00Z"})
    assert post(worker.base_url, "/v1/leads", json.dumps(again).encode())[0] == 202
    trace = full_trace(worker, lead_id, lambda kinds: "ROUTED" in kinds)
    routed = next(s for s in trace["steps"] if s["kind"] == "ROUTED")["detail"]
    assert routed.get("owner") or routed.get("queue")
    assert context_verdict(trace)["verdict"] == "BREACHED"  # judged once, when it crossed


def test_the_example_bodies_still_give_a_complete_routed_lead(worker: Worker) -> None:
    body = json.loads((EXAMPLES / "lead-captured.json").read_text())
    body["leadId"] = str(uuid.uuid4())
    body["email"] = f"dana.{uuid.uuid4().hex[:8]}@northwind-analytics.io"
    assert post(worker.base_url, "/v1/leads", json.dumps(body).encode())[0] == 202
    trace = full_trace(worker, body["leadId"], lambda kinds: "ROUTED" in kinds)
    assert context_verdict(trace)["verdict"] == "MET"


def test_the_asyncapi_document_is_served_beside_openapi(worker: Worker) -> None:
    import urllib.request

    from streams import asyncapi

    with urllib.request.urlopen(worker.base_url + "/v1/asyncapi.json", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        assert json.loads(resp.read()) == asyncapi.document(inline=True)
