"""A produce request the broker never answers must not stop the worker's sends.

Seen on the embedded broker in the stop-and-restart test: a produce request of each worker
stayed unanswered, every agent waited on its flush behind it, and the lag froze for the rest
of the test (aiokafka waits Faust's 20-minute request timeout). A proxy in front of the broker
here swallows the answer to the first produce request; the worker's producer
(metrics.CountingKafkaProducer) must give up on it after its response timeout and deliver
the record on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.broker import EmbeddedBroker, free_port
from streams.metrics import CountingKafkaProducer

pytestmark = pytest.mark.integration

PRODUCE = 0  # Kafka API key


class SwallowingProxy:
    """TCP proxy to the broker that drops the response to the first produce request."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.swallowed = 0
        self._armed = True
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SwallowingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _connection(self, client_r: asyncio.StreamReader,
                          client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        dropped: set[int] = set()  # correlation ids whose responses never go back

        async def frames(reader: asyncio.StreamReader) -> Iterator[bytes]:
            while True:
                size = await reader.readexactly(4)
                yield size + await reader.readexactly(int.from_bytes(size, "big"))

        async def up() -> None:  # request: size, api key, api version, correlation id
            async for frame in frames(client_r):
                if self._armed and int.from_bytes(frame[4:6], "big") == PRODUCE:
                    self._armed = False
                    dropped.add(int.from_bytes(frame[8:12], "big"))
                broker_w.write(frame)
                await broker_w.drain()

        async def down() -> None:  # response: size, correlation id
            async for frame in frames(broker_r):
                if int.from_bytes(frame[4:8], "big") in dropped:
                    self.swallowed += 1
                    continue
                client_w.write(frame)
                await client_w.drain()

        try:
            await asyncio.gather(up(), down())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            client_w.close()
            broker_w.close()


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[EmbeddedBroker, SwallowingProxy]]:
    port = free_port()
    with SwallowingProxy(port) as proxy, \
            EmbeddedBroker(port, tmp_path / "broker.log", advertised_port=proxy.port) as broker:
        yield broker, proxy


@pytest.mark.timeout(120)
def test_an_unanswered_produce_request_is_sent_again(
    proxied: tuple[EmbeddedBroker, SwallowingProxy],
) -> None:
    _, proxy = proxied
    bootstrap = f"127.0.0.1:{proxy.port}"

    async def scenario() -> list[bytes]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic("probe", 1, 1)])
        finally:
            await admin.close()
        # Faust's settings: a 20-minute request timeout (also the batches' expiry).
        producer = CountingKafkaProducer(bootstrap_servers=bootstrap, sent=Counter(),
                                         request_timeout_ms=1_200_000, response_timeout_s=1)
        await producer.start()
        try:
            delivered = await producer.send("probe", b"first", key=b"k")
            await asyncio.wait_for(delivered, 20)
        finally:
            # stop() flushes: without the response timeout it would wait the 20 minutes too.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(producer.stop(), 10)
        consumer = AIOKafkaConsumer("probe", bootstrap_servers=bootstrap,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=5000)
        finally:
            await consumer.stop()
        return [r.value for records in batch.values() for r in records]

    values = asyncio.run(scenario())
    assert proxy.swallowed == 1  # the first answer never came back
    assert b"first" in values  # and the record still arrived
