"""Routing in the order leadflow received its inputs, across partitions: hold each request
until no earlier one can still come.

Routing requests come from the intake of every inbound partition onto one routing topic, so
they arrive in processing order, and in a backlog (or while a partition moves to another
worker) partitions are processed at different speeds. Rep capacity and the round robin make
each decision depend on the ones before it, so the router must decide in one order that
does not depend on processing speed: the order in which leadflow *received* what made each
request decidable (the Kafka record timestamp of the input: the capture or activity that
made the lead an MQL, the status change that closed it), then event time. Live, that is
what a router deciding on arrival sees (a CRM webhook delivered hours late frees its rep
when it is read, not when it happened, as the simulator's truth has it); replayed, records
keep their timestamps (``leadflow replay`` too), so a backlog or a failover decides the same.
Without delivery delays it is event-time order.

Each inbound partition therefore sends *watermarks* onto the same topic, after the requests
its intake has already sent: "every routing request of this partition ordered at or before W
is out" (``watermark`` computes W). Record timestamps grow along a topic partition (the
order the broker received them), so the requests still to come from a partition are
ordered after the latest timestamp it has read. Because a watermark travels behind the
requests it covers, a request the router holds is safe to decide once every partition's
latest watermark has reached it (``Holding``). Ties go by event time, then releases first (a
release frees capacity before a lead of the same moment is routed), then event id.

A partition whose watermark stops coming (its owner died and nobody has taken it over yet)
stops holding the others back after ``stale_ms``; before every partition has reported once
the router waits at most that long from its (re)start. Silent by the routing topic's time
(the timestamps of the records the router has read) and by the router's own clock alike:
see ``Holding``. A request that arrives after the
router already decided past it (late: its partition's owner was stale, or a REASSIGN the
SLA timer found) is decided at once, and counted.

Pure: no Faust, no clock of its own; times are epoch milliseconds passed in.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streams import topics
from streams.core import lifecycle
from streams.core.contract import to_ms
from streams.core.handoff import TERMINAL, Send, routing_id

WATERMARK = "WATERMARK"
RELEASE = "RELEASE"
# A watermark that promises nothing yet (its sender has read nothing of a lagging input);
# it still tells the router that the partition has an owner.
UNKNOWN = 0

Request = dict[str, Any]
Key = tuple[int, int, int, str]
MARKETING = frozenset({"lead", "activity"})


def order_key(request: Mapping[str, Any]) -> Key:
    """When leadflow received what made the request decidable (its event time if unknown),
    its event time, releases before the rest, event id: the order of decisions."""
    at = to_ms(request["occurred_at"])
    received = request.get("received_at")
    return (
        at if received is None else to_ms(received),
        at,
        0 if request["action"] == RELEASE else 1,
        request["event_id"],
    )


def watermark(marks: Mapping[str, int], lagging: Iterable[str], wall_ms: int) -> int:
    """A partition's watermark: every routing request it sends from now on is ordered after it.

    ``marks``: per input topic, the latest record timestamp whose sends are flushed;
    ``lagging``: the input topics with records not yet flushed. Caught up, the partition is
    at the wall clock; otherwise just before the earliest mark of its lagging topics (their
    unread records were received no earlier), ``UNKNOWN`` while one of them has no mark.
    Never ahead of the wall clock."""
    lag = list(lagging)
    if not lag:
        return wall_ms
    times = [marks.get(topic) for topic in lag]
    if any(t is None for t in times):
        return UNKNOWN
    return max(UNKNOWN, min(min(t for t in times if t is not None) - 1, wall_ms))


def stamp(state: dict[str, Any], sends: list[Send], kind: str, occurred_ms: int,
          received_ms: int, correlation_id: str | None) -> list[Send]:
    """After the handoff of one accepted inbound event of a lead (``kind``: lead | activity |
    status | touch, received at ``received_ms``): ``sends`` with the RELEASE the handoff
    could not send (``release_owed``) and every routing request stamped ``received_at``.

    A ROUTE was decidable once the captures and activities dated up to its MQL had all been
    received; a RELEASE once its closing status had. Both can be processed long after (a
    capture read after later activities, a close read before the routing decision came
    back), so the lead keeps when its inputs were received (``state["received"]``) until
    they have served; a request is never stamped before the event being processed, or the
    partition's watermarks could already have passed it."""
    if state.get("historic"):
        return sends
    received = state.setdefault("received", {})
    actions = {r["action"] for s, _, r in sends if s is topics.ROUTING}
    if kind in MARKETING and (state.get("mql_at") is None or "ROUTE" in actions):
        received.setdefault("m", []).append([occurred_ms, received_ms])
    elif kind == "status" and (not state.get("released") or RELEASE in actions):
        received.setdefault("s", []).append([occurred_ms, received_ms])
    sends = sends + release_owed(state, correlation_id)
    for spec, _, record in sends:
        if spec is not topics.ROUTING:
            continue
        at = to_ms(record["occurred_at"])
        if record["action"] == RELEASE:
            inputs = [r for o, r in received.get("s", ()) if o == at]
        elif record["action"] == "ROUTE":
            inputs = [r for o, r in received.get("m", ()) if o <= at]
        else:
            inputs = []
        record["received_at"] = max([received_ms, *inputs])
    if state.get("mql_at") is not None:
        received.pop("m", None)  # routed (or never will be): served
    if state.get("released"):
        received.pop("s", None)
    if not received:
        del state["received"]
    return sends


def release_owed(state: dict[str, Any], correlation_id: str | None) -> list[Send]:
    """The RELEASE of a lead that closed before the router's decision about it came back.

    The handoff frees a rep's capacity when a routed lead reaches a terminal status. Read
    from a backlog, the status can come before the LeadRouted (the router holds requests
    until every partition has caught up with them), or even before the MQL is found (a
    lagging activity topic): the capacity was then never freed. The router knows the owner
    from its own table, so the request names none; dated when the lead closed, and ordered
    like every request. Call after any inbound event of the lead."""
    if (state.get("routed") or state.get("released") or state.get("historic")
            or state.get("mql_at") is None or not state.get("lifecycle")):
        return []
    fold = lifecycle.fold(state["lifecycle"])
    if fold.status not in TERMINAL or fold.closed_at is None:
        return []
    state["released"] = True  # the handoff must not send it again once routed
    lead_id, at = state["lead_id"], fold.closed_at
    return [(topics.ROUTING, lead_id, {
        "event_id": routing_id(lead_id, RELEASE, at), "lead_id": lead_id,
        "action": RELEASE, "occurred_at": at, "correlation_id": correlation_id,
    })]


class Progress:
    """What intake has flushed to the producer, per input topic and partition: the last
    offset and the latest record timestamp. Noted after each flush, so a watermark computed
    from it never passes a request still staged."""

    def __init__(self) -> None:
        self.offsets: dict[tuple[str, int], int] = {}  # (topic, partition) → last offset
        self.marks: dict[int, dict[str, int]] = {}  # partition → topic → latest timestamp
        self.on_flushed: Callable[[], None] | None = None  # called after each batch noted

    def flushed(self, done: Iterable[tuple[str, int, int, int | None]]) -> None:
        """(topic, partition, offset, record timestamp or None) of each record of a flushed
        batch, whatever became of it (accepted, repeated or dead-lettered)."""
        offsets, marks = self.offsets, self.marks
        for topic, partition, offset, received in done:
            offsets[(topic, partition)] = offset
            if received is not None:
                topic_marks = marks.setdefault(partition, {})
                if received > topic_marks.get(topic, -1):
                    topic_marks[topic] = received
        if self.on_flushed is not None:
            self.on_flushed()

    def done(self, partition: int, names: Iterable[str],
             committed: Mapping[Any, int | None]) -> dict[tuple[str, int], int]:
        """The last offset of each of ``names`` on ``partition`` whose sends are out: flushed
        here, or committed by anyone (Faust flushes the producer before it commits; after a
        rebalance the previous owner's commits say what it sent). ``committed``: the next
        offset to read per (topic, partition), as the consumer knows it. Without the commits,
        a partition this worker regains after another owner read it to the end would lag
        for ever: nothing is left for it to process."""
        out = {}
        for topic in names:
            tp = (topic, partition)
            mine = self.offsets.get(tp)
            theirs = committed.get(tp)
            if theirs is not None and (mine is None or theirs - 1 > mine):
                mine = theirs - 1
            if mine is not None:
                out[tp] = mine
        return out


class Holding:
    """The requests the router holds, and the watermarks that release them.

    ``partitions``: how many inbound partitions send watermarks (0 .. partitions - 1).
    ``now_ms``: how far the router has read the routing topic (its records' timestamps);
    ``wall_ms``: the router's own clock (default ``now_ms``). A partition is stale once it
    has been silent for ``stale_ms`` by both: a router that falls behind must not take the
    partitions whose watermarks it has yet to read for dead ones, and a router that restarts
    and reads its predecessor's records must not take the time nobody wrote for silence."""

    def __init__(self, partitions: int, stale_ms: int, now_ms: int,
                 wall_ms: int | None = None) -> None:
        self.partitions = partitions
        self.stale_ms = stale_ms
        # Start or restart: the grace before a partition that never reported is stale.
        self._since = (now_ms, now_ms if wall_ms is None else wall_ms)
        self._marks: dict[int, int] = {}  # partition → latest watermark
        self._seen: dict[int, tuple[int, int]] = {}  # partition → when its last one came
        self._heap: list[tuple[Key, Request]] = []
        self._held: set[str] = set()
        self.decided_to: Key | None = None  # the latest decision's key
        self.late = 0  # requests that came after a later one was decided

    def __len__(self) -> int:
        return len(self._heap)

    def restart(self, now_ms: int, wall_ms: int | None = None) -> None:
        """The router (re)starts: forget what it holds (the caller holds it again from its
        table) and give every partition ``stale_ms`` to report. Watermarks are kept: each
        was true when sent and stays true."""
        self._since = (now_ms, now_ms if wall_ms is None else wall_ms)
        self._heap.clear()
        self._held.clear()

    def watermark(self, partition: int, at_ms: int, now_ms: int,
                  wall_ms: int | None = None) -> None:
        if not 0 <= partition < self.partitions:
            return  # a partition count this router does not know: nothing to wait for
        if at_ms > self._marks.get(partition, UNKNOWN - 1):
            self._marks[partition] = at_ms  # a new owner may start behind its predecessor
        self._seen[partition] = (now_ms, now_ms if wall_ms is None else wall_ms)

    def _stale(self, partition: int, now_ms: int, wall_ms: int) -> bool:
        seen, since = self._seen.get(partition, self._since), self._since
        return (now_ms - max(seen[0], since[0]) > self.stale_ms
                and wall_ms - max(seen[1], since[1]) > self.stale_ms)

    def hold(self, request: Request) -> bool:
        """Hold ``request`` until its turn; False if it is held already."""
        event_id = request["event_id"]
        if event_id in self._held:
            return False
        key = order_key(request)
        if self.decided_to is not None and key < self.decided_to:
            self.late += 1
        self._held.add(event_id)
        heapq.heappush(self._heap, (key, request))
        return True

    def frontier(self, now_ms: int, wall_ms: int | None = None) -> int | None:
        """Requests ordered at or before this may be decided; None: none may. Stale partitions
        do not count; if every partition is stale, nothing holds (a very large frontier:
        requests keep coming but no watermark does, as from workers that send none)."""
        wall = now_ms if wall_ms is None else wall_ms
        marks: list[int] = []
        for p in range(self.partitions):
            if self._stale(p, now_ms, wall):
                continue  # silent too long: it stops holding the others back
            if p not in self._marks:
                return None  # not reported since the start, still within the grace
            marks.append(self._marks[p])
        return min(marks) if marks else 1 << 62

    def release(self, now_ms: int, wall_ms: int | None = None) -> list[Request]:
        """The held requests whose turn has come, in decision order."""
        frontier = self.frontier(now_ms, wall_ms)
        out: list[Request] = []
        heap = self._heap
        while heap and frontier is not None and heap[0][0][0] <= frontier:
            key, request = heapq.heappop(heap)
            self._held.discard(request["event_id"])
            if self.decided_to is None or key > self.decided_to:
                self.decided_to = key
            out.append(request)
        return out

    def status(self, now_ms: int, wall_ms: int | None = None) -> dict[str, Any]:
        """For /v1/stats: what is held, up to when it may go, each partition's watermark
        and how long ago (routing topic time) it came."""
        return {
            "held": len(self._heap),
            "frontier": self.frontier(now_ms, wall_ms),
            "late": self.late,
            "watermarks": {
                str(p): {"at": self._marks.get(p), "age_ms": now_ms - self._seen[p][0]}
                for p in sorted(self._seen)
            },
        }
