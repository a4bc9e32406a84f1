"""Dead letters: every rejected input, with its original bytes, a code and where it came from."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from streams.errors import LeadflowError


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
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "error_code": str(err.code),
        "detail": err.detail[:2000],
        "field": err.field,
        "source_topic": source_topic,
        "source_partition": partition,
        "source_offset": offset,
        "original_key": key,
        "original_value": value,
        "observed_at": observed_at or datetime.now(UTC),
        "correlation_id": correlation_id,
    }
