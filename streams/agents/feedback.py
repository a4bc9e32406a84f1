"""Feedback: training examples from the handoff into the store retraining reads.

The intake's handoff sends a lead's example when one is due (``core.feedback``) on the
compacted one-partition ``leadflow.examples``; this agent appends each batch of them to the
JSON-lines store under DATA_DIR/examples (``models.examples``) in one write. Delivery is
at-least-once: a batch redelivered after a crash is appended again, and the store keeps each
lead's latest line, so a repeat changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams import topics
from streams.agents.emit import Emitter
from streams.core import feedback


def register(app: Any) -> None:
    from models.examples import ExampleStore

    settings, stats = app.settings, app.stats
    emitter = Emitter(app)
    store = ExampleStore(settings.data_path / "examples")
    source = app.topic(
        topics.EXAMPLES.name, key_serializer="raw", value_serializer="raw", partitions=1,
    )

    @app.agent(source, name="feedback")
    async def examples(stream: Any) -> None:
        async for events in stream.take_events(settings.intake_batch, within=0.2):
            stats.saw_internal(topics.EXAMPLES.name, len(events))
            batch = [feedback.example_from_record(record)
                     for _, record in await emitter.decoded(events, topics.EXAMPLES)]
            # In a thread: the append ends with an fsync, which can take a disk's while.
            stored = await asyncio.to_thread(store.append, batch)
            stats.handoff["examples"] += stored
