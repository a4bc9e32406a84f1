"""Which MQL threshold fits the SLA contract and sales capacity, and applying one.

Input: the calibrated probabilities of the leads scored over a window (handed over or not:
the ones never handed over say what a lower threshold would add) and, where known, their
labels. For every threshold t = 0..100 score points, over the leads whose score
(``scorer.to_score(p)``) is >= t:

- ``mqls_per_month``: their number scaled from the window to a month (365.25/12 days);
- ``dq_rate``: the expected share of them sales will NOT accept, 1 − mean p. With the
  default labels a negative is DISQUALIFIED, BAD_FIT or CLOSED_LOST, so this bounds the
  SLA's disqualification rate from above (a lost deal is not a disqualification);
- ``conversions_per_month``: Σ p, scaled to a month;
- ``precision`` / ``recall`` over the labelled leads (None without labels).

Leads never handed over were not in the training data: their probabilities are the model's
extrapolation, fine for volumes, less sure for rates. Score points are monotone in p, so
raising t only ever removes the least likely leads: volume, expected DQ rate and recall
never increase with t.

Applying a threshold is explicit and recorded: ``apply`` appends a numbered entry to
``thresholds.jsonl`` under the root; ``current`` is the latest (None: the configuration's).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from models.registry import append_jsonl, locked, read_jsonl
from models.scorer import to_score
from streams.core.features import held_back
from streams.core.handoff import Model

MONTH_MS = 365.25 / 12 * 86_400_000
HISTORY = "thresholds.jsonl"
MIN_MQLS, MAX_DQ, CAPACITY = "min_mqls", "max_dq_rate", "capacity"
DEFAULT_MIN_MQLS = 250
DEFAULT_MAX_DQ_RATE = 0.30


@dataclass(frozen=True, slots=True)
class Row:
    threshold: int
    leads: int  # scored leads in the window at/above the threshold
    mqls_per_month: float
    dq_rate: float | None  # None: no lead at/above
    conversions_per_month: float
    labelled: int  # of ``leads``, those with a known label
    precision: float | None  # None: no labelled lead at/above
    recall: float | None  # None: no labelled positive at all

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def table(
    probabilities: Sequence[float],
    window_ms: float,
    labels: Sequence[int | None] | None = None,
) -> list[Row]:
    """One ``Row`` per threshold 0..100 (see module doc)."""
    if window_ms <= 0:
        raise ValueError("the window must be longer than 0 ms")
    if labels is not None and len(labels) != len(probabilities):
        raise ValueError("labels and probabilities must have the same length")
    count = [0] * 101
    mass = [0.0] * 101
    known = [0] * 101
    hits = [0] * 101
    for i, p in enumerate(probabilities):
        s = to_score(p)
        count[s] += 1
        mass[s] += p
        label = labels[i] if labels is not None else None
        if label is not None:
            known[s] += 1
            hits[s] += int(label)
    per_month = MONTH_MS / window_ms
    all_hits = sum(hits)
    rows: list[Row] = []
    n = m = k = h = 0.0
    for t in range(100, -1, -1):  # suffix sums: the leads at/above t
        n += count[t]
        m += mass[t]
        k += known[t]
        h += hits[t]
        rows.append(Row(
            threshold=t,
            leads=int(n),
            mqls_per_month=n * per_month,
            dq_rate=1.0 - m / n if n else None,
            conversions_per_month=m * per_month,
            labelled=int(k),
            precision=h / k if k else None,
            recall=h / all_hits if all_hits else None,
        ))
    rows.reverse()
    return rows


@dataclass(frozen=True)
class Recommendation:
    threshold: int
    satisfied: bool  # all three constraints hold at ``threshold``
    failing: tuple[str, ...]  # the constraints it breaks (MIN_MQLS, MAX_DQ, CAPACITY)
    reason: str
    row: Row

    def as_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "satisfied": self.satisfied,
                "failing": list(self.failing), "reason": self.reason, "row": self.row.as_dict()}


def _checks(
    row: Row, min_mqls: float, max_dq: float, capacity: float | None
) -> dict[str, bool]:
    return {
        MIN_MQLS: row.mqls_per_month >= min_mqls,
        MAX_DQ: row.dq_rate is not None and row.dq_rate <= max_dq,
        CAPACITY: capacity is None or row.mqls_per_month <= capacity,
    }


def recommend(
    rows: Sequence[Row],
    *,
    min_mqls_per_month: float = DEFAULT_MIN_MQLS,
    max_dq_rate: float = DEFAULT_MAX_DQ_RATE,
    capacity_per_month: float | None = None,
    prefer: Literal["quality", "volume"] = "quality",
) -> Recommendation:
    """The highest threshold that gives >= ``min_mqls_per_month`` MQLs, an expected DQ rate
    <= ``max_dq_rate`` and no more MQLs than sales' ``capacity_per_month`` (None: no limit).

    When no threshold meets all three, capacity is kept (sales cannot work more leads than
    they have people for) and one of the marketing clauses gives: with ``prefer="quality"``
    the DQ ceiling is kept and the lowest such threshold gives the most volume it can;
    with ``prefer="volume"`` the volume floor is kept and the highest such threshold gives
    the best quality it can. If only capacity can hold, the lowest threshold within it;
    if not even capacity, 100.
    """
    if not rows or not any(r.leads for r in rows):
        raise ValueError("no scored leads in the window: nothing to recommend from")
    checks = [_checks(r, min_mqls_per_month, max_dq_rate, capacity_per_month) for r in rows]
    names = {
        MIN_MQLS: f">= {min_mqls_per_month:g} MQLs/month",
        MAX_DQ: f"DQ rate <= {max_dq_rate:.0%}",
        CAPACITY: "no capacity limit" if capacity_per_month is None
        else f"<= {capacity_per_month:g} MQLs/month (sales capacity)",
    }

    def where(*keys: str) -> list[int]:
        return [i for i, c in enumerate(checks) if all(c[k] for k in keys)]

    def result(i: int, why: str) -> Recommendation:
        failing = tuple(k for k in (MIN_MQLS, MAX_DQ, CAPACITY) if not checks[i][k])
        return Recommendation(rows[i].threshold, not failing, failing, why, rows[i])

    ok = where(MIN_MQLS, MAX_DQ, CAPACITY)
    if ok:
        return result(ok[-1], "highest threshold meeting " + ", ".join(names.values()))
    kept_dq = where(MAX_DQ, CAPACITY)
    kept_volume = where(MIN_MQLS, CAPACITY)
    order = [(kept_dq, 0), (kept_volume, -1)]
    if prefer == "volume":
        order.reverse()
    for found, pick in order:
        if found:
            i = found[pick]
            lost = [names[k] for k in (MIN_MQLS, MAX_DQ) if not checks[i][k]]
            r = rows[i]
            dq = "n/a" if r.dq_rate is None else f"{r.dq_rate:.1%}"
            return result(i, (
                f"no threshold meets every constraint; {', '.join(lost)} cannot hold with "
                f"the others: threshold {r.threshold} gives {r.mqls_per_month:.0f} "
                f"MQLs/month at an expected DQ rate of {dq} (preferring {prefer})"
            ))
    within = where(CAPACITY)
    if within:
        return result(within[0], "neither the volume floor nor the DQ ceiling can hold "
                      "within sales capacity: the lowest threshold within capacity")
    return result(len(rows) - 1, "even threshold 100 exceeds sales capacity: the highest")


def changes(rows: Sequence[Row], current: int, proposed: int) -> dict[str, dict[str, Any]]:
    """What applying ``proposed`` instead of ``current`` changes, metric by metric:
    {"current", "proposed", "delta"} (delta None where either side is undefined)."""
    by_t = {r.threshold: r for r in rows}
    if current not in by_t or proposed not in by_t:
        raise ValueError("thresholds must be in the table (0..100)")
    a, b = by_t[current].as_dict(), by_t[proposed].as_dict()
    out: dict[str, dict[str, Any]] = {}
    for key in a:
        x, y = a[key], b[key]
        out[key] = {"current": x, "proposed": y,
                    "delta": None if x is None or y is None else y - x}
    return out


def from_examples(
    examples: Iterable[Mapping[str, Any]],
    model: Model,
    *,
    window_ms: float | None = None,
) -> tuple[list[float], list[int | None], float]:
    """(probabilities, labels, window_ms) of recent scored leads (the feedback agent's
    examples), rescored with ``model``. Leads held back (no lawful basis) are left out:
    they are not handed over, whatever the threshold (imported history excepted: sales had
    it). Without ``window_ms`` the window is the
    longer span of their ``scored_at`` and their ``handed_over_at``."""
    probabilities: list[float] = []
    labels: list[int | None] = []
    times: list[int] = []
    handed: list[int] = []
    for e in examples:
        features = e.get("features")
        # History was handed over in its own past, whatever leadflow's rules say now.
        if not features or (held_back(features) and not e.get("historic")):
            continue
        probabilities.append(model.score(features).probability)
        label = e.get("label")
        labels.append(int(label) if label in (0, 1) else None)
        if e.get("scored_at") is not None:
            times.append(int(e["scored_at"]))
        if e.get("handed_over_at") is not None:
            handed.append(int(e["handed_over_at"]))
    if window_ms is None:
        # Imported history may be scored at one moment yet span months of handovers.
        if len(probabilities) < 2:
            raise ValueError(f"cannot tell the window from {len(probabilities)} scored "
                             "lead(s): too few in the window")
        spans = [max(t) - min(t) for t in (times, handed) if len(t) >= 2]
        if not spans or max(spans) <= 0:
            raise ValueError("cannot tell the window, the period these leads cover (none "
                             "scored or handed over at different times, e.g. history "
                             "imported without dates): pass the period (--period 90d)")
        window_ms = float(max(spans))
    return probabilities, labels, window_ms


def history(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return read_jsonl(Path(root) / HISTORY)


def current(root: str | os.PathLike[str]) -> int | None:
    """The applied threshold (None: none applied, use the configuration's)."""
    entries = history(root)
    return int(entries[-1]["threshold"]) if entries else None


def apply(
    root: str | os.PathLike[str],
    threshold: int,
    by: str,
    reason: str,
    *,
    expected: Mapping[str, Any] | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """Record ``threshold`` as the applied one (a new numbered version); return the entry.
    ``expected``: what the table promised for it, kept to compare with what happens."""
    if not isinstance(threshold, int) or isinstance(threshold, bool) or not 0 <= threshold <= 100:
        raise ValueError(f"a threshold is an integer 0..100 score points, not {threshold!r}")
    if not by or not reason:
        raise ValueError("applying a threshold needs who (by) and why (reason)")
    path = Path(root)
    with locked(path):
        entries = history(path)
        entry = {
            "version": len(entries) + 1,
            "threshold": threshold,
            "previous": int(entries[-1]["threshold"]) if entries else None,
            "by": by,
            "reason": reason,
            "at": time.time_ns() // 1_000_000 if now_ms is None else now_ms,
            "expected": dict(expected) if expected is not None else None,
        }
        append_jsonl(path / HISTORY, entry)
    return entry
