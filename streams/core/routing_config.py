"""The ``[routing]`` section of leadflow.toml → reps and rules, with every bad value named
by its TOML key (``routing.reps[2].hours: ...``). ``RoutingConfig.from_config`` calls it."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from streams.core.routing import (
    DEFAULT_CAPACITY,
    DEFAULT_DAYS,
    DEFAULT_HOURS,
    DEFAULT_QUEUE,
    DEFAULT_TIMEZONE,
    DEFAULT_WEIGHT,
    Rep,
    Rule,
    zone_of,
)

_DAYS = {name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))}
_HOURS = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_SECTION_KEYS = frozenset({"fallback_queue", "reps", "rules"})
_REP_KEYS = frozenset(
    {"id", "team", "weight", "capacity", "timezone", "hours", "days", "out_of_office"}
    | {"regions", "segments", "skills"}
)
_RULE_KEYS = frozenset(
    {"name", "tiers", "regions", "segments", "industries", "campaigns"} | {"team", "reps", "queue"}
)


def parse(section: Mapping[str, Any]) -> tuple[str, tuple[Rep, ...], tuple[Rule, ...]]:
    """(fallback queue, reps, rules) of a ``[routing]`` section as tomllib parses it."""
    _table(section, _SECTION_KEYS, "routing")
    queue = _text(section.get("fallback_queue", DEFAULT_QUEUE), "routing.fallback_queue")
    reps = tuple(_rep(d, f"routing.reps[{i}]") for i, d in enumerate(_tables(section, "reps")))
    rules = tuple(_rule(d, f"routing.rules[{i}]") for i, d in enumerate(_tables(section, "rules")))
    return queue, reps, rules


def _table(d: Any, allowed: frozenset[str], key: str, required: str | None = None) -> None:
    if not isinstance(d, Mapping):
        raise ValueError(f"{key}: expected a table, got {type(d).__name__}")
    extra = sorted(set(d) - allowed)
    if extra:
        raise ValueError(f"{key}: unknown key(s) {', '.join(map(repr, extra))}")
    if required is not None and required not in d:
        raise ValueError(f"{key}.{required}: required")


def _tables(section: Mapping[str, Any], name: str) -> list[Any]:
    value = section.get(name, [])
    if not isinstance(value, list):
        raise ValueError(f"routing.{name}: expected an array of tables ([[routing.{name}]])")
    return value


def _text(value: Any, key: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key}: expected a non-empty string, got {value!r}")
    return value.strip()


def _texts(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list of strings, got {value!r}")
    return [_text(v, f"{key}[{i}]") for i, v in enumerate(value)]


def _number(value: Any, key: str, *, whole: bool) -> Any:
    kinds = int if whole else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
        raise ValueError(f"{key}: expected a {'whole ' if whole else ''}number, got {value!r}")
    if value < 0 if whole else value <= 0:
        raise ValueError(f"{key}: must be {'>= 0' if whole else '> 0'}, got {value!r}")
    return value if whole else float(value)


def _hours(value: Any, key: str) -> tuple[int, int]:
    match = _HOURS.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{key}: expected 'HH:MM-HH:MM', got {value!r}")
    h1, m1, h2, m2 = map(int, match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{key}: not a time of day in {value!r} (00:00 to 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start >= end:
        raise ValueError(f"{key}: {value!r} must end after it starts (no wrap past midnight)")
    return start, end


def _days(value: Any, key: str) -> frozenset[int]:
    days = [_DAYS.get(name.lower(), -1) for name in _texts(value, key)]
    if -1 in days:
        raise ValueError(f"{key}: unknown day in {value!r} (expected Mon..Sun)")
    return frozenset(days)


def _date(value: Any, key: str) -> date:
    # tomllib yields a date for an unquoted 2026-11-24, a str for a quoted one.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(value.strip())
    except (AttributeError, ValueError):
        raise ValueError(f"{key}: expected a date YYYY-MM-DD, got {value!r}") from None


def _out_of_office(value: Any, key: str) -> tuple[tuple[date, date], ...]:
    if not isinstance(value, list):
        raise ValueError(f"{key}: expected a list of [first, last] date pairs, got {value!r}")
    ranges = []
    for i, item in enumerate(value):
        if not isinstance(item, list) or len(item) != 2:
            raise ValueError(f"{key}[{i}]: expected [first, last] dates, got {item!r}")
        first, last = _date(item[0], f"{key}[{i}][0]"), _date(item[1], f"{key}[{i}][1]")
        if first > last:
            raise ValueError(f"{key}[{i}]: {first} is after {last}")
        ranges.append((first, last))
    return tuple(sorted(ranges))


def _rep(d: Any, key: str) -> Rep:
    _table(d, _REP_KEYS, key, required="id")
    timezone = _text(d.get("timezone", DEFAULT_TIMEZONE), f"{key}.timezone")
    zone_of(timezone, f"{key}.timezone")  # fail here, with the TOML key in the message
    start, end = _hours(d.get("hours", DEFAULT_HOURS), f"{key}.hours")
    return Rep(
        id=_text(d["id"], f"{key}.id"),
        team=_text(d.get("team"), f"{key}.team", optional=True),
        weight=_number(d.get("weight", DEFAULT_WEIGHT), f"{key}.weight", whole=False),
        capacity=_number(d.get("capacity", DEFAULT_CAPACITY), f"{key}.capacity", whole=True),
        timezone=timezone,
        start_min=start,
        end_min=end,
        days=_days(d.get("days", list(DEFAULT_DAYS)), f"{key}.days"),
        out_of_office=_out_of_office(d.get("out_of_office", []), f"{key}.out_of_office"),
        regions=_set(d, "regions", key),
        segments=_set(d, "segments", key),
        skills=_set(d, "skills", key),
    )


def _rule(d: Any, key: str) -> Rule:
    _table(d, _RULE_KEYS, key, required="name")
    return Rule(
        name=_text(d["name"], f"{key}.name"),
        tiers=_set(d, "tiers", key),
        regions=_set(d, "regions", key),
        segments=_set(d, "segments", key),
        industries=_set(d, "industries", key),
        campaigns=_set(d, "campaigns", key),
        team=_text(d.get("team"), f"{key}.team", optional=True),
        reps=tuple(dict.fromkeys(_texts(d.get("reps"), f"{key}.reps"))),
        queue=_text(d.get("queue"), f"{key}.queue", optional=True),
    )


def _set(d: Mapping[str, Any], name: str, key: str) -> frozenset[str]:
    return frozenset(_texts(d.get(name), f"{key}.{name}"))
