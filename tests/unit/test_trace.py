"""The per-lead trace: steps, dedup, event-time order, aliases and the merged timeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import contract, payloads, trace
from streams.core.trace import StepKind, apply, apply_alias, new_step, step_from_record, timeline

EXAMPLES = Path(__file__).parents[3] / "shared" / "examples"
LEAD = "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"
OTHER = "5a1d0c3e-2f4b-4e6a-9c8d-7b6a5f4e3d2c"
DAY = 24 * 3600 * 1000
NOW = 1_800_000_000_000


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def validated(kind: str) -> dict[str, Any]:
    if kind == "lead":
        record = payloads.lead_from_json(example("lead-captured"))
    elif kind == "activity":
        record = payloads.activity_from_json(example("activity-recorded"))
    else:
        name = {"status": "crm-lead-status-updated", "touch": "crm-lead-touch-logged"}[kind]
        record = payloads.crm_webhook(example(name), webhook_id="w-" + kind, correlation_id="c")[1]
    observed = datetime(2026, 11, 23, tzinfo=UTC)
    return contract.validate(kind, record, observed_at=observed, max_skew=timedelta(0))


def step(event_id: str, occurred: int, observed: int | None = None, kind: str = "ACTIVITY") -> Any:
    return new_step(
        kind, event_id, occurred, occurred if observed is None else observed, source="test"
    )


def add(state: Any, s: dict[str, Any], now: int = NOW, retention: int = DAY) -> tuple[Any, bool]:
    return apply(state, LEAD, s, now_ms=now, retention_ms=retention)


# --- steps from records --------------------------------------------------------------------


def test_steps_from_the_example_records_carry_no_personal_data() -> None:
    lead = validated("lead")
    captured = step_from_record("lead", lead, 1_795_252_600_000)
    assert captured == {
        "kind": "CAPTURED",
        "event_id": lead["event_id"],
        "occurred_at": 1_795_252_542_000,  # 2026-11-21T09:15:42Z
        "observed_at": 1_795_252_600_000,
        "source": "api",
        "correlation_id": None,
        "detail": {
            "company": "Northwind Analytics",
            "company_size": "SIZE_51_200",
            "region": "NA-West",
            "campaign_id": "cmp-2026-q4-webinar-b",
        },
    }
    text = json.dumps(captured).lower()
    for personal in ("dana", "whitfield", "415", "linkedin", "vp engineering"):
        assert personal not in text


@pytest.mark.parametrize(
    ("kind", "step_kind", "detail"),
    [
        ("activity", "ACTIVITY", {"type": "DEMO_REQUEST", "campaign_id": "cmp-2026-q4-webinar-b"}),
        (
            "status",
            "STATUS_CHANGED",
            {
                "previous": "MQL",
                "new": "DISQUALIFIED",
                "reason": "no_budget_for_6_months",
                "by": "sales_rep_id_123",
            },
        ),
        ("touch", "TOUCH", {"rep": "sales_rep_id_123", "channel": "CALL", "outcome": "CONNECTED"}),
    ],
)
def test_step_detail_per_kind(kind: str, step_kind: str, detail: dict[str, Any]) -> None:
    record = validated(kind)
    s = step_from_record(kind, record, 0)
    assert (s["kind"], s["detail"], s["event_id"]) == (step_kind, detail, record["event_id"])
    assert "Re-engage" not in json.dumps(s)  # free-text sales notes stay out


def test_identity_step_and_unknown_kind() -> None:
    resolved = {
        "lead_id": LEAD,
        "canonical_lead_id": LEAD,
        "alias_lead_id": OTHER,
        "event_id": "e1",
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    s = step_from_record("identity", resolved, 5)
    assert (s["kind"], s["detail"], s["source"]) == (
        StepKind.ALIASED,
        {"canonical": LEAD, "alias": OTHER},
        "leadflow",
    )
    with pytest.raises(ValueError):
        step_from_record("sla", resolved, 5)


# --- apply ---------------------------------------------------------------------------------


def test_apply_creates_the_state_and_drops_duplicates() -> None:
    state, added = add(None, step("e1", 100))
    assert added and state["lead_id"] == LEAD and state["seen"] == {"e1": NOW}
    again, added = add(state, step("e1", 100, 999))
    assert again is state and not added
    assert [s["event_id"] for s in state["steps"]] == ["e1"]
    assert state["steps"][0]["observed_at"] == 100  # the first copy wins


def test_out_of_order_steps_are_kept_in_event_time_order() -> None:
    state = None
    for s in (step("c", 300), step("a", 100), step("b2", 200, 250), step("b1", 200, 240)):
        state, _ = add(state, s)
    assert [s["event_id"] for s in state["steps"]] == ["a", "b1", "b2", "c"]


def test_seen_is_pruned_but_late_duplicates_are_still_caught() -> None:
    state, _ = add(None, step("old", 100), now=NOW)
    state, _ = add(state, step("new", 200), now=NOW + 2 * DAY)
    assert list(state["seen"]) == ["new"]
    state, added = add(state, step("old", 100, 5_000), now=NOW + 3 * DAY)
    assert not added
    assert len(state["steps"]) == 2


def test_state_survives_a_json_round_trip() -> None:
    state, _ = add(None, step("e1", 100))
    state = json.loads(json.dumps(state))
    state, added = add(state, step("e1", 100))
    assert not added
    state, added = add(state, step("e0", 50))
    assert added and [s["event_id"] for s in state["steps"]] == ["e0", "e1"]


# --- aliases -------------------------------------------------------------------------------


def resolved(lead_id: str, canonical: str, alias: str, event_id: str = "link-1") -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "canonical_lead_id": canonical,
        "alias_lead_id": alias,
        "event_id": event_id,
        "occurred_at": datetime(2026, 11, 21, 10, tzinfo=UTC),
        "correlation_id": None,
    }


def test_apply_alias_sets_both_sides() -> None:
    alias_state, added = apply_alias(None, OTHER, resolved(OTHER, LEAD, OTHER), NOW)
    assert added and alias_state["canonical"] == LEAD
    assert alias_state["steps"][0]["kind"] == "ALIASED"
    canon_state, _ = apply_alias(None, LEAD, resolved(LEAD, LEAD, OTHER), NOW)
    assert canon_state["aliases"] == [OTHER] and canon_state["canonical"] is None
    again, added = apply_alias(canon_state, LEAD, resolved(LEAD, LEAD, OTHER), NOW)
    assert not added and again["aliases"] == [OTHER]
    # A self-link says the lead is canonical again.
    back, _ = apply_alias(alias_state, OTHER, resolved(OTHER, OTHER, OTHER, "link-2"), NOW)
    assert back["canonical"] is None
    with pytest.raises(ValueError):
        apply_alias(None, "someone-else", resolved(LEAD, LEAD, OTHER), NOW)


def test_related_lead_ids_follows_stale_pointers_both_ways() -> None:
    third = "7c000000-0000-4000-8000-000000000000"
    states = {
        LEAD: {**trace.new_state(LEAD), "aliases": [OTHER]},
        OTHER: {**trace.new_state(OTHER), "canonical": LEAD, "aliases": [third]},  # stale
        third: {**trace.new_state(third), "canonical": OTHER},
    }
    for start in states:
        assert trace.related_lead_ids(states.get, start) == sorted(states)
    assert trace.related_lead_ids(states.get, "missing") == ["missing"]


# --- timeline ------------------------------------------------------------------------------


def test_timeline_merges_aliases_dedups_shared_events_and_measures_time() -> None:
    canon, _ = add(None, step("capture", 1_000, 1_200, "CAPTURED"))
    canon, _ = apply(
        canon, LEAD, step("link", 5_000, 5_050, "ALIASED"), now_ms=NOW, retention_ms=DAY
    )
    other, _ = apply(None, OTHER, step("activity", 3_000, 2_900), now_ms=NOW, retention_ms=DAY)
    other, _ = apply(
        other, OTHER, step("link", 5_000, 5_060, "ALIASED"), now_ms=NOW, retention_ms=DAY
    )
    rows = timeline([canon, other, None])
    assert [(r["event_id"], r["lead_id"]) for r in rows] == [
        ("capture", LEAD),
        ("activity", OTHER),
        ("link", LEAD),
    ]
    assert [r["since_previous_ms"] for r in rows] == [None, 2_000, 2_000]
    assert [r["lag_ms"] for r in rows] == [200, -100, 50]
    rows[0]["detail"]["x"] = 1
    assert "x" not in canon["steps"][0]["detail"]  # rows are copies
    s = trace.summary(rows)
    assert s["steps"] == 3 and s["elapsed_ms"] == 4_000 and s["max_lag_ms"] == 200
    assert s["lead_ids"] == sorted([LEAD, OTHER]) and s["capture_to_first_touch_ms"] is None


def test_summary_of_the_example_funnel() -> None:
    state = None
    for kind in ("touch", "status", "lead", "activity"):
        s = step_from_record(kind, validated(kind), 1_795_400_000_000)
        state, _ = add(state, s)
    rows = timeline([state])
    assert [r["kind"] for r in rows] == ["CAPTURED", "ACTIVITY", "TOUCH", "STATUS_CHANGED"]
    summary = trace.summary(rows)
    assert summary["capture_to_first_touch_ms"] == (36 * 60 + 28) * 1000  # 09:15:42 → 09:52:10
    assert summary["by_kind"] == {"CAPTURED": 1, "ACTIVITY": 1, "TOUCH": 1, "STATUS_CHANGED": 1}
    assert trace.summary([])["steps"] == 0


# --- properties ----------------------------------------------------------------------------


@st.composite
def step_lists(draw: st.DrawFn, max_size: int = 20) -> list[dict[str, Any]]:
    ids = draw(st.lists(st.uuids().map(str), max_size=max_size, unique=True))
    return [
        step(
            event_id,
            draw(st.integers(0, 50)),
            draw(st.integers(0, 60)),
            draw(st.sampled_from(list(StepKind))),
        )
        for event_id in ids
    ]


def replay(steps: list[dict[str, Any]], retention: int, start: int = NOW) -> Any:
    state = None
    for i, s in enumerate(steps):
        state, _ = add(state, dict(s), now=start + i, retention=retention)
    return state


@settings(max_examples=300)
@given(steps=step_lists(), retention=st.sampled_from([0, 3, DAY]))
def test_apply_is_idempotent(steps: list[dict[str, Any]], retention: int) -> None:
    once = replay(steps, retention)
    twice = replay(steps + steps, retention)
    assert (once or {}).get("steps") == (twice or {}).get("steps")


@settings(max_examples=300)
@given(steps=step_lists(), retention=st.sampled_from([0, DAY]), data=st.data())
def test_apply_is_order_insensitive(
    steps: list[dict[str, Any]], retention: int, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(steps))
    first, second = replay(steps, retention), replay(shuffled, retention)
    assert (first or {}).get("steps") == (second or {}).get("steps")
    if first:
        # derived steps after their cause
        rank = {"ALIASED": 1, "SCORED": 2, "MQL": 3, "ROUTED": 4, "SLA": 5}
        keys = [
            (s["occurred_at"], rank.get(s["kind"], 0), s["event_id"])
            for s in first["steps"]
        ]
        assert keys == sorted(keys)


@settings(max_examples=300)
@given(steps=step_lists(30), data=st.data())
def test_merged_timeline_is_complete_ordered_and_never_negative(
    steps: list[dict[str, Any]], data: st.DataObject
) -> None:
    # Spread the events over three traces, some events (like ALIASED links) in several.
    leads = [LEAD, OTHER, "7c000000-0000-4000-8000-000000000000"]
    states: dict[str, Any] = {}
    for s in steps:
        owners = data.draw(st.sets(st.sampled_from(leads), min_size=1))
        for lead in sorted(owners):
            states[lead], _ = apply(states.get(lead), lead, dict(s), now_ms=NOW, retention_ms=DAY)
    rows = timeline(list(states.values()))
    assert sorted(r["event_id"] for r in rows) == sorted(s["event_id"] for s in steps)
    events = [r for r in rows if r["kind"] != "SLA"]  # verdict rows are not events
    assert all(r["since_previous_ms"] >= 0 for r in events[1:])
    assert events == [] or events[0]["since_previous_ms"] is None
    assert all(r["since_previous_ms"] is None for r in rows if r["kind"] == "SLA")
    assert timeline(list(reversed(states.values()))) == rows
