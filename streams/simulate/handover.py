"""What leadflow decides about each simulated lead, found with leadflow's own core.

Sales only ever works leads leadflow hands over, so the simulator must know, before it
writes any CRM event, which leads become MQLs, when, in which tier, and to whom they are
routed. It asks the same pure core the engine uses: the lead's good marketing events in
event-time order through ``payloads`` → ``contract.validate`` → ``features.update`` →
``model.score`` → threshold and the contract's ``missing_context`` and ``held_back`` (exactly
the rule of ``handoff``: the context is judged when the score first crosses, and the lead
becomes an MQL at the first event that leaves it at/above the threshold with nothing holding
it back: a lawful basis, when the contract requires one), then
``routing.route`` in MQL-time order with the reps' capacity released when their leads close.

Only the verdicts of the SLA are computed independently (``verdicts``): they are what the
engine is graded on.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from streams.core import contract, payloads
from streams.core import features as feats
from streams.core.handoff import Policies, routing_id
from streams.core.routing import Decision, LeadFacts, RoutingConfig, new_state, release, route
from streams.simulate import verdicts
from streams.simulate.funnel import Funnel, behaviour_logit, sigmoid
from streams.simulate.model import Delivery, LeadTruth
from streams.simulate.sales import Worked, follow_up, plan_stages

_SKEW = timedelta(days=1)
_SAMPLE_LEAD = "00000000-0000-4000-8000-000000000000"
_SAMPLE_ID = "00000000-0000-4000-8000-000000000001"
_SAMPLE_EMAIL = "someone@example.com"
_SAMPLE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def lead_record(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A good LeadCaptured body (as sent) → the validated record the engine works on.

    Two costs of the real intake that decide nothing here are skipped: the event id (a hash
    of the whole body when it names none) and the email's syntax check (the engine memoises
    it per address; here every address is new, and it took a third of the generation time).
    Stand-ins take their place; the real address is kept. The unit tests put every delivered
    body through the full ``payloads`` + ``validate`` path and compare the features.
    """
    record = payloads.lead_from_json({**body, "eventId": _SAMPLE_ID})
    email = record["email"]
    record["email"] = _SAMPLE_EMAIL
    out = contract.validate("lead", record, observed_at=now, max_skew=_SKEW)
    out["email"] = email
    return out


@lru_cache(maxsize=64)
def activity_type(kind: str) -> str:
    """The validated activity type of a body whose ``type`` is ``kind``. An activity adds only
    its type and time to the features, so one mapping per type serves every body."""
    body = {"leadId": _SAMPLE_LEAD, "type": kind, "timestamp": "2026-01-01T00:00:00.000Z"}
    record = payloads.activity_from_json(body)
    out = contract.validate("activity", record, observed_at=_SAMPLE_TIME, max_skew=_SKEW)
    return out["activity_type"]


@dataclass(slots=True)
class Handover:
    """When the score first crossed (and whether the context was complete then), when the
    lead became an MQL, its tier and its features at that moment (what routing sees)."""

    crossed_at: int | None = None
    missing: list[str] | None = None
    mql_at: int | None = None
    tier: str | None = None
    features: dict[str, Any] | None = None


def replay(p: Policies, lead: dict[str, Any], activities: list[tuple[int, str]]) -> Handover:
    """Score a lead's good marketing events in event-time order (the capture first: activities
    always follow it) until it becomes an MQL. ``activities``: (ms, kind), sorted."""
    out = Handover()
    threshold = p.scoring.threshold
    features = None
    n = len(activities)
    for i in range(-1, n):
        if i < 0:
            at = contract.epoch_ms(lead["occurred_at"])
            features = feats.update(features, "lead", lead)
        else:
            at, kind = activities[i]
            features = feats.update(
                features, "activity", {"activity_type": activity_type(kind), "occurred_at": at}
            )
        if p.model.score(features).score < threshold:
            continue
        if out.crossed_at is None:
            out.crossed_at, out.missing = at, p.contract.missing_context(features)
        if not p.contract.held_back(features):
            out.mql_at, out.tier, out.features = at, feats.tier(features, p.scoring), features
            break
    return out


class Router:
    """Routing in MQL-time order, as the engine's one routing agent does it: a rep's capacity
    is freed when leadflow reads a terminal status of one of their leads: at its delivery,
    which a late CRM webhook puts after MQLs dated later (without delays, its event time)."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        self.state = new_state()
        self._releases: list[tuple[int, int, str]] = []
        self._seq = 0

    def route(self, lead_id: str, h: Handover, at: int, read_at: int) -> Decision:
        """Route at event time ``at`` (the MQL), with the capacity freed by what leadflow has
        read when it reads the MQL's event (``read_at``, its delivery)."""
        releases = self._releases
        while releases and releases[0][0] <= read_at:
            release(self.state, heapq.heappop(releases)[2])
        facts = LeadFacts.from_features(lead_id, h.features or {}, h.tier or feats.STANDARD)
        self.state, decision = route(self.config, self.state, facts, at)
        return decision

    def release_at(self, read_at: int, rep_id: str) -> None:
        """Free ``rep_id``'s seat once leadflow reads (at ``read_at``) a terminal status."""
        self._seq += 1
        heapq.heappush(self._releases, (read_at, self._seq, rep_id))


@dataclass(frozen=True, slots=True)
class Propensity:
    """What decides whether a lead converts: its fit (firmographics and campaign, as hidden
    log-odds), everything the person does (ms, kind, sorted; also what falls after ``now``),
    whether the form itself asked for a demo, and the uniform draw that settles it."""

    fit: float
    behaviour: list[tuple[int, str]]
    demo_form: bool
    draw: float

    def probability(self, until: int | None) -> float:
        """The true conversion probability given the behaviour up to ``until`` (None: all):
        sales gets the lead at its MQL moment, and what it does afterwards is sales' work,
        not a property of the lead. So the truth is knowable at handover, and the oracle AUC
        is one a model that sees the handover features can approach."""
        counts = Counter(k for ms, k in self.behaviour if until is None or ms <= until)
        if self.demo_form:
            counts["demo_request"] = max(1, counts["demo_request"])
        return min(0.98, max(0.002, sigmoid(self.fit + behaviour_logit(counts))))


@dataclass(slots=True)
class Prospect:
    """A lead as marketing produced it, waiting for leadflow's decision."""

    truth: LeadTruth
    lead: dict[str, Any]  # the validated LeadCaptured record
    activities: list[tuple[int, str]]  # delivered (ms, kind), in event-time order
    stages: list[str]  # the statuses after MQL sales will eventually record
    bad_fit_reason: str | None
    dq: tuple[str, str] | None = None  # reason and notes of a disqualification, if fixed
    propensity: Propensity | None = None  # None: a repeat, whose truth is the original's
    sent: list[Delivery] = field(default_factory=list)  # its capture and activities

    def read_at(self, at: int) -> int:
        """When leadflow has read every capture and activity of this lead dated up to ``at``
        (epoch ms): when its MQL at ``at`` became decidable (``routing_order.stamp``)."""
        return max((int(d.due_s) for d in self.sent
                    if d.occurred_ms is not None and d.occurred_ms <= at), default=at)


@dataclass(slots=True)
class Handled:
    """One lead as decided: the clauses judged already, and what its sales clauses are
    judged from once every delivery time is settled (``judge``)."""

    truth: LeadTruth
    clauses: dict[str, verdicts.Judged]
    mql_at: int | None = None
    region: str | None = None
    worked: Worked | None = None


def settle(f: Funnel, prospects: list[Prospect], mql_at: dict[str, int]) -> None:
    """Fix each lead's true probability, conversion and the path sales will take; a repeat
    takes its original's truth."""
    for prospect in prospects:
        truth, prop = prospect.truth, prospect.propensity
        if prop is None:
            continue
        probability = prop.probability(mql_at.get(truth.lead_id))
        truth.probability = round(probability, 6)
        truth.converted = prop.draw < probability
        prospect.stages = plan_stages(f.rng, probability, truth.converted)
        last = prospect.stages[-1]
        truth.outcome = last if last in ("CLOSED_WON", "CLOSED_LOST") else "DISQUALIFIED"
    for prospect in prospects:
        truth = prospect.truth
        if prospect.propensity is None and truth.alias_of is not None:
            original = f.truth[truth.alias_of]
            truth.probability, truth.converted = original.probability, original.converted
            truth.outcome = original.outcome


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def hand_over(f: Funnel, prospects: list[Prospect]) -> list[Handled]:
    """Decide every prospect as leadflow will, let sales work the routed ones (appending their
    CRM events to ``f.events``), and record the handover in the truth; return what the SLA
    verdicts are judged from (``judge``, once bad input has moved what it moves)."""
    p: Policies = f.policies
    judged: list[dict[str, verdicts.Judged]] = []
    ready: list[tuple[int, int, Handover]] = []
    for i, prospect in enumerate(prospects):
        h = replay(p, prospect.lead, prospect.activities)
        truth = prospect.truth
        clauses: dict[str, verdicts.Judged] = {}
        if h.crossed_at is not None:
            truth.crossed_at = _dt(h.crossed_at)
            truth.missing = list(h.missing or ())
            truth.context_complete = not h.missing
            clauses[verdicts.CONTEXT_COMPLETE] = verdicts.context(h.crossed_at, truth.missing)
        judged.append(clauses)
        if h.mql_at is not None:
            ready.append((h.mql_at, i, h))
    settle(f, prospects, {prospects[i].truth.lead_id: at for at, i, _ in ready})
    ready.sort(key=lambda item: _route_order(prospects[item[1]], item[0]))

    router = Router(p.routing)
    reps = {r.rep_id: r for r in f.reps}
    roster = {r.id: r for r in p.routing.reps}
    handled = [Handled(prospect.truth, clauses) for prospect, clauses in zip(
        prospects, judged, strict=True)]
    for at, i, h in ready:
        prospect = prospects[i]
        truth = prospect.truth
        decision = router.route(truth.lead_id, h, at, prospect.read_at(at))
        truth.mql_at, truth.tier = _dt(at), h.tier
        truth.owner, truth.queue, truth.rule = decision.owner, decision.queue, decision.rule
        worked = Worked()
        if decision.owner is not None:
            worked = follow_up(
                f, truth.lead_id, reps[decision.owner], roster[decision.owner], at,
                hand_raiser=h.tier == feats.HAND_RAISER, stages=prospect.stages,
                bad_fit_reason=prospect.bad_fit_reason, dq=prospect.dq,
            )
            if worked.released_at is not None:
                router.release_at(worked.released_at, decision.owner)
            truth.statuses = worked.statuses
            truth.final_status = worked.statuses[-1] if worked.statuses else None
        handled[i].mql_at, handled[i].worked = at, worked
        handled[i].region = (h.features or {}).get("region")
    return handled


def judge(p: Policies, handled: list[Handled], now_ms: int, settle_ms: int = 0) -> None:
    """Record each lead's SLA verdicts in its truth, from the deliveries' final
    ``delivered_ms``: per clause in ``sla``, as of ``now_ms`` in ``verdicts`` and final in
    ``verdicts_final``."""
    for lead in handled:
        truth, clauses, worked = lead.truth, lead.clauses, lead.worked
        if lead.mql_at is not None and worked is not None:
            clauses.update(verdicts.judge(
                p.contract, mql_at=lead.mql_at, tier=truth.tier, region=lead.region,
                owner=truth.owner, touches=[_evidence(d) for d in worked.touches],
                changes=[_evidence(d, to, ok) for d, to, ok in worked.changes],
                settle_ms=settle_ms,
            ))
        truth.sla = clauses
        truth.verdicts = verdicts.as_of(clauses, now_ms)
        truth.verdicts_final = verdicts.as_of(clauses, None)


def _evidence(d: Delivery, to: str = "", explained: bool = True) -> verdicts.Evidence:
    at = d.occurred_ms if d.occurred_ms is not None else int(d.due_s)
    delivered = d.delivered_ms if d.delivered_ms is not None else int(d.due_s)
    return verdicts.Evidence(at, delivered, d.channel, to, explained)


def _route_order(prospect: Prospect, mql_at: int) -> tuple[int, int, str]:
    """The router's order (``routing_order.order_key``): when the MQL became decidable, its
    time, the ROUTE request's event id; two MQLs in the same millisecond go the same way."""
    return prospect.read_at(mql_at), mql_at, routing_id(prospect.truth.lead_id, "ROUTE", mql_at)
