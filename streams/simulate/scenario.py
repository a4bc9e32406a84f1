"""``generate``: a whole scenario (deliveries in delivery order + hidden truth) from a seed."""

from __future__ import annotations

import gc
import random
from collections.abc import Mapping
from datetime import UTC, datetime

from streams.core.handoff import Policies
from streams.simulate.bad import allocate, inject
from streams.simulate.delays import PROFILES, Delays
from streams.simulate.funnel import DAY, SECOND, Funnel, make_campaigns, webhook_ids
from streams.simulate.handover import judge
from streams.simulate.journey import build
from streams.simulate.model import DEFAULT_BAD_MIX, OK, Delivery, Scenario
from streams.simulate.staff import make_reps
from streams.simulate.verdicts import max_lateness


def generate(
    seed: int,
    leads: int = 1000,
    days: float = 7.0,
    now: datetime | None = None,
    bad_share: float = 0.05,
    *,
    repeat_share: float = 0.02,
    wall_seconds: float = 60.0,
    bad_mix: Mapping[str, float] | None = None,
    policies: Policies | None = None,
    delays: str = "realistic",
    settle_s: float | None = None,
    attributes: bool = False,
) -> Scenario:
    """Simulate ``days`` of funnel ending at ``now`` and return every delivery, in order.

    ``policies`` are the handoff rules leadflow runs with (default: the configuration,
    ``streams.policies.load(Settings.load())``): the simulated reps are its routing reps,
    sales only works the leads those rules hand over, and the truth holds the SLA verdicts
    they must produce.

    ``bad_share`` is the share of all deliveries that are bad input (``bad_mix`` weighs the
    kinds, see ``model.DEFAULT_BAD_MIX``). ``repeat_share`` of the people fill a form again
    under a new lead id. ``wall_seconds`` is how long a real-time replay takes (``0``: as
    fast as possible); ``Scenario.compression`` is the resulting speed-up.

    ``settle_s`` is the engine's ``sla_settle_s`` (default: the configured one), which the
    truth allows for in a real-time replay. ``delays`` is how late each source delivers
    (``delays.PROFILES``: "none", "realistic", "heavy"); deliveries are in delivery order,
    so late ones overtake others, and some land after ``now``. The truth says which final
    verdicts late evidence corrects. ``attributes``: leads carry custom attributes with real
    signal (``simulate.attributes``); off, nothing changes.
    """
    if leads < 1 or days <= 0 or not 0 <= bad_share < 1 or wall_seconds < 0:
        raise ValueError("need leads >= 1, days > 0, 0 <= bad_share < 1, wall_seconds >= 0")
    if delays not in PROFILES:
        raise ValueError(f"unknown delay profile {delays!r}: one of {sorted(PROFILES)}")
    if now is not None and now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if policies is None:
        from streams import policies as configured
        from streams.settings import Settings

        policies = configured.load(Settings.load())
    # A scenario is ~a million small acyclic objects that all live until the end; the cyclic
    # collector would rescan them again and again (it doubled generation time at 20k leads).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(
            seed, leads, days, now, bad_share, repeat_share, wall_seconds, bad_mix, policies,
            delays, settle_s, attributes,
        )
    finally:
        if gc_was_enabled:
            gc.enable()


def _generate(
    seed: int,
    leads: int,
    days: float,
    now: datetime,
    bad_share: float,
    repeat_share: float,
    wall_seconds: float,
    bad_mix: Mapping[str, float] | None,
    policies: Policies,
    delays: str,
    settle_s: float | None,
    attributes: bool = False,
) -> Scenario:
    now_ms = int(now.timestamp() * 1000)
    start_ms = now_ms - int(days * DAY)
    rng = random.Random(seed)
    campaigns = make_campaigns(rng, now)
    f = Funnel(rng, start_ms, now_ms, campaigns, make_reps(rng, policies.routing), policies,
               Delays(delays, seed), attributes=attributes)
    handled = build(f, leads, repeat_share)
    events = f.events
    # Event-time order, whatever the delays: ids and bad input are drawn as without them.
    events.sort(key=_occurred)
    for d, wid in zip(events, webhook_ids(rng, len(events)), strict=True):
        d.webhook_id = wid
    n_bad = round(len(events) * bad_share / (1.0 - bad_share))
    bad = inject(f, allocate(n_bad, bad_mix or DEFAULT_BAD_MIX))
    for d in events:
        if d.bad_kind == "out_of_order" and d.lead_id in f.truth:
            # Held up behind a later change: the engine may judge before it sees both.
            f.truth[d.lead_id].exact = False
    deliveries = events + bad
    deliveries.sort(key=lambda d: d.due_s)  # stable: same-millisecond events keep causal order

    compression = days * DAY / SECOND / wall_seconds if wall_seconds else 0.0
    scale = 1.0 / SECOND / compression if compression else 0.0
    truth = f.truth
    for d in deliveries:
        d.delivered_ms = int(d.due_s)
        d.due_s = (d.due_s - start_ms) * scale  # epoch ms -> wall seconds after the start
        if d.expected == OK and d.lead_id in truth:
            truth[d.lead_id].good_events += 1
    # The engine waits sla_settle_s of wall time beyond the lateness (events in flight); in a
    # real-time replay that is compression times as much event time. A backlog waits nothing.
    if settle_s is None:
        from streams.settings import Settings

        settle_s = Settings.load().sla_settle_s
    judge(policies, handled, now_ms, int(settle_s * 1000 * compression))
    return Scenario(
        seed=seed,
        now=now,
        start=datetime.fromtimestamp(start_ms / 1000, UTC),
        days=days,
        compression=compression,
        deliveries=deliveries,
        campaigns=f.campaigns,
        reps=f.reps,
        truth=f.truth,
        sla_version=policies.contract.version,
        policies=policies,
        delays=delays,
        max_lateness_ms=max_lateness(policies.contract),
    )


def _occurred(d: Delivery) -> int:
    return d.occurred_ms or 0
