"""One engine, many mappings: a vendor's JSON webhook → leadflow inbound records, described
by a TOML mapping instead of code.

A mapping says where the events are (``items``: a JSON pointer to an array, for batches),
what identifies a delivery of one event (``dedup``: pointers whose values together are the
vendor's event key), how the request is authenticated (``[auth]``, see ``http``), how the
vendor's status values translate (``[status]``, overridable in leadflow.toml), and, per
``[[events]]`` rule, when it applies (``when``: pointer = value or list of values;
``present``: pointers that must have a value, e.g. Pipedrive's ``/previous/status``), which
lead it is about (``lead``: the first of several references that is present: a vendor
object id, an email, or a leadflow lead id) and where each field is. Every rule that matches
an event produces one record; the record's event id is derived from the dedup key and the
rule, so a redelivery is a duplicate.

Pointers are RFC 6901 (``/a/0/b``, ``~1`` for ``/``). A field is a pointer, a list of
pointers (the first present value wins) or ``{ value = "…" }`` (a constant).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

from streams.connectors import records
from streams.core.contract import ActivityType, LeadStatus, TouchChannel, TouchOutcome
from streams.errors import ErrorCode, LeadflowError

IGNORE = "IGNORE"  # a vendor status that is not a lifecycle move (HubSpot's "subscriber")
KINDS = ("lead", "activity", "status", "touch", "meeting")
_MISSING = object()


def pointer(doc: Any, path: str) -> Any:
    """RFC 6901; a missing step gives None (vendors omit empty fields)."""
    if path in ("", "/"):
        return doc
    node = doc
    for raw in path.lstrip("/").split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict):
            node = node.get(token)
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
        if node is None:
            return None
    return node


def resolve(doc: Any, spec: Any) -> Any:
    if isinstance(spec, dict):
        if "pointer" not in spec:
            return spec.get("value")
        value = resolve(doc, spec["pointer"])
        # {pointer = "/name", word = "first" | "rest"}: one name field → first and last name
        if isinstance(value, str) and spec.get("word") in ("first", "rest"):
            first, _, rest = value.strip().partition(" ")
            return first if spec["word"] == "first" else rest.strip() or None
        return value
    if isinstance(spec, list):
        for one in spec:
            value = resolve(doc, one)
            if value not in (None, "", []):
                return value
        return None
    return pointer(doc, spec) if isinstance(spec, str) else None


class Ignored(Exception):
    """A rule that matched but, by configuration, makes no record."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    when: Mapping[str, Any]
    present: tuple[str, ...]
    lead: tuple[Mapping[str, Any], ...]
    occurred_at: Any
    fields: Mapping[str, Any]

    def matches(self, item: Any) -> bool:
        for path, want in self.when.items():
            value = pointer(item, path)
            value = "" if value is None else value
            wanted = want if isinstance(want, list) else [want]
            if str(value).lower() not in {str(w).lower() for w in wanted}:
                return False
        return all(pointer(item, p) not in (None, "") for p in self.present)


@dataclass(frozen=True)
class SourceMapping:
    name: str
    source: str
    items: str | None
    dedup: tuple[str, ...]
    auth: Mapping[str, Any]
    status: Mapping[str, str]
    translate: Mapping[str, Mapping[str, str]]
    rules: tuple[Rule, ...]
    doc: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def with_status(self, overrides: Mapping[str, str]) -> SourceMapping:
        merged = {**self.status, **{k.strip().lower(): v for k, v in overrides.items()}}
        _check_statuses(self.name, merged)
        return SourceMapping(self.name, self.source, self.items, self.dedup, self.auth, merged,
                        self.translate, self.rules, self.doc)


def _check_statuses(name: str, table: Mapping[str, str]) -> None:
    allowed = {s.value for s in LeadStatus if s is not LeadStatus.UNKNOWN} | {IGNORE}
    for vendor, ours in table.items():
        if str(ours).upper() not in allowed:
            raise ValueError(f"mapping {name}: status {vendor!r} → {ours!r} is not one of "
                             f"{sorted(allowed)}")


def parse(doc: Mapping[str, Any], name: str | None = None) -> SourceMapping:
    """A mapping document (TOML already loaded) → SourceMapping; ValueError names what is wrong."""
    name = str(doc.get("name") or name or "")
    if not name:
        raise ValueError("a mapping needs a name")
    rules = []
    for i, raw in enumerate(doc.get("events") or []):
        kind = raw.get("kind")
        if kind not in KINDS:
            raise ValueError(f"mapping {name}: events[{i}].kind {kind!r} is not one of {KINDS}")
        lead = raw.get("lead")
        if not lead:
            raise ValueError(f"mapping {name}: events[{i}] needs `lead`")
        rules.append(Rule(
            name=str(raw.get("name") or f"{kind}{i}"), kind=kind, when=raw.get("when") or {},
            present=tuple([raw["present"]] if isinstance(raw.get("present"), str)
                          else raw.get("present") or ()),
            lead=tuple(lead if isinstance(lead, list) else [lead]),
            occurred_at=raw.get("occurred_at"), fields=raw.get("fields") or {},
        ))
    status = {str(k).strip().lower(): str(v).upper() for k, v in
              (doc.get("status") or {}).items()}
    _check_statuses(name, status)
    dedup = doc.get("dedup") or []
    return SourceMapping(
        name=name, source=str(doc.get("source") or name), items=doc.get("items"),
        dedup=tuple(dedup if isinstance(dedup, list) else [dedup]),
        auth=doc.get("auth") or {}, status=status,
        translate={k: {str(a).strip().lower(): str(b) for a, b in v.items()}
                   for k, v in (doc.get("translate") or {}).items()},
        rules=tuple(rules), doc=doc,
    )


def load_file(path: str | Path) -> SourceMapping:
    with open(path, "rb") as fh:
        return parse(tomllib.load(fh), Path(path).stem)


def shipped(name: str) -> SourceMapping:
    """A mapping shipped with leadflow (streams/connectors/mappings/NAME.toml)."""
    text = resources.files("streams.connectors").joinpath("mappings", f"{name}.toml")
    return parse(tomllib.loads(text.read_text()), name)


def shipped_names() -> list[str]:
    folder = resources.files("streams.connectors").joinpath("mappings")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


@dataclass
class Item:
    """One vendor event and what it produced."""

    key: str  # the vendor's dedup key
    outputs: list[records.Output]
    errors: list[LeadflowError]


def events(mapping: SourceMapping, body: Any) -> list[Any]:
    if mapping.items is None:
        return [body]
    found = pointer(body, mapping.items)
    if not isinstance(found, list):
        raise LeadflowError(ErrorCode.FIELD_MISMATCH,
                            f"{mapping.items or 'body'} must be a JSON array of events")
    return found


def dedup_key(mapping: SourceMapping, item: Any) -> str:
    parts = [pointer(item, p) for p in mapping.dedup]
    if not mapping.dedup or all(p in (None, "") for p in parts):
        from streams.core.payloads import body_event_id

        return body_event_id(item, mapping.name)  # identical events are one event
    return "|".join("" if p is None else str(p) for p in parts)


def run(mapping: SourceMapping, body: Any, correlation_id: str | None = None) -> Iterator[Item]:
    """Every event of ``body`` → an Item. A rule that cannot build its record adds an error
    (the caller dead-letters it) and the other events still go through."""
    for item in events(mapping, body):
        key = dedup_key(mapping, item)
        out = Item(key, [], [])
        for rule in mapping.rules:
            if not rule.matches(item):
                continue
            try:
                out.outputs.append(build(mapping, rule, item, key, correlation_id))
            except Ignored:
                continue
            except LeadflowError as err:
                out.errors.append(err)
        yield out


def lead_of(refs: tuple[Mapping[str, Any], ...], item: Any) -> tuple[str, str | None]:
    """The lead the event names, and the external key of the vendor object it names (None
    for an e-mail or a leadflow lead id)."""
    for ref in refs:
        value = records.text(resolve(item, ref.get("pointer")))
        if value is None:
            continue
        how = ref.get("as", "external")
        if how == "email":
            try:
                return records.email_lead_id(value), None
            except LeadflowError:
                continue
        if how == "uuid":
            return value, None
        kind = ref.get("type", "object")
        return (records.external_lead_id(ref["source"], kind, value),
                records.external_key(ref["source"], kind, value))
    raise LeadflowError(ErrorCode.MISSING_FIELD, "the event names no lead this mapping knows "
                        f"(looked at {[r.get('pointer') for r in refs]})", "lead")


def translate_status(mapping: SourceMapping, value: Any, field_name: str,
                     required: bool = True) -> str | None:
    text = records.text(value)
    if text is None:
        if required:
            raise LeadflowError(ErrorCode.MISSING_FIELD, f"{field_name} is required", field_name)
        return None
    ours = mapping.status.get(text.lower())
    if ours == IGNORE:
        raise Ignored(f"{mapping.name} status {text[:64]!r} is ignored by configuration")
    if ours is None and required:
        raise LeadflowError(
            ErrorCode.INVALID_ENUM,
            f"{mapping.name} status {text[:64]!r} has no lifecycle status; add it to "
            f"[connectors.{mapping.name}.status] in leadflow.toml", field_name)
    return ours


def _value(mapping: SourceMapping, rule: Rule, item: Any, name: str, default: Any = None) -> Any:
    spec = rule.fields.get(name, _MISSING)
    if spec is _MISSING:
        return default
    value = resolve(item, spec)
    table = mapping.translate.get(name)
    if table is not None and value is not None:
        value = table.get(str(value).strip().lower(), table.get("*", value))
    return default if value is None else value


def _symbol(value: Any, allowed: type, field_name: str) -> str:
    text = str(value or "").strip().upper().replace(" ", "_").replace("-", "_")
    if text not in allowed.__members__:
        raise LeadflowError(ErrorCode.INVALID_ENUM, f"{field_name} {value!r} is not known",
                            field_name)
    return text


def build(mapping: SourceMapping, rule: Rule, item: Any, key: str,
          correlation_id: str | None) -> records.Output:
    lead_id, object_key = lead_of(rule.lead, item)
    when = resolve(item, rule.occurred_at) if rule.occurred_at else None
    if when in (None, ""):
        raise LeadflowError(ErrorCode.MISSING_FIELD, "the event has no time", "occurred_at")
    occurred: datetime = records.timestamp(when, "occurred_at")
    head = records.base(mapping.source, key, rule.name, lead_id, occurred, correlation_id,
                        object_key)
    get = lambda name, default=None: _value(mapping, rule, item, name, default)  # noqa: E731
    if rule.kind == "lead":
        names = ("email", "first_name", "last_name", "phone", "job_title", "company_name",
                 "company_size", "region", "marketing_score", "industry", "linkedin_url",
                 "campaign_id", "utm_source", "utm_medium", "utm_campaign",
                 "original_source", "latest_source", "trigger_actions")
        attributes = {n: resolve(item, p) for n, p in (rule.fields.get("attributes") or {}).items()}
        return records.capture(head, {**{n: get(n) for n in names}, "attributes": attributes})
    if rule.kind == "activity":
        props = {n: resolve(item, p) for n, p in (rule.fields.get("properties") or {}).items()}
        return records.activity(head, _symbol(get("activity_type", "OTHER"), ActivityType,
                                              "activity_type"), get("campaign_id"), props)
    if rule.kind == "status":
        return records.status(
            head, translate_status(mapping, get("new_status"), "new_status"),
            translate_status(mapping, get("previous_status"), "previous_status", False),
            get("reason"), get("notes"), get("by"))
    if rule.kind == "touch":
        return records.touch(head, str(get("touch_id", key)), get("rep"),
                             _symbol(get("channel", "OTHER"), TouchChannel, "channel"),
                             _symbol(get("outcome", "OTHER"), TouchOutcome, "outcome"))
    meeting = str(get("meeting", "")).strip().lower()
    if meeting not in records.MEETING_EVENTS:
        raise LeadflowError(ErrorCode.INVALID_ENUM, f"meeting event {meeting!r} is not one of "
                            f"{records.MEETING_EVENTS}", "meeting")
    return records.meeting_record(head, meeting, meeting_key=str(get("meeting_id", key)),
                                  rep=get("rep"), campaign_id=get("campaign_id"),
                                  starts_at=get("starts_at"))
