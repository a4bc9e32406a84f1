"""Owner notifications: what leadflow POSTs to the configured webhook when it routes a lead,
and when a rep's deadline passes with nothing that meets it (an overdue notice).

The body follows the Standard Webhooks shape (``type``, ``timestamp``, ``data``) and is signed
the same way inbound webhooks are; the message id is the LeadRouted event id, so a receiver
that sees a retry or a replay again can drop it by ``webhook-id``. No personal data: the rep
opens the lead in the CRM (or leadflow's trace) by its id.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

ASSIGNED, QUEUED, OVERDUE = "lead.assigned", "lead.queued", "lead.sla_overdue"


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


def overdue_notification(verdict: dict[str, Any]) -> tuple[str, bytes]:
    """(message id, JSON body) chasing the owner of an overdue clause (an SlaEvaluated with
    status OVERDUE): the deadline passed and nothing read so far meets it."""
    body = {
        "type": OVERDUE,
        "timestamp": _iso(verdict["occurred_at"]),
        "data": {
            "leadId": verdict["lead_id"],
            "ownerId": verdict.get("owner_id"),
            "clause": verdict["clause"],
            "deadline": _iso(verdict.get("deadline")),
            "detail": verdict.get("detail"),
            "verdictKey": verdict.get("verdict_key"),
            "correlationId": verdict.get("correlation_id"),
        },
    }
    return verdict["event_id"], json.dumps(body, separators=(",", ":")).encode()


def retryable(status: int | None) -> bool:
    """Worth trying again: no answer (None), a timeout, rate limiting or a server error. Any
    other refusal (400, 401, 404, ...) will not change by waiting."""
    return status is None or status in (408, 425, 429) or status >= 500


def delays(attempts: int, first_s: float) -> list[float]:
    """Waits between ``attempts`` tries: doubling from ``first_s``."""
    return [first_s * 2**i for i in range(max(attempts - 1, 0))]
