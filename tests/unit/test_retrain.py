"""One retraining from the example store: promoted, rejected or failed — always recorded, the
champion left alone unless promoted, the threshold never changed by a promotion."""

from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path
from typing import Any

import pytest

from models import retrain as retraining
from models.examples import ExampleStore
from models.policy import ModelPolicy
from models.registry import Registry
from streams import policies
from streams.core.features import new_features
from streams.settings import Settings

T0 = 1_790_000_000_000
HOUR = 3_600_000


def synthetic(n: int, seed: int = 0, *, unlabelled: int = 0) -> list[dict[str, Any]]:
    """Examples in the feedback format with a hidden logistic truth (SaaS and clicks help),
    one per lead, an hour apart; ``unlabelled`` more leads scored but never handed over."""
    rng = random.Random(seed)
    out = []
    for i in range(n + unlabelled):
        f = new_features()
        f.update(profile_at=T0 + i * HOUR, industry=rng.choice(["SaaS", "Retail", "FinTech"]),
                 size_band=rng.choice(["SIZE_51_200", "SIZE_1_10"]),
                 trigger_actions=["viewed_pricing_page"], has_email=True, has_names=True,
                 has_company=True, consent=True, title="CTO")
        clicks = rng.randint(0, 3)
        if clicks:
            f["counts"] = {"EMAIL_CLICK": clicks}
        logit = -1.5 + 1.5 * (f["industry"] == "SaaS") + 0.5 * clicks
        label = int(rng.random() < 1 / (1 + math.exp(-logit))) if i < n else None
        at = T0 + i * HOUR
        out.append({
            "lead_id": f"lead-{seed}-{i:05d}", "handed_over_at": at if i < n else None,
            "disposed_at": at + HOUR if i < n else None,
            "outcome": None if label is None else ("SQL" if label else "DISQUALIFIED"),
            "label": label, "reason": None, "campaign_id": None, "features": f,
            "score": 50, "model_version": "points-x", "scored_at": at, "historic": False,
            "occurred_at": at,
        })
    return out


def settings_for(tmp: Path, **model: Any) -> Settings:
    return Settings(data_dir=str(tmp), extra={"model": {"min_labels": 100, **model}})


def store(settings: Settings, examples: list[dict[str, Any]]) -> None:
    ExampleStore(settings.data_path / "examples").append(examples)


def test_too_few_labels_fails_says_why_and_leaves_the_champion(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    store(s, synthetic(40))
    outcome = retraining.retrain(s, by="test")
    assert outcome.status == retraining.FAILED
    assert outcome.reason == "only 40 labelled examples, need 100"
    assert outcome.champion is None and outcome.version is None
    (recorded,) = retraining.history(tmp_path / "models")
    assert recorded["status"] == "failed" and recorded["labels_seen"] == 40


def test_a_better_model_is_promoted_and_the_threshold_stays(tmp_path: Path) -> None:
    s = settings_for(tmp_path, margin=-1.0)  # whatever the points model does on this data
    s = dataclasses.replace(s, extra={**s.extra, "sla": {"marketing": {"min_mqls_per_month": 100}}})
    store(s, synthetic(600, unlabelled=200))
    outcome = retraining.retrain(s, by="test")
    assert outcome.status == retraining.PROMOTED, outcome.reason
    registry = Registry(tmp_path / "models")
    assert outcome.champion == outcome.version == registry.champion()
    assert outcome.examples == 800 and outcome.labelled == 600
    assert outcome.metrics["roc_auc"] > 0.6 and outcome.seconds > 0
    assert policies.load(s).scoring.threshold == outcome.threshold == 60  # never silent:
    advice = outcome.advice or {}
    assert advice["model_version"] == outcome.version and 0 <= advice["recommended"] <= 100
    assert advice["command"].startswith(f"leadflow threshold apply {advice['recommended']} ")
    assert advice["leads"] == 800  # the never handed over count for volume

    strict = settings_for(tmp_path, margin=0.5)  # the same data again cannot gain 0.5 AUC
    again = retraining.retrain(strict, by="test")
    assert again.status == retraining.REJECTED and "does not beat" in again.reason
    assert registry.champion() == outcome.version
    assert registry.metadata(again.version or "")["status"] == "rejected"
    assert [h["status"] for h in retraining.history(tmp_path / "models")] == [
        "promoted", "rejected"
    ]


def test_a_winner_that_would_starve_sales_at_the_threshold_is_held(tmp_path: Path) -> None:
    """The contract asks 250 MQLs/month; at threshold 60 the candidate hands over fewer than
    that and fewer than the points model: it ranks better, yet is not promoted silently."""
    s = settings_for(tmp_path, margin=-1.0)
    store(s, synthetic(600, unlabelled=200))
    outcome = retraining.retrain(s, by="test")
    assert outcome.status == retraining.REJECTED
    assert "beats the champion" in outcome.reason and "at threshold 60" in outcome.reason
    advice = outcome.advice or {}
    assert advice["model_version"] == outcome.version  # the threshold the held one needs
    assert outcome.reason.endswith(
        f"leadflow model promote {outcome.version} --threshold {advice['recommended']}"
    )
    assert Registry(tmp_path / "models").champion() is None
    p = policies.load(s)
    store_, registry = ExampleStore(tmp_path / "examples"), Registry(tmp_path / "models")

    def hold(at: int) -> str | None:
        return retraining.volume_hold(
            store_.read(), registry.load(outcome.version or ""), p.model, current=at,
            recommended=at, contract=p.contract, policy=ModelPolicy())

    assert hold(60) is not None
    assert hold(30) is None  # a threshold on its own scale keeps the volume


def test_an_exception_fails_the_retrain_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings_for(tmp_path)
    store(s, synthetic(300))

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("models.train.train", boom)
    outcome = retraining.retrain(s, by="test")
    assert (outcome.status, outcome.reason) == ("failed", "RuntimeError: disk on fire")
    assert Registry(tmp_path / "models").champion() is None
    assert retraining.history(tmp_path / "models")[-1]["reason"] == outcome.reason


def test_recent_keeps_the_window_before_the_latest_score() -> None:
    examples = synthetic(0, unlabelled=100)  # an hour apart
    assert len(retraining.recent(examples, days=1)) == 25  # 24 h back from the last, inclusive
    assert retraining.recent([], days=1) == []


def test_model_policy_defaults_and_checks() -> None:
    assert ModelPolicy.from_config(None) == ModelPolicy()
    custom = ModelPolicy.from_config({"kind": "gbm", "min_labels": 50, "capacity_per_month": 400,
                                      "labels": {"positive": ["closed_won"]}})
    assert (custom.kind, custom.min_labels, custom.capacity_per_month) == ("gbm", 50, 400.0)
    assert custom.labels.label_of("SQL") is None and custom.labels.label_of("Closed_Won") == 1
    for bad, key in (({"kind": "forest"}, "kind"), ({"margin": 2}, "margin"),
                     ({"min_labels": -1}, "min_labels"), ({"minlabels": 1}, "unknown"),
                     ({"prefer": "speed"}, "prefer")):
        with pytest.raises(ValueError, match=key):
            ModelPolicy.from_config(bad)
