"""Sending from agents through Faust's own aiokafka producer, without Faust's per-send plumbing.

Faust's ``topic.send()`` / ``table[key] = value`` cost ~200 µs a message on this machine
(FutureMessage, callbacks, send_soon buffer) — more than the whole consume path. Going straight
to the aiokafka producer Faust already runs keeps its flush() before every offset commit, so
offsets are never committed ahead of what their events produced (at-least-once holds).
"""

from __future__ import annotations

from typing import Any

import orjson

from streams.topics import TopicSpec


class Emitter:
    def __init__(self, app: Any) -> None:
        self.app = app

    @property
    def producer(self) -> Any:
        # Not cached: Faust may replace its aiokafka producer when it restarts the service.
        return self.app.producer._ensure_producer()

    async def send(self, spec: TopicSpec, key: bytes | None, record: dict[str, Any]) -> None:
        value = self.app.codec.encode(spec.subject, spec.record, record)
        await self.producer.send(spec.name, key=key, value=value)


class ChangelogTable:
    """A Faust table whose writes go to the store and straight to its changelog topic.

    Recovery stays Faust's own: same changelog topic, json values, str keys.
    """

    def __init__(self, emitter: Emitter, table: Any) -> None:
        self.emitter = emitter
        self.table = table

    def get(self, key: str) -> Any:
        return self.table.data.get(key)

    async def put(self, key: str, value: Any, partition: int) -> None:
        """Write inside stream iteration; ``partition`` is the source event's partition."""
        self.table.data[key] = value
        await self.emitter.producer.send(
            self.table.changelog_topic.get_topic_name(),
            key=orjson.dumps(key),  # json like Faust's own writes, for its recovery
            value=orjson.dumps(value),
            partition=partition,
        )
