"""The handoff through the embedded broker: HTTP in → scored, MQL, routed, judged, summarised."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.broker import EmbeddedBroker
from streams.views import get_json
from tests.conftest import Worker, start_worker, stop_worker, wait_for
from tests.integration.test_intake import example, post, signed


def wait_kinds(worker: Worker, lead_id: str, want: dict[str, int], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = get_json(f"{worker.base_url}/v1/leads/{lead_id}/trace")
        if status == 200:
            kinds = body["summary"]["by_kind"]
            if all(kinds.get(k, 0) >= n for k, n in want.items()):
                return body
        time.sleep(0.2)
    raise AssertionError(f"trace of {lead_id} never had {want}: {body}")


def test_a_sales_ready_lead_is_routed_touched_and_judged(worker: Worker) -> None:
    lead_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    lead = json.loads(example("lead-captured.json"))
    lead.update(leadId=lead_id, email=f"{lead_id[:8]}@example.org",
                timestamp=(now - timedelta(minutes=30)).isoformat())
    assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
    body = wait_kinds(worker, lead_id, {"SCORED": 1, "MQL": 1, "ROUTED": 1})
    routed = next(s for s in body["steps"] if s["kind"] == "ROUTED")
    assert routed["detail"]["rule"] == "territory" and routed["detail"]["tier"] == "STANDARD"
    verdicts = {v["clause"]: v["verdict"] for v in body["summary"]["sla"]}
    assert verdicts == {"CONTEXT_COMPLETE": "MET", "OWNER_ASSIGNED": "MET"}

    touch = json.loads(example("crm-lead-touch-logged.json"))
    touch["payload"].update(leadId=lead_id, timestamp=now.isoformat())
    raw = json.dumps(touch).encode()
    assert post(worker.base_url, "/v1/webhooks/crm", raw, signed(raw))[0] == 202
    body = wait_kinds(worker, lead_id, {"TOUCH": 1, "SLA": 3})
    sla = {v["clause"]: v for v in body["summary"]["sla"]}
    assert sla["FIRST_TOUCH"]["verdict"] == "MET"
    touch_row = next(s for s in body["steps"] if s["kind"] == "TOUCH")
    assert touch_row["wait"] == "human" and body["summary"]["human_ms"] > 0

    status, summary = get_json(f"{worker.base_url}/v1/sla")
    assert status == 200
    assert summary["overall"]["met"] >= 3
    owner = routed["detail"]["owner"]
    assert summary["by_owner"][owner]["clauses"]["FIRST_TOUCH"]["met"] >= 1


def test_a_deadline_nobody_meets_is_breached_once_by_the_clock(worker: Worker) -> None:
    lead_id = str(uuid.uuid4())
    lead = json.loads(example("lead-captured.json"))
    # 51 hours ago: the 24 h first touch and the 48 h status update have passed, the allowed
    # lateness (1 h) too; an event of the lead dated now brings the partition's clock there.
    lead.update(leadId=lead_id, email=f"{lead_id[:8]}@example.org",
                timestamp=(datetime.now(UTC) - timedelta(hours=51)).isoformat())
    assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
    activity = json.loads(example("activity-recorded.json"))
    activity.update(eventId=str(uuid.uuid4()), leadId=lead_id, type="page_view",
                    timestamp=datetime.now(UTC).isoformat())
    assert post(worker.base_url, "/v1/activities", json.dumps(activity).encode())[0] == 202

    def finals() -> list[tuple[str, str]]:
        status, body = get_json(f"{worker.base_url}/v1/leads/{lead_id}/trace")
        if status != 200:
            return []
        return [(v["clause"], v["verdict"]) for v in body["summary"]["sla"]
                if v.get("status", "FINAL") == "FINAL"]

    verdicts = wait_for("both breaches final", lambda: len(finals()) == 4 and finals())
    assert ("FIRST_TOUCH", "BREACHED") in verdicts and ("STATUS_UPDATE", "BREACHED") in verdicts
    time.sleep(3)  # more clock ticks judge nothing twice
    assert sorted(finals()) == sorted(verdicts)


def test_a_first_touch_breach_reassigns_the_lead_when_the_contract_says_so(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    config = tmp_path / "leadflow.toml"
    text = (Path(__file__).parents[2] / "leadflow.toml").read_text()
    assert "reassign_on_first_touch_breach = false" in text
    config.write_text(text.replace("reassign_on_first_touch_breach = false",
                                   "reassign_on_first_touch_breach = true"))
    worker = start_worker(broker, tmp_path / "w", LEADFLOW_CONFIG=str(config),
                          LEADFLOW_SLA_IDLE_S="1", LEADFLOW_SLA_TICK_S="0.2",
                          LEADFLOW_SLA_IDLE_PACE="1e9", LEADFLOW_SLA_SETTLE_S="0.5")
    try:
        lead_id = str(uuid.uuid4())
        lead = json.loads(example("lead-captured.json"))
        # A hand-raiser (it requested a demo) captured two hours ago: its 15 minutes and the
        # hour of allowed lateness have passed, so the breach is final and it is reassigned.
        lead.update(leadId=lead_id, email=f"{lead_id[:8]}@example.org",
                    triggerActions=["requested_demo"],
                    timestamp=(datetime.now(UTC) - timedelta(hours=2)).isoformat())
        assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
        body = wait_kinds(worker, lead_id, {"ROUTED": 2}, timeout=30)
        first, second = [s["detail"] for s in body["steps"] if s["kind"] == "ROUTED"]
        assert first["tier"] == "HAND_RAISER" and first["owner"]
        # Another rep, or the rule's queue when nobody else is working at this hour.
        assert second.get("owner") != first["owner"]
        assert second.get("owner") or second.get("queue")
        verdicts = {v["clause"]: v["verdict"] for v in body["summary"]["sla"]}
        assert verdicts["FIRST_TOUCH"] == "BREACHED"
    finally:
        stop_worker(worker)
