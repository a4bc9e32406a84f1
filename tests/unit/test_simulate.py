"""The simulator: deterministic, realistic, honest about what it expects, and its senders."""

from __future__ import annotations

import json
import random
import statistics
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook

from streams import policies, topics
from streams.broker import EmbeddedBroker
from streams.codec import Codec
from streams.core import contract, features, handoff, lifecycle, payloads, routing, trace
from streams.core.contract import epoch_ms
from streams.errors import ErrorCode, LeadflowError
from streams.registry import FileRegistry
from streams.settings import Settings
from streams.simulate import (
    BAD_KINDS,
    DUPLICATE,
    KAFKA_ONLY,
    LEGAL_NEXT,
    OK,
    Delivery,
    Scenario,
    generate,
    kafka_plan,
    read_truth,
    send_http,
    send_kafka,
    verdicts_of,
    write_truth,
)
from streams.simulate import verdicts as reference
from streams.simulate.bad import allocate
from streams.simulate.funnel import uuid4
from streams.simulate.handover import activity_type, lead_record
from streams.simulate.kafka_sender import UNKNOWN_SCHEMA_ID, encode_plan
from streams.simulate.staff import DEFAULT_HABITS

NOW = datetime(2026, 11, 22, 18, 0, 0, tzinfo=UTC)
NOW_MS = epoch_ms(NOW)
REPO = Path(__file__).resolve().parents[2]
# The repository's configuration, whatever the working directory or environment.
POLICIES = policies.load(Settings.load(env={}, toml_path=REPO / "leadflow.toml"))
SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLWxlYWRmbG93LXRlc3Rz"
SKEW = timedelta(minutes=5)
CODES = {c.value for c in ErrorCode} | {OK, DUPLICATE}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    # settle_s=0: the pure core replays it here, with no wall-time settle of a live worker.
    return generate(42, leads=1500, days=7, now=NOW, bad_share=0.05, policies=POLICIES,
                    settle_s=0)


def api_verdict(d: Delivery, observed_at: datetime = NOW) -> str:
    """What the HTTP API decides for one body (signature aside): "OK" or an error code."""
    try:
        try:
            doc = json.loads(d.body)
        except ValueError:
            return ErrorCode.BAD_ENCODING.value
        if d.channel == "crm":
            kind, record = payloads.crm_webhook(doc, webhook_id=d.webhook_id, correlation_id="t")
        elif d.channel == "lead":
            kind, record = "lead", payloads.lead_from_json(doc, correlation_id="t")
        else:
            kind, record = "activity", payloads.activity_from_json(doc, correlation_id="t")
        contract.validate(kind, record, observed_at=observed_at, max_skew=SKEW)
    except LeadflowError as err:
        return err.code.value
    return OK


def status_events(s: Scenario) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Good status changes per lead, in event-time order."""
    out: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for d in s.deliveries:
        if d.channel == "crm" and d.bad_kind in (None, "out_of_order"):
            doc = json.loads(d.body)
            if doc["event"] == "lead.status.updated":
                out[d.lead_id].append((d.occurred_ms, doc["payload"]))
    for events in out.values():
        events.sort(key=lambda e: e[0])
    return out


def norm(status: str | None) -> str | None:
    return None if status is None else status.strip().replace(" ", "_").replace("-", "_").upper()


# --- determinism -------------------------------------------------------------------------------


def _fingerprint(s: Scenario) -> list[tuple[Any, ...]]:
    return [
        (d.due_s, d.channel, d.body, d.webhook_id, d.lead_id, d.expected, d.bad_kind, d.transport)
        for d in s.deliveries
    ]


def test_same_seed_gives_identical_deliveries(scenario: Scenario) -> None:
    again = generate(42, leads=1500, days=7, now=NOW, bad_share=0.05, policies=POLICIES,
                     settle_s=0)
    assert _fingerprint(again) == _fingerprint(scenario)
    assert {k: (t.probability, t.outcome) for k, t in again.truth.items()} == {
        k: (t.probability, t.outcome) for k, t in scenario.truth.items()
    }
    assert again.truth == scenario.truth  # the handoff and the SLA verdicts too
    assert again.expected_verdicts() == scenario.expected_verdicts()
    other = generate(43, leads=1500, days=7, now=NOW, bad_share=0.05, policies=POLICIES)
    assert _fingerprint(other) != _fingerprint(scenario)


def test_generation_leaves_global_random_alone() -> None:
    random.seed(7)
    before = random.random()
    random.seed(7)
    generate(1, leads=50, now=NOW)
    assert random.random() == before


def test_uuid4_is_the_stdlib_uuid4_of_the_same_bits() -> None:
    a, b = random.Random(9), random.Random(9)
    for _ in range(500):
        assert uuid4(a) == str(uuid.UUID(int=b.getrandbits(128), version=4))


def test_orjson_and_stdlib_write_the_same_bytes(scenario: Scenario) -> None:
    orjson = pytest.importorskip("orjson")
    from streams.simulate.funnel import _stdlib_dumps

    for d in scenario.deliveries[:3000]:
        if d.bad_kind is None:
            doc = json.loads(d.body)
            assert orjson.dumps(doc) == _stdlib_dumps(doc)


def test_bodies_are_canonical_compact_json(scenario: Scenario) -> None:
    # Activities and CRM bodies are written as text for speed; they must still be exactly what
    # a JSON encoder writes, or a seed would not mean one scenario everywhere.
    from streams.simulate.funnel import _stdlib_dumps

    for d in scenario.deliveries:
        if d.bad_kind in (None, "duplicate", "out_of_order"):
            assert _stdlib_dumps(json.loads(d.body)) == d.body


def test_rejects_naive_now_and_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate(1, leads=10, now=datetime(2026, 11, 22))
    with pytest.raises(ValueError):
        generate(1, leads=0, now=NOW)
    with pytest.raises(ValueError):
        generate(1, leads=10, now=NOW, bad_share=1.0)
    with pytest.raises(ValueError):
        generate(1, leads=10, now=NOW, bad_mix={"gremlins": 1.0})


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.0, 0.05, 0.2])
def test_bad_share_within_tolerance(share: float) -> None:
    s = generate(5, leads=800, now=NOW, bad_share=share)
    bad = sum(1 for d in s.deliveries if d.bad_kind)
    assert abs(bad / len(s.deliveries) - share) < 0.01
    if share:
        kinds = Counter(d.bad_kind for d in s.deliveries if d.bad_kind)
        assert set(kinds) == set(BAD_KINDS)


def test_allocate_is_exact_and_proportional() -> None:
    counts = allocate(1000, {"duplicate": 3.0, "malformed_json": 1.0})
    assert counts == {"duplicate": 750, "malformed_json": 250}
    assert sum(allocate(7, {k: 1.0 for k in BAD_KINDS}).values()) == 7


def test_every_expected_code_is_known(scenario: Scenario) -> None:
    assert set(BAD_KINDS.values()) <= CODES
    assert {d.expected for d in scenario.deliveries} <= CODES
    for d in scenario.deliveries:
        assert (d.expected == OK) == (d.bad_kind in (None, "out_of_order"))
        assert (d.transport == "kafka") == (d.bad_kind in KAFKA_ONLY)


def test_expectations_match_the_api_pipeline(scenario: Scenario) -> None:
    """Every HTTP body gets exactly its expected verdict from payloads + contract.validate;
    in particular every good lead/activity/CRM body maps and validates without error."""
    wrong = []
    for d in scenario.deliveries:
        if d.transport != "any":
            continue
        want = OK if d.expected in (OK, DUPLICATE) else d.expected
        got = api_verdict(d)
        if got != want:
            wrong.append((d.bad_kind, want, got, d.body[:120]))
    assert not wrong, wrong[:5]


def test_duplicates_are_exact_resends_delivered_later(scenario: Scenario) -> None:
    first_seen: dict[tuple[bytes, str], int] = {}
    for i, d in enumerate(scenario.deliveries):
        if d.bad_kind == "duplicate":
            assert (d.body, d.webhook_id) in first_seen
        elif d.expected == OK:
            first_seen.setdefault((d.body, d.webhook_id), i)


def test_out_of_order_changes_arrive_after_their_successor(scenario: Scenario) -> None:
    position = {id(d): i for i, d in enumerate(scenario.deliveries)}
    by_lead = defaultdict(list)
    for d in scenario.deliveries:
        if d.channel == "crm" and d.bad_kind in (None, "out_of_order") and b"status" in d.body:
            by_lead[d.lead_id].append(d)
    held = [d for d in scenario.deliveries if d.bad_kind == "out_of_order"]
    assert held
    for d in held:
        later = [e for e in by_lead[d.lead_id] if e.occurred_ms > d.occurred_ms]
        assert later and position[id(d)] > min(position[id(e)] for e in later)
        # Held up, never early: a delivery does not precede the event it reports.
        assert d.due_s >= max(e.due_s for e in later)
        assert not scenario.truth[d.lead_id].exact


def test_kafka_plans_encode_and_fail_as_expected(scenario: Scenario, tmp_path: Path) -> None:
    codec = Codec(FileRegistry(tmp_path / "schemas.json"))
    records = {"leads.captured": "LeadCaptured", "leads.activity": "ActivityRecorded",
               "crm.status-changed": "LeadStatusChanged", "crm.touches": "SalesTouchLogged"}
    seen = Counter()
    for d in scenario.deliveries[:6000] + [d for d in scenario.deliveries if d.bad_kind]:
        plan = kafka_plan(d)
        value, expected = encode_plan(plan, codec, d.bad_kind)
        assert expected in CODES
        if d.bad_kind is None:
            assert plan.record is not None and expected == OK
            assert plan.key == d.lead_id.encode()
        if expected == "UNKNOWN_SCHEMA":
            assert int.from_bytes(value[1:5], "big") == UNKNOWN_SCHEMA_ID
        if plan.record is None:
            assert value == d.body
        try:
            record = codec.decode(value, records[plan.topic])
        except LeadflowError as err:
            seen[err.code.value] += 1
            assert err.code.value == expected
            continue
        # Decoded fine: what remains is for the worker's contract check (or dedup).
        kind = {"leads.captured": "lead", "leads.activity": "activity",
                "crm.status-changed": "status", "crm.touches": "touch"}[plan.topic]
        try:
            contract.validate(kind, record, observed_at=NOW, max_skew=SKEW)
            verdict = OK
        except LeadflowError as err:
            verdict = err.code.value
        assert verdict == (OK if expected in (OK, DUPLICATE) else expected), d.bad_kind
    assert seen["BAD_ENCODING"] and seen["UNKNOWN_SCHEMA"]


# --- realism -----------------------------------------------------------------------------------


def test_event_times_lie_in_the_window_and_arrive_in_delivery_order(scenario: Scenario) -> None:
    start_ms = int((NOW - timedelta(days=7)).timestamp() * 1000)
    now_ms = int(NOW.timestamp() * 1000)
    assert scenario.start == NOW - timedelta(days=7)
    for d in scenario.deliveries:
        if d.occurred_ms is not None:
            assert start_ms <= d.occurred_ms <= now_ms
        # Scheduled at its delivery; a late one may land after ``now`` (the end of the window).
        assert d.due_s * 1000 * scenario.compression == pytest.approx(d.delivered_ms - start_ms)
        assert d.due_s >= 0
        if d.bad_kind is None:
            assert d.delivered_ms >= d.occurred_ms
            ts = json.loads(d.body)
            ts = ts.get("payload", ts)["timestamp"]
            stamp = datetime.fromisoformat(ts)
            assert stamp.tzinfo is not None and NOW - timedelta(days=7) <= stamp <= NOW
            assert round(stamp.timestamp() * 1000) == d.occurred_ms
    dues = [d.due_s for d in scenario.deliveries]
    assert dues == sorted(dues)
    # The marketing API is one queue: in event-time order. CRM webhooks overtake each other.
    api = [d.occurred_ms for d in scenario.deliveries if d.bad_kind is None and d.channel != "crm"]
    assert api == sorted(api)
    crm = [d.occurred_ms for d in scenario.deliveries if d.bad_kind is None and d.channel == "crm"]
    assert crm != sorted(crm)
    assert scenario.compression == pytest.approx(7 * 86_400 / 60)


def test_as_fast_as_possible_has_no_schedule() -> None:
    s = generate(3, leads=50, now=NOW, wall_seconds=0)
    assert s.compression == 0 and {d.due_s for d in s.deliveries} == {0.0}


def test_statuses_follow_legal_paths(scenario: Scenario) -> None:
    spellings = Counter()
    for lead_id, events in status_events(scenario).items():
        previous = None
        for _, payload in events:
            new = norm(payload["newStatus"])
            assert new in LEGAL_NEXT[previous], (lead_id, previous, new)
            assert norm(payload["previousStatus"]) in ({previous} if previous else {None, "NEW"})
            if new == "DISQUALIFIED":
                assert "disqualificationReason" in payload
            spellings[payload["newStatus"]] += 1
            previous = new
        assert scenario.truth[lead_id].statuses == [norm(p["newStatus"]) for _, p in events]
    # Mixed case as CRMs write it.
    assert spellings["Disqualified"] and spellings["Closed Won"] + spellings["closed-won"]


def test_reps_have_their_own_habits(scenario: Scenario) -> None:
    no_reason: dict[str, list[bool]] = defaultdict(list)
    for events in status_events(scenario).values():
        for _, p in events:
            if norm(p["newStatus"]) == "DISQUALIFIED":
                no_reason[p["updatedBy"]].append(p["disqualificationReason"] is None)
    sloppy = {r.rep_id for r in scenario.reps if r.dq_without_reason > 0.3}
    careful = {r.rep_id for r in scenario.reps if r.dq_without_reason < 0.1}
    assert sloppy and careful

    def pooled(reps: set[str]) -> float:
        flags = [flag for rep in reps for flag in no_reason[rep]]
        assert len(flags) >= 10
        return statistics.mean(flags)

    assert pooled(sloppy) > 3 * pooled(careful)
    assert all(r.rep_id.startswith("rep-") for r in scenario.reps)


def test_hand_raisers_and_activities_are_realistic(scenario: Scenario) -> None:
    types = Counter()
    demo_leads = set()
    for d in scenario.deliveries:
        if d.channel == "activity" and d.bad_kind is None:
            kind = json.loads(d.body)["type"]
            types[kind] += 1
            if kind == "demo_request":
                demo_leads.add(d.lead_id)
    assert types["email_open"] > types["email_click"] > types["demo_request"] > 0
    assert set(types) >= {"page_view", "pricing_page_view", "webinar_attend", "meeting_booked"}
    raisers = {t.lead_id for t in scenario.truth.values() if t.hand_raiser}
    assert raisers == demo_leads
    assert 0.03 < len(raisers) / len(scenario.truth) < 0.3


def test_truth_probabilities_carry_the_outcomes() -> None:
    s = generate(8, leads=5000, now=NOW)
    people = [t for t in s.truth.values() if t.alias_of is None]
    assert all(0 < t.probability < 1 for t in people)
    people.sort(key=lambda t: t.probability)
    tenth = len(people) // 10
    bottom = statistics.mean(t.converted for t in people[:tenth])
    top = statistics.mean(t.converted for t in people[-tenth:])
    assert top > 3 * bottom and top > 0.2
    assert all((t.outcome == "CLOSED_WON") == t.converted for t in people)
    # Campaign quality is part of the truth: the best campaign converts better than the worst.
    by_campaign = defaultdict(list)
    for t in people:
        by_campaign[t.campaign_id].append(t.probability)
    ranked = sorted(s.campaigns, key=lambda c: c.quality)
    assert statistics.mean(by_campaign[ranked[-1].campaign_id]) > statistics.mean(
        by_campaign[ranked[0].campaign_id]
    )


def test_repeat_people_resubmit_the_same_email_under_a_new_lead(scenario: Scenario) -> None:
    emails = {}
    for d in scenario.deliveries:
        if d.channel == "lead" and d.bad_kind is None:
            emails[d.lead_id] = json.loads(d.body)["email"]
    pairs = scenario.aliases()
    assert pairs
    for canonical, alias in pairs:
        assert canonical != alias
        assert emails[canonical] != emails[alias]
        assert emails[canonical].lower() == emails[alias].lower()
        assert scenario.truth[alias].captured_at > scenario.truth[canonical].captured_at
    # Everyone else has an address of their own.
    keys = Counter(e.lower() for e in emails.values())
    assert sum(n - 1 for n in keys.values()) == len(pairs)


def test_truth_file_round_trips_and_stays_out_of_the_events(
    scenario: Scenario, tmp_path: Path
) -> None:
    path = write_truth(scenario, tmp_path / "truth" / "scenario.jsonl")
    head, leads = read_truth(path)
    assert head["seed"] == 42 and head["deliveries"] == len(scenario.deliveries)
    assert sum(head["expected_http"].values()) == sum(
        1 for d in scenario.deliveries if d.transport == "any"
    )
    assert sum(head["expected_kafka"].values()) == len(scenario.deliveries)
    assert head["expected_kafka"]["BAD_ENCODING"] > head["expected_http"]["BAD_ENCODING"]
    assert head["aliases"] == [list(p) for p in scenario.aliases()]
    assert head["good_events"] == sum(1 for d in scenario.deliveries if d.expected == OK)
    assert len(leads) == len(scenario.truth)
    row = leads[0]
    assert row["probability"] == scenario.truth[row["lead_id"]].probability
    assert head["good_events_per_lead"][row["lead_id"]] == row["good_events"]
    # The handoff and the SLA verdicts leadflow must reach.
    assert head["sla"]["version"] == POLICIES.contract.version
    assert head["sla"]["verdicts_final"] == scenario.verdict_counts(final=True)
    assert head["handoff"]["mqls"] == head["handoff"]["routed"] + head["handoff"]["queued"]
    for final in (False, True):
        assert verdicts_of(leads, final) == scenario.expected_verdicts(final)
    assert verdicts_of(leads, exact_only=True) == scenario.expected_verdicts(exact_only=True)
    mql = next(r for r in leads if r["mql_at"] and r["owner"])
    t = scenario.truth[mql["lead_id"]]
    assert datetime.fromisoformat(mql["mql_at"]) == t.mql_at and mql["tier"] == t.tier
    for d in scenario.deliveries:
        assert b"probability" not in d.body and b"quality" not in d.body


# --- the handoff: what leadflow decides, what sales does, what the SLA must say ------------------

CLAUSES = reference.CLAUSES
FAR = 400 * 86_400_000  # after every deadline


def crm_events(s: Scenario) -> dict[str, list[tuple[int, str, dict[str, Any]]]]:
    """Good CRM deliveries per lead: (event time, "status" | "touch", payload)."""
    out: dict[str, list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)
    for d in s.deliveries:
        if d.channel == "crm" and d.expected == OK:
            doc = json.loads(d.body)
            kind = "status" if doc["event"] == "lead.status.updated" else "touch"
            out[d.lead_id].append((d.occurred_ms, kind, doc["payload"]))
    return out


def test_sales_only_works_leads_leadflow_hands_to_a_rep(scenario: Scenario) -> None:
    crm = crm_events(scenario)
    assert crm
    for lead_id, events in crm.items():
        t = scenario.truth[lead_id]
        assert t.mql_at is not None and t.owner is not None, lead_id
        mql = epoch_ms(t.mql_at)
        for at, kind, payload in events:
            assert at >= mql
            if kind == "touch":
                assert payload["repId"] == t.owner
            elif norm(payload["newStatus"]) != "MQL":
                assert payload["updatedBy"] == t.owner
        # The CRM echoes leadflow's MQL first, a little later.
        first = min(events, key=lambda e: e[0])
        assert first[1] == "status" and norm(first[2]["newStatus"]) == "MQL"
        assert first[0] - mql <= 121_000
    queued = [t for t in scenario.truth.values() if t.mql_at and t.owner is None]
    never = [t for t in scenario.truth.values() if t.mql_at is None]
    assert queued and never
    assert not any(t.lead_id in crm for t in queued + never)
    assert all(t.queue and not t.statuses for t in queued)
    assert all(t.owner is None and t.queue is None and t.tier is None for t in never)


def test_owners_are_configured_reps_working_and_within_capacity(scenario: Scenario) -> None:
    config = POLICIES.routing
    assert [r.rep_id for r in scenario.reps] == [r.id for r in config.reps]
    by_id = {r.id: r for r in config.reps}
    changes: list[tuple[int, int, str]] = []  # (time, +1 routed / -1 closed, rep)
    for t in scenario.truth.values():
        if t.owner is None:
            continue
        assert t.owner in by_id
        mql = epoch_ms(t.mql_at)
        assert routing.is_working(by_id[t.owner], mql)
        changes.append((mql, 1, t.owner))
    for lead_id, events in crm_events(scenario).items():
        closed = [at for at, kind, p in events
                  if kind == "status" and norm(p["newStatus"]) in reference.TERMINAL]
        if closed:
            changes.append((min(closed), -1, scenario.truth[lead_id].owner))
    load: Counter[str] = Counter()
    full = set()
    for _, delta, rep in sorted(changes):
        load[rep] += delta
        assert 0 <= load[rep] <= by_id[rep].capacity
        if load[rep] == by_id[rep].capacity:
            full.add(rep)
    assert len({t.owner for t in scenario.truth.values() if t.owner}) == len(config.reps)


def test_slow_and_sloppy_reps_breach_more(scenario: Scenario) -> None:
    breached: dict[str, list[bool]] = defaultdict(list)
    for t in scenario.truth.values():
        if t.owner:
            breached[t.owner].append(t.verdicts_final["FIRST_TOUCH"] == "BREACHED")
    rate = {rep: statistics.mean(v) for rep, v in breached.items()}
    assert min(rate["rep-ben"], rate["rep-farid"]) > max(rate["rep-amy"], rate["rep-desk"])


def test_expected_verdicts_include_breaches_of_every_clause(scenario: Scenario) -> None:
    now, final = scenario.verdict_counts(), scenario.verdict_counts(final=True)
    assert set(final) == set(CLAUSES)
    for clause in CLAUSES:
        assert final[clause].get("MET") and final[clause].get("BREACHED"), clause
        assert "PENDING" not in final[clause]
        assert sum(now[clause].values()) == sum(final[clause].values())
    assert now["STATUS_UPDATE"].get("PENDING")
    current = scenario.expected_verdicts()
    for key, verdict in scenario.expected_verdicts(final=True).items():
        # Only a breach can still be waiting, or a clause met by evidence delivered after now.
        assert current[key] in (verdict, "PENDING")
        late = scenario.truth[key[0]].sla[key[1]].known_at > NOW_MS
        assert current[key] != "PENDING" or verdict == "BREACHED" or late
    inexact = {t.lead_id for t in scenario.truth.values() if not t.exact}
    assert inexact and not inexact & {k[0] for k in scenario.expected_verdicts(exact_only=True)}


def test_marketing_sends_some_leads_without_context(scenario: Scenario) -> None:
    crossed = [t for t in scenario.truth.values() if t.crossed_at is not None]
    incomplete = [t for t in crossed if not t.context_complete]
    assert 0.01 < len(incomplete) / len(crossed) < 0.1
    assert {m for t in incomplete for m in t.missing} == {"size_band", "trigger_action",
                                                          "consent"}
    # Handed over all the same when they have a lawful basis: marketing is judged for the
    # context, sales for the follow-up. Without one they wait for it, and sales never hears.
    held = [t for t in incomplete if "consent" in t.missing]
    handed = [t for t in incomplete if "consent" not in t.missing]
    assert held and all(t.mql_at is None and not t.statuses for t in held)
    assert all(t.verdicts == {"CONTEXT_COMPLETE": "BREACHED"} for t in held)
    assert all(t.mql_at == t.crossed_at for t in handed)
    assert all(t.verdicts["CONTEXT_COMPLETE"] == "BREACHED" for t in incomplete)
    assert sum(bool(t.statuses) for t in handed) > len(handed) / 2
    assert all(t.mql_at is None or t.mql_at >= t.crossed_at for t in crossed)


def test_the_fast_intake_path_gives_the_features_of_the_full_one(scenario: Scenario) -> None:
    checked = 0
    for d in scenario.deliveries:
        if d.bad_kind is not None or d.channel == "crm":
            continue
        doc = json.loads(d.body)
        if d.channel == "lead":
            full = contract.validate("lead", payloads.lead_from_json(doc), observed_at=NOW,
                                     max_skew=SKEW)
            assert features.profile_of(lead_record(doc, NOW)) == features.profile_of(full)
        else:
            full = contract.validate("activity", payloads.activity_from_json(doc),
                                     observed_at=NOW, max_skew=SKEW)
            assert activity_type(doc["type"]) == full["activity_type"]
        checked += 1
    assert checked > 5000


def test_other_policies_other_team() -> None:
    # One rep around the clock with room for three open leads; everyone else waits in a queue.
    config = {"routing": {"fallback_queue": "waiting", "reps": [
        {"id": "rep-solo", "timezone": "UTC", "hours": "00:00-24:00", "capacity": 3,
         "days": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]}]}}
    solo = policies.load(Settings(extra=config))
    s = generate(12, leads=300, now=NOW, policies=solo)
    assert [(r.rep_id, r.first_touch_median_min / DEFAULT_HABITS[0]) for r in s.reps] == [
        ("rep-solo", pytest.approx(1.0, abs=0.26))]
    mqls = [t for t in s.truth.values() if t.mql_at]
    assert {t.owner for t in mqls} == {"rep-solo", None}
    assert {t.queue for t in mqls} == {"waiting"}
    assert sum(1 for t in mqls if t.owner) >= 3
    assert s.verdict_counts(final=True)["OWNER_ASSIGNED"]["BREACHED"] > 0


# The engine's own per-lead handoff (core.handoff) and its routing agent's decisions, fed a
# scenario's deliveries in delivery order as the worker would see them, without Kafka.


def _parse(d: Delivery) -> tuple[str, dict[str, Any]]:
    doc = json.loads(d.body)
    if d.channel == "crm":
        return payloads.crm_webhook(doc, webhook_id=d.webhook_id, correlation_id=None)
    if d.channel == "lead":
        return "lead", payloads.lead_from_json(doc)
    return "activity", payloads.activity_from_json(doc)


def run_engine_core(s: Scenario, until: int | None = None) -> dict[str, dict[str, Any]]:
    """The engine's per-lead states after reading the deliveries (those delivered by event
    time ``until``, if given) in delivery order."""
    p = s.policies
    states: dict[str, dict[str, Any]] = {}
    reps = routing.new_state()
    owners: dict[str, str | None] = {}
    clock: int | None = None

    def route(request: dict[str, Any]) -> dict[str, Any] | None:
        nonlocal reps
        lead_id, at = request["lead_id"], request["occurred_at"]
        if request["action"] == "RELEASE":
            if owners.get(lead_id):
                reps = routing.release(reps, owners.pop(lead_id))
            return None
        facts = routing.LeadFacts(
            lead_id=lead_id, region=request["region"], segment=request["segment"],
            industry=request["industry"], tech=tuple(request["tech"]), tier=request["tier"],
            campaign_id=request["campaign_id"],
        )
        reps, decision = routing.route(p.routing, reps, facts, at)
        owners[lead_id] = decision.owner
        return {"event_id": handoff.derived_id(lead_id, f"routed/{request['event_id']}"),
                "lead_id": lead_id, "owner_id": decision.owner, "queue": decision.queue,
                "rule": decision.rule, "candidates": list(decision.candidates),
                "tier": facts.tier, "occurred_at": at, "correlation_id": None}

    def dispatch(sends: list[handoff.Send]) -> None:
        while sends:
            spec, _, record = sends.pop(0)
            if spec is topics.ROUTING and (routed := route(record)) is not None:
                sends += handoff.on_event(p, states[routed["lead_id"]], "routed", routed,
                                          now_ms=NOW_MS, clock_ms=clock)

    for d in s.deliveries:
        if until is not None and d.delivered_ms > until:
            break
        if d.expected != OK:
            continue  # rejected or a duplicate: the engine drops it
        kind, record = _parse(d)
        record = contract.validate(kind, record, observed_at=s.now, max_skew=SKEW)
        lead_id = record["lead_id"]
        state = states.setdefault(lead_id, trace.new_state(lead_id))
        step = trace.step_from_record(kind, record, NOW_MS)
        trace.apply(state, lead_id, step, now_ms=NOW_MS, retention_ms=1 << 62)
        dispatch(handoff.on_event(p, state, kind, record, now_ms=NOW_MS, clock_ms=clock))
        clock = max(clock or 0, step["occurred_at"])  # the partition's event-time clock
    return states


def engine_verdicts(
    s: Scenario, states: dict[str, dict[str, Any]], clock_ms: int
) -> dict[tuple[str, str], str]:
    out = {}
    for lead_id, state in states.items():
        handoff.on_clock(s.policies, state, clock_ms, now_ms=clock_ms)
        done = state.get("sla_done", {})
        for clause in CLAUSES:
            if clause in done:
                out[(lead_id, clause)] = done[clause]
            elif state.get("routed") and clause in ("FIRST_TOUCH", "STATUS_UPDATE"):
                out[(lead_id, clause)] = "PENDING"
    return out


@pytest.fixture(scope="module")
def heavy() -> Scenario:
    return generate(42, leads=1500, days=7, now=NOW, bad_share=0.05, policies=POLICIES,
                    delays="heavy", settle_s=0)


@pytest.mark.parametrize("profile", ["realistic", "heavy"])
def test_the_engine_core_reaches_exactly_the_expected_handoff_and_verdicts(
    profile: str, request: pytest.FixtureRequest,
) -> None:
    """Delivery order, late evidence included: the handoff, the verdicts in force at ``now``
    from what was delivered by then, and in the end (final verdicts, corrected where the
    truth says late evidence corrects them: the engine's ``sla_done`` holds the latest)."""
    scenario = request.getfixturevalue("scenario" if profile == "realistic" else "heavy")
    states = run_engine_core(scenario)
    for lead_id, t in scenario.truth.items():
        state = states[lead_id]
        assert state.get("mql_at") == (t.mql_at and epoch_ms(t.mql_at)), lead_id
        assert state.get("crossed_at") == (t.crossed_at and epoch_ms(t.crossed_at)), lead_id
        assert (state.get("routed") or {}).get("owner") == t.owner, lead_id
    exact = {t.lead_id for t in scenario.truth.values() if t.exact}
    by_now = run_engine_core(scenario, until=NOW_MS)
    for final, seen, clock in ((False, by_now, NOW_MS), (True, states, NOW_MS + FAR)):
        got = {k: v for k, v in engine_verdicts(scenario, seen, clock).items() if k[0] in exact}
        want = scenario.expected_verdicts(final, exact_only=True, corrected=True)
        assert got == want, [(k, got.get(k), want.get(k))
                             for k in set(got) | set(want) if got.get(k) != want.get(k)][:5]


_STATUSES = ("MQL", "WORKING", "SAL", "SQL", "NO_RESPONSE", "DISQUALIFIED", "CLOSED_WON",
             "CLOSED_LOST")
_HOURS = st.integers(-2 * 3600, 80 * 3600).map(lambda s: s * 1000)


@settings(max_examples=300, deadline=None)
@given(
    tier=st.sampled_from(["HAND_RAISER", "STANDARD"]),
    owner=st.sampled_from(["rep-amy", None]),
    touches=st.lists(_HOURS, max_size=4),
    changes=st.lists(st.tuples(_HOURS, st.sampled_from(_STATUSES), st.booleans()), max_size=5),
    now=st.integers(0, 120 * 3600).map(lambda s: s * 1000),
)
def test_the_reference_judges_as_the_engine_does(
    tier: str, owner: str | None, touches: list[int], changes: list[tuple[int, str, bool]],
    now: int,
) -> None:
    """verdicts.judge against core.handoff.on_clock on hand-made facts (any order, any
    statuses), at a given event-time clock and once every deadline has passed."""
    mql = 1_795_000_000_000
    state = trace.new_state("lead")
    state["routed"] = {"at": mql, "owner": owner, "queue": "q", "tier": tier}
    for i, at in enumerate(touches):
        trace.apply(state, "lead", trace.new_step("TOUCH", f"t{i}", mql + at, 0, source="crm"),
                    now_ms=0, retention_ms=1 << 62)
    for i, (at, status, explained) in enumerate(changes):
        state["lifecycle"], _ = lifecycle.apply(state.get("lifecycle"), {
            "event_id": f"s{i}", "occurred_at": mql + at, "to": status, "from_crm": None,
            "reason": "why" if explained else None, "notes": explained, "by": owner,
            "system": False})
    # Every fact read the moment it happened (delivery delays: test_simulate_delays).
    judged = reference.judge(
        POLICIES.contract, mql_at=mql, tier=tier, region="EMEA", owner=owner,
        touches=[reference.Evidence(mql + t, mql + t) for t in touches],
        changes=[reference.Evidence(mql + at, mql + at, to=status, explained=explained)
                 for at, status, explained in changes],
    )
    # The engine sees only what happened by its clock (a real stream delivers in time order).
    seen = dict(state, steps=[s for s in state["steps"] if s["occurred_at"] <= mql + now])
    seen["lifecycle"] = {"changes": [c for c in (state.get("lifecycle") or {}).get("changes", [])
                                     if c["occurred_at"] <= mql + now]}
    handoff.on_clock(POLICIES, seen, mql + now, now_ms=0)
    expected = reference.as_of(judged, mql + now)
    assert seen.get("sla_done", {}) == {c: v for c, v in expected.items() if v != "PENDING"}
    handoff.on_clock(POLICIES, state, mql + FAR, now_ms=0)
    assert state["sla_done"] == reference.as_of(judged, None)


# --- senders -----------------------------------------------------------------------------------


class FakeApi:
    """A tiny real HTTP server: verifies Standard Webhooks signatures, answers as the API
    would (payloads + contract), and answers each route's first request with a 503."""

    def __init__(self, secret: str = SECRET) -> None:
        self.webhook = Webhook(secret)
        self.received: list[tuple[str, bytes, str]] = []
        self.unavailable_once = {"/v1/leads", "/v1/activities", "/v1/webhooks/crm"}
        self.always_accept = False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self.webhook.verify(body, dict(request.headers), json_parse=False)
        except Exception as exc:  # noqa: BLE001 - any verification failure is a 401
            return self.problem(401, "BAD_SIGNATURE", str(exc))
        if request.path in self.unavailable_once:
            self.unavailable_once.discard(request.path)
            return self.problem(503, "UNAVAILABLE", "try again", {"Retry-After": "0"})
        self.received.append((request.path, body, request.headers["webhook-id"]))
        if self.always_accept:
            return web.json_response({"status": "accepted"}, status=202)
        channel = {"/v1/leads": "lead", "/v1/activities": "activity"}.get(request.path, "crm")
        probe = Delivery(0.0, channel, body, request.headers["webhook-id"], None, OK)
        verdict = api_verdict(probe, datetime.now(UTC))
        if verdict != OK:
            return self.problem(400 if verdict == "BAD_ENCODING" else 422, verdict, "rejected")
        return web.json_response({"status": "accepted"}, status=202)

    @staticmethod
    def problem(
        status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        doc = {"type": f"urn:leadflow:problem:{code}", "status": status, "code": code,
               "detail": detail}
        return web.Response(
            body=json.dumps(doc), status=status, content_type="application/problem+json",
            headers=headers,
        )


async def serve(api: FakeApi) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", api.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


def shifted(s: Scenario) -> Scenario:
    """The scenario with its window ending a minute ago, so the API sees no future events."""
    return generate(s.seed, leads=120, now=datetime.now(UTC) - timedelta(minutes=1),
                    wall_seconds=0, bad_share=0.1)


async def test_send_http_signs_retries_and_matches_every_expectation(scenario: Scenario) -> None:
    s = shifted(scenario)
    api = FakeApi()
    runner, base = await serve(api)
    try:
        report = await send_http(s, base, SECRET, progress=False, concurrency=8)
    finally:
        await runner.cleanup()
    http = [d for d in s.deliveries if d.transport == "any"]
    assert report.mismatches == [], report.mismatches[:3]
    assert report.ok and report.errors == 0
    assert report.sent == len(http) and report.skipped == len(s.deliveries) - len(http)
    assert report.retries == 3  # one 503 per route, each retried once
    assert report.by_expected == Counter(d.expected for d in http)
    assert Counter(b for _, b, _ in api.received) == Counter(d.body for d in http)
    assert report.by_status[202] == sum(1 for d in http if d.expected in (OK, DUPLICATE))
    assert report.by_code["INVALID_EMAIL"] == sum(1 for d in http if d.expected == "INVALID_EMAIL")
    # One lead's deliveries never overtake each other, even 8 requests at a time.
    order_by_lead = defaultdict(list)
    position: dict[tuple[bytes, str], int] = {}
    for i, (_, body, wid) in enumerate(api.received):
        position.setdefault((body, wid), i)
    # A body sent twice (a duplicate, maybe of a held-back event) has no single position.
    sent_twice = {k for k, n in Counter((d.body, d.webhook_id) for d in http).items() if n > 1}
    for d in http:
        if d.lead_id and (d.body, d.webhook_id) not in sent_twice:
            order_by_lead[d.lead_id].append(position[(d.body, d.webhook_id)])
    assert all(v == sorted(v) for v in order_by_lead.values())


async def test_send_http_reports_mismatches_and_bad_signatures(scenario: Scenario) -> None:
    s = shifted(scenario)
    api = FakeApi()
    api.always_accept = True
    api.unavailable_once.clear()
    runner, base = await serve(api)
    try:
        report = await send_http(s, base, SECRET, progress=False)
        wrong_secret = "whsec_" + "b3RoZXItc2VjcmV0LWZvci1sZWFkZmxvdw=="
        denied = await send_http(s, base, wrong_secret, progress=False)
    finally:
        await runner.cleanup()
    should_fail = [d for d in s.deliveries if d.transport == "any" and d.expected not in (OK,
                                                                                      DUPLICATE)]
    assert len(report.mismatches) == len(should_fail) > 0
    assert {m.status for m in report.mismatches} == {202}
    assert not report.ok
    assert denied.by_code == Counter({"BAD_SIGNATURE": denied.sent})


async def test_send_http_honours_the_schedule_and_the_rate() -> None:
    s = generate(4, leads=8, now=datetime.now(UTC) - timedelta(minutes=1), wall_seconds=0.6,
                 bad_share=0)
    api = FakeApi()
    api.unavailable_once.clear()
    api.always_accept = True
    runner, base = await serve(api)
    try:
        timed = await send_http(s, base, SECRET, progress=False)
        s.compression = 0
        limited = await send_http(s, base, SECRET, progress=False, rate=200)
    finally:
        await runner.cleanup()
    last_due = s.deliveries[-1].due_s
    assert timed.elapsed_s >= last_due - 0.05
    assert limited.elapsed_s >= (len(s.deliveries) - 1) / 200 - 0.02
    assert timed.ok and limited.ok


async def test_send_kafka_maps_encodes_and_keys_every_delivery(
    broker: EmbeddedBroker, registry_path: Path, tmp_path: Path
) -> None:
    from aiokafka import AIOKafkaConsumer

    from streams.kafka import ensure_topics
    from streams.simulate.truth import kafka_expected_counts

    await ensure_topics(Settings.load(env={}, broker_port=broker.port))
    s = generate(6, leads=150, now=NOW, wall_seconds=0, bad_share=0.15)
    codec = Codec(FileRegistry(registry_path))
    report = await send_kafka(s, broker.bootstrap, codec, progress=False)
    assert report.sent == len(s.deliveries)
    assert report.errors == 0
    inbound = {"leads.captured", "leads.activity", "crm.status-changed", "crm.touches"}
    assert set(report.by_topic) == inbound
    assert report.raw_fallbacks > 0
    assert report.by_expected["UNKNOWN_SCHEMA"] == sum(
        1 for d in s.deliveries if d.bad_kind == "unknown_schema"
    )
    assert report.by_expected == kafka_expected_counts(s)
    # What reached the broker: every delivery, keyed by its lead, in order per lead.
    consumer = AIOKafkaConsumer(
        *inbound, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
        group_id=f"check-{tmp_path.name}",
    )
    await consumer.start()
    got: list[tuple[bytes | None, bytes]] = []
    try:
        while len(got) < len(s.deliveries):
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            got += [(r.key, r.value) for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    assert len(got) == len(s.deliveries)
    framed_keys = {k for k, v in got if v[:1] == b"\x00"}
    assert {d.lead_id.encode() for d in s.deliveries if d.bad_kind is None} <= framed_keys


def test_offsets_other_than_utc_are_accepted_for_now() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=-5)))
    assert _fingerprint(generate(2, leads=30, now=local)) == _fingerprint(
        generate(2, leads=30, now=NOW)
    )
