"""The SLA verdicts the engine must reach, by a small reference of its own.

This deliberately does not call ``streams.core.sla``: it is what that code is graded
against. It reads only the contract's numbers (windows, grace, status-update interval) and
restates the clauses from the facts the simulator knows it delivered:

* the clock starts when the lead becomes an MQL (leadflow routes it at that event time);
* OWNER_ASSIGNED: MET iff routing found a rep;
* FIRST_TOUCH: MET iff the first touch at/after the MQL time comes by the deadline (MQL
  time + the tier's window, counted in business hours of the lead's region if the contract
  says so), else BREACHED (a late touch or none);
* STATUS_UPDATE: each status change after the MQL time (the CRM's own MQL echo counts;
  leadflow's internal MQL does not) must come within ``status_update_every`` of the previous
  one (or of the MQL time) until a terminal status (DISQUALIFIED, CLOSED_WON, CLOSED_LOST):
  MET at that terminal status, BREACHED at the first longer gap;
* DISQUALIFICATION_REASON: for a routed lead disqualified, MET iff reason and notes were
  given (or the contract does not require them);
* CONTEXT_COMPLETE (marketing): for a lead whose score crossed the threshold, MET iff its
  context was complete at that moment.

A verdict is *known* from an event time on: a meeting event's time, or just after deadline +
grace for a breach (the engine judges a clock once its event-time clock is past deadline +
grace). Before that, as of a given ``now``, the clause is PENDING.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.core.durations import add_business_time

MET, BREACHED, PENDING = "MET", "BREACHED", "PENDING"
OWNER_ASSIGNED = "OWNER_ASSIGNED"
FIRST_TOUCH = "FIRST_TOUCH"
STATUS_UPDATE = "STATUS_UPDATE"
DISQUALIFICATION_REASON = "DISQUALIFICATION_REASON"
CONTEXT_COMPLETE = "CONTEXT_COMPLETE"
CLAUSES = (OWNER_ASSIGNED, FIRST_TOUCH, STATUS_UPDATE, DISQUALIFICATION_REASON, CONTEXT_COMPLETE)
TERMINAL = frozenset({"DISQUALIFIED", "CLOSED_WON", "CLOSED_LOST"})


@dataclass(frozen=True, slots=True)
class Judged:
    verdict: str  # MET | BREACHED
    known_at: int  # the event time (ms) from which the engine can know it


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
    """The sales clauses of one routed lead from what the CRM delivered: touch times and
    status changes (ms, status, reason and notes given)."""
    grace = contract.grace_ms
    out = {OWNER_ASSIGNED: Judged(MET if owner else BREACHED, mql_at)}

    deadline = first_touch_deadline(contract, mql_at, tier, region)
    first = min((t for t in touches if t >= mql_at), default=None)
    if first is not None and first <= deadline:
        out[FIRST_TOUCH] = Judged(MET, first)
    else:
        out[FIRST_TOUCH] = Judged(BREACHED, deadline + grace + 1)

    every = contract.status_update_every_ms
    deadline = mql_at + every
    # By time only: changes at the same millisecond keep the order they arrived in, as the
    # engine's lifecycle applies them.
    updates = sorted((c for c in changes if c[0] >= mql_at), key=lambda c: c[0])
    status = None
    for at, to, _ in updates:
        if at > deadline:
            status = Judged(BREACHED, deadline + grace + 1)
            break
        if to in TERMINAL:
            status = Judged(MET, at)
            break
        deadline = at + every
    out[STATUS_UPDATE] = status or Judged(BREACHED, deadline + grace + 1)

    for at, to, explained in updates:
        if to == "DISQUALIFIED":
            ok = explained or not contract.require_disqualification_reason
            out[DISQUALIFICATION_REASON] = Judged(MET if ok else BREACHED, at)
            break
    return out


def context(crossed_at: int, missing: list[str]) -> Judged:
    """CONTEXT_COMPLETE, judged when the score first crossed the threshold."""
    return Judged(BREACHED if missing else MET, crossed_at)


def as_of(judged: Mapping[str, Judged], now_ms: int | None) -> dict[str, str]:
    """Clause → verdict known by event time ``now_ms`` (PENDING if not yet); None: final."""
    return {
        clause: j.verdict if now_ms is None or j.known_at <= now_ms else PENDING
        for clause, j in judged.items()
    }
