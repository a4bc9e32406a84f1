"""What sales does with a lead leadflow handed over: touches and status changes, in the
habits of the rep it was routed to.

The eventual outcome is drawn from the lead's true probability; how much of the path is
visible depends on time (events after ``now`` are not delivered) and on the rep (slow reps
touch late, sloppy reps skip status updates and disqualify without a reason). Reps work
their configured hours, so what lands at the end of their day waits for the next morning.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from streams.core.routing import Rep as RosterRep
from streams.simulate import catalog as C
from streams.simulate.funnel import (
    HOUR,
    MINUTE,
    SECOND,
    Funnel,
    between,
    event,
    iso,
    js,
    pick,
    uuid4,
)
from streams.simulate.model import Delivery, Rep
from streams.simulate.staff import next_working

TERMINAL = frozenset({"DISQUALIFIED", "CLOSED_WON", "CLOSED_LOST"})

# Legal next statuses for a good lead; the simulator only ever walks these edges.
LEGAL_NEXT: dict[str | None, frozenset[str]] = {
    None: frozenset({"MQL"}),
    "NEW": frozenset({"MQL"}),
    "MQL": frozenset({"WORKING", "SAL", "NO_RESPONSE", "BAD_FIT", "DISQUALIFIED"}),
    "WORKING": frozenset({"SAL", "NO_RESPONSE", "BAD_FIT", "DISQUALIFIED"}),
    "NO_RESPONSE": frozenset({"DISQUALIFIED"}),
    "BAD_FIT": frozenset({"DISQUALIFIED"}),
    "SAL": frozenset({"SQL", "DISQUALIFIED"}),
    "SQL": frozenset({"CLOSED_WON", "CLOSED_LOST"}),
    "DISQUALIFIED": frozenset(),
    "CLOSED_WON": frozenset(),
    "CLOSED_LOST": frozenset(),
}

# How CRMs spell statuses: any case, spaces or hyphens (the engine must normalise them).
STATUS_SPELLINGS: dict[str, tuple[str, ...]] = {
    "NEW": ("New", "NEW", "new"),
    "MQL": ("MQL", "mql", "Mql"),
    "WORKING": ("Working", "WORKING", "working"),
    "NO_RESPONSE": ("No Response", "no-response", "NO_RESPONSE"),
    "BAD_FIT": ("Bad Fit", "bad-fit", "BAD_FIT"),
    "SAL": ("SAL", "Sal", "sal"),
    "SQL": ("SQL", "Sql", "sql"),
    "DISQUALIFIED": ("Disqualified", "DISQUALIFIED", "disqualified"),
    "CLOSED_WON": ("Closed Won", "closed-won", "CLOSED_WON", "Closed won"),
    "CLOSED_LOST": ("Closed Lost", "Closed-Lost", "closed lost", "CLOSED_LOST"),
}

# Median delay (hours) from the previous step to this status, before the rep's diligence.
# Real B2B cycles take weeks; these are compressed so a one-week scenario closes deals.
STAGE_DELAY_H = {
    "SAL": 6.0, "SQL": 12.0, "CLOSED_WON": 20.0, "CLOSED_LOST": 16.0, "DISQUALIFIED": 8.0,
    "NO_RESPONSE": 30.0, "BAD_FIT": 5.0,
}


def _lognormal(rng: random.Random, median_ms: float, sigma: float) -> int:
    return int(rng.lognormvariate(math.log(median_ms), sigma))


# Of the leads that are not won, a share that grows with their probability gets to SAL
# (better leads get further before they are lost: funnel stage carries signal), and this
# share of those to SQL before they are lost.
_SQL_AFTER_SAL = 0.6


def _advance(probability: float) -> float:
    return min(0.6, 0.08 + 2.0 * probability)


def sql_probability(probability: float) -> float:
    """P(the lead reaches SQL) for a lead that converts with ``probability`` (see
    ``plan_stages``): the truth behind the default label (positive = SQL or won)."""
    return probability + (1 - probability) * _advance(probability) * _SQL_AFTER_SAL


def plan_stages(rng: random.Random, probability: float, converted: bool) -> list[str]:
    """The statuses after MQL this lead will eventually go through."""
    if converted:
        return ["SAL", "SQL", "CLOSED_WON"]
    advance = _advance(probability)
    r = rng.random()
    if r < advance:
        if rng.random() < _SQL_AFTER_SAL:
            return ["SAL", "SQL", "CLOSED_LOST"]
        return ["SAL", "DISQUALIFIED"]
    if r < advance + 0.25:
        return ["NO_RESPONSE", "DISQUALIFIED"] if rng.random() < 0.7 else ["NO_RESPONSE"]
    if r < advance + 0.4:
        return ["BAD_FIT", "DISQUALIFIED"]
    return ["DISQUALIFIED"]


@dataclass(slots=True)
class Worked:
    """What the CRM reported about one lead inside the window (events after ``now`` never
    happen), in event time: what the SLA is judged on. The deliveries are kept because their
    delivery time is settled only later (bad input may hold one up)."""

    statuses: list[str] = field(default_factory=list)  # normalised, the MQL echo first
    touches: list[Delivery] = field(default_factory=list)
    changes: list[tuple[Delivery, str, bool]] = field(default_factory=list)  # status, explained
    # When leadflow reads the terminal status (delivered, epoch ms): the rep is free again.
    released_at: int | None = None


def follow_up(
    f: Funnel,
    lead_id: str,
    rep: Rep,
    roster: RosterRep,
    t_mql: int,
    *,
    hand_raiser: bool,
    stages: list[str],
    bad_fit_reason: str | None,
    dq: tuple[str, str] | None = None,
) -> Worked:
    """Append the CRM events of a lead leadflow handed to ``rep`` at ``t_mql`` (the CRM echoes
    the MQL status a little later); ``dq`` forces the reason and notes of a disqualification."""
    rng = f.rng
    t_echo = t_mql + between(rng, 5, 120) * SECOND
    steps: list[tuple[int, str]] = [(t_echo, "MQL")]
    neglected = rng.random() < 0.03 + 0.2 * (1.0 - rep.diligence)
    touches: list[tuple[int, str, str]] = []
    if not neglected:
        median = rep.first_touch_median_min * MINUTE * (0.3 if hand_raiser else 1.0)
        first = next_working(rng, roster, t_echo + _lognormal(rng, median, 1.0))
        touches.append((first, *_touch_kind(rng, stages, 0)))
        prev = first
        if rng.random() < rep.diligence:
            prev = first + _lognormal(rng, 20 * MINUTE / rep.diligence, 0.8)
            steps.append((prev, "WORKING"))
        for stage in stages:
            delay = _lognormal(rng, STAGE_DELAY_H[stage] * HOUR / rep.diligence, 0.7)
            prev = max(prev + MINUTE, next_working(rng, roster, prev + delay))
            steps.append((prev, stage))
        end = steps[-1][0]
        busy = stages[-1] == "CLOSED_WON" or stages[0] == "NO_RESPONSE"
        n_more = between(rng, 2, 5) if busy else between(rng, 0, 3)
        t = first
        for i in range(1, n_more + 1):
            t = next_working(rng, roster, t + _lognormal(rng, 10 * HOUR, 0.6))
            if t >= end:
                break
            touches.append((t, *_touch_kind(rng, stages, i)))

    now_ms = f.now_ms
    worked = Worked()
    previous: str | None = None
    for ms, status in steps:
        if ms > now_ms:
            break
        ms -= ms % SECOND
        body, explained = status_body(rng, lead_id, rep, previous, status, ms, bad_fit_reason, dq)
        d = event(ms, "status", lead_id, body)
        d.due_s += f.delays.crm()
        f.events.append(d)
        worked.statuses.append(status)
        worked.changes.append((d, status, explained))
        if status in TERMINAL:
            # Routing frees the rep when leadflow reads it, which may be hours after it happened.
            worked.released_at = int(d.due_s)
        previous = status
    for ms, channel, result in touches:
        if ms > now_ms:
            continue
        ms -= ms % SECOND
        # Direct JSON text, like activities (see journey.activity_body).
        body = (
            f'{{"event":"lead.touch.logged","payload":{{"leadId":"{lead_id}",'
            f'"touchId":"{uuid4(rng)}","repId":"{rep.rep_id}","channel":"{channel}",'
            f'"outcome":"{result}","timestamp":"{iso(ms)}"}}}}'
        ).encode()
        d = event(ms, "touch", lead_id, body)
        d.due_s += f.delays.crm()
        f.events.append(d)
        worked.touches.append(d)
    return worked


def _touch_kind(rng: random.Random, stages: list[str], i: int) -> tuple[str, str]:
    r = rng.random()
    channel = "call" if r < 0.5 else "email" if r < 0.85 else "sms" if r < 0.92 else "social"
    if stages[0] == "NO_RESPONSE":
        return channel, pick(rng, ("no_answer", "voicemail", "no_answer", "bounced"))
    if stages[0] == "SAL" and i >= 2 and rng.random() < 0.4:
        return "meeting", pick(rng, ("connected", "scheduled"))
    if channel == "email":
        return channel, pick(rng, ("replied", "replied", "bounced", "other"))
    return channel, pick(rng, ("connected", "voicemail", "no_answer", "connected"))


def status_body(
    rng: random.Random,
    lead_id: str,
    rep: Rep,
    previous: str | None,
    status: str,
    ms: int,
    bad_fit_reason: str | None,
    dq: tuple[str, str] | None = None,
) -> tuple[bytes, bool]:
    """A CRM ``lead.status.updated`` webhook body (JSON text, see journey.activity_body), and
    whether a disqualification came with a reason and notes (True for other statuses)."""
    if previous is None:
        prev_text = pick(rng, (None, "New", "NEW"))
        updated_by = "map-sync"
    else:
        prev_text = pick(rng, STATUS_SPELLINGS[previous])
        updated_by = rep.rep_id
    new_text = pick(rng, STATUS_SPELLINGS[status])
    extra = ""
    explained = True
    if status == "DISQUALIFIED":
        if rng.random() < rep.dq_without_reason:
            # The sloppy-rep case the SLA measures: a disqualification nobody explained.
            reason, notes = None, None
            explained = False
        elif dq is not None:
            reason, notes = dq
        elif previous == "NO_RESPONSE":
            reason, notes = "unresponsive", f"No reply after {between(rng, 3, 7)} attempts."
        else:
            idx = int(rng.random() * len(C.DQ_REASONS))
            reason, notes = bad_fit_reason or C.DQ_REASONS[idx], C.DQ_NOTES[idx % len(C.DQ_NOTES)]
        extra = f'"disqualificationReason":{js(reason)},"salesNotes":{js(notes)},'
    elif status == "CLOSED_LOST":
        extra = f'"salesNotes":{js(pick(rng, C.LOST_NOTES))},'
    elif status == "CLOSED_WON":
        extra = f'"salesNotes":{js(pick(rng, C.WON_NOTES))},'
    return (
        f'{{"event":"lead.status.updated","payload":{{"leadId":"{lead_id}",'
        f'"previousStatus":{js(prev_text)},"newStatus":"{new_text}",{extra}'
        f'"updatedBy":"{updated_by}","timestamp":"{iso(ms)}"}}}}'
    ).encode(), explained
