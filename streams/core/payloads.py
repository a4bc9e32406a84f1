"""JSON bodies as marketing systems and CRMs send them → record dicts (the Avro field names).

Mapping is about *shape*: camelCase names, ISO-8601 strings, human enum spellings
("51-200", "closed won", "Disqualified") and wrong JSON types. *Content* rules (email syntax,
uuid canonical form, timestamp plausibility, consent) belong to ``contract.validate``, which
runs on every record whatever door it came through. Errors name the field as the sender
wrote it (``leadId``, ``consent.consentTimestamp``) so an API client can fix its request.

Every mapper raises only ``LeadflowError``, whatever JSON it is given. Unknown keys are
ignored: senders add fields faster than contracts change.

Event ids (the idempotency key): the body's ``eventId`` if present; else the id the caller
derived (for webhooks, from the ``webhook-id`` header, stable across retries); else a uuid5
of the body's canonical JSON, so resubmitting an identical body is a duplicate.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from streams.core.contract import (
    EVENT_NAMESPACE,
    ActivityType,
    LawfulBasis,
    LeadStatus,
    SizeBand,
    TouchChannel,
    TouchOutcome,
    canonical_uuid,
    fail,
)
from streams.errors import ErrorCode, LeadflowError

Body = dict[str, Any]

_SEPARATORS = re.compile(r"[\s\-]+")
_SIZE_RANGE = re.compile(r"(\d{1,9})(?:-(\d{1,9})|(\+))?", re.ASCII)
_DASHES = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2212": "-"})

# JSON spellings accepted per enum. The forward-compatibility defaults are not all valid
# input: a status of "unknown" would corrupt the lifecycle. An absent lawful basis maps to
# UNKNOWN: no basis recorded, which the MQL contract judges (a spelling error is refused).
_ACTIVITY_SYMBOLS = {m.value: m.value for m in ActivityType} | {
    # The spellings meeting tools use (Calendly "canceled", HubSpot "NO_SHOW").
    "MEETING_CANCELED": ActivityType.MEETING_CANCELLED.value,
    "MEETING_NOSHOW": ActivityType.MEETING_NO_SHOW.value,
    "MEETING_COMPLETED": ActivityType.MEETING_HELD.value,
}
_STATUS_SYMBOLS = {m.value: m.value for m in LeadStatus if m is not LeadStatus.UNKNOWN}
_CHANNEL_SYMBOLS = {m.value: m.value for m in TouchChannel}
_OUTCOME_SYMBOLS = {m.value: m.value for m in TouchOutcome}
_BASIS_SYMBOLS = {m.value: m.value for m in LawfulBasis}

# (lowest, highest) employee count of each band; None = open-ended.
_BANDS: tuple[tuple[int, int | None, str], ...] = (
    (1, 10, SizeBand.SIZE_1_10.value),
    (11, 50, SizeBand.SIZE_11_50.value),
    (51, 200, SizeBand.SIZE_51_200.value),
    (201, 1000, SizeBand.SIZE_201_1000.value),
    (1001, 5000, SizeBand.SIZE_1001_5000.value),
    (5001, None, SizeBand.SIZE_5001_PLUS.value),
)
# "5000+" is a common label for the top band even though 5000 belongs to the one below.
_OPEN_ENDED_FROM = 5000
# "201+": the top band of the seed's MQL schema (1-10, 11-50, 51-200, 201+). Kept as its own
# symbol: accepted as sent, and named as missing context since it spans three of ours.
_SEED_TOP_BAND = 201


def lead_from_json(
    body: Any, *, correlation_id: str | None = None, source_system: str = "api"
) -> dict[str, Any]:
    """POST /v1/leads body → LeadCaptured record. What a real lead may lack is mapped to
    "not known", for the MQL contract to judge rather than reject: ``consent`` absent → None,
    ``region`` absent → "" (the Avro field is a plain string), ``companySize`` absent →
    UNKNOWN, ``triggerActions`` absent → []."""
    body = _object(body, None)
    enriched = _object(body.get("enrichedData"), "enrichedData")
    attribution = _object(body.get("attribution"), "attribution")
    return {
        "event_id": _event_id(body, None, "lead"),
        "lead_id": canonical_uuid(body.get("leadId"), "leadId"),
        "email": _required_text(body, "email"),
        "first_name": _optional_text(body, "firstName") or "",
        "last_name": _optional_text(body, "lastName") or "",
        "phone": _optional_text(body, "phone"),
        "job_title": _optional_text(body, "jobTitle"),
        "company_name": _optional_text(body, "companyName") or "",
        "company_size": _size_band(body.get("companySize"), "companySize"),
        "region": _optional_text(body, "region") or "",
        "marketing_score": _optional_int(body.get("leadScore"), "leadScore"),
        "trigger_actions": _text_list(body.get("triggerActions"), "triggerActions"),
        "enrichment": {
            "linkedin_url": _optional_text(enriched, "linkedinUrl", "enrichedData."),
            "industry": _optional_text(enriched, "industry", "enrichedData."),
            "tech_stack": _text_list(enriched.get("techStack"), "enrichedData.techStack"),
        },
        "attribution": {
            "campaign_id": _optional_text(attribution, "campaignId", "attribution."),
            "utm_source": _optional_text(attribution, "utmSource", "attribution."),
            "utm_medium": _optional_text(attribution, "utmMedium", "attribution."),
            "utm_campaign": _optional_text(attribution, "utmCampaign", "attribution."),
            "original_source": _optional_text(attribution, "originalSource", "attribution."),
            "latest_source": _optional_text(attribution, "latestSource", "attribution."),
        },
        "consent": _consent(body.get("consent")),
        "occurred_at": _timestamp(body.get("timestamp"), "timestamp"),
        "source_system": source_system,
        "correlation_id": correlation_id,
    } | _attributes(body.get("attributes"))


def activity_from_json(
    body: Any, *, correlation_id: str | None = None, source_system: str = "api"
) -> dict[str, Any]:
    """POST /v1/activities body → ActivityRecorded record."""
    body = _object(body, None)
    return {
        "event_id": _event_id(body, None, "activity"),
        "lead_id": canonical_uuid(body.get("leadId"), "leadId"),
        "activity_type": _enum(body.get("type"), "type", _ACTIVITY_SYMBOLS),
        "campaign_id": _optional_text(body, "campaignId"),
        "properties": _properties(body.get("properties")),
        "occurred_at": _timestamp(body.get("timestamp"), "timestamp"),
        "source_system": source_system,
        "correlation_id": correlation_id,
    } | _attributes(body.get("attributes"))


def status_from_json(
    payload: Any,
    *,
    event_id: str | None = None,
    correlation_id: str | None = None,
    source_system: str = "crm-webhook",
) -> dict[str, Any]:
    """CRM ``lead.status.updated`` payload → LeadStatusChanged record."""
    payload = _object(payload, "payload")
    return {
        "event_id": _event_id(payload, event_id, "status"),
        "lead_id": canonical_uuid(payload.get("leadId"), "leadId"),
        "previous_status": _enum(
            payload.get("previousStatus"), "previousStatus", _STATUS_SYMBOLS, absent=None
        ),
        "new_status": _enum(payload.get("newStatus"), "newStatus", _STATUS_SYMBOLS),
        "disqualification_reason": _optional_text(payload, "disqualificationReason"),
        "sales_notes": _optional_text(payload, "salesNotes"),
        "updated_by": _optional_text(payload, "updatedBy"),
        "occurred_at": _timestamp(payload.get("timestamp"), "timestamp"),
        "source_system": source_system,
        "correlation_id": correlation_id,
    }


def touch_from_json(
    payload: Any,
    *,
    event_id: str | None = None,
    correlation_id: str | None = None,
    source_system: str = "crm-webhook",
) -> dict[str, Any]:
    """CRM ``lead.touch.logged`` payload → SalesTouchLogged record. ``outcome`` may be absent
    (an email just sent has none yet) and maps to OTHER; ``channel`` is required."""
    payload = _object(payload, "payload")
    return {
        "event_id": _event_id(payload, event_id, "touch"),
        "lead_id": canonical_uuid(payload.get("leadId"), "leadId"),
        "touch_id": canonical_uuid(payload.get("touchId"), "touchId"),
        "rep_id": _required_text(payload, "repId"),
        "channel": _enum(payload.get("channel"), "channel", _CHANNEL_SYMBOLS),
        "outcome": _enum(
            payload.get("outcome"), "outcome", _OUTCOME_SYMBOLS, absent=TouchOutcome.OTHER.value
        ),
        "occurred_at": _timestamp(payload.get("timestamp"), "timestamp"),
        "source_system": source_system,
        "correlation_id": correlation_id,
    }


_WEBHOOK_EVENTS: dict[str, tuple[str, Callable[..., dict[str, Any]]]] = {
    "lead.status.updated": ("status", status_from_json),
    "lead.touch.logged": ("touch", touch_from_json),
}


def crm_webhook(
    envelope: Any,
    *,
    webhook_id: str | None,
    correlation_id: str | None,
    source_system: str = "crm-webhook",
) -> tuple[str, dict[str, Any]]:
    """A CRM webhook envelope ``{"event": ..., "payload": {...}}`` → (kind, record), where
    kind is "status" or "touch" (the contract's topic kind)."""
    envelope = _object(envelope, None)
    event = envelope.get("event")
    if _blank(event):
        raise fail(ErrorCode.MISSING_FIELD, "event is required", "event")
    if not isinstance(event, str):
        raise fail(ErrorCode.FIELD_MISMATCH, "event must be a string", "event")
    handler = _WEBHOOK_EVENTS.get(event.strip())
    if handler is None:
        known = ", ".join(sorted(_WEBHOOK_EVENTS))
        raise fail(ErrorCode.UNKNOWN_EVENT, f"event {event[:64]!r} is not one of: {known}", "event")
    payload = envelope.get("payload")
    if payload is None:
        raise fail(ErrorCode.MISSING_FIELD, "payload is required", "payload")
    kind, mapper = handler
    derived = webhook_event_id(webhook_id) if webhook_id else None
    record = mapper(
        payload, event_id=derived, correlation_id=correlation_id, source_system=source_system
    )
    return kind, record


def webhook_event_id(webhook_id: str) -> str:
    """Event id for a webhook without ``eventId``: stable across the sender's retries."""
    return str(uuid.uuid5(EVENT_NAMESPACE, "webhook:" + webhook_id))


def body_event_id(body: Any, kind: str) -> str:
    """Event id of a body without ``eventId``: identical bodies give identical ids."""
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise fail(ErrorCode.BAD_ENCODING, f"body is not plain JSON: {exc}") from None
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{kind}:{text}"))


def _event_id(body: Body, derived: str | None, kind: str) -> str:
    given = body.get("eventId")
    if not _blank(given):
        if not isinstance(given, str):
            raise fail(ErrorCode.FIELD_MISMATCH, "eventId must be a uuid string", "eventId")
        return canonical_uuid(given, "eventId")
    if derived is not None:
        return canonical_uuid(derived, "eventId")
    return body_event_id(body, kind)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _object(value: Any, field: str | None) -> Body:
    if value is None and field is not None:
        return {}
    if not isinstance(value, dict):
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field or 'body'} must be a JSON object", field)
    return value


def _required_text(body: Body, key: str) -> str:
    value = body.get(key)
    if isinstance(value, str):
        value = value.strip()
        if value:
            return value
    elif value is not None:
        raise fail(ErrorCode.FIELD_MISMATCH, f"{key} must be a string", key)
    raise fail(ErrorCode.MISSING_FIELD, f"{key} is required", key)


def _optional_text(body: Body, key: str, prefix: str = "") -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise fail(ErrorCode.FIELD_MISMATCH, f"{prefix}{key} must be a string", prefix + key)
    return value.strip() or None


def _optional_int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    # JSON has one number type; 72.0 is an integer score, 72.5 and true are not.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int or not -(2**31) <= value < 2**31:
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a whole number", field)
    return value


def _text_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a list of strings", field)
    items = []
    for item in value:
        if not isinstance(item, str):
            raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a list of strings", field)
        if item := item.strip():
            items.append(item)
    return items


def _attributes(value: Any) -> dict[str, Any]:
    """{"attributes": ...} when the body has custom attributes (``core.attributes``: an
    object of name → number, text, boolean or list of texts, typed by the value), else {}."""
    from streams.core import attributes

    if value is None:
        return {}
    try:
        return {"attributes": attributes.to_record(attributes.parse(value))}
    except ValueError as exc:
        raise LeadflowError(ErrorCode.FIELD_MISMATCH, str(exc), "attributes") from None


def _properties(value: Any) -> dict[str, str]:
    """Free-form activity properties → Avro map<string>. Scalars become their JSON text
    (35 → "35", true → "true"); nulls are dropped; nested structures are refused."""
    props = _object(value, "properties")
    out: dict[str, str] = {}
    for key, item in props.items():
        if isinstance(item, str):
            out[key] = item
        elif isinstance(item, bool | int | float):
            out[key] = json.dumps(item)
        elif item is not None:
            field = f"properties.{key}"
            raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a string or number", field)
    return out


_REQUIRED: Any = object()


def _enum(value: Any, field: str, symbols: dict[str, str], *, absent: Any = _REQUIRED) -> Any:
    """Any case, spaces or hyphens for underscores → the enum symbol. Blank → ``absent``
    when given, else MISSING_FIELD."""
    if _blank(value):
        if absent is not _REQUIRED:
            return absent
        raise fail(ErrorCode.MISSING_FIELD, f"{field} is required", field)
    if not isinstance(value, str):
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a string", field)
    symbol = symbols.get(_SEPARATORS.sub("_", value.strip()).upper())
    if symbol is None:
        raise fail(ErrorCode.INVALID_ENUM, f"{field} {value[:64]!r} is not a known value", field)
    return symbol


def _size_band(value: Any, field: str) -> str:
    """A size label ("51-200", "1-10", "5001+", "10000+", the seed's "201+"), an employee
    count or a band symbol → SizeBand. Absent, or a real range across several bands, means
    not known (SizeBand.UNKNOWN), which the contract accepts; "201+" keeps its own symbol.
    Only what is no head count at all ("lots", "0", "200-51") is refused."""
    if _blank(value):
        return SizeBand.UNKNOWN.value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a string", field)
    if isinstance(value, int):
        low = high = value
        open_ended = False
    else:
        text = value.translate(_DASHES).replace(",", "").replace(" ", "").upper()
        if text in SizeBand.__members__:
            return text
        match = _SIZE_RANGE.fullmatch(text)
        if match is None:
            raise fail(ErrorCode.INVALID_ENUM, f"{field} {value[:64]!r} is not a size band", field)
        low = int(match[1])
        high = int(match[2]) if match[2] else low
        open_ended = bool(match[3])
    if low < 1 or high < low:
        raise fail(ErrorCode.INVALID_ENUM, f"{field} {value!r} is not a head count", field)
    if open_ended:
        if low >= _OPEN_ENDED_FROM:
            return SizeBand.SIZE_5001_PLUS.value
        if low == _SEED_TOP_BAND:
            return SizeBand.SIZE_201_PLUS.value
        return SizeBand.UNKNOWN.value  # "500+": real, but spans bands; judged incomplete
    for band_low, band_high, symbol in _BANDS:
        if band_low <= low and (band_high is None or high <= band_high):
            return symbol
    # A real range across bands ("11-200"): accepted, its size named as missing context.
    return SizeBand.UNKNOWN.value


def _consent(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    consent = _object(value, "consent")
    return {
        "lawful_basis": _enum(
            consent.get("lawfulBasis"),
            "consent.lawfulBasis",
            _BASIS_SYMBOLS,
            absent=LawfulBasis.UNKNOWN.value,
        ),
        "consented_at": None
        if consent.get("consentTimestamp") is None
        else _timestamp(consent["consentTimestamp"], "consent.consentTimestamp"),
        "channels": _text_list(consent.get("channels"), "consent.channels"),
    }


def _timestamp(value: Any, field: str) -> datetime:
    """ISO-8601 with ``Z`` or an offset → aware UTC datetime, truncated to the millisecond
    (what Avro timestamp-millis keeps, so a record is equal before and after encoding)."""
    if _blank(value):
        raise fail(ErrorCode.MISSING_FIELD, f"{field} is required", field)
    if not isinstance(value, str):
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be an ISO-8601 string", field)
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise fail(ErrorCode.FIELD_MISMATCH, f"{field} needs a 'Z' or UTC offset", field)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise fail(
            ErrorCode.FIELD_MISMATCH, f"{field} {value[:64]!r} is not an ISO-8601 time", field
        ) from None
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
