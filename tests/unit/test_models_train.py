"""Training: the time-ordered holdout (no leakage from the future), the metrics by hand,
and that a model learns a known truth from synthetic examples."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from models.train import (
    GBM,
    data_sha256,
    evaluate,
    evaluate_model,
    labelled,
    time_split,
    train,
)
from streams.core.features import new_features
from streams.core.scoring import DEFAULT_POINTS, PointsModel, ScoringPolicy

T0 = 1_767_225_600_000  # 2026-01-01


def synthetic(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Examples whose label follows a known logistic truth over a few features."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        f = new_features()
        f.update(profile_at=T0, size_band=rng.choice(["SIZE_1_10", "SIZE_51_200"]),
                 industry=rng.choice(["SaaS", "Retail", "Education"]),
                 region=rng.choice(["EMEA", "APAC"]), tech=sorted(rng.sample(["Kafka", "AWS"], 1)),
                 title=rng.choice(["CTO", "Analyst"]), campaign_id="cmp-a",
                 trigger_actions=["viewed_pricing_page"], has_email=True, has_names=True,
                 has_company=True, consent=True)
        counts = {"PRICING_PAGE_VIEW": rng.randint(0, 4), "EMAIL_OPEN": rng.randint(0, 3)}
        f["counts"] = {k: v for k, v in counts.items() if v}
        logit = (-1.5 + 1.2 * (f["industry"] == "SaaS") - 1.0 * (f["size_band"] == "SIZE_1_10")
                 + 0.6 * min(counts["PRICING_PAGE_VIEW"], 3))
        label = int(rng.random() < 1 / (1 + math.exp(-logit)))
        out.append({
            "lead_id": f"lead-{i:05d}", "handed_over_at": T0 + i * 60_000,
            "disposed_at": T0 + i * 60_000 + 86_400_000,
            "outcome": "SQL" if label else "DISQUALIFIED", "label": label, "reason": None,
            "campaign_id": "cmp-a", "features": f, "score": 50, "model_version": "points-x",
            "scored_at": T0 + i * 60_000,
        })
    return out


def test_labelled_keeps_handed_over_verdicts_in_time_order() -> None:
    rows = [
        {"lead_id": "b", "handed_over_at": 2, "label": 1},
        {"lead_id": "a", "handed_over_at": 2, "label": 0},
        {"lead_id": "c", "handed_over_at": 1, "label": 0},
        {"lead_id": "d", "handed_over_at": None, "label": None},  # scored, never handed over
        {"lead_id": "e", "handed_over_at": 3, "label": None},  # still being worked
    ]
    assert [e["lead_id"] for e in labelled(rows)] == ["c", "a", "b"]


def test_holdout_is_the_latest_fifth_whatever_the_input_order() -> None:
    examples = synthetic(100)
    shuffled = examples[:]
    random.Random(1).shuffle(shuffled)
    train_set, holdout = time_split(labelled(shuffled), 0.2)
    assert len(holdout) == 20
    assert max(e["handed_over_at"] for e in train_set) < min(e["handed_over_at"] for e in holdout)
    assert holdout == examples[80:]
    assert data_sha256(labelled(shuffled)) == data_sha256(examples)
    with pytest.raises(ValueError, match="holdout_share"):
        time_split(examples, 1.0)


def test_evaluate_by_hand() -> None:
    ev = evaluate([0, 1, 0, 1], [0.1, 0.8, 0.6, 0.4], threshold=50, bins=2)
    # positive/negative pairs ranked right: (.8,.1) (.8,.6) (.4,.1), wrong: (.4,.6)
    assert ev.roc_auc == pytest.approx(0.75)
    assert ev.brier == pytest.approx((0.01 + 0.04 + 0.36 + 0.36) / 4)
    assert (ev.volume, ev.precision, ev.recall) == (2, 0.5, 0.5)  # scores 80 and 60 >= 50
    assert ev.n == 4 and ev.positives == 2
    numbers = ev.numbers()
    assert numbers["volume_share"] == 0.5
    assert all(isinstance(v, float) for v in numbers.values())
    none_above = evaluate([0, 1], [0.1, 0.2], threshold=90)
    assert none_above.precision is None and "precision" not in none_above.numbers()
    with pytest.raises(ValueError, match="both labels"):
        evaluate([1, 1], [0.3, 0.4])


def test_threshold_compares_score_points_rounded_half_up() -> None:
    ev = evaluate([0, 1, 1], [0.594, 0.595, 0.7], threshold=60)  # scores 59, 60, 70
    assert ev.volume == 2


def test_logistic_model_learns_the_truth_and_is_calibrated() -> None:
    result = train(synthetic(3000))
    ev = result.evaluation
    assert ev.n == 600
    assert ev.roc_auc > 0.72
    assert ev.ece < 0.06
    w = result.weights
    assert w is not None and result.intercept is not None
    assert w["industry:SaaS"] > 0.5
    assert w["size:SIZE_1_10"] < -0.5
    assert w["activity:PRICING_PAGE_VIEW"] > 0.3
    assert abs(w["activity:EMAIL_OPEN"]) < 0.2  # no effect in the truth
    assert result.kind == "LOGISTIC_REGRESSION"
    assert result.features == sorted(w)
    metrics = result.metrics()
    assert metrics["positives"] + metrics["negatives"] == 3000
    assert metrics["train_positives"] + metrics["train_negatives"] == 2400
    assert result.window_start == T0 and result.window_end == T0 + 2999 * 60_000


def test_the_points_model_is_judged_on_the_same_holdout() -> None:
    result = train(synthetic(1000))
    points = PointsModel(ScoringPolicy.from_config({"points": DEFAULT_POINTS}))
    ev = evaluate_model(points, result.holdout)
    assert ev.n == len(result.holdout)
    assert 0 <= ev.roc_auc <= 1


def test_gradient_boosting_trains_without_weights() -> None:
    result = train(synthetic(800), kind=GBM)
    assert result.kind == "GRADIENT_BOOSTING"
    assert result.weights is None
    assert result.evaluation.roc_auc > 0.65
    p = result.predict([e["features"] for e in result.holdout[:5]])
    assert ((p > 0) & (p < 1)).all()


def test_training_refuses_what_it_cannot_judge() -> None:
    with pytest.raises(ValueError, match="at least 10 labelled"):
        train(synthetic(5))
    with pytest.raises(ValueError, match="unknown model kind"):
        train(synthetic(100), kind="forest")
    one_label = [{**e, "label": 0} for e in synthetic(100)]
    with pytest.raises(ValueError, match="both labels"):
        train(one_label)
