"""The one feature pipeline of training and live scoring, so the two cannot drift apart.

feature state (``streams.core.features``) → ``scoring.feature_vector`` (the vocabulary the
points model already speaks: ``industry:SaaS``, ``activity:PRICING_PAGE_VIEW`` = min(count,
cap), ``hand_raiser`` …) → a fixed vocabulary (a scikit-learn ``DictVectorizer`` fitted at
training and stored with the model). What shapes a vector besides the state — the activity
cap and the hand-raiser definition — is part of the ``FeatureSpace`` and is stored with the
model too, so a model scores live exactly as it was trained even after the scoring section
of the configuration changes.

Custom attributes (``core.attributes``) are encoded by transforms fitted on the training
examples (``FeatureSpace.fit``) and stored with the model in the same pipeline: a number
scaled (``attr:<name>`` = (x − mean) / sd, or the same of log1p(x) with ``log``) or binned
(``attr:<name>#<lo>..<hi>``, quantile edges), categories and multi-valued items outside
the top K of training as ``attr:<name>=other``. An attribute the model was not fitted on is
left out of its vector, as any feature outside the vocabulary.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from streams.core import attributes as attrs
from streams.core.features import Features, is_hand_raiser
from streams.core.scoring import (
    DEFAULT_ACTIVITY_CAP,
    DEFAULT_HAND_RAISER_ACTIVITIES,
    DEFAULT_HAND_RAISER_TRIGGERS,
    ScoringPolicy,
    feature_vector,
)

Vector = dict[str, float]


@dataclass(frozen=True)
class FeatureSpace:
    """How a feature state becomes a vector (``HandRaiserPolicy`` of ``core.features``)."""

    activity_cap: int = DEFAULT_ACTIVITY_CAP
    hand_raiser_activities: frozenset[str] = field(
        default_factory=lambda: frozenset(DEFAULT_HAND_RAISER_ACTIVITIES)
    )
    hand_raiser_triggers: frozenset[str] = field(
        default_factory=lambda: frozenset(DEFAULT_HAND_RAISER_TRIGGERS)
    )
    attributes: tuple[attrs.Spec, ...] = ()  # declared types and encodings
    # Fitted per attribute name (``fit``): {"type", "encoding", "mean", "sd"} | {"edges"} |
    # {"keep"}. Empty: not fitted, attributes left out of the vector.
    encoders: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        cap = self.activity_cap
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise ValueError(f"activity_cap must be an integer >= 1, not {cap!r}")
        object.__setattr__(self, "hand_raiser_activities", frozenset(self.hand_raiser_activities))
        object.__setattr__(self, "hand_raiser_triggers", frozenset(self.hand_raiser_triggers))

    @classmethod
    def of(cls, policy: ScoringPolicy) -> FeatureSpace:
        """The space of the configured scoring policy."""
        return cls(policy.activity_cap, policy.hand_raiser_activities,
                   policy.hand_raiser_triggers, tuple(policy.attributes))

    def vector(self, features: Features | None) -> Vector:
        """The lead's features in the shared vocabulary (absent features left out)."""
        raw = feature_vector(
            features, self.activity_cap, hand_raiser=is_hand_raiser(features, self)
        )
        if features and (features.get("attrs") or features.get("act_attrs")):
            return self._encode(raw)
        return raw

    def _encode(self, raw: Vector) -> Vector:
        out: Vector = {}
        encoders = self.encoders
        for name, value in raw.items():
            if not name.startswith(attrs.PREFIX):
                out[name] = value
                continue
            attr, eq, item = name[len(attrs.PREFIX):].partition("=")
            enc = encoders.get(attr)
            if enc is None:
                continue  # not fitted on it: outside the vocabulary
            kind = enc["type"]
            if kind in _RETYPED and eq:  # declared so, but sent as text (CRM properties)
                typed = _retyped(kind, item)
                if typed is None:
                    continue
                if kind == attrs.BOOLEAN:
                    out[f"{attrs.PREFIX}{attr}={'true' if typed else 'false'}"] = 1.0
                    continue
                value, eq = float(typed), ""
            if not eq:
                if kind == attrs.NUMERIC:
                    _numeric(enc, attr, value, out)
                continue
            keep = enc.get("keep")
            if keep is None or item in keep:
                out[name] = value
            else:
                out[f"{attrs.PREFIX}{attr}={attrs.OTHER}"] = 1.0
        return out

    def fit(self, states: Iterable[Features | None]) -> FeatureSpace:
        """This space with attribute transforms fitted on ``states`` (the training set)."""
        specs = {s.name: s for s in self.attributes}
        numbers: dict[str, list[float]] = {}
        items: dict[str, Counter[str]] = {}
        kinds: dict[str, str] = {}
        for state in states:
            for name, value in attrs.values(state).items():
                kind = specs[name].type if name in specs else attrs.type_of(value)
                kinds.setdefault(name, kind)
                if kind in _RETYPED and isinstance(value, str):
                    typed = _retyped(kind, value)
                    if typed is None:
                        continue
                    value = typed
                if isinstance(value, bool):
                    items.setdefault(name, Counter())["true" if value else "false"] += 1
                elif isinstance(value, int | float):
                    numbers.setdefault(name, []).append(float(value))
                elif isinstance(value, list):
                    items.setdefault(name, Counter()).update(value)
                else:
                    items.setdefault(name, Counter())[value] += 1
        encoders: dict[str, dict[str, Any]] = {}
        for name, xs in sorted(numbers.items()):
            spec = specs.get(name) or attrs.Spec(name, attrs.NUMERIC, attrs.SCALE)
            encoding = spec.encoding or attrs.SCALE
            if encoding == attrs.BINS:
                xs.sort()
                cuts = sorted({xs[min(len(xs) - 1, int(len(xs) * k / spec.bins))]
                               for k in range(1, spec.bins)})
                encoders[name] = {"type": attrs.NUMERIC, "encoding": encoding,
                                  "edges": [c for c in cuts if c > xs[0]]}
                continue
            if encoding == attrs.LOG:
                xs = [math.log1p(max(x, 0.0)) for x in xs]
            mean = sum(xs) / len(xs)
            sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs)) or 1.0
            encoders[name] = {"type": attrs.NUMERIC, "encoding": encoding, "mean": mean,
                              "sd": sd}
        for name, counts in sorted(items.items()):
            kind = kinds[name]
            spec = specs.get(name) or attrs.Spec(name, kind)
            if kind == attrs.BOOLEAN:
                encoders[name] = {"type": kind}
                continue
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: spec.top_k]
            encoders[name] = {"type": kind, "keep": sorted(k for k, _ in top)}
        return replace(self, encoders=_frozen_encoders(encoders))

    def as_dict(self) -> dict[str, Any]:
        """JSON form, stored in ``model.json`` under ``"pipeline"``."""
        out: dict[str, Any] = {
            "activity_cap": self.activity_cap,
            "hand_raiser_activities": sorted(self.hand_raiser_activities),
            "hand_raiser_triggers": sorted(self.hand_raiser_triggers),
        }
        if self.attributes:
            out["attributes"] = [s.as_dict() for s in self.attributes]
        if self.encoders:
            out["encoders"] = {k: {**v, "keep": sorted(v["keep"])} if "keep" in v else dict(v)
                               for k, v in self.encoders.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpace:
        return cls(
            int(data.get("activity_cap", DEFAULT_ACTIVITY_CAP)),
            frozenset(data.get("hand_raiser_activities", DEFAULT_HAND_RAISER_ACTIVITIES)),
            frozenset(data.get("hand_raiser_triggers", DEFAULT_HAND_RAISER_TRIGGERS)),
            tuple(attrs.Spec.from_dict(s) for s in data.get("attributes") or ()),
            _frozen_encoders(data.get("encoders") or {}),
        )


_RETYPED = frozenset({attrs.NUMERIC, attrs.BOOLEAN})


def _retyped(kind: str, text: str) -> float | bool | None:
    try:
        return attrs.coerce(text, kind, "")  # type: ignore[return-value]
    except ValueError:
        return None  # not of its declared type: left out, as an unknown feature is


def _frozen_encoders(encoders: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    # "keep" as a frozenset: looked up per feature per scored event.
    return {k: {**v, "keep": frozenset(v["keep"])} if "keep" in v else dict(v)
            for k, v in encoders.items()}


def _numeric(enc: Mapping[str, Any], attr: str, x: float, out: Vector) -> None:
    edges = enc.get("edges")
    if edges is not None:
        i = bisect.bisect_right(edges, x)
        lo = "" if i == 0 else f"{edges[i - 1]:g}"
        hi = "" if i == len(edges) else f"{edges[i]:g}"
        out[f"{attrs.PREFIX}{attr}#{lo}..{hi}"] = 1.0
        return
    if enc.get("encoding") == attrs.LOG:
        x = math.log1p(max(x, 0.0))
    out[f"{attrs.PREFIX}{attr}"] = (x - enc["mean"]) / enc["sd"]


def vectors(space: FeatureSpace, states: Iterable[Features | None]) -> list[Vector]:
    return [space.vector(s) for s in states]


def fit_vectorizer(rows: Sequence[Vector], *, min_count: int = 1, sparse: bool = True) -> Any:
    """A ``DictVectorizer`` over the features present in at least ``min_count`` rows.

    Rare features (a one-off job title, a campaign seen twice) are dropped rather than given
    a weight learnt from a handful of leads; at scoring time they are ignored, as any
    feature outside the vocabulary is.
    """
    from sklearn.feature_extraction import DictVectorizer

    vectorizer = DictVectorizer(sparse=sparse, sort=True)
    vectorizer.fit(rows)
    if min_count > 1:
        seen = Counter(name for row in rows for name, value in row.items() if value)
        support = [seen[name] >= min_count for name in vectorizer.feature_names_]
        vectorizer.restrict(support)
    return vectorizer


def vocabulary(vectorizer: Any) -> list[str]:
    """Feature names in column order."""
    return [str(name) for name in vectorizer.feature_names_]
