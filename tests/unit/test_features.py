"""Per-lead features: the profile from the latest capture, activity counts, order independence,
the MQL contract (missing context) and the hand-raiser tier."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import contract, payloads
from streams.core.features import (
    CONTEXT_FIELDS,
    HAND_RAISER,
    STANDARD,
    copy_of,
    is_hand_raiser,
    missing_context,
    new_features,
    tier,
    update,
)
from streams.core.scoring import ScoringPolicy

EXAMPLES = Path(__file__).parents[3] / "shared" / "examples"
LEAD = "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"
T0 = 1_795_252_542_000  # 2026-11-21T09:15:42Z, the example capture
POLICY = ScoringPolicy()  # default hand-raiser lists: DEMO_REQUEST, MEETING_BOOKED; triggers


def validated(kind: str) -> dict[str, Any]:
    name = "lead-captured" if kind == "lead" else "activity-recorded"
    body = json.loads((EXAMPLES / f"{name}.json").read_text())
    mapper = payloads.lead_from_json if kind == "lead" else payloads.activity_from_json
    observed = datetime(2026, 11, 23, tzinfo=UTC)
    return contract.validate(kind, mapper(body), observed_at=observed, max_skew=timedelta(0))


def lead(at: int, **over: Any) -> dict[str, Any]:
    """A validated-shaped LeadCaptured record with int ms time (the core accepts both)."""
    record = {
        "occurred_at": at,
        "email": "dana@northwind.io",
        "first_name": "Dana",
        "last_name": "Whitfield",
        "job_title": "CTO",
        "company_name": "Northwind",
        "company_size": "SIZE_51_200",
        "region": "NA-West",
        "trigger_actions": ["attended_webinar_B"],
        "enrichment": {"industry": "SaaS", "tech_stack": ["AWS", "Kafka"], "linkedin_url": None},
        "attribution": {"campaign_id": "cmp-2026-q4-webinar-b"},
        "consent": {"lawful_basis": "CONSENT", "consented_at": at - 1000, "channels": ["email"]},
    }
    record.update(over)
    return record


def activity(at: int, kind: str = "PAGE_VIEW") -> dict[str, Any]:
    return {"occurred_at": at, "activity_type": kind, "campaign_id": None, "properties": {}}


# --- profile and counts --------------------------------------------------------------------


def test_the_example_records_give_the_documented_state() -> None:
    state = update(None, "lead", validated("lead"))
    state = update(state, "activity", validated("activity"))
    assert state == {
        "profile_at": T0,
        "size_band": "SIZE_51_200",
        "industry": "SaaS",
        "region": "NA-West",
        "tech": ["AWS", "Node.js", "React"],
        "title": "VP Engineering",
        "campaign_id": "cmp-2026-q4-webinar-b",
        "trigger_actions": ["attended_webinar_B", "downloaded_whitepaper_A", "viewed_pricing_page"],
        "has_email": True,
        "has_names": True,
        "has_company": True,
        "consent": True,
        "counts": {"DEMO_REQUEST": 1},
        "last_at": {"DEMO_REQUEST": T0 + 923_000},
        "first_at": T0,
        "last_event_at": T0 + 923_000,
    }
    assert json.loads(json.dumps(state)) == state  # plain JSON, stored as is
    assert missing_context(state) == []
    assert tier(state, POLICY) == HAND_RAISER


def test_a_later_capture_replaces_the_profile_and_an_earlier_one_does_not() -> None:
    state = update(None, "lead", lead(1000))
    update(state, "lead", lead(2000, company_size="SIZE_201_1000", job_title=None))
    assert (state["size_band"], state["title"], state["profile_at"]) == (
        "SIZE_201_1000",
        None,
        2000,
    )
    update(state, "lead", lead(1500, company_size="SIZE_1_10"))
    assert (state["size_band"], state["profile_at"], state["first_at"]) == (
        "SIZE_201_1000",
        2000,
        1000,
    )


def test_activities_before_the_capture_count_and_leave_the_profile_empty() -> None:
    state = update(None, "activity", activity(500, "EMAIL_OPEN"))
    update(state, "activity", activity(300, "EMAIL_OPEN"))
    assert state["profile_at"] is None and state["size_band"] is None
    assert state["counts"] == {"EMAIL_OPEN": 2}
    assert state["last_at"] == {"EMAIL_OPEN": 500}
    assert (state["first_at"], state["last_event_at"]) == (300, 500)
    assert missing_context(state) == list(CONTEXT_FIELDS)
    update(state, "lead", lead(1000))
    assert missing_context(state) == [] and state["counts"] == {"EMAIL_OPEN": 2}


def test_lists_are_trimmed_deduplicated_and_sorted() -> None:
    record = lead(1, trigger_actions=["b", " a", "b", ""])
    record["enrichment"] = {"industry": "  ", "tech_stack": ["Kafka", "AWS", "Kafka"]}
    state = update(None, "lead", record)
    assert state["trigger_actions"] == ["a", "b"]
    assert state["tech"] == ["AWS", "Kafka"]
    assert state["industry"] is None


def test_bad_kind_and_bad_time_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="kind"):
        update(None, "status", lead(1))
    with pytest.raises(ValueError, match="occurred_at"):
        update(None, "activity", activity(None))  # type: ignore[arg-type]


# --- the MQL contract and the tier ---------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "missing"),
    [
        ({}, []),
        ({"email": " "}, ["email"]),
        ({"first_name": None}, ["names"]),
        ({"last_name": ""}, ["names"]),
        ({"company_name": None}, ["company"]),
        ({"company_size": "UNKNOWN"}, ["size_band"]),
        ({"company_size": None}, ["size_band"]),
        ({"trigger_actions": []}, ["trigger_action"]),
        ({"consent": None}, ["consent"]),
        ({"consent": {"lawful_basis": "UNKNOWN"}}, ["consent"]),
        (
            {"email": None, "consent": None, "company_size": "UNKNOWN"},
            ["email", "size_band", "consent"],
        ),
    ],
)
def test_missing_context(over: dict[str, Any], missing: list[str]) -> None:
    assert missing_context(update(None, "lead", lead(1, **over))) == missing


def test_missing_context_of_nothing_is_everything() -> None:
    assert missing_context(None) == list(CONTEXT_FIELDS)
    assert missing_context(new_features()) == list(CONTEXT_FIELDS)


def test_tier_by_activity_or_by_trigger() -> None:
    state = update(None, "lead", lead(1))
    assert tier(state, POLICY) == STANDARD and not is_hand_raiser(state, POLICY)
    update(state, "activity", activity(2, "MEETING_BOOKED"))
    assert tier(state, POLICY) == HAND_RAISER
    by_form = update(None, "lead", lead(1, trigger_actions=["submitted_contact_form"]))
    assert tier(by_form, POLICY) == HAND_RAISER
    strict = ScoringPolicy.from_config(
        {"hand_raiser_activities": ["DEMO_REQUEST"], "hand_raiser_triggers": []}
    )
    assert tier(state, strict) == STANDARD and tier(by_form, strict) == STANDARD
    assert tier(None, POLICY) == STANDARD


# --- order independence --------------------------------------------------------------------

_TIMES = st.integers(0, 6)  # few distinct times, so ties between captures are common
_leads = st.builds(
    lambda at, size, title, triggers, tech, consent: (
        "lead",
        lead(
            at,
            company_size=size,
            job_title=title,
            trigger_actions=triggers,
            enrichment={"industry": "SaaS", "tech_stack": tech},
            consent={"lawful_basis": "CONSENT"} if consent else None,
        ),
    ),
    _TIMES,
    st.sampled_from(["SIZE_1_10", "SIZE_51_200", "UNKNOWN"]),
    st.sampled_from([None, "CTO", "Analyst"]),
    st.lists(st.sampled_from(["requested_demo", "searched_brand", "x"]), max_size=3),
    st.lists(st.sampled_from(["AWS", "Kafka", "React"]), max_size=3),
    st.booleans(),
)
_activities = st.builds(
    lambda at, kind: ("activity", activity(at, kind)),
    _TIMES,
    st.sampled_from(["PAGE_VIEW", "DEMO_REQUEST", "PRICING_PAGE_VIEW"]),
)
_events = st.lists(st.one_of(_leads, _activities), min_size=1, max_size=12)


def fold(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any] | None:
    state = None
    for kind, record in events:
        state = update(state, kind, record)
    return state


@settings(max_examples=150, deadline=None)
@given(st.data(), _events)
def test_any_arrival_order_gives_the_same_features(
    data: st.DataObject, events: list[tuple[str, dict[str, Any]]]
) -> None:
    expected = fold(events)
    shuffled = data.draw(st.permutations(events))
    assert fold(shuffled) == expected
    assert json.loads(json.dumps(expected)) == expected
    assert expected is not None
    activities = [r for k, r in events if k == "activity"]
    assert sum(expected["counts"].values()) == len(activities)
    assert expected["first_at"] == min(r["occurred_at"] for _, r in events)
    assert expected["last_event_at"] == max(r["occurred_at"] for _, r in events)
    captures = [r["occurred_at"] for k, r in events if k == "lead"]
    assert expected["profile_at"] == (max(captures) if captures else None)


@given(_events, _events)
def test_a_copy_is_equal_and_later_events_leave_it_alone(
    before: list[tuple[str, dict[str, Any]]], after: list[tuple[str, dict[str, Any]]]
) -> None:
    state = fold(before)
    if state is None:
        return
    frozen = copy_of(state)
    expected = copy.deepcopy(state)
    assert frozen == expected
    for kind, record in after:
        update(state, kind, record)
    assert frozen == expected
