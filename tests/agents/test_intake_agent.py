"""The intake agents through agent.test_context(), with Faust's producer on the embedded broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from streams import topics
from streams.app import LeadflowApp
from streams.core import payloads
from tests.conftest import EXAMPLES


async def settled(app: LeadflowApp, events: int) -> None:
    """Intake takes events in batches: wait until it has seen ``events`` of them."""
    for _ in range(200):
        if sum(app.stats.received.values()) >= events:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"intake saw {dict(app.stats.received)}, expected {events} events")


def encoded(app: LeadflowApp, spec: topics.TopicSpec, record: dict[str, Any]) -> bytes:
    return app.codec.encode(spec.subject, spec.record, record)


def lead_record(**changes: Any) -> dict[str, Any]:
    body = json.loads((EXAMPLES / "lead-captured.json").read_text())
    body.update(changes)
    return payloads.lead_from_json(body)


async def test_a_lead_becomes_a_trace_and_a_duplicate_changes_nothing(app: LeadflowApp) -> None:
    record = lead_record()
    lead_id = record["lead_id"]
    agent = app.agents[f"intake.{topics.LEADS.name}"]
    async with agent.test_context() as ctx:
        for _ in range(2):
            await ctx.put(encoded(app, topics.LEADS, record), key=lead_id.encode())
        await settled(app, 2)
    state = app.tables_by_name["traces"].data[lead_id]
    # The example lead scores over the threshold with complete context: handed over once.
    assert [s["kind"] for s in state["steps"]] == ["CAPTURED", "SCORED", "MQL", "SLA"]
    assert state["sla_done"] == {"CONTEXT_COMPLETE": "MET"}
    assert app.stats.accepted["lead"] == 1 and app.stats.duplicates["lead"] == 1
    assert app.stats.handoff["mql"] == 1 and app.stats.handoff["scored"] == 1


async def test_bad_records_are_dead_lettered_and_the_stream_goes_on(app: LeadflowApp) -> None:
    agent = app.agents[f"intake.{topics.ACTIVITY.name}"]
    lead_id = str(uuid.uuid4())
    good = payloads.activity_from_json({
        "leadId": lead_id, "type": "pricing_page_view",
        "timestamp": datetime.now(UTC).isoformat(),
    })
    async with agent.test_context() as ctx:
        await ctx.put(b"\x00\x00", key=lead_id.encode())
        await ctx.put(encoded(app, topics.ACTIVITY, good), key=b"someone-else")
        await ctx.put(encoded(app, topics.ACTIVITY, good), key=lead_id.encode())
        await settled(app, 3)
    assert dict(app.stats.dead_letters) == {"BAD_ENCODING": 1, "FIELD_MISMATCH": 1}
    steps = app.tables_by_name["traces"].data[lead_id]["steps"]
    assert [s["detail"]["type"] for s in steps if s["kind"] == "ACTIVITY"] == [
        "PRICING_PAGE_VIEW"
    ]


async def test_a_lead_without_consent_is_traced_and_held(app: LeadflowApp) -> None:
    record = lead_record(leadId=str(uuid.uuid4()), region=None)
    record["consent"] = None
    agent = app.agents[f"intake.{topics.LEADS.name}"]
    async with agent.test_context() as ctx:
        await ctx.put(encoded(app, topics.LEADS, record), key=record["lead_id"].encode())
        await settled(app, 1)
    assert dict(app.stats.dead_letters) == {}
    steps = app.tables_by_name["traces"].data[record["lead_id"]]["steps"]
    kinds = [s["kind"] for s in steps]
    assert "CAPTURED" in kinds and "HELD" in kinds and "MQL" not in kinds
    (sla,) = [s for s in steps if s["kind"] == "SLA"]
    assert sla["detail"]["detail"] == "missing: region, consent"

