"""The per-lead trace: what happened to a lead, step by step, in event time.

State (JSON-serialisable, stored in a Faust table as is)::

    {"lead_id": str, "steps": [step, ...], "seen": {event_id: processed_ms},
     "canonical": str | None, "aliases": [lead_id, ...]}

    step = {"kind", "event_id", "occurred_at": ms, "observed_at": ms, "source",
            "correlation_id", "detail": {str: str | int | float}}

Steps are kept sorted by ``(occurred_at, rank, event_id)`` (rank puts derived steps after their
cause) whatever order they arrive in, so the same set of events always yields the same list
(live, replayed or out of order).

Duplicates: ``seen`` is a fast O(1) check over a retention window (values are the
processing time ``now_ms``, so insertion order is roughly time order and pruning pops from
the front). Steps are never pruned, and a duplicate that arrives after its id left ``seen``
is still caught by a bisect over the steps with the same ``occurred_at`` — so dedup is exact
forever; ``seen`` only makes the common case cheap.

Hot path: ``apply`` runs per event at thousands per second. It MUTATES the state in place
and returns it (no deep copy): O(log n) bisects + O(k) pruning of expired ids. Callers must
not share a state object between leads or keep references expecting it to stay unchanged.

Detail holds what RevOps needs to read a trace and nothing personal: company, campaign, size
band, region, statuses, rep, channel, outcome — never names, emails, phones or free-text notes.
"""

from __future__ import annotations

import heapq
import json
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from enum import StrEnum
from typing import Any

from streams.core.contract import epoch_ms

State = dict[str, Any]
Step = dict[str, Any]

# Matches the default of the dedup_retention_days setting; only a fallback for callers.
DEFAULT_RETENTION_MS = 7 * 24 * 3600 * 1000


MEETING_PREFIX = "MEETING_"
# A meeting that took place is a sales touch: it meets FIRST_TOUCH like a logged call.
MEETING_HELD = "MEETING_HELD"


class StepKind(StrEnum):
    CAPTURED = "CAPTURED"
    ACTIVITY = "ACTIVITY"
    TOUCH = "TOUCH"
    STATUS_CHANGED = "STATUS_CHANGED"
    ALIASED = "ALIASED"
    # Produced by later stages.
    SCORED = "SCORED"
    MQL = "MQL"
    HELD = "HELD"  # reached the threshold, waits for a lawful basis before sales gets it
    ROUTED = "ROUTED"
    SLA = "SLA"


def _attributes(record: dict[str, Any]) -> dict[str, Any]:
    # Custom attributes, when the record has any, as one short line ("origin=API visits=3").
    found = record.get("attributes")
    if isinstance(found, str):  # the archive keeps a map as its JSON text
        try:
            found = json.loads(found)
        except ValueError:
            found = None
    if not found or not isinstance(found, dict):
        return {}
    text = " ".join(f"{k}={_shown(v)}" for k, v in sorted(found.items()) if v is not None)
    return {"attributes": text[:400]}


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "|".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _lead_detail(record: dict[str, Any]) -> dict[str, Any]:
    attribution = record.get("attribution") or {}
    return {
        "company": record.get("company_name"),
        "company_size": record.get("company_size"),
        "region": record.get("region"),
        "campaign_id": attribution.get("campaign_id"),
    } | _attributes(record)


def _activity_detail(record: dict[str, Any]) -> dict[str, Any]:
    detail = {"type": record.get("activity_type"), "campaign_id": record.get("campaign_id")}
    kind = detail["type"]
    if isinstance(kind, str) and kind.startswith(MEETING_PREFIX):
        # Which meeting and whose: a held one is the host's touch (FIRST_TOUCH), a no-show
        # counts against the campaign and the rep on the dashboard.
        props = record.get("properties") or {}
        if isinstance(props, str):  # the archive keeps a map as its JSON text
            try:
                props = json.loads(props)
            except ValueError:
                props = {}
        if not isinstance(props, dict):
            props = {}
        detail.update(meeting=props.get("meetingId"), rep=props.get("repId"),
                      starts_at=props.get("startsAt"))
    return detail | _attributes(record)


def _status_detail(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "previous": record.get("previous_status"),
        "new": record.get("new_status"),
        "reason": record.get("disqualification_reason"),
        "by": record.get("updated_by"),
    }


def _touch_detail(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "rep": record.get("rep_id"),
        "channel": record.get("channel"),
        "outcome": record.get("outcome"),
    }


def _identity_detail(record: dict[str, Any]) -> dict[str, Any]:
    return {"canonical": record.get("canonical_lead_id"), "alias": record.get("alias_lead_id")}


# topic kind → (step kind, detail extractor). "identity" is an IdentityResolved record.
_FROM_RECORD: dict[str, tuple[StepKind, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "lead": (StepKind.CAPTURED, _lead_detail),
    "activity": (StepKind.ACTIVITY, _activity_detail),
    "status": (StepKind.STATUS_CHANGED, _status_detail),
    "touch": (StepKind.TOUCH, _touch_detail),
    "identity": (StepKind.ALIASED, _identity_detail),
}


def new_step(
    kind: str,
    event_id: str,
    occurred_at_ms: int,
    observed_at_ms: int,
    *,
    source: str,
    correlation_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Step:
    """A step of any kind (later stages use this for SCORED, ROUTED, SLA, ...).
    ``None`` values are dropped from ``detail`` to keep the stored state small."""
    return {
        "kind": str(kind),
        "event_id": event_id,
        "occurred_at": occurred_at_ms,
        "observed_at": observed_at_ms,
        "source": source,
        "correlation_id": correlation_id,
        "detail": {k: v for k, v in (detail or {}).items() if v is not None},
    }


def step_from_record(kind: str, record: dict[str, Any], observed_at_ms: int) -> Step:
    """A validated record of topic kind "lead" | "activity" | "status" | "touch" | "identity"
    (IdentityResolved) → its trace step."""
    try:
        step_kind, detail = _FROM_RECORD[kind]
    except KeyError:
        raise ValueError(f"no trace step for record kind {kind!r}") from None
    occurred = record["occurred_at"]
    return new_step(
        step_kind.value,
        record["event_id"],
        epoch_ms(occurred) if isinstance(occurred, datetime) else int(occurred),
        observed_at_ms,
        source=record.get("source_system") or "leadflow",
        correlation_id=record.get("correlation_id"),
        detail=detail(record),
    )


def new_state(lead_id: str) -> State:
    return {"lead_id": lead_id, "steps": [], "seen": {}, "canonical": None, "aliases": []}


# A derived step shares its cause's times; it sorts after it, in the order leadflow works
# (an ALIASED link is dated at the later of its two captures).
_RANK = {StepKind.ALIASED: 1, StepKind.SCORED: 2, StepKind.MQL: 3, StepKind.ROUTED: 4,
         StepKind.SLA: 5}


def _order(step: Step) -> tuple[int, int, str]:
    # Not by observation time: a replay must order steps of one millisecond the same way.
    return step["occurred_at"], _RANK.get(step["kind"], 0), step["event_id"]


def _occurred(step: Step) -> int:
    return step["occurred_at"]


def steps_at(steps: list[Step], occurred_at: int) -> list[Step]:
    """The steps of one event time (``steps`` as a state keeps them, in order)."""
    i = bisect_left(steps, occurred_at, key=_occurred)
    return steps[i:bisect_right(steps, occurred_at, lo=i, key=_occurred)]


def _in_steps(steps: list[Step], step: Step) -> bool:
    return any(s["event_id"] == step["event_id"] for s in steps_at(steps, step["occurred_at"]))


def apply(
    state: State | None, lead_id: str, step: Step, *, now_ms: int, retention_ms: int
) -> tuple[State, bool]:
    """Add ``step`` to the trace of ``lead_id``; returns (state, added). A duplicate event id
    returns (state, False) and changes nothing. Mutates ``state`` in place."""
    if state is None:
        state = new_state(lead_id)
    seen: dict[str, int] = state["seen"]
    steps: list[Step] = state["steps"]
    if step["event_id"] in seen or _in_steps(steps, step):
        return state, False
    insort(steps, step, key=_order)
    seen[step["event_id"]] = now_ms
    horizon = now_ms - retention_ms
    while seen:
        oldest = next(iter(seen))
        if seen[oldest] >= horizon:
            break
        del seen[oldest]
    return state, True


def apply_alias(
    state: State | None,
    lead_id: str,
    resolved: dict[str, Any],
    now_ms: int,
    *,
    retention_ms: int = DEFAULT_RETENTION_MS,
) -> tuple[State, bool]:
    """Apply an IdentityResolved record to the trace of ``lead_id`` (the alias or the
    canonical side of the link): adds an ALIASED step and, unless it is a duplicate, sets
    ``canonical`` (alias side; the latest link wins), joins ``aliases`` (canonical side) or,
    for a self-link (alias == canonical), clears ``canonical``.
    Returns (state, added) like ``apply`` and likewise mutates ``state`` in place.

    Stale pointers after a canonical change are harmless: readers resolve the whole group
    with ``related_lead_ids``."""
    canonical = resolved.get("canonical_lead_id")
    alias = resolved.get("alias_lead_id")
    if lead_id not in (canonical, alias):
        raise ValueError(f"link {alias}->{canonical} does not involve lead {lead_id}")
    step = step_from_record("identity", resolved, now_ms)
    state, added = apply(state, lead_id, step, now_ms=now_ms, retention_ms=retention_ms)
    if added:
        if alias == canonical:
            state["canonical"] = None  # canonical again: the earlier pointer is void
        elif lead_id == alias:
            state["canonical"] = canonical
        elif alias not in state["aliases"]:
            insort(state["aliases"], alias)
    return state, added


def related_lead_ids(
    lookup: Callable[[str], State | None], lead_id: str, *, limit: int = 100
) -> list[str]:
    """Every lead id linked to ``lead_id`` through canonical/alias pointers (itself included),
    following pointers both ways so stale links still reach the whole group. Sorted."""
    found = {lead_id}
    frontier = [lead_id]
    while frontier and len(found) < limit:
        state = lookup(frontier.pop())
        if state is None:
            continue
        for other in (state.get("canonical"), *state.get("aliases", ())):
            if other and other not in found:
                found.add(other)
                frontier.append(other)
    return sorted(found)


def _keyed(state: State) -> Iterator[tuple[tuple[int, int, str, str], Step]]:
    lead_id = state["lead_id"]
    for step in state["steps"]:
        yield (*_order(step), lead_id), step


def _first(
    pair: tuple[tuple[int, int, str, str], Step],
) -> tuple[int, int, str, str]:
    return pair[0]


# Steps a rep makes: the time before them (once the lead is routed) is spent waiting on people.
HUMAN_KINDS = frozenset({StepKind.TOUCH, StepKind.STATUS_CHANGED})


def timeline(states: Iterable[State | None]) -> list[dict[str, Any]]:
    """Merge the traces of a lead and its aliases into one event-time ordered list.

    An event present in several traces (both sides of an ALIASED link) appears once. Each row
    is a copy of the step plus ``lead_id`` (whose trace holds it), ``since_previous_ms`` (event
    time since the previous row; None for the first), ``wait`` ("human": a rep's step after
    the lead was routed, so the time before it was spent waiting on people; else "system")
    and ``lag_ms`` (observed - occurred: the time spent before leadflow saw it; negative when
    the sender's clock runs ahead). SLA verdict rows sit at the time they were reached but are
    judgements, not events: they carry no ``since_previous_ms`` and do not restart it."""
    streams = [_keyed(s) for s in states if s is not None]
    rows: list[dict[str, Any]] = []
    emitted: set[str] = set()
    previous: int | None = None
    routed = False
    for (occurred, _, event_id, lead_id), step in heapq.merge(*streams, key=_first):
        if event_id in emitted:
            continue
        emitted.add(event_id)
        row = dict(step)
        row["detail"] = dict(step["detail"])
        row["lead_id"] = lead_id
        row["lag_ms"] = step["observed_at"] - occurred
        kind = step["kind"]
        if kind == StepKind.SLA:
            row["since_previous_ms"], row["wait"] = None, None
        else:
            row["since_previous_ms"] = None if previous is None else occurred - previous
            row["wait"] = "human" if routed and kind in HUMAN_KINDS else "system"
            previous = occurred
            routed = routed or kind == StepKind.ROUTED
        rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the time went, from ``timeline`` rows: elapsed event time, steps per kind, the
    worst ingestion lag, capture → first sales touch, event time split into system and human
    waits, and the SLA verdicts."""
    by_kind: dict[str, int] = {}
    for row in rows:
        by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + 1
    captured: int | None = next(
        (r["occurred_at"] for r in rows if r["kind"] == StepKind.CAPTURED), None
    )
    first_touch: int | None = None
    if captured is not None:
        first_touch = next(
            (
                r["occurred_at"] - captured
                for r in rows
                if (r["kind"] == StepKind.TOUCH or (r["kind"] == StepKind.ACTIVITY and (
                    r.get("detail") or {}).get("type") == MEETING_HELD))
                and r["occurred_at"] >= captured
            ),
            None,
        )
    waits = {"system": 0, "human": 0}
    for row in rows:
        if row.get("since_previous_ms") is not None:
            waits[row["wait"]] += row["since_previous_ms"]
    return {
        "lead_ids": sorted({r["lead_id"] for r in rows}),
        "steps": len(rows),
        "first_at": rows[0]["occurred_at"] if rows else None,
        "last_at": rows[-1]["occurred_at"] if rows else None,
        "elapsed_ms": rows[-1]["occurred_at"] - rows[0]["occurred_at"] if rows else None,
        "by_kind": by_kind,
        "max_lag_ms": max((r["lag_ms"] for r in rows), default=None),
        "capture_to_first_touch_ms": first_touch,
        "system_ms": waits["system"],
        "human_ms": waits["human"],
        "sla": [
            {k: r["detail"].get(k) for k in ("clause", "verdict", "party", "deadline", "met_at",
                                              "status", "revision")}
            for r in rows if r["kind"] == StepKind.SLA
        ],
    }
