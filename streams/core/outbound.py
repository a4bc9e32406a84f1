"""Owner notifications: what leadflow POSTs to the configured webhook when it routes a lead.

The body follows the Standard Webhooks shape (``type``, ``timestamp``, ``data``) and is signed
the same way inbound webhooks are; the message id is the LeadRouted event id, so a receiver
that sees a retry or a replay again can drop it by ``webhook-id``. No personal data: the rep
opens the lead in the CRM (or leadflow's trace) by its id.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

ASSIGNED, QUEUED = "lead.assigned", "lead.queued"


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int):
        value = datetime.fromtimestamp(value / 1000, UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def notification(routed: dict[str, Any]) -> tuple[str, bytes]:
    """(message id, JSON body) announcing a LeadRouted record."""
    body = {
        "type": ASSIGNED if routed.get("owner_id") else QUEUED,
        "timestamp": _iso(routed["occurred_at"]),
        "data": {
            "leadId": routed["lead_id"],
            "ownerId": routed.get("owner_id"),
            "queue": routed.get("queue"),
            "rule": routed.get("rule"),
            "tier": routed.get("tier"),
            "candidates": list(routed.get("candidates") or ()),
            "firstTouchDueAt": _iso(routed.get("first_touch_due_at")),
            "nextStatusUpdateDueAt": _iso(routed.get("next_status_update_due_at")),
            "correlationId": routed.get("correlation_id"),
        },
    }
    return routed["event_id"], json.dumps(body, separators=(",", ":")).encode()


def retryable(status: int | None) -> bool:
    """Worth trying again: no answer (None), a timeout, rate limiting or a server error. Any
    other refusal (400, 401, 404, ...) will not change by waiting."""
    return status is None or status in (408, 425, 429) or status >= 500


def delays(attempts: int, first_s: float) -> list[float]:
    """Waits between ``attempts`` tries: doubling from ``first_s``."""
    return [first_s * 2**i for i in range(max(attempts - 1, 0))]
