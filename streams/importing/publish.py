"""Mapped rows onto the inbound topics, as any Avro producer would: Confluent framing with
the registry's schema ids, keyed by lead id so one lead's events stay in order on one
partition (the worker then treats them exactly like live input)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from streams import topics
from streams.codec import Codec
from streams.errors import ErrorCode, LeadflowError
from streams.importing.rows import MappedRow
from streams.settings import Settings

# Sends awaiting their acknowledgement before we wait for them: bounds memory on big files.
_IN_FLIGHT = 5_000


async def publish(
    settings: Settings,
    rows: Iterable[MappedRow],
    *,
    on_row: Callable[[MappedRow], None] | None = None,
    codec: Codec | None = None,
) -> Counter[str]:
    """Produce every record of ``rows``; return the records acknowledged per topic.

    Raises ``LeadflowError(UNAVAILABLE)`` when the broker cannot be reached or does not
    acknowledge a record (a re-run is safe: the worker drops what it already has)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    from streams.kafka import ensure_topics

    if codec is None:
        from streams.app import make_registry

        codec = Codec(make_registry(settings), settings.max_record_bytes)
    sent: Counter[str] = Counter()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, acks="all",
        linger_ms=max(settings.producer_linger_ms, 20),
    )
    try:
        await ensure_topics(settings)
        await producer.start()
    except (KafkaError, OSError) as exc:
        await producer.stop()
        raise LeadflowError(
            ErrorCode.UNAVAILABLE, f"broker at {settings.bootstrap} unreachable: {exc!r}"
        ) from exc
    pending: list[tuple[str, asyncio.Future[Any]]] = []
    try:
        for row in rows:
            key = row.lead_id.encode()
            for kind, record in row.records:
                spec = topics.BY_KIND[kind]
                value = codec.encode(spec.subject, spec.record, record)
                pending.append((spec.name, await producer.send(spec.name, value, key=key)))
            if on_row is not None:
                on_row(row)
            if len(pending) >= _IN_FLIGHT:
                await _settle(pending, sent)
        await producer.flush()
        await _settle(pending, sent)
    finally:
        await producer.stop()
    return sent


async def _settle(pending: list[tuple[str, asyncio.Future[Any]]], sent: Counter[str]) -> None:
    results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    for (topic, _), result in zip(pending, results, strict=True):
        if not isinstance(result, BaseException):
            sent[topic] += 1
    pending.clear()
    if failed:
        raise LeadflowError(
            ErrorCode.UNAVAILABLE,
            f"the broker did not acknowledge {len(failed)} record(s): {failed[0]!r}",
        )
