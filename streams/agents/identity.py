"""Identity: the same normalised email is the same person.

Claims arrive keyed by the person's identity key (a hash of the normalised email,
core.erasure.identity_key), so one person's claims meet on one partition. A claim naming a
vendor object (``external_key``) asks which lead the object belongs to; the answer, and a new
one whenever the person's canonical lead changes, goes to leadflow.external-events keyed by
the object (agents.external). When a claim makes
a lead an alias of another (or changes which lead is canonical), both leads' traces
get an IdentityResolved step, sent keyed by lead id back to the intake agent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams import topics
from streams.agents.emit import Emitter
from streams.agents.erasure import Eraser
from streams.agents.external import control_record
from streams.archive.erasures import ErasureLog
from streams.archive.layout import archive_root
from streams.core import contract, erasure, identity
from streams.errors import LeadflowError


def register(app: Any) -> None:
    settings = app.settings
    identities = app.Table(
        "identities",
        partitions=settings.partitions,
        key_type=str,
    )
    app.tables_by_name["identities"] = identities
    source = app.topic(
        topics.IDENTITY_CLAIMS.name,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    codec = app.codec
    emitter = Emitter(app)
    resolved = topics.IDENTITY_RESOLVED

    @app.agent(source, name="identity")
    async def resolve(stream: Any) -> None:
        async for event in stream.events():
            app.stats.saw_internal(topics.IDENTITY_CLAIMS.name)
            try:
                claim = codec.decode(event.message.value or b"", topics.IDENTITY_CLAIMS.record)
            except LeadflowError:
                # Only leadflow writes this internal topic; a bad record is a bug, not input.
                app.log.exception("undecodable identity claim at offset %s", event.message.offset)
                continue
            email = claim["email_key"]
            occurred_ms = contract.epoch_ms(claim["occurred_at"])
            entry, links, answers = identity.resolve(
                identities.get(email), claim["lead_id"], occurred_ms, claim.get("external_key"))
            identities[email] = entry
            for key, lead_id in answers:  # which lead each vendor object of the person is
                await emitter.send(topics.EXTERNAL, key.encode(), control_record(
                    key, "LINK", identity.answer_event_id(key, lead_id, entry["canonical_at"]),
                    contract.from_epoch_ms(entry["canonical_at"]), lead_id=lead_id,
                    derived_lead_id=(claim["lead_id"] if key == claim.get("external_key")
                                     else None),
                    identity_key=email, correlation_id=claim.get("correlation_id")))
            for link in links:
                linked = contract.from_epoch_ms(identity.linked_at(entry, link))
                for lead_id in (link.alias_lead_id, link.canonical_lead_id):
                    record = {
                        "lead_id": lead_id,
                        "canonical_lead_id": link.canonical_lead_id,
                        "alias_lead_id": link.alias_lead_id,
                        # Deterministic, so a replayed claim is a duplicate step, not a new one.
                        "event_id": identity.link_event_id(link, entry["canonical_at"]),
                        "occurred_at": linked,
                        "correlation_id": claim.get("correlation_id"),
                    }
                    await emitter.send(resolved, lead_id.encode(), record)

    erasures = app.topic(
        topics.ERASURES.name,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    erasure_log = ErasureLog(archive_root(settings))
    eraser = Eraser(app)

    @app.agent(erasures, name="identity.erasures")
    async def forget(stream: Any) -> None:
        """An erasure by e-mail (or handed over by a lead's erasure): the person's identity
        entry goes (a tombstone keyed by the identity key: no e-mail in it) and each of its
        leads gets its own erasure, keyed by lead id for the intake. Requests naming a lead
        are the intake's (it reads this topic too)."""
        async for event in stream.events():
            app.stats.saw_internal(topics.ERASURES.name)
            try:
                record = codec.decode(event.message.value or b"", topics.ERASURES.record)
            except LeadflowError:
                app.log.exception("undecodable erasure at offset %s", event.message.offset)
                continue
            key = record.get("identity_key")
            if record.get("lead_id") or not key:
                continue
            entry = identities.get(key)
            leads = [] if entry is None else [entry["canonical"], *entry["aliases"]]
            objects = [] if entry is None else list(entry.get("external") or ())
            if entry is not None:
                del identities[key]
            await asyncio.to_thread(erasure_log.append, erasure.audit(
                "identity", record["erasure_id"], identity_key=key, leads=leads,
                requested_by=record["requested_by"], via=record["via"]))
            for lead_id in leads:
                await emitter.send(topics.ERASURES, lead_id.encode(),
                                   erasure.for_lead(record, lead_id))
            if not leads:  # no lead known: what the archive holds of the address still goes
                eraser.submit(None, record, key)
            # The person's vendor objects: the link table keeps their capture and the events
            # it forwarded (notes included) under the object's key (agents.external).
            ext, request = topics.EXTERNAL, erasure.for_identity(record, key)
            for object_key in objects:
                await emitter.send(ext, object_key.encode(), control_record(
                    object_key, "ERASE", record["erasure_id"], record["requested_at"],
                    payload=codec.encode(topics.ERASURES.subject, topics.ERASURES.record,
                                         request),
                    correlation_id=record.get("correlation_id")))
