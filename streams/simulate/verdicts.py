"""The SLA verdicts the engine must reach, by a small reference of its own.

This deliberately does not call ``streams.core.sla``: it is what that code is graded
against. It reads only the contract's numbers (windows, grace, status-update interval,
allowed lateness) and restates the clauses from the facts the simulator knows it delivered.

What each clause asks (``sales`` judges it from event times alone):

* the clock starts when the lead becomes an MQL (leadflow routes it at that event time);
* OWNER_ASSIGNED: MET iff routing found a rep;
* FIRST_TOUCH: MET iff a touch at/after the MQL time comes by the deadline D (MQL time + the
  tier's window, counted in business hours of the lead's region if the contract says so),
  else BREACHED (a late touch or none);
* STATUS_UPDATE: each status change after the MQL time (the CRM's own MQL echo counts;
  leadflow's internal MQL does not) must come within ``status_update_every`` of the previous
  one (or of the MQL time) until a terminal status (DISQUALIFIED, CLOSED_WON, CLOSED_LOST):
  MET at that terminal status, BREACHED at the first longer gap;
* DISQUALIFICATION_REASON: for a routed lead disqualified, MET iff reason and notes were
  given (or the contract does not require them);
* CONTEXT_COMPLETE (marketing): for a lead whose score crossed the threshold, MET iff its
  context was complete at that moment.

When the engine can know it (``judge``). Evidence arrives late: each touch or status change
has the event time it ``delivered`` at (occurred + delivery delay). With g the grace and L
the contract's ``max_lateness_ms``:

* FIRST_TOUCH. In-time touches are those dated in [MQL time, D]. The *final* verdict is MET
  if an in-time touch is delivered by D + g + L (known when the first of them is delivered),
  else BREACHED (known at D + g + L + 1). If it is BREACHED and an in-time touch is
  delivered later, the *correction* is MET, known at that delivery, naming the touch's
  source and how late it was (delivered − occurred).
* STATUS_UPDATE. The chain is walked as above, but at a step with deadline D only updates
  delivered by D + g + L are visible: every visible update dated ≤ D moves the deadline to
  (the latest one's time) + every, a visible terminal one dated ≤ D ends it MET. The final
  is BREACHED at the first step where nothing visible moves the deadline (known at
  D + g + L + 1), MET if the walk reaches a terminal status. MET is known at the first
  delivery after which the updates delivered so far make a gapless chain to a terminal
  status (usually the terminal's own delivery). When the final is BREACHED and the walk over
  every update (``sales``) is MET, that is the correction, known when the last update it
  needs is delivered; its source and lateness are that update's.
* An *overdue notice* is expected for either clause when, at some moment, the clock passes
  the open deadline + g and nothing delivered by then meets it: for FIRST_TOUCH, no in-time
  touch delivered by D + g; every final BREACHED had one first.
* OWNER_ASSIGNED and CONTEXT_COMPLETE are final at their event time, DISQUALIFICATION_REASON
  when the disqualification is delivered; none is ever corrected.

With every delay ≤ L the final verdict is the event-time one and nothing is corrected; with no
delay a breach is known L later than the event-time reading of D + g. As of a given ``now``
a clause whose final verdict is not known yet is PENDING.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.core.durations import add_business_time

MET, BREACHED, PENDING = "MET", "BREACHED", "PENDING"
OWNER_ASSIGNED = "OWNER_ASSIGNED"
FIRST_TOUCH = "FIRST_TOUCH"
STATUS_UPDATE = "STATUS_UPDATE"
DISQUALIFICATION_REASON = "DISQUALIFICATION_REASON"
CONTEXT_COMPLETE = "CONTEXT_COMPLETE"
CLAUSES = (OWNER_ASSIGNED, FIRST_TOUCH, STATUS_UPDATE, DISQUALIFICATION_REASON, CONTEXT_COMPLETE)
TERMINAL = frozenset({"DISQUALIFIED", "CLOSED_WON", "CLOSED_LOST"})
# Until the contract names it (``Contract.max_lateness_ms``): an hour, the engine's default.
DEFAULT_LATENESS_MS = 3_600_000


def max_lateness(contract: Any) -> int:
    return int(getattr(contract, "max_lateness_ms", DEFAULT_LATENESS_MS))


@dataclass(frozen=True, slots=True)
class Correction:
    """A final verdict superseded by evidence delivered after it."""

    verdict: str  # MET (a breach is never found late: missing evidence is never delivered)
    known_at: int  # event time (ms) of the delivery that changes it
    late_source: str  # the channel that delivered that evidence ("crm")
    late_by_ms: int  # how late that evidence was: delivered − occurred


@dataclass(frozen=True, slots=True)
class Judged:
    verdict: str  # the final verdict: MET | BREACHED
    known_at: int  # the event time (ms) from which the engine can know it
    overdue: bool = False  # an overdue notice comes first (FIRST_TOUCH, STATUS_UPDATE)
    correction: Correction | None = None


class Evidence(NamedTuple):
    """A touch or a status change as the engine receives it."""

    at: int  # event time (ms)
    delivered: int  # event time (ms) it reaches the engine: ``at`` + delivery delay
    source: str = "crm"
    to: str = ""  # a status change's new status ("" for a touch)
    explained: bool = True  # a disqualification came with reason and notes


def first_touch_deadline(contract: Any, mql_at: int, tier: str | None, region: str | None) -> int:
    windows: Mapping[str, int] = contract.first_touch_ms
    window = windows.get(tier or "", windows.get("STANDARD", max(windows.values())))
    if contract.business_hours:
        return add_business_time(mql_at, window, contract.calendar_for(region))
    return mql_at + window


def sales(
    contract: Any,
    *,
    mql_at: int,
    tier: str | None,
    region: str | None,
    owner: str | None,
    touches: Iterable[int],
    changes: Iterable[tuple[int, str, bool]],
) -> dict[str, Judged]:
    """The sales clauses of one routed lead in event time alone, as if every event were read
    the moment it happened and a breach were final at deadline + grace: touch times and status
    changes (ms, status, reason and notes given)."""
    grace = contract.grace_ms
    out = {OWNER_ASSIGNED: Judged(MET if owner else BREACHED, mql_at)}

    deadline = first_touch_deadline(contract, mql_at, tier, region)
    first = min((t for t in touches if t >= mql_at), default=None)
    if first is not None and first <= deadline:
        out[FIRST_TOUCH] = Judged(MET, first)
    else:
        out[FIRST_TOUCH] = Judged(BREACHED, deadline + grace + 1)

    updates = [Evidence(at, at, to=to, explained=ok) for at, to, ok in _since(changes, mql_at)]
    verdict, at = walk(updates, mql_at, contract.status_update_every_ms)
    out[STATUS_UPDATE] = Judged(verdict, at if verdict == MET else at + grace + 1)
    dq = _disqualification(contract, updates)
    if dq is not None:
        out[DISQUALIFICATION_REASON] = dq
    return out


def judge(
    contract: Any,
    *,
    mql_at: int,
    tier: str | None,
    region: str | None,
    owner: str | None,
    touches: Iterable[Evidence],
    changes: Iterable[Evidence],
    settle_ms: int = 0,
) -> dict[str, Judged]:
    """The sales clauses of one routed lead as the engine must settle them from evidence that
    arrives late: final verdict, when it is known, overdue notice and correction (see the
    module docstring). ``settle_ms``: the event time that passes during the engine's
    ``sla_settle_s`` of wall time in a real-time replay (compressed: hours), which it waits
    beyond the lateness before a breach is final."""
    grace, lateness = contract.grace_ms, max_lateness(contract) + settle_ms
    out = {OWNER_ASSIGNED: Judged(MET if owner else BREACHED, mql_at)}
    deadline = first_touch_deadline(contract, mql_at, tier, region)
    out[FIRST_TOUCH] = _first_touch(list(touches), mql_at, deadline, grace, lateness)
    # By time only: changes at the same millisecond keep the order they arrived in, as the
    # engine's lifecycle applies them.
    updates = sorted((c for c in changes if c.at >= mql_at), key=_at)
    every = contract.status_update_every_ms
    out[STATUS_UPDATE] = _status_update(updates, mql_at, every, grace, lateness)
    dq = _disqualification(contract, updates)
    if dq is not None:
        out[DISQUALIFICATION_REASON] = dq
    return out


def _since(changes: Iterable[tuple[int, str, bool]], mql_at: int) -> list[tuple[int, str, bool]]:
    return sorted((c for c in changes if c[0] >= mql_at), key=lambda c: c[0])


def _at(e: Evidence) -> int:
    return e.at


def _by_delivery(e: Evidence) -> tuple[int, int]:
    return e.delivered, e.at


def _disqualification(contract: Any, updates: Sequence[Evidence]) -> Judged | None:
    for u in updates:
        if u.to == "DISQUALIFIED":
            ok = u.explained or not contract.require_disqualification_reason
            return Judged(MET if ok else BREACHED, max(u.at, u.delivered))
    return None


def _first_touch(
    touches: list[Evidence], mql_at: int, deadline: int, grace: int, lateness: int
) -> Judged:
    in_time = [t for t in touches if mql_at <= t.at <= deadline]
    first = min(in_time, key=_by_delivery, default=None)
    overdue = first is None or first.delivered > deadline + grace
    horizon = deadline + grace + lateness
    if first is not None and first.delivered <= horizon:
        return Judged(MET, max(first.at, first.delivered), overdue)
    correction = None if first is None else Correction(
        MET, first.delivered, first.source, first.delivered - first.at)
    return Judged(BREACHED, horizon + 1, overdue, correction)


def walk(updates: Sequence[Evidence], mql_at: int, every: int) -> tuple[str, int]:
    """The chain over ``updates`` (sorted by time): (MET, the terminal status's time) or
    (BREACHED, the deadline missed — or still open, if the updates simply run out)."""
    deadline = mql_at + every
    for u in updates:
        if u.at > deadline:
            return BREACHED, deadline
        if u.to in TERMINAL:
            return MET, u.at
        deadline = u.at + every
    return BREACHED, deadline


def _status_update(
    updates: list[Evidence], mql_at: int, every: int, grace: int, lateness: int
) -> Judged:
    # What the engine has read, delivery by delivery: when the chain read so far first reaches
    # a terminal status, and whether the clock ever passes its open deadline + grace first.
    read: list[Evidence] = []
    verdict, deadline = walk(read, mql_at, every)
    overdue, met_by = False, None
    for u in sorted(updates, key=_by_delivery):
        if deadline + grace < u.delivered:
            overdue = True
        read.append(u)
        read.sort(key=_at)
        verdict, deadline = walk(read, mql_at, every)
        if verdict == MET:
            met_by = u
            break
    if met_by is None:
        overdue = True

    final, horizon = _visible_walk(updates, mql_at, every, grace + lateness)
    if final == MET and met_by is not None:
        return Judged(MET, max(met_by.at, met_by.delivered), overdue)
    correction = None if met_by is None else Correction(
        MET, met_by.delivered, met_by.source, met_by.delivered - met_by.at)
    return Judged(BREACHED, horizon + 1, overdue, correction)


def _visible_walk(
    updates: list[Evidence], mql_at: int, every: int, wait: int
) -> tuple[str, int]:
    """(MET, 0) if the walk over what is visible reaches a terminal status, else (BREACHED,
    deadline + ``wait``: the horizon at the step where nothing visible moved the deadline)."""
    deadline = mql_at + every
    pending = updates
    while True:
        horizon = deadline + wait
        visible = [u for u in pending if u.at <= deadline and u.delivered <= horizon]
        if not visible:
            return BREACHED, horizon
        if any(u.to in TERMINAL for u in visible):
            return MET, 0
        # Updates seen late never pull the deadline back: the latest in-time one sets it.
        deadline = max(deadline, max(u.at for u in visible) + every)
        pending = [u for u in pending if u not in visible]


def context(crossed_at: int, missing: list[str]) -> Judged:
    """CONTEXT_COMPLETE, judged when the score first crossed the threshold."""
    return Judged(BREACHED if missing else MET, crossed_at)


def as_of(judged: Mapping[str, Judged], now_ms: int | None) -> dict[str, str]:
    """Clause → final verdict known by event time ``now_ms`` (PENDING if not yet); None:
    final."""
    return {
        clause: j.verdict if now_ms is None or j.known_at <= now_ms else PENDING
        for clause, j in judged.items()
    }


def latest(judged: Mapping[str, Judged], now_ms: int | None) -> dict[str, str]:
    """Clause → the verdict in force at event time ``now_ms`` (None: in the end): a known
    correction supersedes the final verdict, as a consumer applying revisions ends up with."""
    out = as_of(judged, now_ms)
    for clause, j in judged.items():
        c = j.correction
        if c is not None and (now_ms is None or c.known_at <= now_ms):
            out[clause] = c.verdict
    return out


def corrections(judged: Mapping[str, Judged]) -> dict[str, Correction]:
    """Clause → its correction, for the clauses that have one."""
    return {c: j.correction for c, j in judged.items() if j.correction is not None}
