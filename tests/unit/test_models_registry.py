"""The registry: versions on disk, champion/challenger on the same holdout, manual promote,
rollback, the history of every decision, and the published form's contract."""

from __future__ import annotations

import json
import math
import random
import uuid
from pathlib import Path
from typing import Any

import fastavro
import pytest

from models.registry import (
    CANDIDATE,
    CHAMPION,
    REJECTED,
    RETIRED,
    Registry,
    consider,
    model_published_record,
)
from models.scorer import ArtifactModel, LinearModel
from models.train import GBM, TrainResult, train
from streams.core.features import new_features
from streams.core.scoring import PointsModel, ScoringPolicy

T0 = 1_767_225_600_000
AVRO = Path(__file__).resolve().parents[2] / "avro" / "ModelPublished" / "v1.avsc"


def _examples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        f = new_features()
        f.update(profile_at=T0, industry=rng.choice(["SaaS", "Retail"]), size_band="SIZE_51_200",
                 trigger_actions=["viewed_pricing_page"], has_email=True, has_names=True,
                 has_company=True, consent=True)
        clicks = rng.randint(0, 3)
        if clicks:
            f["counts"] = {"EMAIL_CLICK": clicks}
        logit = -1 + 1.2 * (f["industry"] == "SaaS") + 0.4 * clicks
        label = int(rng.random() < 1 / (1 + math.exp(-logit)))
        out.append({"lead_id": f"l{i:05d}", "handed_over_at": T0 + i * 1000, "label": label,
                    "features": f})
    return out


@pytest.fixture(scope="module")
def result() -> TrainResult:
    return train(_examples(1500))


def _metrics(auc: float, labels: int = 1000) -> dict[str, float]:
    return {"roc_auc": auc, "positives": labels / 2, "negatives": labels / 2}


@pytest.mark.parametrize(
    ("candidate", "champion", "promote", "reason"),
    [
        (_metrics(0.80), _metrics(0.70), True, "beats the champion's 0.7000 by 0.1000"),
        (_metrics(0.704), _metrics(0.70), False, "does not beat the champion's 0.7000 by 0.005"),
        (_metrics(0.70), _metrics(0.70), False, "does not beat"),
        (_metrics(0.90, labels=150), _metrics(0.60), False, "only 150 labels, need at least 200"),
        ({"positives": 500, "negatives": 500}, _metrics(0.6), False, "ROC AUC missing"),
    ],
)
def test_consider(candidate: dict, champion: dict, promote: bool, reason: str) -> None:
    verdict = consider(candidate, champion)
    assert verdict.promote is promote
    assert reason in verdict.reason


def test_margin_and_min_labels_are_configurable() -> None:
    assert consider(_metrics(0.704), _metrics(0.70), margin=0.001).promote
    assert not consider(_metrics(0.80), _metrics(0.70), margin=0.2).promote
    assert consider(_metrics(0.9, labels=150), _metrics(0.6), min_labels=100).promote


def test_save_list_show_and_load(tmp_path: Path, result: TrainResult) -> None:
    reg = Registry(tmp_path / "models")
    assert reg.list() == [] and reg.champion() is None and reg.champion_model() is None
    version = reg.save(result, created_by="test", now_ms=T0)
    assert version.startswith("lr-20260101T000000Z-")
    assert reg.save(result, created_by="test", now_ms=T0) == version  # same content, same one
    [meta] = reg.list()
    assert meta["version"] == version and meta["status"] == CANDIDATE
    assert meta["created_by"] == "test" and meta["created_at"] == T0
    assert meta["data_sha256"] == result.data_sha256
    assert meta["training_window_start"] == T0
    assert meta["label_counts"]["train"] == result.train_counts
    assert len(meta["calibration"]) == 10
    assert meta["metrics"]["roc_auc"] == result.evaluation.roc_auc
    shown = reg.show(version)
    model = shown["model"]
    assert model["kind"] == "LOGISTIC_REGRESSION" and model["model_version"] == version
    assert model["weights"] == result.weights and model["threshold"] == 0.6
    scorer = reg.load(version)
    assert isinstance(scorer, LinearModel)
    states = [e["features"] for e in result.holdout[:20]]
    expected = result.predict(states)
    assert [scorer.score(s).probability for s in states] == pytest.approx(expected, abs=1e-12)
    assert not [p for p in (tmp_path / "models").rglob("*") if p.name.endswith(".tmp")]
    with pytest.raises(KeyError):
        reg.show("../etc")


def test_model_json_is_a_model_published_record(tmp_path: Path, result: TrainResult) -> None:
    reg = Registry(tmp_path)
    version = reg.save(result, created_by="test", now_ms=T0)
    record = model_published_record(reg.published(version), event_id=str(uuid.uuid4()),
                                    occurred_at=T0 + 1)
    schema = fastavro.parse_schema(json.loads(AVRO.read_text()))
    assert fastavro.validation.validate(record, schema, raise_errors=True)


def test_champion_challenger_promote_and_rollback(tmp_path: Path, result: TrainResult) -> None:
    reg = Registry(tmp_path)
    first = reg.save(result, created_by="worker", now_ms=T0)
    # The first model must beat the points model on its holdout.
    verdict = reg.consider(first, {"roc_auc": 0.55}, by="worker", now_ms=T0 + 1)
    assert verdict.promote and reg.champion() == first
    assert reg.metadata(first)["status"] == CHAMPION

    weaker = reg.save(train(_examples(1500, seed=1)), created_by="worker", now_ms=T0 + 2)
    champion_auc = reg.metadata(weaker)["metrics"]["roc_auc"]  # as if scored on its holdout
    verdict = reg.consider(weaker, {"roc_auc": champion_auc}, by="worker", now_ms=T0 + 3)
    assert not verdict.promote
    meta = reg.metadata(weaker)
    assert meta["status"] == REJECTED and "does not beat" in meta["rejection_reason"]
    assert reg.champion() == first

    reg.promote(weaker, by="alice", reason="sales asked for it", now_ms=T0 + 4)
    assert reg.champion() == weaker
    assert reg.metadata(first)["status"] == RETIRED
    assert reg.metadata(weaker)["rejection_reason"] is None

    assert reg.rollback(by="bob", reason="DQ rate jumped", now_ms=T0 + 5) == first
    assert reg.champion() == first
    assert reg.metadata(first)["status"] == CHAMPION
    assert reg.metadata(weaker)["status"] == RETIRED
    assert reg.rollback(by="bob", now_ms=T0 + 6) is None  # back to the points model
    assert reg.champion() is None and reg.metadata(first)["status"] == RETIRED
    with pytest.raises(ValueError, match="points model"):
        reg.rollback(by="bob")

    history = reg.history()
    assert [(h["action"], h["version"], h["previous"], h["by"]) for h in history] == [
        ("promote", first, None, "worker"),
        ("reject", weaker, first, "worker"),
        ("promote", weaker, first, "alice"),
        ("rollback", first, weaker, "bob"),
        ("rollback", None, first, "bob"),
    ]
    assert [h["at"] for h in history] == [T0 + 1, T0 + 3, T0 + 4, T0 + 5, T0 + 6]
    assert history[2]["reason"] == "sales asked for it"
    # A fresh registry object on the same root reads the same state.
    assert Registry(tmp_path).history() == history


def test_challenge_scores_the_champion_on_the_candidates_holdout(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    # A points table that has it backwards (Retail converts less in these examples).
    points = PointsModel(ScoringPolicy.from_config({"points": {"industry:Retail": 30}}))
    examples = _examples(1500)
    first = train(examples)
    v1 = reg.save(first, created_by="worker", now_ms=T0)
    verdict = reg.challenge(first, v1, points, by="worker")
    assert verdict.promote, verdict.reason
    again = train(examples, C=0.1000001)  # the same model: cannot beat itself by the margin
    v2 = reg.save(again, created_by="worker", now_ms=T0 + 1000)
    verdict = reg.challenge(again, v2, points, by="worker")
    assert not verdict.promote and "does not beat" in verdict.reason
    assert reg.champion() == v1
    assert reg.history()[-1]["champion_roc_auc"] == pytest.approx(first.evaluation.roc_auc)


def test_too_few_labels_are_rejected(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    small = reg.save(train(_examples(150)), created_by="worker", now_ms=T0)
    verdict = reg.consider(small, {"roc_auc": 0.0}, by="worker")
    assert not verdict.promote and "only 150 labels" in verdict.reason
    assert reg.champion() is None


def test_gradient_boosting_artefact_is_checked(tmp_path: Path) -> None:
    gbm = train(_examples(600), kind=GBM)
    reg = Registry(tmp_path)
    version = reg.save(gbm, created_by="test", now_ms=T0)
    assert version.startswith("gbm-")
    folder = tmp_path / "versions" / version
    model = json.loads((folder / "model.json").read_text())
    assert model["artifact_sha256"] == reg.metadata(version)["artifact_sha256"]
    assert len(model["artifact_sha256"]) == 64 and model["weights"] == {}
    scorer = reg.load(version)
    assert isinstance(scorer, ArtifactModel)
    state = gbm.holdout[0]["features"]
    assert scorer.score(state).probability == pytest.approx(float(gbm.predict([state])[0]))
    with (folder / "model.joblib").open("ab") as f:
        f.write(b"tampered")
    with pytest.raises(ValueError, match="sha256"):
        reg.load(version)
