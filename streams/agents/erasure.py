"""The worker's side of an erasure that is not a table: the archive, the read cache, the
dead-letter topic, the log.

The intake marks a lead erased in its trace state and hands it here; the files are rewritten
in a thread (a rewrite reads every archive file of the record types that can hold personal
data: seconds on a large archive, never on the event loop), one erasure at a time. Before
the rewrite scrubs them, the archived dead letters show which of ``leadflow.dead-letters``
hold the person: each gets a tombstone, and compaction deletes it from the topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streams.archive.erasures import (
    UNKEYED,
    Erased,
    ErasureLog,
    dead_letter_keys,
    purge_read_cache,
    rewrite,
)
from streams.archive.layout import archive_root
from streams.core import erasure

log = logging.getLogger(__name__)


def read_cache_dir(settings: Any) -> Path | None:
    """The dashboard's read cache (as dashboard.ui resolves it), None when it is off."""
    configured = settings.dashboard_cache_dir.strip()
    if configured.lower() == "off":
        return None
    return Path(configured) if configured else settings.data_path / "dashboard-cache"


Tombstone = Callable[[set[tuple[int, str]]], int]


def erase_files(settings: Any, lead_id: str | None, record: dict[str, Any],
                key: str | None, tombstone: Tombstone) -> dict[str, Any]:
    """Log the lead (or, with no lead, the identity key) as erased, tombstone its dead letters
    on the topic (``tombstone``: sends them, returns once acknowledged, raises if not: then
    nothing is rewritten and a repeat of the request tries again), then rewrite what the
    archive and the read cache hold of it. Idempotent: files already clean are left alone,
    so a repeat rewrites nothing and tombstones nothing."""
    root = archive_root(settings)
    erasures = ErasureLog(root)
    eid = record["erasure_id"]
    with erasures.locked(exclusive=True):
        known = erasures.erased()
        # A lead keeps the placeholder of its first erasure, whatever request repeats it.
        first = known.leads.get(lead_id, eid) if lead_id else eid
        entry = erasure.audit("erased", first, request=eid, requested_by=record[
            "requested_by"], via=record["via"])
        if lead_id:
            entry["lead_id"] = lead_id
        if key:
            entry["identity_key"] = key
        erasures.append(entry)
        target = Erased({lead_id: first} if lead_id else {}, {key: first} if key else {})
        letters = dead_letter_keys(root, target)
        # Written before the key existed (an HTTP input): the topic's retention deletes it.
        unkeyed = int(UNKEYED in letters)
        tombstones = tombstone(letters - {UNKEYED}) if letters - {UNKEYED} else 0
        done = rewrite(root, erasures.erased(), only=target)
        purged = purge_read_cache(read_cache_dir(settings), done.days)
        summary = erasure.audit("rewritten", first, request=eid, files=done.files,
                                rows=done.rows, cache_files=purged,
                                dead_letter_tombstones=tombstones)
        if unkeyed:
            summary["dead_letters_unkeyed"] = unkeyed
        if lead_id:
            summary["lead_id"] = lead_id
        erasures.append(summary)
    return summary


class Eraser:
    """Runs ``erase_files`` in a thread, in the order leads were handed over."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[str | None, dict[str, Any], str | None]] | None = None
        self._task: asyncio.Task[None] | None = None

    def submit(self, lead_id: str | None, record: dict[str, Any], key: str | None) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._queue.put_nowait((lead_id, record, key))

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            lead_id, record, key = await self._queue.get()
            try:
                summary = await asyncio.to_thread(erase_files, self.app.settings, lead_id,
                                                  record, key, self._tombstone)
                log.warning("erasure %s: lead erased, %s archive files rewritten, %s dead "
                            "letters tombstoned", record["erasure_id"], summary["files"],
                            summary["dead_letter_tombstones"], extra={"lead_id": lead_id})
            except Exception:  # the log says it was asked; a repeat of the request retries
                log.exception("erasure %s: the dead letters or the archive could not be erased",
                              record["erasure_id"], extra={"lead_id": lead_id})

    def _tombstone(self, letters: set[tuple[int, str]]) -> int:
        """From erase_files' thread: the tombstones sent by the worker's producer, on its
        loop; returns once the broker acknowledged them."""
        from streams.deadletter import tombstone

        assert self._loop is not None
        timeout = self.app.settings.send_timeout_s

        async def send() -> int:
            # Not cached: Faust may replace its aiokafka producer when it restarts.
            return await tombstone(self.app.producer._ensure_producer(), letters, timeout)

        return asyncio.run_coroutine_threadsafe(send(), self._loop).result(timeout + 5)
