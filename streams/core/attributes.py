"""Custom attributes: a team's own typed fields on a lead or an activity.

A CRM has properties leadflow has no field for (lead origin, time on site, a dozen yes/no
flags). They travel as ``attributes``: name → value, where a value is a number (numeric), a
string (categorical), a boolean, or a list of strings (multi-valued). They come from the API
body (``"attributes": {...}``), from connectors (CRM properties, ``from_properties``) and
from import columns (``[attributes]`` of the mapping).

Declared in configuration (``[attributes.<name>]`` of leadflow.toml): the type, and how the
trained model encodes it — numbers ``scale``d (standardised) or ``bins`` (quantile bins),
both fitted at training and stored with the model; categories kept ``top_k`` with the rest
as "other". An attribute that is not declared is still kept in the lead's features, typed
by its value, and encoded the default way (scaled, or top 20).

In the shared feature vocabulary (``scoring.feature_vector``): ``attr:<name>`` = the number
(numeric), ``attr:<name>=<value>`` = 1 per category, per value of a multi-valued attribute,
and ``attr:<name>=true|false`` for a boolean. The points model's rules use the same names,
plus comparisons of numbers: ``"attr:time_on_site_s>=600" = 10`` (see ``Rule``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NUMERIC, CATEGORICAL, BOOLEAN, MULTI = "numeric", "categorical", "boolean", "multi"
TYPES = (NUMERIC, CATEGORICAL, BOOLEAN, MULTI)
SCALE, BINS, LOG = "scale", "bins", "log"
ENCODINGS = {NUMERIC: (SCALE, BINS, LOG), CATEGORICAL: ("top_k",), BOOLEAN: ("flag",),
             MULTI: ("top_k",)}
DEFAULT_TOP_K = 20
DEFAULT_BINS = 5
PREFIX = "attr:"
OTHER = "other"
MAX_ATTRIBUTES = 200
MAX_TEXT = 256

Value = float | bool | str | list[str]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
_TRUE = frozenset({"true", "yes", "y", "1", "t"})
_FALSE = frozenset({"false", "no", "n", "0", "f"})


@dataclass(frozen=True, slots=True)
class Spec:
    """One declared attribute: its type and its encoding for the trained model."""

    name: str
    type: str
    encoding: str = ""
    top_k: int = DEFAULT_TOP_K
    bins: int = DEFAULT_BINS

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "encoding": self.encoding,
                "top_k": self.top_k, "bins": self.bins}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spec:
        return cls(str(data["name"]), str(data["type"]), str(data.get("encoding") or ""),
                   int(data.get("top_k", DEFAULT_TOP_K)), int(data.get("bins", DEFAULT_BINS)))


def check_name(name: Any, where: str = "attributes") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{where}: {name!r} is not an attribute name (letters, digits, _ . -; "
                         "starting with a letter or _; at most 64)")
    return name


def specs_from_config(section: Any) -> tuple[Spec, ...]:
    """The ``[attributes]`` table: ``[attributes.<name>] type = ..., encoding = ...``."""
    if section is None:
        return ()
    if not isinstance(section, Mapping):
        raise ValueError("[attributes] must be a table of tables")
    out: list[Spec] = []
    for name, body in section.items():
        where = f"attributes.{name}"
        check_name(name, where)
        if isinstance(body, str):
            body = {"type": body}
        if not isinstance(body, Mapping):
            raise ValueError(f"{where} must be a table (type, encoding, top_k, bins)")
        unknown = set(body) - {"type", "encoding", "top_k", "bins"}
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}; "
                             "expected type, encoding, top_k, bins")
        kind = body.get("type")
        if kind not in TYPES:
            raise ValueError(f"{where}.type must be one of {', '.join(TYPES)}, not {kind!r}")
        encoding = body.get("encoding", ENCODINGS[kind][0])
        if encoding not in ENCODINGS[kind]:
            raise ValueError(f"{where}.encoding of a {kind} attribute must be one of "
                             f"{', '.join(ENCODINGS[kind])}, not {encoding!r}")
        top_k, bins = body.get("top_k", DEFAULT_TOP_K), body.get("bins", DEFAULT_BINS)
        for key, value in (("top_k", top_k), ("bins", bins)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
                raise ValueError(f"{where}.{key} must be an integer 1..1000, not {value!r}")
        out.append(Spec(name, kind, encoding, top_k, bins))
    return tuple(out)


def type_of(value: Value) -> str:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int | float):
        return NUMERIC
    if isinstance(value, list):
        return MULTI
    return CATEGORICAL


def coerce(value: Any, kind: str | None, where: str) -> Value | None:
    """A raw value (JSON, a CSV cell, a CRM property) as the attribute's type; None when
    blank. ``kind`` None: typed by the value itself. ValueError naming ``where`` when the
    value cannot be of that type."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if kind is None:
        if isinstance(value, bool | int | float):
            kind = type_of(value)
        elif isinstance(value, list | tuple):
            kind = MULTI
        else:
            kind = CATEGORICAL
    if kind == NUMERIC:
        if isinstance(value, bool):
            raise ValueError(f"{where}: {value!r} is not a number")
        try:
            number = float(value.strip().replace(",", "")) if isinstance(value, str) \
                else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {str(value)[:64]!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{where}: {value!r} is not a finite number")
        return number
    if kind == BOOLEAN:
        if isinstance(value, bool):
            return value
        text = str(value).strip().casefold()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{where}: {str(value)[:64]!r} is not yes/no (true/false, yes/no, 1/0)")
    if kind == MULTI:
        items = value if isinstance(value, list | tuple) else str(value).split(";")
        out = sorted({_text(v, where) for v in items if str(v).strip()})
        return out or None
    if isinstance(value, list | tuple | dict):
        raise ValueError(f"{where}: a categorical value must be text, not {type(value).__name__}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _text(value, where)


def _text(value: Any, where: str) -> str:
    text = " ".join(str(value).split())
    if len(text) > MAX_TEXT:
        raise ValueError(f"{where}: longer than {MAX_TEXT} characters")
    return text


def parse(raw: Any, specs: Mapping[str, Spec] | None = None,
          where: str = "attributes") -> dict[str, Value]:
    """A JSON object of attributes → {name: typed value} (blank values left out)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be an object of name: value")
    if len(raw) > MAX_ATTRIBUTES:
        raise ValueError(f"{where}: more than {MAX_ATTRIBUTES} attributes")
    out: dict[str, Value] = {}
    for name, value in raw.items():
        check_name(name, where)
        spec = (specs or {}).get(name)
        typed = coerce(value, spec.type if spec else None, f"{where}.{name}")
        if typed is not None:
            out[name] = typed
    return out


def from_properties(properties: Mapping[str, Any], mapping: Mapping[str, str],
                    specs: Mapping[str, Spec] | None = None) -> dict[str, Value]:
    """Connectors: a CRM object's properties → attributes, by a plain mapping
    {CRM property name: attribute name}; properties not in the mapping are not taken."""
    raw = {attr: properties.get(prop) for prop, attr in mapping.items() if prop in properties}
    return parse(raw, specs, "properties")


def to_record(values: Mapping[str, Value]) -> dict[str, Value]:
    """Attributes as the Avro map (values: boolean | double | string | array<string>)."""
    return {k: (float(v) if type_of(v) == NUMERIC else v) for k, v in sorted(values.items())}


# --- points-model rules ---------------------------------------------------------------

_OPS = (">=", "<=", "!=", ">", "<", "=")


@dataclass(frozen=True, slots=True)
class Rule:
    """``attr:<name><op><value>`` of ``[scoring.points]``: ``=`` / ``!=`` match a category, a
    value of a multi-valued attribute, true/false, or a number; ``>= > <= <`` compare
    numbers. A bare ``attr:<name>`` is the number itself (points per unit) or, for a
    boolean, true."""

    feature: str
    name: str
    op: str
    text: str  # what is compared with, as written

    def points(self, value: Value | None, pts: float) -> float | None:
        """What the rule adds for the lead's value (None: it does not apply)."""
        if value is None:
            return None
        op, want = self.op, self.text
        if op == "":
            if isinstance(value, bool):
                return pts if value else None
            if isinstance(value, int | float):
                return pts * float(value)
            return None
        if isinstance(value, bool):
            hit = op in ("=", "!=") and (want.casefold() == str(value).casefold()) == (op == "=")
        elif isinstance(value, int | float):
            try:
                y = float(want)
            except ValueError:
                return None
            x = float(value)
            hit = {">=": x >= y, "<=": x <= y, ">": x > y, "<": x < y,
                   "=": x == y, "!=": x != y}[op]
        elif op not in ("=", "!="):
            return None
        elif isinstance(value, list):
            hit = (want in value) == (op == "=")
        else:
            hit = (value == want) == (op == "=")
        return pts if hit else None


def rule_of(feature: str) -> Rule:
    """Parse ``attr:...`` (ValueError with what is wrong)."""
    body = feature[len(PREFIX):]
    cut = min(((body.find(op), op) for op in _OPS if op in body), default=None,
              key=lambda found: (found[0], -len(found[1])))
    if cut is None:
        name = body.strip()
        check_name(name, feature)
        return Rule(feature, name, "", "")
    at, op = cut
    name, rest = body[:at].strip(), body[at + len(op):].strip()
    check_name(name, feature)
    if not rest:
        raise ValueError(f"{feature}: nothing to compare with after {op!r}")
    if op not in ("=", "!="):
        try:
            if not math.isfinite(float(rest)):
                raise ValueError
        except ValueError:
            raise ValueError(f"{feature}: {rest!r} is not a number to compare with") from None
    return Rule(feature, name, op, rest)


def lead_value(features: Mapping[str, Any] | None, name: str) -> Value | None:
    """The attribute's value for a lead: the latest activity's, else the capture's."""
    if not features:
        return None
    seen = (features.get("act_attrs") or {}).get(name)
    if seen is not None:
        return seen[1]
    return (features.get("attrs") or {}).get(name)


def values(features: Mapping[str, Any] | None) -> dict[str, Value]:
    """Every attribute of a lead (activity values over the capture's)."""
    if not features:
        return {}
    out = dict(features.get("attrs") or {})
    for name, (_, value) in (features.get("act_attrs") or {}).items():
        out[name] = value
    return out
