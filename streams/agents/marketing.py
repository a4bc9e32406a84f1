"""Marketing's side of the SLA: monthly MQL volume, context completeness and DQ rates.

Facts (a lead crossed the score; an MQL was disqualified) meet on a one-partition topic, so
one agent holds every month's counts per campaign: a tumbling calendar-month window kept as
one table key per month (Faust's windows are fixed-length; months are not). Each lead's
facts are applied once (its key remembers them). A month is judged when this agent's event
time passes its end (volume, context share) and its end plus the settle period (DQ rate,
once sales has had time to disposition the month's MQLs); each verdict is sent once.

Once across owners too: the one partition moves when workers come and go. Nothing is judged
while the table is being recovered (a half-recovered month has not been judged yet, and a
worker that owned the partition before kept its clock), a revoke waits for a judgement in
progress and sends its "judged" mark before the next owner recovers, and the send and the
mark are shielded from the task being cancelled at shutdown between the two.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from faust.types import TP

from streams import topics
from streams.agents.emit import ChangelogTable, Emitter, acked_if_flushed
from streams.agents.sla import lagging
from streams.core import monthly, sla
from streams.core.contract import EVENT_NAMESPACE, epoch_ms
from streams.core.eventclock import EventClock
from streams.metrics import is_recovering


def register(app: Any) -> None:
    settings, stats, contract = app.settings, app.stats, app.policies.contract
    raw = app.Table("marketing", partitions=1, key_type=str)
    app.tables_by_name["marketing"] = raw
    emitter = Emitter(app)
    table = ChangelogTable(emitter, raw)
    clock = EventClock(gated=(topics.MARKETING.name,), idle_ms=int(settings.sla_idle_s * 1000))
    source = app.topic(
        topics.MARKETING.name, key_serializer="raw", value_serializer="raw", partitions=1,
    )

    def apply(fact: dict[str, Any]) -> None:
        key = f"lead/{fact['lead_id']}"
        seen = table.get(key) or []
        if fact["fact"] in seen:
            return
        table.put(key, [*seen, fact["fact"]], 0)
        month = table.get(fact["month"]) or {"counts": None, "judged": []}
        campaign = fact.get("campaign_id")
        if fact["fact"] == "CROSSED":
            month["counts"] = monthly.count(month["counts"], "mqls", campaign)
            if fact["complete"]:
                month["counts"] = monthly.count(month["counts"], "complete", campaign)
        elif fact["fact"] == "DISQUALIFIED":
            month["counts"] = monthly.count(month["counts"], "disqualified", campaign)
        table.put(fact["month"], month, 0)

    done: dict[TP, int] = {}
    tp = TP(topics.MARKETING.name, 0)
    judging = asyncio.Lock()

    def judge(now_ms: int) -> None:
        """Stage the verdicts of every month whose time has come (by this agent's clock),
        and the months' "judged" marks."""
        if is_recovering(app) or tp not in app.assignor.assigned_actives():
            return  # another worker owns the months (a standby copy must not judge)
        lag = lagging(app.consumer, (tp.topic,), 0, done)
        current = clock.now(0, lagging=lag, wall_ms=now_ms)
        if current is None:
            return
        for key, month in table.items():
            if key.startswith("lead/"):
                continue
            volume_due, rate_due = monthly.month_due(contract, key)
            ready = [c for c, due in ((sla.MQL_VOLUME, volume_due),
                                      (sla.CONTEXT_COMPLETE, volume_due),
                                      (sla.DISQUALIFICATION_RATE, rate_due))
                     if current >= due + contract.grace_ms and c not in month["judged"]]
            if not ready:
                continue
            for v in monthly.evaluate_month(contract, key, month["counts"], clauses=ready):
                record = {
                    "event_id": str(uuid.uuid5(EVENT_NAMESPACE, f"sla/{v.scope}/{v.clause}")),
                    "lead_id": None, "party": v.party, "clause": v.clause,
                    "verdict": v.verdict, "deadline": v.deadline, "met_at": v.met_at,
                    "evaluated_at": v.evaluated_at, "owner_id": None, "tier": None,
                    "campaign_id": v.campaign_id, "contract_version": contract.version,
                    "detail": f"{v.scope}: {v.detail}", "occurred_at": now_ms,
                    "correlation_id": None,
                }
                stats.decided(topics.SLA, record)
                emitter.stage(topics.SLA, (v.scope or key).encode(), record)
            month = {**month, "judged": [*month["judged"], *ready]}
            table.put(key, month, 0)

    async def send() -> None:
        await emitter.flush()  # the verdicts first: a crash in between sends one again,
        await table.flush()  # never loses one

    @app.agent(source, name="marketing")
    async def facts(stream: Any) -> None:
        async for events in stream.take_events(settings.intake_batch, within=0.05):
            with acked_if_flushed(events):
                app.stats.saw_internal(topics.MARKETING.name, len(events))
                now_ms = int(time.time() * 1000)
                for event, fact in await emitter.decoded(events, topics.MARKETING):
                    apply(fact)
                    done[tp] = event.message.offset
                    clock.observe(topics.MARKETING.name, 0, epoch_ms(fact["occurred_at"]), now_ms)
                await table.flush()

    @app.timer(interval=settings.sla_tick_s * 5, name="sla.months")
    async def months() -> None:
        async with judging:
            judge(int(time.time() * 1000))
            await asyncio.shield(send())

    @app.on_partitions_revoked.connect
    async def on_revoked(app: Any, revoked: Any, **_: Any) -> None:
        async with judging:
            await send()
        # Owned again later, the partition's clock restarts from what is read then.
        clock.forget([0])
        done.clear()
