"""SLA clocks on the worker: which leads have a deadline due, and the timer that judges them.

The lead states (in the traces table) hold the facts; ``handoff.on_clock`` judges them. This
module only knows *when* to ask: an in-memory index of each lead's next deadline per
partition (rebuilt from the table when partitions are assigned, so it survives restarts and
rebalances), and the per-partition event-time clock (``core.eventclock``) that says how far
event time has got. Only this worker's active partitions are judged; standbys wait.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka.partitioner import murmur2
from faust.types import TP

from streams import topics
from streams.core.eventclock import EventClock

# Inputs whose events can meet a clause: the clock waits for them while they lag.
GATED = (topics.TOUCHES.name, topics.STATUS.name)
INPUTS = tuple(t.name for t in topics.INBOUND)
RECOVERED = "(table)"  # the event times a partition's recovered lead states reached
YIELD_EVERY = 64  # leads judged between two yields to the event loop


def partition_of(key: str, partitions: int) -> int:
    """Kafka's default partition for ``key`` (what our producers and aiokafka choose)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def lagging(consumer: Any, names: Iterable[str], partition: int, done: dict[TP, int]) -> set[str]:
    """The topics among ``names`` with records on ``partition`` not yet processed (``done``:
    the last offset processed per TP). Unknown counts as lagging: better late than wrong."""
    out = set()
    for topic in names:
        tp = TP(topic, partition)
        try:
            high = consumer.highwater(tp)
        except Exception:  # not assigned or not fetched yet
            high = None
        if high is None:
            out.add(topic)
            continue
        last = done.get(tp)
        if last is None:
            # Nothing processed since start: caught up only if we start at the end.
            start = consumer._read_offset.get(tp)
            if high > (start or 0):
                out.add(topic)
        elif last + 1 < high:
            out.add(topic)
    return out


class SlaIndex:
    def __init__(self, app: Any, table: Any, idle_ms: int,
                 report: dict[int, Any] | None = None, settle_ms: int = 0,
                 idle_pace: float = 1.0) -> None:
        self.app = app
        self.table = table  # the traces ChangelogTable: its writes not yet in the store too
        self.settle_ms = settle_ms
        self._history: dict[int, deque[tuple[int, int]]] = {}  # (wall, clock) per tick
        self._settled: dict[int, int] = {}
        self.report = {} if report is None else report  # served in /v1/stats
        self.clock = EventClock(gated=GATED, idle_ms=idle_ms, idle_pace=idle_pace)
        self._heaps: dict[int, list[tuple[int, str]]] = {}
        self._settling: dict[int, list[tuple[int, str]]] = {}  # due by the settled clock
        self._due: dict[str, int] = {}
        self._done_offset: dict[TP, int] = {}
        self._active: frozenset[int] = frozenset()
        self._reindex = False

    def processed(self, msg: Any, occurred_ms: int | None, wall_ms: int) -> None:
        """After an input event's state is written: it counts for the clock."""
        self._done_offset[msg.tp] = msg.offset
        if occurred_ms is not None and msg.topic in INPUTS:
            self.clock.observe(msg.topic, msg.partition, occurred_ms, wall_ms)

    def index(self, lead_id: str, partition: int, state: dict[str, Any]) -> None:
        due = state.get("sla_next")
        if due is None:
            self._due.pop(lead_id, None)
        elif self._due.get(lead_id) != due:
            self._due[lead_id] = due
            heapq.heappush(self._heaps.setdefault(partition, []), (due, lead_id))

    def settling(self, lead_id: str, partition: int, due: int) -> None:
        """The lead's next verdict is a final one the clock has reached but the settled clock
        has not: look again when the settled clock gets there, not at every tick (after a
        jump of the clock that is thousands of leads judged again and again)."""
        self._due[lead_id] = due
        heapq.heappush(self._settling.setdefault(partition, []), (due, lead_id))

    def current(self, partition: int) -> int | None:
        return self.clock.current(partition)

    def settled(self, partition: int) -> int | None:
        """The clock as it was ``settle_ms`` of wall time ago: every event the sources had
        delivered by then has been read, whatever the skew between topics and hops."""
        return self._settled.get(partition)

    def _settle(self, partition: int, clock: int | None, wall_ms: int, held: bool) -> None:
        if clock is None:
            return
        if held:  # waiting for unread touches or status changes: nothing of theirs in flight
            self._history.pop(partition, None)
            self._settled[partition] = clock
            return
        history = self._history.setdefault(partition, deque())
        history.append((wall_ms, clock))
        while len(history) > 1 and history[1][0] <= wall_ms - self.settle_ms:
            history.popleft()
        if history[0][0] <= wall_ms - self.settle_ms:
            self._settled[partition] = history[0][1]

    def checked(self, partition: int, wall_ms: int) -> int | None:
        """The clock with the lag check (``current`` is the tick's, cheap but older)."""
        lag = lagging(self.app.consumer, INPUTS, partition, self._done_offset)
        return self.clock.now(partition, lag, wall_ms)

    def forget_clocks(self) -> None:
        """At a revoke: a clock carried across a rebalance may be ahead of records the new
        assignment has not read yet, so every clock is rebuilt from what is read next."""
        self.clock.reset()
        self._done_offset.clear()
        self._history.clear()
        self._settled.clear()

    def forget_assignment(self) -> None:
        """Rebuild the index from the table at the next tick (after a rebalance: deadlines
        taken off the heaps by an interrupted tick come back with their leads' states)."""
        self._heaps.clear()
        self._settling.clear()
        self._due.clear()
        self._reindex = True

    def _sync_assignment(self, partitions: int) -> None:
        actives = frozenset(
            tp.partition for tp in self.app.assignor.assigned_actives()
            if tp.topic == topics.LEADS.name
        )
        if actives == self._active and not self._reindex:
            return
        gained = actives if self._reindex else actives - self._active
        lost = self._active - actives
        self._reindex = False
        self.clock.forget(lost)
        for p in lost:
            self._history.pop(p, None)
            self._settled.pop(p, None)
            self.report.pop(p, None)
            for _, lead_id in [*self._heaps.pop(p, ()), *self._settling.pop(p, ())]:
                self._due.pop(lead_id, None)
        if gained:
            wall_ms = int(time.time() * 1000)
            for lead_id, state in self.table.items():
                p = partition_of(lead_id, partitions)
                if p in gained and isinstance(state, dict):
                    self.index(lead_id, p, state)
                    # The table's latest event time seeds the clock of a partition that gets
                    # no new event: its deadlines still pass, at the wall clock's pace.
                    steps = state.get("steps") or ()
                    if steps:
                        latest = max(s["occurred_at"] for s in steps)
                        self.clock.observe(RECOVERED, p, latest, wall_ms)
        self._active = actives

    def due(self, partitions: int, wall_ms: int) -> list[tuple[int, int, str]]:
        """(partition, clock, lead id) of every lead whose next deadline has been reached."""
        self._sync_assignment(partitions)
        out = []
        for p in sorted(self._active):
            lag = lagging(self.app.consumer, INPUTS, p, self._done_offset)
            clock = self.clock.now(p, lag, wall_ms)
            self._settle(p, clock, wall_ms, bool(lag & set(GATED)))
            for heap, until in ((self._heaps.get(p), clock),
                                (self._settling.get(p), self._settled.get(p))):
                while heap:
                    due, lead_id = heap[0]
                    if self._due.get(lead_id) != due:
                        heapq.heappop(heap)  # superseded by a later entry for the lead
                        continue
                    if until is None or clock is None or due > until:
                        break
                    heapq.heappop(heap)
                    del self._due[lead_id]
                    out.append((p, clock, lead_id))
            heap = self._heaps.get(p)
            self.report[p] = {"event_time": clock, "waiting_for": sorted(lag),
                              "next_due": heap[0][0] if heap else None,
                              # what the index holds in memory for the partition
                              "indexed": len(heap or ()) + len(self._settling.get(p) or ())}
        return out


def register_timer(
    app: Any, index: SlaIndex, judge: Callable[[int, int, str, int], Any], flush: Any,
    interval_s: float,
) -> None:
    """The SLA tick. It judges nothing while the worker rebalances (from the first revoke
    until the tables are recovered): the states it would read may be a standby's, seconds
    behind, or half recovered, and writing one back would make it the newest record of the
    lead's changelog, the state the next owner recovers."""
    partitions = app.settings.partitions

    @app.timer(interval=interval_s, name="sla.clock")
    async def tick() -> None:
        if app.rebalancing:
            return
        wall_ms = int(time.time() * 1000)
        for i, (partition, clock, lead_id) in enumerate(index.due(partitions, wall_ms)):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                # When a backlog ends, thousands of deadlines fall due at once: let intake
                # and the API run in between, or every request waits for the whole tick.
                await asyncio.sleep(0)
                if app.rebalancing:
                    index.forget_assignment()
                    break
            await judge(partition, clock, lead_id, wall_ms)
        await flush()

    @app.on_partitions_revoked.connect
    async def on_revoked(app: Any, revoked: Any, **_: Any) -> None:
        # Send what was judged on these partitions before their next owner recovers them.
        index.forget_assignment()
        index.forget_clocks()
        await flush()
        await app.producer.flush()
