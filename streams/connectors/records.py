"""Vendor facts → leadflow inbound records (the dicts ``contract.validate`` checks).

A record about a vendor object carries the object's external key (``hubspot:contact:1001``)
and, as its lead id, the object's derived id (``external_lead_id``: the same uuid on every
worker and in a replay). The link agent (agents.external, core.external) replaces it with the
lead the object belongs to: the first lead of the person whose e-mail the object's capture
carries, else the derived id. A person known to a meeting tool by email only gets the lead id
of that email; the capture's identity claim links leads of one email (``core.identity``).

Event ids are uuid5 of the vendor's dedup key (the key its docs say identifies a delivery of
one event), so a redelivery is a duplicate the trace drops.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from streams.core.contract import EVENT_NAMESPACE, normalise_email
from streams.core.external import external_key
from streams.errors import ErrorCode, LeadflowError

Record = dict[str, Any]
Output = tuple[str, Record]  # (topic kind, record)

# Until the meeting events of the inbound contract exist, a meeting maps to the nearest
# existing event here, and only here (meeting_record).
MEETING_EVENTS = ("booked", "rescheduled", "cancelled", "no_show", "held")


def external_lead_id(source: str, object_type: str, object_id: Any) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"external:{source}:{object_type}:{object_id}"))


def email_lead_id(email: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, "email:" + normalise_email(email)))


def event_id(source: str, key: str, part: str = "") -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"connector:{source}:{key}:{part}"))


def timestamp(value: Any, field: str) -> datetime:
    """Epoch milliseconds (HubSpot), epoch seconds, or ISO-8601 (everyone else) → UTC,
    truncated to the millisecond as Avro keeps it."""
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
            number = float(value)
            # Seconds until the year 5138 in ms; anything bigger is milliseconds.
            moment = datetime.fromtimestamp(
                number / 1000 if number > 1e11 else number, UTC)
        elif isinstance(value, str):
            text = value.strip().replace(" ", "T", 1) if "T" not in value else value.strip()
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)  # vendors' "UTC" without a suffix
            moment = moment.astimezone(UTC)
        else:
            raise TypeError
    except (TypeError, ValueError, OverflowError, OSError):
        raise LeadflowError(
            ErrorCode.FIELD_MISMATCH, f"{field} {str(value)[:64]!r} is not a time", field
        ) from None
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def base(source: str, key: str, part: str, lead_id: str, occurred: datetime,
         correlation_id: str | None, external_key: str | None = None) -> Record:
    """A record's common fields. ``external_key``: the vendor object the record is about (its
    ``lead_id`` is then the object's derived id); the HTTP layer pops it and sends the record
    through the link agent (agents.external), which names the lead the object belongs to."""
    head = {
        "event_id": event_id(source, key, part),
        "lead_id": lead_id,
        "occurred_at": occurred,
        "source_system": source,
        "correlation_id": correlation_id,
    }
    if external_key is not None:
        head["external_key"] = external_key
    return head


def of_object(head: Record, source: str, object_type: str, object_id: Any) -> Record:
    """``head`` about another vendor object (a call's contact): its derived lead and key."""
    return {**head, "lead_id": external_lead_id(source, object_type, object_id),
            "external_key": external_key(source, object_type, object_id)}


def capture(head: Record, fields: dict[str, Any]) -> Output:
    email = text(fields.get("email"))
    company = text(fields.get("company_name"))
    if company is None and email and "@" in email:
        # A meeting tool or CRM form often has no company field; the email's domain names
        # the organisation well enough to route on, and says so in the trace.
        company = email.rsplit("@", 1)[1]
    record = {
        **head,
        "email": email,
        "first_name": text(fields.get("first_name")),
        "last_name": text(fields.get("last_name")),
        "phone": text(fields.get("phone")),
        "job_title": text(fields.get("job_title")),
        "company_name": company,
        "company_size": _size(fields.get("company_size")),
        "region": text(fields.get("region")),
        "marketing_score": _int(fields.get("marketing_score")),
        "trigger_actions": [a for a in (text(x) for x in _list(fields.get("trigger_actions")))
                            if a],
        "enrichment": {
            "linkedin_url": text(fields.get("linkedin_url")),
            "industry": text(fields.get("industry")),
            "tech_stack": [],
        },
        "attribution": {
            "campaign_id": text(fields.get("campaign_id")),
            "utm_source": text(fields.get("utm_source")),
            "utm_medium": text(fields.get("utm_medium")),
            "utm_campaign": text(fields.get("utm_campaign")),
            "original_source": text(fields.get("original_source")),
            "latest_source": text(fields.get("latest_source")),
        },
        "consent": None,
        # Custom attributes the source sent (none when empty); the contract checks them.
        "attributes": {k: v for k, v in (fields.get("attributes") or {}).items()
                       if v not in (None, "")},
    }
    return "lead", record


def activity(head: Record, activity_type: str, campaign_id: Any = None,
             properties: dict[str, Any] | None = None) -> Output:
    props = {k: str(v) for k, v in (properties or {}).items() if v is not None}
    return "activity", {**head, "activity_type": activity_type,
                        "campaign_id": text(campaign_id), "properties": props}


def status(head: Record, new_status: str, previous: str | None = None,
           reason: Any = None, notes: Any = None, by: Any = None) -> Output:
    return "status", {**head, "previous_status": previous, "new_status": new_status,
                      "disqualification_reason": text(reason), "sales_notes": text(notes),
                      "updated_by": text(by)}


def touch(head: Record, touch_key: str, rep: Any, channel: str,
          outcome: str = "OTHER") -> Output:
    return "touch", {**head, "touch_id": event_id(head["source_system"], touch_key, "touch"),
                     "rep_id": text(rep) or "unassigned", "channel": channel,
                     "outcome": outcome}


def meeting_record(head: Record, event: str, *, meeting_key: str, rep: Any = None,
                   campaign_id: Any = None, starts_at: Any = None) -> Output:
    """A meeting booked / rescheduled / cancelled / no-show / held → an inbound record.

    The one switch for meetings: the contract's MEETING_* activity (ActivityRecorded v2;
    booked is a hand-raise, held counts as the first touch), with the meeting, its host and
    start in ``properties`` as the contract names them. Against a contract without them
    (v1), held is a MEETING touch and the rest OTHER activities saying what happened."""
    if event not in MEETING_EVENTS:
        raise ValueError(f"unknown meeting event {event!r}")
    symbol = _meeting_activity(event)
    if event == "held" and symbol == "OTHER":
        return touch(head, meeting_key, rep, "MEETING", "CONNECTED")
    props = {"meeting": event, "meetingId": meeting_key, "repId": text(rep),
             "startsAt": text(starts_at)}
    return activity(head, symbol, campaign_id, props)


def _meeting_activity(event: str) -> str:
    from streams.core.contract import ActivityType

    symbol = "MEETING_" + event.upper()
    return symbol if symbol in ActivityType.__members__ else "OTHER"


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [v for v in value.replace(";", ",").split(",")]
    return [value]


def _int(value: Any) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and abs(number) < 2**31 else None


def _size(value: Any) -> str:
    """A vendor's employee count or size label → a size band; unknown when it fits none
    (the lead is still taken: an incomplete lead is judged, not dropped)."""
    from streams.core import payloads  # the one place size labels are read

    if value is None or value == "":
        return "UNKNOWN"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    try:
        return payloads._size_band(value, "company_size")
    except LeadflowError:
        return "UNKNOWN"
