"""Durations as people write them in configuration ("15m", "24h", "1h30m"), as milliseconds.

Config files hold SLA windows, grace periods and retention as short strings because that is
what RevOps reads and writes; the core works in integer epoch milliseconds, so this module is
the one place that converts between the two. Parsing is strict on purpose: a typo in an SLA
window ("15mm", "1.5h", "90") must fail loudly at start-up rather than silently become a
different contract.

Grammar: one or more ``<digits><unit>`` parts, largest unit first, each unit at most once,
optionally separated by spaces. Units: ``w`` (weeks), ``d``, ``h``, ``m``, ``s``, ``ms``.
``format_duration`` writes the two most significant units ("1h 05m", "2d 3h", "45s"), which
``parse_duration`` reads back (to that precision).

Business time lives here too, because an SLA window such as "24h of business hours" is a
duration measured on a calendar: ``Calendar`` holds local working hours and days in an IANA
time zone, ``add_business_time`` finds when a given amount of working time has elapsed and
``business_time_between`` measures it. Both walk the calendar a local day at a time (never a
minute at a time) and convert each day's opening and closing wall-clock times to instants
with ``zoneinfo``, so a day that gains or loses an hour to DST counts exactly what it has.
Per-day windows are memoised: the same few days are asked about over and over.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.core.contract import epoch_ms

_UNIT_MS: dict[str, int] = {
    "w": 7 * 24 * 3600 * 1000,
    "d": 24 * 3600 * 1000,
    "h": 3600 * 1000,
    "m": 60 * 1000,
    "s": 1000,
    "ms": 1,
}
# Largest first: the order parts must appear in.
_ORDER = ("w", "d", "h", "m", "s", "ms")
# "ms" before "m" so the alternation never splits "5ms" into "5m" + "s".
_PART = re.compile(r"\s*(\d+)(ms|w|d|h|m|s)")


def parse_duration(text: str) -> int:
    """Milliseconds in ``text`` such as "15m", "24h", "2d", "90s", "1h30m" or "1h 05m".

    Raises ``ValueError`` naming the text for anything else: empty, no unit, unknown or
    repeated unit, units out of order, signs or fractions.
    """
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string like '15m', got {text!r}")
    body = text.strip()
    if not body:
        raise ValueError("duration is empty (expected e.g. '15m', '24h', '2d')")
    total = 0
    pos = 0
    last_rank = -1
    while pos < len(body):
        match = _PART.match(body, pos)
        if match is None:
            raise ValueError(
                f"bad duration {text!r}: expected parts like '15m', '24h', '2d', '90s', '1h30m'"
            )
        unit = match.group(2)
        rank = _ORDER.index(unit)
        if rank <= last_rank:
            raise ValueError(f"bad duration {text!r}: units must be distinct, largest first")
        last_rank = rank
        total += int(match.group(1)) * _UNIT_MS[unit]
        pos = match.end()
    return total


def format_duration(ms: int) -> str:
    """A short human form of ``ms``: "2d 3h", "1h 05m", "1m 30s", "45s", "250ms".

    Shows the two most significant units and truncates the rest (a figure for people, not a
    value to compute with); a zero second unit is left out ("2d", "1h"). Negative values get
    a leading "-".
    """
    ms = int(ms)
    if ms < 0:
        return "-" + format_duration(-ms)
    if ms < 1000:
        return f"{ms}ms"
    seconds = ms // 1000
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_INDEX = {name.lower(): i for i, name in enumerate(DAY_NAMES)} | {
    name.lower(): i
    for i, name in enumerate(
        ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    )
}
_HOURS = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")


def parse_hours(text: str) -> tuple[int, int]:
    """``"09:00-17:00"`` as minutes after local midnight, ``(540, 1020)``; end may be 24:00.

    A range may not wrap past midnight (a night shift is two calendars' business, not one).
    """
    match = _HOURS.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"bad hours {text!r}: expected 'HH:MM-HH:MM', e.g. '09:00-17:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"bad hours {text!r}: times must be 00:00..23:59 (end may be 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start >= end:
        raise ValueError(f"bad hours {text!r}: start must be before end (no wrap past midnight)")
    return start, end


def parse_days(names: object) -> frozenset[int]:
    """Day names (``["Mon", "Tue"]``; full names and any case accepted) as weekday numbers
    (Monday = 0, as ``date.weekday()``)."""
    if isinstance(names, str) or not isinstance(names, list | tuple | set | frozenset):
        raise ValueError(f"days must be a list of day names like ['Mon', 'Tue'], got {names!r}")
    days: set[int] = set()
    for name in names:
        if isinstance(name, bool):
            raise ValueError(f"bad day {name!r}: expected one of {', '.join(DAY_NAMES)}")
        if isinstance(name, int) and 0 <= name <= 6:
            days.add(name)
            continue
        index = _DAY_INDEX.get(name.strip().lower()) if isinstance(name, str) else None
        if index is None:
            raise ValueError(f"bad day {name!r}: expected one of {', '.join(DAY_NAMES)}")
        days.add(index)
    if not days:
        raise ValueError("days is empty: a calendar needs at least one working day")
    return frozenset(days)


def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name, as ``ValueError`` naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name)") from exc


@dataclass(frozen=True)
class Calendar:
    """Working hours ``[start_min, end_min)`` (minutes after local midnight) on ``days``
    (weekday numbers, Monday = 0; names are accepted and normalised) in ``timezone``."""

    timezone: str = "UTC"
    start_min: int = 9 * 60
    end_min: int = 17 * 60
    days: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))

    def __post_init__(self) -> None:
        zone(self.timezone)
        if not (0 <= self.start_min < self.end_min <= 1440):
            raise ValueError(
                f"bad working hours {self.start_min}-{self.end_min} (minutes): "
                "need 0 <= start < end <= 1440"
            )
        # frozen: normalising names/lists to a hashable frozenset needs object.__setattr__.
        object.__setattr__(self, "days", parse_days(list(self.days)))

    @classmethod
    def from_config(cls, section: object, base: Calendar | None = None) -> Calendar:
        """A calendar from ``{timezone, hours, days}``; missing keys come from ``base``."""
        base = base or cls()
        if not isinstance(section, Mapping):
            raise ValueError(f"expected a table {{timezone, hours, days}}, got {section!r}")
        unknown = set(section) - {"timezone", "hours", "days"}
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)} (expected timezone, hours, days)")
        tz = section.get("timezone", base.timezone)
        if not isinstance(tz, str):
            raise ValueError(f"timezone must be an IANA name string, got {tz!r}")
        zone(tz)
        start, end = base.start_min, base.end_min
        if "hours" in section:
            start, end = parse_hours(section["hours"])
        days = parse_days(section["days"]) if "days" in section else base.days
        return cls(tz, start, end, days)


def _local_midnight_ms(tz: ZoneInfo, day: date) -> int:
    return epoch_ms(datetime(day.year, day.month, day.day, tzinfo=tz))


@lru_cache(maxsize=16384)
def _window(cal: Calendar, ordinal: int) -> tuple[int, int] | None:
    """The working interval ``[open, close)`` in epoch ms of the local date ``ordinal``, or
    None on a day off. Wall-clock times are converted with zoneinfo (fold=0), so the interval
    length on a DST day is the real elapsed time."""
    day = date.fromordinal(ordinal)
    if day.weekday() not in cal.days:
        return None
    tz = ZoneInfo(cal.timezone)
    hours, minutes = divmod(cal.start_min, 60)
    opens = epoch_ms(datetime(day.year, day.month, day.day, hours, minutes, tzinfo=tz))
    if cal.end_min == 1440:
        closes = _local_midnight_ms(tz, day + timedelta(days=1))
    else:
        hours, minutes = divmod(cal.end_min, 60)
        closes = epoch_ms(datetime(day.year, day.month, day.day, hours, minutes, tzinfo=tz))
    return opens, max(opens, closes)


def _local_ordinal(ms: int, cal: Calendar) -> int:
    # Whole seconds are enough to place an instant on a local date (offsets are whole seconds).
    return datetime.fromtimestamp(ms // 1000, ZoneInfo(cal.timezone)).toordinal()


def add_business_time(start_ms: int, duration_ms: int, cal: Calendar) -> int:
    """The earliest instant by which ``duration_ms`` of working time has elapsed since
    ``start_ms`` on ``cal`` (``start_ms`` itself for 0). A duration that ends exactly at
    closing time ends at closing time, not at the next opening."""
    if duration_ms < 0:
        raise ValueError(f"duration must not be negative, got {duration_ms}")
    if duration_ms == 0:
        return start_ms
    remaining = duration_ms
    ordinal = _local_ordinal(start_ms, cal)
    while True:
        window = _window(cal, ordinal)
        ordinal += 1
        if window is None or window[1] <= start_ms:
            continue
        begin = max(window[0], start_ms)
        available = window[1] - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available


def business_time_between(a_ms: int, b_ms: int, cal: Calendar) -> int:
    """Working time on ``cal`` in ``[a_ms, b_ms)``; negative when ``b_ms < a_ms``."""
    if b_ms < a_ms:
        return -business_time_between(b_ms, a_ms, cal)
    total = 0
    last = _local_ordinal(b_ms, cal)
    for ordinal in range(_local_ordinal(a_ms, cal), last + 1):
        window = _window(cal, ordinal)
        if window is not None:
            total += max(0, min(window[1], b_ms) - max(window[0], a_ms))
    return total
