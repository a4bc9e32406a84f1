"""The intake's side of an erasure through agent.test_context(): the trace state is marked
erased (its identity key gone), a repeat changes nothing, and a capture read again after the
erasure claims no identity."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from streams import topics
from streams.app import LeadflowApp
from streams.core import erasure, payloads
from tests.conftest import EXAMPLES


async def seen(app: LeadflowApp, events: int) -> None:
    for _ in range(300):
        if sum(app.stats.received.values()) >= events:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"intake saw {dict(app.stats.received)}, expected {events}")


def encoded(app: LeadflowApp, spec: topics.TopicSpec, record: dict[str, Any]) -> bytes:
    return app.codec.encode(spec.subject, spec.record, record)


async def test_an_erased_lead_keeps_its_skeleton_and_claims_no_identity_again(
        app: LeadflowApp) -> None:
    body = json.loads((EXAMPLES / "lead-captured.json").read_text())
    body["leadId"] = str(uuid.uuid4())
    record = payloads.lead_from_json(body)
    lead_id = record["lead_id"]
    traces = app.tables_by_name["traces"]
    request = erasure.request(erasure.Subject(lead_id=lead_id), by="dpo", via="cli",
                              at=datetime.now(UTC))
    leads = app.agents[f"intake.{topics.LEADS.name}"]
    erasures = app.agents[f"intake.{topics.ERASURES.name}"]
    async with leads.test_context() as ctx:
        await ctx.put(encoded(app, topics.LEADS, record), key=lead_id.encode())
        await seen(app, 1)
    assert traces.data[lead_id]["identity_key"] == erasure.identity_key(body["email"])
    steps = [s["kind"] for s in traces.data[lead_id]["steps"]]

    async with erasures.test_context() as ctx:
        for _ in range(2):  # a repeat changes nothing
            await ctx.put(encoded(app, topics.ERASURES, request), key=lead_id.encode())
        await seen(app, 3)
    state = traces.data[lead_id]
    assert app.stats.erased == 1
    assert state["erased"]["id"] == request["erasure_id"] and "identity_key" not in state
    assert [s["kind"] for s in state["steps"]] == steps  # the skeleton stays

    again = payloads.lead_from_json({**body, "eventId": str(uuid.uuid4())})
    async with leads.test_context() as ctx:
        await ctx.put(encoded(app, topics.LEADS, again), key=lead_id.encode())
        await seen(app, 4)
    assert app.stats.accepted["lead"] == 2
    assert "identity_key" not in traces.data[lead_id]
