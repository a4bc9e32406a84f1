"""`leadflow model …` and `leadflow threshold …` on a data dir, as the data team runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from models.examples import ExampleStore
from models.registry import Registry
from models.thresholds import current, history
from streams import policies
from streams.cli import main
from streams.settings import Settings
from tests.unit.test_retrain import synthetic

ROOT = Path(__file__).parents[2]


def config_env(tmp_path: Path, min_mqls: int) -> dict[str, str]:
    config = tmp_path / "leadflow.toml"
    text = (ROOT / "leadflow.toml").read_text()
    assert "min_mqls_per_month = 250" in text
    config.write_text(text.replace("min_mqls_per_month = 250", f"min_mqls_per_month = {min_mqls}")
                      + "\n[model]\nmin_labels = 100\nmargin = -1.0\n")
    return {"LEADFLOW_CONFIG": str(config), "LEADFLOW_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return config_env(tmp_path, min_mqls=100)  # the synthetic leads keep it at threshold 60


def run(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_every_command_has_help_with_an_example(env) -> None:
    for group, commands in (("model", ("list", "show", "promote", "rollback", "train")),
                            ("threshold", ("recommend", "apply"))):
        for command in ("", *commands):
            out = run(env, *filter(None, (group, command)), "--help")
            assert out.exit_code == 0 and "Example:" in out.output, (group, command)


def test_train_list_show_rollback_and_promote(env) -> None:
    data = Path(env["LEADFLOW_DATA_DIR"])
    assert "no trained model" in run(env, "model", "list").output
    failed = run(env, "model", "train")
    assert failed.exit_code == 1 and "only 0 labelled examples, need 100" in failed.output
    ExampleStore(data / "examples").append(synthetic(500, unlabelled=100))
    trained = run(env, "model", "train")
    assert trained.exit_code == 0, trained.output
    assert "retrain promoted" in trained.output and "ROC AUC" in trained.output
    assert "MQL threshold in force stays 60" in trained.output
    assert "leadflow threshold apply" in trained.output
    version = Registry(data / "models").champion()
    assert version is not None
    listed = run(env, "model", "list").output
    assert f"* {version}" in listed and "champion" in listed
    shown = run(env, "model", "show", version)
    assert shown.exit_code == 0 and "largest weights" in shown.output
    assert json.loads(run(env, "model", "show", version, "--json").output)["model"]["kind"] == (
        "LOGISTIC_REGRESSION"
    )
    missing = run(env, "model", "show", "lr-nope")
    assert missing.exit_code == 1 and "no model version" in missing.output
    back = run(env, "model", "rollback", "--reason", "DQ rate up")
    assert "the points model scores" in back.output
    assert Registry(data / "models").champion() is None
    assert run(env, "model", "rollback").exit_code == 1  # nothing left to roll back
    assert run(env, "model", "promote", version).exit_code == 0
    assert Registry(data / "models").history()[-1]["by"].startswith("cli")


def test_threshold_recommend_then_apply_is_recorded_and_in_force(env) -> None:
    data = Path(env["LEADFLOW_DATA_DIR"])
    assert run(env, "threshold", "recommend").exit_code == 1  # no scored leads yet
    ExampleStore(data / "examples").append(synthetic(300, unlabelled=300))
    advice = json.loads(run(env, "threshold", "recommend", "--json").output)
    assert advice["current"] == 60 and advice["leads"] == 600
    text = run(env, "threshold", "recommend", "--capacity", "100").output
    assert "mqls_per_month" in text and "recommended threshold" in text
    assert run(env, "threshold", "apply", "55").exit_code == 2  # --reason is required
    applied = run(env, "threshold", "apply", "55", "--reason", "fits the contract")
    assert applied.exit_code == 0 and "version 1" in applied.output
    assert current(data / "models") == 55
    settings = Settings.load(env={**env})
    assert policies.load(settings).scoring.threshold == 55
    assert run(env, "threshold", "apply", "101", "--reason", "x").exit_code == 2


def test_a_held_model_is_promoted_with_its_threshold(tmp_path: Path) -> None:
    env = config_env(tmp_path, min_mqls=250)
    data = Path(env["LEADFLOW_DATA_DIR"])
    ExampleStore(data / "examples").append(synthetic(500, unlabelled=100))
    trained = run(env, "model", "train")
    assert "retrain rejected" in trained.output and "at threshold 60" in trained.output
    registry = Registry(data / "models")
    (version,) = [m["version"] for m in registry.list()]
    assert registry.champion() is None
    command = f"leadflow model promote {version} --threshold "
    assert trained.output.count(command) == 2  # in the reason and in the advice
    promoted = run(env, "model", "promote", version, "--threshold", "40")
    assert promoted.exit_code == 0, promoted.output
    assert registry.champion() == version and current(data / "models") == 40
    assert version in history(data / "models")[-1]["reason"]
    assert run(env, "model", "promote", "lr-nope", "--threshold", "40").exit_code == 1
    assert current(data / "models") == 40  # nothing applied for a version that is not there
