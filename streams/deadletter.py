"""Dead letters: every rejected input, with its original bytes, a code and where it came from."""

from __future__ import annotations

import uuid
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
