"""Live scorers for trained models: the core ``Model`` protocol (``version``, ``score``).

``LinearModel`` scores a published linear model (calibrated weights and intercept, see
``calibrate.linear_form``) per event on the hot path: the feature vector comes from the same
``FeatureSpace`` training used, the weights are one dict built once, and the probability is
plain float arithmetic (no numpy, no scikit-learn per call). ``ArtifactModel`` wraps a
scikit-learn pipeline (gradient boosting) loaded from the registry; it is slower, and its
factors are per lead: how much each feature the lead has moves its log-odds, against the
same lead without it (a number at its training mean), all in one batch of predictions.

Score = round half up of 100·p, clamped to 0..100, so a threshold in score points compares
with calibrated probabilities: score >= 60 ⇔ p >= 0.595.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from models.features import FeatureSpace
from streams.core.features import Features
from streams.core.scoring import TOP_FACTORS, Factor, Score

LOGISTIC_REGRESSION = "LOGISTIC_REGRESSION"
GRADIENT_BOOSTING = "GRADIENT_BOOSTING"
# POINTS records carry points, not log-odds: they are scored by core.scoring.PointsModel.
LINEAR_KINDS = frozenset({LOGISTIC_REGRESSION})


def to_score(p: float) -> int:
    """Score points of a probability: round half up of 100·p, clamped to 0..100."""
    return min(100, max(0, math.floor(100.0 * p + 0.5)))


def sigmoid(z: float) -> float:
    # Two branches so that exp never overflows, whatever the weights.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class LinearModel:
    """p = sigmoid(intercept + Σ weight[f]·value[f]) over the lead's feature vector."""

    __slots__ = ("version", "kind", "space", "intercept", "_weights")

    def __init__(
        self,
        version: str,
        weights: Mapping[str, float],
        intercept: float,
        space: FeatureSpace | None = None,
        kind: str = LOGISTIC_REGRESSION,
    ) -> None:
        if not version:
            raise ValueError("a model needs a version")
        self.version = version
        self.kind = kind
        self.space = space or FeatureSpace()
        self.intercept = float(intercept)
        # Zero weights change nothing and would only show up as factors of 0.
        self._weights = {str(k): float(w) for k, w in weights.items() if w}

    @classmethod
    def from_published(
        cls, published: Mapping[str, Any], *, space: FeatureSpace | None = None
    ) -> LinearModel:
        """From a registry ``model.json`` or a ModelPublished record. The vector's shape
        (activity cap, hand-raiser definition) comes from its ``pipeline`` when it has one
        (registry models do; the Avro record has no such field), else from ``space``."""
        kind = str(published.get("kind") or LOGISTIC_REGRESSION)
        if kind not in LINEAR_KINDS:
            raise ValueError(f"a {kind} model is not linear; load it from the registry instead")
        pipeline = published.get("pipeline")
        if isinstance(pipeline, Mapping):
            space = FeatureSpace.from_dict(pipeline)
        return cls(
            version=str(published["model_version"]),
            weights=published.get("weights") or {},
            intercept=float(published.get("intercept") or 0.0),
            space=space,
            kind=kind,
        )

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def logit(self, features: Features | None) -> float:
        weights = self._weights
        z = self.intercept
        for name, value in self.space.vector(features).items():
            w = weights.get(name)
            if w is not None:
                z += w * value
        return z

    def probability(self, features: Features | None) -> float:
        return sigmoid(self.logit(features))

    def score(self, features: Features | None) -> Score:
        weights = self._weights
        z = self.intercept
        parts: list[tuple[float, str]] = []
        for name, value in self.space.vector(features).items():
            w = weights.get(name)
            if w is not None:
                part = w * value
                z += part
                parts.append((part, name))
        p = sigmoid(z)
        parts.sort(key=_factor_order)
        return Score(
            score=to_score(p),
            probability=p,
            model_version=self.version,
            factors=tuple(Factor(name, part) for part, name in parts[:TOP_FACTORS]),
        )


def _factor_order(part: tuple[float, str]) -> tuple[float, str]:
    return (-abs(part[0]), part[1])


class ArtifactModel:
    """A scikit-learn model (vectorizer + calibrated classifier) behind the ``Model``
    protocol. For models that are not linear; each call runs scikit-learn."""

    __slots__ = ("version", "kind", "space", "vectorizer", "estimator")

    def __init__(
        self, version: str, vectorizer: Any, estimator: Any, space: FeatureSpace,
        kind: str = GRADIENT_BOOSTING,
    ) -> None:
        self.version = version
        self.kind = kind
        self.space = space
        self.vectorizer = vectorizer
        self.estimator = estimator

    def probability(self, features: Features | None) -> float:
        X = self.vectorizer.transform([self.space.vector(features)])
        return float(self.estimator.predict_proba(X)[0, 1])

    def score(self, features: Features | None) -> Score:
        p, factors = self.explain(features)
        return Score(score=to_score(p), probability=p, model_version=self.version,
                     factors=factors)

    def explain(self, features: Features | None) -> tuple[float, tuple[Factor, ...]]:
        """(probability, top factors): each present feature's effect on the log-odds, as
        the lead's log-odds minus those of the same lead without that feature."""
        import numpy as np

        vector = self.space.vector(features)
        X = self.vectorizer.transform([vector])
        if hasattr(X, "toarray"):
            X = X.toarray()
        index = self.vectorizer.vocabulary_
        present = [(index[n], n) for n in vector if n in index and X[0, index[n]] != 0]
        rows = np.repeat(X, len(present) + 1, axis=0)
        for k, (j, _) in enumerate(present, start=1):
            rows[k, j] = 0.0
        ps = np.clip(self.estimator.predict_proba(rows)[:, 1], 1e-6, 1 - 1e-6)
        logits = np.log(ps / (1 - ps))
        parts = [(float(logits[0] - logits[k]), name)
                 for k, (_, name) in enumerate(present, start=1)]
        parts = [pt for pt in parts if pt[0]]
        parts.sort(key=_factor_order)
        return float(ps[0]), tuple(Factor(n, c) for c, n in parts[:TOP_FACTORS])
