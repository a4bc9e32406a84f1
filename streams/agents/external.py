"""The link agent: a vendor object's events → the lead the object belongs to (core.external).

Connectors send an event that names a vendor's object (a HubSpot contact, a Salesforce lead)
to leadflow.external-events keyed by the object's external key. Here, with the link table
(keyed the same way, changelogged), the event is forwarded to its inbound topic keyed by, and
naming, the linked lead — its event id unchanged, so a repeat stays a repeat — or held until
the link is known. The object's first capture with an e-mail asks identity (a claim with
``external_key`` on leadflow.identity-claims, keyed by the person); the answer comes back
here as a LINK event keyed by the object.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from streams import topics
from streams.agents.emit import Emitter
from streams.core import contract, erasure, external
from streams.errors import LeadflowError

KINDS = {"LEAD": "lead", "ACTIVITY": "activity", "STATUS": "status", "TOUCH": "touch"}
SYMBOLS = {kind: symbol for symbol, kind in KINDS.items()}


def event_record(external_key: str, kind: str, record: dict[str, Any], payload: bytes,
                 identity_key: str | None) -> dict[str, Any]:
    """The ExternalEvent a connector sends for an inbound ``record`` (of topic kind ``kind``,
    naming the object's derived lead id) about the object ``external_key``."""
    return {"external_key": external_key, "kind": SYMBOLS[kind],
            "event_id": record["event_id"], "occurred_at": record["occurred_at"],
            "derived_lead_id": record["lead_id"], "identity_key": identity_key,
            "lead_id": None, "payload": payload,
            "correlation_id": record.get("correlation_id")}


def register(app: Any) -> None:
    settings = app.settings
    links = app.Table("external_ids", partitions=settings.partitions, key_type=str)
    app.tables_by_name["external_ids"] = links
    spec = topics.EXTERNAL
    source = app.topic(spec.name, key_serializer="raw", value_serializer="raw",
                       partitions=settings.partitions)
    codec = app.codec
    emitter = Emitter(app)
    hold_ms = int(settings.external_hold_s * 1000)

    async def act(key: str, actions: list[external.Action], cid: str | None) -> None:
        for action in actions:
            if isinstance(action, external.Forward):
                inbound = topics.BY_KIND[action.event["kind"]]
                record = codec.decode(base64.b64decode(action.event["payload"]), inbound.record)
                record["lead_id"] = action.lead_id
                await emitter.send(inbound, action.lead_id.encode(), record)
            else:
                await emitter.send(topics.IDENTITY_CLAIMS, action.identity_key.encode(), {
                    "email_key": action.identity_key, "lead_id": action.derived,
                    "event_id": action.event_id,
                    "occurred_at": contract.from_epoch_ms(action.occurred_at),
                    "correlation_id": cid, "external_key": key,
                })

    def step(entry: external.Entry | None, record: dict[str, Any]
             ) -> tuple[external.Entry | None, list[external.Action]]:
        kind = record["kind"]
        if kind == "LINK":
            return external.on_link(entry, record.get("derived_lead_id"),
                                    record.get("identity_key"), record["lead_id"])
        if kind == "EXPIRE":
            return (entry, []) if entry is None else external.expire(entry)
        if kind not in KINDS or record.get("payload") is None:
            app.log.warning("external event %s of kind %s ignored", record["event_id"], kind)
            return entry, []
        event = {"kind": KINDS[kind], "event_id": record["event_id"],
                 "occurred_at": contract.epoch_ms(record["occurred_at"]),
                 "payload": base64.b64encode(record["payload"]).decode()}
        return external.on_event(entry, record["derived_lead_id"], event,
                                 record.get("identity_key"))

    async def forget(key: str, record: dict[str, Any]) -> None:
        """The vendor erased the object's person (HubSpot's contact.privacyDeletion): the
        erasure reaches the person's identity, hence every lead of the person, whichever the
        object is linked to; the events kept here go."""
        entry = links.get(key)
        if entry is None or record.get("payload") is None:
            return
        request = codec.decode(record["payload"], topics.ERASURES.record)
        person = entry.get("identity_key")
        if person:
            await emitter.send(topics.ERASURES, person.encode(),
                               erasure.for_identity(request, person))
        entry.pop("held_since", None)
        links[key] = external.forget(entry)

    @app.agent(source, name="external")
    async def link(stream: Any) -> None:
        async for event in stream.events():
            app.stats.saw_internal(spec.name)
            try:
                record = codec.decode(event.message.value or b"", spec.record)
            except LeadflowError:
                # Only leadflow writes this internal topic; a bad record is a bug, not input.
                app.log.exception("undecodable external event at offset %s",
                                  event.message.offset)
                continue
            key = record["external_key"]
            if record["kind"] == "ERASE":
                await forget(key, record)
                continue
            entry, actions = step(links.get(key), record)
            if entry is not None:
                if not entry["held"]:
                    entry.pop("held_since", None)
                elif "held_since" not in entry:
                    entry["held_since"] = int(time.time() * 1000)  # for the expiry timer
                links[key] = entry
            await act(key, actions, record.get("correlation_id"))

    @app.timer(interval=max(1.0, settings.external_hold_s / 4), name="external.expire")
    async def expire() -> None:
        """Objects whose held events waited longer than ``external_hold_s`` for a capture:
        an EXPIRE event through the topic, since only the agent (in its stream) may write
        the table. A standby copy's key expires twice: harmless, expiry is idempotent."""
        if app.rebalancing:
            return
        now = int(time.time() * 1000)
        for key, entry in list(links.data.items()):
            if (isinstance(entry, dict) and entry.get("held") and entry["lead"] is None
                    and entry["identity_key"] is None
                    and now - entry.get("held_since", now) >= hold_ms):
                await emitter.send(spec, key.encode(), {
                    "external_key": key, "kind": "EXPIRE",
                    "event_id": external.expire_event_id(key, entry["held_since"]),
                    "occurred_at": contract.from_epoch_ms(now), "derived_lead_id": None,
                    "identity_key": None, "lead_id": None, "payload": None,
                    "correlation_id": None})
