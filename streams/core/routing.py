"""Routing: which rep gets a sales-ready lead, or which queue when nobody can take it.

Rules are tried in order and the first whose conditions match the lead wins (later rules
are never tried, even when the winner's pool has no free rep: a rule is a promise about who
handles such leads, not a preference). The implicit last rule ``default`` matches everything.
The pool of the rule is then narrowed to reps whose own territories, segments and skills fit
the lead; the candidates are the pool reps working at that moment (their time zone, days,
hours, out-of-office dates) with free capacity, minus ``exclude`` (reassignment).

Among candidates, weighted round robin: the rep minimising ``(assigned + 1) / weight`` wins
(ties by rep id). Because ``assigned`` counts every assignment ever made, a rep who was off
or full catches up when back, so over time each rep's share is proportional to the weight
whoever was skipped in between (a divisor method: a rep's count stays within
``-1 .. +n_reps * weight / total_weight`` of its exact share when nobody is skipped). A rep
added later starts at 0 and so takes most new leads until level — that is the catch-up, by
design.

State (JSON-serialisable, stored in a Faust table as is)::

    {"open": {rep_id: int}, "assigned": {rep_id: int}}

``open`` is the current load (``route`` adds one, ``release`` removes one); ``assigned`` only
grows. Counters of reps no longer configured are kept and ignored.

Hot path: ``route`` runs once per sales-ready lead. Everything that can be parsed is parsed
once in ``RoutingConfig.from_config`` (zone objects, minute ranges, weekday sets, pools per
rule); a call costs one UTC→local conversion per distinct time zone in the pool and a few
set lookups per rep. ``route`` MUTATES the state in place and returns it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.core.contract import epoch_ms

State = dict[str, Any]

DEFAULT_RULE = "default"
DEFAULT_QUEUE = "unassigned"
DEFAULT_WEIGHT = 1.0
DEFAULT_CAPACITY = 50
DEFAULT_TIMEZONE = "UTC"
DEFAULT_HOURS = "09:00-17:00"
DEFAULT_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri")

# Why a pool rep was not a candidate, in the order they are checked (the first one wins).
EXCLUDED = "excluded"
OUT_OF_OFFICE = "out_of_office"
OFF_HOURS = "off_hours"
AT_CAPACITY = "at_capacity"


@dataclass(frozen=True)
class LeadFacts:
    """What routing needs to know about a lead (from the feature state and the score)."""

    lead_id: str
    region: str | None
    segment: str | None
    industry: str | None
    tech: tuple[str, ...]
    tier: str
    campaign_id: str | None

    def __post_init__(self) -> None:
        # Feature state keeps tech as a JSON list; a tuple keeps the dataclass hashable.
        if not isinstance(self.tech, tuple):
            object.__setattr__(self, "tech", tuple(self.tech))

    @classmethod
    def from_features(cls, lead_id: str, features: Mapping[str, Any], tier: str) -> LeadFacts:
        """From a ``features`` state (``size_band`` is the segment)."""
        return cls(
            lead_id=lead_id,
            region=features.get("region"),
            segment=features.get("size_band"),
            industry=features.get("industry"),
            tech=tuple(features.get("tech") or ()),
            tier=tier,
            campaign_id=features.get("campaign_id"),
        )


@dataclass(frozen=True)
class Rep:
    """A sales rep. ``days`` are weekday numbers (0 = Monday); working time is
    ``start_min <= local minute of day < end_min``; ``out_of_office`` holds inclusive local
    date ranges. Empty ``regions``/``segments``/``skills`` mean any."""

    id: str
    team: str | None = None
    weight: float = DEFAULT_WEIGHT
    capacity: int = DEFAULT_CAPACITY
    timezone: str = DEFAULT_TIMEZONE
    start_min: int = 9 * 60
    end_min: int = 17 * 60
    days: frozenset[int] = frozenset(range(5))
    out_of_office: tuple[tuple[date, date], ...] = ()
    regions: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    skills: frozenset[str] = frozenset()
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "zone", zone_of(self.timezone, f"rep {self.id!r} timezone"))

    def fits(self, lead: LeadFacts) -> bool:
        """The rep's territory, segment and skills admit the lead (a lead matches skills
        when its industry or any of its tech is listed)."""
        if self.regions and lead.region not in self.regions:
            return False
        if self.segments and lead.segment not in self.segments:
            return False
        return not (
            self.skills and lead.industry not in self.skills and self.skills.isdisjoint(lead.tech)
        )


@dataclass(frozen=True)
class Rule:
    """A routing rule. Empty condition sets mean any; all non-empty ones must match.
    Pool: ``reps`` if given, else the reps of ``team`` if given, else all reps.
    ``queue`` None means the global fallback queue."""

    name: str
    tiers: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    industries: frozenset[str] = frozenset()
    campaigns: frozenset[str] = frozenset()
    team: str | None = None
    reps: tuple[str, ...] = ()
    queue: str | None = None

    def matches(self, lead: LeadFacts) -> bool:
        return (
            (not self.tiers or lead.tier in self.tiers)
            and (not self.regions or lead.region in self.regions)
            and (not self.segments or lead.segment in self.segments)
            and (not self.industries or lead.industry in self.industries)
            and (not self.campaigns or lead.campaign_id in self.campaigns)
        )


_DEFAULT = Rule(DEFAULT_RULE)


@dataclass(frozen=True)
class RoutingConfig:
    """Reps and rules (the implicit ``default`` rule is not in ``rules``; it always comes
    last). Cross-references are checked and the pools resolved on construction."""

    fallback_queue: str = DEFAULT_QUEUE
    reps: tuple[Rep, ...] = ()
    rules: tuple[Rule, ...] = ()
    # Pools sorted by rep id (so candidates come out sorted and ties go to the lower id);
    # the last entry is the default rule's pool (all reps).
    _pools: tuple[tuple[Rep, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Rep] = {}
        for rep in self.reps:
            if rep.id in by_id:
                raise ValueError(f"routing.reps: id {rep.id!r} appears twice")
            by_id[rep.id] = rep
        everyone = tuple(sorted(self.reps, key=_rep_id))
        teams = {rep.team for rep in self.reps}
        names: set[str] = set()
        pools: list[tuple[Rep, ...]] = []
        for rule in self.rules:
            where = f"routing.rules[{rule.name!r}]"
            if rule.name == DEFAULT_RULE:
                raise ValueError(f"{where}.name: {DEFAULT_RULE!r} is reserved for the last rule")
            if rule.name in names:
                raise ValueError(f"{where}.name: rule names must be unique")
            names.add(rule.name)
            if rule.reps and rule.team is not None:
                raise ValueError(f"{where}: give either team or reps, not both")
            unknown = [r for r in rule.reps if r not in by_id]
            if unknown:
                raise ValueError(f"{where}.reps: unknown rep id(s) {', '.join(unknown)}")
            if rule.team is not None and rule.team not in teams:
                raise ValueError(f"{where}.team: no rep has team {rule.team!r}")
            if rule.reps:
                pools.append(tuple(by_id[r] for r in sorted(set(rule.reps))))
            elif rule.team is not None:
                pools.append(tuple(rep for rep in everyone if rep.team == rule.team))
            else:
                pools.append(everyone)
        pools.append(everyone)
        object.__setattr__(self, "_pools", tuple(pools))

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> RoutingConfig:
        """From the ``[routing]`` TOML section (as parsed by tomllib); defaults for missing
        keys, ValueError naming the key for bad values."""
        from streams.core import routing_config  # it builds Reps and Rules: imports us

        queue, reps, rules = routing_config.parse({} if section is None else section)
        return cls(fallback_queue=queue, reps=reps, rules=rules)

    def rule_for(self, lead: LeadFacts) -> tuple[Rule, tuple[Rep, ...]]:
        """The first matching rule and its pool (before the per-rep fit)."""
        for rule, pool in zip(self.rules, self._pools, strict=False):
            if rule.matches(lead):
                return rule, pool
        return _DEFAULT, self._pools[-1]


@dataclass(frozen=True)
class Decision:
    """``owner`` None means nobody could take the lead now: it goes to ``queue``. ``queue``
    is always the matched rule's queue (or the fallback), so it is also where the lead
    lands if the owner later drops it. ``candidates``: eligible reps, sorted; ``skipped``:
    pool rep → why it was not eligible (reps that do not fit the lead are not listed)."""

    owner: str | None
    queue: str
    rule: str
    candidates: tuple[str, ...]
    skipped: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "queue": self.queue,
            "rule": self.rule,
            "candidates": list(self.candidates),
            "skipped": dict(self.skipped),
        }


def new_state() -> State:
    return {"open": {}, "assigned": {}}


def is_working(rep: Rep, at_ms: int | datetime) -> bool:
    """The rep is at work at that instant: a working day and hour in the rep's time zone
    (DST-correct) and not an out-of-office date."""
    return _unavailable(rep, _local(rep.zone, _ms(at_ms))) is None


def route(
    config: RoutingConfig,
    state: State | None,
    lead: LeadFacts,
    at_ms: int | datetime,
    *,
    exclude: frozenset[str] = frozenset(),
) -> tuple[State, Decision]:
    """Pick the owner of ``lead`` at event time ``at_ms``; the owner's ``open`` and
    ``assigned`` go up by one. Mutates and returns ``state`` (a new one if None)."""
    if state is None:
        state = new_state()
    opened: dict[str, int] = state.setdefault("open", {})
    assigned: dict[str, int] = state.setdefault("assigned", {})
    rule, pool = config.rule_for(lead)
    moment = _ms(at_ms)
    local: dict[ZoneInfo, datetime] = {}  # one conversion per zone, not per rep
    candidates: list[str] = []
    skipped: dict[str, str] = {}
    best: Rep | None = None
    best_key = math.inf
    for rep in pool:
        if not rep.fits(lead):
            continue
        if rep.id in exclude:
            skipped[rep.id] = EXCLUDED
            continue
        now = local.get(rep.zone)
        if now is None:
            now = local[rep.zone] = _local(rep.zone, moment)
        reason = _unavailable(rep, now)
        if reason is None and opened.get(rep.id, 0) >= rep.capacity:
            reason = AT_CAPACITY
        if reason is not None:
            skipped[rep.id] = reason
            continue
        candidates.append(rep.id)
        key = (assigned.get(rep.id, 0) + 1) / rep.weight
        if key < best_key:  # strict: the pool is sorted, so a tie keeps the lower id
            best, best_key = rep, key
    owner = None
    if best is not None:
        owner = best.id
        opened[owner] = opened.get(owner, 0) + 1
        assigned[owner] = assigned.get(owner, 0) + 1
    decision = Decision(
        owner=owner,
        queue=rule.queue or config.fallback_queue,
        rule=rule.name,
        candidates=tuple(candidates),
        skipped=skipped,
    )
    return state, decision


def release(state: State | None, rep_id: str) -> State:
    """One open lead of ``rep_id`` closed or handed on (never below 0). Mutates ``state``."""
    state = new_state() if state is None else state
    opened: dict[str, int] = state.setdefault("open", {})
    if opened.get(rep_id, 0) > 0:
        opened[rep_id] -= 1
    return state


# --- time ------------------------------------------------------------------------------------


def _ms(at: int | datetime) -> int:
    if isinstance(at, datetime):
        if at.tzinfo is None:
            raise ValueError("routing needs a timezone-aware datetime")
        return epoch_ms(at)
    return int(at)


def _local(zone: ZoneInfo, at_ms: int) -> datetime:
    # Whole seconds are enough for minute-granular hours; // floors for pre-1970 too.
    return datetime.fromtimestamp(at_ms // 1000, zone)


def _unavailable(rep: Rep, now: datetime) -> str | None:
    if rep.out_of_office:
        today = now.date()
        for first, last in rep.out_of_office:
            if first <= today <= last:
                return OUT_OF_OFFICE
    if now.weekday() not in rep.days:
        return OFF_HOURS
    minute = now.hour * 60 + now.minute
    if not rep.start_min <= minute < rep.end_min:
        return OFF_HOURS
    return None


def _rep_id(rep: Rep) -> str:
    return rep.id


def zone_of(name: str, key: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"{key}: unknown time zone {name!r} (expected an IANA name)") from None
