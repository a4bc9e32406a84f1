"""GET /metrics rendering: the worker's counters as Prometheus families, latency, lag."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from faust.types import TP, Message
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams import metrics
from streams.app import build_app
from streams.settings import Settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_latency_buckets_are_cumulative_and_inclusive() -> None:
    latency = metrics.Latency(bounds=(0.01, 0.1, 1.0))
    for seconds in (0.004, 0.01, 0.05, 0.1, 0.7, 3.0):
        latency.observe("leads.captured", seconds)
    latency.observe("crm.touches", 0.02)
    text = generate_latest(_Only(latency.family("x_seconds", "test"))).decode()
    got = samples_of(text)

    def bucket(topic: str, le: str) -> float:
        return got[("x_seconds_bucket", (("le", le), ("topic", topic)))]

    # Prometheus buckets count values <= le: 0.01 and 0.1 fall in their own bucket.
    assert [bucket("leads.captured", le) for le in ("0.01", "0.1", "1.0", "+Inf")] == [
        2, 4, 5, 6]
    assert got[("x_seconds_count", (("topic", "leads.captured"),))] == 6
    assert abs(got[("x_seconds_sum", (("topic", "leads.captured"),))] - 3.864) < 1e-9
    assert bucket("crm.touches", "0.01") == 0 and bucket("crm.touches", "0.1") == 1


def test_the_monitor_times_each_message_from_stream_to_acknowledgement() -> None:
    monitor = metrics.LeadflowMonitor()
    tp = TP("leads.activity", 2)
    message = Message("leads.activity", 2, 17, 0.0, 0, None, b"k", b"v", None)
    monitor.on_message_in(tp, 17, message)
    message.time_in -= 0.03  # as if it had waited 30 ms for its batch
    monitor.on_message_out(tp, 17, message)
    row = monitor.latency.rows["leads.activity"]
    assert sum(row[:-1]) == 1 and 0.03 <= row[-1] < 1.0
    assert row[metrics.BUCKETS.index(0.05)] == 1  # in the (0.025, 0.05] bucket
    assert monitor.messages_active == 0 and message.time_total == row[-1]


def test_the_counting_producer_counts_records_per_topic() -> None:
    sent: Counter[str] = Counter()

    async def use() -> None:  # aiokafka's producer wants a running loop
        producer = metrics.CountingKafkaProducer(bootstrap_servers="127.0.0.1:1", sent=sent)
        batch = producer.create_batch()
        for i in range(3):
            assert batch.append(key=b"k", value=f"v{i}".encode(), timestamp=None) is not None
        pending = [producer.send_batch(batch, "leads.scored", partition=1),
                   producer.send("leadflow.dead-letters", b"v", key=b"k")]
        for coroutine in pending:  # never started: only the counting is under test
            coroutine.close()

    asyncio.run(use())
    assert sent == {"leads.scored": 3, "leadflow.dead-letters": 1}


def test_lag_is_highwater_minus_committed() -> None:
    assert metrics.lag_of(120, 100) == 20
    assert metrics.lag_of(120, None) == 120  # nothing committed: read from the start
    assert metrics.lag_of(100, 120) == 0
    assert metrics.lag_of(None, 5) is None  # never fetched: no figure rather than a guess


def test_a_built_worker_renders_its_counters(tmp_path: Path) -> None:
    app = build_app(Settings.load(env={}, data_dir=str(tmp_path)), api=False)
    registry = metrics.install(app)  # what the route serves
    assert isinstance(app.monitor, metrics.LeadflowMonitor)
    app.stats.received["leads.captured"] += 4
    app.stats.accepted["lead"] += 3
    app.stats.duplicates["lead"] += 1
    app.stats.dead_letters["INVALID_EMAIL"] += 2
    app.stats.sla["FIRST_TOUCH/BREACHED"] += 1
    app.stats.sla["FIRST_TOUCH/MET"] += 5
    app.stats.handoff["mql"] += 3
    app.monitor.messages_received_by_topic["leads.captured"] += 4
    app.monitor.messages_sent_by_topic["leads.scored"] += 3
    app.monitor.latency.observe("leads.captured", 0.002)
    got = samples_of(generate_latest(registry).decode())

    assert got[("leadflow_events_in_total", (("topic", "leads.captured"),))] == 4
    assert got[("leadflow_events_out_total", (("topic", "leads.scored"),))] == 3
    assert got[("leadflow_events_accepted_total", (("kind", "lead"),))] == 3
    assert got[("leadflow_events_duplicate_total", (("kind", "lead"),))] == 1
    assert got[("leadflow_dead_letters_total", (("code", "INVALID_EMAIL"),))] == 2
    assert got[("leadflow_sla_verdicts_total", (("clause", "FIRST_TOUCH"),
                                                ("verdict", "BREACHED")))] == 1
    assert got[("leadflow_sla_verdicts_total", (("clause", "FIRST_TOUCH"),
                                                ("verdict", "MET")))] == 5
    assert got[("leadflow_handoff_decisions_total", (("decision", "mql"),))] == 3
    version = app.policies.model.version
    assert got[("leadflow_model_info", (("version", version),))] == 1
    assert got[("leadflow_mql_threshold", ())] == app.policies.scoring.threshold
    # Not started: no consumer, no assignment, no lag figures, tables not recovered yet.
    assert got[("leadflow_assigned_partitions", ())] == 0
    assert got[("leadflow_recovering", ())] == 1
    assert not [key for key in got if key[0] == "leadflow_consumer_lag"]
    assert got[("leadflow_processing_seconds_count", (("topic", "leads.captured"),))] == 1


def test_the_api_serves_the_route_and_counts_through_its_producer(tmp_path: Path) -> None:
    app = build_app(Settings.load(env={}, data_dir=str(tmp_path)))
    assert "/metrics" in app.web.views
    assert isinstance(app.monitor, metrics.LeadflowMonitor)
    assert isinstance(app.producer, metrics.CountingProducer)
    assert metrics.CONTENT_TYPE.startswith("text/plain; version=0.0.4")


class _Only:
    """A registry-like collector of one prepared family."""

    def __init__(self, family: object) -> None:
        self.family = family

    def collect(self) -> list[object]:
        return [self.family]
