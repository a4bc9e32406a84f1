"""The lifecycle state machine: legal edges, violations, and order independence."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import contract, lifecycle, payloads
from streams.core.lifecycle import (
    DQ_WITHOUT_REASON,
    ILLEGAL_TRANSITION,
    LEGAL,
    OPEN,
    PREVIOUS_MISMATCH,
    TERMINAL,
    Fold,
    apply,
    disposition,
    fold,
    is_open,
    new_change,
    system_change,
)

EXAMPLES = Path(__file__).parents[3] / "shared" / "examples"
LEAD = "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"
T0 = 1_800_000_000_000
MIN = 60_000

STATUSES = sorted(OPEN | TERMINAL)


def crm(
    event_id: str,
    at: int | datetime,
    to: str,
    *,
    previous: str | None = None,
    reason: str | None = "no_budget",
    notes: str | None = "spoke to the CFO",
) -> dict[str, Any]:
    return new_change(
        {
            "event_id": event_id,
            "lead_id": LEAD,
            "occurred_at": at,
            "new_status": to,
            "previous_status": previous,
            "disqualification_reason": reason,
            "sales_notes": notes,
            "updated_by": "rep-amy",
        }
    )


def run(*changes: dict[str, Any]) -> Fold:
    state = None
    for change in changes:
        state, _ = apply(state, change)
    return fold(state)


def webhook(payload_changes: dict[str, Any], webhook_id: str = "w-1") -> dict[str, Any]:
    body = json.loads((EXAMPLES / "crm-lead-status-updated.json").read_text())
    body["payload"].update(payload_changes)
    body["payload"] = {k: v for k, v in body["payload"].items() if v is not None}
    _, record = payloads.crm_webhook(body, webhook_id=webhook_id, correlation_id="c")
    observed = datetime(2026, 11, 23, tzinfo=UTC)
    return contract.validate("status", record, observed_at=observed, max_skew=timedelta(0))


# --- the table --------------------------------------------------------------------------------


def test_the_legal_table_is_the_one_in_the_spec() -> None:
    edges = {
        ("NEW", "MQL"),
        ("MQL", "SAL"), ("MQL", "WORKING"), ("MQL", "NO_RESPONSE"), ("MQL", "BAD_FIT"),
        ("WORKING", "SAL"), ("WORKING", "NO_RESPONSE"), ("WORKING", "BAD_FIT"),
        ("NO_RESPONSE", "WORKING"), ("NO_RESPONSE", "SAL"),
        ("SAL", "SQL"),
        ("SQL", "CLOSED_WON"), ("SQL", "CLOSED_LOST"),
    }  # fmt: skip
    edges |= {(s, "DISQUALIFIED") for s in OPEN}
    assert {(a, b) for a, targets in LEGAL.items() for b in targets} == edges
    assert set(LEGAL) == set(STATUSES)
    assert {"DISQUALIFIED", "CLOSED_WON", "CLOSED_LOST"} == TERMINAL
    assert {"NEW", "MQL", "SAL", "SQL", "WORKING", "NO_RESPONSE", "BAD_FIT"} == OPEN
    assert LEGAL["BAD_FIT"] == {"DISQUALIFIED"}
    assert all(not LEGAL[s] for s in TERMINAL)
    assert all(isinstance(v, frozenset) for v in LEGAL.values())
    assert is_open("WORKING") and not is_open("CLOSED_LOST")


# --- changes from records ---------------------------------------------------------------------


def test_a_change_from_the_example_webhook() -> None:
    record = webhook({})
    change = new_change(record)
    assert change == {
        "event_id": record["event_id"],
        "occurred_at": 1_795_365_600_000,  # 2026-11-22T16:40:00Z
        "to": "DISQUALIFIED",
        "from_crm": "MQL",
        "reason": "no_budget_for_6_months",
        "notes": True,
        "by": "sales_rep_id_123",
        "system": False,
    }
    assert json.loads(json.dumps(change)) == change


def test_disqualified_without_reason_from_a_webhook() -> None:
    mql = system_change("e-mql", 1_795_279_000_000, "MQL")
    result = run(mql, new_change(webhook({"disqualificationReason": None})))
    last = result.transitions[-1]
    assert (last.from_status, last.to_status, last.legal) == ("MQL", "DISQUALIFIED", True)
    assert last.violations == (DQ_WITHOUT_REASON,)
    assert result.status == "DISQUALIFIED" and disposition(result) == "DISQUALIFIED"


def test_disqualified_without_notes_is_also_without_reason() -> None:
    result = run(crm("a", T0, "MQL"), crm("b", T0 + MIN, "DISQUALIFIED", notes="  "))
    assert result.transitions[-1].violations == (DQ_WITHOUT_REASON,)
    with_both = run(crm("a", T0, "MQL"), crm("b", T0 + MIN, "DISQUALIFIED"))
    assert with_both.transitions[-1].violations == ()


def test_bad_records_raise_value_error() -> None:
    with pytest.raises(ValueError, match="new_status"):
        crm("a", T0, "UNKNOWN")
    with pytest.raises(ValueError, match="occurred_at"):
        crm("a", datetime(2026, 1, 1), "MQL")
    with pytest.raises(ValueError, match="to"):
        system_change("a", T0, "sales-ready")


def test_unknown_previous_status_is_not_compared() -> None:
    change = crm("a", T0, "MQL", previous="UNKNOWN")
    assert change["from_crm"] is None
    assert run(change).transitions[0].violations == ()


def test_datetimes_and_ms_give_the_same_change() -> None:
    at = datetime(2026, 11, 22, 16, 40, tzinfo=UTC)
    assert crm("a", at, "MQL") == crm("a", contract.epoch_ms(at), "MQL")


# --- hand cases -------------------------------------------------------------------------------


def test_the_happy_path_to_closed_won() -> None:
    path = ["MQL", "WORKING", "NO_RESPONSE", "SAL", "SQL", "CLOSED_WON"]
    result = run(*(crm(f"e{i}", T0 + i * MIN, s) for i, s in enumerate(path)))
    assert [t.to_status for t in result.transitions] == path
    assert all(t.legal and not t.violations for t in result.transitions)
    assert result.status == "CLOSED_WON"
    assert result.status_at == result.closed_at == T0 + 5 * MIN
    assert disposition(result) == "CLOSED_WON"


def test_sql_to_mql_is_illegal_but_the_lead_moves() -> None:
    result = run(crm("a", T0, "MQL"), crm("b", T0 + 1, "SAL"), crm("c", T0 + 2, "SQL"),
                 crm("d", T0 + 3, "MQL"))  # fmt: skip
    last = result.transitions[-1]
    assert (last.from_status, last.to_status) == ("SQL", "MQL")
    assert not last.legal and last.violations == (ILLEGAL_TRANSITION,)
    assert result.status == "MQL" and result.status_at == T0 + 3


def test_after_closed_won_anything_else_is_illegal() -> None:
    won = [crm("a", T0, "MQL"), crm("b", T0 + 1, "SAL"), crm("c", T0 + 2, "SQL"),
           crm("d", T0 + 3, "CLOSED_WON")]  # fmt: skip
    for status in STATUSES:
        if status == "CLOSED_WON":
            continue
        result = run(*won, crm("e", T0 + 4, status))
        last = result.transitions[-1]
        assert not last.legal and ILLEGAL_TRANSITION in last.violations, status
        assert result.status == status  # the CRM is the system of record
    reopened = run(*won, crm("e", T0 + 4, "SAL"))
    assert reopened.closed_at is None and disposition(reopened) is None
    lost = run(*won, crm("e", T0 + 4, "CLOSED_LOST"))
    assert lost.closed_at == T0 + 3 and lost.status_at == T0 + 4


def test_same_status_is_a_recorded_no_op() -> None:
    result = run(crm("a", T0, "MQL"), crm("b", T0 + MIN, "MQL"))
    assert len(result.transitions) == 2
    noop = result.transitions[1]
    assert (noop.from_status, noop.to_status, noop.legal, noop.violations) == (
        "MQL", "MQL", True, ()
    )  # fmt: skip
    assert result.status == "MQL" and result.status_at == T0
    # Also after a terminal status, and a repeated DISQUALIFIED is not a new disqualification.
    dq = run(crm("a", T0, "MQL"), crm("b", T0 + 1, "DISQUALIFIED"),
             crm("c", T0 + 2, "DISQUALIFIED", reason=None))  # fmt: skip
    assert dq.transitions[-1].legal and dq.transitions[-1].violations == ()
    assert dq.status_at == dq.closed_at == T0 + 1


def test_previous_mismatch_is_informational() -> None:
    result = run(crm("a", T0, "MQL"), crm("b", T0 + 1, "SAL", previous="WORKING"))
    last = result.transitions[-1]
    assert last.legal and last.violations == (PREVIOUS_MISMATCH,)
    agreed = run(crm("a", T0, "MQL"), crm("b", T0 + 1, "SAL", previous="MQL"))
    assert agreed.transitions[-1].violations == ()


def test_system_mql_then_the_crm_takes_over() -> None:
    result = run(system_change("s", T0, "MQL"), crm("a", T0 + 1, "MQL"),
                 crm("b", T0 + 2, "WORKING", previous="MQL"))  # fmt: skip
    assert [(t.to_status, t.system, t.violations) for t in result.transitions] == [
        ("MQL", True, ()), ("MQL", False, ()), ("WORKING", False, ()),
    ]  # fmt: skip
    assert result.status_at == T0 + 2


def test_a_late_system_mql_does_not_pull_the_lead_back() -> None:
    # The CRM moved the lead on (even illegally) before leadflow's decision in event time.
    result = run(crm("a", T0, "WORKING"), system_change("s", T0 + 1, "MQL"))
    late = result.transitions[-1]
    assert (late.from_status, late.to_status, late.legal, late.violations, late.system) == (
        "WORKING", "WORKING", True, (), True
    )  # fmt: skip
    assert result.transitions[0].violations == (ILLEGAL_TRANSITION,)
    assert result.status == "WORKING" and result.status_at == T0


def test_empty_state_and_dispositions() -> None:
    assert fold(None) == Fold("NEW", None, None, ())
    assert fold(lifecycle.new_state()) == Fold("NEW", None, None, ())
    assert disposition(fold(None)) is None
    assert disposition(run(crm("a", T0, "MQL"), crm("b", T0 + 1, "BAD_FIT"))) == "BAD_FIT"
    no_response = run(crm("a", T0, "MQL"), crm("b", T0 + 1, "NO_RESPONSE"))
    assert disposition(no_response) == "NO_RESPONSE"
    assert disposition(run(crm("a", T0, "MQL"), crm("b", T0 + 1, "WORKING"))) is None


def test_duplicates_change_nothing_and_ties_sort_by_event_id() -> None:
    state, added = apply(None, crm("b", T0, "SAL"))
    assert added
    state, added = apply(state, crm("a", T0, "MQL"))
    assert added
    before = json.dumps(state)
    state, added = apply(state, crm("a", T0 + 5, "CLOSED_LOST"))  # same id = same event
    assert not added and json.dumps(state) == before
    assert [c["event_id"] for c in state["changes"]] == ["a", "b"]
    assert fold(state).status == "SAL"


def test_fold_as_dict_is_json() -> None:
    result = run(crm("a", T0, "MQL"), crm("b", T0 + 1, "CLOSED_WON"))
    data = json.loads(json.dumps(result.as_dict()))
    assert data["status"] == "CLOSED_WON"
    assert data["transitions"][1]["violations"] == [ILLEGAL_TRANSITION]


# --- properties -------------------------------------------------------------------------------


def reference(changes: list[dict[str, Any]]) -> dict[str, Any]:
    """A deliberately naive model of the spec: sort, dedupe, walk LEGAL."""
    unique: dict[str, dict[str, Any]] = {}
    for c in changes:
        unique.setdefault(c["event_id"], c)
    status, status_at, closed_at, walked = "NEW", None, None, []
    for c in sorted(unique.values(), key=lambda c: (c["occurred_at"], c["event_id"])):
        target = c["to"]
        legal = target == status or target in LEGAL[status]
        if c["system"] and not legal:
            target = status  # leadflow never overrides the CRM
            legal = True
        walked.append((c["event_id"], status, target, legal))
        if target != status:
            if target in TERMINAL and status in OPEN:
                closed_at = c["occurred_at"]
            if target in OPEN:
                closed_at = None
            status, status_at = target, c["occurred_at"]
    return {"status": status, "status_at": status_at, "closed_at": closed_at, "walked": walked}


@st.composite
def change_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 12))
    out = []
    for i in range(n):
        at = T0 + draw(st.integers(0, 6)) * MIN  # few instants: plenty of ties
        if draw(st.integers(0, 5)) == 0:
            out.append(system_change(f"s{i}", at, "MQL"))
        else:
            out.append(
                crm(
                    f"e{i:02d}",
                    at,
                    draw(st.sampled_from(STATUSES)),
                    previous=draw(st.none() | st.sampled_from(STATUSES)),
                    reason=draw(st.none() | st.just("no_budget")),
                    notes=draw(st.none() | st.just("notes")),
                )
            )
    return out


def folded(changes: list[dict[str, Any]]) -> Fold:
    state = None
    for change in changes:
        state, _ = apply(state, dict(change))
    # What the Faust table stores and hands back.
    return fold(json.loads(json.dumps(state)))


@settings(max_examples=300, deadline=None)
@given(change_sets())
def test_fold_matches_the_reference_model(changes: list[dict[str, Any]]) -> None:
    result = folded(changes)
    expected = reference(changes)
    assert result.status == expected["status"]
    assert result.status_at == expected["status_at"]
    assert result.closed_at == expected["closed_at"]
    assert [
        (t.event_id, t.from_status, t.to_status, t.legal) for t in result.transitions
    ] == expected["walked"]
    by_id = {c["event_id"]: c for c in changes}
    for t in result.transitions:
        c = by_id[t.event_id]
        assert (ILLEGAL_TRANSITION in t.violations) == (not t.legal)
        moved_into_dq = t.to_status == "DISQUALIFIED" != t.from_status
        assert (DQ_WITHOUT_REASON in t.violations) == (
            moved_into_dq and not (c["reason"] and c["notes"])
        )
        assert (PREVIOUS_MISMATCH in t.violations) == (
            c["from_crm"] is not None and c["from_crm"] != t.from_status
        )


@settings(max_examples=200, deadline=None)
@given(change_sets(), st.data())
def test_any_arrival_order_with_duplicates_gives_the_same_fold(
    changes: list[dict[str, Any]], data: st.DataObject
) -> None:
    repeats = data.draw(st.lists(st.sampled_from(changes), max_size=6)) if changes else []
    arrival = data.draw(st.permutations(changes + repeats))
    assert folded(arrival) == folded(changes)
