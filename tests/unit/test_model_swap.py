"""The worker's side of the loop without a broker: which record becomes which live model, the
hot swap of ``app.policies``, the applied threshold, and when the leader publishes or retrains."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from models import thresholds
from models.registry import Registry
from models.scorer import LinearModel
from models.train import train
from streams import policies, topics
from streams.agents import models as agent
from streams.codec import Codec
from streams.core.scoring import PointsModel
from streams.registry import FileRegistry
from streams.settings import Settings
from tests.unit.test_retrain import synthetic

NOW = 1_795_000_000_000


@pytest.fixture(scope="module")
def trained() -> Any:
    return train(synthetic(400))


@pytest.fixture
def app(tmp_path: Path) -> Any:
    settings = Settings(data_dir=str(tmp_path))
    return SimpleNamespace(settings=settings, policies=policies.load(settings),
                           log=logging.getLogger("test"),
                           codec=Codec(FileRegistry(tmp_path / "schemas.json")))


def saved(app: Any, result: Any, *, promote: bool = True) -> str:
    registry = Registry(app.settings.data_path / "models")
    version = registry.save(result, created_by="test", now_ms=NOW)
    if promote:
        registry.promote(version, by="test")
    return version


def test_a_published_linear_model_scores_live_as_the_registry_one(app, trained) -> None:
    version = saved(app, trained)
    record = agent.champion_record(app.settings.data_path / "models", app.policies.scoring,
                                   now_ms=NOW)
    data = app.codec.encode(topics.MODELS.subject, topics.MODELS.record, record)  # fits v1
    decoded = app.codec.decode(data, topics.MODELS.record)
    live = agent.model_of(decoded, app.policies.scoring, app.settings.data_path / "models")
    assert isinstance(live, LinearModel) and live.version == version
    states = [e["features"] for e in synthetic(50, seed=3)]
    assert live.probability(states[0]) == pytest.approx(trained.predict(states[:1])[0])
    assert [live.score(s).score for s in states] == [
        Registry(app.settings.data_path / "models").load(version).score(s).score for s in states
    ]


def test_no_champion_publishes_the_points_model(app) -> None:
    record = agent.champion_record(app.settings.data_path / "models", app.policies.scoring,
                                   now_ms=NOW)
    assert record["kind"] == "POINTS" and record["model_version"] == app.policies.model.version
    model = agent.model_of(record, app.policies.scoring, app.settings.data_path / "models")
    assert isinstance(model, PointsModel) and model.version == app.policies.model.version


def test_install_swaps_the_model_and_nothing_else(app, trained) -> None:
    saved(app, trained)
    before = app.policies
    models = agent.Models(app)
    record = agent.champion_record(models.root, app.policies.scoring, now_ms=NOW)
    models.install(record)
    assert app.policies is not before and app.policies.model.version == record["model_version"]
    assert dataclasses.replace(app.policies, model=before.model) == before
    assert before.model.version.startswith("points-")  # the old object is untouched
    swapped = app.policies
    models.install(record)  # the same record again (a redelivery): nothing changes
    assert app.policies is swapped
    broken = {**record, "model_version": "gbm-missing", "kind": "GRADIENT_BOOSTING"}
    models.install(broken)  # cannot be loaded: the model in force stays
    assert app.policies is swapped and models.topic_version == "gbm-missing"


def test_an_applied_threshold_reaches_a_running_worker(app) -> None:
    models = agent.Models(app)
    models.threshold_check()
    assert app.policies.scoring.threshold == 60
    thresholds.apply(models.root, 55, "cli:test", "recommended")
    models.threshold_check()
    assert app.policies.scoring.threshold == 55
    assert app.policies.model.version == PointsModel(app.policies.scoring).version


async def test_the_leader_publishes_decisions_made_with_the_cli(app, trained) -> None:
    models = agent.Models(app)
    published: list[dict[str, Any]] = []

    async def publish(record: dict[str, Any]) -> None:
        published.append(record)
        models.topic_version = record["model_version"]
        models.published_at = record["occurred_at"]

    models.publish = publish  # type: ignore[method-assign]
    await models.reconcile()
    assert published == []  # a registry that decided nothing never overrides the topic
    version = saved(app, trained)  # promoted by hand
    await models.reconcile()
    await models.reconcile()
    assert [r["model_version"] for r in published] == [version]
    Registry(models.root).rollback(by="cli:test")
    await models.reconcile()
    assert published[-1]["kind"] == "POINTS" and len(published) == 2


def test_retrain_is_due_on_cadence_or_after_new_labels() -> None:
    rule = {"every_s": 3600.0, "after_labels": 500}
    assert not agent.retrain_due(now_ms=NOW, last_at=NOW - 10_000, labels=900, last_labels=500,
                                 **rule)
    assert agent.retrain_due(now_ms=NOW, last_at=NOW - 3_600_000, labels=0, last_labels=0,
                             **rule)
    assert agent.retrain_due(now_ms=NOW, last_at=NOW, labels=1000, last_labels=500, **rule)
    assert not agent.retrain_due(now_ms=NOW, last_at=0, labels=10**6, last_labels=0,
                                 every_s=0, after_labels=0)


def test_a_promotion_never_changes_the_threshold_silently() -> None:
    lines = agent.advice_lines({
        "status": "promoted", "reason": "ROC AUC 0.74 beats 0.66", "version": "lr-1",
        "labelled": 900, "seconds": 1.5, "threshold": 60.0,
        "advice": {"model_version": "lr-1", "recommended": 35, "reason": "meets all",
                   "command": 'leadflow threshold apply 35 --reason "recommended for lr-1"'},
    })
    assert "threshold in force stays 60" in lines[1]
    assert lines[2].endswith('leadflow threshold apply 35 --reason "recommended for lr-1"')


def test_a_published_gradient_boosting_model_is_loaded_from_the_registry(app) -> None:
    gbm = train(synthetic(300), kind="gbm")
    version = saved(app, gbm)
    record = agent.champion_record(app.settings.data_path / "models", app.policies.scoring,
                                   now_ms=NOW)
    assert record["kind"] == "GRADIENT_BOOSTING" and record["artifact_sha256"]
    live = agent.model_of(record, app.policies.scoring, app.settings.data_path / "models")
    state = synthetic(1, seed=9)[0]["features"]
    assert live.version == version
    assert live.score(state).probability == pytest.approx(gbm.predict([state])[0])
