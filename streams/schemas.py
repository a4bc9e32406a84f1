"""The Avro contracts under avro/: loading, linting and FULL_TRANSITIVE compatibility checks.

Layout: ``avro/<RecordName>/v<N>.avsc``, one record per directory, versions numbered from 1.
Compatibility is proved the way a consumer would meet it: deterministic sample records written
with one version are read back with the other version as the reader schema (fastavro schema
resolution), for every pair of versions, both ways.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import fastavro

NAMESPACE = "io.leadflow.events"
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
# Past this depth samples take the cheapest branch, so recursive types terminate.
_MAX_DEPTH = 8


def schema_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "avro"


def record_names() -> list[str]:
    return sorted(p.name for p in schema_dir().iterdir() if p.is_dir())


def versions(record_name: str) -> list[tuple[int, dict[str, Any]]]:
    """Every version of a record, oldest first, as the JSON dict in its .avsc file."""
    found: list[tuple[int, dict[str, Any]]] = []
    directory = schema_dir() / record_name
    if not directory.is_dir():
        raise KeyError(f"no contract named {record_name!r} under {schema_dir()}")
    for path in directory.iterdir():
        match = _VERSION_FILE.match(path.name)
        if match:
            found.append((int(match.group(1)), json.loads(path.read_text(encoding="utf-8"))))
    if not found:
        raise KeyError(f"contract {record_name!r} has no v<N>.avsc file")
    return sorted(found, key=lambda pair: pair[0])


def latest(record_name: str) -> dict[str, Any]:
    return versions(record_name)[-1][1]


def full_name(schema: dict[str, Any]) -> str:
    name = str(schema["name"])
    if "." in name:
        return name
    namespace = schema.get("namespace")
    return f"{namespace}.{name}" if namespace else name


# ---------------------------------------------------------------------------------------------
# Walking raw (unparsed) schemas: named types may be referenced by name after their definition.


def _walk(
    schema: Any, names: dict[str, Any], namespace: str | None = None
) -> Iterator[tuple[Any, str | None]]:
    """Yield every (sub)schema once, registering named definitions as they appear."""
    if isinstance(schema, str):
        return
    if isinstance(schema, list):
        for branch in schema:
            yield from _walk(branch, names, namespace)
        return
    kind = schema.get("type")
    if isinstance(kind, (dict, list)):
        yield from _walk(kind, names, namespace)
        return
    if kind in _NAMED:
        namespace = schema.get("namespace", namespace)
        qualified = schema["name"]
        if "." not in qualified and namespace:
            qualified = f"{namespace}.{qualified}"
        names[qualified] = schema
        names.setdefault(schema["name"].rsplit(".", 1)[-1], schema)
    yield schema, namespace
    if kind in ("record", "error"):
        for field in schema.get("fields", []):
            yield from _walk(field["type"], names, namespace)
    elif kind == "array":
        yield from _walk(schema["items"], names, namespace)
    elif kind == "map":
        yield from _walk(schema["values"], names, namespace)


def _resolve(schema: Any, names: dict[str, Any], namespace: str | None) -> Any:
    if isinstance(schema, str) and schema not in _PRIMITIVES:
        qualified = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        return names.get(qualified, names.get(schema, schema))
    if isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
        return _resolve(schema["type"], names, namespace)
    return schema


def _min_width(schema: Any, names: dict[str, Any], namespace: str | None, seen: frozenset) -> int:
    """Fewest bytes one value of ``schema`` can take on the wire (0 = may be empty)."""
    schema = _resolve(schema, names, namespace)
    if isinstance(schema, list):
        return 1  # the branch index
    kind = schema if isinstance(schema, str) else schema.get("type")
    if kind == "null":
        return 0
    if kind in ("boolean", "int", "long", "bytes", "string", "enum", "array", "map"):
        return 1
    if kind == "float":
        return 4
    if kind == "double":
        return 8
    if kind == "fixed":
        return int(schema["size"])
    if kind in ("record", "error"):
        key = schema["name"]
        if key in seen:
            return 0
        namespace = schema.get("namespace", namespace)
        return sum(_min_width(f["type"], names, namespace, seen | {key}) for f in schema["fields"])
    return 0


def lint(schema: dict[str, Any]) -> list[str]:
    """Problems with one schema against leadflow's conventions (empty list: none)."""
    try:
        fastavro.parse_schema(schema)
    except Exception as exc:  # any parse failure is the finding itself
        return [f"does not parse: {exc}"]
    problems: list[str] = []
    names: dict[str, Any] = {}
    for node, namespace in _walk(schema, names):
        kind = node.get("type")
        label = node.get("name", kind)
        if kind in ("record", "error", "enum") and not node.get("doc"):
            problems.append(f"{label}: {kind} has no doc")
        if kind in ("record", "error"):
            for field in node["fields"]:
                if not field.get("doc"):
                    problems.append(f"{label}.{field['name']}: field has no doc")
        if kind == "enum" and node.get("default") not in node["symbols"]:
            problems.append(f"{label}: enum has no default among its symbols")
        if kind in ("array", "map"):
            inner = node["items"] if kind == "array" else node["values"]
            # A length prefix may claim 2**31 items; only items that cost >= 1 byte of input
            # keep the decoder's work and memory proportional to the input, not to the claim.
            if _min_width(inner, names, namespace, frozenset()) == 0:
                problems.append(f"{kind} of {inner!r}: items may be zero bytes wide")
    return problems


# ---------------------------------------------------------------------------------------------
# Deterministic samples. Each schema node has a number of values it needs to show (an enum:
# each symbol; a union: the sum over its branches; a collection: empty, then each value of its
# item; a record: the most any field needs). Sample i shows value i modulo that number at every
# node, so samples 0..n-1 together exercise every enum symbol and union branch of every field.


def sample_count(schema: dict[str, Any]) -> int:
    names: dict[str, Any] = {}
    for _ in _walk(schema, names):
        pass
    return max(2, _needs(schema, names, schema.get("namespace"), frozenset()))


def samples(schema: dict[str, Any]) -> list[dict[str, Any]]:
    names: dict[str, Any] = {}
    for _ in _walk(schema, names):
        pass
    namespace = schema.get("namespace")
    return [_sample(schema, names, namespace, i, 0) for i in range(sample_count(schema))]


def _needs(schema: Any, names: dict[str, Any], namespace: str | None, seen: frozenset) -> int:
    schema = _resolve(schema, names, namespace)
    if isinstance(schema, list):
        return sum(_needs(branch, names, namespace, seen) for branch in schema)
    if isinstance(schema, str):
        return 1
    kind = schema["type"]
    if kind == "enum":
        return len(schema["symbols"])
    if kind == "array":
        return 1 + _needs(schema["items"], names, namespace, seen)
    if kind == "map":
        return 1 + _needs(schema["values"], names, namespace, seen)
    if kind in ("record", "error"):
        if schema["name"] in seen:
            return 1
        namespace = schema.get("namespace", namespace)
        inner = seen | {schema["name"]}
        fields = schema["fields"]
        return max((_needs(f["type"], names, namespace, inner) for f in fields), default=1)
    return 1


def _sample(schema: Any, names: dict[str, Any], namespace: str | None, i: int, depth: int) -> Any:
    schema = _resolve(schema, names, namespace)
    if isinstance(schema, list):
        if depth > _MAX_DEPTH:
            return _sample(schema[0], names, namespace, 0, depth + 1)
        local = i % _needs(schema, names, namespace, frozenset())
        for branch in schema:
            width = _needs(branch, names, namespace, frozenset())
            if local < width:
                return _sample(branch, names, namespace, local, depth + 1)
            local -= width
    if isinstance(schema, str):
        return _primitive(schema, None, i)
    kind = schema["type"]
    if kind in ("record", "error"):
        namespace = schema.get("namespace", namespace)
        return {
            f["name"]: _sample(f["type"], names, namespace, i, depth + 1) for f in schema["fields"]
        }
    if kind == "enum":
        return schema["symbols"][i % len(schema["symbols"])]
    if kind in ("array", "map"):
        inner = schema["items"] if kind == "array" else schema["values"]
        local = i % (1 + _needs(inner, names, namespace, frozenset()))
        if local == 0 or depth > _MAX_DEPTH:
            return [] if kind == "array" else {}
        item = _sample(inner, names, namespace, local - 1, depth + 1)
        return [item] if kind == "array" else {f"k{i}": item}
    if kind == "fixed":
        return bytes(int(schema["size"]))
    return _primitive(kind, schema.get("logicalType"), i)


def _primitive(kind: str, logical: str | None, i: int) -> Any:
    if logical == "uuid":
        return str(uuid.UUID(int=i + 1))
    if logical in ("timestamp-millis", "timestamp-micros"):
        return _EPOCH + timedelta(seconds=i)
    if logical == "date":
        return date(2024, 1, 1) + timedelta(days=i)
    if logical in ("time-millis", "time-micros"):
        return time(0, 0, i % 60)
    return {
        "null": None,
        "boolean": i % 2 == 1,
        "int": i,
        "long": i,
        "float": 0.5 + i,
        "double": 0.25 + i,
        "bytes": b"b" * (i % 3),
        "string": f"s{i}",
    }[kind]


# ---------------------------------------------------------------------------------------------
# Compatibility


def check_resolves(writer: dict[str, Any], reader: dict[str, Any]) -> list[str]:
    """Problems reading data written with ``writer`` through ``reader`` (one direction)."""
    try:
        parsed_writer = fastavro.parse_schema(writer)
        parsed_reader = fastavro.parse_schema(reader)
    except Exception as exc:  # reported, not raised
        return [f"does not parse: {exc}"]
    problems: list[str] = []
    for i, record in enumerate(samples(writer)):
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, parsed_writer, record)
            buffer.seek(0)
            fastavro.schemaless_reader(buffer, parsed_writer, parsed_reader)
        except Exception as exc:  # reported, not raised
            problems.append(f"sample {i}: {type(exc).__name__}: {exc}")
            break
    return problems


def check_compatibility(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """FULL compatibility of a candidate pair: each reads what the other writes."""
    backward = [f"new cannot read old: {p}" for p in check_resolves(old, new)]
    forward = [f"old cannot read new: {p}" for p in check_resolves(new, old)]
    return backward + forward


def _named_definitions(schema: dict[str, Any]) -> dict[str, str]:
    names: dict[str, Any] = {}
    for _ in _walk(schema, names):
        pass
    return {
        qualified: json.dumps(node, sort_keys=True)
        for qualified, node in names.items()
        if "." in qualified and qualified != full_name(schema)
    }


def check_all() -> list[str]:
    """Every problem with the contracts under avro/ (empty list: all good)."""
    problems: list[str] = []
    shared: dict[str, tuple[str, str]] = {}
    for record_name in record_names():
        try:
            history = versions(record_name)
        except (KeyError, ValueError) as exc:
            problems.append(f"{record_name}: {exc}")
            continue
        numbers = [number for number, _ in history]
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"{record_name}: versions {numbers} are not 1..N")
        for number, schema in history:
            where = f"{record_name}/v{number}.avsc"
            problems += [f"{where}: {p}" for p in lint(schema)]
            if schema.get("type") != "record" or schema.get("name") != record_name:
                problems.append(f"{where}: must define record {record_name}")
            if schema.get("namespace") != NAMESPACE:
                problems.append(f"{where}: namespace must be {NAMESPACE}")
        for a in range(len(history)):
            for b in range(a + 1, len(history)):
                (va, old), (vb, new) = history[a], history[b]
                problems += [
                    f"{record_name} v{va}<->v{vb}: {p}" for p in check_compatibility(old, new)
                ]
        # Named types are copied into every file that uses them; copies must not drift.
        for qualified, text in _named_definitions(history[-1][1]).items():
            first = shared.setdefault(qualified, (record_name, text))
            if first[1] != text:
                problems.append(
                    f"{record_name}: {qualified} differs from its definition in {first[0]}"
                )
    return problems
