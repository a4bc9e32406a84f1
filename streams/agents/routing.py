"""Routing: give each sales-ready lead to a rep, in one place, in order.

Rep capacity and the round robin are shared by every lead, so requests meet on a
one-partition topic and one agent decides them in order (``core.routing`` decides). The
table holds the reps' counters under one key and, per lead, who owns it and which requests
were already applied — a redelivered request changes nothing. Decisions go out as
LeadRouted, keyed by lead id, back to the lead's own partition.
"""

from __future__ import annotations

from typing import Any

from streams import topics
from streams.agents.emit import ChangelogTable, Emitter
from streams.core import routing
from streams.core.contract import epoch_ms
from streams.core.handoff import derived_id

REPS = "__reps__"


def register(app: Any) -> None:
    settings, stats, policies = app.settings, app.stats, app.policies
    raw = app.Table("routing", partitions=1, key_type=str)
    app.tables_by_name["routing"] = raw
    emitter = Emitter(app)
    table = ChangelogTable(emitter, raw)
    source = app.topic(
        topics.ROUTING.name, key_serializer="raw", value_serializer="raw", partitions=1,
    )

    def decide(request: dict[str, Any]) -> dict[str, Any] | None:
        lead_id = request["lead_id"]
        lead = table.get(lead_id) or {"owner": None, "applied": []}
        if request["event_id"] in lead["applied"]:
            return None
        lead["applied"].append(request["event_id"])
        reps = table.get(REPS) or routing.new_state()
        at = epoch_ms(request["occurred_at"])
        routed = None
        if request["action"] == "RELEASE":
            if lead["owner"]:
                reps = routing.release(reps, lead["owner"])
                lead["owner"] = None
        else:
            facts = routing.LeadFacts(
                lead_id=lead_id, region=request.get("region"), segment=request.get("segment"),
                industry=request.get("industry"), tech=tuple(request.get("tech") or ()),
                tier=request.get("tier") or "STANDARD", campaign_id=request.get("campaign_id"),
            )
            exclude = frozenset({request["owner_id"]}) if request.get("owner_id") else frozenset()
            if request["action"] == "REASSIGN" and lead["owner"]:
                reps = routing.release(reps, lead["owner"])
            reps, decision = routing.route(policies.routing, reps, facts, at, exclude=exclude)
            lead["owner"] = decision.owner
            routed = _routed(policies, request, facts, decision, at)
        table.put(REPS, reps, 0)
        table.put(lead_id, lead, 0)
        return routed

    @app.agent(source, name="routing")
    async def route(stream: Any) -> None:
        async for events in stream.take_events(settings.intake_batch, within=0.005):
            stats.saw_internal(topics.ROUTING.name, len(events))
            for _, request in await emitter.decoded(events, topics.ROUTING):
                routed = decide(request)
                if routed is not None:
                    stats.decided(topics.ROUTED, routed)
                    await emitter.send(topics.ROUTED, routed["lead_id"].encode(), routed)
            await table.flush()


def _routed(
    policies: Any, request: dict[str, Any], facts: routing.LeadFacts,
    decision: routing.Decision, at: int,
) -> dict[str, Any]:
    contract = policies.contract
    return {
        "event_id": derived_id(facts.lead_id, f"routed/{request['event_id']}"),
        "lead_id": facts.lead_id,
        "owner_id": decision.owner,
        "queue": decision.queue,
        "rule": decision.rule,
        "candidates": list(decision.candidates),
        "tier": facts.tier,
        "first_touch_due_at": contract.first_touch_deadline(at, facts.tier, facts.region),
        "next_status_update_due_at": at + contract.status_update_every_ms,
        "occurred_at": at,
        "correlation_id": request.get("correlation_id"),
    }
