"""A failure inside intake dead-letters that one record (INTERNAL) and the stream goes on."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streams import topics
from streams.app import LeadflowApp
from tests.agents.test_intake_agent import encoded, lead_record, settled


async def test_a_failure_on_one_record_dead_letters_it_and_the_stream_goes_on(
    app: LeadflowApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.core import trace

    first, second = lead_record(leadId=str(uuid.uuid4())), lead_record(leadId=str(uuid.uuid4()))
    real_apply = trace.apply

    def failing_once(state: Any, lead_id: str, *args: Any, **kwargs: Any) -> Any:
        if lead_id == first["lead_id"]:
            raise RuntimeError("injected fault")
        return real_apply(state, lead_id, *args, **kwargs)

    monkeypatch.setattr(trace, "apply", failing_once)
    agent = app.agents[f"intake.{topics.LEADS.name}"]
    async with agent.test_context() as ctx:
        for record in (first, second):
            await ctx.put(encoded(app, topics.LEADS, record), key=record["lead_id"].encode())
        await settled(app, 2)
    assert dict(app.stats.dead_letters) == {"INTERNAL": 1}
    assert second["lead_id"] in app.tables_by_name["traces"].data
