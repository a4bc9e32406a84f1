"""Avro record schemas as polars column schemas, and decoded records as columns.

One column per top-level Avro field, same name. Records become structs and arrays lists, so
the dashboard can reach inside them with polars expressions. Maps become JSON text (sorted
keys): their keys differ from row to row, which a struct cannot hold. Every column is
nullable, because a record that did not decode is archived too, with nulls in every field.

The envelope columns (leading underscore, which no Avro field name in avro/ has) say where
the record came from, so it can be published again exactly as it was.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import polars as pl

from streams import schemas

Convert = Callable[[Any], Any]

UTC_MS = pl.Datetime("ms", "UTC")
# Where a row came from. _value is the record exactly as it was on the topic (Confluent
# framing included) and _schema_id the id in that framing (null when it is not framed).
ENVELOPE: dict[str, pl.DataType] = {
    "_topic": pl.String(),
    "_partition": pl.Int32(),
    "_offset": pl.Int64(),
    "_key": pl.String(),
    "_timestamp": UTC_MS,
    "_value": pl.Binary(),
    "_schema_id": pl.Int32(),
    "_event_time": UTC_MS,
}
# A row's event time: the first of these top-level fields the record has. SlaEvaluated's
# occurred_at is when the worker emitted the verdict (its wall clock), evaluated_at the event
# time the verdict is about; DeadLetter has only observed_at. A row without a value there
# (it did not decode) falls back to _timestamp, the Kafka record's own time.
EVENT_TIME_FIELDS = ("evaluated_at", "occurred_at", "observed_at")

_PRIMITIVE: dict[str, pl.DataType] = {
    "null": pl.Null(),
    "boolean": pl.Boolean(),
    "int": pl.Int32(),
    "long": pl.Int64(),
    "float": pl.Float32(),
    "double": pl.Float64(),
    "bytes": pl.Binary(),
    "string": pl.String(),
}
_LOGICAL: dict[str, pl.DataType] = {
    "timestamp-millis": UTC_MS,
    "timestamp-micros": pl.Datetime("us", "UTC"),
    "date": pl.Date(),
    "time-millis": pl.Time(),
    "time-micros": pl.Time(),
    "uuid": pl.String(),
}


class _Types:
    """Named Avro types seen so far (a name may be used after its first definition)."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}
        self.building: set[str] = set()

    def resolve(self, schema: Any, namespace: str | None) -> Any:
        if isinstance(schema, str) and schema not in _PRIMITIVE:
            qualified = schema if "." in schema or not namespace else f"{namespace}.{schema}"
            found = self.named.get(qualified, self.named.get(schema))
            if found is None:
                raise ValueError(f"Avro type {schema!r} is used before it is defined")
            return found
        return schema

    def define(self, schema: dict[str, Any], namespace: str | None) -> str:
        name = str(schema["name"])
        qualified = name if "." in name or not namespace else f"{namespace}.{name}"
        self.named[qualified] = schema
        self.named.setdefault(name.rsplit(".", 1)[-1], schema)
        return qualified


def _column(
    schema: Any, types: _Types, namespace: str | None
) -> tuple[pl.DataType, Convert | None]:
    """The polars type of one Avro (sub)schema, and how to turn a decoded value into it
    (None: as it is)."""
    schema = types.resolve(schema, namespace)
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) == 1:
            return _column(branches[0], types, namespace)
        for branch in branches:  # still walk them, so the named types they define are known
            _column(branch, types, namespace)
        return pl.String(), _json  # several non-null branches: no one polars type holds them
    if isinstance(schema, str):
        return _PRIMITIVE[schema], None
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _column(kind, types, namespace)
    logical = schema.get("logicalType")
    if kind in ("record", "error"):
        namespace = schema.get("namespace", namespace)
        qualified = types.define(schema, namespace)
        if qualified in types.building:
            raise ValueError(f"{qualified} is recursive: a polars struct cannot hold it")
        types.building.add(qualified)
        fields, converts = [], []
        for f in schema["fields"]:
            dtype, convert = _column(f["type"], types, namespace)
            fields.append(pl.Field(f["name"], dtype))
            if convert is not None:
                converts.append((f["name"], convert))
        types.building.discard(qualified)
        return pl.Struct(fields), _record(converts) if converts else None
    if kind in ("enum", "fixed"):
        types.define(schema, schema.get("namespace", namespace))
        return (pl.String() if kind == "enum" else pl.Binary()), None
    if kind == "array":
        dtype, convert = _column(schema["items"], types, namespace)
        return pl.List(dtype), None if convert is None else _each(convert)
    if kind == "map":
        _column(schema["values"], types, namespace)
        return pl.String(), _json
    if logical in _LOGICAL and kind in _PRIMITIVE:
        return _LOGICAL[logical], None
    return _PRIMITIVE[kind], None


def _record(converts: list[tuple[str, Convert]]) -> Convert:
    def convert(record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        for name, sub in converts:
            value = out.get(name)
            if value is not None:
                out[name] = sub(value)
        return out

    return convert


def _each(convert: Convert) -> Convert:
    return lambda values: [None if v is None else convert(v) for v in values]


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _json(value: Any) -> str:
    # orjson writes NaN and infinities as null: JSON has no spelling for them.
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_SORT_KEYS).decode()


@functools.cache
def _plan(record_name: str) -> tuple[tuple[tuple[str, pl.DataType, Convert | None], ...], str]:
    raw = schemas.latest(record_name)
    types = _Types()
    namespace = raw.get("namespace")
    types.define(raw, namespace)
    columns = []
    for f in raw["fields"]:
        if f["name"] in ENVELOPE or f["name"] == "date":
            raise ValueError(f"{record_name}.{f['name']} clashes with an archive column")
        dtype, convert = _column(f["type"], types, namespace)
        columns.append((f["name"], dtype, convert))
    dtypes = {name: dtype for name, dtype, _ in columns}
    event_time = next((n for n in EVENT_TIME_FIELDS if dtypes.get(n) == UTC_MS), "_timestamp")
    return tuple(columns), event_time


def field_columns(record_name: str) -> dict[str, pl.DataType]:
    """The columns of a record's Avro fields (the latest version under avro/)."""
    return {name: dtype for name, dtype, _ in _plan(record_name)[0]}


def event_time_column(record_name: str) -> str:
    """The column a row's event time is taken from (before falling back to _timestamp)."""
    return _plan(record_name)[1]


def archive_schema(record_name: str) -> pl.Schema:
    return pl.Schema({**ENVELOPE, **field_columns(record_name)})


def to_columns(record_name: str, rows: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Rows (decoded records plus envelope keys) as one list per archive column.

    A row may lack any Avro field (an undecodable record lacks all of them): null there.
    ``_event_time`` is computed by the caller when a row does not carry it.
    """
    out: dict[str, list[Any]] = {name: [r.get(name) for r in rows] for name in ENVELOPE}
    for name, _, convert in _plan(record_name)[0]:
        values = [r.get(name) for r in rows]
        if convert is not None:
            values = [None if v is None else convert(v) for v in values]
        out[name] = values
    return out
