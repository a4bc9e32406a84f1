from hypothesis import given
from hypothesis import strategies as st

from streams.core.eventclock import EventClock

TOUCH, STATUS, LEAD = "crm.touches", "crm.status-changed", "leads.captured"
W = 1_000_000  # wall clock, after every event time unless a test says otherwise


def clock() -> EventClock:
    return EventClock(gated=(TOUCH, STATUS), idle_ms=10_000)


def test_unknown_until_a_lagging_input_has_been_seen():
    c = clock()
    c.observe(LEAD, 0, 5_000, wall_ms=W)
    assert c.now(0, lagging={TOUCH, LEAD}, wall_ms=W + 1) is None


def test_backlog_holds_the_clock_at_the_slowest_input_that_can_meet_a_clause():
    c = clock()
    c.observe(LEAD, 0, 9_000, wall_ms=W)
    c.observe(TOUCH, 0, 3_000, wall_ms=W)
    c.observe(STATUS, 0, 5_000, wall_ms=W)
    assert c.now(0, lagging={TOUCH, STATUS, LEAD}, wall_ms=W + 1) == 3_000
    assert c.now(0, lagging={STATUS}, wall_ms=W + 1) == 5_000


def test_caught_up_uses_the_latest_event_and_idle_runs_on_at_the_wall_clocks_pace():
    c = clock()
    c.observe(LEAD, 0, 9_000, wall_ms=W)
    c.observe(TOUCH, 0, 3_000, wall_ms=W)
    assert c.now(0, lagging=set(), wall_ms=W + 100) == 9_000
    assert c.now(0, lagging={LEAD}, wall_ms=W + 50_000) == 9_000  # not idle while unread records
    # Idle 50 s of wall time: 50 s after the latest event read, not today's wall clock.
    assert c.now(0, lagging=set(), wall_ms=W + 50_000) == 9_000 + 50_000


def test_a_compressed_replay_of_the_past_is_never_judged_by_todays_wall_clock():
    c = clock()
    today = 1_796_000_000_000
    week_ago = today - 7 * 86_400_000
    c.observe(LEAD, 0, week_ago, wall_ms=today)
    for quiet in (10_000, 60_000, 600_000):
        assert c.now(0, lagging=set(), wall_ms=today + quiet) == week_ago + quiet
    # With no event read yet, no clock: a demo's first quiet seconds once judged a week early.
    fresh = clock()
    assert fresh.now(3, lagging=set(), wall_ms=W + 50_000) is None


def test_partitions_are_independent_and_forgotten():
    c = clock()
    c.observe(TOUCH, 1, 7_000, wall_ms=W)
    assert c.now(0, lagging={TOUCH}, wall_ms=W + 1) is None
    assert c.now(1, lagging={TOUCH}, wall_ms=W + 1) == 7_000
    c.forget([1])
    assert c.now(1, lagging={TOUCH}, wall_ms=W + 2) is None


@given(st.lists(st.tuples(st.sampled_from([TOUCH, STATUS, LEAD]),
                          st.integers(0, 10**6), st.sets(st.sampled_from([TOUCH, STATUS, LEAD])))))
def test_never_goes_backwards(steps):
    c = clock()
    last = None
    for wall, (topic, occurred, lagging) in enumerate(steps, start=W):
        c.observe(topic, 0, occurred, wall_ms=wall)
        now = c.now(0, lagging=lagging, wall_ms=wall)
        if last is not None:
            assert now is not None and now >= last
        last = now


def test_an_event_dated_ahead_of_the_wall_clock_does_not_move_the_clock_past_it():
    c = clock()
    c.observe(LEAD, 0, W + 10 * 3_600_000, wall_ms=W)  # a CRM clock 10 h fast
    assert c.now(0, lagging=set(), wall_ms=W + 5) == W + 5
    assert c.now(0, lagging=set(), wall_ms=W + 60_000) == W + 60_000
