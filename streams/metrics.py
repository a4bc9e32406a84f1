"""Prometheus metrics of one worker, served at GET /metrics (text format 0.0.4).

Everything is rendered when Prometheus scrapes, from what the worker counts anyway: leadflow's
own counters (``Stats``, also behind GET /v1/stats), Faust's monitor (messages handed to the
agents, per topic) and the consumer's offsets. Counted for metrics alone: records sent per
topic, by the one aiokafka producer every send goes through (the API's, the agents' and the
changelogs'; ~0.25 µs a send), and the processing-latency histogram, observed in the monitor
hook Faust already calls for every message (~0.4 µs; see ``Latency``).
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections import Counter
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.sensors.monitor import Monitor
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

# Seconds from the moment a stream takes an event to its acknowledgement: intake buffers up
# to intake_batch_wait_ms (10 ms) before a batch runs, and a healthy hop stays well under 1 s.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class Latency:
    """A histogram per topic, cheap enough to observe every event on the event loop.

    prometheus_client's Histogram takes a lock and walks its buckets (~2 µs an observation);
    this is one bisect and two increments, with no lock: only the worker's event loop writes,
    and a scrape that reads mid-update is at worst one event behind."""

    __slots__ = ("bounds", "rows")

    def __init__(self, bounds: tuple[float, ...] = BUCKETS) -> None:
        self.bounds = bounds
        # topic -> [count per bucket ..., count above the last bound, sum of seconds]
        self.rows: dict[str, list[float]] = {}

    def observe(self, topic: str, seconds: float) -> None:
        row = self.rows.get(topic)
        if row is None:
            row = self.rows[topic] = [0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, seconds)] += 1
        row[-1] += seconds

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=["topic"])
        for topic, row in sorted(self.rows.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip((*self.bounds, float("inf")), row[:-1], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            family.add_metric([topic], buckets, row[-1])
        return family


class LeadflowMonitor(Monitor):
    """Faust's monitor, also feeding the processing-latency histogram."""

    latency: Latency

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.latency = Latency()

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        # Faust's own bookkeeping, inlined (a super() call would cost as much as the
        # histogram). This hook, not on_stream_event_out: take_events acks without the
        # stream's sensor state, so that one never sees how long a batched event took.
        self.messages_active -= 1
        time_out = message.time_out = self.time()
        time_in = message.time_in
        if time_in is not None:
            total = message.time_total = time_out - time_in
            self.latency.observe(tp.topic, total)


class CountingKafkaProducer(AIOKafkaProducer):
    """aiokafka's producer, counting the records it is given per topic into ``sent``."""

    def __init__(self, *args: Any, sent: Counter[str], response_timeout_s: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = sent
        if response_timeout_s:
            # aiokafka uses request_timeout_ms twice: as each request's wait for its response
            # (its connections read it from the client when they open, after this) and as the
            # age at which a batch expires unsent. Faust sets 20 minutes for the expiry, so a
            # produce request the broker never answered would hold every send of the worker
            # for 20 minutes (suspected in the stalls of README Limits; test_producer_unanswered
            # shows the hazard). A short wait drops that connection and resends the batch (a
            # retriable error; per-partition order kept), with the batch's long expiry unchanged.
            self.client._request_timeout_ms = int(response_timeout_s * 1000)

    # Not coroutines themselves: they hand back aiokafka's, so a send costs no extra frame
    # (~0.25 µs with the count; explicit arguments, as *args/**kwargs doubled that).
    def send(
        self, topic: str, value: Any = None, key: Any = None, partition: int | None = None,
        timestamp_ms: int | None = None, headers: Any = None,
    ) -> Awaitable[Any]:
        self.sent[topic] += 1
        return _send(self, topic, value, key, partition, timestamp_ms, headers)

    def send_batch(self, batch: Any, topic: str, *, partition: int) -> Awaitable[Any]:
        self.sent[topic] += batch.record_count()
        return _send_batch(self, batch, topic, partition=partition)


_send = AIOKafkaProducer.send
_send_batch = AIOKafkaProducer.send_batch


class CountingProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer service, sending through a ``CountingKafkaProducer`` whose
    counts land in the monitor (``messages_sent_by_topic``, which Faust itself fills only
    for ``topic.send()``; it survives a restart of the producer)."""

    @property
    def _producer_type(self) -> Any:
        settings = getattr(self.app, "settings", None)
        return functools.partial(
            CountingKafkaProducer, sent=self.app.monitor.messages_sent_by_topic,
            response_timeout_s=settings.producer_response_timeout_s if settings else None)


def install(app: Any) -> CollectorRegistry:
    """Give ``app`` the latency-counting monitor and a registry that renders its metrics.

    Call before the app starts: Faust adds its monitor to the sensors when it starts."""
    app.monitor = LeadflowMonitor()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkerCollector(app))
    ProcessCollector(registry=registry)  # CPU seconds, resident memory, open files
    return registry


def register(app: Any) -> None:
    """Serve GET /metrics from ``app``'s web server."""
    from faust.web import Request, Response, View

    registry = install(app)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            # The header, not content_type=: aiohttp refuses a charset in content_type.
            return self.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE})


class WorkerCollector:
    """Reads the worker's counters and offsets at scrape time."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def describe(self) -> Iterable[Metric]:
        return ()  # collected only when scraped, never at registration

    def collect(self) -> Iterator[Metric]:
        app = self.app
        monitor = app.monitor
        yield _counter(
            "leadflow_events_in", "Records handed to the worker's agents, by topic.",
            "topic", monitor.messages_received_by_topic,
        )
        yield _counter(
            "leadflow_events_out", "Records the worker sent, by topic.",
            "topic", monitor.messages_sent_by_topic,
        )
        if isinstance(monitor, LeadflowMonitor):
            yield monitor.latency.family(
                "leadflow_processing_seconds",
                "From the moment an agent's stream takes a record to its acknowledgement "
                "(waiting for its batch included), by topic.",
            )
        yield from stats_families(app.stats)
        yield from model_families(app)
        yield from consumer_families(app)


def stats_families(stats: Any) -> Iterator[Metric]:
    """The counters of GET /v1/stats (streams/stats.py) as Prometheus families."""
    yield _counter("leadflow_events_accepted", "Inbound events added to a trace, by kind.",
                   "kind", stats.accepted)
    yield _counter("leadflow_events_duplicate", "Inbound events dropped as already seen, by kind.",
                   "kind", stats.duplicates)
    yield _counter("leadflow_dead_letters", "Records sent to the dead-letter topic, by error code.",
                   "code", stats.dead_letters)
    yield _counter("leadflow_http_rejected", "HTTP requests answered with an error, by code.",
                   "code", stats.http_rejected)
    yield _counter("leadflow_handoff_decisions",
                   "Handoff decisions: scored, mql, routed, queued, context_incomplete, ...",
                   "decision", stats.handoff)
    yield _counter("leadflow_notifications", "Owner notifications, by outcome.",
                   "outcome", stats.notified)
    verdicts = CounterMetricFamily(
        "leadflow_sla_verdicts", "SLA verdicts sent, by clause and verdict.",
        labels=["clause", "verdict"],
    )
    for key, count in sorted(stats.sla.items()):
        clause, _, verdict = key.partition("/")
        verdicts.add_metric([clause, verdict], count)
    yield verdicts
    yield GaugeMetricFamily("leadflow_start_time_seconds", "When the worker started (Unix time).",
                            value=stats.started_at)


def model_families(app: Any) -> Iterator[Metric]:
    policies = getattr(app, "policies", None)
    if policies is None:
        return
    yield InfoMetricFamily("leadflow_model", "The scoring model in force.",
                           value={"version": str(policies.model.version)})
    yield GaugeMetricFamily("leadflow_mql_threshold", "The MQL score threshold in force.",
                            value=float(policies.scoring.threshold))


def consumer_families(app: Any) -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        "leadflow_consumer_lag",
        "Records on the partition not yet committed by this worker (highwater minus committed).",
        labels=["topic", "partition"],
    )
    assigned = GaugeMetricFamily("leadflow_assigned_partitions",
                                 "Partitions of the agents' topics assigned to this worker.")
    recovering = GaugeMetricFamily("leadflow_recovering",
                                   "1 while tables are recovering from their changelogs.")
    assigned.add_metric([], len(agent_assignment(app)))
    for topic, partitions in consumer_lag(app).items():
        for partition, value in partitions.items():
            lag.add_metric([topic, str(partition)], value)
    recovering.add_metric([], 1 if is_recovering(app) else 0)
    yield lag
    yield assigned
    yield recovering


def consumer_lag(app: Any) -> dict[str, dict[int, int]]:
    """topic → partition → records not yet committed, for this worker's agent partitions
    (GET /metrics, and GET /v1/stats for the dashboard)."""
    consumer = getattr(app, "_consumer", None)  # the property would create one
    offsets = _committed(consumer)
    out: dict[str, dict[int, int]] = {}
    for tp in agent_assignment(app):
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # the consumer's thread is not running (starting or stopping)
            highwater = None
        value = lag_of(highwater, offsets.get(tp))
        if value is not None:
            out.setdefault(tp.topic, {})[tp.partition] = value
    return out


def is_recovering(app: Any) -> bool:
    """Until the first recovery ends, and again from every revoke until the tables are
    recovered (Faust sets ``recovery.completed`` once and never clears it)."""
    recovery = getattr(getattr(app, "tables", None), "recovery", None)
    return recovery is None or not recovery.completed.is_set() or bool(app.rebalancing)


def agent_assignment(app: Any) -> list[Any]:
    """Assigned partitions of the topics agents consume, sorted; changelog partitions (held
    for tables and standbys, never committed by the consumer) are left out."""
    consumer = getattr(app, "_consumer", None)
    if consumer is None:
        return []
    try:
        tps = consumer.assignment()
    except Exception:  # not started yet
        return []
    acking = app.topics.acking_topics
    return sorted((tp for tp in tps if tp.topic in acking), key=lambda tp: (tp.topic, tp.partition))


def lag_of(highwater: int | None, committed: int | None) -> int | None:
    """Kafka's consumer lag: offsets from the next one to commit up to the highwater mark.

    Nothing committed yet counts from offset 0 (the group reads from the earliest record);
    an unknown highwater (partition not fetched yet) gives no figure."""
    if highwater is None:
        return None
    return max(highwater - (committed or 0), 0)


def _committed(consumer: Any) -> Mapping[Any, int | None]:
    # Faust's consumer keeps the offsets it committed (or read from the group at assignment)
    # in a defaultdict; copying it avoids inserting None for partitions we ask about.
    return dict(getattr(consumer, "_committed_offset", {}))


def _counter(name: str, documentation: str, label: str, counts: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, count in sorted(counts.items()):
        family.add_metric([str(key)], count)
    return family


def assignment_by_topic(app: Any) -> dict[str, list[int]]:
    """For GET /v1/health: the partitions this worker processes, by topic."""
    by_topic: dict[str, list[int]] = {}
    for tp in agent_assignment(app):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return by_topic
