"""Meetings through the API and the embedded broker: a no-show is in the trace, a held
meeting meets FIRST_TOUCH."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import EXAMPLES, Worker
from tests.integration.test_incomplete_leads import full_trace
from tests.integration.test_intake import post

pytestmark = pytest.mark.integration


def meeting(lead_id: str, kind: str, at: str, rep: str = "rep-amy") -> bytes:
    return json.dumps({
        "eventId": str(uuid.uuid4()), "leadId": lead_id, "type": kind,
        "campaignId": "cmp-2026-q4-webinar-b", "timestamp": at,
        "properties": {"meetingId": "cal-evt-1", "repId": rep, "startsAt": at},
    }).encode()


def sla(trace: dict[str, Any], clause: str) -> list[dict[str, Any]]:
    return [s["detail"] for s in trace["steps"]
            if s["kind"] == "SLA" and s["detail"]["clause"] == clause]


def test_a_no_show_is_traced_and_a_held_meeting_is_the_first_touch(worker: Worker) -> None:
    lead = json.loads((EXAMPLES / "lead-captured.json").read_text())
    lead_id = lead["leadId"] = str(uuid.uuid4())
    lead["email"] = f"dana.{uuid.uuid4().hex[:8]}@northwind-analytics.io"
    assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
    full_trace(worker, lead_id, lambda kinds: "ROUTED" in kinds)
    for kind, at in (("meeting_booked", "2026-11-21T09:20:00Z"),
                     ("meeting_no_show", "2026-11-21T09:45:00Z"),
                     ("meeting_held", "2026-11-21T11:00:00Z")):
        status, _, answer = post(worker.base_url, "/v1/activities", meeting(lead_id, kind, at))
        assert status == 202, answer
    trace = full_trace(worker, lead_id, lambda kinds: kinds.count("ACTIVITY") >= 3 and any(
        v["status"] == "FINAL" for v in sla_of(worker, lead_id)))
    meetings = {s["detail"]["type"]: s["detail"] for s in trace["steps"]
                if s["kind"] == "ACTIVITY"}
    assert meetings["MEETING_NO_SHOW"]["rep"] == "rep-amy"
    assert meetings["MEETING_NO_SHOW"]["meeting"] == "cal-evt-1"
    (first_touch,) = [v for v in sla(trace, "FIRST_TOUCH") if v["status"] == "FINAL"]
    assert first_touch["verdict"] == "MET"
    assert trace["summary"]["capture_to_first_touch_ms"] == (
        (11 * 60) - (9 * 60 + 15)) * 60_000 - 42_000  # 09:15:42 → 11:00:00


def sla_of(worker: Worker, lead_id: str) -> list[dict[str, Any]]:
    from streams.views import fetch_trace

    status, body = fetch_trace(worker.base_url, lead_id)
    return sla(body, "FIRST_TOUCH") if status == 200 else []
