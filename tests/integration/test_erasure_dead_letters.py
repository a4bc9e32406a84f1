"""A dead letter of an erased person that reaches the archive after the erasure (it was still
in flight): the archiver scrubs its row and tombstones it on leadflow.dead-letters before it
commits the offset, and skips the tombstone when it reads it back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams import topics
from streams.agents import archive as archiver
from streams.app import make_registry
from streams.archive import layout
from streams.archive.erasures import ErasureLog
from streams.broker import EmbeddedBroker
from streams.codec import Codec
from streams.core import erasure
from streams.deadletter import dead_letter, key_of
from streams.errors import ErrorCode, LeadflowError
from streams.kafka import ensure_topics
from streams.settings import Settings
from tests.integration.test_erasure import _compacted

pytestmark = pytest.mark.integration

EMAIL = f"late.letter-{uuid.uuid4().hex[:8]}@erasure-test.example.org"


async def _wait(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.2)


async def test_the_archiver_tombstones_a_dead_letter_it_scrubs(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = Settings.load(env={
        **os.environ, "LEADFLOW_BROKER_PORT": str(broker.port),
        "LEADFLOW_DATA_DIR": str(tmp_path), "LEADFLOW_ARCHIVE_FLUSH_S": "0.2",
        "LEADFLOW_APP_ID": f"leadflow-late-letter-{uuid.uuid4().hex[:8]}"})
    await ensure_topics(settings)
    root = layout.archive_root(settings)
    ErasureLog(root).append(erasure.audit("erased", str(uuid.uuid4()),
                                          identity_key=erasure.identity_key(EMAIL)))
    codec = Codec(make_registry(settings), settings.max_record_bytes)
    spec = topics.DEAD_LETTERS
    letters = [dead_letter(LeadflowError(ErrorCode.CONSENT_MISSING, "no consent"),
                           source_topic="http:POST /v1/leads",
                           value=f'{{"email": "{address}"}}'.encode())
               for address in (EMAIL, "someone.else@example.org")]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(spec.name, codec.encode(
                spec.subject, spec.record, letter), key_of(letter))
    finally:
        await producer.stop()

    def archived() -> int:
        files = layout.files(root, "DeadLetter")
        return layout.scan_files(files, "DeadLetter").collect().height if files else 0

    task = asyncio.create_task(archiver.run(settings))
    try:
        await _wait(lambda: archived() == 2, "both dead letters archived")
        view: dict[tuple[int, bytes | None], bytes | None] = {}

        async def tombstoned() -> bool:
            view.update(await _compacted(settings.bootstrap, spec.name))
            return any(k == key_of(letters[0]) and v is None for (_, k), v in view.items())

        deadline = asyncio.get_running_loop().time() + 30
        while not await tombstoned():
            assert asyncio.get_running_loop().time() < deadline, "no tombstone for the letter"
            await asyncio.sleep(0.3)
        await asyncio.sleep(1.5)  # the archiver reads its own tombstone back
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # The other person's dead letter stays as it was; the tombstone is not archived.
    assert view[next(k for k in view if k[1] == key_of(letters[1]))] is not None
    rows = layout.scan(root, "DeadLetter").collect()
    assert rows.height == 2 and EMAIL.encode() not in b"".join(rows["original_value"])
