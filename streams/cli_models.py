"""`leadflow model …` and `leadflow threshold …`: the data team's side of the feedback loop.

Both work on the data dir (DATA_DIR/models: the registry, retrain and threshold histories;
DATA_DIR/examples: the stored training examples), with no broker needed. A running worker
follows their decisions: its leader publishes a promoted or rolled-back champion on
``models.scoring`` within ``model_poll_s``, and every worker picks up an applied threshold in
the same time.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from streams.settings import Settings


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _when(ms: Any) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _registry(settings: Settings) -> Any:
    from models.registry import Registry

    return Registry(settings.data_path / "models")


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _live(settings: Settings) -> str:
    return (f"a running worker's leader publishes it on models.scoring within "
            f"{settings.model_poll_s:g} s; every worker then scores with it")


@click.group("model")
def model_group() -> None:
    """Trained scoring models: list, inspect, promote, roll back, retrain.

    \b
    Example:
      leadflow model list
    """


@model_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
def model_list(as_json: bool) -> None:
    """Every model version, oldest first, with its status and holdout metrics.

    \b
    Example:
      leadflow model list
    """
    settings = Settings.load()
    registry = _registry(settings)
    versions = registry.list()
    if as_json:
        _echo_json(versions)
        return
    champion = registry.champion()
    if not versions:
        click.echo(f"no trained model in {registry.root}: the points model scores "
                   "(retrain with `leadflow model train`)")
        return
    click.echo(f"{'':2}{'VERSION':36} {'STATUS':9} {'CREATED':16} {'LABELS':>6} "
               f"{'ROC AUC':>7} {'BRIER':>6}")
    for meta in versions:
        m = meta.get("metrics") or {}
        labels = int(m.get("positives", 0) + m.get("negatives", 0))
        mark = "* " if meta["version"] == champion else "  "
        click.echo(f"{mark}{meta['version']:36} {meta['status']:9} "
                   f"{_when(meta['created_at']):16} {labels:>6} "
                   f"{m.get('roc_auc', float('nan')):>7.4f} {m.get('brier', float('nan')):>6.4f}")
    click.echo(f"champion: {champion or 'none (the points model scores)'}")


@model_group.command("show")
@click.argument("version")
@click.option("--json", "as_json", is_flag=True, help="Print model.json and metadata.json.")
@click.option("--top", type=int, default=15, show_default=True, help="Weights to list.")
def model_show(version: str, as_json: bool, top: int) -> None:
    """One version: metadata, holdout metrics, calibration and its largest weights.

    \b
    Example:
      leadflow model show lr-20261102T093000Z-3f2a9c1b7e
    """
    settings = Settings.load()
    try:
        shown = _registry(settings).show(version)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    if as_json:
        _echo_json(shown)
        return
    meta, model = shown["metadata"], shown["model"]
    click.echo(f"{version}  {meta['kind']}  status {meta['status']}"
               + (f" ({meta['rejection_reason']})" if meta.get("rejection_reason") else ""))
    click.echo(f"created {_when(meta['created_at'])} by {meta['created_by']}; training window "
               f"{_when(meta['training_window_start'])} .. {_when(meta['training_window_end'])}")
    click.echo(f"labels {meta['label_counts']}; data sha256 {meta['data_sha256'][:16]}…")
    m = meta["metrics"]
    click.echo("holdout: " + ", ".join(
        f"{k} {m[k]:.4f}" for k in ("roc_auc", "pr_auc", "brier", "ece", "precision", "recall")
        if k in m
    ))
    click.echo("calibration (expected vs observed, count):")
    for b in meta.get("calibration") or []:
        click.echo(f"  {b['expected']:.3f}  {b['observed']:.3f}  {b['count']}")
    weights = sorted((model.get("weights") or {}).items(), key=lambda kv: -abs(kv[1]))
    if weights:
        click.echo(f"largest weights (log-odds per unit; intercept {model['intercept']:+.3f}):")
        for name, w in weights[:top]:
            click.echo(f"  {w:+.3f}  {name}")


@model_group.command("promote")
@click.argument("version")
@click.option("--reason", default="manual promotion", show_default=True)
@click.option("--threshold", type=click.IntRange(0, 100), default=None,
              help="Also apply this MQL threshold (score points), recorded like "
                   "`leadflow threshold apply`: a model on another scale needs its own.")
def model_promote(version: str, reason: str, threshold: int | None) -> None:
    """Make VERSION the champion (recorded in the registry history with who and why).

    \b
    Example:
      leadflow model promote lr-20261102T093000Z-3f2a9c1b7e --reason "reviewed weights"
      leadflow model promote lr-20261102T093000Z-3f2a9c1b7e --threshold 34
    """
    from models import thresholds

    settings = Settings.load()
    registry = _registry(settings)
    try:
        registry.metadata(version)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from exc
    registry.promote(version, by=_who(), reason=reason)
    click.echo(f"{version} is the champion; {_live(settings)}")
    if threshold is not None:
        entry = thresholds.apply(registry.root, threshold, _who(), f"promoting {version}: {reason}")
        click.echo(f"threshold {threshold} applied (version {entry['version']}) with it; "
                   f"workers pick both up within {settings.model_poll_s:g} s")


@model_group.command("rollback")
@click.option("--reason", default="manual rollback", show_default=True)
def model_rollback(reason: str) -> None:
    """Retire the champion and bring the previous one back (none: the points model).

    \b
    Example:
      leadflow model rollback --reason "DQ rate up since Monday"
    """
    settings = Settings.load()
    try:
        restored = _registry(settings).rollback(by=_who(), reason=reason)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"champion now {restored or 'none: the points model scores'}; {_live(settings)}")


@model_group.command("train")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def model_train(as_json: bool) -> None:
    """Retrain now from the stored examples: metrics, the promotion verdict and the threshold
    recommended for the champion. Exit code 1 when no model could be trained.

    \b
    Example:
      leadflow model train
    """
    from models.retrain import FAILED, PROMOTED, retrain
    from streams.agents.models import advice_lines

    settings = Settings.load()
    outcome = retrain(settings, by=_who()).as_dict()
    if as_json:
        _echo_json(outcome)
    else:
        m = outcome["metrics"]
        if m:
            how = {"time": "the latest by handover time",
                   "stratified-random": "a STRATIFIED RANDOM split: the history has no dates"}
            click.echo(f"holdout ({int(m['holdout_n'])} leads, "
                       f"{how.get(outcome.get('split') or 'time', outcome.get('split'))}): "
                       f"ROC AUC {m['roc_auc']:.4f}, PR AUC {m['pr_auc']:.4f}, "
                       f"Brier {m['brier']:.4f}, ECE {m['ece']:.4f}")
            auto = outcome.get("auto")
            if auto:
                click.echo(f"kind auto: logistic regression ROC AUC {auto['logistic_auc']:.4f}, "
                           f"gradient boosting {auto['gbm_auc']:.4f} -> {auto['chosen']}")
        for line in advice_lines(outcome):
            click.echo(line)
        if outcome["status"] == PROMOTED:
            click.echo(_live(settings))
    if outcome["status"] == FAILED:
        sys.exit(1)


@click.group("threshold")
def threshold_group() -> None:
    """The MQL threshold: what the SLA contract and sales capacity call for, and applying it.

    \b
    Example:
      leadflow threshold recommend
    """


@threshold_group.command("recommend")
@click.option("--capacity", type=float, default=None,
              help="MQLs sales can work per month (default [model] capacity_per_month).")
@click.option("--json", "as_json", is_flag=True, help="Print the advice as JSON.")
@click.option("--period", default=None,
              help="The time the stored leads cover, e.g. 90d, when their times cannot tell "
                   "(history imported without dates).")
def threshold_recommend(capacity: float | None, as_json: bool, period: str | None) -> None:
    """The threshold the model in force should run at, from recent scored leads: expected
    MQLs/month, disqualification rate and conversions, and what changes if it is applied.

    \b
    Example:
      leadflow threshold recommend --capacity 400
      leadflow threshold recommend --period 90d
    """
    import dataclasses

    from models.examples import ExampleStore
    from models.retrain import threshold_advice
    from streams import policies
    from streams.core.durations import parse_duration

    settings = Settings.load()
    p = policies.load(settings)
    policy = policies.model_policy(settings)
    if capacity is not None:
        policy = dataclasses.replace(policy, capacity_per_month=capacity)
    model = _registry(settings).champion_model() or p.model
    examples = ExampleStore(settings.data_path / "examples").read()
    if len(examples) < 2:
        raise click.ClickException(
            f"no scored leads in {settings.data_path / 'examples'} yet: run a worker on live "
            "or simulated leads (leadflow up --demo), or load history (leadflow import)"
        )
    try:
        period_ms = None if period is None else parse_duration(period)
        advice = threshold_advice(examples, model, current=p.scoring.threshold,
                                  contract=p.contract, policy=policy, period_ms=period_ms)
    except ValueError as exc:
        raise click.ClickException(f"no recommendation: {exc}") from exc
    if as_json:
        _echo_json(advice)
        return
    click.echo(f"model {advice['model_version']}, {advice['leads']} scored leads over "
               f"{advice['window_days']:g} days")
    click.echo(f"recommended threshold {advice['recommended']} (in force: {advice['current']})"
               f": {advice['reason']}")
    click.echo(f"{'':24}{'current':>10}{'proposed':>10}{'delta':>10}")
    for key in ("mqls_per_month", "dq_rate", "conversions_per_month", "precision", "recall"):
        c = advice["changes"][key]
        click.echo(f"{key:24}" + "".join(
            f"{'-' if v is None else f'{v:.3f}':>10}" for v in (c["current"], c["proposed"],
                                                                c["delta"])
        ))
    if advice["recommended"] != advice["current"]:
        click.echo(f"apply it with: {advice['command']}")


@threshold_group.command("apply")
@click.argument("threshold", type=click.IntRange(0, 100))
@click.option("--reason", required=True, help="Why: kept in the threshold history.")
def threshold_apply(threshold: int, reason: str) -> None:
    """Apply THRESHOLD (score points 0-100) as the MQL threshold: a new, recorded version
    that overrides [scoring] threshold.

    \b
    Example:
      leadflow threshold apply 55 --reason "recommended for lr-20261102T093000Z-3f2a9c1b7e"
    """
    from models import thresholds

    settings = Settings.load()
    entry = thresholds.apply(settings.data_path / "models", threshold, _who(), reason)
    was = entry["previous"] if entry["previous"] is not None else "the configured one"
    click.echo(f"threshold {threshold} applied (version {entry['version']}, was {was}); "
               f"every running worker uses it within {settings.model_poll_s:g} s, "
               "and new workers from the start")
