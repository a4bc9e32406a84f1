"""Replay a scenario straight onto the inbound Kafka topics, as any Avro producer would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streams import topics
from streams.simulate.model import Delivery, Scenario
from streams.simulate.report import Pacer, Progress, SendReport

if TYPE_CHECKING:
    from streams.codec import Codec

SOURCE_SYSTEM = "simulator"
# Far above any id a registry hands out, so the worker cannot resolve it: UNKNOWN_SCHEMA.
UNKNOWN_SCHEMA_ID = 2_000_000_000
_IN_FLIGHT = 5_000


@dataclass(frozen=True, slots=True)
class KafkaPlan:
    topic: str
    key: bytes | None
    record: dict[str, Any] | None  # None: ``raw`` goes as it is
    raw: bytes
    expected: str  # what the worker must do with it (may differ from the HTTP expectation)


def kafka_plan(d: Delivery) -> KafkaPlan:
    """Map a delivery's body to the record a Kafka producer would write (no encoding yet).

    A body the mappers refuse cannot become an Avro record, so it travels as its raw bytes
    and the worker, finding no Confluent framing, dead-letters it as BAD_ENCODING.
    """
    from streams.core import payloads
    from streams.errors import LeadflowError

    key = d.lead_id.encode() if d.lead_id else None
    topic = _topic_guess(d)
    if d.transport == "kafka" and d.bad_kind == "garbage_bytes":
        return KafkaPlan(topic.name, key, None, d.body, d.expected)
    try:
        doc = json.loads(d.body)
        if d.channel == "lead":
            kind, record = "lead", payloads.lead_from_json(doc, source_system=SOURCE_SYSTEM)
        elif d.channel == "activity":
            kind = "activity"
            record = payloads.activity_from_json(doc, source_system=SOURCE_SYSTEM)
        else:
            kind, record = payloads.crm_webhook(
                doc, webhook_id=d.webhook_id, correlation_id=None, source_system=SOURCE_SYSTEM
            )
    except (ValueError, LeadflowError):  # json.JSONDecodeError is a ValueError
        return KafkaPlan(topic.name, key, None, d.body, "BAD_ENCODING")
    return KafkaPlan(topics.BY_KIND[kind].name, key, record, d.body, d.expected)


def _topic_guess(d: Delivery) -> topics.TopicSpec:
    if d.channel == "lead":
        return topics.LEADS
    if d.channel == "activity":
        return topics.ACTIVITY
    return topics.TOUCHES if b"lead.touch.logged" in d.body else topics.STATUS


def encode_plan(plan: KafkaPlan, codec: Codec, bad_kind: str | None) -> tuple[bytes, str]:
    """The value bytes for ``plan`` and the final expectation."""
    from streams.errors import LeadflowError

    if plan.record is None:
        return plan.raw, plan.expected
    spec = topics.BY_NAME[plan.topic]
    try:
        value = codec.encode(spec.subject, spec.record, plan.record)
    except LeadflowError:
        return plan.raw, "BAD_ENCODING"
    if bad_kind == "unknown_schema":
        # A valid Avro body under a schema id the registry never issued.
        value = value[:1] + UNKNOWN_SCHEMA_ID.to_bytes(4, "big") + value[5:]
    return value, plan.expected


async def send_kafka(
    scenario: Scenario,
    bootstrap: str,
    codec: Codec,
    *,
    rate: float | None = None,
    progress: bool = True,
    realtime: bool = True,
    linger_ms: int = 20,
) -> SendReport:
    """Produce every delivery to its inbound topic (key: lead id) and report what was sent.

    Kafka gives no per-message verdict, so ``SendReport.by_expected`` is the oracle to hold
    the dead-letter topic and the worker's counters against (it already accounts for bodies
    that had to go as raw bytes). Pacing as in ``send_http``.
    """
    from aiokafka import AIOKafkaProducer

    report = SendReport()
    pacer = Pacer(realtime and scenario.compression > 0, rate)
    bar = Progress(len(scenario.deliveries), progress, "kafka")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all")
    await producer.start()
    pending: list[asyncio.Future[Any]] = []
    # History sent at once (not paced): each record carries when its source delivered it, as
    # the Kafka that held a backlog would; routing decides in that order (core.routing_order).
    # Never decreasing, as a broker's own timestamps.
    stamped, stamp = not pacer.realtime, 0
    try:
        for d in scenario.deliveries:
            await pacer.wait(d.due_s)
            plan = kafka_plan(d)
            value, expected = encode_plan(plan, codec, d.bad_kind)
            if value is plan.raw and d.bad_kind != "garbage_bytes":
                report.raw_fallbacks += 1
            if stamped:
                stamp = max(stamp, d.delivered_ms or stamp)
            pending.append(await producer.send(plan.topic, value, key=plan.key,
                                               timestamp_ms=stamp if stamped else None))
            report.by_topic[plan.topic] += 1
            report.by_expected[expected] += 1
            report.sent += 1
            if len(pending) >= _IN_FLIGHT:
                await _settle(pending, report, bar)
        await producer.flush()
        await _settle(pending, report, bar)
    finally:
        await producer.stop()
        bar.close()
    report.elapsed_s = pacer.elapsed()
    return report


async def _settle(pending: list[asyncio.Future[Any]], report: SendReport, bar: Progress) -> None:
    results = await asyncio.gather(*pending, return_exceptions=True)
    report.errors += sum(1 for r in results if isinstance(r, BaseException))
    bar.update(len(pending))
    pending.clear()
