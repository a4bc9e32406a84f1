"""An export's training examples without a broker: what the worker's feedback loop makes of
an imported history, computed from the mapped rows directly (``leadflow bench model
--export`` judges a model on a team's own export before anything is imported).

The same rules as ``core.feedback`` for a lead sales disposed without leadflow's MQL (every
imported lead is history): the features are the capture and activities folded
(``core.features``) up to, excluding, its first sales status change, which is its
``handed_over_at``; the label is the latest status the label policy labels. A row whose
final status has no label (NEW, MQL, WORKING) makes no example.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.core import features as feats
from streams.core.contract import epoch_ms
from streams.core.feedback import MARKETING_STATUSES, Labels, features_before
from streams.core.handoff import Model
from streams.importing.rows import MappedRow


def _ms(value: Any) -> int:
    return value if isinstance(value, int) else epoch_ms(value)


def example_of(row: MappedRow, labels: Labels, model: Model) -> dict[str, Any] | None:
    """The training example of one mapped row, or None when it has no label."""
    inputs: list[feats.Input] = []
    statuses: list[tuple[int, str]] = []
    for kind, record in row.records:
        if kind in ("lead", "activity"):
            inputs.append(feats.input_of(kind, record))
        elif kind == "status":
            statuses.append((_ms(record["occurred_at"]), record["new_status"]))
    statuses.sort()
    labelled = [(at, s, label) for at, s in statuses
                if (label := labels.label_of(s)) is not None]
    sales = [at for at, s in statuses if s not in MARKETING_STATUSES]
    if not labelled or not sales:
        return None
    disposed_at, outcome, label = labelled[-1]
    handed = min(sales)
    features = features_before(inputs, handed)
    if features is None or features.get("profile_at") is None:
        return None
    score = model.score(features)
    return {
        "lead_id": row.lead_id, "handed_over_at": handed, "disposed_at": disposed_at,
        "outcome": outcome, "label": label, "reason": None,
        "campaign_id": features.get("campaign_id"), "features": features,
        "score": score.score, "model_version": score.model_version,
        "scored_at": features["last_event_at"], "historic": True, "occurred_at": disposed_at,
    }


def examples(rows: Iterable[MappedRow], labels: Labels, model: Model) -> list[dict[str, Any]]:
    return [e for row in rows if (e := example_of(row, labels, model)) is not None]
