"""Durations as text and business time on a calendar (time zones, weekends, DST)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.contract import epoch_ms
from streams.core.durations import (
    Calendar,
    add_business_time,
    business_time_between,
    format_duration,
    parse_duration,
    parse_hours,
)

S, M, H, D = 1000, 60_000, 3_600_000, 86_400_000
BERLIN, LA = "Europe/Berlin", "America/Los_Angeles"
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri"]


def at(tz: str, *parts: int) -> int:
    return epoch_ms(datetime(*parts, tzinfo=ZoneInfo(tz)))


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [("15m", 15 * M), ("24h", 24 * H), ("2d", 2 * D), ("90s", 90 * S), ("1h30m", 90 * M),
     ("1h 05m", 65 * M), (" 2d 3h ", 2 * D + 3 * H), ("1w", 7 * D), ("250ms", 250),
     ("0s", 0), ("1d2h3m4s5ms", D + 2 * H + 3 * M + 4 * S + 5)],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    "text", ["", "  ", "90", "15", "15mm", "1.5h", "-5m", "+5m", "5 m", "30m1h", "1h1h", "h",
             "15min", "1y", "1h,30m"],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_parse_duration_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="string"):
        parse_duration(15)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ms", "text"),
    [(65 * M, "1h 05m"), (2 * D + 3 * H, "2d 3h"), (45 * S, "45s"), (90 * S, "1m 30s"),
     (250, "250ms"), (0, "0ms"), (D, "1d"), (H, "1h"), (M, "1m"), (2 * D + 3 * H + 59 * M, "2d 3h"),
     (-(15 * M), "-15m")],
)
def test_format_duration(ms: int, text: str) -> None:
    assert format_duration(ms) == text


@given(st.integers(min_value=1000, max_value=400 * D))
@settings(max_examples=200)
def test_format_reads_back_to_its_precision(ms: int) -> None:
    back = parse_duration(format_duration(ms))
    assert back <= ms
    assert format_duration(back) == format_duration(ms)


# --- calendars ------------------------------------------------------------------------------


def test_hours_and_days() -> None:
    assert parse_hours("09:00-17:00") == (540, 1020)
    assert parse_hours("9:30-24:00") == (570, 1440)
    for bad in ("17:00-09:00", "09:00-09:00", "24:00-24:00", "9-17", "09:60-10:00", "00:00-24:01"):
        with pytest.raises(ValueError, match="hours"):
            parse_hours(bad)
    cal = Calendar(BERLIN, 540, 1020, ["mon", "Tuesday", 4])  # type: ignore[arg-type]
    assert cal.days == frozenset({0, 1, 4})
    with pytest.raises(ValueError, match="time zone"):
        Calendar("Mars/Olympus")
    with pytest.raises(ValueError, match="day"):
        Calendar(days=["Funday"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        Calendar(days=[])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hours"):
        Calendar(start_min=600, end_min=600)


def test_calendar_from_config_inherits_from_base() -> None:
    base = Calendar.from_config({"hours": "08:00-16:00", "days": ["Mon", "Tue"]})
    region = Calendar.from_config({"timezone": LA}, base)
    assert region == Calendar(LA, 480, 960, frozenset({0, 1}))
    with pytest.raises(ValueError, match="unknown key"):
        Calendar.from_config({"tz": LA})


# --- business time: hand cases ------------------------------------------------------------------

UTC_CAL = Calendar()
BERLIN_CAL = Calendar(BERLIN)
LA_CAL = Calendar(LA)


def test_inside_one_day() -> None:
    start = at("UTC", 2026, 11, 24, 10, 0)  # a Tuesday
    assert add_business_time(start, 2 * H, UTC_CAL) == at("UTC", 2026, 11, 24, 12, 0)
    assert business_time_between(start, at("UTC", 2026, 11, 24, 12, 0), UTC_CAL) == 2 * H


def test_before_opening_starts_at_opening() -> None:
    start = at("UTC", 2026, 11, 24, 6, 0)
    assert add_business_time(start, 15 * M, UTC_CAL) == at("UTC", 2026, 11, 24, 9, 15)


def test_ending_at_closing_time_is_closing_time() -> None:
    start = at("UTC", 2026, 11, 24, 16, 0)
    assert add_business_time(start, H, UTC_CAL) == at("UTC", 2026, 11, 24, 17, 0)
    assert add_business_time(start, H + 1, UTC_CAL) == at("UTC", 2026, 11, 25, 9, 0) + 1


def test_across_a_weekend() -> None:
    friday = at("UTC", 2026, 11, 27, 16, 0)
    assert add_business_time(friday, 2 * H, UTC_CAL) == at("UTC", 2026, 11, 30, 10, 0)
    saturday = at("UTC", 2026, 11, 28, 12, 0)
    assert add_business_time(saturday, 15 * M, UTC_CAL) == at("UTC", 2026, 11, 30, 9, 15)
    assert business_time_between(friday, at("UTC", 2026, 11, 30, 10, 0), UTC_CAL) == 2 * H


def test_24h_of_business_time_is_three_working_days() -> None:
    monday = at("UTC", 2026, 11, 23, 9, 0)
    assert add_business_time(monday, 24 * H, UTC_CAL) == at("UTC", 2026, 11, 25, 17, 0)
    thursday = at("UTC", 2026, 11, 26, 12, 0)
    assert add_business_time(thursday, 24 * H, UTC_CAL) == at("UTC", 2026, 12, 1, 12, 0)


def test_zero_and_negative() -> None:
    saturday = at("UTC", 2026, 11, 28, 12, 0)
    assert add_business_time(saturday, 0, UTC_CAL) == saturday
    with pytest.raises(ValueError):
        add_business_time(saturday, -1, UTC_CAL)
    monday = at("UTC", 2026, 11, 23, 10, 0)
    assert business_time_between(monday + H, monday, UTC_CAL) == -H


def test_berlin_spring_forward_weekend() -> None:
    # Berlin moves to CEST on Sunday 2026-03-29: Friday closes 16:00 UTC, Monday opens 07:00 UTC.
    friday = at(BERLIN, 2026, 3, 27, 16, 0)
    monday_open = at(BERLIN, 2026, 3, 30, 9, 0)
    assert monday_open - friday == 2 * D + 16 * H  # the weekend was an hour short
    assert add_business_time(friday, 2 * H, BERLIN_CAL) == at(BERLIN, 2026, 3, 30, 10, 0)
    assert add_business_time(friday, 2 * H, BERLIN_CAL) == epoch_ms(
        datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    )
    assert business_time_between(friday, at(BERLIN, 2026, 3, 30, 10, 0), BERLIN_CAL) == 2 * H


def test_round_the_clock_calendar_counts_the_short_and_long_days() -> None:
    always = Calendar(BERLIN, 0, 1440, frozenset(range(7)))
    sunday = at(BERLIN, 2026, 3, 29, 0, 0)
    assert business_time_between(sunday, at(BERLIN, 2026, 3, 30, 0, 0), always) == 23 * H
    autumn = at(BERLIN, 2026, 10, 25, 0, 0)
    assert business_time_between(autumn, at(BERLIN, 2026, 10, 26, 0, 0), always) == 25 * H
    # Round the clock, business time is plain elapsed time, DST or not.
    assert add_business_time(sunday, 30 * H, always) == sunday + 30 * H


def test_los_angeles_in_march() -> None:
    # LA moves to PDT on Sunday 2026-03-08: 09:00 local is 17:00 UTC before, 16:00 UTC after.
    friday = at(LA, 2026, 3, 6, 15, 0)
    due = add_business_time(friday, 4 * H, LA_CAL)
    assert due == at(LA, 2026, 3, 9, 11, 0)
    assert due == epoch_ms(datetime(2026, 3, 9, 18, 0, tzinfo=UTC))
    # The same UTC instants judged on the UTC calendar give a different answer, as they should.
    assert add_business_time(friday, 4 * H, UTC_CAL) != due


def test_long_spans_walk_day_by_day() -> None:
    start = at("UTC", 2026, 1, 1, 0, 0)
    year_end = add_business_time(start, 261 * 8 * H, UTC_CAL)  # 2026 has 261 weekdays
    assert year_end == at("UTC", 2026, 12, 31, 17, 0)


# --- business time: properties against a brute-force reference ----------------------------------

CALENDARS = st.sampled_from([
    Calendar(),
    Calendar(BERLIN, 8 * 60, 18 * 60),
    Calendar(LA, 9 * 60 + 30, 17 * 60 + 15, frozenset({0, 2, 4, 5})),
    Calendar(BERLIN, 0, 1440, frozenset({5, 6})),
    Calendar("Australia/Lord_Howe", 0, 1440, frozenset(range(7))),  # a 30-minute DST shift
])
# Minute-aligned instants around the 2026 DST switches of Berlin and LA (March, October/Nov).
BASE = st.sampled_from([
    at("UTC", 2026, 3, 5), at("UTC", 2026, 3, 26), at("UTC", 2026, 10, 22),
    at("UTC", 2026, 10, 30), at("UTC", 2026, 4, 3),
])
OFFSET = st.integers(min_value=0, max_value=6 * 24 * 60).map(lambda n: n * M)


def reference_between(a: int, b: int, cal: Calendar) -> int:
    """Minute by minute: is the local wall-clock time of each minute inside working hours?"""
    tz = ZoneInfo(cal.timezone)
    total = 0
    for minute in range(a, b, M):
        local = datetime.fromtimestamp(minute // 1000, tz)
        minute_of_day = local.hour * 60 + local.minute
        if local.weekday() in cal.days and cal.start_min <= minute_of_day < cal.end_min:
            total += M
    return total


@given(CALENDARS, BASE, OFFSET, st.integers(min_value=0, max_value=3 * 24 * 60))
@settings(max_examples=60, deadline=None)
def test_between_matches_minute_by_minute_reference(
    cal: Calendar, base: int, offset: int, span_min: int
) -> None:
    a = base + offset
    b = a + span_min * M
    assert business_time_between(a, b, cal) == reference_between(a, b, cal)


@given(CALENDARS, BASE, st.integers(min_value=0, max_value=6 * D),
       st.integers(min_value=0, max_value=5 * D))
@settings(max_examples=200, deadline=None)
def test_add_is_the_least_instant_with_that_much_business_time(
    cal: Calendar, base: int, offset: int, duration: int
) -> None:
    start = base + offset
    end = add_business_time(start, duration, cal)
    assert end >= start
    assert business_time_between(start, end, cal) == duration
    if duration:
        assert business_time_between(start, end - 1, cal) == duration - 1


@given(CALENDARS, BASE, st.integers(min_value=0, max_value=6 * D),
       st.integers(min_value=0, max_value=3 * D), st.integers(min_value=0, max_value=3 * D))
@settings(max_examples=100, deadline=None)
def test_business_time_is_additive(cal: Calendar, base: int, x: int, y: int, z: int) -> None:
    a, b, c = base + x, base + x + y, base + x + y + z
    between = business_time_between
    assert between(a, c, cal) == between(a, b, cal) + between(b, c, cal)

