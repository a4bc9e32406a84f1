"""Intake: decode, check the contract, drop duplicates, append to the per-lead trace, and
run the handoff (score, MQL, lifecycle, SLA) on the same lead state.

One hop for the hot path: every inbound topic is keyed by lead id and co-partitioned with the
trace table, so the state of one lead lives on one partition and one changelog write per
batch carries all of it. What needs other partitioning comes back keyed by lead id: identity
(keyed by email) on IDENTITY_RESOLVED, the router's decisions (one partition, shared rep
capacity) on leads.routed.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from streams import topics
from streams.agents.emit import ChangelogTable, Emitter, acked_if_flushed
from streams.agents.erasure import Eraser
from streams.agents.sla import SlaIndex, register_timer
from streams.core import contract, erasure, handoff, trace
from streams.core.routing_order import Progress, stamp
from streams.errors import ErrorCode, LeadflowError

DAY_MS = 86_400_000


def register(app: Any) -> None:
    settings = app.settings
    traces = app.Table(
        "traces",
        partitions=settings.partitions,
        key_type=str,
    )
    app.tables_by_name["traces"] = traces
    emitter = Emitter(app)
    table = ChangelogTable(emitter, traces)
    skew = timedelta(seconds=settings.max_clock_skew_s)
    retention_ms = int(settings.dedup_retention_days * DAY_MS)
    codec, stats = app.codec, app.stats
    index = SlaIndex(app, table, idle_ms=int(settings.sla_idle_s * 1000), report=stats.clocks,
                     settle_ms=int(settings.sla_settle_s * 1000),
                     idle_pace=settings.sla_idle_pace)
    # What has been flushed, for routing's watermarks (agents.watermarks).
    progress = app.intake_progress = Progress()
    eraser = Eraser(app)

    def dispatch(sends: list[handoff.Send], partition: int) -> None:
        """Stage what the handoff decided about a lead of ``partition`` (sent by ``flush``):
        derived topics are keyed by lead id too, so the lead's partition there is the same
        (or 0 on a one-partition topic)."""
        for spec, key, record in sends:
            stats.decided(spec, record)
            emitter.stage(spec, key.encode(), record, 0 if spec.partitions == 1 else partition)

    async def flush() -> None:
        await emitter.flush()
        await table.flush()

    def store(lead_id: str, state: dict[str, Any], partition: int) -> None:
        table.put(lead_id, state, partition)
        index.index(lead_id, partition, state)

    async def reject(err: LeadflowError, msg: Any) -> None:
        stats.dead_letters[str(err.code)] += 1
        key = msg.key.decode("utf-8", "replace") if msg.key else None
        if key and (table.get(key) or {}).get("erased"):
            # An erased lead's bad record read again: dead-lettered without its bytes.
            err = LeadflowError(err.code, erasure.ERASED, err.field)
            msg = SimpleNamespace(key=msg.key, value=b"", topic=msg.topic,
                                  partition=msg.partition, offset=msg.offset)
        await emitter.reject(err, msg)

    async def handle(spec: topics.TopicSpec, msg: Any) -> int | None:
        """Process one message; returns the event time of an inbound event it accepted."""
        now = time.time()
        now_ms = int(now * 1000)
        stats.saw_event(msg.topic, now)
        try:
            record = codec.decode(msg.value or b"", spec.record)
            if spec is topics.ERASURES:
                forget(record, now_ms, msg.partition)
                return
            if spec is topics.IDENTITY_RESOLVED:
                lead_id = record["lead_id"]
                state, added = trace.apply_alias(
                    table.get(lead_id), lead_id, record, now_ms, retention_ms=retention_ms
                )
                if added:
                    table.put(lead_id, state, msg.partition)
                    stats.aliases += lead_id == record["alias_lead_id"] != record[
                        "canonical_lead_id"
                    ]
                return
            if spec is topics.ROUTED:
                lead_id = record["lead_id"]
                state = table.get(lead_id) or trace.new_state(lead_id)
                sends = handoff.on_event(
                    app.policies, state, "routed", record, now_ms=now_ms,
                    clock_ms=index.checked(msg.partition, now_ms),
                    settled_ms=index.settled(msg.partition),
                )
                store(lead_id, state, msg.partition)
                dispatch(sends, msg.partition)
                return
            observed = datetime.fromtimestamp(now, UTC)
            record = contract.validate(spec.kind, record, observed_at=observed, max_skew=skew)
            lead_id = record["lead_id"]
            if msg.key is None or msg.key.decode("utf-8", "replace") != lead_id:
                raise LeadflowError(
                    ErrorCode.FIELD_MISMATCH,
                    f"record key {msg.key!r} is not the lead id {lead_id}: inbound topics "
                    "are keyed by lead id so one lead's events stay on one partition",
                    field="key",
                )
        except LeadflowError as err:
            await reject(err, msg)
            return
        step = trace.step_from_record(spec.kind, record, now_ms)
        state, added = trace.apply(
            table.get(lead_id), lead_id, step, now_ms=now_ms, retention_ms=retention_ms
        )
        if not added:
            stats.duplicates[spec.kind] += 1
            return
        sends = handoff.on_event(
            app.policies, state, spec.kind, record, now_ms=now_ms,
            clock_ms=index.current(msg.partition), step=step,
            settled_ms=index.settled(msg.partition),
        )
        # Routing decides in the order inputs were received (core.routing_order).
        received = round(msg.timestamp * 1000) if msg.timestamp else now_ms
        sends = stamp(state, sends, spec.kind, step["occurred_at"], received,
                      record.get("correlation_id"))
        # An erased lead's capture read again (an inbound topic keeps it until its retention)
        # claims no identity: the person is not linked to the lead again.
        # History imported without personal data has no email: nothing to merge it by, ever.
        claim_key = None
        if spec is topics.LEADS and not state.get("erased") and record["email"]:
            claim_key = state["identity_key"] = erasure.identity_key(record["email"])
        store(lead_id, state, msg.partition)
        stats.accepted[spec.kind] += 1
        dispatch(sends, msg.partition)
        if claim_key is not None:
            claim = {
                "email_key": claim_key,
                "lead_id": lead_id,
                "event_id": record["event_id"],
                "occurred_at": record["occurred_at"],
                "correlation_id": record.get("correlation_id"),
            }
            emitter.stage(topics.IDENTITY_CLAIMS, claim_key.encode(), claim)
        return int(step["occurred_at"])

    def forget(record: dict[str, Any], now_ms: int, partition: int) -> None:
        """An erasure of one lead (core.erasure); one by e-mail is the identity agent's."""
        lead_id = record.get("lead_id")
        if not lead_id:
            return
        current = table.get(lead_id)
        key = (current or {}).get("identity_key") or record.get("identity_key")
        state, changed = erasure.mark(current, lead_id, record, now_ms)
        if changed:
            store(lead_id, state, partition)
            stats.erased += 1
            if key and record["via"] != "identity":  # its identity, so its aliases go too
                emitter.stage(topics.ERASURES, key.encode(), erasure.for_identity(record, key))
        eraser.submit(lead_id, record, key)  # files: idempotent, so a repeat retries them

    batch, within = settings.intake_batch, settings.intake_batch_wait_ms / 1000

    def agent_for(spec: topics.TopicSpec) -> Any:
        async def process(events: list[Any]) -> list[Any]:
            done = []
            for event in events:
                occurred = None
                try:
                    occurred = await handle(spec, event.message)
                except Exception as exc:  # a bug must not stop the stream or lose the record
                    key = event.message.key
                    app.log.exception(
                        "intake failed on %s at offset %s", event.message.tp,
                        event.message.offset,
                        extra={"lead_id": key.decode("utf-8", "replace") if key else None})
                    await reject(LeadflowError(ErrorCode.INTERNAL, repr(exc)), event.message)
                index.processed(event.message, occurred, int(time.time() * 1000))
                msg = event.message
                done.append((msg.topic, msg.partition, msg.offset,
                             round(msg.timestamp * 1000) if msg.timestamp else None))
            await flush()
            return done

        async def intake(stream: Any) -> None:
            # Batches amortise the changelog sends; `within` bounds the latency they add.
            async for events in stream.take_events(batch, within=within):
                with acked_if_flushed(events):
                    done = await process(events)
                progress.flushed(done)  # after the flush: a watermark never passes a send

        return intake

    async def judge(partition: int, clock: int, lead_id: str, wall_ms: int) -> None:
        state = table.get(lead_id)
        if state is None:
            return
        sends = handoff.on_clock(app.policies, state, clock, now_ms=wall_ms,
                                 settled_ms=index.settled(partition))
        due = state.get("sla_next")
        if not sends and due is not None and due <= clock:
            index.settling(lead_id, partition, due)  # nothing changed: no changelog write
            return
        store(lead_id, state, partition)
        dispatch(sends, partition)

    register_timer(app, index, judge, flush, settings.sla_tick_s)

    # One agent per topic: each topic has its own contract, and agent.test_context() works.
    for spec in (*topics.INBOUND, topics.IDENTITY_RESOLVED, topics.ROUTED, topics.ERASURES):
        source = app.topic(
            spec.name, key_serializer="raw", value_serializer="raw",
            partitions=settings.partitions,
        )
        app.agent(source, name=f"intake.{spec.name}")(agent_for(spec))
