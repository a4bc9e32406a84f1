"""External ids: which lead a vendor's object (a HubSpot contact, a Salesforce lead, a Close
lead…) belongs to, so an event naming only the object's id lands on that lead.

An object is named by its *external key* ``source:type:id`` (``hubspot:contact:5101``). Its
link is decided by identity (``core.identity``): the object belongs to the person whose e-mail
its capture carries, and so to that person's canonical lead — the first captured, whichever
system captured it. An object whose capture carries no e-mail is a lead of its own: its
*derived* id (``connectors.records.external_lead_id``), as before links existed.

One entry per external key (a Faust table, keyed and partitioned like the topic)::

    {"derived": lead_id, "lead": lead_id | None, "identity_key": str | None,
     "asked": [occurred_ms, event_id] | None, "held": [event, ...], "sent": int}

    event = {"kind": lead | activity | status | touch, "event_id", "occurred_at": ms,
             "payload": str (base64 of the inbound record, Avro with Confluent framing)}

Arrival order does not decide anything:

* an event that comes before the link is known is *held* and released onto the lead when the
  link is known (``on_link``), never dropped;
* the object's identity is the e-mail of its earliest capture (by event time, then event id),
  so captures read in any order ask about the same person;
* identity answers with the person's canonical lead, which is a function of the set of
  captures only; when a later capture changes the canonical lead, identity answers again and
  the object's events already sent are sent again to the new lead: the trace drops what it
  already has (same event ids), so the final lead holds every event of the object. The
  caller keeps those events one by one (``Keep``: the i-th event sent, ``sent`` counts them)
  beside the entry, so the entry stays small however many events an object has.

Captures are held only until the link is known and never kept: nothing of them stays once
linked (the capture on the first lead stays where it went; the identity
link makes the two leads one timeline).
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from streams.core.contract import EVENT_NAMESPACE

Entry = dict[str, Any]
Event = dict[str, Any]


class Forward(NamedTuple):
    """Send ``event`` to its inbound topic, keyed by (and naming) ``lead_id``."""

    lead_id: str
    event: Event


class Ask(NamedTuple):
    """Ask identity which lead the person of ``identity_key`` is; the object's own capture
    (``derived`` lead id at ``occurred_at``) counts as a capture of that person."""

    identity_key: str
    derived: str
    occurred_at: int
    event_id: str


class Keep(NamedTuple):
    """Keep ``event``, the object's ``index``-th event sent, for a relink (``Resend``)."""

    index: int
    event: Event


class Resend(NamedTuple):
    """Send the object's kept events 0 … ``count`` - 1 again, to ``lead_id``."""

    lead_id: str
    count: int


Action = Forward | Ask | Keep | Resend


def external_key(source: str, object_type: str, object_id: Any) -> str:
    return f"{source}:{object_type}:{object_id}"


def new_entry(derived: str) -> Entry:
    return {"derived": derived, "lead": None, "identity_key": None, "asked": None,
            "held": [], "sent": 0}


def _has(events: list[Event], event_id: str) -> bool:
    return any(e["event_id"] == event_id for e in events)


def _deliver(entry: Entry, event: Event) -> list[Action]:
    """Send ``event`` to the linked lead; keep what a relink would have to send again."""
    actions: list[Action] = [Forward(entry["lead"], event)]
    if event["kind"] != "lead":
        actions.append(Keep(entry["sent"], event))
        entry["sent"] += 1
    return actions


def _release(entry: Entry) -> list[Action]:
    held, entry["held"] = entry["held"], []
    held.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    return [action for event in held for action in _deliver(entry, event)]


def on_event(entry: Entry | None, derived: str, event: Event,
             identity_key: str | None = None) -> tuple[Entry, list[Action]]:
    """A vendor event about the object. ``identity_key``: the person's, for a capture that
    carries an e-mail. Mutates ``entry`` (a fresh one when None) and returns it."""
    entry = entry if entry is not None else new_entry(derived)
    actions: list[Action] = []
    if event["kind"] == "lead":
        mark = [event["occurred_at"], event["event_id"]]
        if identity_key is not None:
            if entry["asked"] is None or mark < entry["asked"]:
                new_person = entry["identity_key"] != identity_key
                entry["asked"] = mark
                entry["identity_key"] = identity_key
                actions.append(Ask(identity_key, entry["derived"], event["occurred_at"],
                                   event["event_id"]))
                if new_person:
                    # Held until identity answers, even if the object has a lead already
                    # (its own, after ``expire``): on a lead it may not belong to, the
                    # capture would make a second lead that sales gets too.
                    entry["held"].append(event)
                    return entry, actions
        elif entry["lead"] is None and entry["identity_key"] is None:
            # Nobody to ask about: the object is a lead of its own.
            entry["lead"] = entry["derived"]
            actions += _release(entry)
    if entry["lead"] is None:
        if not _has(entry["held"], event["event_id"]):
            entry["held"].append(event)
        return entry, actions
    return entry, actions + _deliver(entry, event)


def on_link(entry: Entry | None, derived: str | None, identity_key: str | None,
            lead_id: str) -> tuple[Entry | None, list[Action]]:
    """Identity's answer: the person of ``identity_key`` is ``lead_id`` now. Releases what
    was held; on a change of lead, sends the object's events again to the new one."""
    if entry is None:
        if derived is None:
            return entry, []  # an answer about an object this partition never saw
        entry = new_entry(derived)
        entry["identity_key"] = identity_key
    if identity_key != entry["identity_key"]:
        return entry, []  # about an e-mail the object's earliest capture no longer has
    moved = entry["lead"] not in (None, lead_id)
    entry["lead"] = lead_id
    actions: list[Action] = [Resend(lead_id, entry["sent"])] if moved and entry["sent"] else []
    return entry, actions + _release(entry)


def expire(entry: Entry) -> tuple[Entry, list[Action]]:
    """Events held too long for an object whose capture never came (the vendor's creation
    event is not subscribed, or lost): released onto the object's own lead, as before links
    existed. A capture that comes later still asks identity, and a different answer moves
    them (``on_link``). An object waiting for identity's answer is not expired: its capture
    would make a second lead of a person leadflow may already have."""
    if entry["lead"] is not None or entry["identity_key"] is not None or not entry["held"]:
        return entry, []
    entry["lead"] = entry["derived"]
    return entry, _release(entry)


def forget(entry: Entry) -> Entry:
    """The object's person is erased: the events kept for it go (held ones too: they are the
    erased person's; the caller drops the ``sent`` kept ones first). The link stays, so the
    object's later events still find the lead, which the intake keeps as erased."""
    entry["held"], entry["sent"] = [], 0
    entry["erased"] = True
    return entry


def expire_event_id(key: str, held_since_ms: int) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"external-expire:{key}@{held_since_ms}"))


def summary(key: str, entry: Entry) -> dict[str, Any]:
    """What the API shows of a link (no payloads: they may hold personal data)."""
    return {"externalKey": key, "leadId": entry["lead"], "derivedLeadId": entry["derived"],
            "linked": entry["lead"] is not None, "held": len(entry["held"]),
            "sent": entry["sent"]}
