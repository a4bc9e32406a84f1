"""The model policy: how retraining trains, when a candidate is promoted, what is a label.

From the ``[model]`` section of leadflow.toml (beside ``[scoring]``, ``[routing]``, ``[sla]``),
checked at start-up so a typo fails there, naming its key::

    [model]
    kind = "logistic"            # or "gbm", or "auto": both on the same holdout, the better
                                 # (logistic unless gradient boosting gains > margin)
    margin = 0.005               # ROC AUC a candidate must gain over the champion
    min_labels = 200             # positives + negatives before any promotion
    holdout_share = 0.2          # the latest share of labelled examples held out
    window_days = 90             # recent scored leads a threshold is recommended from
    # capacity_per_month = 400   # MQLs sales can work in a month (default: no limit)
    prefer = "quality"           # when no threshold meets every clause: "quality" | "volume"

    [model.labels]
    positive = ["SQL", "CLOSED_WON"]
    negative = ["DISQUALIFIED", "BAD_FIT", "CLOSED_LOST"]

Light on purpose (no numpy): ``streams.policies`` reads it every time a worker starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.labels import LabelPolicy

KINDS = ("logistic", "gbm", "auto")
PREFER = ("quality", "volume")


def _number(section: Mapping[str, Any], key: str, default: float, low: float,
            high: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"model.{key} must be a number in [{low:g}, {high:g}], not {value!r}")
    return float(value)


@dataclass(frozen=True)
class ModelPolicy:
    kind: str = "logistic"
    margin: float = 0.005
    min_labels: int = 200
    holdout_share: float = 0.2
    window_days: float = 90.0
    capacity_per_month: float | None = None
    prefer: str = "quality"
    labels: LabelPolicy = field(default_factory=LabelPolicy)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> ModelPolicy:
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ValueError("[model] must be a table")
        unknown = set(section) - {
            "kind", "margin", "min_labels", "holdout_share", "window_days",
            "capacity_per_month", "prefer", "labels",
        }
        if unknown:
            raise ValueError(f"model: unknown keys {sorted(unknown)}")
        kind = section.get("kind", "logistic")
        if kind not in KINDS:
            raise ValueError(f"model.kind must be one of {KINDS}, not {kind!r}")
        prefer = section.get("prefer", "quality")
        if prefer not in PREFER:
            raise ValueError(f"model.prefer must be one of {PREFER}, not {prefer!r}")
        min_labels = section.get("min_labels", 200)
        if isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 0:
            raise ValueError(f"model.min_labels must be an integer >= 0, not {min_labels!r}")
        capacity = section.get("capacity_per_month")
        return cls(
            kind=kind,
            # Negative margins are allowed: "promote unless clearly worse" is a policy too.
            margin=_number(section, "margin", 0.005, -1.0, 1.0),
            min_labels=min_labels,
            holdout_share=_number(section, "holdout_share", 0.2, 0.01, 0.99),
            window_days=_number(section, "window_days", 90.0, 1.0, 3660.0),
            capacity_per_month=None if capacity is None
            else _number(section, "capacity_per_month", 0, 1, 1e9),
            prefer=prefer,
            labels=LabelPolicy.from_config(section.get("labels")),
        )
