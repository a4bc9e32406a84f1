"""Meetings count: booked is a hand-raise, held is a touch, a no-show is in the trace."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streams import topics
from streams.core import features as feats
from streams.core import payloads, trace
from tests.unit.test_handoff import HOUR, MIN, T0, feed, lead, p, routed, verdicts  # noqa: F401

LEAD = "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"


def meeting(kind: str, at: int, rep: str = "rep-amy", **props: str) -> dict[str, Any]:
    body = {"leadId": LEAD, "type": kind, "campaignId": "cmp-2026-q4-webinar-b",
            "properties": {"meetingId": "mtg-1", "repId": rep, **props},
            "timestamp": "2026-11-16T15:00:00Z", "eventId": str(uuid.uuid4())}
    record = payloads.activity_from_json(body)
    record["occurred_at"] = at
    return record


@pytest.mark.parametrize(("sent", "symbol"), [
    ("meeting_booked", "MEETING_BOOKED"), ("meeting rescheduled", "MEETING_RESCHEDULED"),
    ("meeting_cancelled", "MEETING_CANCELLED"), ("meeting_canceled", "MEETING_CANCELLED"),
    ("meeting_held", "MEETING_HELD"), ("meeting_completed", "MEETING_HELD"),
    ("meeting_no_show", "MEETING_NO_SHOW"), ("MEETING_NOSHOW", "MEETING_NO_SHOW"),
])
def test_meeting_spellings(sent: str, symbol: str) -> None:
    assert meeting(sent, T0)["activity_type"] == symbol


def test_a_booked_meeting_is_a_hand_raise(p) -> None:  # noqa: F811
    f = feats.update(None, "lead", lead(triggerActions=["viewed_pricing_page"]))
    assert feats.tier(f, p.scoring) == feats.STANDARD
    feats.update(f, "activity", meeting("meeting_booked", T0 + MIN))
    assert feats.tier(f, p.scoring) == feats.HAND_RAISER
    assert p.model.score(f).score > p.model.score(
        feats.update(None, "lead", lead(triggerActions=["viewed_pricing_page"]))).score


def routed_lead(p) -> dict[str, Any]:  # noqa: F811
    state, sends = feed(p, None, "lead", lead(), None)
    state, _ = feed(p, state, "routed", routed(sends), T0)
    return state


def test_a_held_meeting_meets_first_touch(p) -> None:  # noqa: F811
    state = routed_lead(p)
    state, sends = feed(p, state, "activity", meeting("meeting_held", T0 + 2 * HOUR),
                        T0 + 2 * HOUR)
    assert verdicts(sends) == {"FIRST_TOUCH": "MET"}
    step = next(s for s in state["steps"] if s["detail"].get("type") == "MEETING_HELD")
    assert step["detail"]["rep"] == "rep-amy" and step["detail"]["meeting"] == "mtg-1"
    summary = trace.summary(trace.timeline([state]))
    assert summary["capture_to_first_touch_ms"] == 2 * HOUR


def test_booked_cancelled_and_no_show_meetings_are_no_touch(p) -> None:  # noqa: F811
    state = routed_lead(p)
    for i, kind in enumerate(("meeting_booked", "meeting_cancelled", "meeting_no_show")):
        at = T0 + (i + 1) * MIN
        state, sends = feed(p, state, "activity", meeting(kind, at), at)
        assert "FIRST_TOUCH" not in verdicts(sends)
    no_show = next(s for s in state["steps"] if s["detail"].get("type") == "MEETING_NO_SHOW")
    assert no_show["kind"] == "ACTIVITY" and no_show["detail"]["rep"] == "rep-amy"
    deadline = T0 + p.contract.first_touch_window(state["routed"]["tier"])
    late = deadline + p.contract.grace_ms + p.contract.max_lateness_ms + 1
    from streams.core import handoff

    assert verdicts(handoff.on_clock(p, state, late, now_ms=0)) == {"FIRST_TOUCH": "BREACHED"}


def test_a_meeting_held_before_routing_is_no_touch_of_the_owner(p) -> None:  # noqa: F811
    state, sends = feed(p, None, "lead", lead(), None)
    state, _ = feed(p, state, "activity", meeting("meeting_held", T0 - HOUR), None)
    state, sends = feed(p, state, "routed", routed(sends), T0)
    assert "FIRST_TOUCH" not in verdicts(sends)
    assert all(s is not topics.SLA or r["clause"] != "FIRST_TOUCH" for s, _, r in sends)
