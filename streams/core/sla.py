"""The marketing↔sales SLA: a versioned contract in configuration, judged from events.

Sales promises a first touch within a window per tier, a status update at least every so
often until the lead is closed, and a reason with notes for every disqualification.
Marketing promises a monthly MQL volume, complete context on each MQL and a ceiling on the
share of its MQLs that sales disqualifies. Each promise is a *clause*; judging one yields a
``Verdict`` (MET or BREACHED) stamped with the contract version in force.

Per-lead clocks. State (JSON, mutated in place and returned, like the trace)::

    {"tier", "owner", "campaign_id", "region", "routed_at": ms,
     "clocks": {"FIRST_TOUCH": {"deadline": ms, "late": ms | None},
                "STATUS_UPDATE": {"deadline": ms, "late": [[ms, status], ...]}},
     "done": {clause: "MET" | "BREACHED"}}          (+ "lead_id" when route_clocks got one)

Every clause yields exactly one verdict per lead, ever: ``done`` guards it, and a clock
leaves ``clocks`` when judged. Events dated before ``routed_at`` are ignored, as are events
that arrive before routing — the clock had not started — so arrival order cannot decide it.

Out-of-order events. Callers may feed touches and status changes out of event-time order,
as long as no event arrives after an event (or a ``due`` call) more than ``grace`` later
than itself. The rule that makes verdicts independent of arrival order under that bound:

* an event at or before the deadline can be credited at once — more in-time events only
  ever help (status updates move the deadline to ``max(deadline, at + every)``, so one
  arriving late cannot pull the deadline back);
* an event after the deadline is only *noted* (``late``) while an earlier, in-time event
  might still arrive; the clock is judged BREACHED once something dated more than ``grace``
  after the deadline is seen — a later event of the same clock, or ``due(now)`` — so no
  in-time event can still come. A noted status update that an in-time update brings within
  the (moved) deadline is credited instead.

The MET/BREACHED outcome and a breach's deadline are then exact. ``met_at`` names the event
that settled the clock: it can differ by at most ``grace`` from a replay in event-time order
(two events within ``grace`` of each other arriving in reverse order), and is None when the
timer judged the clock before any late event arrived. A MET verdict's ``deadline`` is the one
in force when the closing event was credited.

The monthly marketing clauses (volume, context share, disqualification rate) are judged from
counts per calendar month: ``streams.core.monthly``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from streams.core import features as feats
from streams.core.contract import to_ms
from streams.core.durations import (
    Calendar,
    add_business_time,
    business_time_between,
    format_duration,
    parse_duration,
)

State = dict[str, Any]

FIRST_TOUCH = "FIRST_TOUCH"
OWNER_ASSIGNED = "OWNER_ASSIGNED"
STATUS_UPDATE = "STATUS_UPDATE"
DISQUALIFICATION_REASON = "DISQUALIFICATION_REASON"
MQL_VOLUME = "MQL_VOLUME"
DISQUALIFICATION_RATE = "DISQUALIFICATION_RATE"
CONTEXT_COMPLETE = "CONTEXT_COMPLETE"
CLAUSES = (FIRST_TOUCH, OWNER_ASSIGNED, STATUS_UPDATE, DISQUALIFICATION_REASON,
           MQL_VOLUME, DISQUALIFICATION_RATE, CONTEXT_COMPLETE)
SALES, MARKETING = "SALES", "MARKETING"
MET, BREACHED = "MET", "BREACHED"
TERMINAL = frozenset({"DISQUALIFIED", "CLOSED_WON", "CLOSED_LOST"})

DEFAULT_VERSION = "2026-11"
_HOUR = 3600 * 1000
_DAY = 24 * _HOUR
# Ordinary delivery delays: CRM webhooks mostly land within seconds and their first retries
# within minutes; an hour covers that tail. Longer outages (HubSpot and Salesforce retry for
# 24 h, Close for 72 h) end in an explicit correction rather than holding every verdict a day.
DEFAULT_LATENESS_MS = {"default": _HOUR, "api": _HOUR, "crm-webhook": _HOUR, "import": 0}


@dataclass(frozen=True)
class Verdict:
    clause: str
    party: str
    verdict: str
    deadline: int | None
    met_at: int | None
    evaluated_at: int
    owner_id: str | None = None
    tier: str | None = None
    campaign_id: str | None = None
    detail: str = ""
    scope: str | None = None
    version: str = ""
    lead_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- configuration ---------------------------------------------------------------------------

# (table, key, Contract field, kind). Kinds: duration, period (a duration > 0), flag,
# count (int >= 0), share (a number in [0, 1]).
_SCALARS = (
    ("", "grace", "grace_ms", "duration"),
    ("sales", "business_hours", "business_hours", "flag"),
    ("sales", "status_update_every", "status_update_every_ms", "period"),
    ("sales", "require_disqualification_reason", "require_disqualification_reason", "flag"),
    ("sales", "reassign_on_first_touch_breach", "reassign_on_first_touch_breach", "flag"),
    ("marketing", "min_mqls_per_month", "min_mqls_per_month", "count"),
    ("marketing", "max_disqualification_rate", "max_disqualification_rate", "share"),
    ("marketing", "min_context_complete", "min_context_complete", "share"),
    ("marketing", "settle", "settle_ms", "duration"),
    ("marketing", "consent_required", "consent_required", "flag"),
)
_KNOWN = {
    "": {"version", "grace", "lateness", "sales", "marketing", "calendar"},
    "sales": {key for table, key, _, _ in _SCALARS if table == "sales"} | {"first_touch"},
    "marketing": {key for table, key, _, _ in _SCALARS if table == "marketing"}
    | {"context_fields"},
}


def _context_fields(value: Any) -> tuple[str, ...]:
    known = feats.CONTEXT_CHECKS
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"sla.marketing.context_fields must be a list of names, got {value!r}")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValueError(f"sla.marketing.context_fields: unknown field(s) {unknown}; "
                         f"known: {', '.join(known)}")
    return tuple(dict.fromkeys(value))


def _value(value: Any, kind: str, name: str) -> Any:
    if kind in ("duration", "period"):
        try:
            ms = parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if kind == "period" and ms <= 0:
            raise ValueError(f"{name} must be longer than zero, got {value!r}")
        return ms
    if kind == "flag":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int if kind == "count" else int | float):
        expected = "a whole number" if kind == "count" else "a number between 0 and 1"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if value < 0 or (kind == "share" and value > 1):
        raise ValueError(f"{name} must be {'in [0, 1]' if kind == 'share' else '>= 0'}: {value!r}")
    return float(value) if kind == "share" else value


def _calendars(section: Any) -> dict[str, Calendar]:
    if not isinstance(section, Mapping):
        raise ValueError(f"sla.calendar must be a table, got {section!r}")
    calendars: dict[str, Calendar] = {}
    # The default first: regions inherit whatever they leave out from it.
    for region in ["default", *(r for r in section if r != "default")]:
        try:
            spec = section.get(region, {})
            calendars[str(region)] = Calendar.from_config(spec, calendars.get("default"))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"sla.calendar.{region}: {exc}") from None
    return calendars


def _lateness(section: Any) -> dict[str, int]:
    """Defaults, overridden source by source."""
    if not isinstance(section, Mapping):
        raise ValueError(f"sla.lateness must be a table source = duration, got {section!r}")
    out = dict(DEFAULT_LATENESS_MS)
    for source, text in section.items():
        out[str(source)] = _value(text, "duration", f"sla.lateness.{source}")
    return out


@dataclass(frozen=True)
class Contract:
    """The SLA in force. Durations are milliseconds; mappings are read-only by convention."""

    version: str = DEFAULT_VERSION
    grace_ms: int = 60_000
    first_touch_ms: Mapping[str, int] = field(
        default_factory=lambda: {"HAND_RAISER": 15 * 60_000, "STANDARD": 24 * _HOUR},
        hash=False,
    )
    business_hours: bool = False
    status_update_every_ms: int = 48 * _HOUR
    require_disqualification_reason: bool = True
    reassign_on_first_touch_breach: bool = False
    min_mqls_per_month: int = 250
    max_disqualification_rate: float = 0.30
    min_context_complete: float = 0.90
    settle_ms: int = 14 * _DAY
    # The MQL contract: the context fields marketing promises (features.CONTEXT_CHECKS).
    context_fields: tuple[str, ...] = feats.CONTEXT_FIELDS
    # A lead without a recorded lawful basis waits for one before it is handed to sales.
    consent_required: bool = True
    calendars: Mapping[str, Calendar] = field(
        default_factory=lambda: {"default": Calendar()}, hash=False
    )
    # Per source system: how late its events may arrive and still count before a breach is
    # final. "default" covers Kafka producers and any source not named.
    lateness_ms: Mapping[str, int] = field(
        default_factory=lambda: dict(DEFAULT_LATENESS_MS), hash=False
    )

    @property
    def max_lateness_ms(self) -> int:
        """How long after deadline + grace a breach becomes final: the longest lateness of
        any source that can meet a clause (history from ``import`` is never judged)."""
        return max((ms for src, ms in self.lateness_ms.items() if src != "import"), default=0)

    def lateness_for(self, source: str | None) -> int:
        return self.lateness_ms.get(source or "default", self.lateness_ms.get("default", 0))

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> Contract:
        """The contract from the ``[sla]`` TOML table; missing keys take the defaults,
        unknown keys and bad values raise ``ValueError`` naming the key."""
        if not isinstance(section, Mapping):
            raise ValueError(f"sla must be a table, got {section!r}")
        tables: dict[str, Mapping[str, Any]] = {"": section}
        for name in ("sales", "marketing"):
            tables[name] = section.get(name, {})
            if not isinstance(tables[name], Mapping):
                raise ValueError(f"sla.{name} must be a table, got {tables[name]!r}")
        for name, table in tables.items():
            unknown = sorted(set(table) - _KNOWN[name])
            if unknown:  # a typo must not silently leave a clause at its default
                where = ".".join(filter(None, ("sla", name)))
                raise ValueError(f"{where}: unknown key(s) {unknown}")
        values: dict[str, Any] = {
            attr: _value(tables[table][key], kind, ".".join(filter(None, ("sla", table, key))))
            for table, key, attr, kind in _SCALARS
            if key in tables[table]
        }
        version = section.get("version", DEFAULT_VERSION)
        if not isinstance(version, str) or not version.strip():
            raise ValueError(f"sla.version must be a non-empty string, got {version!r}")
        # Tiers given override the defaults one by one; the others keep their default window.
        windows = tables["sales"].get("first_touch", {})
        if not isinstance(windows, Mapping) or ("first_touch" in tables["sales"] and not windows):
            raise ValueError(f"sla.sales.first_touch must be a table tier = window: {windows!r}")
        first_touch = dict(cls().first_touch_ms)
        for tier, text in windows.items():
            first_touch[str(tier)] = _value(text, "period", f"sla.sales.first_touch.{tier}")
        if "context_fields" in tables["marketing"]:
            values["context_fields"] = _context_fields(tables["marketing"]["context_fields"])
        calendars = _calendars(section.get("calendar", {}))
        return cls(version=version.strip(), first_touch_ms=first_touch, calendars=calendars,
                   lateness_ms=_lateness(section.get("lateness", {})), **values)

    def missing_context(self, features: Mapping[str, Any] | None) -> list[str]:
        """The context the lead lacks against this MQL contract, and a missing lawful basis
        when one is required (recorded against marketing even when not a context field)."""
        missing = feats.missing_context(features, self.context_fields)  # type: ignore[arg-type]
        if self.held_back(features) and "consent" not in missing:
            missing.append("consent")
        return missing

    def held_back(self, features: Mapping[str, Any] | None) -> list[str]:
        """What keeps a lead that reached the threshold from sales (``features.held_back``)."""
        return feats.held_back(features, self.consent_required)  # type: ignore[arg-type]

    def calendar_for(self, region: str | None) -> Calendar:
        """The business calendar of a lead's region ("default" for any other region)."""
        return self.calendars.get(region or "default") or self.calendars["default"]

    def first_touch_window(self, tier: str | None) -> int:
        """The tier's first-touch window; an unlisted tier gets STANDARD's (else the longest,
        so an unknown tier is never held to a tighter promise than any listed one)."""
        windows = self.first_touch_ms
        if tier in windows:
            return windows[tier]
        return windows.get("STANDARD", max(windows.values()))

    def first_touch_deadline(self, routed_at: int, tier: str | None, region: str | None) -> int:
        window = self.first_touch_window(tier)
        if self.business_hours:
            return add_business_time(routed_at, window, self.calendar_for(region))
        return routed_at + window


# --- per-lead clocks ---------------------------------------------------------------------------


def _verdict(contract: Contract, state: State, clause: str, party: str, verdict: str, *,
             deadline: int | None, met_at: int | None, at: int, detail: str) -> Verdict:
    state["done"][clause] = verdict
    state["clocks"].pop(clause, None)
    return Verdict(clause, party, verdict, deadline, met_at, at, state.get("owner"),
                   state.get("tier"), state.get("campaign_id"), detail, None, contract.version,
                   state.get("lead_id"))


def route_clocks(contract: Contract, state: State | None, *, tier: str, owner: str | None,
                 campaign_id: str | None, region: str | None, routed_at: int | datetime,
                 lead_id: str | None = None) -> tuple[State, list[Verdict]]:
    """Start a routed lead's clocks and judge OWNER_ASSIGNED. Routing the same lead again
    (reassignment) only records the new owner: clocks keep running, verdicts stay single."""
    if state is not None and state.get("routed_at") is not None:
        state["owner"] = owner
        return state, []
    at = to_ms(routed_at)
    state = {"tier": tier, "owner": owner, "campaign_id": campaign_id, "region": region,
             "routed_at": at, "clocks": {}, "done": {}}
    if lead_id is not None:
        state["lead_id"] = lead_id
    state["clocks"][FIRST_TOUCH] = {
        "deadline": contract.first_touch_deadline(at, tier, region), "late": None}
    state["clocks"][STATUS_UPDATE] = {
        "deadline": at + contract.status_update_every_ms, "late": []}
    detail = f"assigned to {owner}" if owner else "no rep could take the lead"
    verdict = _verdict(contract, state, OWNER_ASSIGNED, SALES, MET if owner else BREACHED,
                       deadline=at, met_at=at if owner else None, at=at, detail=detail)
    return state, [verdict]


def _elapsed(contract: Contract, state: State, at: int) -> str:
    if contract.business_hours:
        cal = contract.calendar_for(state.get("region"))
        return format_duration(business_time_between(state["routed_at"], at, cal)) + " business"
    return format_duration(at - state["routed_at"])


def _touch_breach(contract: Contract, state: State, clock: dict) -> Verdict:
    deadline, late = clock["deadline"], clock["late"]
    window = format_duration(contract.first_touch_window(state.get("tier")))
    if late is None:
        detail = f"no touch within {window}"
    else:
        detail = f"first touch {format_duration(late - deadline)} late (window {window})"
    at = deadline if late is None else late
    return _verdict(contract, state, FIRST_TOUCH, SALES, BREACHED, deadline=deadline,
                    met_at=late, at=at, detail=detail)


def on_touch(contract: Contract, state: State | None, at_ms: int | datetime
             ) -> tuple[State | None, list[Verdict]]:
    """A sales touch: FIRST_TOUCH is MET by a touch at or before the deadline; a touch after it
    is noted and the clock judged BREACHED (met_at = that touch) once it is past doubt."""
    at = to_ms(at_ms)
    clock = (state or {}).get("clocks", {}).get(FIRST_TOUCH)
    if clock is None or at < state["routed_at"]:
        return state, []
    if at <= clock["deadline"]:
        window = format_duration(contract.first_touch_window(state.get("tier")))
        detail = f"first touch after {_elapsed(contract, state, at)} (window {window})"
        return state, [_verdict(contract, state, FIRST_TOUCH, SALES, MET,
                                deadline=clock["deadline"], met_at=at, at=at, detail=detail)]
    clock["late"] = at if clock["late"] is None else min(clock["late"], at)
    if at - contract.grace_ms > clock["deadline"]:
        return state, [_touch_breach(contract, state, clock)]
    return state, []


def _settle_status(contract: Contract, state: State, clock: dict, horizon: int | None
                   ) -> list[Verdict]:
    """Credit noted updates the deadline now covers (in time order), then judge the clock
    BREACHED if something past deadline + grace has been seen (``horizon``)."""
    every = contract.status_update_every_ms
    late = clock["late"]
    while late and late[0][0] <= clock["deadline"]:
        at, status = late.pop(0)
        if status in TERMINAL:
            detail = f"{status} with every update within {format_duration(every)}"
            return [_verdict(contract, state, STATUS_UPDATE, SALES, MET,
                             deadline=clock["deadline"], met_at=at, at=at, detail=detail)]
        clock["deadline"] = max(clock["deadline"], at + every)
    seen = late[-1][0] if late else None
    if horizon is not None:
        seen = horizon if seen is None else max(seen, horizon)
    if seen is None or seen - contract.grace_ms <= clock["deadline"]:
        return []
    deadline = clock["deadline"]
    if late:
        first = late[0][0]
        gap = format_duration(first - deadline)
        detail = f"status update {gap} late (every {format_duration(every)})"
        return [_verdict(contract, state, STATUS_UPDATE, SALES, BREACHED, deadline=deadline,
                         met_at=first, at=first, detail=detail)]
    detail = f"no status update within {format_duration(every)}"
    return [_verdict(contract, state, STATUS_UPDATE, SALES, BREACHED, deadline=deadline,
                     met_at=None, at=deadline, detail=detail)]


def on_status(contract: Contract, state: State | None, at_ms: int | datetime, status: str, *,
              has_reason: bool, has_notes: bool) -> tuple[State | None, list[Verdict]]:
    """A CRM status change of a routed lead: feeds the STATUS_UPDATE chain (an update in time
    moves the deadline to at + every; a terminal status in time is MET; an update after the
    deadline is BREACHED, met_at = it) and judges DISQUALIFICATION_REASON on DISQUALIFIED."""
    at = to_ms(at_ms)
    if state is None or state.get("routed_at") is None or at < state["routed_at"]:
        return state, []
    verdicts: list[Verdict] = []
    clock = state["clocks"].get(STATUS_UPDATE)
    if clock is not None:
        clock["late"].append([at, status])
        clock["late"].sort()
        verdicts += _settle_status(contract, state, clock, None)
    if status == "DISQUALIFIED" and DISQUALIFICATION_REASON not in state["done"]:
        missing = [name for name, ok in (("reason", has_reason), ("notes", has_notes)) if not ok]
        if not contract.require_disqualification_reason:
            ok, detail = True, "reason and notes not required by the contract"
        else:
            ok = not missing
            detail = "reason and notes given" if ok else "missing: " + ", ".join(missing)
        verdicts.append(_verdict(contract, state, DISQUALIFICATION_REASON, SALES,
                                 MET if ok else BREACHED, deadline=None,
                                 met_at=at if ok else None, at=at, detail=detail))
    return state, verdicts


def due(contract: Contract, state: State | None, now_ms: int | datetime
        ) -> tuple[State | None, list[Verdict]]:
    """Judge every open clock whose deadline + grace < now: BREACHED at the deadline (met_at
    None), or at the first late event if one was noted (touched or updated, but late)."""
    if state is None:
        return state, []
    now = to_ms(now_ms)
    verdicts: list[Verdict] = []
    touch = state["clocks"].get(FIRST_TOUCH)
    if touch is not None and touch["deadline"] + contract.grace_ms < now:
        verdicts.append(_touch_breach(contract, state, touch))
    status = state["clocks"].get(STATUS_UPDATE)
    if status is not None:
        verdicts += _settle_status(contract, state, status, now)
    verdicts.sort(key=lambda v: (v.evaluated_at, v.clause))
    return state, verdicts


def next_due(contract: Contract, state: State | None) -> int | None:
    """When ``due`` will next have something to judge: the earliest open deadline + grace,
    plus 1 ms (due judges strictly after deadline + grace, so ``due(c, s, next_due(c, s))``
    always fires). None when no clock is open."""
    clocks = (state or {}).get("clocks") or {}
    deadlines = [clock["deadline"] for clock in clocks.values()]
    return min(deadlines) + contract.grace_ms + 1 if deadlines else None


def context_verdict(contract: Contract, *, lead_id: str | None = None, complete: bool,
                    missing: list[str], at_ms: int | datetime, campaign_id: str | None,
                    owner_id: str | None = None, tier: str | None = None) -> Verdict:
    """CONTEXT_COMPLETE for one MQL (marketing's promise): MET iff nothing is missing."""
    at = to_ms(at_ms)
    ok = complete and not missing
    detail = "context complete" if ok else "missing: " + ", ".join(missing or ["(unspecified)"])
    return Verdict(CONTEXT_COMPLETE, MARKETING, MET if ok else BREACHED, None,
                   at if ok else None, at, owner_id, tier, campaign_id, detail, None,
                   contract.version, lead_id)
