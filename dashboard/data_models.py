"""The data team's and the pipeline's questions (see ``dashboard.data`` for the rules)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.data import Archive, Filters, keep_leads, key, since
from models import thresholds
from models.thresholds import MONTH_MS, Row
from streams.archive import layout


@dataclass(frozen=True)
class ModelContext:
    """What the Data team page needs besides the archive: the registry on disk, the label
    policy, the contract's limits and the threshold in force."""

    registry_root: Path
    positive: tuple[str, ...] = ("SQL", "CLOSED_WON")
    negative: tuple[str, ...] = ("DISQUALIFIED", "BAD_FIT", "CLOSED_LOST")
    threshold: int = 60
    min_mqls_per_month: float = 250
    max_dq_rate: float = 0.30
    capacity_per_month: float | None = None
    prefer: str = "quality"
    points: Mapping[str, float] = field(default_factory=dict, hash=False, compare=False)


def scored_leads(a: Archive, f: Filters, m: ModelContext) -> pl.DataFrame:
    """Each lead scored in the window: its latest score and probability, the model that gave
    it, whether its context was complete, and its label (1 converted, 0 disqualified or
    lost, null not yet) by the label policy."""
    scored = a.scan("LeadScored", f).select(
        key(), "score", "probability", "model_version", "context_complete", "occurred_at")
    latest = keep_leads(scored, a, f).sort("occurred_at").filter(pl.col("k").is_last_distinct())
    statuses = a.scan("LeadStatusChanged", since(f)).filter(
        pl.col("new_status").is_in((*m.positive, *m.negative))).select(key(), "new_status")
    label = statuses.group_by("k").agg(
        positive=pl.col("new_status").is_in(m.positive).any(),
        negative=pl.col("new_status").is_in(m.negative).any())
    return latest.join(label, on="k", how="left").with_columns(
        label=pl.when(pl.col("positive")).then(1).when(pl.col("negative")).then(0)
        .otherwise(None).cast(pl.Int8),
    ).drop("positive", "negative").collect()


def score_distribution(s: pl.DataFrame, width: int = 5) -> pl.DataFrame:
    """Leads per score band of ``width`` points, converted vs disqualified/lost."""
    return s.filter(pl.col("label").is_not_null()).group_by(
        band=(pl.col("score") // width * width).cast(pl.Int32),
        outcome=pl.when(pl.col("label") == 1).then(pl.lit("converted"))
        .otherwise(pl.lit("disqualified or lost")),
    ).agg(leads=pl.len()).sort("band", "outcome")


def calibration(s: pl.DataFrame, bins: int = 10) -> pl.DataFrame:
    """Live calibration: per probability decile of labelled leads, the mean predicted
    probability against the share that converted."""
    return s.filter(pl.col("label").is_not_null()).group_by(
        bin=(pl.col("probability") * bins).floor().clip(0, bins - 1).cast(pl.Int8)
    ).agg(expected=pl.col("probability").mean(), observed=pl.col("label").mean(),
          leads=pl.len()).sort("bin")


def threshold_rows(s: pl.DataFrame) -> list[Row]:
    """``models.thresholds.table`` over the scored leads with complete context (only they can
    be handed over), computed in polars: one pass, the same definitions, the same rows."""
    eligible = s.filter(pl.col("context_complete"))
    if eligible.height < 2:
        raise ValueError("fewer than two scored leads with complete context in the window")
    times = eligible["occurred_at"]
    window_ms = (times.max() - times.min()).total_seconds() * 1000  # type: ignore[union-attr]
    if window_ms <= 0:
        raise ValueError("all scored leads have the same time: no window to scale from")
    points = (pl.col("probability") * 100 + 0.5).floor().clip(0, 100).cast(pl.Int32)
    per = eligible.group_by(t=points).agg(
        n=pl.len(), mass=pl.col("probability").sum(), known=pl.col("label").is_not_null().sum(),
        hits=(pl.col("label") == 1).sum())
    grid = pl.DataFrame({"t": pl.int_range(0, 101, eager=True).cast(pl.Int32)})
    per = grid.join(per, on="t", how="left").fill_null(0).sort("t", descending=True)
    per = per.with_columns(pl.col("n", "mass", "known", "hits").cum_sum()).sort("t")
    scale = MONTH_MS / window_ms
    all_hits = int(eligible.filter(pl.col("label") == 1).height)
    rows = []
    for r in per.iter_rows(named=True):
        n, k = int(r["n"]), int(r["known"])
        rows.append(Row(
            threshold=int(r["t"]), leads=n, mqls_per_month=n * scale,
            dq_rate=1.0 - r["mass"] / n if n else None,
            conversions_per_month=r["mass"] * scale, labelled=k,
            precision=r["hits"] / k if k else None,
            recall=r["hits"] / all_hits if all_hits else None,
        ))
    return rows


def threshold_explorer(s: pl.DataFrame, m: ModelContext) -> dict[str, Any]:
    """Per threshold: volume, precision, recall, expected DQ rate; the recommended one (by
    ``models.thresholds.recommend``) and the command that applies it."""
    rows = threshold_rows(s)
    rec = thresholds.recommend(
        rows, min_mqls_per_month=m.min_mqls_per_month, max_dq_rate=m.max_dq_rate,
        capacity_per_month=m.capacity_per_month, prefer=m.prefer,  # type: ignore[arg-type]
    )
    command = (f'leadflow threshold apply {rec.threshold} --reason "recommended on the '
               f'dashboard ({rec.row.mqls_per_month:.0f} MQLs/month expected)"')
    return {"table": pl.DataFrame([r.as_dict() for r in rows]), "recommended": rec.threshold,
            "current": m.threshold, "reason": rec.reason, "satisfied": rec.satisfied,
            "command": command}


def _registry(root: Path) -> Any:
    from models.registry import Registry

    return Registry(root)


def model_versions(a: Archive, m: ModelContext) -> pl.DataFrame:
    """Every model version: from the registry (status, holdout metrics) and from what was
    published on models.scoring (archive), with the leads each one scored."""
    published = a.scan("ModelPublished").select(
        "model_version", "kind", "created_at", "metrics").unique(
        "model_version", keep="last").collect()
    scored = a.scan("LeadScored").group_by("model_version").agg(leads_scored=pl.len()).collect()
    rows: dict[str, dict[str, Any]] = {}
    for r in published.iter_rows(named=True):
        metrics = json.loads(r["metrics"] or "{}")
        rows[r["model_version"]] = {"version": r["model_version"], "kind": r["kind"],
                                    "created_at": r["created_at"], "status": "published",
                                    **_metric_cols(metrics)}
    registry = _registry(m.registry_root)
    champion = registry.champion()
    for meta in registry.list():
        rows[meta["version"]] = {
            "version": meta["version"], "kind": meta["kind"],
            "created_at": datetime.fromtimestamp(meta["created_at"] / 1000).astimezone(),
            "status": meta["status"] + (" (champion)" if meta["version"] == champion else ""),
            **_metric_cols(meta.get("metrics") or {}),
        }
    schema = {"version": pl.String, "kind": pl.String,
              "created_at": pl.Datetime("ms", "UTC"), "status": pl.String,
              **{k: pl.Float64 for k in _METRICS}}
    out = pl.DataFrame(list(rows.values()), schema=schema, strict=False)
    return out.join(scored.rename({"model_version": "version"}), on="version", how="left").sort(
        "created_at")


_METRICS = ("roc_auc", "pr_auc", "brier", "ece", "labels")


def _metric_cols(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    out = {k: metrics.get(k) for k in _METRICS[:-1]}
    labels = (metrics.get("positives") or 0) + (metrics.get("negatives") or 0)
    return {**out, "labels": labels or None}


def live_weights(a: Archive, m: ModelContext, top: int = 20) -> tuple[str, pl.DataFrame]:
    """(which model, its weights by size): the registry's champion, else the latest model
    published on models.scoring, else the configured points table. ``source`` tells a
    team's custom attributes (``attr:...``) from leadflow's own fields."""
    registry = _registry(m.registry_root)
    champion = registry.champion()
    if champion is not None:
        name, weights = champion, registry.published(champion).get("weights") or {}
    else:
        latest = a.scan("ModelPublished").sort("occurred_at").select(
            "model_version", "weights").tail(1).collect()
        if latest.height:
            name, weights = latest["model_version"][0], json.loads(latest["weights"][0] or "{}")
        else:
            name, weights = "points (leadflow.toml)", dict(m.points)
    frame = pl.DataFrame({"feature": list(weights), "weight": [float(w) for w in
                                                                weights.values()]},
                         schema={"feature": pl.String, "weight": pl.Float64})
    frame = frame.sort(pl.col("weight").abs(), descending=True).head(top)
    frame = frame.with_columns(
        source=pl.when(pl.col("feature").str.starts_with("attr:"))
        .then(pl.lit("custom attribute")).otherwise(pl.lit("leadflow field")))
    return name, frame


def registry_calibration(m: ModelContext) -> pl.DataFrame:
    """The champion's holdout calibration table from the registry (empty without one)."""
    registry = _registry(m.registry_root)
    champion = registry.champion()
    table = registry.metadata(champion).get("calibration") or [] if champion else []
    return pl.DataFrame(table, schema={"expected": pl.Float64, "observed": pl.Float64,
                                       "count": pl.Int64}, strict=False)


def data_team(a: Archive, f: Filters, m: ModelContext) -> dict[str, Any]:
    s = scored_leads(a, f, m)
    try:
        explorer: dict[str, Any] | None = threshold_explorer(s, m)
    except ValueError:
        explorer = None
    model, weights = live_weights(a, m)
    return {
        "versions": model_versions(a, m), "distribution": score_distribution(s),
        "calibration": calibration(s), "holdout_calibration": registry_calibration(m),
        "explorer": explorer, "live_model": model, "weights": weights,
        "scored": s.height, "labelled": int(s["label"].is_not_null().sum()),
    }


# --- Pipeline health ---------------------------------------------------------------------


# Arrival-time buckets: the finest that keeps a chart to at most about 1,500 points, by
# how long the window's events took to arrive (less than so many seconds of wall clock).
BUCKETS: tuple[tuple[int, int], ...] = ((900, 1), (86_400, 60), (14 * 86_400, 3600))
DAY_S = 86_400
BUCKET_NAMES = {1: "second", 60: "minute", 3600: "hour", DAY_S: "day"}


def throughput(a: Archive, f: Filters) -> pl.DataFrame:
    """Events per second by topic as they arrived: counted per bucket of wall-clock arrival
    time, ``_timestamp`` (the Kafka record's time, when leadflow received the event), not of
    event time, so a simulation that compresses a week into two minutes shows the rate it
    really ran at. The sidebar's dates (event time) pick the events. A bucket is a second
    when the window's events arrived within a quarter of an hour (a live demo), a minute up
    to a day, an hour up to two weeks, a day beyond; ``bucket_s`` says which."""
    empty = pl.DataFrame(schema={"topic": pl.String, "at": pl.Datetime("ms", "UTC"),
                                 "events": pl.UInt32, "per_s": pl.Float64,
                                 "bucket_s": pl.Int32})
    if a.days() is None:
        return empty
    topics = pl.Enum(list(layout.ARCHIVED))
    # One query, one read of the arrival times: the span picks the bucket width in it (a
    # first pass for the span alone read the column twice, ~1.7x the time).
    lf = pl.concat([a.scan(record, f).select(ms=pl.col("_timestamp").dt.epoch("ms"),
                                             topic=pl.lit(topic, topics))
                    for topic, record in layout.ARCHIVED.items()])
    span = pl.col("ms").max() - pl.col("ms").min()
    width = pl.lit(DAY_S)
    for most, seconds in reversed(BUCKETS):
        width = pl.when(span < most * 1000).then(seconds).otherwise(width)
    out = lf.with_columns(w=width.cast(pl.Int64) * 1000).group_by(
        "topic", at=pl.col("ms") // pl.col("w") * pl.col("w")).agg(
        events=pl.len(), w=pl.col("w").first()).collect()
    if out.is_empty():
        return empty
    return out.select(
        pl.col("topic").cast(pl.String), pl.col("at").cast(pl.Datetime("ms", "UTC")),
        pl.col("events").cast(pl.UInt32), per_s=pl.col("events") * 1000 / pl.col("w"),
        bucket_s=(pl.col("w") // 1000).cast(pl.Int32)).sort("at", "topic")


def dead_letters(a: Archive, f: Filters, samples: int = 5) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(count per error code and source topic; the latest ``samples`` letters per code)."""
    lf = a.scan("DeadLetter", f).select(
        "event_id", "error_code", "detail", "field", "source_topic", "source_partition",
        "source_offset", "original_value", "observed_at")
    counts, latest = pl.collect_all([
        lf.group_by("error_code", "source_topic").agg(letters=pl.len()).sort(
            "letters", descending=True),
        lf.sort("observed_at", descending=True).group_by("error_code").head(samples),
    ])
    return counts, latest.sort("error_code", "observed_at", descending=[False, True])


def retrain_history(a: Archive, m: ModelContext) -> pl.DataFrame:
    """Every retrain attempt and registry decision on disk, and every model published on
    models.scoring, newest first."""
    from models.retrain import history as retrains

    rows: list[dict[str, Any]] = []
    for r in retrains(m.registry_root):
        rows.append({"at": r.get("at"), "what": f"retrain {r.get('status')}",
                     "version": r.get("version"), "by": r.get("by"), "why": r.get("reason")})
    for r in _registry(m.registry_root).history():
        rows.append({"at": r.get("at"), "what": r.get("action"), "version": r.get("version"),
                     "by": r.get("by"), "why": r.get("reason")})
    published = a.scan("ModelPublished").select("model_version", "occurred_at").collect()
    for version, at in published.iter_rows():
        rows.append({"at": int(at.timestamp() * 1000), "what": "published on models.scoring",
                     "version": version, "by": "worker", "why": None})
    schema = {"at": pl.Int64, "what": pl.String, "version": pl.String, "by": pl.String,
              "why": pl.String}
    out = pl.DataFrame(rows, schema=schema, strict=False)
    return out.with_columns(at=pl.col("at").cast(pl.Datetime("ms", "UTC"))).sort(
        "at", descending=True)


def worker_lag(stats: Mapping[str, Any] | None, now_ms: int) -> pl.DataFrame:
    """Per partition from a worker's GET /v1/stats: its SLA event-time clock, how far that
    is behind the wall clock, the inputs it still waits for, and any consumer lag the worker
    reports (``consumer_lag``: topic → partition → records behind)."""
    schema = {"partition": pl.String, "event_time": pl.Datetime("ms", "UTC"),
              "behind_s": pl.Float64, "waiting_for": pl.String}
    if not stats:
        return pl.DataFrame(schema=schema)
    rows = []
    for p, clock in (stats.get("sla_clocks") or {}).items():
        at = clock.get("event_time")
        rows.append({"partition": str(p), "event_time": at,
                     "behind_s": None if at is None else (now_ms - at) / 1000,
                     "waiting_for": ", ".join(clock.get("waiting_for") or ())})
    return pl.DataFrame(rows, schema=schema, strict=False)


def consumer_lag(stats: Mapping[str, Any] | None) -> pl.DataFrame:
    rows: Iterable[tuple[str, str, int]] = (
        (topic, str(p), int(n))
        for topic, parts in ((stats or {}).get("consumer_lag") or {}).items()
        for p, n in parts.items()
    )
    return pl.DataFrame(list(rows), schema={"topic": pl.String, "partition": pl.String,
                                            "behind": pl.Int64}, orient="row")


def pipeline(a: Archive, f: Filters, m: ModelContext) -> dict[str, Any]:
    counts, samples = dead_letters(a, f)
    return {"throughput": throughput(a, f), "dead_letters": counts, "samples": samples,
            "retrains": retrain_history(a, m)}
