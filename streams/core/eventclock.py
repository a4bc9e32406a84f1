"""The event-time clock that decides when an SLA deadline has passed, per partition.

A deadline has passed when no event that could still meet it can arrive: every input that
can meet a clause (touches, status changes) has been processed past the deadline. So the
clock of a partition is the *minimum* event time reached by those inputs while any of them
still has unread records (a backlog, a replay), and the latest event time seen on the
partition once they are all caught up. Replaying history therefore gives the same verdicts
as the live run: the clock only moves with the events themselves.

A quiet system still has to notice a rep who never calls: once a partition has had no
events for ``idle_ms`` of wall time and nothing is unread, its clock runs on from the latest
event time read, at the pace of the wall clock. Live, that is the wall clock less the last
event's delivery delay; in a compressed replay of the past it stays in the replayed past
instead of jumping to today (which judged every later deadline at once).

The clock is never ahead of the wall clock: intake accepts events dated up to a day ahead
(CRM clocks drift), and one of them must not judge every deadline of its partition early.
Replaying history is unaffected, since history is behind the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterable


class EventClock:
    def __init__(self, *, gated: Iterable[str], idle_ms: int, idle_pace: float = 1.0) -> None:
        self.gated = frozenset(gated)  # topics whose events can meet a clause
        self.idle_ms = idle_ms
        self.idle_pace = idle_pace  # event ms per wall ms while idle (capped at the wall clock)
        self._marks: dict[int, dict[str, int]] = {}  # partition → topic → max event time
        self._last_wall: dict[int, int] = {}
        self._now: dict[int, int] = {}

    def observe(self, topic: str, partition: int, occurred_ms: int, wall_ms: int) -> None:
        """Record a processed event (call after its state change is written)."""
        marks = self._marks.setdefault(partition, {})
        if occurred_ms > marks.get(topic, -1):
            marks[topic] = occurred_ms
        self._last_wall[partition] = wall_ms

    def now(self, partition: int, lagging: Iterable[str], wall_ms: int) -> int | None:
        """Event time of ``partition`` given the topics that still have unread records on it;
        None until it is known. Never goes backwards."""
        lagging = set(lagging)
        marks = self._marks.get(partition, {})
        held = self.gated & lagging
        clock: int | None
        if held:
            times = [marks.get(t) for t in held]
            clock = None if None in times else min(t for t in times if t is not None)
        else:
            clock = max(marks.values(), default=None)
            idle = wall_ms - self._last_wall.get(partition, wall_ms - self.idle_ms)
            if not lagging and idle >= self.idle_ms:
                # Time passes at the pace of the wall clock from the last event read, not
                # *to* the wall clock: a replay of last week stays in last week.
                # With nothing read yet there is no pace to keep: a partition that has seen no
                # event has no deadline either (a restarted worker seeds it from its table).
                clock = None if clock is None else clock + int(idle * self.idle_pace)
        if clock is not None and clock > wall_ms:
            clock = wall_ms
        previous = self._now.get(partition)
        if clock is None:
            return previous
        if previous is not None and previous > clock:
            return previous
        self._now[partition] = clock
        return clock

    def current(self, partition: int) -> int | None:
        """The clock as last computed by ``now`` (cheap: no lag check)."""
        return self._now.get(partition)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop partitions this worker no longer owns (their new owner rebuilds its clock)."""
        for p in partitions:
            self._marks.pop(p, None)
            self._last_wall.pop(p, None)
            self._now.pop(p, None)

    def reset(self) -> None:
        """Forget every partition (after a revoke)."""
        self.forget([*self._marks, *self._now])
