"""The one faust.App, built from settings (never at import time)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from streams.codec import Codec
from streams.registry import FileRegistry, HttpRegistry, Registry
from streams.settings import Settings
from streams.stats import Stats


class _FlowControl(FlowControlEvent):
    """Faust's flow control, except that resuming keeps what the streams' queues hold.

    After a rebalance Faust resumes the partitions, seeks them to their committed offsets
    (the fetcher delivers from there at once) and only then resumes the flow, which used to
    clear every stream's queue: the messages fetched in between were thrown away, never
    processed and never fetched again, and a later commit passed them (seen in per-event
    logs: offsets 604-606 of one partition lost at the resume). Messages from before a rebalance are
    still dropped: Faust clears the queues when partitions are revoked, and a stream skips
    a message of an older generation."""

    def resume(self) -> None:
        self._suspend.clear()
        self._resume.set()


class LeadflowApp(faust.App):
    """faust.App carrying leadflow's settings, codec and counters."""

    settings: Settings
    policies: Any  # core.handoff.Policies
    codec: Codec
    stats: Stats
    tables_by_name: dict[str, Any]
    intake_progress: Any  # core.routing_order.Progress: what intake has flushed
    # Awaited when the app starts, before its consumer and agents: what must be in place
    # before the first event is processed (the scoring model in force).
    startup_hooks: list[Callable[[], Awaitable[None]]]

    async def on_start(self) -> None:
        await super().on_start()
        for hook in getattr(self, "startup_hooks", ()):
            await hook()

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return _FlowControl(loop=self.loop)

    def _new_producer(self) -> Any:
        # Faust's aiokafka producer, counting records sent per topic for GET /metrics.
        from streams.metrics import CountingProducer

        return CountingProducer(self.transport, loop=self.loop, beacon=self.beacon)


def make_registry(settings: Settings) -> Registry:
    if settings.schema_registry_url:
        return HttpRegistry(settings.schema_registry_url)
    settings.registry_path.parent.mkdir(parents=True, exist_ok=True)
    return FileRegistry(settings.registry_path)


def new_app(settings: Settings, *, store: str, datadir: Path, web: bool) -> LeadflowApp:
    """A LeadflowApp with our broker, group and web settings, codec and counters; no agents."""
    datadir.mkdir(parents=True, exist_ok=True)
    app = LeadflowApp(
        settings.app_id,
        broker=settings.faust_broker,
        store=store,
        datadir=str(datadir),
        autodiscover=False,
        web_enabled=web,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        producer_linger=settings.producer_linger_ms / 1000.0,
        producer_max_batch_size=settings.producer_max_batch_bytes,
        # Faust's default (1,000,000) is under max_record_bytes: a record the codec allows,
        # e.g. the dead letter of a nearly 1 MiB input, failed to send and crashed its agent.
        producer_max_request_size=max(1_000_000, settings.max_record_bytes + 65_536),
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=settings.standby_replicas,
        # Small hosts: RocksDB's defaults size block cache and write buffers for servers.
        rocksdb_options={
            "max_open_files": 256,
            "write_buffer_size": 8 * 1024 * 1024,
            "max_write_buffer_number": 2,
            "block_cache_size": 16 * 1024 * 1024,
        },
    )
    app.settings = settings
    app.codec = Codec(make_registry(settings), settings.max_record_bytes)
    app.stats = Stats()
    app.tables_by_name = {}
    app.startup_hooks = []
    return app


def build_app(settings: Settings, *, api: bool = True) -> LeadflowApp:
    from streams import policies
    from streams.agents import (
        archive,
        external,
        feedback,
        identity,
        intake,
        marketing,
        models,
        notify,
        routing,
        watermarks,
    )

    if settings.store == "rocksdb":
        from streams import rocksdb_store

        rocksdb_store.configure(settings.rocksdb_memory_mb * 2**20)
    app = new_app(
        settings,
        store="leadflow-rocksdb://" if settings.store == "rocksdb" else "memory://",
        # Per app id: RocksDB files of two apps must never share a directory.
        datadir=(Path(settings.state_dir) if settings.state_dir
                 else settings.data_path / "worker") / settings.app_id,
        web=api,
    )
    app.policies = policies.load(settings)
    intake.register(app)
    identity.register(app)
    external.register(app)
    routing.register(app)
    watermarks.register(app)
    marketing.register(app)
    notify.register(app)
    archive.register(app)
    feedback.register(app)
    models.register(app)
    _short_gc_pauses(app)
    if api:
        from streams import api as api_module
        from streams.connectors import http as connectors_http

        api_module.register(app)
        connectors_http.register(app)  # POST /v1/connectors/... (README "Connect your systems")
    return app


FREEZE_EVERY_S = 5.0
FULL_GC_EVERY = 120  # freezes (10 minutes) between full collections
# Freezes (1 minute) between two hand-backs of freed malloc memory (streams/malloc.py): the
# resident set then follows the live memory rather than what glibc keeps in reserve.
TRIM_EVERY = 12


def _short_gc_pauses(app: faust.App) -> None:
    """Keep the cyclic garbage collector's pauses short as the tables grow.

    The lead states are millions of small long-lived objects; every full collection walks
    all of them, on the event loop. After a 50k-event backlog that put HTTP-to-trace at
    p50 379 ms / p99 1,170 ms at 200 req/s; moving the survivors out of the collector's
    view every few seconds (``gc.freeze``) brought it to p50 44 / p99 96 ms. Frozen objects
    caught in a reference cycle would never be collected, so every ten minutes everything
    is unfrozen and collected once (one long pause, instead of one every few seconds)."""
    import gc

    from streams import malloc

    ticks = 0

    @app.timer(interval=FREEZE_EVERY_S, name="gc.freeze")
    async def freeze() -> None:
        nonlocal ticks
        ticks += 1
        if ticks % FULL_GC_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()
        if ticks % TRIM_EVERY == 0:
            malloc.trim()


def run_worker(app: faust.App, loglevel: str) -> None:
    """Run a Faust worker in the foreground until SIGINT/SIGTERM."""
    from faust.worker import Worker

    from streams import malloc
    from streams.logs import logging_config

    # Before RocksDB starts its threads: each would get a malloc arena of its own.
    malloc.limit_arenas(2)
    # Our handler and formatter instead of Faust's: JSON lines off a terminal, redacted.
    worker = Worker(app, loglevel=loglevel, quiet=True,
                    logging_config=logging_config(app.settings, loglevel))
    # Faust's terminal spinner sets the root logger to DEBUG so that it can spin on every
    # record: aiokafka then builds a debug record per message sent (~10 % of the CPU).
    worker.spinner = None
    worker.execute_from_commandline()
