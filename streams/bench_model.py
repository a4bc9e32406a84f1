"""`leadflow bench model`: how close retraining gets to the simulator's hidden truth.

One seeded scenario (``streams.simulate.generate``). Its MQL'd leads become training
examples exactly as the feedback loop builds them: the features as they were at the MQL
moment (``handover.replay``, the engine's own core), labelled by the default label
definition (positive: the lead reached SQL, won or lost afterwards; negative: it did not).
Repeat submissions of one person are left out (their truth is the original lead's, while
sales would disqualify them as duplicates). The latest 20 % by MQL time is one common
holdout; for each N, models are trained on the N examples just before it (and on the
N before those, … up to ``repeats`` disjoint windows, averaged: N = 500 is noisy).

The ORACLE is the simulator's hidden truth on the same holdout: the probability that the
lead reaches SQL (``sales.sql_probability`` of its conversion probability at handover). It
knows the hidden effect sizes; a model has to learn them from N labels.

With ``attributes`` the simulated leads carry custom attributes with real signal
(``simulate.attributes``: lead origin, time on site), declared to the feature space as the
simulator's ``SPECS``; the oracle knows their effects, the points model does not.

Training time on 100,000 examples: the pool resampled with replacement to that size (the
time depends on size and vocabulary, not on distinctness; generating 200k leads would cost
minutes and gigabytes for the same figure).
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from models.calibrate import expected_calibration_error
from models.features import FeatureSpace
from models.train import LOGISTIC, evaluate_model, fit, labelled, time_split

Progress = Callable[[str], None]
DEFAULT_LABELS = (500, 2_000, 10_000)
# Fixed so a seed gives the same scenario, hence the same figures, on any day.
BENCH_NOW = datetime(2026, 3, 1, tzinfo=UTC)
TARGET_GAP = {2_000: 0.03, 10_000: 0.02}
TARGET_ECE = 0.05
TARGET_SECONDS = 30.0


def scenario_examples(scenario: Any) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """(examples in the feedback agent's format, the oracle's probability by lead id)."""
    from streams.simulate.handover import lead_record, replay
    from streams.simulate.sales import sql_probability

    wanted = {
        lead_id for lead_id, t in scenario.truth.items()
        if t.mql_at is not None and t.alias_of is None
    }
    bodies: dict[str, dict[str, Any]] = {}
    activities: dict[str, list[tuple[int, str]]] = {}
    for d in scenario.deliveries:
        if d.bad_kind is not None or d.channel == "crm" or d.lead_id not in wanted:
            continue
        body = orjson.loads(d.body)
        if d.channel == "lead":
            bodies[body["leadId"]] = body
        else:
            activities.setdefault(body["leadId"], []).append((d.occurred_ms, body["type"]))
    p = scenario.policies
    examples: list[dict[str, Any]] = []
    oracle: dict[str, float] = {}
    for lead_id, truth in scenario.truth.items():
        if lead_id not in wanted:
            continue
        acts = sorted(activities.get(lead_id, ()), key=lambda a: a[0])
        h = replay(p, lead_record(bodies[lead_id], scenario.now), acts)
        if h.mql_at is None or h.features is None:
            raise RuntimeError(f"lead {lead_id}: replay disagrees with the truth's MQL")
        examples.append({
            "lead_id": lead_id, "handed_over_at": h.mql_at, "disposed_at": None,
            "outcome": truth.outcome, "label": int(truth.reached_sql), "reason": None,
            "campaign_id": truth.campaign_id, "features": h.features,
            "score": p.model.score(h.features).score, "model_version": p.model.version,
            "scored_at": h.mql_at,
        })
        oracle[lead_id] = sql_probability(truth.probability)
    return examples, oracle


@dataclass(frozen=True)
class Row:
    """Figures of models trained on ``labels`` examples, averaged over ``windows`` disjoint
    training windows (the most recent first) judged on the same holdout."""

    labels: int
    positives: float
    roc_auc: float
    oracle_auc: float
    brier: float
    ece: float
    seconds: float
    windows: int = 1
    auc_sd: float = 0.0

    @property
    def gap(self) -> float:
        return self.oracle_auc - self.roc_auc


@dataclass
class ModelBench:
    seed: int
    leads: int
    days: float
    examples: int
    positive_rate: float
    holdout: int
    oracle_auc: float
    oracle_brier: float
    oracle_ece: float
    points_auc: float
    rows: list[Row] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # label counts the pool is too small for
    big_n: int = 0
    big_seconds: float = 0.0
    big_auc: float = 0.0
    big_cpu: float = 0.0  # CPU seconds of this process (the machine may be shared)
    kind: str = LOGISTIC
    attributes: bool = False

    def table(self) -> str:
        with_attrs = ", custom attributes" if self.attributes else ""
        lines = [
            f"model bench ({self.kind}{with_attrs}): seed {self.seed}, {self.leads:,} leads over "
            f"{self.days:g} days -> {self.examples:,} MQL'd examples "
            f"({self.positive_rate:.1%} reached SQL)",
            f"holdout: latest {self.holdout:,} by MQL time; oracle (hidden probability of SQL) "
            f"AUC {self.oracle_auc:.3f}, Brier {self.oracle_brier:.4f}, ECE "
            f"{self.oracle_ece:.3f}; points model AUC {self.points_auc:.3f}",
            "",
            f"{'labels':>8} {'windows':>7} {'positives':>9} {'ROC AUC':>8} {'± sd':>6} "
            f"{'oracle':>7} {'gap':>6} {'target':>7} {'Brier':>7} {'ECE':>6} {'train s':>8}",
        ]
        for r in self.rows:
            target = TARGET_GAP.get(r.labels)
            lines.append(
                f"{r.labels:>8,} {r.windows:>7} {r.positives:>9,.0f} {r.roc_auc:>8.3f} "
                f"{r.auc_sd:>6.3f} {r.oracle_auc:>7.3f} {r.gap:>6.3f} "
                f"{'' if target is None else f'<={target}':>7} "
                f"{r.brier:>7.4f} {r.ece:>6.3f} {r.seconds:>8.2f}"
            )
        for n in self.skipped:
            lines.append(f"{n:>8,}  (skipped: fewer labelled examples before the holdout)")
        lines += [
            "",
            f"train on {self.big_n:,} examples (resampled pool): {self.big_seconds:.1f} s "
            f"(target < {TARGET_SECONDS:g} s; CPU {self.big_cpu:.1f} s), holdout AUC "
            f"{self.big_auc:.3f}",
            f"targets: gap <= {TARGET_GAP[2_000]} @ 2,000 and <= {TARGET_GAP[10_000]} @ "
            f"10,000 labels; ECE <= {TARGET_ECE}",
        ]
        return "\n".join(lines)


def run_model_bench(
    *,
    seed: int = 7,
    leads: int = 30_000,
    days: float = 90.0,
    label_counts: Sequence[int] = DEFAULT_LABELS,
    holdout_share: float = 0.2,
    big: int = 100_000,
    kind: str = LOGISTIC,
    policies: Any = None,
    repeats: int = 5,
    progress: Progress | None = None,
    attributes: bool = False,
) -> ModelBench:
    """Run the bench (see module doc); ``policies``: the handoff rules (default: the
    configured ones). Each label count is trained on up to ``repeats`` disjoint windows
    before the holdout (a few hundred labels give noisy figures). ``progress`` receives a
    line per step."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from streams.simulate import generate

    say = progress or (lambda _line: None)
    say(f"simulating {leads:,} leads over {days:g} days (seed {seed})")
    scenario = generate(seed, leads, days, now=BENCH_NOW, bad_share=0.0, wall_seconds=0,
                        policies=policies, attributes=attributes)
    say("replaying every MQL'd lead to its MQL moment")
    # Same reason as in generate: a million live acyclic objects, rescanned for nothing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        examples, oracle = scenario_examples(scenario)
    finally:
        if gc_was_enabled:
            gc.enable()
    policies = scenario.policies
    space = FeatureSpace.of(policies.scoring)
    if attributes:
        from dataclasses import replace

        from streams.simulate.attributes import SPECS

        space = replace(space, attributes=SPECS)
    del scenario

    ordered = labelled(examples)
    pool, holdout = time_split(ordered, holdout_share)
    y_hold = [e["label"] for e in holdout]
    if len(set(y_hold)) < 2 or len({e["label"] for e in pool}) < 2:
        raise ValueError(
            f"{len(ordered)} MQL'd examples are too few to judge a model: simulate more leads"
        )
    p_oracle = [oracle[e["lead_id"]] for e in holdout]
    bench = ModelBench(
        seed=seed, leads=leads, days=days, examples=len(ordered),
        positive_rate=sum(e["label"] for e in ordered) / len(ordered),
        holdout=len(holdout),
        oracle_auc=float(roc_auc_score(y_hold, p_oracle)),
        oracle_brier=float(brier_score_loss(y_hold, p_oracle)),
        oracle_ece=expected_calibration_error(y_hold, p_oracle),
        points_auc=evaluate_model(policies.model, holdout).roc_auc,
        kind=kind, attributes=attributes,
    )

    def run(train_set: Sequence[dict[str, Any]], hold: Sequence[dict[str, Any]]) -> Row:
        from threadpoolctl import threadpool_limits

        started = time.perf_counter()
        # One thread, as the worker's retraining process trains (models.retrain.job): OpenMP's
        # two threads on a busy 2-core machine spin against each other (gbm: 80 CPU s, 160 s
        # wall for what one thread does in ~20 s).
        with threadpool_limits(limits=1):
            result = fit(train_set, hold, kind=kind, space=space, seed=seed)
        seconds = time.perf_counter() - started
        ev = result.evaluation
        return Row(len(train_set), result.train_counts["positives"], ev.roc_auc,
                   bench.oracle_auc, ev.brier, ev.ece, seconds)

    for n in label_counts:
        windows = min(repeats, len(pool) // n)
        if not windows:
            bench.skipped.append(n)
            continue
        say(f"training on {n:,} labels ({windows} window{'s' if windows > 1 else ''})")
        runs = [run(pool[len(pool) - (k + 1) * n: len(pool) - k * n], holdout)
                for k in range(windows)]
        bench.rows.append(_mean(runs))

    say(f"timing training on {big:,} examples")
    rng = random.Random(seed)
    sample = sorted((rng.choice(pool) for _ in range(big)), key=_by_handover)
    cpu = time.process_time()
    row = run(sample, holdout)
    bench.big_cpu = time.process_time() - cpu
    bench.big_n, bench.big_seconds, bench.big_auc = row.labels, row.seconds, row.roc_auc
    return bench


def _mean(runs: Sequence[Row]) -> Row:
    aucs = [r.roc_auc for r in runs]
    return Row(
        labels=runs[0].labels,
        positives=statistics.fmean(r.positives for r in runs),
        roc_auc=statistics.fmean(aucs),
        oracle_auc=runs[0].oracle_auc,
        brier=statistics.fmean(r.brier for r in runs),
        ece=statistics.fmean(r.ece for r in runs),
        seconds=statistics.fmean(r.seconds for r in runs),
        windows=len(runs),
        auc_sd=statistics.stdev(aucs) if len(aucs) > 1 else 0.0,
    )


def _by_handover(e: dict[str, Any]) -> int:
    return int(e["handed_over_at"])
