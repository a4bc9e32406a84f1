"""The SLA contract: configuration, per-lead clocks (exactly once, out of order within grace)
and the monthly marketing clauses."""

from __future__ import annotations

import copy
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import sla
from streams.core.contract import epoch_ms
from streams.core.durations import Calendar
from streams.core.sla import (
    BREACHED,
    DISQUALIFICATION_REASON,
    FIRST_TOUCH,
    MET,
    OWNER_ASSIGNED,
    STATUS_UPDATE,
    Contract,
    Verdict,
)

S, M, H, D = 1000, 60_000, 3_600_000, 86_400_000
T0 = epoch_ms(datetime(2026, 11, 23, 10, 0, tzinfo=UTC))  # a Monday
C = Contract()
LEADFLOW_TOML = Path(__file__).parents[2] / "leadflow.toml"


def at(tz: str, *parts: int) -> int:
    return epoch_ms(datetime(*parts, tzinfo=ZoneInfo(tz)))


def routed(contract: Contract = C, *, tier: str = "STANDARD", owner: str | None = "rep-amy",
           region: str | None = None, routed_at: int = T0) -> tuple[dict, list[Verdict]]:
    return sla.route_clocks(contract, None, tier=tier, owner=owner, campaign_id="webinar-b",
                            region=region, routed_at=routed_at)


def status(contract: Contract, state: Any, when: int, to: str = "WORKING",
           reason: bool = True, notes: bool = True) -> tuple[Any, list[Verdict]]:
    return sla.on_status(contract, state, when, to, has_reason=reason, has_notes=notes)


# --- configuration -----------------------------------------------------------------------------


def test_defaults() -> None:
    c = Contract.from_config({})
    assert c == Contract()
    assert c.version == "2026-11" and c.grace_ms == M
    assert c.first_touch_ms == {"HAND_RAISER": 15 * M, "STANDARD": 24 * H}
    assert not c.business_hours and c.status_update_every_ms == 48 * H
    assert c.require_disqualification_reason and not c.reassign_on_first_touch_breach
    assert (c.min_mqls_per_month, c.max_disqualification_rate, c.min_context_complete) == (
        250, 0.30, 0.90)
    assert c.settle_ms == 14 * D
    assert c.calendar_for(None) == c.calendar_for("Mars") == Calendar()


def test_the_shipped_configuration_parses() -> None:
    section = tomllib.loads(LEADFLOW_TOML.read_text())["sla"]
    c = Contract.from_config(section)
    assert c.calendar_for("NA-West") == Calendar("America/Los_Angeles")


def test_spec_example() -> None:
    c = Contract.from_config({
        "version": "2027-01", "grace": "30s",
        "sales": {"first_touch": {"HAND_RAISER": "5m"}, "business_hours": True,
                  "status_update_every": "2d", "reassign_on_first_touch_breach": True},
        "marketing": {"min_mqls_per_month": 100, "max_disqualification_rate": 0.25,
                      "min_context_complete": 1, "settle": "7d"},
        "calendar": {"default": {"timezone": "Europe/Berlin", "hours": "08:00-16:00"},
                     "NA-West": {"timezone": "America/Los_Angeles", "days": ["Mon", "Tue"]}},
    })
    assert c.version == "2027-01" and c.grace_ms == 30 * S
    # A tier given overrides its window; the others keep theirs.
    assert c.first_touch_ms == {"HAND_RAISER": 5 * M, "STANDARD": 24 * H}
    assert c.business_hours and c.reassign_on_first_touch_breach
    assert c.status_update_every_ms == 2 * D and c.settle_ms == 7 * D
    assert c.min_context_complete == 1.0
    assert c.calendar_for("EMEA") == Calendar("Europe/Berlin", 480, 960)
    # Regions inherit what they leave out from the default calendar.
    assert c.calendar_for("NA-West") == Calendar("America/Los_Angeles", 480, 960,
                                                  frozenset({0, 1}))
    assert c.first_touch_window("MYSTERY") == 24 * H  # an unlisted tier gets STANDARD's


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"grace": "1 minute"}, "sla.grace"),
        ({"version": 2026}, "sla.version"),
        ({"versoin": "x"}, "versoin"),
        ({"sales": {"first_touch": {"HAND_RAISER": "fast"}}}, "sla.sales.first_touch.HAND"),
        ({"sales": {"first_touch": {"HAND_RAISER": "0m"}}}, "HAND_RAISER"),
        ({"sales": {"first_touch": {}}}, "sla.sales.first_touch"),
        ({"sales": {"first_touch": "15m"}}, "sla.sales.first_touch"),
        ({"sales": {"business_hours": "yes"}}, "sla.sales.business_hours"),
        ({"sales": {"status_update_every": "0s"}}, "status_update_every"),
        ({"sales": {"first_tuch": {}}}, "first_tuch"),
        ({"sales": []}, "sla.sales"),
        ({"marketing": {"min_mqls_per_month": -1}}, "sla.marketing.min_mqls_per_month"),
        ({"marketing": {"min_mqls_per_month": "250"}}, "sla.marketing.min_mqls_per_month"),
        ({"marketing": {"min_mqls_per_month": True}}, "sla.marketing.min_mqls_per_month"),
        ({"marketing": {"max_disqualification_rate": 1.5}}, "max_disqualification_rate"),
        ({"marketing": {"min_context_complete": "90%"}}, "min_context_complete"),
        ({"marketing": {"settle": 14}}, "sla.marketing.settle"),
        ({"calendar": {"default": {"timezone": "Mars/Olympus"}}}, "sla.calendar.default"),
        ({"calendar": {"NA-West": {"hours": "17:00-09:00"}}}, "sla.calendar.NA-West"),
        ({"calendar": {"EMEA": {"days": ["Mon", "Funday"]}}}, "sla.calendar.EMEA"),
        ({"calendar": {"EMEA": "Europe/Berlin"}}, "sla.calendar.EMEA"),
    ],
)
def test_bad_config_names_the_key(section: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        Contract.from_config(section)


# --- routing: OWNER_ASSIGNED and the deadlines ----------------------------------------------------


def test_routing_opens_clocks_by_tier() -> None:
    state, verdicts = routed(tier="HAND_RAISER")
    assert state["clocks"][FIRST_TOUCH]["deadline"] == T0 + 15 * M
    assert state["clocks"][STATUS_UPDATE]["deadline"] == T0 + 48 * H
    assert [v.clause for v in verdicts] == [OWNER_ASSIGNED]
    v = verdicts[0]
    assert (v.party, v.verdict, v.met_at, v.evaluated_at) == ("SALES", MET, T0, T0)
    assert (v.owner_id, v.tier, v.campaign_id, v.version) == ("rep-amy", "HAND_RAISER",
                                                              "webinar-b", "2026-11")
    assert routed(tier="STANDARD")[0]["clocks"][FIRST_TOUCH]["deadline"] == T0 + 24 * H
    assert json.loads(json.dumps(state)) == state
    assert json.loads(json.dumps(v.as_dict())) == v.as_dict()


def test_no_owner_breaches_owner_assigned() -> None:
    _, verdicts = routed(owner=None)
    assert (verdicts[0].verdict, verdicts[0].met_at, verdicts[0].evaluated_at) == (
        BREACHED, None, T0)


def test_reassignment_only_changes_the_owner() -> None:
    state, _ = routed(tier="HAND_RAISER", owner=None)
    before = copy.deepcopy(state)
    state, verdicts = sla.route_clocks(C, state, tier="STANDARD", owner="rep-ben",
                                       campaign_id="x", region="EMEA", routed_at=T0 + H)
    assert verdicts == []
    assert state == {**before, "owner": "rep-ben"}
    state, verdicts = sla.on_touch(C, state, T0 + 5 * M)
    assert verdicts[0].owner_id == "rep-ben"


def test_business_hours_deadline_across_a_weekend_and_dst() -> None:
    c = Contract.from_config({
        "sales": {"business_hours": True},
        "calendar": {"EMEA": {"timezone": "Europe/Berlin"},
                     "NA-West": {"timezone": "America/Los_Angeles"}},
    })
    # Routed Friday 16:50 in Berlin; the clocks go forward on Sunday 2026-03-29.
    friday = at("Europe/Berlin", 2026, 3, 27, 16, 50)
    state, _ = routed(c, tier="HAND_RAISER", region="EMEA", routed_at=friday)
    assert state["clocks"][FIRST_TOUCH]["deadline"] == at("Europe/Berlin", 2026, 3, 30, 9, 5)
    assert state["clocks"][FIRST_TOUCH]["deadline"] == friday + 2 * D + 15 * H + 15 * M
    # Status updates are plain time, whatever the calendar.
    assert state["clocks"][STATUS_UPDATE]["deadline"] == friday + 48 * H
    # 24h of business hours from Friday 12:00 in LA, across the March DST switch.
    la_friday = at("America/Los_Angeles", 2026, 3, 6, 12, 0)
    state, _ = routed(c, region="NA-West", routed_at=la_friday)
    assert state["clocks"][FIRST_TOUCH]["deadline"] == at("America/Los_Angeles", 2026, 3, 11, 12)
    # Outside any configured region: the default (UTC) calendar; Friday 20:00 UTC is closed.
    state, _ = routed(c, region="APAC", routed_at=la_friday)
    assert state["clocks"][FIRST_TOUCH]["deadline"] == at("UTC", 2026, 3, 11, 17, 0)
    # A touch's business-time response shows in the detail.
    _, verdicts = sla.on_touch(c, state, at("UTC", 2026, 3, 9, 10, 0))
    assert verdicts[0].verdict == MET and "1h business" in verdicts[0].detail


# --- FIRST_TOUCH ---------------------------------------------------------------------------------


def test_touch_in_time() -> None:
    state, _ = routed(tier="HAND_RAISER")
    state, verdicts = sla.on_touch(C, state, T0 + 15 * M)  # at the deadline is in time
    assert [(v.clause, v.verdict, v.met_at, v.deadline) for v in verdicts] == [
        (FIRST_TOUCH, MET, T0 + 15 * M, T0 + 15 * M)]
    assert state["done"][FIRST_TOUCH] == MET
    assert FIRST_TOUCH not in state["clocks"]
    assert sla.on_touch(C, state, T0 + 16 * M)[1] == []


def test_late_touch_beyond_grace_breaches_at_once() -> None:
    state, _ = routed(tier="HAND_RAISER")
    state, verdicts = sla.on_touch(C, state, T0 + 2 * H)
    v = verdicts[0]
    assert (v.verdict, v.met_at, v.evaluated_at, v.deadline) == (
        BREACHED, T0 + 2 * H, T0 + 2 * H, T0 + 15 * M)
    assert "1h 45m late" in v.detail


def test_late_touch_within_grace_waits_for_an_earlier_one() -> None:
    state, _ = routed(tier="HAND_RAISER")
    deadline = T0 + 15 * M
    state, verdicts = sla.on_touch(C, state, deadline + 20 * S)
    assert verdicts == []  # an in-time touch may still arrive
    state, verdicts = sla.on_touch(C, state, deadline - 10 * S)
    assert [(v.verdict, v.met_at) for v in verdicts] == [(MET, deadline - 10 * S)]


def test_touch_exactly_grace_after_the_deadline_still_waits() -> None:
    # An event may arrive up to grace after a later one: at exactly deadline + grace an in-time
    # touch (at the deadline) can still come.
    state, _ = routed(tier="HAND_RAISER")
    deadline = T0 + 15 * M
    state, verdicts = sla.on_touch(C, state, deadline + M)
    assert verdicts == []
    assert sla.due(C, copy.deepcopy(state), deadline + M)[1] == []
    state, verdicts = sla.on_touch(C, state, deadline)
    assert [(v.verdict, v.met_at) for v in verdicts] == [(MET, deadline)]


def test_late_touch_within_grace_is_judged_by_the_timer() -> None:
    state, _ = routed(tier="HAND_RAISER")
    deadline = T0 + 15 * M
    state, _ = sla.on_touch(C, state, deadline + 20 * S)
    state, verdicts = sla.due(C, state, deadline + M + 1)
    assert [(v.clause, v.verdict, v.met_at, v.evaluated_at) for v in verdicts] == [
        (FIRST_TOUCH, BREACHED, deadline + 20 * S, deadline + 20 * S)]


def test_touches_before_routing_count_for_nothing() -> None:
    assert sla.on_touch(C, None, T0) == (None, [])
    state, _ = routed()
    state, verdicts = sla.on_touch(C, state, T0 - 1)  # dated before routing, arriving after
    assert verdicts == [] and FIRST_TOUCH in state["clocks"]


# --- timers and exactly-once ---------------------------------------------------------------------


def test_due_and_next_due() -> None:
    state, _ = routed(tier="HAND_RAISER")
    first = T0 + 15 * M + M + 1
    assert sla.next_due(C, state) == first
    assert sla.due(C, state, first - 1)[1] == []
    state, verdicts = sla.due(C, state, first)
    assert [(v.clause, v.verdict, v.met_at, v.evaluated_at) for v in verdicts] == [
        (FIRST_TOUCH, BREACHED, None, T0 + 15 * M)]
    assert verdicts[0].detail == "no touch within 15m"
    assert sla.next_due(C, state) == T0 + 48 * H + M + 1
    # Exactly once: the timer again, a touch after the breach.
    assert sla.due(C, state, first + H)[1] == []
    assert sla.on_touch(C, state, first + H)[1] == []
    state, verdicts = sla.due(C, state, T0 + 100 * H)
    assert [(v.clause, v.verdict, v.evaluated_at) for v in verdicts] == [
        (STATUS_UPDATE, BREACHED, T0 + 48 * H)]
    assert sla.next_due(C, state) is None
    assert sla.due(C, state, T0 + 1000 * H)[1] == []
    assert state["done"] == {OWNER_ASSIGNED: MET, FIRST_TOUCH: BREACHED, STATUS_UPDATE: BREACHED}
    assert sla.due(C, None, T0) == (None, [])
    assert sla.next_due(C, None) is None


def test_due_orders_verdicts_by_event_time() -> None:
    c = Contract(first_touch_ms={"STANDARD": 72 * H})
    state, _ = routed(c)
    _, verdicts = sla.due(c, state, T0 + 100 * H)
    assert [v.clause for v in verdicts] == [STATUS_UPDATE, FIRST_TOUCH]


# --- STATUS_UPDATE and DISQUALIFICATION_REASON ------------------------------------------------


def test_status_update_chain() -> None:
    state, _ = routed()
    state, v1 = status(C, state, T0 + 40 * H)
    state, v2 = status(C, state, T0 + 87 * H)
    assert v1 == v2 == []
    assert state["clocks"][STATUS_UPDATE]["deadline"] == T0 + 135 * H
    assert sla.next_due(C, state) == T0 + 24 * H + M + 1  # first touch still open, and earlier
    state, verdicts = status(C, state, T0 + 140 * H)
    assert [(v.verdict, v.met_at, v.deadline) for v in verdicts] == [
        (BREACHED, T0 + 140 * H, T0 + 135 * H)]
    assert "5h late" in verdicts[0].detail
    assert status(C, state, T0 + 141 * H, "CLOSED_WON")[1] == []


def test_terminal_status_in_time_is_met() -> None:
    state, _ = routed()
    state, _ = status(C, state, T0 + 40 * H, "SAL")
    state, verdicts = status(C, state, T0 + 80 * H, "CLOSED_LOST")
    assert [(v.clause, v.verdict, v.met_at) for v in verdicts] == [
        (STATUS_UPDATE, MET, T0 + 80 * H)]
    assert "CLOSED_LOST" in verdicts[0].detail


def test_terminal_status_too_late_is_breached() -> None:
    state, _ = routed()
    _, verdicts = status(C, state, T0 + 50 * H, "CLOSED_WON")
    assert [(v.clause, v.verdict, v.met_at) for v in verdicts] == [
        (STATUS_UPDATE, BREACHED, T0 + 50 * H)]


def test_status_updates_out_of_order() -> None:
    deadline = T0 + 48 * H
    # Arrives first, 20 s after the deadline: not judged while an earlier update may come.
    state, _ = routed()
    state, verdicts = status(C, state, deadline + 20 * S)
    assert verdicts == []
    # The earlier one arrives: in time, and it brings the noted one in time too.
    state, verdicts = status(C, state, deadline - 30 * S)
    assert verdicts == []
    assert state["clocks"][STATUS_UPDATE] == {"deadline": deadline + 20 * S + 48 * H, "late": []}
    # Boundaries: exactly grace after the deadline still waits; exactly at it is in time.
    state, _ = routed()
    state, verdicts = status(C, state, deadline + M)
    assert verdicts == []
    state, verdicts = status(C, state, deadline)
    assert verdicts == []
    assert state["clocks"][STATUS_UPDATE] == {"deadline": deadline + M + 48 * H, "late": []}
    # An update that cannot be rescued (beyond grace) is judged at once.
    state, _ = routed()
    state, verdicts = status(C, state, deadline + 5 * M)
    assert [(v.verdict, v.met_at) for v in verdicts] == [(BREACHED, deadline + 5 * M)]
    # A late-arriving earlier update never pulls the deadline back.
    state, _ = routed()
    state, _ = status(C, state, T0 + 30 * H)
    state, _ = status(C, state, T0 + 10 * H)
    assert state["clocks"][STATUS_UPDATE]["deadline"] == T0 + 78 * H


def test_disqualification_reason() -> None:
    state, _ = routed()
    state, verdicts = status(C, state, T0 + H, "DISQUALIFIED", reason=True, notes=False)
    by_clause = {v.clause: v for v in verdicts}
    assert by_clause[DISQUALIFICATION_REASON].verdict == BREACHED
    assert by_clause[DISQUALIFICATION_REASON].detail == "missing: notes"
    assert by_clause[STATUS_UPDATE].verdict == MET  # a disposition in time
    # One verdict per lead, ever.
    assert status(C, state, T0 + 2 * H, "DISQUALIFIED")[1] == []
    state, _ = routed()
    _, verdicts = status(C, state, T0 + H, "DISQUALIFIED")
    assert {v.clause: v.verdict for v in verdicts}[DISQUALIFICATION_REASON] == MET
    relaxed = Contract(require_disqualification_reason=False)
    state, _ = routed(relaxed)
    _, verdicts = status(relaxed, state, T0 + H, "DISQUALIFIED", reason=False, notes=False)
    assert {v.clause: v.verdict for v in verdicts}[DISQUALIFICATION_REASON] == MET
    # Not routed: nothing to judge.
    assert status(C, None, T0, "DISQUALIFIED", reason=False) == (None, [])


def test_context_verdict() -> None:
    ok = sla.context_verdict(C, lead_id="lead-1", complete=True, missing=[], at_ms=T0,
                             campaign_id="webinar-b")
    assert (ok.clause, ok.party, ok.verdict, ok.met_at, ok.lead_id) == (
        "CONTEXT_COMPLETE", "MARKETING", MET, T0, "lead-1")
    bad = sla.context_verdict(C, complete=False, missing=["email", "consent"], at_ms=T0,
                              campaign_id=None)
    assert (bad.verdict, bad.met_at, bad.detail) == (BREACHED, None, "missing: email, consent")


# --- property: arrival order within grace does not change the verdicts ---------------------------

PC = Contract(grace_ms=10 * M, first_touch_ms={"HAND_RAISER": 15 * M, "STANDARD": 60 * M},
              status_update_every_ms=60 * M)
STATUSES = ["WORKING", "SAL", "NO_RESPONSE", "WORKING", "SQL", "DISQUALIFIED", "CLOSED_WON"]
def grid(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Whole minutes, nudged by a millisecond either way: ties and boundaries come up often."""
    return st.builds(lambda m, e: m * M + e, st.integers(lo, hi), st.sampled_from([-1, 0, 1]))


# Arrival delay (within grace, the module's assumption) and whether the timer runs after.
ARRIVAL = st.tuples(grid(0, 10).map(lambda d: min(max(d, 0), 10 * M)), st.booleans())
# Times crowd around the deadlines, where arrival order matters: touches relative to the
# tier's window, status updates as a chain whose gaps straddle the 60m period.
TOUCHES = st.lists(st.tuples(grid(-6, 6) | grid(-20, 20), ARRIVAL), max_size=4)
UPDATES = st.lists(
    st.tuples(grid(0, 10) | grid(56, 64) | grid(40, 80), st.sampled_from(STATUSES), ARRIVAL),
    max_size=6,
)


def reference(tier: str, events: list[tuple]) -> dict[str, tuple]:
    """In event-time order, by the book: clause → (verdict, deadline, met_at)."""
    out: dict[str, tuple] = {}
    deadline = T0 + PC.first_touch_ms[tier]
    touches = sorted(t for kind, t, *_ in events if kind == "touch" and t >= T0)
    if touches and touches[0] <= deadline:
        out[FIRST_TOUCH] = (MET, deadline, touches[0])
    else:
        out[FIRST_TOUCH] = (BREACHED, deadline, touches[0] if touches else None)
    deadline = T0 + PC.status_update_every_ms
    for t, to in sorted((t, to) for kind, t, to, *_ in events if kind == "status" and t >= T0):
        if t > deadline:
            out[STATUS_UPDATE] = (BREACHED, deadline, t)
            break
        if to in sla.TERMINAL:
            out[STATUS_UPDATE] = (MET, deadline, t)
            break
        deadline = t + PC.status_update_every_ms
    else:
        out[STATUS_UPDATE] = (BREACHED, deadline, None)
    return out


@given(st.sampled_from(["HAND_RAISER", "STANDARD"]), TOUCHES, UPDATES,
       st.sampled_from([False, False, False, True]))
@settings(max_examples=400, deadline=None)
def test_verdicts_do_not_depend_on_arrival_order_within_grace(
    tier: str, touches: list[tuple], updates: list[tuple], in_order: bool
) -> None:
    window = PC.first_touch_ms[tier]
    events = [("touch", T0 + window + t, None, *arrival) for t, arrival in touches]
    when = T0
    for gap, to, arrival in updates:
        when += gap
        events.append(("status", when, to, *arrival))
    if in_order:
        events = [(kind, t, to, 0, tick) for kind, t, to, _, tick in events]
    state, verdicts = routed(PC, tier=tier)
    for kind, t, to, delay, tick in sorted(events, key=lambda e: (e[1] + e[3], e[1])):
        if kind == "touch":
            state, got = sla.on_touch(PC, state, t)
        else:
            state, got = status(PC, state, t, to)
        verdicts += got
        if tick:  # the timer at the arrival time: it too is bound by grace
            state, got = sla.due(PC, state, t + delay)
            verdicts += got
    state, got = sla.due(PC, state, T0 + 1000 * H)
    verdicts += got
    assert json.loads(json.dumps(state)) == state
    clauses = [v.clause for v in verdicts]
    assert len(clauses) == len(set(clauses))  # exactly once
    ours = {v.clause: v for v in verdicts}
    for clause, (verdict, deadline, met_at) in reference(tier, events).items():
        v = ours[clause]
        assert v.verdict == verdict, clause
        if verdict == BREACHED:
            assert v.deadline == deadline, clause
        if v.met_at is None:
            # The clock ran out (the timer passed deadline + grace) before a late event was
            # seen: in event-time order that event is past deadline + grace; out of order it
            # can only be late anyway.
            slack = PC.grace_ms if in_order else 0
            assert verdict == BREACHED and v.evaluated_at == deadline, clause
            assert met_at is None or met_at > deadline + slack, clause
        elif in_order:  # fed in event-time order, met_at is exact (a MET verdict's deadline
            assert v.met_at == met_at, clause  # is the one in force when it was credited)
        else:  # only which of two events within grace of each other settled it can differ
            assert met_at is not None and abs(v.met_at - met_at) <= PC.grace_ms, clause
