"""Plain aiokafka helpers shared by the commands."""

from __future__ import annotations

import contextlib

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
                topic_configs={"cleanup.policy": "compact"} if t.compacted else {},
            )
            for t in missing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        return [t.name for t in missing]
    finally:
        await admin.close()

