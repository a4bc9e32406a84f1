"""Sending from agents through Faust's own aiokafka producer, without Faust's per-send plumbing.

Faust's ``topic.send()`` / ``table[key] = value`` cost ~200 µs a message on this machine
(FutureMessage, callbacks, send_soon buffer) — more than the whole consume path. Going straight
to the aiokafka producer Faust already runs keeps its flush() before every offset commit, so
offsets are never committed ahead of what their events produced (at-least-once holds).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from faust.stores.memory import Store as MemoryStore

from streams.agents.sla import partition_of
from streams.topics import TopicSpec

Staged = dict[tuple[str, int], list[tuple[bytes | None, bytes]]]


async def send_batches(producer: Any, staged: Staged) -> list[tuple[str, int, int, Any]]:
    """Send (key, value) records as one aiokafka batch per topic-partition (~5 µs a record
    instead of ~40 µs through ``send()``); a record larger than a batch goes on its own.
    Returns (topic, partition, records, future of the first record's metadata) per send, in
    the order sent: a caller that awaits them knows the offsets the records got."""
    sent: list[tuple[str, int, int, Any]] = []
    for (topic, partition), records in staged.items():
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is not None:
                continue
            if batch.record_count():  # full: send it, start another
                n = batch.record_count()
                sent.append((topic, partition, n,
                             await producer.send_batch(batch, topic, partition=partition)))
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is not None:
                    continue
            sent.append((topic, partition, 1,
                         await producer.send(topic, value, key, partition)))
        if batch.record_count():
            n = batch.record_count()
            sent.append((topic, partition, n,
                         await producer.send_batch(batch, topic, partition=partition)))
    return sent


@contextlib.contextmanager
def acked_if_flushed(events: list[Any]) -> Iterator[None]:
    """Around the processing and flush of a ``take_events`` batch. Faust acks the batch's
    events when the agent asks for the next batch or when the agent ends, flushed or not:
    stopped (SIGTERM cancels the agents) between its writes and their flush, the batch was
    acked and committed while its writes were never sent. Untracked, an event is not acked
    (``transport.Consumer.ack``): the commit stops before it and the next owner reads it
    again."""
    try:
        yield
    except BaseException:
        for event in events:
            event.message.tracked = False
        raise


class Emitter:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._staged: Staged = {}
        self._sending = asyncio.Lock()
        self._unacked: list[Any] = []  # delivery futures of what was sent since the last flush

    @property
    def producer(self) -> Any:
        # Not cached: Faust may replace its aiokafka producer when it restarts the service.
        return self.app.producer._ensure_producer()

    async def send(
        self, spec: TopicSpec, key: bytes | None, record: dict[str, Any],
        partition: int | None = None,
    ) -> None:
        """``partition``: where ``key`` goes, when the caller knows (aiokafka's partitioner
        hashes every key in pure Python otherwise)."""
        value = self.app.codec.encode(spec.subject, spec.record, record)
        unacked = self._unacked
        unacked.append(
            await self.producer.send(spec.name, key=key, value=value, partition=partition))
        if len(unacked) >= 4096:  # an agent that never flushes (identity) keeps no history
            self._unacked = [f for f in unacked if not f.done()]

    def stage(self, spec: TopicSpec, key: bytes, record: dict[str, Any],
              partition: int | None = None) -> None:
        """Encode now, send with the next ``flush``: agents flush after each batch of events,
        before Faust may commit their offsets. ``partition``: as for ``send`` (None: Kafka's
        default partition of ``key``)."""
        self.stage_encoded(spec, key, self.app.codec.encode(spec.subject, spec.record, record),
                           partition)

    def stage_encoded(self, spec: TopicSpec, key: bytes, value: bytes,
                      partition: int | None = None) -> None:
        """``stage`` for a value already encoded (framed) for ``spec``'s topic."""
        if partition is None:
            partition = partition_of(key.decode(), spec.partitions or self.app.settings.partitions)
        self._staged.setdefault((spec.name, partition), []).append((key, value))

    async def flush(self) -> None:
        """Send what was staged and wait until the broker has everything sent so far. Agents
        flush the records an event decided before the table state that says they were sent
        (a verdict's "judged" mark, a routing request's "applied" one): aiokafka delivers
        each partition on its own, so a state sent after them could be on the broker while
        they were not, and a worker killed then never sent them (routing decisions and
        verdicts missing in the chaos test)."""
        async with self._sending:  # in staging order: see ChangelogTable.flush
            if self._staged:
                staged, self._staged = self._staged, {}
                self._unacked += [fut for *_, fut in await send_batches(self.producer, staged)]
            unacked, self._unacked = self._unacked, []
            if unacked:
                await asyncio.gather(*unacked)

    async def decoded(self, events: list[Any], spec: TopicSpec) -> list[tuple[Any, Any]]:
        """(event, record) of each event of ``spec``'s topic that decodes; the others go to
        the dead letters. For leadflow's own topics: a bad record there is a bug, kept to
        replay."""
        from streams.errors import LeadflowError

        out = []
        for event in events:
            try:
                record = self.app.codec.decode(event.message.value or b"", spec.record)
            except LeadflowError as err:
                await self.reject(err, event.message)
                continue
            out.append((event, record))
        return out

    async def reject(self, err: Any, msg: Any) -> None:
        """Dead-letter a consumed message (its original bytes, where it came from, why)."""
        from streams import topics
        from streams.deadletter import dead_letter, key_of

        letter = dead_letter(
            err, source_topic=msg.topic, value=msg.value or b"", key=msg.key,
            partition=msg.partition, offset=msg.offset, limit=self.app.codec.max_record_bytes,
        )
        await self.send(topics.DEAD_LETTERS, key_of(letter), letter)


class ChangelogTable:
    """A Faust table whose changelog records are sent in per-partition batches.

    ``put`` stages the write (later events of the same batch read it through ``get``);
    ``flush`` sends the staged records, one per key however often it was written, as one
    aiokafka batch per partition (~5 µs a record instead of ~40 µs through ``send()``).
    Agents flush before taking the next batch, i.e. before Faust may commit the offsets of
    the events that made them. Recovery stays Faust's own: same changelog topic, json
    values, str keys.

    With RocksDB the store is written only once the broker has acknowledged the changelog
    records, in one write batch per partition with the offset they got (Faust's persisted
    offset, where its recovery starts): the database is always the changelog up to that
    offset, never ahead of it. Written at ``put``, a write the worker died before sending
    was on disk and not in the changelog; the event, read again, was a duplicate of what
    the disk held and was never sent: lost for the partition's next owner. And an offset
    never advanced made every restart replay the whole changelog written since the
    previous one. A memory store is rebuilt from the changelog at every start, so it is
    written at once.
    """

    def __init__(self, emitter: Emitter, table: Any) -> None:
        self.emitter = emitter
        self.table = table
        self._staged: dict[str, tuple[int, Any]] = {}
        # Sent, not yet acknowledged (RocksDB only): still read from here.
        self._inflight: dict[str, tuple[int, Any]] = {}
        self._sending = asyncio.Lock()

    def get(self, key: str) -> Any:
        store = self.table.data
        if isinstance(store, MemoryStore):
            # Its own dict: the mapping wrapper costs ~1 µs a call on the hot path.
            return store.data.get(key)
        hit = self._staged.get(key) or self._inflight.get(key)
        if hit is not None:
            return hit[1]
        return store.get(key)

    def items(self) -> list[tuple[str, Any]]:
        """Every key and value, with the writes not yet in the store (what ``get`` reads):
        with RocksDB, the store alone is the state as of the last acknowledged flush."""
        store = self.table.data
        if isinstance(store, MemoryStore):
            return list(store.data.items())
        pending = {**self._inflight, **self._staged}
        out = [(k, v) for k, v in store.items() if k not in pending]
        out += [(k, v) for k, (_, v) in pending.items()]
        return out

    def put(self, key: str, value: Any, partition: int) -> None:
        """Write; ``partition`` is the key's partition (the source event's, in a stream).
        A memory store is a dict that needs no partition; RocksDB gets it at ``flush``."""
        store = self.table.data
        if isinstance(store, MemoryStore):
            store.data[key] = value
        self._staged[key] = (partition, value)

    async def flush(self) -> None:
        # One flush at a time, each sending all that was staged before it: the agents and the
        # SLA timer share the table, and aiokafka does not keep two callers' batches for one
        # partition in call order (a batch added while another waits for the partition's
        # queue to drain can overtake it). An older state of a lead written after a newer one
        # is what recovery would load: a rebalance lost whole steps (1 lead in 500).
        async with self._sending:
            if not self._staged:
                return
            staged, self._staged = self._staged, {}
            topic = self.table.changelog_topic.get_topic_name()
            records: Staged = {}
            for key, (partition, value) in staged.items():
                # json like Faust's own writes, for its recovery
                records.setdefault((topic, partition), []).append(
                    (orjson.dumps(key), orjson.dumps(value))
                )
            store = self.table.data
            if isinstance(store, MemoryStore):
                await send_batches(self.emitter.producer, records)
                return
            self._inflight = staged
            try:
                sent = await send_batches(self.emitter.producer, records)
                offsets = [(p, n, (await fut).offset) for _, p, n, fut in sent]
            except BaseException:
                for key, entry in staged.items():  # not sent: stays to be sent
                    self._staged.setdefault(key, entry)
                self._inflight = {}
                raise
            self._inflight = {}
            _persist(store, topic, records, offsets)


def _persist(store: Any, topic: str, records: Staged,
             offsets: list[tuple[int, int, int]]) -> None:
    """Write acknowledged changelog records to RocksDB, one write batch per partition with
    the offset of its last record, if they follow on from the offset the database holds
    (then it is the changelog up to that offset). Records that do not (another worker wrote
    in between, or the database holds none yet) are written without moving the offset:
    recovery reads them again, in the changelog's order. Records at offsets the database
    already has, or of a partition revoked meanwhile, are not written. No await in here:
    nothing else writes the database in between."""
    import rocksdict
    from faust.types import TP

    runs: dict[int, list[tuple[int, int]]] = {}
    for partition, n, base in offsets:
        runs.setdefault(partition, []).append((base, base + n - 1))
    index = store._key_index
    for (_, partition), items in records.items():
        db = store._dbs.get(partition)
        if db is None:
            # Revoked meanwhile: Faust let go of the database without closing it, and opening
            # it again could meet RocksDB's lock. The changelog has the records; recovery
            # reads them if the partition comes back.
            continue
        held = store.persisted_offset(TP(topic, partition))
        start = last = -1 if held is None else held
        sent = sorted(runs.get(partition, ()))
        if not sent or sent[0][0] <= last:
            # The database already has these offsets (recovered as a standby meanwhile):
            # what it holds is as new or newer.
            continue
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in items:
            batch.put(key, value)
            index[key] = partition
        for first, end in sent:
            if first != last + 1:
                break
            last = end
        if last != start:
            batch.put(store.offset_key, str(last).encode())
        db.write(batch)
