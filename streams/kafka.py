"""Plain aiokafka helpers shared by the commands."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams import topics
from streams.settings import Settings


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every leadflow topic that does not exist yet; return the ones created.

    Created up front because a broker that auto-creates topics picks its own partition count,
    and Faust tables need their source topics co-partitioned with their changelogs.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics.ALL if t.name not in existing]
        new = [
            NewTopic(
                t.name,
                num_partitions=t.partitions or settings.partitions,
                replication_factor=1,
                topic_configs=t.topic_configs,
            )
            for t in missing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        return [t.name for t in missing]
    finally:
        await admin.close()



async def tail(settings: Settings, spec: topics.TopicSpec, ready: Any
               ) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """(Kafka timestamp, decoded record) of every record written to ``spec``'s topic from now
    on; ``ready`` (an asyncio.Event) is set once reading starts at the end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.app import make_registry
    from streams.codec import Codec

    codec = Codec(make_registry(settings), settings.max_record_bytes)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(spec.name, p)
                 for p in range(spec.partitions or settings.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)
        ready.set()
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    yield r.timestamp, codec.decode(r.value, spec.record)
    finally:
        await consumer.stop()
