"""`leadflow bench scale` and `leadflow bench recovery`: scale-out and durable state, measured.

scale: the same backlog, read by one worker and then by two, each run on an embedded broker of
its own, in alternating rounds: events/s with one and with two workers (medians), and what
each run cost in CPU, in the same run on the same machine.

recovery: a worker fills its tables from a backlog and stops; a fresh worker (same group,
an empty data dir) rebuilds them from the changelogs. Time to ready is from starting the
process to its first GET /v1/health 200 (503 while recovering); the replay rate divides the
changelog records by that time minus the time an empty worker takes to become ready.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams import topics
from streams.bench import _fill_backlog, _start, bench_key, drain, worker_stats
from streams.broker import EmbeddedBroker, free_port, stop_process
from streams.kafka import ensure_topics
from streams.settings import Settings
from streams.views import get_json

TARGET_SPEEDUP = 1.6


@dataclass
class ScaleRun:
    workers: int
    rate: float  # events/s
    worker_cpu_s: float | None  # CPU seconds the workers spent on the drain, summed
    broker_cpu_s: float | None


@dataclass
class ScaleResult:
    events: int
    runs: list[ScaleRun]

    def _median(self, workers: int) -> float:
        return statistics.median(r.rate for r in self.runs if r.workers == workers)

    @property
    def one_rate(self) -> float:
        return self._median(1)

    @property
    def two_rate(self) -> float:
        return self._median(2)

    @property
    def speedup(self) -> float:
        return self.two_rate / self.one_rate if self.one_rate else 0.0

    def table(self) -> str:
        rounds = len(self.runs) // 2
        rows = [
            ("backlog events", f"{self.events:,}"),
            ("rounds (one worker, then two)", str(rounds)),
            ("one worker (events/s, median)", f"{self.one_rate:,.0f}"),
            ("two workers (events/s, median)", f"{self.two_rate:,.0f}"),
            (f"speed-up (target >= {TARGET_SPEEDUP})", f"{self.speedup:.2f}"),
            ("cores", str(os.cpu_count())),
        ]
        for i in range(rounds):
            one, two = self.runs[2 * i], self.runs[2 * i + 1]
            rows.append((f"round {i + 1}: events/s, one / two",
                         f"{one.rate:,.0f} / {two.rate:,.0f}"))
            if one.worker_cpu_s and two.worker_cpu_s:
                # Per event, the work a second worker adds beside the first (contention, standbys).
                per = [1e6 * r.worker_cpu_s / self.events for r in (one, two)]
                rows.append((f"round {i + 1}: worker CPU-µs/event, one / two",
                             f"{per[0]:,.0f} / {per[1]:,.0f}"))
            if one.broker_cpu_s is not None and two.broker_cpu_s is not None:
                rows.append((f"round {i + 1}: broker CPU-s, one / two",
                             f"{one.broker_cpu_s:.1f} / {two.broker_cpu_s:.1f}"))
        return _table(rows)


@dataclass
class RecoveryResult:
    store: str
    events: int
    leads: int
    changelog_records: int
    empty_ready_s: float
    ready_s: float

    @property
    def replay_rate(self) -> float:
        spent = self.ready_s - self.empty_ready_s
        return self.changelog_records / spent if spent > 0 else 0.0

    def table(self) -> str:
        return _table([
            ("store", self.store),
            ("backlog events", f"{self.events:,}"),
            ("lead states", f"{self.leads:,}"),
            ("changelog records", f"{self.changelog_records:,}"),
            ("empty worker: start to ready", f"{self.empty_ready_s:.1f} s"),
            ("recovering worker: start to ready", f"{self.ready_s:.1f} s"),
            ("changelog records replayed/s", f"{self.replay_rate:,.0f}"),
        ])


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v:>12}" for k, v in rows)


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr)


class _Bench:
    """A broker with a backlog in a temporary directory and the workers started on it."""

    def __init__(self, settings: Settings, tmp: Path, broker: EmbeddedBroker) -> None:
        self.tmp = tmp
        self.settings = settings.replace(
            broker_url="", broker_port=broker.port, data_dir=str(tmp), schema_registry_url="",
            schema_registry_file=str(tmp / "schemas.json"),
        )
        self.env = {
            **os.environ, "LEADFLOW_BROKER_URL": "", "LEADFLOW_BROKER_PORT": str(broker.port),
            "LEADFLOW_LOG_LEVEL": "warn", "LEADFLOW_SCHEMA_REGISTRY_URL": "",
            "LEADFLOW_SCHEMA_REGISTRY_FILE": self.settings.schema_registry_file,
            # As `leadflow bench`: the model it started with, and no archiver process.
            "LEADFLOW_RETRAIN_EVERY_S": "0", "LEADFLOW_RETRAIN_AFTER_LABELS": "0",
            "LEADFLOW_ARCHIVE": "false",
        }
        self.key = bench_key(self.env)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, app_id: str, **env: str) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        data = self.tmp / name
        data.mkdir(parents=True, exist_ok=True)
        proc = _start("worker", {**self.env, "LEADFLOW_WEB_PORT": str(port),
                                 "LEADFLOW_DATA_DIR": str(data), "LEADFLOW_APP_ID": app_id,
                                 **env}, data / "worker.log")
        self.procs.append(proc)
        return f"http://127.0.0.1:{port}", proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        stop_process(proc, 30)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.stop(proc)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        try:
            if get_json(f"{base}/v1/health", timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready in {timeout:.0f}s")


def _run_in_tmp(body: Any) -> Any:
    tmp = Path(tempfile.mkdtemp(prefix="leadflow-bench-"))
    try:
        with EmbeddedBroker(0, tmp / "broker.log") as broker:
            result = body(tmp, broker)
    except BaseException:
        print(f"bench: failed; broker and worker logs kept in {tmp}", file=sys.stderr)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def run_scale_bench(settings: Settings, events: int, rounds: int = 3) -> ScaleResult:
    """``rounds`` times one worker, then two. Rounds alternate and the medians are compared:
    this VM's speed drifts by tens of percent within minutes."""
    runs, sent = [], 0
    for round_ in range(1, rounds + 1):
        for n in (1, 2):
            sent, run = _run_in_tmp(lambda tmp, broker, n=n, r=round_: _scale_run(
                settings, tmp, broker, events, n, f"round {r}/{rounds}"))
            runs.append(run)
    return ScaleResult(sent, runs)


def _scale_run(settings: Settings, tmp: Path, broker: EmbeddedBroker, events: int, n: int,
               label: str) -> tuple[int, ScaleRun]:
    """``n`` workers on a broker of their own: they join the group and share the partitions
    first, then the backlog is written, so a rebalance (a worker joining late) is not what
    is measured."""
    bench = _Bench(settings, tmp, broker)
    asyncio.run(ensure_topics(bench.settings))
    app_id = f"bench-scale{n}-{uuid.uuid4().hex[:6]}"
    try:
        workers = [bench.start(f"scale{n}-{i}", app_id) for i in range(n)]
        for base, proc in workers:
            _wait_ready(base, proc)
        _wait_shared([base for base, _ in workers], bench.settings.partitions)
        _say(f"{label}: {n} worker{'s' * (n > 1)} ready; writing {events:,} events")
        pids = [proc.pid for _, proc in workers] + [broker.proc.pid if broker.proc else None]
        before = [cpu_seconds(pid) for pid in pids]
        sent = asyncio.run(_fill_backlog(bench.settings, events))
        rate = drain(workers, sent, bench.key)[0]
        after = [cpu_seconds(pid) for pid in pids]
    finally:
        bench.stop_all()
    return sent, ScaleRun(n, rate, _spent(before[:-1], after[:-1]),
                          _spent(before[-1:], after[-1:]))


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spent(before: list[float | None], after: list[float | None]) -> float | None:
    if None in before or None in after:
        return None
    return sum(a - b for a, b in zip(after, before, strict=True))  # type: ignore[operator]


def _wait_shared(bases: list[str], partitions: int, timeout: float = 120) -> None:
    """Until the workers hold every partition of leads.captured between them, each some."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = []
        for base in bases:
            body = get_json(f"{base}/v1/health", timeout=2)[1]
            held.append(sorted(body.get("assignment", {}).get(topics.LEADS.name, [])))
        if all(held) and sorted(p for h in held for p in h) == list(range(partitions)):
            time.sleep(1.0)  # the standby and changelog assignment settles with it
            return
        time.sleep(0.3)
    raise RuntimeError(f"the partitions were not shared out in {timeout:.0f}s")


async def _changelog_records(settings: Settings, app_id: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap)
    await consumer.start()
    try:
        names = [t for t in await consumer.topics()
                 if t.startswith(f"{app_id}-") and t.endswith("-changelog")]
        parts = [TopicPartition(t, p) for t in names
                 for p in consumer.partitions_for_topic(t) or ()]
        return sum((await consumer.end_offsets(parts)).values()) if parts else 0
    finally:
        await consumer.stop()


def run_recovery_bench(settings: Settings, events: int, store: str) -> RecoveryResult:
    def body(tmp: Path, broker: EmbeddedBroker) -> RecoveryResult:
        bench = _Bench(settings, tmp, broker)
        _say(f"broker on {broker.bootstrap}, filling a backlog of {events:,} events")
        sent = asyncio.run(_fill_backlog(bench.settings, events))
        env = {"LEADFLOW_STORE": store}
        try:
            app_id = f"bench-recovery-{uuid.uuid4().hex[:6]}"
            base, proc = bench.start("fill", app_id, **env)
            _say(f"one worker ({store}) filling its tables")
            leads = int(drain([(base, proc)], sent, bench.key)[1][0]["leads_traced"])  # settled
            bench.stop(proc)
            records = asyncio.run(_changelog_records(bench.settings, app_id))
            # An empty worker (a group of its own, nothing to recover): the start-up cost.
            t0 = time.monotonic()
            base, proc = bench.start("empty", f"bench-empty-{uuid.uuid4().hex[:6]}", **env)
            _wait_ready(base, proc)
            empty = time.monotonic() - t0
            bench.stop(proc)
            _say(f"a fresh worker ({store}, empty data dir) replaying {records:,} records")
            t0 = time.monotonic()
            base, proc = bench.start("recover", app_id, **env)
            _wait_ready(base, proc)
            ready = time.monotonic() - t0
            recovered = worker_stats(base, bench.key) or {}
            if recovered.get("leads_traced") != leads:
                raise RuntimeError(f"recovered {recovered.get('leads_traced')} of {leads} leads")
            bench.stop(proc)
        finally:
            bench.stop_all()
        return RecoveryResult(store, sent, leads, records, empty, ready)

    return _run_in_tmp(body)
