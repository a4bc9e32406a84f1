"""The marketing→sales contract on inbound records: what a record must contain to be processed.

Records reach ``validate`` from two doors: the HTTP API (after ``payloads`` mapped the JSON)
and any Kafka producer (after Avro decoding). Avro guarantees the types but not the content:
blank names, malformed uuids, an ``UNKNOWN`` enum symbol from a newer writer, a timestamp
from 1970 or from next week. ``validate`` rejects those with a ``LeadflowError`` (which the
intake sends to the dead-letter topic) and returns a normalised copy otherwise.

This module also owns the closed value sets (mirroring the Avro enums) and the fixed uuid
namespace used to derive deterministic event ids, so every other core module imports them
from one place.

``validate`` runs once per event on the hot path, so lookups are frozensets, patterns are
compiled once, and email normalisation is memoised.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email

from streams.errors import ErrorCode, LeadflowError

# Fixed forever: derived event ids (uuid5) must be identical across versions and replays.
EVENT_NAMESPACE = uuid.UUID("62461e64-2db4-4a67-b222-2e5381117a11")
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def event_uuid5(name: str) -> str:
    """``str(uuid.uuid5(EVENT_NAMESPACE, name))``, without building a UUID object: the
    handoff names every derived event this way, and the object cost two thirds of it."""
    b = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


class SizeBand(StrEnum):
    SIZE_1_10 = "SIZE_1_10"
    SIZE_11_50 = "SIZE_11_50"
    SIZE_51_200 = "SIZE_51_200"
    SIZE_201_1000 = "SIZE_201_1000"
    SIZE_1001_5000 = "SIZE_1001_5000"
    SIZE_5001_PLUS = "SIZE_5001_PLUS"
    UNKNOWN = "UNKNOWN"
    # The seed's top band ("201+"): a real band, but it spans the three above, so a lead
    # carrying it is accepted with its size named as missing context.
    SIZE_201_PLUS = "SIZE_201_PLUS"


class LawfulBasis(StrEnum):
    CONSENT = "CONSENT"
    LEGITIMATE_INTEREST = "LEGITIMATE_INTEREST"
    CONTRACT = "CONTRACT"
    UNKNOWN = "UNKNOWN"


class ActivityType(StrEnum):
    EMAIL_OPEN = "EMAIL_OPEN"
    EMAIL_CLICK = "EMAIL_CLICK"
    FORM_SUBMIT = "FORM_SUBMIT"
    WEBINAR_ATTEND = "WEBINAR_ATTEND"
    PAGE_VIEW = "PAGE_VIEW"
    PRICING_PAGE_VIEW = "PRICING_PAGE_VIEW"
    CONTENT_DOWNLOAD = "CONTENT_DOWNLOAD"
    DEMO_REQUEST = "DEMO_REQUEST"
    MEETING_BOOKED = "MEETING_BOOKED"
    CONTACT_SUPPORT = "CONTACT_SUPPORT"
    OTHER = "OTHER"
    # Meetings after the booking (ActivityRecorded v2): what Calendly, Chili Piper and CRM
    # meeting objects report. Properties name the meeting ("meetingId") and host ("repId").
    MEETING_RESCHEDULED = "MEETING_RESCHEDULED"
    MEETING_CANCELLED = "MEETING_CANCELLED"
    MEETING_HELD = "MEETING_HELD"
    MEETING_NO_SHOW = "MEETING_NO_SHOW"


class LeadStatus(StrEnum):
    NEW = "NEW"
    MQL = "MQL"
    SAL = "SAL"
    SQL = "SQL"
    WORKING = "WORKING"
    NO_RESPONSE = "NO_RESPONSE"
    BAD_FIT = "BAD_FIT"
    DISQUALIFIED = "DISQUALIFIED"
    CLOSED_WON = "CLOSED_WON"
    CLOSED_LOST = "CLOSED_LOST"
    UNKNOWN = "UNKNOWN"


class TouchChannel(StrEnum):
    CALL = "CALL"
    EMAIL = "EMAIL"
    MEETING = "MEETING"
    SMS = "SMS"
    SOCIAL = "SOCIAL"
    OTHER = "OTHER"


class TouchOutcome(StrEnum):
    CONNECTED = "CONNECTED"
    VOICEMAIL = "VOICEMAIL"
    NO_ANSWER = "NO_ANSWER"
    REPLIED = "REPLIED"
    BOUNCED = "BOUNCED"
    SCHEDULED = "SCHEDULED"
    OTHER = "OTHER"


TOPIC_KINDS = ("lead", "activity", "status", "touch")

# UNKNOWN/OTHER is what Avro's enum default yields for a symbol this reader does not know.
# A size band we cannot place is "context incomplete" (an SLA matter, not a rejection); a
# status we cannot place would corrupt the lifecycle, so it is rejected.
_SIZE_BANDS = frozenset(m.value for m in SizeBand)
_ACTIVITY_TYPES = frozenset(m.value for m in ActivityType)
_CHANNELS = frozenset(m.value for m in TouchChannel)
_OUTCOMES = frozenset(m.value for m in TouchOutcome)
_PREVIOUS_STATUSES = frozenset(m.value for m in LeadStatus)
_NEW_STATUSES = _PREVIOUS_STATUSES - {LeadStatus.UNKNOWN.value}
_LAWFUL_BASES = frozenset(m.value for m in LawfulBasis) - {LawfulBasis.UNKNOWN.value}

_UUID_CANONICAL = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII
)
_UUID_LENIENT = re.compile(
    r"(?:urn:uuid:)?\{?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?"
    r"([0-9a-f]{12})\}?",
    re.ASCII | re.IGNORECASE,
)


def fail(code: ErrorCode, detail: str, field: str | None = None) -> LeadflowError:
    return LeadflowError(code, detail, field)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding), for an aware datetime."""
    return (moment - _EPOCH) // _MS


def to_ms(value: int | datetime) -> int:
    """Epoch milliseconds of an aware datetime, or of a value that already is some."""
    return epoch_ms(value) if isinstance(value, datetime) else int(value)


def from_epoch_ms(ms: int) -> datetime:
    """The aware UTC datetime of ``epoch_ms``, exactly."""
    return _EPOCH + ms * _MS


def canonical_uuid(value: Any, field: str) -> str:
    """The lower-case hyphenated form of a uuid given as str (or uuid.UUID), else an error."""
    if isinstance(value, str):
        if _UUID_CANONICAL.fullmatch(value):
            return value
        text = value.strip()
        if not text:
            raise fail(ErrorCode.MISSING_FIELD, f"{field} is blank", field)
        match = _UUID_LENIENT.fullmatch(text)
        if match is None:
            raise fail(ErrorCode.FIELD_MISMATCH, f"{field} is not a uuid: {text[:64]!r}", field)
        return "-".join(match.groups()).lower()
    if value is None:
        raise fail(ErrorCode.MISSING_FIELD, f"{field} is required", field)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a uuid string", field)


# Longer than any address (RFC 5321: 254 octets; the 64 + 1 + 255 often quoted is 320), so
# the memo below holds at most ~20 MB whatever producers send.
_EMAIL_MAX = 320


@lru_cache(maxsize=65_536)
def _validated_email(text: str) -> tuple[str | None, str]:
    # Caches rejections too, so a producer hammering one bad address stays cheap.
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        return None, str(exc)
    # Lower-case the whole address (RFC says the local part is case-sensitive, but no real
    # mailbox provider treats it so) so one person always maps to one identity key.
    return result.normalized.lower(), ""


def normalise_email(raw: Any, field: str = "email") -> str:
    """Syntax-checked, normalised, lower-cased address; LeadflowError otherwise. Memoised."""
    if not isinstance(raw, str):
        if raw is None:
            raise fail(ErrorCode.MISSING_FIELD, f"{field} is required", field)
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a string", field)
    text = raw.strip()
    if not text:
        raise fail(ErrorCode.MISSING_FIELD, f"{field} is blank", field)
    if len(text) > _EMAIL_MAX:
        # Not memoised: the cache holds 65,536 addresses, and that many of a megabyte each
        # would pin gigabytes.
        raise fail(ErrorCode.INVALID_EMAIL, f"{len(text)} characters, longer than any address",
                   field)
    normalised, reason = _validated_email(text)
    if normalised is None:
        raise fail(ErrorCode.INVALID_EMAIL, reason, field)
    return normalised


def validate(
    topic_kind: str, record: dict[str, Any], *, observed_at: datetime, max_skew: timedelta
) -> dict[str, Any]:
    """Check ``record`` against the contract of ``topic_kind`` and return a normalised copy.

    The copy is shallow: nested dicts that need no normalisation are shared with the input.
    Raises LeadflowError for content the contract rejects; ValueError for a programming error
    (unknown topic kind, naive ``observed_at``).
    """
    check = _CHECKS.get(topic_kind)
    if check is None:
        raise ValueError(f"unknown topic kind {topic_kind!r}; expected one of {TOPIC_KINDS}")
    if observed_at.tzinfo is None:
        raise ValueError("observed_at must be timezone-aware")
    latest = observed_at + max_skew
    out = dict(record)
    out["event_id"] = canonical_uuid(out.get("event_id"), "event_id")
    out["lead_id"] = canonical_uuid(out.get("lead_id"), "lead_id")
    out["occurred_at"] = _timestamp(out.get("occurred_at"), "occurred_at", latest)
    out["source_system"] = _required_text(out.get("source_system"), "source_system")
    out["correlation_id"] = _optional_text(out.get("correlation_id"), "correlation_id")
    check(out, latest)
    return out


# History imported without personal data (``leadflow import`` with no email column): its
# lead is kept as history only, never routed, judged or identity-merged (handoff: historic).
IMPORT_SOURCE = "import"


def _attributes(out: dict[str, Any]) -> None:
    from streams.core import attributes

    if not out.get("attributes"):
        return
    try:
        out["attributes"] = attributes.to_record(attributes.parse(out["attributes"]))
    except ValueError as exc:
        raise fail(ErrorCode.FIELD_MISMATCH, str(exc), "attributes") from None


def _anonymous_history(out: dict[str, Any]) -> bool:
    email = out.get("email")
    return out.get("source_system") == IMPORT_SOURCE and (
        email is None or (isinstance(email, str) and not email.strip()))


def _check_lead(out: dict[str, Any], latest: datetime) -> None:
    _attributes(out)
    # History without personal data has no person: no email to check (and none to merge by).
    out["email"] = "" if _anonymous_history(out) else normalise_email(out.get("email"))
    # What a real lead may lack is accepted and judged (``features.missing_context``, the
    # MQL contract of the configuration), never rejected: "" is the Avro string's "not known".
    for name in ("first_name", "last_name", "company_name", "region"):
        out[name] = _optional_text(out.get(name), name) or ""
    for name in ("phone", "job_title"):
        out[name] = _optional_text(out.get(name), name)
    out["company_size"] = _symbol(out.get("company_size"), "company_size", _SIZE_BANDS)
    score = out.get("marketing_score")
    if score is not None and (type(score) is not int or not _INT32_MIN <= score <= _INT32_MAX):
        raise fail(
            ErrorCode.FIELD_MISMATCH, "marketing_score must be a 32-bit int", "marketing_score"
        )
    out["trigger_actions"] = _text_list(out.get("trigger_actions"), "trigger_actions")
    for name in ("enrichment", "attribution"):
        nested = out.get(name)
        if not isinstance(nested, dict):
            if nested is None:
                raise fail(ErrorCode.MISSING_FIELD, f"{name} is required", name)
            raise fail(ErrorCode.FIELD_MISMATCH, f"{name} must be a record", name)
    out["consent"] = _consent(out.get("consent"), latest)


def _consent(consent: Any, latest: datetime) -> dict[str, Any] | None:
    """The consent block, or None when it records no lawful basis: absent, a basis of
    UNKNOWN (or none), or no date. Such a lead is accepted; whether it may be handed to sales
    is the configuration's (``sla.Contract.consent_required``). A basis spelled wrong or a
    block of the wrong type is malformed."""
    if consent is None:
        return None
    if not isinstance(consent, dict):
        raise fail(ErrorCode.FIELD_MISMATCH, "consent must be a record", "consent")
    basis = consent.get("lawful_basis")
    if basis is not None and basis != LawfulBasis.UNKNOWN.value and (
            not isinstance(basis, str) or basis not in _LAWFUL_BASES):
        raise fail(
            ErrorCode.INVALID_ENUM, f"unknown lawful basis {basis!r}", "consent.lawful_basis"
        )
    at = consent.get("consented_at")
    if at is None:
        return None  # Avro's Consent needs a date; without one no basis is recorded
    out = dict(consent)
    out["lawful_basis"] = basis or LawfulBasis.UNKNOWN.value
    out["consented_at"] = _timestamp(at, "consent.consented_at", latest)
    out["channels"] = _text_list(consent.get("channels"), "consent.channels")
    return out


def _check_activity(out: dict[str, Any], latest: datetime) -> None:
    _attributes(out)
    out["activity_type"] = _symbol(out.get("activity_type"), "activity_type", _ACTIVITY_TYPES)
    out["campaign_id"] = _optional_text(out.get("campaign_id"), "campaign_id")
    props = out.get("properties")
    if props is None:
        out["properties"] = {}
    elif not isinstance(props, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in props.items()
    ):
        raise fail(ErrorCode.FIELD_MISMATCH, "properties must map strings to strings", "properties")


def _check_status(out: dict[str, Any], latest: datetime) -> None:
    previous = out.get("previous_status")
    if previous is not None:
        _symbol(previous, "previous_status", _PREVIOUS_STATUSES)
    else:
        out["previous_status"] = None
    _symbol(out.get("new_status"), "new_status", _NEW_STATUSES)
    # A disqualification without reason is accepted on purpose: it is a sales-side SLA breach
    # (measured by the lifecycle), not a malformed event.
    for name in ("disqualification_reason", "sales_notes", "updated_by"):
        out[name] = _optional_text(out.get(name), name)


def _check_touch(out: dict[str, Any], latest: datetime) -> None:
    out["touch_id"] = canonical_uuid(out.get("touch_id"), "touch_id")
    out["rep_id"] = _required_text(out.get("rep_id"), "rep_id")
    _symbol(out.get("channel"), "channel", _CHANNELS)
    _symbol(out.get("outcome"), "outcome", _OUTCOMES)


_CHECKS: dict[str, Callable[[dict[str, Any], datetime], None]] = {
    "lead": _check_lead,
    "activity": _check_activity,
    "status": _check_status,
    "touch": _check_touch,
}


def _timestamp(value: Any, field: str, latest: datetime) -> datetime:
    if not isinstance(value, datetime):
        if value is None:
            raise fail(ErrorCode.MISSING_FIELD, f"{field} is required", field)
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a timestamp", field)
    if value.tzinfo is None:
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field} has no time zone", field)
    if value < EARLIEST:
        raise fail(ErrorCode.TIMESTAMP_ABSURD, f"{field} {value.isoformat()} is before 2000", field)
    if value > latest:
        raise fail(
            ErrorCode.TIMESTAMP_ABSURD,
            f"{field} {value.isoformat()} is later than {latest.isoformat()} (clock skew)",
            field,
        )
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _required_text(value: Any, field: str) -> str:
    if isinstance(value, str):
        if value and not value[0].isspace() and not value[-1].isspace():
            return value
        value = value.strip()
        if value:
            return value
        raise fail(ErrorCode.MISSING_FIELD, f"{field} is blank", field)
    if value is None:
        raise fail(ErrorCode.MISSING_FIELD, f"{field} is required", field)
    raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a string", field)


def _optional_text(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a string", field)
    return value.strip() or None


def _text_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be a list of strings", field)
    return value


def _symbol(value: Any, field: str, allowed: frozenset[str]) -> str:
    if isinstance(value, str):
        if value in allowed:
            return value
        raise fail(ErrorCode.INVALID_ENUM, f"{field} {value[:64]!r} is not accepted", field)
    if value is None:
        raise fail(ErrorCode.MISSING_FIELD, f"{field} is required", field)
    raise fail(ErrorCode.FIELD_MISMATCH, f"{field} must be an enum symbol", field)
