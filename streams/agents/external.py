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
from streams.agents.emit import ChangelogTable, Emitter, acked_if_flushed
from streams.codec import with_lead_id
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


def control_record(external_key: str, kind: str, event_id: str, occurred_at: Any, *,
                   lead_id: str | None = None, derived_lead_id: str | None = None,
                   identity_key: str | None = None, payload: bytes | None = None,
                   correlation_id: str | None = None) -> dict[str, Any]:
    """An ExternalEvent that carries no inbound record: identity's LINK answer, an ERASE of
    the object's person, the expiry timer's EXPIRE."""
    return {"external_key": external_key, "kind": kind, "event_id": event_id,
            "occurred_at": occurred_at, "derived_lead_id": derived_lead_id,
            "identity_key": identity_key, "lead_id": lead_id, "payload": payload,
            "correlation_id": correlation_id}


def kept_key(key: str, index: int) -> str:
    """Where the object's ``index``-th event sent is kept (beside its entry, on its
    partition): one small write per event instead of a growing entry."""
    return f"{key}#{index}"


def register(app: Any) -> None:
    settings = app.settings
    links = app.Table("external_ids", partitions=settings.partitions, key_type=str)
    app.tables_by_name["external_ids"] = links
    spec = topics.EXTERNAL
    source = app.topic(spec.name, key_serializer="raw", value_serializer="raw",
                       partitions=settings.partitions)
    codec = app.codec
    emitter = Emitter(app)
    table = ChangelogTable(emitter, links)
    hold_ms = int(settings.external_hold_s * 1000)

    def forward(lead_id: str, event: external.Event, derived: str) -> None:
        inbound = topics.BY_KIND[event["kind"]]
        payload = base64.b64decode(event["payload"])
        value = payload if lead_id == derived else with_lead_id(payload, derived, lead_id)
        if value is None:
            record = codec.decode(payload, inbound.record)
            record["lead_id"] = lead_id
            emitter.stage(inbound, lead_id.encode(), record)
        else:
            emitter.stage_encoded(inbound, lead_id.encode(), value)

    def act(key: str, partition: int, actions: list[external.Action], cid: str | None,
            derived: str) -> None:
        """``derived``: the object's own lead id, the one its events' payloads name."""
        for action in actions:
            if isinstance(action, external.Forward):
                forward(action.lead_id, action.event, derived)
            elif isinstance(action, external.Keep):
                table.put(kept_key(key, action.index), action.event, partition)
            elif isinstance(action, external.Resend):
                for index in range(action.count):
                    kept = table.get(kept_key(key, index))
                    if kept is not None:
                        forward(action.lead_id, kept, derived)
            else:
                emitter.stage(topics.IDENTITY_CLAIMS, action.identity_key.encode(), {
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

    def forget(key: str, partition: int, record: dict[str, Any]) -> None:
        """The object's person is erased: the events kept here go. Asked by the vendor
        (HubSpot's contact.privacyDeletion), the erasure also goes on to the person's
        identity, hence every lead of the person, whichever the object is linked to; asked by
        that identity (any erasure of the person), it already has."""
        entry = table.get(key)
        if entry is None or record.get("payload") is None:
            return
        request = codec.decode(record["payload"], topics.ERASURES.record)
        person = entry.get("identity_key")
        if person and request.get("via") != "identity":
            emitter.stage(topics.ERASURES, person.encode(),
                          erasure.for_identity(request, person))
        for index in range(entry["sent"]):
            table.put(kept_key(key, index), None, partition)
        entry.pop("held_since", None)
        table.put(key, external.forget(entry), partition)

    def handle(message: Any) -> None:
        try:
            record = codec.decode(message.value or b"", spec.record)
        except LeadflowError:
            # Only leadflow writes this internal topic; a bad record is a bug, not input.
            app.log.exception("undecodable external event at offset %s", message.offset)
            return
        key, partition = record["external_key"], message.partition
        if record["kind"] == "ERASE":
            forget(key, partition, record)
            return
        entry, actions = step(table.get(key), record)
        if entry is not None:
            if not entry["held"]:
                entry.pop("held_since", None)
            elif "held_since" not in entry:
                entry["held_since"] = int(time.time() * 1000)  # for the expiry timer
            table.put(key, entry, partition)
        if entry is not None:
            act(key, partition, actions, record.get("correlation_id"), entry["derived"])

    batch, within = settings.intake_batch, settings.intake_batch_wait_ms / 1000

    @app.agent(source, name="external")
    async def link(stream: Any) -> None:
        # Batches amortise the sends and changelog writes, as in the intake.
        async for events in stream.take_events(batch, within=within):
            with acked_if_flushed(events):
                for event in events:
                    app.stats.saw_internal(spec.name)
                    handle(event.message)
                await emitter.flush()  # the events on the broker before the link that sent them
                await table.flush()

    @app.timer(interval=max(1.0, settings.external_hold_s / 4), name="external.expire")
    async def expire() -> None:
        """Objects whose held events waited longer than ``external_hold_s`` for a capture:
        an EXPIRE event through the topic, handled in order with the object's other events.
        A standby copy's key expires twice: harmless, expiry is idempotent."""
        if app.rebalancing:
            return
        now = int(time.time() * 1000)
        for key, entry in table.items():
            if (isinstance(entry, dict) and "derived" in entry and entry.get("held")
                    and entry["lead"] is None and entry["identity_key"] is None
                    and now - entry.get("held_since", now) >= hold_ms):
                await emitter.send(spec, key.encode(), control_record(
                    key, "EXPIRE", external.expire_event_id(key, entry["held_since"]),
                    contract.from_epoch_ms(now)))
