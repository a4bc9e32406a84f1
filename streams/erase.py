"""Asking for an erasure: what ``leadflow erase``, ``POST /v1/admin/erasures`` and a
connector's privacy deletion (HubSpot's ``contact.privacyDeletion``) call.

``prepare`` is the whole decision (core.erasure): the subject, the erasure id, the record and
its key. ``request`` sends it to ``leadflow.erasures`` and writes the request to the erasure
log (the audit: who, when, which erasure — the e-mail never); any intake path with its own
producer calls ``prepare`` and sends the pair itself, then ``audit_request``. The workers do
the erasure (tables, changelogs, archive, read cache); ``wait`` follows it in the log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from streams import topics
from streams.archive.erasures import ErasureLog
from streams.archive.layout import archive_root
from streams.core import erasure
from streams.errors import ErrorCode, LeadflowError
from streams.settings import Settings

Send = Callable[[str, bytes, bytes], Awaitable[Any]]


def prepare(subject: str, *, by: str, via: str, correlation_id: str | None = None
            ) -> tuple[bytes, dict[str, Any]]:
    """(key, ErasureRequested record) for ``LEAD_ID|EMAIL``; LeadflowError when it is
    neither."""
    record = erasure.request(erasure.subject_of(subject), by=by, via=via,
                             at=datetime.now(UTC), correlation_id=correlation_id)
    return erasure.request_key(record), record


def audit_request(settings: Settings, record: dict[str, Any]) -> None:
    entry = erasure.audit("requested", record["erasure_id"], requested_by=record["requested_by"],
                          via=record["via"], subject="lead" if record["lead_id"] else "email")
    if record["lead_id"]:
        entry["lead_id"] = record["lead_id"]
    ErasureLog(archive_root(settings)).append(entry)


async def request(settings: Settings, subject: str, *, by: str, via: str,
                  codec: Any = None, send: Send | None = None) -> dict[str, Any]:
    """Ask for the erasure of ``subject``; returns the record sent (its erasure id)."""
    key, record = prepare(subject, by=by, via=via)
    if codec is None:
        from streams.app import make_registry
        from streams.codec import Codec

        codec = Codec(make_registry(settings), settings.max_record_bytes)
    spec = topics.ERASURES
    value = codec.encode(spec.subject, spec.record, record)
    audit_request(settings, record)
    if send is not None:
        await send(spec.name, key, value)
        return record
    from aiokafka import AIOKafkaProducer

    from streams.kafka import ensure_topics

    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    try:
        await ensure_topics(settings)
        await producer.start()
        await producer.send_and_wait(spec.name, value, key)
    except Exception as exc:
        raise LeadflowError(ErrorCode.UNAVAILABLE,
                            f"no broker acknowledged the erasure at {settings.bootstrap}: {exc}"
                            ) from exc
    finally:
        await producer.stop()
    return record


def progress(settings: Settings, record: dict[str, Any]) -> dict[str, Any] | None:
    """The erasure's outcome once the workers are done with it, else None: the leads it
    reached, what was rewritten for them and how many of their dead letters were
    tombstoned."""
    eid = record["erasure_id"]
    entries = ErasureLog(archive_root(settings)).entries()
    # Only what followed this request: a repeat has the same id as the first time.
    asked = [i for i, e in enumerate(entries)
             if e.get("kind") == "requested" and e["erasure_id"] == eid]
    entries = entries[asked[-1] + 1:] if asked else entries
    rewritten = {e.get("lead_id"): e for e in entries
                 if e.get("kind") == "rewritten" and e.get("request") == eid}
    if record["lead_id"]:
        leads = [record["lead_id"]]
    else:
        found = [e for e in entries if e.get("kind") == "identity" and e["erasure_id"] == eid]
        if not found:
            return None
        leads = found[-1]["leads"] or [None]
    if not all(lead in rewritten for lead in leads):
        return None
    return {"erasure_id": eid, "leads": [lead for lead in leads if lead],
            "files": sum(rewritten[lead]["files"] for lead in leads),
            "rows": sum(rewritten[lead]["rows"] for lead in leads),
            "dead_letter_tombstones": sum(rewritten[lead].get("dead_letter_tombstones", 0)
                                          for lead in leads)}


def wait(settings: Settings, record: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while (done := progress(settings, record)) is None:
        if time.monotonic() > deadline:
            raise LeadflowError(ErrorCode.UNAVAILABLE, (
                f"erasure {record['erasure_id']} not done within {timeout_s:.0f} s: is a "
                "worker running? It goes on when one reads leadflow.erasures"))
        time.sleep(0.2)
    return done


def run(settings: Settings, subject: str, *, by: str, timeout_s: float | None) -> dict[str, Any]:
    """The command line's erasure: ask, then (unless ``timeout_s`` is None) wait for it."""
    record = asyncio.run(request(settings, subject, by=by, via="cli"))
    if timeout_s is None:
        return {"erasure_id": record["erasure_id"], "status": "requested"}
    return {**wait(settings, record, timeout_s), "status": "done"}
