"""Owner notifications, pure: the body, what is retried, and how long between tries."""

import json
from datetime import UTC, datetime

from streams import webhooks
from streams.core import outbound

ROUTED = {
    "event_id": "6f1c4e0a-1b2c-4d3e-8f90-112233445566", "lead_id": "lead-1",
    "owner_id": "rep-amy", "queue": None, "rule": "territory", "candidates": ["rep-amy"],
    "tier": "HAND_RAISER", "first_touch_due_at": datetime(2026, 11, 16, 15, 15, tzinfo=UTC),
    "next_status_update_due_at": datetime(2026, 11, 18, 15, 0, tzinfo=UTC),
    "occurred_at": datetime(2026, 11, 16, 15, 0, tzinfo=UTC), "correlation_id": None,
}


def test_an_assignment_names_the_owner_and_the_deadlines_and_can_be_verified():
    msg_id, body = outbound.notification(ROUTED)
    doc = json.loads(body)
    assert msg_id == ROUTED["event_id"]
    assert doc["type"] == "lead.assigned" and doc["timestamp"] == "2026-11-16T15:00:00Z"
    assert doc["data"]["ownerId"] == "rep-amy"
    assert doc["data"]["firstTouchDueAt"] == "2026-11-16T15:15:00Z"
    secret = "whsec_dGVzdC1zZWNyZXQtZm9yLWxlYWRmbG93LXRlc3Rz"
    assert webhooks.verify([secret], webhooks.sign(secret, msg_id, body), body) == msg_id


def test_a_lead_without_an_owner_is_announced_as_queued():
    _, body = outbound.notification({**ROUTED, "owner_id": None, "queue": "unassigned"})
    doc = json.loads(body)
    assert doc["type"] == "lead.queued" and doc["data"]["queue"] == "unassigned"


def test_only_answers_that_may_change_are_retried():
    assert all(outbound.retryable(s) for s in (None, 408, 425, 429, 500, 502, 503))
    assert not any(outbound.retryable(s) for s in (400, 401, 403, 404, 410, 422))


def test_waits_double_between_attempts():
    assert outbound.delays(5, 0.5) == [0.5, 1.0, 2.0, 4.0]
    assert outbound.delays(1, 1.0) == []
