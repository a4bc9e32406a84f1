"""Routing: give each sales-ready lead to a rep, in one place, in one order.

Rep capacity and the round robin are shared by every lead, so requests meet on a
one-partition topic and one agent decides them (``core.routing`` decides). They arrive in
the order their partitions happen to be processed, which in a backlog or a failover is not
the order leadflow received their inputs; so the agent holds each request until the
watermarks of every inbound partition (``agents.watermarks``) have passed it, and decides the
held ones in that order (``core.routing_order``: received, then event time). A failover or a
backlog then changes nothing about who gets a lead.

The table holds the reps' counters under one key and, per lead, who owns it, which requests
were applied and which are held — held requests must survive a SIGKILL, since Faust commits
a request's offset once the agent has taken it. A redelivered request changes nothing.
Decisions go out as LeadRouted, keyed by lead id, back to the lead's own partition.
"""

from __future__ import annotations

import time
from typing import Any

from streams import topics
from streams.agents.emit import ChangelogTable, Emitter, acked_if_flushed
from streams.core import routing, routing_order
from streams.core.contract import to_ms
from streams.core.handoff import derived_id

REPS = "__reps__"


def _now_ms() -> int:
    return int(time.time() * 1000)


def register(app: Any) -> None:
    settings, stats, policies = app.settings, app.stats, app.policies
    raw = app.Table("routing", partitions=1, key_type=str)
    app.tables_by_name["routing"] = raw
    emitter = Emitter(app)
    table = ChangelogTable(emitter, raw)
    source = app.topic(
        topics.ROUTING.name, key_serializer="raw", value_serializer="raw", partitions=1,
    )
    holding = routing_order.Holding(
        settings.partitions, settings.routing_stale_ms, _now_ms())
    reload = [True]  # hold again what the table holds: at the start and after an assignment
    # How far the router has read the routing topic (the latest record timestamp): with its
    # own clock, what says a partition's owner is gone (core.routing_order.Holding).
    read_to = [0]

    @app.on_partitions_assigned.connect
    async def on_assigned(app: Any, assigned: Any, **_: Any) -> None:
        if any(tp.topic == topics.ROUTING.name for tp in assigned):
            reload[0] = True

    def hold_again(now_ms: int) -> None:
        holding.restart(now_ms, _now_ms())
        for key, lead in table.items():
            if key != REPS and isinstance(lead, dict):
                for request in (lead.get("pending") or {}).values():
                    holding.hold(request)

    def hold(request: dict[str, Any]) -> None:
        lead_id, event_id = request["lead_id"], request["event_id"]
        lead = table.get(lead_id) or {"owner": None, "applied": []}
        pending = lead.setdefault("pending", {})
        if event_id in lead["applied"] or event_id in pending:
            return  # redelivered
        received = request.get("received_at")
        request = {**request, "occurred_at": to_ms(request["occurred_at"]),
                   "received_at": None if received is None else to_ms(received)}
        pending[event_id] = request
        table.put(lead_id, lead, 0)
        holding.hold(request)

    def decide(request: dict[str, Any]) -> dict[str, Any] | None:
        lead_id = request["lead_id"]
        lead = table.get(lead_id) or {"owner": None, "applied": []}
        (lead.get("pending") or {}).pop(request["event_id"], None)
        if request["event_id"] in lead["applied"]:
            table.put(lead_id, lead, 0)
            return None
        lead["applied"].append(request["event_id"])
        reps = table.get(REPS) or routing.new_state()
        at = request["occurred_at"]
        routed = None
        if request["action"] == routing_order.RELEASE:
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
            with acked_if_flushed(events):
                requests = 0
                for event, request in await emitter.decoded(events, topics.ROUTING):
                    stamp = event.message.timestamp
                    now_ms = round(stamp * 1000) if stamp else _now_ms()
                    if reload[0]:  # the first record read since the (re)start starts the grace
                        reload[0] = False
                        read_to[0] = now_ms
                        hold_again(now_ms)
                    read_to[0] = max(read_to[0], now_ms)
                    if request["action"] == routing_order.WATERMARK:
                        holding.watermark(request.get("partition") or 0,
                                          to_ms(request["occurred_at"]), now_ms, _now_ms())
                    else:
                        requests += 1
                        hold(request)
                if requests:  # watermarks are not work: a quiet pipeline must look idle
                    stats.saw_internal(topics.ROUTING.name, requests)
                now_ms, wall_ms = read_to[0], _now_ms()
                for request in holding.release(now_ms, wall_ms):
                    routed = decide(request)
                    if routed is not None:
                        stats.decided(topics.ROUTED, routed)
                        await emitter.send(topics.ROUTED, routed["lead_id"].encode(), routed)
                stats.routing = holding.status(now_ms, wall_ms)
                await emitter.flush()  # the decisions on the broker before their "applied"
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
