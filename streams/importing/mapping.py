"""The column-mapping file: which CSV column holds which leadflow field, and how to read values.

A CRM export names its columns its own way ("Lead Status", "Employees", "Created Date") and
spells values its own way ("Closed - Won", "Unqualified", "03/14/2025 9:05 AM"); the mapping
file says how they translate. It is TOML because leadflow's own configuration is, and it is
checked entirely at load time — every section, key and value — so a typo is reported once,
naming the key, instead of as a rejection on every row. See ``example-mapping.toml`` next to
this module for every key, commented.

Value look-ups (``[statuses]``, ``[lawful_bases]``, ``[company_sizes]``) ignore case and runs
of spaces, because exports are typed by people. A value not in the table may still be
leadflow's own spelling ("closed won", "Disqualified", "51-200"): accepted the way the HTTP
API accepts it, so a mapping only needs the values that differ.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from streams.core import attributes as attrs
from streams.core import lifecycle
from streams.core.contract import ActivityType, LawfulBasis, fail
from streams.core.durations import parse_duration, zone
from streams.core.payloads import _size_band  # the one parser of size labels, every way in
from streams.errors import ErrorCode, LeadflowError
from streams.importing.exceptions import MappingError

# leadflow field → what it holds (the keys [columns] and [defaults] accept).
FIELDS: dict[str, str] = {
    "lead_id": "the lead's id (absent: derived from email + created_at)",
    "email": "e-mail address",
    "first_name": "first name",
    "last_name": "last name",
    "phone": "phone number",
    "job_title": "job title",
    "company_name": "company name",
    "company_size": "head-count band or employee count",
    "region": "sales region / territory",
    "industry": "industry",
    "tech_stack": "technologies, separated by [formats] list_separator",
    "linkedin_url": "LinkedIn URL",
    "trigger_actions": "what made the lead an MQL, separated by [formats] list_separator",
    "marketing_score": "marketing's own score (whole number)",
    "campaign_id": "campaign the lead is attributed to",
    "source": "lead source / original channel",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "created_at": "when the lead was captured",
    "lawful_basis": "GDPR lawful basis (consent, legitimate interest, contract)",
    "consent_at": "when consent was given (absent: created_at)",
    "status": "the lead's final CRM status",
    "status_at": "when the final status was set (absent: the handover time)",
    "disqualification_reason": "why the lead was disqualified",
    "sales_notes": "the rep's notes",
    "owner": "who set the final status (a rep)",
}
# With an email column the rows are people: the contract's identity fields are needed. Without
# one they are history without personal data (an id and an outcome suffice): kept to learn
# from, never routed, judged or identity-merged.
PERSONAL = ("email", "first_name", "last_name", "phone", "linkedin_url", "company_name")
REQUIRED = ("email", "first_name", "last_name", "company_name")
# The contract needs these on every lead, but exports often lack them: a column or a default.
COLUMN_OR_DEFAULT = ("region", "lawful_basis")
# Identity and time cannot sensibly default to one value for every row.
NO_DEFAULT = frozenset({"lead_id", "email", "created_at", "status_at", "consent_at"})
LIST_FIELDS = frozenset({"tech_stack", "trigger_actions"})

SECTIONS = ("columns", "activities", "statuses", "lawful_bases", "company_sizes", "defaults",
            "formats", "attributes")
FORMAT_KEYS = ("datetime", "timezone", "list_separator", "lead_ids", "handover", "delimiter",
               "encoding", "row_spacing", "start")
# Without created_at or row_spacing every row is dated here (and reports say the split is
# random); with row_spacing, row k (from 0) is dated start + k × spacing.
DEFAULT_START = "2025-01-01T00:00:00+00:00"
LEAD_ID_KINDS = ("uuid", "crm")

# (where, message) → the error to raise: each parse carries the file name in its messages.
_Error = Callable[[str, str], MappingError]

_SEPARATORS = re.compile(r"[\s\-]+")
_STATUSES = frozenset(lifecycle.STATUSES)
_BASES = frozenset(m.value for m in LawfulBasis if m is not LawfulBasis.UNKNOWN)
_ACTIVITIES = frozenset(m.value for m in ActivityType)


def value_key(text: str) -> str:
    """How a CRM value is looked up: case and runs of whitespace do not matter."""
    return " ".join(text.split()).casefold()


def _symbol(text: str) -> str:
    # leadflow's own spelling in any case, spaces or hyphens for underscores ("closed won").
    return _SEPARATORS.sub("_", text.strip()).upper()


@dataclass(frozen=True)
class ImportMapping:
    """A checked mapping file. Value tables are keyed by ``value_key``."""

    columns: dict[str, str]  # leadflow field → CSV column
    activities: tuple[tuple[str, str], ...] = ()  # (CSV column, ActivityType symbol)
    statuses: dict[str, str] = field(default_factory=dict)
    lawful_bases: dict[str, str] = field(default_factory=dict)
    company_sizes: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    datetime_formats: tuple[str, ...] = ()
    timezone: tzinfo | None = None  # None: UTC
    list_separator: str = ";"
    lead_ids: str = "uuid"
    handover_ms: int = 3_600_000
    delimiter: str = ","
    encoding: str = "utf-8-sig"
    source: str = "mapping"
    # Custom attributes: (attribute name, CSV column, type or None: typed by declaration).
    attributes: tuple[tuple[str, str, str | None], ...] = ()
    row_spacing_ms: int | None = None  # without created_at: rows dated by their order
    start: datetime = datetime(2025, 1, 1, tzinfo=UTC)

    @property
    def personal(self) -> bool:
        """Whether rows carry personal data (an email column): leads, not anonymous history."""
        return "email" in self.columns

    @property
    def dated(self) -> str:
        """How rows are dated: "column", "row order" or "undated"."""
        if "created_at" in self.columns:
            return "column"
        return "row order" if self.row_spacing_ms else "undated"

    def status(self, raw: str, key: str = "status") -> str:
        """A CRM status → LeadStatus symbol; INVALID_ENUM naming the value otherwise."""
        found = self.statuses.get(value_key(raw)) or _known(_symbol(raw), _STATUSES)
        if found is None:
            raise fail(
                ErrorCode.INVALID_ENUM,
                f"status {raw[:64]!r} is neither in [statuses] nor a leadflow status", key,
            )
        return found

    def lawful_basis(self, raw: str, key: str = "lawful_basis") -> str:
        found = self.lawful_bases.get(value_key(raw)) or _known(_symbol(raw), _BASES)
        if found is None:
            raise fail(
                ErrorCode.INVALID_ENUM,
                f"lawful basis {raw[:64]!r} is neither in [lawful_bases] nor one of "
                f"{', '.join(sorted(_BASES))}", key,
            )
        return found

    def company_size(self, raw: str, key: str = "company_size") -> str:
        mapped = self.company_sizes.get(value_key(raw))
        return mapped if mapped is not None else _size_band(raw, key)

    def columns_used(self) -> list[tuple[str, str]]:
        """(what names it, CSV column) for every column the mapping reads."""
        named = [(f"[columns] {name}", column) for name, column in self.columns.items()]
        named += [(f"[attributes] {name}", column) for name, column, _ in self.attributes]
        return named + [(f"[activities] {column!r}", column) for column, _ in self.activities]


def _known(symbol: str, allowed: frozenset[str]) -> str | None:
    return symbol if symbol in allowed else None


def load_mapping(path: str | Path) -> ImportMapping:
    """Read and check a mapping file; ``MappingError`` naming the file and key otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"{path}: cannot read the mapping file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise MappingError(f"{path}: the mapping file is not UTF-8 text") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: not valid TOML: {exc}") from exc
    return parse_mapping(doc, source=str(path))


def parse_mapping(doc: Mapping[str, Any], *, source: str = "mapping") -> ImportMapping:
    """A mapping from the parsed TOML document ``doc`` (see the module notes)."""

    def error(where: str, message: str) -> MappingError:
        return MappingError(f"{source}: {where}: {message}")

    unknown = [k for k in doc if k not in SECTIONS]
    if unknown:
        raise error(f"[{unknown[0]}]", f"unknown section; expected {', '.join(SECTIONS)}")
    sections = {name: _table(doc.get(name, {}), f"[{name}]", error) for name in SECTIONS}

    columns: dict[str, str] = {}
    for name, column in sections["columns"].items():
        if name not in FIELDS:
            raise error(f"[columns] {name}", f"not a leadflow field; known: {', '.join(FIELDS)}")
        columns[name] = _text(column, f"[columns] {name}", error, "a CSV column name")

    activities: list[tuple[str, str]] = []
    for column, kind in sections["activities"].items():
        where = f"[activities] {column!r}"
        symbol = _symbol(_text(kind, where, error, "an activity type"))
        if symbol not in _ACTIVITIES:
            raise error(where, f"{kind!r} is not an activity type; known: "
                               f"{', '.join(sorted(m.lower() for m in _ACTIVITIES))}")
        activities.append((column, symbol))

    statuses = _value_table(sections["statuses"], "statuses", _STATUSES, error)
    bases = _value_table(sections["lawful_bases"], "lawful_bases", _BASES, error)
    sizes: dict[str, str] = {}
    for label, band in sections["company_sizes"].items():
        where = f"[company_sizes] {label!r}"
        try:
            sizes[_unique(value_key(label), sizes, where, error)] = _size_band(
                _text(band, where, error, "a size band such as '51-200'"), "company_size"
            )
        except LeadflowError as exc:
            raise error(where, exc.detail) from None

    defaults: dict[str, str] = {}
    for name, value in sections["defaults"].items():
        where = f"[defaults] {name}"
        if name not in FIELDS:
            raise error(where, f"not a leadflow field; known: {', '.join(FIELDS)}")
        if name in NO_DEFAULT:
            raise error(where, "cannot have a default (it differs on every row)")
        defaults[name] = _text(value, where, error, "a text value")

    formats = sections["formats"]
    for key in formats:
        if key not in FORMAT_KEYS:
            raise error(f"[formats] {key}", f"unknown key; expected {', '.join(FORMAT_KEYS)}")
    stamp_formats = formats.get("datetime", [])
    if isinstance(stamp_formats, str):
        stamp_formats = [stamp_formats]
    if not isinstance(stamp_formats, list) or not all(
        isinstance(f, str) and "%" in f for f in stamp_formats
    ):
        raise error("[formats] datetime", "must be a strptime format such as '%m/%d/%Y %H:%M' "
                                          "or a list of them")
    tz = None
    if "timezone" in formats:
        try:
            tz = zone(_text(formats["timezone"], "[formats] timezone", error, "an IANA name"))
        except ValueError as exc:
            raise error("[formats] timezone", str(exc)) from None
    lead_ids = formats.get("lead_ids", "uuid")
    if lead_ids not in LEAD_ID_KINDS:
        raise error("[formats] lead_ids", f"{lead_ids!r} is not one of {LEAD_ID_KINDS}")
    handover = formats.get("handover", "1h")
    try:
        handover_ms = parse_duration(handover)
    except ValueError as exc:
        raise error("[formats] handover", str(exc)) from None
    # Not stripped: a space or a tab is a fine separator.
    separator = formats.get("list_separator", ";")
    if not isinstance(separator, str) or not separator:
        raise error("[formats] list_separator", "must be a non-empty string such as ';'")
    delimiter = formats.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise error("[formats] delimiter", "must be one character, e.g. ',' or ';' or '\\t'")
    encoding = _text(formats.get("encoding", "utf-8-sig"), "[formats] encoding", error,
                     "an encoding name")
    try:
        "".encode(encoding)
    except LookupError:
        raise error("[formats] encoding", f"unknown encoding {encoding!r}") from None

    spacing_ms: int | None = None
    if "row_spacing" in formats:
        try:
            spacing_ms = parse_duration(formats["row_spacing"])
        except ValueError as exc:
            raise error("[formats] row_spacing", str(exc)) from None
        if "created_at" in columns:
            raise error("[formats] row_spacing", "rows are dated by [columns] created_at already")
    try:
        start = datetime.fromisoformat(str(formats.get("start", DEFAULT_START)))
    except ValueError:
        raise error("[formats] start", "must be an ISO 8601 time such as 2025-01-01") from None
    start = (start if start.tzinfo else start.replace(tzinfo=UTC)).astimezone(UTC)

    attributes: list[tuple[str, str, str | None]] = []
    for name, value in sections["attributes"].items():
        where = f"[attributes] {name}"
        try:
            attrs.check_name(name, where)
        except ValueError as exc:
            raise error(where, str(exc)) from None
        kind: str | None = None
        if isinstance(value, dict):
            unknown_keys = set(value) - {"column", "type"}
            if unknown_keys:
                raise error(where, f"unknown key {sorted(unknown_keys)[0]!r}; expected column, "
                                   "type")
            kind = value.get("type")
            if kind is not None and kind not in attrs.TYPES:
                raise error(where, f"type must be one of {', '.join(attrs.TYPES)}, not {kind!r}")
            value = value.get("column")
        attributes.append((name, _text(value, where, error, "a CSV column name"), kind))

    if "email" in columns:
        for name in REQUIRED:
            if name not in columns:
                raise error(f"[columns] {name}", f"is required with an email column "
                                                 f"({FIELDS[name]})")
        if "created_at" not in columns:
            raise error("[columns] created_at", "is required with an email column (a derived "
                                                "lead id needs it)")
        for name in COLUMN_OR_DEFAULT:
            if name not in columns and name not in defaults:
                raise error(f"[columns] {name}", f"needs a column, or a value in [defaults] "
                                                 f"{name} used for every row")
    else:
        if "lead_id" not in columns:
            raise error("[columns] lead_id", "is required without an email column (history "
                                             "without personal data: an id and an outcome)")
        for name in PERSONAL:
            if name in columns:
                raise error(f"[columns] {name}", "personal data needs [columns] email (the "
                                                 "person it belongs to)")
    if "status_at" in columns and "status" not in columns and "status" not in defaults:
        raise error("[columns] status_at", "is mapped but status is not")

    mapping = ImportMapping(
        columns=columns, activities=tuple(activities), statuses=statuses, lawful_bases=bases,
        company_sizes=sizes, defaults=defaults, datetime_formats=tuple(stamp_formats),
        timezone=tz, list_separator=separator, lead_ids=lead_ids, handover_ms=handover_ms,
        delimiter=delimiter, encoding=encoding, source=source,
        attributes=tuple(attributes), row_spacing_ms=spacing_ms, start=start,
    )
    # A default goes through the same look-ups as a cell, so a bad one fails here, once.
    checks = {"status": mapping.status, "lawful_basis": mapping.lawful_basis,
              "company_size": mapping.company_size}
    for name, check in checks.items():
        if name in defaults:
            try:
                check(defaults[name])
            except LeadflowError as exc:
                raise error(f"[defaults] {name}", exc.detail) from None
    return mapping


def check_header(mapping: ImportMapping, header: Iterable[str], export: str) -> None:
    """Every column the mapping names exists in the export's header, or ``MappingError``."""
    present = set(header)
    for where, column in mapping.columns_used():
        if column not in present:
            shown = ", ".join(repr(c) for c in sorted(present)) or "none"
            raise MappingError(
                f"{mapping.source}: {where} = {column!r}: no such column in {export} "
                f"(its columns: {shown})"
            )


def _table(value: Any, where: str, error: _Error) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise error(where, "must be a table")
    return value


def _text(value: Any, where: str, error: _Error, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise error(where, f"must be {what} (a non-empty string), got {value!r}")
    return value.strip()


def _unique(key: str, table: dict[str, str], where: str, error: _Error) -> str:
    if key in table:
        raise error(where, "is listed twice (values are compared ignoring case and spacing)")
    return key


def _value_table(
    section: dict[str, Any], name: str, allowed: frozenset[str], error: _Error
) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw, target in section.items():
        where = f"[{name}] {raw!r}"
        symbol = _symbol(_text(target, where, error, "a leadflow value"))
        if symbol not in allowed:
            raise error(where, f"{target!r} is not one of {', '.join(sorted(allowed))}")
        out[_unique(value_key(raw), out, where, error)] = symbol
    return out
