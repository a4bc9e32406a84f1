"""The one feature pipeline of training and live scoring, so the two cannot drift apart.

feature state (``streams.core.features``) → ``scoring.feature_vector`` (the vocabulary the
points model already speaks: ``industry:SaaS``, ``activity:PRICING_PAGE_VIEW`` = min(count,
cap), ``hand_raiser`` …) → a fixed vocabulary (a scikit-learn ``DictVectorizer`` fitted at
training and stored with the model). What shapes a vector besides the state — the activity
cap and the hand-raiser definition — is part of the ``FeatureSpace`` and is stored with the
model too, so a model scores live exactly as it was trained even after the scoring section
of the configuration changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
                   policy.hand_raiser_triggers)

    def vector(self, features: Features | None) -> Vector:
        """The lead's features in the shared vocabulary (absent features left out)."""
        return feature_vector(
            features, self.activity_cap, hand_raiser=is_hand_raiser(features, self)
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON form, stored in ``model.json`` under ``"pipeline"``."""
        return {
            "activity_cap": self.activity_cap,
            "hand_raiser_activities": sorted(self.hand_raiser_activities),
            "hand_raiser_triggers": sorted(self.hand_raiser_triggers),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpace:
        return cls(
            int(data.get("activity_cap", DEFAULT_ACTIVITY_CAP)),
            frozenset(data.get("hand_raiser_activities", DEFAULT_HAND_RAISER_ACTIVITIES)),
            frozenset(data.get("hand_raiser_triggers", DEFAULT_HAND_RAISER_TRIGGERS)),
        )


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
