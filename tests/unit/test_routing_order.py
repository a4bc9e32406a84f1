"""Routing in event-time order across partitions: watermarks, hold and release."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streams import topics
from streams.core import lifecycle
from streams.core.routing_order import (
    RELEASE,
    UNKNOWN,
    Holding,
    Progress,
    order_key,
    release_owed,
    stamp,
    watermark,
)

STALE = 10_000


def request(at: int, n: int | str, action: str = "ROUTE", **more: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "lead_id": f"l{n}", "action": action, "occurred_at": at,
            **more}


def ids(requests: list[dict[str, Any]]) -> list[str]:
    return [r["event_id"] for r in requests]


# --- the watermark a partition sends -------------------------------------------------------


def test_a_caught_up_partition_is_at_the_wall_clock() -> None:
    assert watermark({"a": 5}, [], wall_ms=100) == 100
    assert watermark({}, [], wall_ms=100) == 100


def test_a_lagging_partition_is_just_before_its_earliest_lagging_topic() -> None:
    marks = {"a": 50, "b": 70, "c": 10}
    assert watermark(marks, ["a", "b"], wall_ms=100) == 49  # c is caught up: not counted
    assert watermark(marks, ["b"], wall_ms=100) == 69


def test_a_lagging_topic_never_read_promises_nothing() -> None:
    assert watermark({"a": 50}, ["a", "b"], wall_ms=100) == UNKNOWN


def test_a_watermark_is_never_ahead_of_the_wall_clock() -> None:
    assert watermark({"a": 500}, ["a"], wall_ms=100) == 100


def test_progress_keeps_the_last_offset_and_latest_event_time_per_topic() -> None:
    progress = Progress()
    progress.flushed([("a", 0, 5, 100), ("a", 0, 6, 90), ("b", 1, 3, None), ("a", 1, 2, 7)])
    assert progress.offsets == {("a", 0): 6, ("b", 1): 3, ("a", 1): 2}
    assert progress.marks == {0: {"a": 100}, 1: {"a": 7}}



def test_what_is_out_is_what_was_flushed_here_or_committed_by_anyone() -> None:
    progress = Progress()
    progress.flushed([("a", 0, 5, 100), ("b", 0, 3, 90)])
    committed = {("a", 0): 4, ("b", 0): 10, ("c", 0): 7, ("a", 1): 50}
    assert progress.done(0, ["a", "b", "c", "d"], committed) == {
        ("a", 0): 5, ("b", 0): 9, ("c", 0): 6}


# --- hold and release ----------------------------------------------------------------------


def test_a_request_waits_for_every_partition_to_pass_it() -> None:
    h = Holding(2, STALE, now_ms=0)
    h.hold(request(10, 1))
    h.watermark(0, 20, now_ms=1)
    assert h.release(now_ms=1) == []  # partition 1 has not reported
    h.watermark(1, 9, now_ms=2)
    assert h.release(now_ms=2) == []  # partition 1 may still send something dated 9..10
    h.watermark(1, 10, now_ms=3)
    assert ids(h.release(now_ms=3)) == ["e1"]
    assert len(h) == 0


def test_released_in_event_time_order_whatever_the_arrival_order() -> None:
    h = Holding(1, STALE, now_ms=0)
    for r in (request(30, 3), request(10, 1), request(20, 2)):
        h.hold(r)
    h.watermark(0, 25, now_ms=1)
    assert ids(h.release(now_ms=1)) == ["e1", "e2"]
    h.watermark(0, 30, now_ms=2)
    assert ids(h.release(now_ms=2)) == ["e3"]


def test_ties_go_to_a_release_first_then_by_event_id() -> None:
    h = Holding(1, STALE, now_ms=0)
    h.hold(request(10, "b"))
    h.hold(request(10, "c", RELEASE))
    h.hold(request(10, "a"))
    h.watermark(0, 10, now_ms=1)
    assert ids(h.release(now_ms=1)) == ["ec", "ea", "eb"]


def test_the_order_is_when_inputs_were_received_then_event_time() -> None:
    """A close delivered hours late frees its rep when it is read, not when it happened."""
    h = Holding(1, STALE, now_ms=0)
    h.hold(request(10, "late-close", RELEASE, received_at=500))
    h.hold(request(300, "route", received_at=301))
    h.hold(request(200, "same-ms", received_at=301))
    h.hold(request(100, "unstamped"))
    h.watermark(0, 400, now_ms=1)
    assert ids(h.release(now_ms=1)) == ["eunstamped", "esame-ms", "eroute"]
    h.watermark(0, 500, now_ms=2)
    assert ids(h.release(now_ms=2)) == ["elate-close"]


def test_a_request_held_twice_is_decided_once() -> None:
    h = Holding(1, STALE, now_ms=0)
    assert h.hold(request(10, 1))
    assert not h.hold(request(10, 1))
    h.watermark(0, 10, now_ms=1)
    assert ids(h.release(now_ms=1)) == ["e1"]


def test_a_watermark_never_goes_back() -> None:
    """A new owner starts behind its predecessor; what the old one promised stays true."""
    h = Holding(1, STALE, now_ms=0)
    h.hold(request(10, 1))
    h.watermark(0, 10, now_ms=1)
    h.watermark(0, UNKNOWN, now_ms=2)
    assert ids(h.release(now_ms=2)) == ["e1"]


def test_an_unknown_watermark_holds_but_keeps_the_partition_alive() -> None:
    h = Holding(2, STALE, now_ms=0)
    h.hold(request(10, 1))
    h.watermark(0, 100, now_ms=0)
    for now in range(0, 3 * STALE, 1000):
        h.watermark(0, 100, now_ms=now)
        h.watermark(1, UNKNOWN, now_ms=now)
        assert h.release(now_ms=now) == []


def test_a_stale_partition_stops_holding_the_others_back() -> None:
    h = Holding(2, STALE, now_ms=0)
    h.watermark(0, 5, now_ms=0)
    h.watermark(1, 5, now_ms=0)
    h.hold(request(10, 1))
    h.watermark(0, 100, now_ms=STALE)
    assert h.release(now_ms=STALE) == []  # partition 1 reported STALE ms ago: still alive
    h.watermark(0, 100, now_ms=STALE + 1)
    assert ids(h.release(now_ms=STALE + 1)) == ["e1"]
    # Its owner comes back behind: what it sends now is late, decided at once and counted.
    h.watermark(1, 5, now_ms=STALE + 2)
    h.hold(request(8, 2))
    h.watermark(1, 8, now_ms=STALE + 3)
    assert ids(h.release(now_ms=STALE + 3)) == ["e2"]
    assert h.late == 1


def test_a_router_that_falls_behind_does_not_take_live_partitions_for_dead_ones() -> None:
    """Stale is by the routing topic's time too: read an hour late, partition 1's watermarks
    are still to come right behind the requests being read."""
    h = Holding(2, STALE, now_ms=0, wall_ms=0)
    h.watermark(0, 5, now_ms=0, wall_ms=0)
    h.watermark(1, 5, now_ms=0, wall_ms=0)
    h.hold(request(10, 1))
    h.watermark(0, 100, now_ms=200, wall_ms=3_600_000)
    assert h.release(now_ms=200, wall_ms=3_600_000) == []
    h.watermark(1, 100, now_ms=200, wall_ms=3_600_001)
    assert ids(h.release(now_ms=200, wall_ms=3_600_001)) == ["e1"]


def test_a_restarted_router_does_not_take_its_downtime_for_silence() -> None:
    """Its predecessor's last watermarks, read just now, are followed in the topic by the
    new owners' records a restart later: nobody is stale until the router's own clock says
    so as well."""
    h = Holding(2, STALE, now_ms=0, wall_ms=50_000)
    h.watermark(0, 5, now_ms=0, wall_ms=50_000)
    h.watermark(1, 5, now_ms=0, wall_ms=50_000)
    h.hold(request(10, 1))
    h.watermark(0, 100, now_ms=3 * STALE, wall_ms=50_001)  # the new owner of partition 0
    assert h.release(now_ms=3 * STALE, wall_ms=50_001) == []
    assert ids(h.release(now_ms=3 * STALE, wall_ms=50_002 + STALE)) == ["e1"]  # 1 is gone


def test_a_partition_that_never_reports_holds_for_the_grace_after_a_start() -> None:
    h = Holding(2, STALE, now_ms=1000)
    h.hold(request(10, 1))
    h.watermark(0, 100, now_ms=1000 + STALE)
    assert h.release(now_ms=1000 + STALE) == []
    assert ids(h.release(now_ms=1001 + STALE)) == ["e1"]


def test_a_restart_forgets_what_is_held_and_gives_partitions_a_new_grace() -> None:
    h = Holding(2, STALE, now_ms=0)
    h.watermark(0, 5, now_ms=0)
    h.watermark(1, 5, now_ms=0)
    h.hold(request(10, 1))
    h.restart(now_ms=5 * STALE)  # the router was paused: nobody is stale for a grace
    assert len(h) == 0
    h.hold(request(10, 1))  # held again from the table
    h.watermark(0, 100, now_ms=5 * STALE + 1)
    assert h.release(now_ms=5 * STALE + 1) == []
    h.watermark(1, 100, now_ms=5 * STALE + 2)
    assert ids(h.release(now_ms=5 * STALE + 2)) == ["e1"]


def test_every_partition_stale_releases_everything() -> None:
    h = Holding(2, STALE, now_ms=0)
    h.hold(request(10**12, 1))
    assert ids(h.release(now_ms=STALE + 1)) == ["e1"]


def test_watermarks_of_unknown_partitions_are_ignored() -> None:
    h = Holding(1, STALE, now_ms=0)
    h.watermark(5, 100, now_ms=0)
    h.hold(request(10, 1))
    assert h.release(now_ms=1) == []
    assert h.status(now_ms=1) == {"held": 1, "frontier": None, "late": 0, "watermarks": {}}


# --- the property: any interleaving gives the event-time order ------------------------------


@st.composite
def partition_streams(draw: st.DrawFn) -> list[list[tuple[str, int, int]]]:
    """Per partition, what its intake sends in order: requests (receipt time, id) and
    watermarks (each promising that no later request of the partition is ordered at or
    before it). Times within a partition may go backwards (a capture read after later
    activities) as long as no watermark is passed."""
    n = draw(st.integers(1, 4))
    counter = iter(range(10**6))
    out = []
    for p in range(n):
        items: list[tuple[str, int, int]] = []
        floor = 0  # the latest watermark sent: every later request is after it
        for _ in range(draw(st.integers(0, 12))):
            if draw(st.booleans()):
                at = draw(st.integers(floor + 1, floor + 50))
                items.append(("request", at, next(counter)))
            else:
                floor = draw(st.integers(floor, floor + 40))
                items.append(("watermark", floor, p))
        items.append(("watermark", 10**9, p))  # the partition is done
        out.append(items)
    return out


@given(partition_streams(), st.data())
def test_any_arrival_interleaving_decides_in_event_time_order(
    streams: list[list[tuple[str, int, int]]], data: st.DataObject
) -> None:
    cursors = [0] * len(streams)
    arrivals = []
    while any(c < len(s) for c, s in zip(cursors, streams, strict=True)):
        live = [p for p, s in enumerate(streams) if cursors[p] < len(s)]
        p = data.draw(st.sampled_from(live))
        arrivals.append(streams[p][cursors[p]])
        cursors[p] += 1
    h = Holding(len(streams), STALE, now_ms=0)
    decided: list[dict[str, Any]] = []
    for kind, at, n in arrivals:
        if kind == "request":  # ordered by when it was received, whenever it happened
            h.hold(request(data.draw(st.integers(0, 10**6)), n,
                           data.draw(st.sampled_from(["ROUTE", RELEASE])), received_at=at))
        else:
            h.watermark(n, at, now_ms=0)
        if data.draw(st.booleans()):  # the router releases after some batches, not all
            decided += h.release(now_ms=0)
    decided += h.release(now_ms=0)
    assert len(h) == 0
    assert sorted(ids(decided)) == sorted(f"e{n}" for kind, _, n in arrivals if kind == "request")
    assert decided == sorted(decided, key=order_key)
    assert h.late == 0


# --- the release the handoff could not send ---------------------------------------------------


def lead_state(**changes: Any) -> dict[str, Any]:
    state: dict[str, Any] = {"lead_id": "l1", "mql_at": 100, "lifecycle": lifecycle.new_state()}
    for at, to in [(100, "MQL"), (200, "SAL"), (300, "DISQUALIFIED")]:
        change = lifecycle.new_change({
            "event_id": f"s{at}", "occurred_at": at, "new_status": to,
            "previous_status": None, "reason": "BUDGET", "notes": "n",
        }) if to != "MQL" else lifecycle.system_change("mql", at, "MQL")
        state["lifecycle"], _ = lifecycle.apply(state["lifecycle"], change)
    state.update(changes)
    return state


def test_a_lead_closed_before_its_routing_came_back_releases_its_rep() -> None:
    state = lead_state()
    [(spec, key, record)] = release_owed(state, "c1")
    assert spec is topics.ROUTING and key == "l1"
    assert record["action"] == RELEASE and record["occurred_at"] == 300
    assert state["released"] is True
    assert release_owed(state, "c1") == []  # once


def test_no_owed_release_when_the_handoff_sends_it_or_there_is_nothing_to_free() -> None:
    assert release_owed(lead_state(routed={"owner": "r1"}), None) == []
    assert release_owed(lead_state(mql_at=None), None) == []
    assert release_owed(lead_state(historic=True), None) == []
    open_lead = lead_state()
    open_lead["lifecycle"]["changes"] = open_lead["lifecycle"]["changes"][:2]
    assert release_owed(open_lead, None) == []


# --- when a request became decidable -----------------------------------------------------


def routing(sends: list[Any]) -> list[dict[str, Any]]:
    return [r for s, _, r in sends if s is topics.ROUTING]


def test_a_route_is_stamped_when_the_last_input_up_to_its_mql_was_received() -> None:
    state: dict[str, Any] = {"lead_id": "l1"}
    assert stamp(state, [], "activity", 200, 5_000, None) == []  # read first, happened later
    assert state["received"] == {"m": [[200, 5_000]]}
    state["mql_at"] = 150
    route = {"event_id": "r", "action": "ROUTE", "occurred_at": 150}
    # The capture, received before the activity but read after it, makes the MQL at 150.
    sends = stamp(state, [(topics.ROUTING, "l1", route), (topics.SCORED, "l1", {})],
                  "lead", 100, 4_000, None)
    assert route["received_at"] == 4_000  # the activity dated 200 is not needed for it
    assert len(sends) == 2 and "received" not in state  # served


def test_a_route_is_never_stamped_before_the_event_that_sends_it() -> None:
    state: dict[str, Any] = {"lead_id": "l1", "received": {"m": [[100, 9_000]]}}
    state["mql_at"] = 100
    route = {"event_id": "r", "action": "ROUTE", "occurred_at": 100}
    stamp(state, [(topics.ROUTING, "l1", route)], "activity", 300, 9_500, None)
    assert route["received_at"] == 9_500


def test_a_close_read_before_the_mql_is_released_when_it_was_received() -> None:
    state = lead_state(mql_at=None)
    assert stamp(state, [], "status", 300, 7_000, None) == []  # no MQL yet: nothing to free
    state["mql_at"] = 100
    route = {"event_id": "r", "action": "ROUTE", "occurred_at": 100}
    sends = stamp(state, [(topics.ROUTING, "l1", route)], "activity", 100, 6_000, "c")
    release = routing(sends)[1]
    assert release["action"] == RELEASE and release["occurred_at"] == 300
    assert (route["received_at"], release["received_at"]) == (6_000, 7_000)
    assert "received" not in state


def test_other_requests_are_stamped_when_their_event_was_received() -> None:
    state: dict[str, Any] = {"lead_id": "l1", "mql_at": 1, "routed": {"owner": "r1"}}
    reassign = {"event_id": "x", "action": "REASSIGN", "occurred_at": 50}
    stamp(state, [(topics.ROUTING, "l1", reassign)], "touch", 40, 3_000, None)
    assert reassign["received_at"] == 3_000


def test_imported_history_is_never_stamped() -> None:
    state: dict[str, Any] = {"lead_id": "l1", "historic": True}
    assert stamp(state, [], "lead", 1, 2, None) == [] and "received" not in state
