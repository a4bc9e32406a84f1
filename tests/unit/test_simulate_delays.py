"""Delivery delays in the simulator, and the truth of final verdicts and corrections."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import policies
from streams.settings import Settings
from streams.simulate import (
    DELAY_PROFILES,
    Scenario,
    corrections_of,
    generate,
    read_truth,
    write_truth,
)
from streams.simulate import verdicts as v
from streams.simulate.delays import Delays
from streams.simulate.verdicts import BREACHED, MET, Correction, Evidence, Judged

NOW = datetime(2026, 11, 22, 18, 0, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
REPO = Path(__file__).resolve().parents[2]
POLICIES = policies.load(Settings.load(env={}, toml_path=REPO / "leadflow.toml"))
SECOND, MINUTE, HOUR = 1000, 60_000, 3_600_000


def make(delays: str, seed: int = 42, **kw: object) -> Scenario:
    # settle_s=0: the truth as the pure core reaches it (a live worker's settle scales with
    # the compression: test_the_truth_allows_for_a_live_workers_settle).
    args: dict[str, object] = dict(leads=1500, days=7, now=NOW, bad_share=0.05, settle_s=0)
    args.update(kw)
    return generate(seed, policies=POLICIES, delays=delays, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def scenarios() -> dict[str, Scenario]:
    return {name: make(name) for name in ("none", "realistic", "heavy")}


def crm_delays(s: Scenario) -> list[int]:
    return [d.delivered_ms - d.occurred_ms for d in s.deliveries
            if d.bad_kind is None and d.channel == "crm"]


def shares(delays: list[int]) -> tuple[float, float, float]:
    """(within 10 s, 1 min to 30 min, an hour or more)."""
    n = len(delays)
    return (sum(d <= 10 * SECOND for d in delays) / n,
            sum(MINUTE <= d <= 30 * MINUTE for d in delays) / n,
            sum(d >= HOUR for d in delays) / n)


# --- the profiles --------------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "prompt", "minutes", "hours"), [
    ("realistic", 0.945, 0.05, 0.005),
    ("heavy", 0.78, 0.20, 0.02),
])
def test_crm_delays_have_the_profiles_shares(
    scenarios: dict[str, Scenario], profile: str, prompt: float, minutes: float, hours: float,
) -> None:
    delays = crm_delays(scenarios[profile])
    assert len(delays) > 3000
    got = shares(delays)
    assert got[0] == pytest.approx(prompt, abs=0.02)
    assert got[1] == pytest.approx(minutes, abs=0.02)
    assert got[2] == pytest.approx(hours, abs=max(0.004, hours / 2))
    bands = DELAY_PROFILES[profile].crm
    assert min(delays) >= bands[0].low_ms and max(delays) <= bands[-1].high_ms
    # Exactly, over many draws.
    d = Delays(profile, 1)
    many = [d.crm() for _ in range(200_000)]
    assert shares(many) == pytest.approx((prompt, minutes, hours), abs=0.003)
    # Log-uniform: the short ones are the common ones.
    assert statistics.median(delays) < 3 * SECOND


@pytest.mark.parametrize("profile", ["realistic", "heavy"])
def test_the_api_is_one_queue_about_a_second_behind(
    scenarios: dict[str, Scenario], profile: str,
) -> None:
    api = [d for d in scenarios[profile].deliveries if d.bad_kind is None and d.channel != "crm"]
    lags = [d.delivered_ms - d.occurred_ms for d in api]
    assert min(lags) >= 50 and max(lags) <= 2 * SECOND
    assert 300 < statistics.median(lags) < 700
    assert [d.occurred_ms for d in api] == sorted(d.occurred_ms for d in api)


def test_none_delivers_every_event_when_it_happens(scenarios: dict[str, Scenario]) -> None:
    s = scenarios["none"]
    good = [d for d in s.deliveries if d.bad_kind is None]
    assert all(d.delivered_ms == d.occurred_ms for d in good)
    assert [d.occurred_ms for d in good] == sorted(d.occurred_ms for d in good)
    assert not s.expected_corrections(exact_only=True)
    for t in s.truth.values():
        for clause in ("FIRST_TOUCH", "STATUS_UPDATE"):
            if clause in t.sla and t.exact:
                # Read when it happens: chased exactly when breached.
                assert t.sla[clause].overdue == (t.sla[clause].verdict == BREACHED)


def test_delays_move_deliveries_and_change_nothing_else(scenarios: dict[str, Scenario]) -> None:
    def content(s: Scenario) -> Counter[tuple[object, ...]]:
        return Counter((d.body, d.webhook_id, d.channel, d.expected, d.bad_kind, d.occurred_ms)
                       for d in s.deliveries if d.bad_kind != "duplicate")

    base = scenarios["none"]
    for profile in ("realistic", "heavy"):
        s = scenarios[profile]
        # Same routing here (no rep was full when a late close would have freed them)...
        assert {k: t.owner for k, t in s.truth.items()} == {
            k: t.owner for k, t in base.truth.items()}
        # ...so the same events, bodies and ids, only delivered at other times.
        assert content(s) == content(base)
        assert [d.delivered_ms for d in s.deliveries] != [d.delivered_ms for d in base.deliveries]


def test_delays_are_event_time_and_scale_with_the_clock() -> None:
    fast = make("heavy", 3, leads=200, wall_seconds=60)
    slow = make("heavy", 3, leads=200, wall_seconds=600)
    asap = make("heavy", 3, leads=200, wall_seconds=0)
    assert [d.delivered_ms for d in fast.deliveries] == [d.delivered_ms for d in slow.deliveries]
    assert [d.delivered_ms for d in fast.deliveries] == [d.delivered_ms for d in asap.deliveries]
    late = max(fast.deliveries, key=lambda d: d.delivered_ms - (d.occurred_ms or 0))
    assert late.delivered_ms - late.occurred_ms > HOUR
    for a, b in zip(fast.deliveries, slow.deliveries, strict=True):
        assert b.due_s == pytest.approx(10 * a.due_s)
    assert fast.truth == slow.truth == asap.truth


def test_the_truth_allows_for_a_live_workers_settle() -> None:
    # Three days in 60 s: the worker's 3 s of settle are 3.6 h of event time in which an
    # hours-late touch still counts for the final verdict instead of correcting it.
    # (Seed 7: 2 corrections strict, 1 settled, since incomplete leads are handed over too.)
    strict = make("heavy", 7, leads=300, days=3, wall_seconds=60, bad_share=0)
    settled = make("heavy", 7, leads=300, days=3, wall_seconds=60, bad_share=0, settle_s=3)
    assert len(settled.expected_corrections()) < len(strict.expected_corrections())
    backlog = make("heavy", 7, leads=300, days=3, wall_seconds=0, bad_share=0, settle_s=3)
    assert backlog.expected_corrections() == strict.expected_corrections()  # no wall clock


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="delay profile"):
        make("sometimes", leads=10)


def test_bad_input_keeps_its_meaning_under_heavy_delays(scenarios: dict[str, Scenario]) -> None:
    s = scenarios["heavy"]
    bad = Counter(d.bad_kind for d in s.deliveries if d.bad_kind)
    assert abs(sum(bad.values()) / len(s.deliveries) - 0.05) < 0.01
    first: dict[tuple[bytes, str], int] = {}
    for i, d in enumerate(s.deliveries):
        if d.bad_kind == "duplicate":
            # A resend never overtakes what it repeats, wherever that finally lands.
            assert (d.body, d.webhook_id) in first
        elif d.expected == "OK":
            first.setdefault((d.body, d.webhook_id), i)
    held = [d for d in s.deliveries if d.bad_kind == "out_of_order"]
    assert held
    for d in held:
        successor = [e for e in s.deliveries if e.lead_id == d.lead_id and e.channel == "crm"
                     and e.bad_kind is None and b"status" in e.body
                     and e.occurred_ms > d.occurred_ms]
        assert successor and d.delivered_ms > min(e.delivered_ms for e in successor)


# --- the truth: final verdicts, corrections, overdue notices ------------------------------------

L, G = 3_600_000, 60_000
EVERY = 48 * HOUR
WINDOW = 4 * HOUR
MQL = 1_795_000_000_000
D = MQL + WINDOW  # the first-touch deadline
CONTRACT = SimpleNamespace(
    first_touch_ms={"STANDARD": WINDOW}, business_hours=False, grace_ms=G,
    status_update_every_ms=EVERY, require_disqualification_reason=True, max_lateness_ms=L,
)


def judge(touches: list[Evidence] = (), changes: list[Evidence] = (),  # type: ignore[assignment]
          contract: object = CONTRACT) -> dict[str, Judged]:
    return v.judge(contract, mql_at=MQL, tier="STANDARD", region=None, owner="rep-amy",
                   touches=touches, changes=changes)


def touch(at: int, delivered: int) -> Evidence:
    return Evidence(at, delivered)


def change(at: int, to: str, delivered: int | None = None, explained: bool = True) -> Evidence:
    return Evidence(at, at if delivered is None else delivered, to=to, explained=explained)


def test_a_touch_in_time_read_within_the_lateness_is_met_for_good() -> None:
    prompt = judge([touch(D - 10 * MINUTE, D - 10 * MINUTE + 2 * SECOND)])["FIRST_TOUCH"]
    assert prompt == Judged(MET, D - 10 * MINUTE + 2 * SECOND, overdue=False)
    # Read after deadline + grace but within the lateness: the rep is chased, then MET.
    late = judge([touch(D - 10 * MINUTE, D + G + L)])["FIRST_TOUCH"]
    assert late == Judged(MET, D + G + L, overdue=True, correction=None)
    # Chased only once deadline + grace has passed with nothing read.
    assert not judge([touch(D - MINUTE, D + G)])["FIRST_TOUCH"].overdue
    assert judge([touch(D - MINUTE, D + G + 1)])["FIRST_TOUCH"].overdue
    # The first one read decides when it is known, not the first one made.
    both = judge([touch(MQL + MINUTE, MQL + 5 * HOUR), touch(MQL + HOUR, MQL + HOUR + 900)])
    assert both["FIRST_TOUCH"] == Judged(MET, MQL + HOUR + 900)


def test_a_touch_in_time_read_after_the_lateness_corrects_a_breach() -> None:
    at, delivered = D - 10 * MINUTE, D + G + L + 5 * SECOND
    got = judge([touch(at, delivered)])["FIRST_TOUCH"]
    assert got == Judged(BREACHED, D + G + L + 1, overdue=True,
                         correction=Correction(MET, delivered, "crm", delivered - at))
    assert v.as_of({"FIRST_TOUCH": got}, D + G + L) == {"FIRST_TOUCH": "PENDING"}
    assert v.latest({"FIRST_TOUCH": got}, delivered - 1) == {"FIRST_TOUCH": BREACHED}
    assert v.latest({"FIRST_TOUCH": got}, delivered) == {"FIRST_TOUCH": MET}
    # A touch after the deadline, or before the MQL, never meets it, however it is read.
    for wrong in (touch(D + 1, D + 2), touch(MQL - 1, MQL)):
        assert judge([wrong])["FIRST_TOUCH"] == Judged(BREACHED, D + G + L + 1, overdue=True)


def test_status_chain_read_within_the_lateness_is_met() -> None:
    echo = change(MQL + MINUTE, "MQL")
    deadline = MQL + MINUTE + EVERY
    prompt = judge(changes=[echo, change(MQL + 40 * HOUR, "DISQUALIFIED")])
    assert prompt["STATUS_UPDATE"] == Judged(MET, MQL + 40 * HOUR)
    assert prompt["DISQUALIFICATION_REASON"] == Judged(MET, MQL + 40 * HOUR)
    # A link read late (after its deadline + grace, within the lateness) still holds.
    working = change(MQL + 47 * HOUR, "WORKING", deadline + G + L)
    got = judge(changes=[echo, working, change(MQL + 90 * HOUR, "DISQUALIFIED", MQL + 91 * HOUR,
                                               explained=False)])
    assert got["STATUS_UPDATE"] == Judged(MET, MQL + 91 * HOUR, overdue=True)
    assert got["DISQUALIFICATION_REASON"] == Judged(BREACHED, MQL + 91 * HOUR)
    within_grace = change(MQL + 47 * HOUR, "WORKING", deadline + G)
    got = judge(changes=[echo, within_grace, change(MQL + 90 * HOUR, "DISQUALIFIED")])
    assert got["STATUS_UPDATE"] == Judged(MET, MQL + 90 * HOUR, overdue=False)


def test_status_chain_read_after_the_lateness_corrects_a_breach() -> None:
    echo = change(MQL + MINUTE, "MQL")
    deadline = MQL + MINUTE + EVERY
    # The link that keeps the chain alive is read after deadline + grace + lateness.
    working = change(MQL + 47 * HOUR, "WORKING", MQL + 60 * HOUR)
    got = judge(changes=[echo, working, change(MQL + 50 * HOUR, "DISQUALIFIED")])
    assert got["STATUS_UPDATE"] == Judged(
        BREACHED, deadline + G + L + 1, overdue=True,
        correction=Correction(MET, MQL + 60 * HOUR, "crm", 13 * HOUR))
    # Known when the last update it needs is read; here that is the closing one.
    got = judge(changes=[echo, working, change(MQL + 70 * HOUR, "CLOSED_LOST")])
    assert got["STATUS_UPDATE"].correction == Correction(MET, MQL + 70 * HOUR, "crm", 0)
    # The closing status itself read too late.
    closing = change(MQL + 40 * HOUR, "CLOSED_WON", MQL + 55 * HOUR)
    got = judge(changes=[echo, closing])
    assert got["STATUS_UPDATE"] == Judged(
        BREACHED, deadline + G + L + 1, overdue=True,
        correction=Correction(MET, MQL + 55 * HOUR, "crm", 15 * HOUR))
    # A real gap stays a breach, however the updates arrive.
    gap = judge(changes=[echo, change(MQL + 60 * HOUR, "DISQUALIFIED", MQL + 61 * HOUR)])
    assert gap["STATUS_UPDATE"] == Judged(BREACHED, deadline + G + L + 1, overdue=True)
    nothing = judge()
    assert nothing["STATUS_UPDATE"] == Judged(BREACHED, MQL + EVERY + G + L + 1, overdue=True)


def test_late_links_read_in_a_later_step_still_count() -> None:
    # The echo is read only after the first deadline + grace + lateness, but an update dated
    # later (moving the deadline further) was read in time, so the walk never needed it.
    echo = change(MQL + MINUTE, "MQL", MQL + 50 * HOUR)
    working = change(MQL + 30 * HOUR, "WORKING", MQL + 30 * HOUR + SECOND)
    got = judge(changes=[echo, working, change(MQL + 70 * HOUR, "SQL"),
                         change(MQL + 100 * HOUR, "CLOSED_WON")])
    assert got["STATUS_UPDATE"] == Judged(MET, MQL + 100 * HOUR)


def test_lateness_defaults_to_an_hour() -> None:
    bare = SimpleNamespace(**{k: val for k, val in vars(CONTRACT).items()
                              if k != "max_lateness_ms"})
    assert v.max_lateness(bare) == v.DEFAULT_LATENESS_MS == HOUR
    assert judge(contract=bare)["FIRST_TOUCH"].known_at == D + G + HOUR + 1


_STATUSES = ("MQL", "WORKING", "SAL", "SQL", "NO_RESPONSE", "DISQUALIFIED", "CLOSED_WON",
             "CLOSED_LOST")
_TIMES = st.integers(-2 * 3600, 120 * 3600).map(lambda s: MQL + s * 1000)


def _facts(delay: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[list[Evidence], ...]]:
    touches = st.lists(st.tuples(_TIMES, delay), max_size=4).map(
        lambda ts: [Evidence(at, at + d) for at, d in ts])
    changes = st.lists(st.tuples(_TIMES, st.sampled_from(_STATUSES), st.booleans(), delay),
                       max_size=6).map(
        lambda cs: [Evidence(at, at + d, to=to, explained=ok) for at, to, ok, d in cs])
    return st.tuples(touches, changes)


def _event_time(touches: list[Evidence], changes: list[Evidence]) -> dict[str, Judged]:
    return v.sales(CONTRACT, mql_at=MQL, tier="STANDARD", region=None, owner="rep-amy",
                   touches=[t.at for t in touches],
                   changes=[(c.at, c.to, c.explained) for c in changes])


@settings(max_examples=400, deadline=None)
@given(facts=_facts(st.integers(0, L)))
def test_delays_within_the_lateness_change_no_final_verdict(
    facts: tuple[list[Evidence], list[Evidence]],
) -> None:
    touches, changes = facts
    final, event = judge(touches, changes), _event_time(touches, changes)
    assert {c: j.verdict for c, j in final.items()} == {c: j.verdict for c, j in event.items()}
    assert not v.corrections(final)


@settings(max_examples=400, deadline=None)
@given(facts=_facts(st.just(0)))
def test_without_delay_the_truth_is_the_event_time_one_an_hour_later_for_breaches(
    facts: tuple[list[Evidence], list[Evidence]],
) -> None:
    touches, changes = facts
    final, event = judge(touches, changes), _event_time(touches, changes)
    for clause, j in final.items():
        e = event[clause]
        assert j.verdict == e.verdict and j.correction is None
        late = L if j.verdict == BREACHED and clause in ("FIRST_TOUCH", "STATUS_UPDATE") else 0
        assert j.known_at == e.known_at + late
        if clause in ("FIRST_TOUCH", "STATUS_UPDATE"):
            assert j.overdue == (j.verdict == BREACHED)


@settings(max_examples=600, deadline=None)
@given(facts=_facts(st.one_of(st.integers(0, 20 * SECOND), st.integers(0, 30 * HOUR))),
       now=_TIMES)
def test_any_delays_only_ever_correct_a_breach_to_what_event_time_says(
    facts: tuple[list[Evidence], list[Evidence]], now: int,
) -> None:
    touches, changes = facts
    final, event = judge(touches, changes), _event_time(touches, changes)
    for clause, j in final.items():
        e = event[clause]
        if j.verdict == MET:
            # Evidence read never makes a breach where event time has none, nor the reverse.
            assert e.verdict == MET and j.correction is None
        c = j.correction
        if c is not None:
            assert j.verdict == BREACHED and e.verdict == MET and c.verdict == MET
            assert c.known_at > j.known_at and c.late_source == "crm" and c.late_by_ms >= 0
            if clause == "FIRST_TOUCH":
                assert c.late_by_ms > G + L
        if j.verdict == BREACHED and clause in ("FIRST_TOUCH", "STATUS_UPDATE"):
            assert j.overdue  # chased before judged
            # Corrected exactly when event time says MET.
            assert (c is not None) == (e.verdict == MET)
    in_force = v.latest(final, now)
    assert all(in_force[c] in (v.PENDING, final[c].verdict, MET) for c in final)
    assert v.latest(final, None) == {c: e.verdict for c, e in event.items()}


# --- the truth in the scenario and on disk ------------------------------------------------------


def test_scenarios_hold_corrections_and_the_truth_file_carries_them(
    scenarios: dict[str, Scenario], tmp_path: Path,
) -> None:
    s = scenarios["heavy"]
    corrections = s.expected_corrections()
    assert corrections and set(corrections.values()) == {MET}
    assert s.max_lateness_ms == v.max_lateness(POLICIES.contract)
    for (lead_id, clause), verdict in corrections.items():
        j = s.truth[lead_id].sla[clause]
        assert j.verdict == BREACHED and j.correction is not None
        assert s.truth[lead_id].verdicts_final[clause] == BREACHED
        assert s.expected_verdicts(final=True, corrected=True)[(lead_id, clause)] == verdict
    for t in s.truth.values():
        assert v.as_of(t.sla, NOW_MS) == t.verdicts and v.as_of(t.sla, None) == t.verdicts_final
    path = write_truth(s, tmp_path / "truth.jsonl")
    head, leads = read_truth(path)
    assert head["delays"] == "heavy"
    assert head["sla"]["max_lateness_ms"] == s.max_lateness_ms
    assert sum(head["sla"]["corrections"].values()) == len(corrections)
    assert head["sla"]["overdue"]["FIRST_TOUCH"] >= head["sla"]["verdicts_final"][
        "FIRST_TOUCH"]["BREACHED"]
    assert corrections_of(leads) == corrections
    assert corrections_of(leads, exact_only=True) == s.expected_corrections(exact_only=True)
    row = next(r for r in leads if (r["lead_id"], "FIRST_TOUCH") in corrections)
    sla = row["sla"]["FIRST_TOUCH"]
    assert set(sla) == {"verdict", "known_at", "overdue", "correction"}
    assert set(sla["correction"]) == {"verdict", "known_at", "late_source", "late_by_ms"}
    assert sla["correction"]["late_by_ms"] > L


def test_late_evidence_lands_after_now_and_stays_pending_until_read() -> None:
    # Retries hours late, near the end of the window: some arrive after ``now``.
    s = make("heavy", 8, leads=3000, days=3)
    after = [d for d in s.deliveries if d.delivered_ms > NOW_MS]
    assert after and all(d.bad_kind in (None, "duplicate", "out_of_order") for d in after)
    assert max(d.due_s for d in s.deliveries) > s.wall_seconds
    rng = random.Random(0)
    for t in rng.sample(list(s.truth.values()), 300):
        for clause, j in t.sla.items():
            assert t.verdicts[clause] == (j.verdict if j.known_at <= NOW_MS else v.PENDING)
