"""One retraining, start to end: stored examples → candidate → champion/challenger → threshold
advice, recorded whatever happens.

The worker's leader runs ``job`` in a child process on its cadence; ``leadflow model train``
runs ``retrain`` in the foreground. Every attempt — promoted, rejected or failed — is one line
of ``retrains.jsonl`` in the registry root (time, who, why, metrics, the threshold in force and
the one recommended), so a retrain that could not run says why and leaves the champion alone.

A promotion never changes the MQL threshold: a new model's probabilities are calibrated, so a
score means what it says, but which threshold fits the SLA contract is the data team's call.
The outcome carries the recommended threshold and the command that applies it
(``leadflow threshold apply``), and the worker logs both. Because the threshold stays, a
candidate that would starve sales at it is not promoted automatically (``volume_hold``: the
first trained model replacing the points model scores on another scale, and at the points
model's threshold it may hand over next to nothing); ``leadflow model promote VERSION
--threshold N`` promotes it with a threshold, both recorded.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.examples import ExampleStore
from models.policy import ModelPolicy
from models.registry import Registry, append_jsonl, locked, read_jsonl
from streams.core.handoff import Model
from streams.core.sla import Contract
from streams.settings import Settings

RETRAINS = "retrains.jsonl"
PROMOTED, REJECTED, FAILED = "promoted", "rejected", "failed"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Outcome:
    status: str  # promoted | rejected | failed
    reason: str
    at: int  # epoch ms the attempt started
    by: str
    seconds: float = 0.0
    examples: int = 0  # leads in the store (their latest example)
    labelled: int = 0  # of those, handed over and labelled: what trains
    labels_seen: int = 0  # the store's labelled counter at the start (the retrain trigger)
    version: str | None = None  # the candidate, when one was trained
    champion: str | None = None  # after the decision; None: the points model
    threshold: float | None = None  # in force (score points); a promotion leaves it
    metrics: dict[str, float] = field(default_factory=dict)
    advice: dict[str, Any] | None = None  # see threshold_advice
    # How the holdout was drawn: "time" (the latest share) or "stratified-random" (history
    # without dates); for kind "auto", both candidates' holdout ROC AUC and the choice.
    split: str | None = None
    auto: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def roots(settings: Settings) -> tuple[Path, Path]:
    """(registry root, example store root) under the data dir."""
    return settings.data_path / "models", settings.data_path / "examples"


def history(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return read_jsonl(Path(root) / RETRAINS)


def record(root: Path, outcome: Outcome) -> None:
    """Append ``outcome`` to the retrain history of ``root``."""
    with locked(root):
        append_jsonl(root / RETRAINS, outcome.as_dict())


def recent(examples: Sequence[Mapping[str, Any]], days: float) -> list[Mapping[str, Any]]:
    """Examples scored within ``days`` of the latest one (the window thresholds are read
    from: volumes and rates drift, last year's funnel is not this month's)."""
    times = [int(e["scored_at"]) for e in examples if e.get("scored_at") is not None]
    if not times:
        return []
    since = max(times) - days * DAY_MS
    return [e for e in examples if e.get("scored_at") is not None and e["scored_at"] >= since]


def threshold_advice(
    examples: Sequence[Mapping[str, Any]],
    model: Model,
    *,
    current: float,
    contract: Contract,
    policy: ModelPolicy,
    period_ms: float | None = None,
) -> dict[str, Any]:
    """The threshold ``model`` should run at, from the recent examples: the recommendation,
    why, what changes against ``current`` and the command that applies it. ``period_ms``:
    the time the examples cover, when their times cannot tell (history without dates)."""
    from models import thresholds

    window = examples if period_ms else recent(examples, policy.window_days)
    probabilities, labels, window_ms = thresholds.from_examples(window, model,
                                                                window_ms=period_ms)
    rows = thresholds.table(probabilities, window_ms, labels)
    rec = thresholds.recommend(
        rows, min_mqls_per_month=contract.min_mqls_per_month,
        max_dq_rate=contract.max_disqualification_rate,
        capacity_per_month=policy.capacity_per_month,
        prefer="volume" if policy.prefer == "volume" else "quality",
    )
    now = min(100, max(0, round(current)))
    return {
        "model_version": model.version,
        "current": now,
        "recommended": rec.threshold,
        "satisfied": rec.satisfied,
        "failing": list(rec.failing),
        "reason": rec.reason,
        "leads": len(probabilities),
        "window_days": round(window_ms / DAY_MS, 2),
        "changes": thresholds.changes(rows, now, rec.threshold),
        "command": (
            f'leadflow threshold apply {rec.threshold} --reason "recommended for {model.version}"'
        ),
    }


def volume_hold(
    examples: Sequence[Mapping[str, Any]],
    candidate: Model,
    champion: Model,
    *,
    current: float,
    recommended: int,
    contract: Contract,
    policy: ModelPolicy,
) -> str | None:
    """Why ``candidate`` must not replace ``champion`` at the threshold in force, or None.

    It must not if, over the recent scored leads, it would hand over fewer MQLs a month
    than the SLA contract's minimum AND fewer than the champion does: a better-ranking model
    that breaks the volume commitment on its own is a threshold decision, not a silent one.
    """
    from models import thresholds

    window = recent(examples, policy.window_days)
    at = min(100, max(0, round(current)))
    volume: dict[str, float] = {}
    for name, model in (("candidate", candidate), ("champion", champion)):
        probabilities, _, window_ms = thresholds.from_examples(window, model)
        volume[name] = thresholds.table(probabilities, window_ms)[at].mqls_per_month
    floor = contract.min_mqls_per_month
    if volume["candidate"] >= min(floor, volume["champion"]):
        return None
    return (
        f"at threshold {at} it would hand over {volume['candidate']:.0f} MQLs/month, the "
        f"champion {volume['champion']:.0f} (contract: >= {floor:g}); to promote it with "
        f"the threshold recommended for it: leadflow model promote {candidate.version} "
        f"--threshold {recommended}"
    )


def retrain(settings: Settings, *, by: str, now_ms: int | None = None) -> Outcome:
    """Train on the stored examples and challenge the champion (see module doc)."""
    from models.features import FeatureSpace
    from models.train import labelled, train
    from streams import policies

    started = time.perf_counter()
    at = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    root, examples_root = roots(settings)
    store = ExampleStore(examples_root)
    seen = store.counts()["labelled"]
    base: dict[str, Any] = {"at": at, "by": by, "labels_seen": seen}
    try:
        p = policies.load(settings)
        policy = policies.model_policy(settings)
        base["threshold"] = float(p.scoring.threshold)
        store.compact(now_ms=at)
        examples = store.read()
        usable = len(labelled(examples))
        base.update(examples=len(examples), labelled=usable)
        need = max(policy.min_labels, 10)
        if usable < need:
            outcome = Outcome(FAILED, f"only {usable} labelled examples, need {need}", **base,
                              champion=Registry(root).champion())
        else:
            result = train(
                examples, kind=policy.kind, space=FeatureSpace.of(p.scoring),
                holdout_share=policy.holdout_share, threshold=p.scoring.threshold,
            )
            registry = Registry(root)
            version = registry.save(result, created_by=by, threshold=p.scoring.threshold,
                                    now_ms=at)
            candidate = registry.load(version)
            current, contract = p.scoring.threshold, p.contract
            try:
                advice: dict[str, Any] | None = threshold_advice(
                    examples, candidate, current=current, contract=contract, policy=policy
                )
                hold = volume_hold(
                    examples, candidate, registry.champion_model() or p.model, current=current,
                    recommended=advice["recommended"], contract=contract, policy=policy,
                )
            except ValueError as exc:  # too few recent scored leads to read volumes from
                advice, hold = {"recommended": None, "reason": str(exc)}, None
            if hold:  # its threshold comes with its promotion, not on its own
                advice["command"] = (
                    f"leadflow model promote {version} --threshold {advice['recommended']}"
                )
            verdict = registry.challenge(
                result, version, p.model, by=by, margin=policy.margin,
                min_labels=policy.min_labels, hold=hold, now_ms=at,
            )
            if not (verdict.promote or hold):  # the advice is for the model in force
                model = registry.champion_model() or p.model
                with contextlib.suppress(ValueError):
                    advice = threshold_advice(examples, model, current=current,
                                              contract=contract, policy=policy)
            outcome = Outcome(
                PROMOTED if verdict.promote else REJECTED, verdict.reason, **base,
                version=version, champion=registry.champion(), metrics=result.metrics(),
                advice=advice, split=result.params.get("split"),
                auto=result.params.get("auto"),
            )
    except Exception as exc:  # a failed retrain must say why and leave the champion
        outcome = Outcome(FAILED, f"{type(exc).__name__}: {exc}", **base)
    outcome = _with_seconds(outcome, time.perf_counter() - started)
    record(root, outcome)
    return outcome


def _with_seconds(outcome: Outcome, seconds: float) -> Outcome:
    return Outcome(**{**outcome.as_dict(), "seconds": round(seconds, 3)})


def lower_priority() -> None:
    """Initializer of the worker's retraining process: the event loop's process comes first
    when both want the CPU (the retrain only takes longer)."""
    with contextlib.suppress(OSError):  # not allowed here: it only runs slower
        os.nice(10)


def job(settings: Settings, by: str) -> dict[str, Any]:
    """``retrain`` for the worker's executor: one BLAS thread, so training keeps to one core
    and leaves the other to the stream; a plain dict crosses the process boundary."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return retrain(settings, by=by).as_dict()
