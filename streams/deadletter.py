"""Dead letters: every rejected input, with its original bytes, a code and where it came from.

``leadflow.dead-letters`` is compacted (and deleted after its retention): each dead letter is
keyed by where its input came from (``key_of``), so an erasure deletes a person's dead letters
with tombstones (``tombstone``) and a reader takes a null value for a dead letter erased.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from streams.codec import DEFAULT_MAX_RECORD_BYTES
from streams.errors import LeadflowError

# Room in a dead letter for everything but the original key and value: the detail (at most
# 2,000 characters, up to 8,000 bytes of UTF-8), source, field, ids, the Avro overhead.
_ENVELOPE_BYTES = 32_768
_KEY_BYTES = 16_384


def dead_letter(
    err: LeadflowError,
    *,
    source_topic: str,
    value: bytes,
    key: bytes | None = None,
    partition: int | None = None,
    offset: int | None = None,
    correlation_id: str | None = None,
    observed_at: datetime | None = None,
    limit: int = DEFAULT_MAX_RECORD_BYTES,
) -> dict[str, Any]:
    """The DeadLetter record of ``err``. It must fit the record size limit (``limit``, the
    codec's), else the rejection itself fails: an input over the limit (TOO_LARGE) keeps only
    its first bytes, and the detail says how many of how many."""
    detail = err.detail[:2000]
    cut = []
    if key is not None and len(key) > _KEY_BYTES:
        cut.append(f"key truncated to {_KEY_BYTES} of {len(key)} bytes")
        key = key[:_KEY_BYTES]
    room = max(0, limit - _ENVELOPE_BYTES - len(key or b""))
    if len(value) > room:
        cut.append(f"value truncated to {room} of {len(value)} bytes")
        value = value[:room]
    if cut:
        detail = f"{detail} ({'; '.join(cut)})"
    return {
        "event_id": str(uuid.uuid4()),
        "error_code": str(err.code),
        "detail": detail,
        "field": err.field,
        "source_topic": source_topic,
        "source_partition": partition,
        "source_offset": offset,
        "original_key": key,
        "original_value": value,
        "observed_at": observed_at or datetime.now(UTC),
        "correlation_id": correlation_id,
    }


def key_of(letter: dict[str, Any]) -> bytes:
    """The Kafka key of a dead letter: its input's coordinates (the same record rejected again,
    after a restart, gets the same key: compaction keeps the last), or for an input that came
    over HTTP the route and the letter's own event id (every request is an input of its own).
    Never null: a compacted topic refuses a record without a key."""
    if letter.get("source_partition") is not None and letter.get("source_offset") is not None:
        where = f"{letter['source_partition']}/{letter['source_offset']}"
    else:
        where = letter["event_id"]
    return f"{letter['source_topic']}/{where}".encode()


async def tombstone(producer: Any, letters: Iterable[tuple[int, str]], timeout_s: float) -> int:
    """Send a tombstone (null value) for each (partition, key) of ``leadflow.dead-letters``
    and wait for the broker to acknowledge them all; returns how many. ``producer``: an
    aiokafka producer."""
    from streams import topics

    futures = [await producer.send(topics.DEAD_LETTERS.name, value=None, key=key.encode(),
                                   partition=partition)
               for partition, key in sorted(set(letters))]
    if futures:
        await asyncio.wait_for(asyncio.gather(*futures), timeout_s)
    return len(futures)
