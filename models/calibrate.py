"""Calibrated probabilities, with scikit-learn's own calibration, and how to check them.

``calibrate`` wraps an estimator in ``CalibratedClassifierCV``. By default it is
cross-validated with ``ensemble=False``: the estimator is fitted once on all the training
labels and ONE calibrator is fitted on out-of-fold predictions, so no label is spent only on
calibration (it matters with a few hundred labels) and the result stays a single model.
With ``prefit=True`` an already fitted estimator is frozen (``sklearn.frozen.FrozenEstimator``,
which replaced ``cv="prefit"``) and only the calibrator is fitted, on the data given.

Sigmoid (Platt) calibration of a logistic regression is still a logistic regression:
p = 1 / (1 + exp(a·(w·x + b) + c)) (scikit-learn's sign convention), so ``linear_form``
folds it into plain weights and an intercept that a live scorer evaluates with a dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SIGMOID = "sigmoid"
ISOTONIC = "isotonic"
DEFAULT_BINS = 10


def calibrate(
    estimator: Any,
    X: Any,
    y: Sequence[int] | np.ndarray,
    *,
    method: str = SIGMOID,
    folds: int = 5,
    prefit: bool = False,
    seed: int = 0,
) -> Any:
    """A fitted ``CalibratedClassifierCV`` around ``estimator`` (see module doc)."""
    from sklearn.calibration import CalibratedClassifierCV

    labels = np.asarray(y)
    if prefit:
        from sklearn.frozen import FrozenEstimator

        return CalibratedClassifierCV(FrozenEstimator(estimator), method=method).fit(X, labels)
    from sklearn.model_selection import StratifiedKFold

    smallest = int(min(np.sum(labels == 1), np.sum(labels == 0)))
    if smallest < 2:
        raise ValueError(
            f"calibration needs at least 2 examples of each label, got {smallest} of the rarer"
        )
    cv = StratifiedKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)
    model = CalibratedClassifierCV(estimator, method=method, cv=cv, ensemble=False)
    return model.fit(X, labels)


def linear_form(calibrated: Any) -> tuple[np.ndarray, float]:
    """(weights, intercept) with p = sigmoid(weights·x + intercept), the same probability as
    ``calibrated.predict_proba(x)[:, 1]`` for a sigmoid-calibrated linear model."""
    if calibrated.method != SIGMOID or len(calibrated.calibrated_classifiers_) != 1:
        raise ValueError("only a single sigmoid-calibrated model is linear")
    pair = calibrated.calibrated_classifiers_[0]
    estimator = pair.estimator
    estimator = getattr(estimator, "estimator", estimator)  # FrozenEstimator → the model
    if not hasattr(estimator, "coef_") or list(estimator.classes_) != [0, 1]:
        raise ValueError("the calibrated estimator is not a binary linear model over {0, 1}")
    calibrator = pair.calibrators[0]
    a, c = float(calibrator.a_), float(calibrator.b_)
    weights = -a * np.asarray(estimator.coef_[0], dtype=float)
    intercept = -(a * float(estimator.intercept_[0]) + c)
    return weights, intercept


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """One decile of predicted probability: the mean prediction (expected) against the rate
    of positives (observed) over its ``count`` examples."""

    low: float
    high: float
    expected: float
    observed: float
    count: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_table(
    y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray, bins: int = DEFAULT_BINS
) -> list[CalibrationBin]:
    """Equal-count bins (deciles by default) of the predictions, lowest first.

    Equal counts rather than equal widths: calibrated lead probabilities crowd the low end,
    and a fixed-width bin over 0.9-1.0 would hold a handful of leads and only noise.
    """
    labels = np.asarray(y, dtype=float)
    probs = np.asarray(p, dtype=float)
    if labels.shape != probs.shape:
        raise ValueError("y and p must have the same length")
    if bins < 1:
        raise ValueError("bins must be >= 1")
    if not len(probs):
        return []
    order = np.argsort(probs, kind="stable")
    out = []
    for part in np.array_split(order, min(bins, len(order))):
        if len(part) == 0:
            continue
        ps = probs[part]
        out.append(CalibrationBin(
            low=float(ps.min()), high=float(ps.max()), expected=float(ps.mean()),
            observed=float(labels[part].mean()), count=len(part),
        ))
    return out


def expected_calibration_error(
    y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray, bins: int = DEFAULT_BINS
) -> float:
    """Mean over the bins of ``calibration_table`` of |expected − observed| (bins are equal
    in count, so this equals the count-weighted mean up to one example per bin)."""
    table = calibration_table(y, p, bins)
    if not table:
        raise ValueError("no predictions to judge")
    return float(np.mean([abs(b.expected - b.observed) for b in table]))
