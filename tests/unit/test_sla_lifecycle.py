"""The verdict lifecycle (overdue, final, corrected) under any arrival order and delay."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import compliance, sla, sla_lifecycle, trace
from streams.core.sla_lifecycle import CORRECTION, FINAL, OVERDUE

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_795_000_000_000
CONTRACT = sla.Contract()  # grace 1 min, lateness 1 h, windows 15 min / 24 h, updates 48 h
L = CONTRACT.max_lateness_ms
STATUSES = ["WORKING", "NO_RESPONSE", "SAL", "SQL", "DISQUALIFIED", "CLOSED_WON"]


def new_state(tier: str) -> dict[str, Any]:
    return {"routed": {"at": T0, "owner": "rep-amy", "tier": tier, "queue": None},
            "steps": [], "lifecycle": {"changes": []}, "features": {"region": "EMEA"}}


def add(state: dict[str, Any], fact: tuple[int, str, str | None]) -> sla_lifecycle.Fact:
    at, event_id, status = fact
    if status is None:
        state["steps"].append({"kind": trace.StepKind.TOUCH, "event_id": event_id,
                               "occurred_at": at, "source": "crm-webhook"})
        return (at, event_id, None, "crm-webhook")
    change = {"event_id": event_id, "occurred_at": at, "to": status,
              "reason": "no_budget", "notes": "n"}
    state["lifecycle"]["changes"].append(change)
    state["steps"].append({"kind": trace.StepKind.STATUS_CHANGED, "event_id": event_id,
                           "occurred_at": at, "source": "crm-webhook"})
    return (at, event_id, change, "crm-webhook")


def run(tier: str, arrivals: list[tuple[int, tuple[int, str, str | None]]]
        ) -> tuple[dict[str, Any], list[sla_lifecycle.Issue]]:
    """Deliver facts at their arrival times, with the partition's clock at each arrival and
    ticking every 10 minutes in between (other leads' events), until long after the last."""
    state = new_state(tier)
    issues: list[sla_lifecycle.Issue] = []
    pending = sorted(arrivals, key=lambda a: a[0])
    end = max([T0, *(a for a, _ in pending)]) + 10 * 24 * HOUR
    clock = T0
    while clock <= end:
        while pending and pending[0][0] <= clock:
            _, fact = pending.pop(0)
            cause = add(state, fact)
            got, _ = sla_lifecycle.judge(CONTRACT, state, clock, cause=cause)
            issues += got
        got, _ = sla_lifecycle.judge(CONTRACT, state, clock)
        issues += got
        clock += 10 * MIN
    return state, issues


def event_time_verdicts(tier: str, facts: list[tuple[int, str, str | None]]) -> dict[str, str]:
    state = new_state(tier)
    found = [add(state, f) for f in facts]
    verdicts, _, _ = sla_lifecycle.fold(CONTRACT, state["routed"], {}, sorted(found, key=lambda
                                        f: (f[0], f[1])), T0 + 400 * 24 * HOUR)
    out: dict[str, str] = {}
    for v in verdicts:
        out.setdefault(v.clause, v.verdict)
    return out


facts_st = st.lists(
    st.tuples(st.integers(0, 6 * 24 * 60), st.sampled_from([None, *STATUSES])),
    max_size=6,
).map(lambda xs: [(T0 + m * MIN, f"e{i:02d}", s) for i, (m, s) in enumerate(xs)])


@settings(max_examples=150, deadline=None)
@given(tier=st.sampled_from(["HAND_RAISER", "STANDARD"]), facts=facts_st,
       delays=st.lists(st.integers(0, 60), min_size=6, max_size=6))
def test_within_the_lateness_finals_equal_event_time_order_and_nothing_is_corrected(
        tier, facts, delays):
    # Delays up to the allowed lateness (in minutes, ≤ 60), so any arrival order it makes.
    arrivals = [(f[0] + d * MIN, f) for f, d in zip(facts, delays, strict=False)]
    state, issues = run(tier, arrivals)
    finals = {i.verdict.clause: i.verdict.verdict for i in issues if i.status == FINAL}
    assert [i for i in issues if i.status == CORRECTION] == []
    assert finals == event_time_verdicts(tier, facts)
    assert len([i for i in issues if i.status == FINAL]) == len(finals)  # one per clause


@settings(max_examples=150, deadline=None)
@given(tier=st.sampled_from(["HAND_RAISER", "STANDARD"]), facts=facts_st,
       delays=st.lists(st.integers(0, 30 * 60), min_size=6, max_size=6))
def test_any_delay_ends_in_the_event_time_verdicts_each_correction_counted(tier, facts, delays):
    arrivals = [(f[0] + d * MIN, f) for f, d in zip(facts, delays, strict=False)]
    state, issues = run(tier, arrivals)
    truth = event_time_verdicts(tier, facts)
    assert state["sla_done"] == truth  # the verdict in force, after any corrections
    for clause in truth:
        mine = [i for i in issues if i.verdict.clause == clause and i.status != OVERDUE]
        assert [i.revision for i in mine] == list(range(1, len(mine) + 1))
        assert mine[0].status == FINAL and all(i.status == CORRECTION for i in mine[1:])
        assert state["sla_rev"][clause] == len(mine)


@settings(max_examples=100, deadline=None)
@given(tier=st.sampled_from(["HAND_RAISER", "STANDARD"]), facts=facts_st)
def test_replaying_history_in_event_time_gives_the_same_verdicts_and_no_corrections(tier, facts):
    state, issues = run(tier, [(f[0], f) for f in facts])
    assert not [i for i in issues if i.status == CORRECTION]
    assert state["sla_done"] == event_time_verdicts(tier, facts)


def test_an_overdue_notice_comes_at_the_deadline_and_the_final_after_the_lateness():
    state = new_state("HAND_RAISER")
    deadline = T0 + 15 * MIN
    (assigned,), _ = sla_lifecycle.judge(CONTRACT, state, T0)
    assert (assigned.verdict.clause, assigned.status) == (sla.OWNER_ASSIGNED, FINAL)
    assert sla_lifecycle.judge(CONTRACT, state, deadline + MIN)[0] == []  # within grace
    (notice,), wake = sla_lifecycle.judge(CONTRACT, state, deadline + MIN + 1)
    assert (notice.status, notice.revision, notice.verdict.verdict) == (OVERDUE, 0, "BREACHED")
    assert wake == deadline + MIN + L + 1
    assert sla_lifecycle.judge(CONTRACT, state, wake - 1)[0] == []  # noticed once
    # The touch made in time but logged 50 minutes late: within the lateness, MET and final.
    cause = add(state, (deadline - MIN, "t1", None))
    (final,), _ = sla_lifecycle.judge(CONTRACT, state, deadline + 49 * MIN, cause=cause)
    assert (final.status, final.revision, final.verdict.verdict) == (FINAL, 1, "MET")


def test_get_sla_lists_what_is_overdue_until_it_is_final():
    state = new_state("HAND_RAISER")
    state["lead_id"] = "lead-1"
    deadline = T0 + 15 * MIN
    sla_lifecycle.judge(CONTRACT, state, deadline + MIN + 1)
    summary = compliance.summarise([state], lambda owner: "team")
    assert summary["overdue"] == [{"lead_id": "lead-1", "clause": sla.FIRST_TOUCH,
                                   "owner": "rep-amy", "deadline": deadline}]
    assert summary["overall"]["clauses"].get(sla.FIRST_TOUCH) is None  # not a verdict yet
    sla_lifecycle.judge(CONTRACT, state, deadline + MIN + L + 1)
    summary = compliance.summarise([state], lambda owner: "team")
    assert summary["overdue"] == []
    assert summary["overall"]["clauses"][sla.FIRST_TOUCH] == {"met": 0, "breached": 1}
