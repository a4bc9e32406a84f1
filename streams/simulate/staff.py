"""The sales team: the reps of the routing configuration, each with hidden habits.

leadflow routes a sales-ready lead to a rep id of its ``[routing]`` configuration, so the
simulated team is exactly that roster. Each rep's habits (how soon they touch a lead, how
diligently they record status changes, how often they disqualify without a reason) come
from ``catalog.REP_PERSONAS`` by name ("rep-amy" → "amy"); a rep the catalog does not know
(e.g. the SDR desk) gets brisk default habits. Reps work their own configured hours in their
own time zone, so a lead routed to them at the end of a day waits for the next morning.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from streams.core.routing import Rep as RosterRep
from streams.core.routing import RoutingConfig
from streams.simulate import catalog as C
from streams.simulate.model import Rep

MINUTE = 60_000
# (median first touch minutes, diligence, disqualifications without reason) of a rep the
# personas do not name: a fast desk that answers within the hour and records carefully.
DEFAULT_HABITS = (20.0, 0.92, 0.04)
_PERSONAS = {name: (median, diligence, no_reason)
             for name, _, median, diligence, no_reason in C.REP_PERSONAS}


def make_reps(rng: random.Random, routing: RoutingConfig) -> list[Rep]:
    """One simulated rep per configured rep, in configuration order."""
    out = []
    for rep in routing.reps:
        median, diligence, no_reason = _PERSONAS.get(rep.id.removeprefix("rep-"), DEFAULT_HABITS)
        out.append(
            Rep(
                rep_id=rep.id,
                regions=tuple(sorted(rep.regions)),
                first_touch_median_min=round(median * rng.uniform(0.8, 1.25), 1),
                diligence=round(min(0.99, diligence * rng.uniform(0.95, 1.05)), 3),
                dq_without_reason=round(no_reason * rng.uniform(0.8, 1.2), 3),
            )
        )
    return out


def _away(rep: RosterRep, day: date) -> bool:
    return any(first <= day <= last for first, last in rep.out_of_office)


def next_working(rng: random.Random, rep: RosterRep, ms: int) -> int:
    """``ms`` if the rep is at work then (as ``routing.is_working`` sees it), else a little
    after their next shift starts: nobody starts exactly on the hour, the backlog is worked
    off over a while."""
    t = ms
    for _ in range(400):  # days; gives up (returns ms) only for a roster that never works
        local = datetime.fromtimestamp(t / 1000, rep.zone)
        minute = local.hour * 60 + local.minute
        if local.weekday() in rep.days and not _away(rep, local.date()) and minute < rep.end_min:
            if minute >= rep.start_min:
                return t if t == ms else t + int(rng.expovariate(1 / (45 * MINUTE)))
            start = local.replace(hour=rep.start_min // 60, minute=rep.start_min % 60,
                                  second=0, microsecond=0)
            return int(start.timestamp() * 1000) + int(rng.expovariate(1 / (45 * MINUTE)))
        midnight = datetime.combine(local.date() + timedelta(days=1), time(0), rep.zone)
        t = int(midnight.timestamp() * 1000)
    return ms
