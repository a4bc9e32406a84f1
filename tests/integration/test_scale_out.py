"""Scale-out on one machine: two workers share the partitions of a simulated backlog; one is
stopped mid-stream (its partitions and tables move to the other) and started again (they
move back). Every lead is traced exactly once, every SLA clause (per lead, and marketing's
per month) judged exactly once, and the dead letters hold the bad input and nothing else."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams import policies, topics
from streams.access.client import headers as client_headers
from streams.core.trace import StepKind
from streams.settings import Settings
from streams.simulate import DUPLICATE, OK, Scenario, generate
from streams.simulate.kafka_sender import kafka_plan
from streams.simulate.truth import kafka_expected_counts
from streams.views import get_json
from tests.conftest import API_KEY, Worker, start_worker, stop_worker
from tests.integration.test_intake import read_topic
from tests.integration.test_sla_truth import FAST_CLOCK, backlog_verdicts, fill, fresh_broker

pytestmark = pytest.mark.integration

# The issue asks for 20,000; about 7.3 deliveries a lead, so ~147,000 events on the topics.
LEADS = 20_000
# Stop the second worker once this share of the backlog has been read, start it again once
# the survivor has read this much more on its own.
STOP_AT, RESTART_AFTER = 0.25, 0.15
INPUT_STEPS = {StepKind.CAPTURED, StepKind.ACTIVITY, StepKind.TOUCH, StepKind.STATUS_CHANGED}


def _received(workers: list[Worker]) -> int:
    return sum(get_json(f"{w.base_url}/v1/stats")[1]["received_total"] for w in workers)


def _wait_received(workers: list[Worker], at_least: int, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = _received(workers)
        if n >= at_least:
            return n
        time.sleep(0.5)
    raise AssertionError(f"the workers read {_received(workers)} of {at_least} in {timeout}s")


def _leads_partitions(worker: Worker) -> list[int]:
    """The partitions of leads.captured this worker processes (its share of the leads)."""
    body = get_json(f"{worker.base_url}/v1/health")[1]
    return sorted(body["assignment"].get(topics.LEADS.name, []))


def _wait_owns_all(worker: Worker, partitions: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _leads_partitions(worker) == list(range(partitions)):
            return
        time.sleep(0.3)
    raise AssertionError(f"the survivor never took over: {_leads_partitions(worker)}")


def _expected_steps(scenario: Scenario) -> Counter[str]:
    """Accepted input events per lead when everything travels through Kafka."""
    per_lead: Counter[str] = Counter()
    for d in scenario.deliveries:
        expected = d.expected if d.bad_kind is None else kafka_plan(d).expected
        if expected == OK and d.lead_id:
            per_lead[d.lead_id] += 1
    return per_lead


def _verdict_key(v: dict[str, Any]) -> tuple[Any, ...]:
    # Per-lead clauses are one per (lead, clause); marketing's monthly ones have no lead.
    return (v["lead_id"], v["clause"]) if v["lead_id"] else (
        v["clause"], v["campaign_id"], v["deadline"])


def _wait_drained(workers: list[Worker], specs: tuple[topics.TopicSpec, ...],
                  partitions: int, timeout: float = 240,
                  stats: Callable[[Worker], dict[str, Any]] | None = None) -> None:
    """Until the workers have committed every record of ``specs``' topics, in two readings a
    commit interval apart (verdicts can all be in while events that decide none, such as
    activities, are still to be read). ``stats``: how a worker's /v1/stats is read."""
    stats = stats or (lambda w: get_json(f"{w.base_url}/v1/stats")[1])
    names = {s.name: s.partitions or partitions for s in specs}
    deadline, calm = time.monotonic() + timeout, 0
    lag: dict[tuple[str, str], int] = {}
    while time.monotonic() < deadline:
        lag = {(topic, part): n for w in workers
               for topic, parts in stats(w)["consumer_lag"].items()
               if topic in names for part, n in parts.items()}
        drained = len(lag) == sum(names.values()) and not any(lag.values())
        calm = calm + 1 if drained else 0
        if calm == 2:
            return
        time.sleep(3)
    raise AssertionError(f"inputs not drained in {timeout}s: {lag}")


def _collect_verdicts(worker: Worker, want: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every verdict on sla.evaluated once the wanted ones are all there (or time is up: the
    caller's assertions then say what is missing, beside the traces)."""
    deadline = time.monotonic() + 150
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = read_topic(worker, topics.SLA)
        if want <= {(v["lead_id"], v["clause"]) for v in seen}:
            time.sleep(3)  # more ticks must judge nothing again
            return read_topic(worker, topics.SLA)
        time.sleep(3)
    return seen


def _traces(workers: list[Worker], lead_ids: list[str]) -> dict[str, tuple[int, Any]]:
    """Every lead's trace, asked of the two workers in turn: a worker that does not own the
    lead's partition must route the request to the one that does."""
    import aiohttp

    out: dict[str, tuple[int, Any]] = {}

    async def fetch() -> None:
        sem = asyncio.Semaphore(8)
        async with aiohttp.ClientSession(headers=client_headers(API_KEY)) as http:

            async def one(i: int, lead_id: str) -> None:
                base = workers[i % len(workers)].base_url
                async with sem, http.get(f"{base}/v1/leads/{lead_id}/trace") as resp:
                    out[lead_id] = (resp.status, await resp.json(content_type=None))

            await asyncio.gather(*(one(i, lid) for i, lid in enumerate(lead_ids)))

    asyncio.run(fetch())
    return out


@pytest.mark.timeout(600)  # ~5 min here: 147,000 events, a stop, a restart, a full drain
def test_two_workers_share_the_partitions_and_survive_a_stop_and_restart(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    scenario = generate(13, leads=LEADS, days=4, now=now, bad_share=0.03, wall_seconds=0,
                        policies=policies.load(Settings.load()))
    expected = scenario.expected_verdicts(final=True, exact_only=True)
    counts = kafka_expected_counts(scenario)
    assert counts is not None
    total = sum(counts.values())
    env = {
        **FAST_CLOCK,
        "LEADFLOW_APP_ID": f"scale-{uuid.uuid4().hex[:8]}",  # one group for both workers
        "LEADFLOW_STORE": "rocksdb",
        "LEADFLOW_STANDBY_REPLICAS": "1",
        # One model for the whole run (a retrain mid-stream would move the threshold the
        # truth was computed with), and no archiver process taking a core.
        "LEADFLOW_RETRAIN_EVERY_S": "0", "LEADFLOW_RETRAIN_AFTER_LABELS": "0",
        "LEADFLOW_ARCHIVE": "false", "LEADFLOW_LOG_LEVEL": "warn",
    }
    with fresh_broker(tmp_path) as broker:
        settings = fill(broker, scenario)
        a = start_worker(broker, tmp_path / "a", **env)
        b = start_worker(broker, tmp_path / "b", **env)
        workers = [a, b]
        try:
            read = _wait_received(workers, int(total * STOP_AT))
            shared = _leads_partitions(a), _leads_partitions(b)
            assert all(shared) and not set(shared[0]) & set(shared[1]), shared
            alone_from = _received([a])
            stop_worker(b)  # SIGTERM: commits its offsets, leaves the group
            _wait_owns_all(a, settings.partitions)
            _wait_received([a], alone_from + int(total * RESTART_AFTER))
            b = start_worker(broker, tmp_path / "b", **env)  # its RocksDB files, still there
            workers = [a, b]
            _wait_drained(workers, (*topics.INBOUND, topics.IDENTITY_RESOLVED, topics.ROUTED),
                          settings.partitions)
            verdicts = _collect_verdicts(a, set(expected))
            # Rebalanced back: both workers own partitions again.
            back = _leads_partitions(a), _leads_partitions(b)
            assert all(back), f"the restarted worker got nothing back: {back}"
            traces = _traces(workers, sorted(scenario.truth))
            dead = read_topic(a, topics.DEAD_LETTERS)
        finally:
            for w in workers:
                if w.proc.poll() is None:
                    stop_worker(w)
    assert read > 0

    bad = _missing_steps(scenario, traces)
    assert not bad, f"{len(bad)} leads not traced exactly once (lead, want, got): {bad[:5]}"

    # Overdue notices come and go with the clock's ticks; each final verdict comes once. A
    # backlog may finalise at once what live needed a correction for (backlog_verdicts).
    finals = [v for v in verdicts if v["status"] == "FINAL"]
    once = Counter(_verdict_key(v) for v in finals)
    twice = [k for k, n in once.items() if n > 1]
    assert not twice, f"{len(twice)} clauses judged more than once, e.g. {twice[:5]}"
    # October is over in this history: its marketing verdicts are in, once (checked above).
    monthly = {k[0] for k in once if k[0] in ("MQL_VOLUME", "CONTEXT_COMPLETE")}
    assert monthly == {"MQL_VOLUME", "CONTEXT_COMPLETE"}, [k for k in once if not k[1]]
    got = backlog_verdicts(scenario, verdicts)
    expected = scenario.expected_verdicts(final=True, exact_only=True, corrected=True)
    wrong = {k: (v, got.get(k)) for k, v in expected.items() if got.get(k) != v}
    missing = [k for k, (_, g) in wrong.items() if g is None]
    assert not missing, f"{len(missing)} verdicts never came: {missing[:5]}; traces: " + str(
        [traces[lead][1] for lead, _ in missing[:2]])
    # Routing decides in event-time order across partitions (agents.watermarks hold each
    # request until every partition has passed it), so the partitions of the stopped worker
    # falling hours of event time behind change nobody's owner: every clause as the truth.
    by_clause = Counter((k[1], v, g) for k, (v, g) in wrong.items())
    assert not wrong, (f"{len(wrong)} of {len(expected)} verdicts differ: {by_clause}; "
                       + _explain(scenario, traces, list(wrong)))

    bad_input = Counter({k: n for k, n in counts.items() if k not in (OK, DUPLICATE)})
    # Every bad input, with its code, and nothing else. At least once, like all processing:
    # a record read again after a rebalance is dead-lettered again (seen: 1 of ~2,100),
    # under the same source coordinates, by which a reader of the topic tells repeats apart.
    by_source = {(d["source_topic"], d["source_partition"], d["source_offset"]): d["error_code"]
                 for d in dead}
    assert Counter(by_source.values()) == bad_input


def _explain(scenario: Scenario, traces: dict[str, tuple[int, Any]],
             keys: list[tuple[str, str]]) -> str:
    """Enough of a few leads to see why a verdict differs: the truth's handover and the
    trace's steps in event time, each with when it was observed (a verdict observed before
    the event that decides it means the event-time clock ran ahead)."""
    out = []
    for lead_id, clause in keys[:3]:
        t = scenario.truth[lead_id]
        steps = [(s["occurred_at"], s["observed_at"], s["kind"], {
            k: v for k, v in (s.get("detail") or {}).items() if k in (
                "to", "status", "clause", "verdict", "deadline", "met_at", "owner", "score")})
            for s in traces[lead_id][1].get("steps", [])]
        out.append(f"{lead_id} {clause}: truth mql_at={t.mql_at} owner={t.owner} "
                   f"final={t.verdicts_final} steps={steps}")
    return " | ".join(out)


def _missing_steps(scenario: Scenario, traces: dict[str, tuple[int, Any]]) -> list[Any]:
    """(lead, input steps wanted, (status, got)) of each lead not traced exactly once."""
    steps = _expected_steps(scenario)
    bad: list[tuple[str, int, Any]] = []
    for lead_id in scenario.truth:
        status, body = traces[lead_id]
        want = steps[lead_id]
        if want == 0:
            if status != 404:
                bad.append((lead_id, want, status))
            continue
        ids = [s["event_id"] for s in body.get("steps", [])
               if s["lead_id"] == lead_id and s["kind"] in INPUT_STEPS] if status == 200 else []
        if status != 200 or len(ids) != want or len(set(ids)) != want:
            bad.append((lead_id, want, (status, len(ids))))
    return bad


def test_a_worker_joining_mid_backlog_takes_partitions_without_losing_a_write(
    tmp_path: Path,
) -> None:
    """A second worker joins while the first is busy: partitions move, the first re-reads
    the changelogs of those it keeps. No standby replicas, so a trace asked of the worker
    that does not hold the lead must be forwarded to the one that does (it answered 404),
    and a changelog written out of order shows as a lost step (it did: 2-5 of 1,500)."""
    now = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    scenario = generate(13, leads=1_500, days=4, now=now, bad_share=0.03, wall_seconds=0,
                        policies=policies.load(Settings.load()))
    counts = kafka_expected_counts(scenario)
    assert counts is not None
    env = {
        **FAST_CLOCK, "LEADFLOW_APP_ID": f"join-{uuid.uuid4().hex[:8]}",
        "LEADFLOW_STANDBY_REPLICAS": "0", "LEADFLOW_RETRAIN_EVERY_S": "0",
        "LEADFLOW_RETRAIN_AFTER_LABELS": "0", "LEADFLOW_ARCHIVE": "false",
        "LEADFLOW_LOG_LEVEL": "warn",
    }
    with fresh_broker(tmp_path) as broker:
        fill(broker, scenario)
        a = start_worker(broker, tmp_path / "a", **env)
        workers = [a]
        try:
            _wait_received(workers, int(sum(counts.values()) * 0.3))
            workers.append(start_worker(broker, tmp_path / "b", **env))
            _wait_received(workers, sum(counts.values()))
            # Both answer for every lead: each is asked for all of them.
            deadline = time.monotonic() + 60
            while not all(_leads_partitions(w) for w in workers):
                assert time.monotonic() < deadline, "the second worker got no partitions"
                time.sleep(0.5)
            # Read counts events read again after the handover too: wait for the traces.
            deadline = time.monotonic() + 90
            while True:
                bad = [_missing_steps(scenario, _traces([w], sorted(scenario.truth)))
                       for w in workers]
                if not any(bad) or time.monotonic() > deadline:
                    break
                time.sleep(3)
        finally:
            for w in workers:
                stop_worker(w)
    for missing in bad:
        assert not missing, (
            f"{len(missing)} leads not traced exactly once (lead, want, got): {missing[:5]}")


def test_recovery_reads_a_changelog_to_the_end_of_its_last_batch(broker: Any) -> None:
    """The embedded broker reports a partition's end as its last batch's base offset + 1;
    tables recovered up to that mark lost the rest of the batch (a flush of many leads)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from faust.types import TP

    from streams.transport import true_end_offsets

    topic = f"scale-probe-{uuid.uuid4().hex[:6]}"

    async def run() -> tuple[int, dict[Any, int]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
        await producer.start()
        try:
            sends = [await producer.send(topic, b"x", partition=0) for _ in range(50)]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap)
        await consumer.start()
        try:
            reported = (await consumer.end_offsets([TopicPartition(topic, 0)]))[
                TopicPartition(topic, 0)]
        finally:
            await consumer.stop()
        return reported, await true_end_offsets(broker.bootstrap, {TP(topic, 0): reported})

    reported, true = asyncio.run(run())
    assert true == {TP(topic, 0): 50}
    assert reported <= 50  # 50 on Kafka; less on a broker with the quirk
