"""One row of a CRM export → the events that tell its story, or why it cannot be imported.

A row becomes, in event time:

1. one ``LeadCaptured`` at ``created_at`` (source system ``import``);
2. for every ``[activities]`` column holding N, N ``ActivityRecorded`` of its type, spread
   evenly between ``created_at`` and the handover, so they precede every status change;
3. the status history that ends in the row's final status. An export holds only the final
   status, but the lifecycle judges every move, and a deal cannot be won without having been
   accepted and qualified. So the history is the shortest *legal* path through the lifecycle
   that starts with the handover: CLOSED_WON gives MQL → SAL → SQL → CLOSED_WON,
   DISQUALIFIED gives MQL → DISQUALIFIED, MQL just MQL, and NEW nothing (never handed over).
   MQL is dated at the handover (``created_at`` + ``[formats] handover``, 1 h by default,
   never after the final status), the final status at ``status_at``, and the statuses
   between 1 ms apart just before it: the export does not say when they happened, and
   inventing stage durations would be worse than showing none (the time from handover to
   outcome, which the export does give, stays true). Without a ``status_at`` column the
   history is dated at the handover. Synthetic changes carry no previous status (the export
   does not say); the reason and notes go on the final change, the owner on every change
   but marketing's MQL.

Ids are deterministic, so importing the same file twice changes nothing (the worker drops
duplicate event ids): the lead id is the row's (a uuid, or with ``[formats] lead_ids =
"crm"`` any CRM id turned into a uuid5), else a uuid5 of the normalised email and the capture
time; event ids are uuid5s of the lead id and what the event is.

An export without personal data (no email column) is history only: its LeadCaptured carries
blank identity fields and no consent (there is no person), and the worker keeps it to learn
from without routing, judging or merging it. Its rows are dated by ``created_at``, or by their
order (``[formats] row_spacing``: the row on line L at start + (L − 2) × spacing), or not at
all (every row at ``[formats] start``; training then holds out a stratified random split).
Custom attributes (``[attributes]``) become the LeadCaptured's ``attributes``, typed by the
mapping (numbers, yes/no, lists) or by their text.

Every record then passes ``contract.validate``, the check intake applies, so a row either
imports whole or is rejected whole with a ``RowError`` naming the CSV column. Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from streams.core import attributes as attrs
from streams.core import contract, lifecycle
from streams.core.contract import EVENT_NAMESPACE, LawfulBasis, LeadStatus, SizeBand, fail
from streams.errors import ErrorCode, LeadflowError
from streams.importing.cells import Row, whole
from streams.importing.mapping import ImportMapping

SOURCE_SYSTEM = "import"
# A count beyond this is a wrong column (revenue, a phone number), not page views.
MAX_ACTIVITY_COUNT = 1000
_MQL = LeadStatus.MQL.value
_NEW = LeadStatus.NEW.value

Record = dict[str, Any]

# Record field (as contract.validate names it) → the mapping field it came from, per kind.
_FROM_RECORD: dict[str, dict[str, str]] = {
    "lead": {
        "occurred_at": "created_at",
        "consent": "lawful_basis",
        "consent.lawful_basis": "lawful_basis",
        "consent.consented_at": "consent_at",
        "enrichment.industry": "industry",
        "event_id": "lead_id",
    },
    "status": {
        "occurred_at": "status_at",
        "new_status": "status",
        "updated_by": "owner",
        "event_id": "lead_id",
    },
    "activity": {"occurred_at": "created_at", "event_id": "lead_id"},
}


@dataclass(frozen=True, slots=True)
class RowError:
    """Why the row on ``line`` (1-based, the header is line 1) is not imported. ``where`` is
    the CSV column when one is to blame, else the leadflow field."""

    line: int
    code: str
    where: str
    detail: str

    @property
    def message(self) -> str:
        return f"{self.code} {self.where}: {self.detail}"

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class MappedRow:
    """A row's validated records in the order they are produced: (topic kind, record)."""

    line: int
    lead_id: str
    records: tuple[tuple[str, Record], ...]


class _Failure(Exception):
    """A LeadflowError raised while building records of ``kind``, for attribution."""

    def __init__(self, kind: str, error: LeadflowError, column: str | None = None) -> None:
        super().__init__(kind, error, column)
        self.kind, self.error, self.column = kind, error, column


def event_id(lead_id: str, what: str) -> str:
    """The id of the import's event ``what`` of ``lead_id``: the same on every import."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"import/{lead_id}/{what}"))


def derived_lead_id(email: str, created_at: datetime) -> str:
    """The lead id of a row without one: the same person captured at the same moment."""
    key = f"import/lead/{contract.normalise_email(email)}/{contract.epoch_ms(created_at)}"
    return str(uuid.uuid5(EVENT_NAMESPACE, key))


def crm_lead_id(crm_id: str) -> str:
    """A uuid for a CRM's own lead id ("00Q5e00000AbCdE"): the same id, the same uuid."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"import/crm/{crm_id}"))


@lru_cache(maxsize=32)
def status_path(final: str) -> tuple[str, ...]:
    """The statuses a lead passes through to reach ``final`` (see the module notes)."""
    if final == _NEW:
        return ()
    if final == _MQL:
        return (_MQL,)
    came_from: dict[str, str] = {}
    todo = deque([_MQL])
    while todo:
        status = todo.popleft()
        for nxt in sorted(lifecycle.LEGAL.get(status, ())):
            if nxt not in came_from and nxt != _MQL:
                came_from[nxt] = status
                todo.append(nxt)
    if final not in came_from:
        raise ValueError(f"{final!r} cannot be reached from MQL")
    path = [final]
    while path[-1] != _MQL:
        path.append(came_from[path[-1]])
    return tuple(reversed(path))


def map_row(
    mapping: ImportMapping,
    line: int,
    cells: Mapping[str, str | None],
    *,
    observed_at: datetime,
    max_skew: timedelta,
    correlation_id: str | None = None,
) -> MappedRow | RowError:
    """The records of the CSV row ``cells`` (column → value) on ``line``, each checked by
    ``contract.validate`` as if intake observed it at ``observed_at``; or the first problem."""
    try:
        records = _records(Row(mapping, cells), correlation_id, line)
        checked = []
        for kind, record, column in records:
            try:
                record = contract.validate(
                    kind, record, observed_at=observed_at, max_skew=max_skew
                )
            except LeadflowError as err:
                raise _Failure(kind, err, column) from None
            checked.append((kind, record))
    except _Failure as failure:
        return _row_error(mapping, line, failure)
    return MappedRow(line, checked[0][1]["lead_id"], tuple(checked))


def _row_error(mapping: ImportMapping, line: int, failure: _Failure) -> RowError:
    err = failure.error
    if failure.column is not None:
        where = failure.column
    else:
        name = _FROM_RECORD.get(failure.kind, {}).get(err.field or "", err.field or "row")
        if name == "consent_at" and "consent_at" not in mapping.columns:
            name = "created_at"  # consent was dated at the capture
        if name == "status_at" and "status_at" not in mapping.columns:
            name = "created_at"  # the history was dated at the handover
        where = mapping.columns.get(name, name)
    return RowError(line, str(err.code), where, err.detail)


def _created(row: Row, line: int) -> datetime:
    mapping = row.mapping
    if "created_at" in mapping.columns:
        created = row.time("created_at")
        if created is None:
            raise fail(ErrorCode.MISSING_FIELD, "capture time is blank", "created_at")
        return created
    if mapping.row_spacing_ms:
        return mapping.start + timedelta(milliseconds=mapping.row_spacing_ms * (line - 2))
    return mapping.start


def _attributes(row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, column, kind in row.mapping.attributes:
        try:
            value = attrs.coerce(row.cells.get(column), kind, column)
        except ValueError as exc:
            raise _Failure("lead", fail(ErrorCode.FIELD_MISMATCH, str(exc), column),
                           column) from None
        if value is not None:
            out[name] = value
    return attrs.to_record(out)


def _records(
    row: Row, correlation_id: str | None, line: int = 2
) -> list[tuple[str, Record, str | None]]:
    """(kind, unvalidated record, the activity column it counts or None), in produce order."""
    mapping = row.mapping
    try:
        created = _created(row, line)
        email = row.text("email")
        if email is None and mapping.personal:
            raise fail(ErrorCode.MISSING_FIELD, "email is blank", "email")
        lead_id = _lead_id(row, email, created)
        final = row.text("status")
        if final is None and "status" in mapping.columns:
            raise fail(ErrorCode.MISSING_FIELD, "status is blank (with [defaults] status a "
                       "blank one takes that value)", "status")
        path = status_path(mapping.status(final)) if final is not None else ()
        final_at = row.time("status_at") if path else None
        if path and final_at is None and "status_at" in mapping.columns:
            raise fail(ErrorCode.MISSING_FIELD, "status time is blank", "status_at")
        if final_at is not None and final_at < created:
            raise fail(
                ErrorCode.TIMESTAMP_ABSURD,
                f"final status at {final_at.isoformat()} is before the capture at "
                f"{created.isoformat()}", "status_at",
            )
        lead = _lead(row, lead_id, email, created, correlation_id)
    except LeadflowError as err:
        raise _Failure("lead", err) from None
    found = _attributes(row)
    if found:
        lead["attributes"] = found

    handover = created + timedelta(milliseconds=mapping.handover_ms)
    if final_at is None:
        final_at = handover
    handover = min(handover, final_at)
    out: list[tuple[str, Record, str | None]] = [("lead", lead, None)]
    campaign = lead["attribution"]["campaign_id"]
    counts: list[tuple[str, str, int]] = []
    for column, kind in mapping.activities:
        raw = (row.cells.get(column) or "").strip()
        try:
            count = whole(raw, column, "a count") if raw else 0
            if not 0 <= count <= MAX_ACTIVITY_COUNT:
                raise fail(ErrorCode.FIELD_MISMATCH,
                           f"{count} is not a count from 0 to {MAX_ACTIVITY_COUNT}", column)
        except LeadflowError as err:
            raise _Failure("activity", err, column) from None
        counts.append((column, kind, count))
    total = sum(c for *_, c in counts)
    span = handover - created
    k = 0
    for column, kind, count in counts:
        for i in range(count):
            k += 1
            at = created + span * k / (total + 1)
            out.append(("activity", {
                "event_id": event_id(lead_id, f"activity/{kind}/{column}/{i}"),
                "lead_id": lead_id,
                "activity_type": kind,
                "campaign_id": campaign,
                "properties": {"import_column": column},
                "occurred_at": _ms(at),
                "source_system": SOURCE_SYSTEM,
                "correlation_id": correlation_id,
            }, column))
    for status, at in zip(path, _status_times(handover, final_at, len(path)), strict=True):
        last = status == path[-1]
        out.append(("status", {
            "event_id": event_id(lead_id, f"status/{status}"),
            "lead_id": lead_id,
            "previous_status": None,
            "new_status": status,
            "disqualification_reason": row.text("disqualification_reason") if last else None,
            "sales_notes": row.text("sales_notes") if last else None,
            "updated_by": None if status == _MQL else row.text("owner"),
            "occurred_at": at,
            "source_system": SOURCE_SYSTEM,
            "correlation_id": correlation_id,
        }, None))
    return out


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def _status_times(handover: datetime, final: datetime, n: int) -> list[datetime]:
    if n <= 1:
        return [final] * n
    step = timedelta(milliseconds=1)
    times = [handover] + [final - step * (n - 1 - i) for i in range(1, n)]
    for i in range(1, n):
        times[i] = max(times[i], times[i - 1] + step)
    return times


def _lead_id(row: Row, email: str | None, created: datetime) -> str:
    column = row.mapping.columns.get("lead_id")
    if column is None:
        if email is None:
            raise fail(ErrorCode.MISSING_FIELD, "email is blank", "email")
        return derived_lead_id(email, created)
    raw = (row.cells.get(column) or "").strip()
    if not raw:
        raise fail(ErrorCode.MISSING_FIELD, "lead id is blank", "lead_id")
    if row.mapping.lead_ids == "crm":
        return crm_lead_id(raw)
    return contract.canonical_uuid(raw, "lead_id")


def _lead(
    row: Row, lead_id: str, email: str | None, created: datetime, correlation_id: str | None
) -> Record:
    mapping = row.mapping
    size = row.text("company_size")
    score = row.text("marketing_score")
    basis = row.text("lawful_basis")
    # Without a consent column the basis was established when the lead was captured; a
    # blank cell in one is left blank: no lawful basis recorded (accepted, never rejected).
    consented_at = row.time("consent_at") if "consent_at" in mapping.columns else created
    return {
        "event_id": event_id(lead_id, "lead"),
        "lead_id": lead_id,
        "email": email,
        "first_name": row.text("first_name"),
        "last_name": row.text("last_name"),
        "phone": row.text("phone"),
        "job_title": row.text("job_title"),
        "company_name": row.text("company_name"),
        "company_size": SizeBand.UNKNOWN.value if size is None else mapping.company_size(size),
        "region": row.text("region"),
        "marketing_score": None if score is None else whole(score, "marketing_score",
                                                             "a whole number"),
        "trigger_actions": row.items("trigger_actions"),
        "enrichment": {
            "linkedin_url": row.text("linkedin_url"),
            "industry": row.text("industry"),
            "tech_stack": row.items("tech_stack"),
        },
        "attribution": {
            "campaign_id": row.text("campaign_id"),
            "utm_source": row.text("utm_source"),
            "utm_medium": row.text("utm_medium"),
            "utm_campaign": row.text("utm_campaign"),
            "original_source": row.text("source"),
            "latest_source": None,
        },
        "consent": {
            "lawful_basis": LawfulBasis.UNKNOWN.value if basis is None
            else mapping.lawful_basis(basis),
            "consented_at": consented_at,
            "channels": [],
        },
        "occurred_at": created,
        "source_system": SOURCE_SYSTEM,
        "correlation_id": correlation_id,
    }
