"""Erasure (GDPR Art. 17): what a person's personal data is, and what it becomes.

Pure rules, no Faust and no files: the agents, the archive rewrite, replay and every way in
(``leadflow erase``, ``POST /v1/admin/erasures``, a connector's privacy deletion) call them.

- **Who.** A request names a lead id or an e-mail. The e-mail never travels: it becomes the
  person's *identity key* (SHA-256 of the normalised address), which is also what the identity
  table is keyed by, so that the table, its changelog and the tombstone an erasure writes hold
  no address. A request by e-mail reaches every lead of that person (the identity agent fans
  it out); a request by lead id reaches the lead's identity, hence its aliases too.
- **Idempotent.** The erasure id is derived from what the request names, so the same request
  twice is one erasure; a lead already erased stays as it is.
- **What goes** (``PERSONAL``): e-mail, first and last name, phone, a person's LinkedIn URL,
  the sales notes (free text about the person), an activity's free-form properties (form fields
  land there), and a dead letter's original bytes and detail. In a record that must stay valid
  (replay sends it again) they become placeholders that keep the record's *shape*: the e-mail
  an address of its own per erasure at ``erased.example`` (one per person, so a replay links a
  person's leads again without knowing who), names ``[erased]``. The features the score reads
  (has an e-mail, has names, has notes) are therefore the same, and so are the verdicts.
- **What stays**: the lead id, the trace's steps (kinds, times, campaign, company, size band,
  region, statuses, reps: the trace never held names, e-mails, phones or notes), the scores,
  routing and SLA verdicts, the training examples (features only), the job title and company
  (what the lead's firm and role are, not who the person is; the model scores on them).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime
from typing import Any

from streams.core.contract import EVENT_NAMESPACE, normalise_email
from streams.errors import ErrorCode, LeadflowError

ERASED = "[erased]"
PLACEHOLDER_DOMAIN = "erased.example"  # RFC 2606: never a real mailbox
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
# Addresses inside free text or raw bytes (a dead letter's body): ASCII is enough to find one.
EMAIL_BYTES = re.compile(rb"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")

# record name -> its personal fields. Nested: "enrichment.linkedin_url".
PERSONAL: dict[str, tuple[str, ...]] = {
    "LeadCaptured": ("email", "first_name", "last_name", "phone", "enrichment.linkedin_url"),
    "LeadStatusChanged": ("sales_notes",),
    "ActivityRecorded": ("properties",),
    "DeadLetter": ("original_value", "detail"),
}


def identity_key(email: str) -> str:
    """The identity key of an e-mail address (raises LeadflowError for a malformed one)."""
    normalised = normalise_email(email)
    return hashlib.sha256(b"leadflow-identity\0" + normalised.encode()).hexdigest()


def identity_key_or_none(text: str) -> str | None:
    try:
        return identity_key(text)
    except LeadflowError:
        return None


def identity_key_scan(text: str) -> str:
    """``identity_key`` for scanning archived addresses by the hundred thousand: an ASCII
    address normalises to itself lower-cased (what the contract stored), so it is hashed as
    that without the full syntax check (~50x faster); others take the full way."""
    if text.isascii():
        return hashlib.sha256(b"leadflow-identity\0" + text.strip().lower().encode()
                              ).hexdigest()
    return identity_key_or_none(text) or ""


def keys_in(data: bytes | str | None) -> set[str]:
    """Identity keys of every e-mail address found in ``data`` (raw bytes, free text)."""
    if not data:
        return set()
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    found = {m.group().decode("ascii", "replace") for m in EMAIL_BYTES.finditer(raw)}
    return {k for k in map(identity_key_or_none, found) if k is not None}


class Subject:
    """What a request names: a lead id or an identity key (the e-mail itself is not kept)."""

    __slots__ = ("identity_key", "lead_id")

    def __init__(self, *, lead_id: str | None = None, identity_key: str | None = None) -> None:
        self.lead_id = lead_id
        self.identity_key = identity_key

    @property
    def kind(self) -> str:
        return "lead" if self.lead_id else "email"


def subject_of(text: str) -> Subject:
    """``LEAD_ID|EMAIL`` as the command line and the API take it."""
    text = (text or "").strip()
    if not text:
        raise LeadflowError(ErrorCode.MISSING_FIELD, "name a lead id or an e-mail", "subject")
    if _UUID.match(text):
        return Subject(lead_id=str(uuid.UUID(text)))
    if "@" in text:
        return Subject(identity_key=identity_key(text))
    raise LeadflowError(ErrorCode.FIELD_MISMATCH, "neither a lead id (uuid) nor an e-mail",
                        "subject")


def erasure_id(subject: Subject) -> str:
    what = f"lead/{subject.lead_id}" if subject.lead_id else f"identity/{subject.identity_key}"
    return str(uuid.uuid5(EVENT_NAMESPACE, f"erasure:{what}"))


def request(subject: Subject, *, by: str, via: str, at: datetime,
            correlation_id: str | None = None) -> dict[str, Any]:
    """The ErasureRequested record for ``subject`` (its key: ``request_key``)."""
    return {
        "erasure_id": erasure_id(subject),
        "lead_id": subject.lead_id,
        "identity_key": subject.identity_key,
        "requested_by": by,
        "requested_at": at,
        "via": via,
        "correlation_id": correlation_id,
    }


def request_key(record: dict[str, Any]) -> bytes:
    return str(record["lead_id"] or record["identity_key"]).encode()


def for_lead(record: dict[str, Any], lead_id: str) -> dict[str, Any]:
    """The request fanned out to one lead of the person (same erasure id)."""
    return {**record, "lead_id": lead_id, "via": "identity"}


def for_identity(record: dict[str, Any], key: str) -> dict[str, Any]:
    """A lead's erasure handed to its identity (so its aliases go too; same erasure id)."""
    return {**record, "lead_id": None, "identity_key": key, "via": "identity"}


def mark(state: dict[str, Any] | None, lead_id: str, record: dict[str, Any],
         now_ms: int) -> tuple[dict[str, Any], bool]:
    """The lead's trace state once erased, and whether it changed (False: erased already).

    The trace holds nothing personal but the identity key (a pseudonym of the e-mail), which
    goes; what stays is marked with the erasure so that a later capture of the same lead id is
    not claimed again for that person."""
    from streams.core import trace  # the trace's own rules; imported late to keep this small

    current = state if state is not None else trace.new_state(lead_id)
    if current.get("erased"):
        return current, False
    current.pop("identity_key", None)
    current["erased"] = {"id": record["erasure_id"], "at": now_ms}
    return current, True


def placeholder_email(erasure: str) -> str:
    return f"erased-{uuid.UUID(erasure).hex[:16]}@{PLACEHOLDER_DOMAIN}"


def scrub(record_name: str, record: dict[str, Any], erasure: str) -> dict[str, Any]:
    """``record`` (a decoded Avro record of ``record_name``) without personal data: a copy
    with placeholders in the fields that must stay valid, nulls or empty values elsewhere."""
    fields = PERSONAL.get(record_name)
    if not fields:
        return record
    out = dict(record)
    if record_name == "LeadCaptured":
        email = out.get("email")
        # Erased once already (by another request): keep its placeholder, change nothing.
        if not (isinstance(email, str) and email.endswith("@" + PLACEHOLDER_DOMAIN)):
            out["email"] = placeholder_email(erasure)
        out["first_name"] = out["last_name"] = ERASED
        out["phone"] = None
        if isinstance(out.get("enrichment"), dict):
            out["enrichment"] = {**out["enrichment"], "linkedin_url": None}
    elif record_name == "LeadStatusChanged":
        # Kept non-empty when there were notes: a disqualification needs them.
        if out.get("sales_notes"):
            out["sales_notes"] = ERASED
    elif record_name == "ActivityRecorded":
        out["properties"] = {}
    elif record_name == "DeadLetter":
        out["original_value"] = b""
        out["detail"] = ERASED
    return out


def scrubbed(record_name: str, record: dict[str, Any], erasure: str) -> bool:
    """Whether ``record`` is already what ``scrub`` makes of it (nothing to rewrite)."""
    return scrub(record_name, record, erasure) == record


def audit(kind: str, erasure: str, **what: Any) -> dict[str, Any]:
    """One line of the erasure log: who, when, what — ids and counts, never personal data."""
    return {"erasure_id": erasure, "kind": kind, **what}
