"""The CRM status state machine: where a lead stands, and which moves broke the rules.

The CRM is the system of record for a lead's status, so leadflow never refuses a change it
reports: an illegal move still moves the lead, and the violation is recorded for RevOps and
the sales side of the SLA. What leadflow adds is *order independence*. Status changes arrive
late, twice, or out of order (webhook retries, replays, several partitions upstream), so the
state is the set of changes seen, kept sorted by ``(occurred_at, event_id)``, and ``fold``
replays it from NEW every time. The same set of changes in any arrival order, with any
duplicates, therefore gives the same answer — live or replayed.

State (JSON-serialisable, stored in a Faust table as is)::

    {"changes": [change, ...]}   sorted by (occurred_at, event_id)

    change = {"event_id": str, "occurred_at": ms, "to": status,
              "from_crm": status | None,   # the CRM's idea of the previous status
              "reason": str | None, "notes": bool, "by": str | None, "system": bool}

Only whether notes exist is kept: notes are free text written about people and the trace
keeps nothing personal. A lead has a handful of changes, so ``apply`` (linear duplicate
check) and ``fold`` (full replay) are cheap enough per event.

Rules of the replay, beyond the table of legal edges ``LEGAL``:

- A change to the status the lead already has is a no-op: legal, recorded as a transition,
  status and ``status_at`` unchanged. This holds in terminal statuses too (a CRM re-sending
  CLOSED_WON is not a violation); any *other* change after a terminal status is illegal.
- ``DQ_WITHOUT_REASON`` is judged when a change moves the lead into DISQUALIFIED (a repeated
  DISQUALIFIED is a no-op, not a second disqualification).
- ``PREVIOUS_MISMATCH`` compares the CRM's previous status, when given, with ours at that
  point of the replay. It is informational and never makes a transition illegal.
- A system change (leadflow's own NEW→MQL) never overrides the CRM: if its edge is not legal
  from the current status (the CRM already moved the lead on) it is recorded as a no-op
  transition (``to_status == from_status``) without violations.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from streams.core.contract import LeadStatus, epoch_ms

State = dict[str, Any]
Change = dict[str, Any]

_S = LeadStatus
NEW = _S.NEW.value
DISQUALIFIED = _S.DISQUALIFIED.value

# Every status a change may move a lead to (UNKNOWN is only ever a *previous* status read
# from a newer writer; the contract rejects it as a new status).
STATUSES: frozenset[str] = frozenset(m.value for m in LeadStatus) - {_S.UNKNOWN.value}
TERMINAL: frozenset[str] = frozenset({DISQUALIFIED, _S.CLOSED_WON.value, _S.CLOSED_LOST.value})
OPEN: frozenset[str] = STATUSES - TERMINAL

_EDGES: dict[str, set[str]] = {
    NEW: {_S.MQL},
    _S.MQL: {_S.SAL, _S.WORKING, _S.NO_RESPONSE, _S.BAD_FIT},
    _S.WORKING: {_S.SAL, _S.NO_RESPONSE, _S.BAD_FIT},
    _S.NO_RESPONSE: {_S.WORKING, _S.SAL},
    _S.BAD_FIT: set(),
    _S.SAL: {_S.SQL},
    _S.SQL: {_S.CLOSED_WON, _S.CLOSED_LOST},
}
# status → statuses it may legally move to. Same-status changes are not edges (see no-op).
LEGAL: dict[str, frozenset[str]] = {
    status: frozenset(str(s) for s in _EDGES.get(status, set()))
    | (frozenset({DISQUALIFIED}) if status in OPEN else frozenset())
    for status in sorted(STATUSES)
}

# Violation codes carried by transitions.
ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
DQ_WITHOUT_REASON = "DQ_WITHOUT_REASON"
PREVIOUS_MISMATCH = "PREVIOUS_MISMATCH"

# Latest statuses that end the sales side's work on a lead without it being closed.
_DISPOSITIONS = TERMINAL | {_S.BAD_FIT.value, _S.NO_RESPONSE.value}


@dataclass(frozen=True, slots=True)
class Transition:
    """One change as the replay judged it. ``legal`` is about the edge only: False iff
    ``ILLEGAL_TRANSITION`` is among ``violations`` (the other codes are data quality)."""

    event_id: str
    occurred_at: int
    from_status: str
    to_status: str
    legal: bool
    violations: tuple[str, ...]
    system: bool

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["violations"] = list(self.violations)
        return out


@dataclass(frozen=True, slots=True)
class Fold:
    """Where a lead stands after replaying its changes from NEW.

    ``status_at``: when the lead entered ``status`` (no-ops do not reset it); None while NEW
    with no move. ``closed_at``: when the lead entered the terminal run it is in now (moves
    between terminal statuses keep it, reopening clears it); None while open."""

    status: str
    status_at: int | None
    closed_at: int | None
    transitions: tuple[Transition, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "status_at": self.status_at,
            "closed_at": self.closed_at,
            "transitions": [t.as_dict() for t in self.transitions],
        }


def is_open(status: str) -> bool:
    return status in OPEN


def disposition(fold: Fold) -> str | None:
    """The terminal status, or BAD_FIT / NO_RESPONSE when the latest status is one of those;
    None while the lead is still being worked (or not yet handed over)."""
    return fold.status if fold.status in _DISPOSITIONS else None


def new_state() -> State:
    return {"changes": []}


def _ms(value: Any, field: str) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{field} must be timezone-aware")
        return epoch_ms(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{field} must be an aware datetime or int epoch ms, not {value!r}")


def _status(value: Any, field: str) -> str:
    if not isinstance(value, str) or value not in STATUSES:
        raise ValueError(f"{field} {value!r} is not a lead status")
    return value


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def new_change(record: dict[str, Any], *, system: bool = False) -> Change:
    """A validated LeadStatusChanged record → a change. A previous status of UNKNOWN (a
    symbol this reader does not know) is kept as None: it says nothing we can compare."""
    previous = record.get("previous_status")
    if previous == _S.UNKNOWN.value:
        previous = None
    return {
        "event_id": str(record["event_id"]),
        "occurred_at": _ms(record["occurred_at"], "occurred_at"),
        "to": _status(record.get("new_status"), "new_status"),
        "from_crm": None if previous is None else _status(previous, "previous_status"),
        "reason": _text(record.get("disqualification_reason")),
        "notes": _text(record.get("sales_notes")) is not None,
        "by": _text(record.get("updated_by")),
        "system": bool(system),
    }


def system_change(event_id: str, occurred_at_ms: int, to: str) -> Change:
    """leadflow's own change (it moves a lead NEW→MQL when it finds it sales-ready)."""
    return {
        "event_id": event_id,
        "occurred_at": _ms(occurred_at_ms, "occurred_at_ms"),
        "to": _status(to, "to"),
        "from_crm": None,
        "reason": None,
        "notes": False,
        "by": None,
        "system": True,
    }


def _order(change: Change) -> tuple[int, str]:
    return change["occurred_at"], change["event_id"]


def apply(state: State | None, change: Change) -> tuple[State, bool]:
    """Insert ``change`` in event-time order; returns (state, added). A change whose event id
    is already present returns (state, False) and changes nothing: the same event id is the
    same event redelivered, so the first copy stands. Mutates ``state`` in place."""
    if state is None:
        state = new_state()
    changes: list[Change] = state["changes"]
    event_id = change["event_id"]
    if any(c["event_id"] == event_id for c in changes):
        return state, False
    insort(changes, change, key=_order)
    return state, True


def _judge(status: str, change: Change) -> tuple[str, tuple[str, ...]]:
    """(status after the change, violations) for ``change`` seen in ``status``."""
    target: str = change["to"]
    if target == status:
        moved_to = status
        violations: list[str] = []
    elif change["system"] and target not in LEGAL.get(status, frozenset()):
        return status, ()  # superseded by the CRM: leadflow does not pull a lead back
    else:
        moved_to = target
        violations = [] if target in LEGAL.get(status, frozenset()) else [ILLEGAL_TRANSITION]
        if target == DISQUALIFIED and (not change["reason"] or not change["notes"]):
            violations.append(DQ_WITHOUT_REASON)
    previous = change.get("from_crm")
    if previous is not None and previous != status:
        violations.append(PREVIOUS_MISMATCH)
    return moved_to, tuple(violations)


def fold(state: State | None) -> Fold:
    """Replay the changes in event-time order from NEW (see the module notes for the rules)."""
    status = NEW
    status_at: int | None = None
    closed_at: int | None = None
    transitions: list[Transition] = []
    for change in (state or {}).get("changes", ()):
        at = change["occurred_at"]
        moved_to, violations = _judge(status, change)
        transitions.append(
            Transition(
                event_id=change["event_id"],
                occurred_at=at,
                from_status=status,
                to_status=moved_to,
                legal=ILLEGAL_TRANSITION not in violations,
                violations=violations,
                system=bool(change["system"]),
            )
        )
        if moved_to != status:
            if moved_to in TERMINAL and status not in TERMINAL:
                closed_at = at
            elif moved_to not in TERMINAL:
                closed_at = None
            status, status_at = moved_to, at
    return Fold(status, status_at, closed_at, tuple(transitions))
