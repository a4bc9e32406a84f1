"""Faust's aiokafka transport with a configurable consumer fetch wait.

Faust hard-codes ``fetch_max_wait_ms=1500``. On the embedded broker a fetch waits that long
for data, so every hop of a pipeline costs up to ~0.75 s (measured p50 947 ms over two hops;
17 ms with 20 ms). Faust loads transports by URL scheme through the ``faust.transports``
entry point, so ``leadflow://host:port`` selects this class (see pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        ends = dict(await super()._highwaters(partitions))
        settings = getattr(self.app, "settings", None)
        if settings is not None and settings.embedded:
            ends.update(await true_end_offsets(settings.bootstrap, ends))
        return ends

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        settings = getattr(self.app, "settings", None)
        if settings is not None:
            # Read by AIOKafkaConsumer.start() when it builds its Fetcher.
            consumer._fetch_max_wait_ms = settings.fetch_max_wait_ms
        return consumer


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Faust forgets the acked offsets of the revoked partitions before it waits for the
        # streams to finish, and does not commit what they ack while it waits: the work done
        # since the last periodic commit was read again by the partitions' next owner
        # (~5,000 duplicates after a worker restarted; bad input dead-lettered twice).
        await self.commit()
        await super().on_partitions_revoked(revoked)
        await self.commit()

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        # The fetch loop drops a message below the partition's read offset as already
        # delivered. Faust forgets the read offsets of revoked partitions, but the loop,
        # blocked handing a message to a suspended stream at the revoke, sets one again
        # afterwards. Reassigned, the partition is resumed before it is sought to the
        # committed offset, and everything fetched between that offset and the stale mark
        # was dropped, never processed, then committed past (seen: offsets 2368-2378 of a
        # partition, 11 leads missed a step). Every read offset dates from before this
        # assignment, so none holds.
        self._read_offset.clear()
        await super().on_partitions_assigned(assigned, generation_id)

    async def seek_to_committed(self) -> Mapping[Any, int | None]:
        # Faust's fetch loop discards records it was handed for a partition that is paused,
        # or once the flow stops or the generation changes, after aiokafka has moved past
        # them; seeking to the committed offsets after the rebalance brings them back. But
        # aiokafka does not seek a partition that has no committed offset, so on a new
        # group (a backlog, a second worker joining early) those records were lost: seen,
        # the first ~2,260 leads.captured records of three partitions, 6,488 of 20,000
        # leads without their capture. Such a partition starts again at the log's start
        # (changelogs are never committed: their readers keep their own positions).
        committed = await super().seek_to_committed()
        fresh = [tp for tp, offset in committed.items()
                 if not offset and not self._is_changelog_tp(tp)]
        if fresh:
            await self._thread.seek_to_beginning(*fresh)
        return committed

    def _new_offset(self, tp: Any) -> int | None:
        # Faust commits up to the end of the first run of consecutive offsets in its list
        # of acked offsets, but the list can hold an offset twice and offsets below the
        # committed one: the run then ended at the first repeat, and each commit moved the
        # partition on by one offset (seen: commits at 630, 631, 632 while the worker was
        # at 2,360; the next owner read those 1,700 messages again).
        acked = self._acked[tp]
        if acked:
            committed = self._committed_offset[tp]
            acked[:] = sorted({o for o in acked if committed is None or o >= committed})
        return super()._new_offset(tp)

    def ack(self, message: Any) -> bool:
        # A stream acks the messages it skips (fetched before a rebalance, or read while the
        # flow is suspended) as well as those it processed. Counted as done, a skipped
        # offset let the next commit pass the messages before it that had yet to be
        # fetched again. Only a message the stream took for processing is tracked.
        if not message.tracked:
            message.acked = True
            return False
        return bool(super().ack(message))


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


async def true_end_offsets(bootstrap: str, ends: Mapping[Any, int]) -> dict[Any, int]:
    """The end offsets (last offset + 1) of ``ends``' partitions, read from the records.

    The embedded broker (Tansu) answers ListOffsets(latest) with the last *batch's* base
    offset + 1: three records at offsets 6-8 in one batch give 7, not 9. Faust recovers a
    table up to that mark and stops, so a worker that took over a partition lost the table
    writes of the changelog's last batch (a flush is one batch of up to ``intake_batch``
    leads): measured, 226 of 1,500 leads missed steps after a failover. A fetch from the
    reported mark - 1 returns that whole batch; its last offset + 1 is the true end."""
    from aiokafka import TopicPartition

    todo = {TopicPartition(tp.topic, tp.partition): (tp, end) for tp, end in ends.items()
            if end}
    if not todo:
        return {}
    probe = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await probe.start()
    out: dict[Any, int] = {}
    try:
        probe.assign(list(todo))
        for tp, (_, end) in todo.items():
            probe.seek(tp, end - 1)
        pending = set(todo)
        for _ in range(20):  # a fetch per partition at most, normally one round
            if not pending:
                break
            for tp, records in (await probe.getmany(*pending, timeout_ms=200)).items():
                if records:
                    orig, end = todo[tp]
                    out[orig] = max(end, records[-1].offset + 1)
                    pending.discard(tp)
    finally:
        await probe.stop()
    return out
