"""`leadflow bench model --export FILE --mapping FILE`: leadflow's model on a team's own
export, side by side with the textbook scikit-learn pipeline and the points model.

The export is read through the mapping exactly as ``leadflow import`` reads it, and made into
the training examples the feedback loop would make of the imported history
(``importing.history``). One split (the latest 20 % by creation time, or a stratified random
one for an export without dates: the report says which) is the holdout of all three:

- leadflow: ``models.train.fit`` on the examples (logistic regression and gradient boosting,
  the configured feature space, custom attributes fitted as configured);
- baseline: one-hot encoding of the text columns, median imputation and scaling of the
  numeric ones, logistic regression — on exactly the columns the mapping names, read from
  the CSV (no leadflow code between the cells and scikit-learn);
- the points model in force, as a ranking.

Then the threshold leadflow's model would recommend for that history, over the period the
export covers (its creation times, or rows × ``[formats] row_spacing``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Columns that are the outcome or come after it: never a feature of the baseline.
_NOT_FEATURES = ("lead_id", "status", "status_at", "disqualification_reason", "sales_notes",
                 "owner", "created_at", "consent_at", "email", "first_name", "last_name",
                 "phone", "linkedin_url", "company_name")


@dataclass
class Line:
    name: str
    roc_auc: float
    pr_auc: float
    brier: float | None
    seconds: float
    note: str = ""


@dataclass
class ExportBench:
    export: str
    rows: int
    examples: int
    positive_rate: float
    split: str
    train_n: int
    holdout_n: int
    columns: list[str]
    lines: list[Line] = field(default_factory=list)
    advice: dict[str, Any] | None = None
    period_days: float | None = None

    def line(self, name: str) -> Line:
        return next(x for x in self.lines if x.name == name)

    def table(self) -> str:
        how = ("latest 20% by creation time" if self.split == "time"
               else "STRATIFIED RANDOM 20% (the export has no dates: no time order to hold "
                    "out the latest from)")
        out = [
            f"export bench: {self.export}: {self.rows:,} rows -> {self.examples:,} labelled "
            f"examples ({self.positive_rate:.1%} positive)",
            f"holdout: {how}; train {self.train_n:,}, holdout {self.holdout_n:,}",
            f"baseline columns ({len(self.columns)}): {', '.join(self.columns)}",
            "",
            f"{'model':<44} {'ROC AUC':>8} {'PR AUC':>7} {'Brier':>7} {'fit s':>6}",
        ]
        for x in self.lines:
            brier = "" if x.brier is None else f"{x.brier:.4f}"
            out.append(f"{x.name:<44} {x.roc_auc:>8.3f} {x.pr_auc:>7.3f} {brier:>7} "
                       f"{x.seconds:>6.2f}{'  ' + x.note if x.note else ''}")
        base = self.line("sklearn baseline (one-hot + scaling + LR)").roc_auc
        lr = self.line("leadflow logistic regression").roc_auc
        out += ["", f"leadflow LR - baseline: {lr - base:+.3f} ROC AUC (target: >= -0.01)"]
        if self.advice is not None:
            a = self.advice
            out.append(
                f"threshold recommended for leadflow's model over {self.period_days:.1f} days "
                f"of history: {a['recommended']} ({a['reason']})")
        return "\n".join(out)


def run_export_bench(export: Path, mapping_path: Path, settings: Any, *, seed: int = 0,
                     progress: Any = None, gbm: bool = True) -> ExportBench:
    """The bench (see module doc); ``gbm`` False leaves gradient boosting out (it is the
    slow one)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from models.features import FeatureSpace
    from models.train import GBM, LOGISTIC, evaluate_model, fit, labelled, split
    from streams import policies
    from streams.importing.export import Export, Summary
    from streams.importing.history import examples
    from streams.importing.mapping import load_mapping
    from streams.importing.rows import MappedRow

    say = progress or (lambda _m: None)
    p = policies.load(settings)
    mapping = load_mapping(mapping_path)
    source = Export(export, mapping)
    summary = Summary()
    say(f"reading {export} through {mapping_path}")
    rows = [r for _, r in source.plan(observed_at=datetime.now(UTC),
                                      max_skew=timedelta(seconds=settings.max_clock_skew_s),
                                      summary=summary) if isinstance(r, MappedRow)]
    labels = policies.model_policy(settings).labels
    ordered = labelled(examples(rows, labels, p.model))
    if len(ordered) < 10:
        raise ValueError(f"only {len(ordered)} labelled rows: nothing to judge a model on")
    train_set, holdout, how = split(ordered, 0.2, seed)
    columns = _baseline_columns(mapping)
    bench = ExportBench(
        export=str(export), rows=summary.rows, examples=len(ordered),
        positive_rate=sum(e["label"] for e in ordered) / len(ordered), split=how,
        train_n=len(train_set), holdout_n=len(holdout), columns=[c for c, _ in columns],
    )
    space = FeatureSpace.of(p.scoring)
    results = {}
    kinds = [(LOGISTIC, "leadflow logistic regression")]
    if gbm:
        kinds.append((GBM, "leadflow gradient boosting (calibrated)"))
    from threadpoolctl import threadpool_limits

    for kind, name in kinds:
        say(f"training {name}")
        started = time.perf_counter()
        with threadpool_limits(limits=1):  # as the worker retrains (bench_model says why)
            result = fit(train_set, holdout, kind=kind, space=space, seed=seed)
        ev = result.evaluation
        results[kind] = result
        bench.lines.append(Line(name, ev.roc_auc, ev.pr_auc, ev.brier,
                                time.perf_counter() - started))
    say("training the scikit-learn baseline on the mapping's columns")
    cells = _cells(export, mapping, [c for c, _ in columns])
    started = time.perf_counter()
    p_base = _baseline(columns, cells, rows, train_set, holdout, seed)
    y = [e["label"] for e in holdout]
    from sklearn.metrics import brier_score_loss

    bench.lines.append(Line("sklearn baseline (one-hot + scaling + LR)",
                            float(roc_auc_score(y, p_base)),
                            float(average_precision_score(y, p_base)),
                            float(brier_score_loss(y, p_base)), time.perf_counter() - started))
    points = evaluate_model(p.model, holdout)
    bench.lines.append(Line(f"points model ({p.model.version})", points.roc_auc, points.pr_auc,
                            None, 0.0, "a ranking: no probabilities"))
    bench.advice, bench.period_days = _advice(ordered, results[LOGISTIC], mapping, p, summary.rows)
    return bench


def _baseline_columns(mapping: Any) -> list[tuple[str, str | None]]:
    """(CSV column, declared type or None) of every column the mapping names as a feature."""
    out = [(column, None) for name, column in mapping.columns.items()
           if name not in _NOT_FEATURES]
    out += [(column, kind) for _, column, kind in mapping.attributes]
    out += [(column, "numeric") for column, _ in mapping.activities]
    seen: set[str] = set()
    return [(c, k) for c, k in out if not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]


def _cells(export: Path, mapping: Any, columns: list[str]) -> dict[str, list[str]]:
    """Lead id → the named columns' cells, straight from the CSV."""
    import csv

    from streams.importing.rows import crm_lead_id

    id_column = mapping.columns["lead_id"]
    out: dict[str, list[str]] = {}
    with export.open(newline="", encoding=mapping.encoding) as fh:
        for row in csv.DictReader(fh, delimiter=mapping.delimiter):
            raw = (row.get(id_column) or "").strip()
            key = crm_lead_id(raw) if mapping.lead_ids == "crm" else raw.lower()
            out[key] = [(row.get(c) or "").strip() for c in columns]
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _baseline(columns: list[tuple[str, str | None]], cells: dict[str, list[str]],
              rows: list[Any], train_set: list[Any], holdout: list[Any], seed: int) -> Any:
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    names = [c for c, _ in columns]
    train_cells = [cells[e["lead_id"]] for e in train_set]
    numeric = [i for i, (_, kind) in enumerate(columns)
               if kind == "numeric" or (kind is None and all(
                   not r[i] or _is_number(r[i]) for r in train_cells)
                   and any(r[i] for r in train_cells))]
    text = [i for i in range(len(names)) if i not in numeric]

    def matrix(examples: list[Any]) -> tuple[Any, Any]:
        rows_ = [cells[e["lead_id"]] for e in examples]
        num = np.array([[float(r[i]) if r[i] else np.nan for i in numeric] for r in rows_],
                       dtype=float).reshape(len(rows_), len(numeric))
        txt = np.array([[r[i] for i in text] for r in rows_], dtype=object).reshape(
            len(rows_), len(text))
        return np.hstack([num, txt]), np.array([e["label"] for e in examples])

    X_train, y_train = matrix(train_set)
    X_hold, _ = matrix(holdout)
    n = len(numeric)
    pipeline = make_pipeline(
        ColumnTransformer([
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
             list(range(n))),
            ("categories", OneHotEncoder(handle_unknown="ignore"),
             list(range(n, n + len(text)))),
        ]),
        LogisticRegression(max_iter=2000, random_state=seed),
    )
    pipeline.fit(X_train, y_train)
    return pipeline.predict_proba(X_hold)[:, 1]


def _advice(ordered: list[Any], result: Any, mapping: Any, p: Any,
            rows: int) -> tuple[dict[str, Any] | None, float | None]:
    from models import thresholds
    from models.retrain import DAY_MS
    from models.scorer import LinearModel

    if result.weights is None:
        return None, None
    model = LinearModel("bench-export", result.weights, result.intercept or 0.0, result.space)
    window = history_window_ms(ordered, mapping, rows)
    if window is None:
        return {"recommended": None, "reason": "the export has no dates and no row_spacing: "
                "pass the period it covers (leadflow threshold recommend --period)"}, None
    probabilities, labels, _ = thresholds.from_examples(ordered, model, window_ms=window)
    rows = thresholds.table(probabilities, window, labels)
    rec = thresholds.recommend(rows, min_mqls_per_month=p.contract.min_mqls_per_month,
                               max_dq_rate=p.contract.max_disqualification_rate)
    return {"recommended": rec.threshold, "reason": rec.reason}, window / DAY_MS


def history_window_ms(examples: list[Any], mapping: Any, rows: int) -> float | None:
    """The period a history covers: its creation times' span, or rows × row spacing."""
    if mapping.row_spacing_ms:
        return float(rows * mapping.row_spacing_ms)
    times = [int(e["handed_over_at"]) for e in examples]
    span = max(times) - min(times)
    return float(span) if span > 0 else None
