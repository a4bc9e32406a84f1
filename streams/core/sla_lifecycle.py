"""The verdict lifecycle of a routed lead's sales clauses: overdue, final, corrected.

Real sources are late: a touch logged in the CRM at 10:05 may reach leadflow at 11:30. So a
breach is not final when the partition's event-time clock passes deadline + grace:

* **Overdue notice** (``OVERDUE``, revision 0): the clock passed deadline + grace and
  nothing read so far meets the clause. The rep is chased at the deadline, not a day later.
* **Final verdict** (``FINAL``, revision 1): a MET as soon as the evidence is read (more
  evidence never undoes one); a BREACHED once the clock has also passed the contract's
  allowed lateness (``Contract.max_lateness_ms``), judged from the facts dated up to
  clock − lateness. Any fact delivered within the lateness has been read by then.
* **Correction** (``CORRECTION``, revision 2, 3, …): evidence that arrives after the final
  verdict and changes it (a touch dated before the deadline but delivered hours late).
  It names the revision it supersedes, the late source and how late it was.

Each clause of a lead has a stable key (``lead/clause``) and revisions, so consumers apply
corrections idempotently. The verdicts come from one fold of the lead's facts in event time
(``fold``), computed twice: up to the clock (what is known now) and up to clock − lateness
(what is final). Both are pure functions of the facts, so arrival order cannot change them.

State kept in the lead state (beside ``sla_done``: clause → latest final verdict):
``sla_rev`` clause → revision of that verdict, ``sla_overdue`` clause → deadline noticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.core import sla, trace

OVERDUE, FINAL, CORRECTION = "OVERDUE", "FINAL", "CORRECTION"
# Judged by the event that decides them (routing, a disqualification): final at once.
IMMEDIATE = frozenset({sla.OWNER_ASSIGNED, sla.DISQUALIFICATION_REASON})

State = dict[str, Any]
# (event time, event id, status change or None for a touch, source system)
Fact = tuple[int, str, dict[str, Any] | None, str | None]


@dataclass(frozen=True)
class Issue:
    """One verdict record to send."""

    verdict: sla.Verdict
    status: str
    revision: int
    late_source: str | None = None
    late_by_ms: int | None = None


def facts_of(state: State, routed_at: int) -> list[Fact]:
    """The touches and CRM status changes that count for the clocks, in event-time order."""
    sources = {s["event_id"]: s.get("source") for s in state["steps"]
               if s["kind"] in (trace.StepKind.TOUCH, trace.StepKind.STATUS_CHANGED)}
    facts: list[Fact] = [
        (s["occurred_at"], s["event_id"], None, s.get("source"))
        for s in state["steps"]
        if s["occurred_at"] >= routed_at and is_touch(s)
    ]
    facts += [
        (c["occurred_at"], c["event_id"], c, sources.get(c["event_id"]))
        for c in (state.get("lifecycle") or {}).get("changes", ())
        if not c.get("system") and c["occurred_at"] >= routed_at
    ]
    facts.sort(key=lambda f: (f[0], f[1]))
    return facts


def is_touch(step: dict[str, Any]) -> bool:
    """A step that counts as a sales touch: a logged touch, or a meeting that was held."""
    kind = step["kind"]
    return kind == trace.StepKind.TOUCH or (
        kind == trace.StepKind.ACTIVITY and step["detail"].get("type") == trace.MEETING_HELD)


def fold(contract: sla.Contract, routed: dict[str, Any], features: dict[str, Any],
         facts: list[Fact], clock_ms: int | None
         ) -> tuple[list[sla.Verdict], sla.State, int | None]:
    """The verdicts the facts dated up to ``clock_ms`` give, folded in event-time order
    (``sla.due`` before every fact, so a deadline that passed before a fact is judged as it
    would have been live); the clocks left open; the first fact beyond ``clock_ms``."""
    state, verdicts = sla.route_clocks(
        contract, None, tier=routed["tier"], owner=routed["owner"],
        campaign_id=features.get("campaign_id"), region=features.get("region"),
        routed_at=routed["at"],
    )
    ahead = None
    for at, _, change, _ in facts:
        if clock_ms is not None and at > clock_ms:
            ahead = at
            break
        state, got = sla.due(contract, state, at)
        verdicts += got
        if change is None:
            state, got = sla.on_touch(contract, state, at)
        else:
            state, got = sla.on_status(
                contract, state, at, change["to"],
                has_reason=bool(change.get("reason")), has_notes=bool(change.get("notes")),
            )
        verdicts += got
    if clock_ms is not None:
        state, got = sla.due(contract, state, clock_ms)
        verdicts += got
    return verdicts, state, ahead


SAME = -1  # settled_ms: the clock itself (a pure caller with no processing skew)


def judge(contract: sla.Contract, state: State, clock_ms: int | None, *,
          settled_ms: int | None = SAME, cause: Fact | None = None
          ) -> tuple[list[Issue], int | None]:
    """What to send for the routed lead ``state`` at event time ``clock_ms`` (None: not
    known yet, so only what the facts alone decide), and when to look again (event time).
    ``settled_ms`` is the clock as it was a few wall seconds ago: what every source had had
    time to deliver, so a breach is final only once it is past deadline + grace + lateness
    (None: not known, nothing becomes final). ``cause`` is the fact just read, named in a
    correction it causes."""
    routed = state["routed"]
    features = state.get("features") or {}
    facts = facts_of(state, routed["at"])
    done: dict[str, str] = state.setdefault("sla_done", {})
    revs: dict[str, int] = state.setdefault("sla_rev", {})
    noticed: dict[str, int] = state.setdefault("sla_overdue", {})
    known, open_now, ahead = fold(contract, routed, features, facts, clock_ms)
    lateness = contract.max_lateness_ms
    settled = clock_ms if settled_ms == SAME else settled_ms
    horizon = None if settled is None or clock_ms is None else min(settled, clock_ms) - lateness
    final: dict[str, sla.Verdict] = {}
    if horizon is not None and any(
        v.verdict == sla.BREACHED and v.clause not in done for v in known
    ):
        settled, _, _ = fold(contract, routed, features, facts, horizon)
        final = {v.clause: v for v in settled}
    issues: list[Issue] = []
    for v in known:
        if v.clause in done:
            if v.verdict != done[v.clause]:  # later evidence contradicts a final verdict
                late_source, late_by = None, None
                if cause is not None and clock_ms is not None:
                    late_source, late_by = cause[3], max(0, clock_ms - cause[0])
                revs[v.clause] = revs.get(v.clause, 1) + 1
                done[v.clause] = v.verdict
                issues.append(Issue(v, CORRECTION, revs[v.clause], late_source, late_by))
            continue
        if v.verdict == sla.MET or v.clause in IMMEDIATE:
            decided: sla.Verdict | None = v
        else:
            decided = final.get(v.clause)
        if decided is not None:
            done[v.clause], revs[v.clause] = decided.verdict, 1
            issues.append(Issue(decided, FINAL, 1))
        elif v.clause not in noticed:
            # Chase while the breach is provisional; one the clock is already past the
            # lateness of (a jump after a quiet spell, a backlog) is final in a moment.
            noticed[v.clause] = v.deadline or 0
            if clock_ms is None or v.deadline is None or (
                    clock_ms <= v.deadline + contract.grace_ms + lateness):
                issues.append(Issue(v, OVERDUE, 0))
    # When to look again: an open clock's overdue moment, a noticed breach's final moment,
    # or a fact the clock has not reached yet.
    wake = [sla.next_due(contract, open_now), ahead]
    wake += [d + contract.grace_ms + lateness + 1 for c, d in noticed.items() if c not in done]
    return issues, min((t for t in wake if t is not None), default=None)
