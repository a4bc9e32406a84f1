"""Training from dispositions: labelled examples → calibrated model + honest evaluation.

An example is the feedback agent's JSON dict per lead (``lead_id``, ``handed_over_at``,
``label`` 1/0/None, ``features`` frozen at handover, …). Only handed-over, labelled examples
train. They are ordered by ``handed_over_at`` and the latest ``holdout_share`` is held out:
a model is judged on leads that came after everything it learnt from, as it will be live.

``kind="logistic"`` (default): scikit-learn ``LogisticRegression``, sigmoid-calibrated, then
folded into weights + intercept (log-odds per unit of a feature) that ``scorer.LinearModel``
evaluates live. ``kind="gbm"``: ``HistGradientBoostingClassifier``, calibrated the same way,
persisted as a joblib artefact.

``kind="auto"``: both on the same split; gradient boosting is kept only when its holdout ROC
AUC beats the logistic regression's by more than ``AUTO_MARGIN`` (the linear model's weights
read as points, which is worth a little AUC). Both figures are in ``params``.

History without dates (an import with neither a creation time nor a row spacing) has no
order to hold out the latest from: when fewer than a tenth of the labelled examples have
distinct handover times, the holdout is a stratified random split instead
(``params["split"]``, which every report prints).

The model that is published is the one evaluated (not refitted on the holdout afterwards),
so its metrics, and the champion/challenger comparison on the same holdout, describe it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from models.calibrate import (
    SIGMOID,
    CalibrationBin,
    calibrate,
    calibration_table,
    expected_calibration_error,
    linear_form,
)
from models.features import FeatureSpace, fit_vectorizer, vocabulary
from models.scorer import GRADIENT_BOOSTING, LOGISTIC_REGRESSION
from streams.core.handoff import Model
from streams.core.scoring import DEFAULT_THRESHOLD

Example = Mapping[str, Any]

LOGISTIC = "logistic"
GBM = "gbm"
AUTO = "auto"
KINDS = {LOGISTIC: LOGISTIC_REGRESSION, GBM: GRADIENT_BOOSTING}
AUTO_MARGIN = 0.005
TIME_SPLIT, RANDOM_SPLIT = "time", "stratified-random"
# Measured with `leadflow bench model` (holdout ROC AUC at 500 / 2,000 / 10,000 labels):
# C = 1.0 gives 0.666 / 0.720 / 0.737, C = 0.1 0.666 / 0.715 / 0.736; stronger penalties
# only lose, and choosing C by cross-validation per training found nothing better.
DEFAULT_C = 1.0
# From this many training labels gradient boosting is calibrated on a held-out fifth instead
# of cross-validated folds (fit below).
SPLIT_CALIBRATION_AT = 20_000


@dataclass(frozen=True)
class Evaluation:
    """How well probabilities ``p`` predict labels on a holdout. ``threshold`` is in score
    points (a lead is "at/above" when ``to_score(p) >= threshold``)."""

    n: int
    positives: int
    roc_auc: float
    pr_auc: float
    brier: float
    ece: float
    threshold: float
    precision: float | None  # None: no lead at/above the threshold
    recall: float
    volume: int  # holdout leads at/above the threshold
    calibration: list[CalibrationBin] = field(default_factory=list)

    def numbers(self) -> dict[str, float]:
        """The numeric metrics (ModelPublished's ``metrics`` map holds doubles only)."""
        out = {
            "roc_auc": self.roc_auc, "pr_auc": self.pr_auc, "brier": self.brier,
            "ece": self.ece, "threshold_points": float(self.threshold), "recall": self.recall,
            "volume": float(self.volume), "volume_share": self.volume / self.n,
            "holdout_n": float(self.n), "holdout_positives": float(self.positives),
            "holdout_negatives": float(self.n - self.positives),
        }
        if self.precision is not None:
            out["precision"] = self.precision
        return out


def evaluate(
    y: Sequence[int] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    bins: int = 10,
) -> Evaluation:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    labels = np.asarray(y, dtype=int)
    probs = np.asarray(p, dtype=float)
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        raise ValueError("evaluation needs both labels in the holdout (ROC AUC is undefined)")
    # to_score, vectorised: the same float operations, so the same points.
    above = np.clip(np.floor(100.0 * probs + 0.5), 0, 100) >= threshold
    volume = int(above.sum())
    hits = int(labels[above].sum())
    return Evaluation(
        n=len(labels),
        positives=positives,
        roc_auc=float(roc_auc_score(labels, probs)),
        pr_auc=float(average_precision_score(labels, probs)),
        brier=float(brier_score_loss(labels, probs)),
        ece=expected_calibration_error(labels, probs, bins),
        threshold=threshold,
        precision=hits / volume if volume else None,
        recall=hits / positives,
        volume=volume,
        calibration=calibration_table(labels, probs, bins),
    )


def evaluate_model(
    model: Model, examples: Sequence[Example], *, threshold: float = DEFAULT_THRESHOLD
) -> Evaluation:
    """Any live model (the champion, the points model) on labelled examples, e.g. a
    candidate's holdout. The points model's probability is score/100: a rank, fine for AUC."""
    p = [model.score(e["features"]).probability for e in examples]
    return evaluate([int(e["label"]) for e in examples], p, threshold=threshold)


def labelled(examples: Iterable[Example]) -> list[Example]:
    """Handed-over examples with a label, ordered by handover time (then lead id, so the
    order, and the split, do not depend on how the examples were listed)."""
    out = [
        e for e in examples
        if e.get("label") in (0, 1) and e.get("handed_over_at") is not None
    ]
    out.sort(key=lambda e: (int(e["handed_over_at"]), str(e.get("lead_id", ""))))
    return out


def time_split(
    ordered: Sequence[Example], holdout_share: float = 0.2
) -> tuple[list[Example], list[Example]]:
    """(train, holdout): the holdout is the latest ``holdout_share`` of ``ordered``."""
    if not 0 < holdout_share < 1:
        raise ValueError("holdout_share must be between 0 and 1")
    n_hold = max(1, round(len(ordered) * holdout_share))
    cut = len(ordered) - n_hold
    return list(ordered[:cut]), list(ordered[cut:])


def undated(ordered: Sequence[Example]) -> bool:
    """Whether handover times carry no order to hold out the latest from (see module doc)."""
    distinct = len({int(e["handed_over_at"]) for e in ordered})
    return distinct < max(2, len(ordered) // 10)


def stratified_split(
    ordered: Sequence[Example], holdout_share: float = 0.2, seed: int = 0
) -> tuple[list[Example], list[Example]]:
    """(train, holdout) drawn at random, each label in the same share (seeded)."""
    import random

    rng = random.Random(seed)
    train_set: list[Example] = []
    holdout: list[Example] = []
    for label in (0, 1):
        group = [e for e in ordered if e["label"] == label]
        rng.shuffle(group)
        n_hold = round(len(group) * holdout_share)
        holdout += group[:n_hold]
        train_set += group[n_hold:]
    order = {id(e): i for i, e in enumerate(ordered)}  # the given order within each side
    return sorted(train_set, key=lambda e: order[id(e)]), sorted(
        holdout, key=lambda e: order[id(e)])


def split(
    ordered: Sequence[Example], holdout_share: float = 0.2, seed: int = 0
) -> tuple[list[Example], list[Example], str]:
    """(train, holdout, how): the latest share, or a stratified random one when undated."""
    if undated(ordered):
        return (*stratified_split(ordered, holdout_share, seed), RANDOM_SPLIT)
    return (*time_split(ordered, holdout_share), TIME_SPLIT)


def data_sha256(examples: Iterable[Example]) -> str:
    """SHA-256 of the examples as canonical JSON lines (sorted keys), in the given order."""
    import hashlib

    digest = hashlib.sha256()
    for e in examples:
        digest.update(orjson.dumps(e, option=orjson.OPT_SORT_KEYS))
        digest.update(b"\n")
    return digest.hexdigest()


def _counts(examples: Sequence[Example]) -> dict[str, int]:
    positives = sum(1 for e in examples if e["label"] == 1)
    return {"positives": positives, "negatives": len(examples) - positives}


@dataclass
class TrainResult:
    kind: str  # LOGISTIC_REGRESSION | GRADIENT_BOOSTING (ModelPublished's ModelKind)
    space: FeatureSpace
    vectorizer: Any
    estimator: Any  # fitted CalibratedClassifierCV
    features: list[str]
    weights: dict[str, float] | None  # calibrated log-odds per feature (linear kinds)
    intercept: float | None
    evaluation: Evaluation  # on the holdout
    holdout: list[Example]
    train_counts: dict[str, int]
    window_start: int  # handed_over_at of the first and last example used (ms)
    window_end: int
    data_sha256: str
    params: dict[str, Any] = field(default_factory=dict)

    def predict(self, states: Sequence[Any]) -> np.ndarray:
        """Calibrated probabilities of feature states, through the scikit-learn pipeline."""
        X = self.vectorizer.transform([self.space.vector(s) for s in states])
        return self.estimator.predict_proba(X)[:, 1]

    def metrics(self) -> dict[str, float]:
        """Holdout metrics plus the label counts of everything the model was built from
        (``positives``/``negatives``, what ``registry.consider`` checks)."""
        out = self.evaluation.numbers()
        out["train_positives"] = float(self.train_counts["positives"])
        out["train_negatives"] = float(self.train_counts["negatives"])
        out["positives"] = out["train_positives"] + out["holdout_positives"]
        out["negatives"] = out["train_negatives"] + out["holdout_negatives"]
        return out


def train(
    examples: Iterable[Example],
    *,
    kind: str = LOGISTIC,
    space: FeatureSpace | None = None,
    holdout_share: float = 0.2,
    threshold: float = DEFAULT_THRESHOLD,
    C: float = DEFAULT_C,
    min_count: int = 3,
    method: str = SIGMOID,
    folds: int | None = None,
    seed: int = 0,
) -> TrainResult:
    """Fit, calibrate and evaluate a model on the time-ordered holdout (see module doc).

    ``C``: inverse L2 strength of the logistic regression (see ``DEFAULT_C``). ``min_count``:
    features present in fewer training examples are left out of the vocabulary.
    ``folds``: cross-validation folds of the calibration (default 5, 3 for gradient
    boosting, whose fits are the slow part: folds + 1 of them).
    """
    ordered = labelled(examples)
    if len(ordered) < 10:
        raise ValueError(f"training needs at least 10 labelled examples, got {len(ordered)}")
    train_set, holdout, how = split(ordered, holdout_share, seed)
    common = dict(space=space, threshold=threshold, C=C, min_count=min_count, method=method,
                  folds=folds, seed=seed, holdout_share=holdout_share)
    if kind != AUTO:
        result = fit(train_set, holdout, kind=kind, **common)  # type: ignore[arg-type]
        result.params["split"] = how
        return result
    linear = fit(train_set, holdout, kind=LOGISTIC, **common)  # type: ignore[arg-type]
    boosted = fit(train_set, holdout, kind=GBM, **common)  # type: ignore[arg-type]
    lr_auc, gbm_auc = linear.evaluation.roc_auc, boosted.evaluation.roc_auc
    chosen = boosted if gbm_auc > lr_auc + AUTO_MARGIN else linear
    chosen.params.update(split=how, auto={"logistic_auc": lr_auc, "gbm_auc": gbm_auc,
                                          "margin": AUTO_MARGIN, "chosen": chosen.params["kind"]})
    return chosen


def fit(
    train_set: Sequence[Example],
    holdout: Sequence[Example],
    *,
    kind: str = LOGISTIC,
    space: FeatureSpace | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    C: float = DEFAULT_C,
    min_count: int = 3,
    method: str = SIGMOID,
    folds: int | None = None,
    seed: int = 0,
    holdout_share: float | None = None,
) -> TrainResult:
    """``train`` on a split made by the caller (labelled examples, each in time order):
    e.g. several training sizes judged on one common holdout."""
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {sorted(KINDS)}")
    space = space or FeatureSpace()
    folds = folds or (5 if kind == LOGISTIC else 3)
    y_train = np.array([e["label"] for e in train_set], dtype=int)
    y_hold = np.array([e["label"] for e in holdout], dtype=int)
    if len(set(y_train.tolist())) < 2:
        raise ValueError("training needs both labels before the holdout")

    # Attribute transforms (scaling, bins, top-K) are fitted on the training set only.
    space = space.fit(e["features"] for e in train_set)
    rows = [space.vector(e["features"]) for e in train_set]
    # Gradient boosting in scikit-learn takes dense input only; 100k × ~100 is 80 MB.
    vectorizer = fit_vectorizer(rows, min_count=min_count, sparse=kind == LOGISTIC)
    X_train = vectorizer.transform(rows)
    X_hold = vectorizer.transform([space.vector(e["features"]) for e in holdout])
    estimator = _estimator(kind, C, seed)
    split = kind != LOGISTIC and len(y_train) >= SPLIT_CALIBRATION_AT
    if split:
        # Labels enough to spend a fifth on the calibrator alone: one boosting fit instead of
        # folds + 1 (100,000 examples: ~4x less CPU; the retrain must stay under 30 s).
        from sklearn.model_selection import train_test_split

        X_fit, X_cal, y_fit, y_cal = train_test_split(
            X_train, y_train, test_size=0.2, stratify=y_train, random_state=seed)
        model = calibrate(estimator.fit(X_fit, y_fit), X_cal, y_cal, method=method,
                          prefit=True)
    else:
        model = calibrate(estimator, X_train, y_train, method=method, folds=folds, seed=seed)
    p_hold = model.predict_proba(X_hold)[:, 1]
    evaluation = evaluate(y_hold, p_hold, threshold=threshold)

    features = vocabulary(vectorizer)
    weights: dict[str, float] | None = None
    intercept: float | None = None
    if kind == LOGISTIC and method == SIGMOID:
        w, intercept = linear_form(model)
        weights = {name: float(v) for name, v in zip(features, w, strict=True)}
    used = [*train_set, *holdout]
    return TrainResult(
        kind=KINDS[kind],
        space=space,
        vectorizer=vectorizer,
        estimator=model,
        features=features,
        weights=weights,
        intercept=intercept,
        evaluation=evaluation,
        holdout=list(holdout),
        train_counts=_counts(train_set),
        window_start=min(int(e["handed_over_at"]) for e in used),
        window_end=max(int(e["handed_over_at"]) for e in used),
        data_sha256=data_sha256(used),
        params={"kind": kind, "C": C, "min_count": min_count, "method": method,
                "folds": None if split else folds, "seed": seed, "holdout_share": holdout_share,
                "train_n": len(train_set), "holdout_n": len(holdout)},
    )


def _estimator(kind: str, C: float, seed: int) -> Any:
    if kind == LOGISTIC:
        from sklearn.linear_model import LogisticRegression

        # Exact Newton steps: a handful of iterations for a vocabulary of a few hundred
        # features, where lbfgs spends ~50 ms of fixed cost per fit (6 fits per training).
        return LogisticRegression(C=C, solver="newton-cholesky", max_iter=100)
    from sklearn.ensemble import HistGradientBoostingClassifier

    # Shallow trees and a fixed number of rounds: a few hundred labels must not be memorised,
    # and no internal validation split (early stopping) takes labels from calibration.
    return HistGradientBoostingClassifier(
        max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=40,
        l2_regularization=1.0, early_stopping=False, random_state=seed,
    )
