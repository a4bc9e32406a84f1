"""A record over the size limit is dead-lettered (its first bytes) and the stream goes on."""

from __future__ import annotations

import uuid

from streams import topics
from streams.app import LeadflowApp
from tests.agents.test_intake_agent import encoded, lead_record, settled


async def test_a_record_over_the_size_limit_is_dead_lettered_and_the_stream_goes_on(
    app: LeadflowApp,
) -> None:
    """Its dead letter once did not fit the limit either: the agent crashed on it, again at
    every restart (tests/integration/test_fuzz_intake.py found it)."""
    big, good = lead_record(leadId=str(uuid.uuid4())), lead_record(leadId=str(uuid.uuid4()))
    big["company_name"] = "x" * app.codec.max_record_bytes
    app.codec.max_record_bytes *= 2  # to encode it; the worker's limit is put back below
    value = encoded(app, topics.LEADS, big)
    app.codec.max_record_bytes //= 2
    agent = app.agents[f"intake.{topics.LEADS.name}"]
    async with agent.test_context() as ctx:
        await ctx.put(value, key=big["lead_id"].encode())
        await ctx.put(encoded(app, topics.LEADS, good), key=good["lead_id"].encode())
        await settled(app, 2)
    assert dict(app.stats.dead_letters) == {"TOO_LARGE": 1}
    assert good["lead_id"] in app.tables_by_name["traces"].data
    assert big["lead_id"] not in app.tables_by_name["traces"].data
