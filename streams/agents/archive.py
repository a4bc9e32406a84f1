"""Archive every inbound event and every decision as Parquet (see streams/archive/).

The archiver is a process of its own, started and watched by the worker: decoding every
record again and building Parquet costs ~50 µs of CPU per record, which on the worker's event
loop would come straight off the handoff's throughput and latency. It is a consumer group of
its own (``<app_id>-archive``, not a Faust agent) over every topic in ``ARCHIVED``, so a slow
disk delays the archive only. Records are decoded and written in micro-batches in a thread;
offsets are committed only after their rows are on disk (at least once; the writer drops
events it already holds). A record that does not decode is archived under its topic's record
type with the envelope columns set and nulls elsewhere, so a replay sends it again as it came.
A dead letter of an erased person that reaches the archive after the erasure is scrubbed
there, and tombstoned on its topic before its offset is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from typing import Any

from streams.archive.erasures import ErasureLog
from streams.archive.layout import ARCHIVED, archive_root
from streams.archive.writer import Raw, Writer
from streams.settings import Settings

log = logging.getLogger(__name__)

# Buffered records at which fetching pauses until a flush succeeds (in batches).
BACKLOG_BATCHES = 4
RETRY_S = 1.0
STOP_S = 30.0  # how long a stopping worker waits for the archiver's last flush


def register(app: Any) -> None:
    """Run the archiver beside the worker, restart it if it dies, stop it with the worker."""
    settings = app.settings
    if not settings.archive:
        return

    @app.task
    async def archive_topics() -> None:
        context = multiprocessing.get_context("spawn")  # no copy of the worker's loop
        proc = None
        try:
            while True:
                if proc is None or not proc.is_alive():
                    if proc is not None:
                        log.error("archiver exited with code %s; restarting it", proc.exitcode)
                    proc = context.Process(target=main, args=(settings,), name="archiver")
                    proc.start()
                await asyncio.sleep(RETRY_S)
        finally:
            if proc is not None and proc.is_alive():
                proc.terminate()  # SIGTERM: the archiver flushes, commits and exits
                await asyncio.to_thread(proc.join, STOP_S)
                if proc.is_alive():
                    proc.kill()


def main(settings: Settings) -> None:
    """The archiver process: until SIGTERM (or its parent's death), then a last flush."""
    from streams.broker import _die_with_parent

    _die_with_parent()
    from streams.logs import configure

    configure(settings)  # the worker's format: JSON lines off a terminal, redacted
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_until_stopped(settings))


async def _until_stopped(settings: Settings) -> None:
    task = asyncio.create_task(run(settings))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def run(settings: Settings) -> None:
    """Consume, write, commit; on cancellation flush what is buffered."""
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener

    from streams.app import make_registry
    from streams.codec import Codec

    codec = Codec(make_registry(settings), settings.max_record_bytes)
    writer = Writer(
        archive_root(settings), codec.decode, batch=settings.archive_batch,
        flush_s=settings.archive_flush_s, schema_of=codec.registry.schema,
        erasures=ErasureLog(archive_root(settings)),
    )

    class Revoked(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            writer.drop({(tp.topic, tp.partition) for tp in revoked})

        def on_partitions_assigned(self, assigned: Any) -> None:
            pass

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=f"{settings.app_id}-archive",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000),
        rebalance_timeout_ms=int(settings.rebalance_timeout_s * 1000),
    )
    consumer.subscribe(list(ARCHIVED), listener=Revoked())
    tombstones = Tombstones(settings)
    await consumer.start()
    try:
        while True:
            if writer.pending() < BACKLOG_BATCHES * writer.batch:
                batch = await consumer.getmany(timeout_ms=250, max_records=writer.batch)
                for tp, messages in batch.items():
                    writer.add(tp.topic, tp.partition, [
                        Raw(m.offset, m.key, m.value, m.timestamp) for m in messages
                    ])
            else:
                await asyncio.sleep(RETRY_S)
            if writer.due() and not await _flush(consumer, writer, tombstones, force=False):
                await asyncio.sleep(RETRY_S)
    finally:
        try:
            await _flush(consumer, writer, tombstones, force=True)
        finally:
            await consumer.stop()
            await tombstones.stop()


class Tombstones:
    """The archiver's producer for dead letters it scrubbed (started on first use), and the
    offsets it holds back until they are tombstoned: were it to die first, it reads them
    again and finds the same dead letters."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: Any = None
        self.held: dict[tuple[str, int], int] = {}  # (topic, partition) -> offset to commit

    async def send(self, writer: Writer) -> None:
        from aiokafka import AIOKafkaProducer

        from streams.archive.erasures import UNKEYED
        from streams.deadletter import tombstone

        letters = writer.dead_letters - {UNKEYED}
        if letters:
            if self.producer is None:
                self.producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap,
                                                 acks="all")
                await self.producer.start()
            await tombstone(self.producer, letters, self.settings.send_timeout_s)
        writer.dead_letters.clear()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()


async def _flush(consumer: Any, writer: Writer, tombstones: Tombstones, *, force: bool
                 ) -> bool:
    """Write what is due, tombstone the dead letters it scrubbed, then commit it; False
    when the write or the tombstones failed (retried later)."""
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    try:
        positions = await asyncio.to_thread(writer.flush, force=force)
    except Exception:  # disk full, permissions, an unreadable file: keep the rows, retry
        log.exception("archive: cannot write to %s; will retry", writer.root)
        return False
    if writer.dead_letters:
        try:
            await tombstones.send(writer)
        except Exception:
            log.exception("archive: erased dead letters not tombstoned; will retry")
            tombstones.held.update(positions)
            return False
    positions, tombstones.held = {**tombstones.held, **positions}, {}
    if positions:
        try:
            await consumer.commit({TopicPartition(t, p): o for (t, p), o in positions.items()})
        except KafkaError as exc:
            # The rows are on disk; whoever reads these offsets again drops them as known.
            log.warning("archive: offsets not committed (%s); they will be read again", exc)
    return True
