"""Identity: the same normalised email is the same person.

Claims arrive keyed by normalised email, so one person's claims meet on one partition. When a
claim makes a lead an alias of another (or changes which lead is canonical), both leads'
traces get an IdentityResolved step, sent keyed by lead id back to the intake agent.
"""

from __future__ import annotations

from typing import Any

from streams import topics
from streams.agents.emit import Emitter
from streams.core import contract, identity
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
            entry, links = identity.claim(identities.get(email), claim["lead_id"], occurred_ms)
            identities[email] = entry
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
