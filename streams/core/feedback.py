"""Training examples: a lead's sales disposition (the label) joined with its features as they
were when sales got the lead.

Pure, like the rest of the handoff: ``example_of`` reads the per-lead state the intake keeps
(``features``, ``scored``, ``mql_at``, ``mql_features``, ``lifecycle``, ``inputs``,
``historic``) after an event has been applied, and returns the example that event made due,
or None. It notes what it returned in ``state["example"]`` so that the same example is never
due twice; call it once per applied event and send what it returns.

Which features (never the current ones of a handed-over lead: activity after the handover is
sales' doing, and would leak the outcome into the example):

- a lead leadflow handed over: ``mql_features``, frozen at its MQL moment;
- a lead sales disposed without leadflow's MQL (imported history that never crossed, a lead a
  rep picked up by hand): its marketing inputs refolded up to (excluding) its first *sales*
  status change — any status but NEW and MQL, which are marketing's. ``handed_over_at`` is
  that change: the moment sales had the lead. (Refolded from the inputs and statuses read
  by then: an earlier-dated activity or status read after the example was sent does not make
  another one.)

When an example is due:

- **labelled** (1/0): the lead's latest labelled disposition in event time (a status the
  label policy maps to 1 or 0, reported by the CRM). Due when its label differs from the last
  example sent: SQL then CLOSED_WON is one positive example, SQL then CLOSED_LOST is a
  positive one then a negative one. A lead reopened and disposed again: the latest
  disposition wins. Once labelled, a lead stays labelled (a reopened lead keeps its last
  verdict until sales gives another). The one exception to one example per label: a lead
  whose disposition is read before leadflow hands it over (its marketing events come on other
  topics, read in their own time) first gets the refolded features, then ``mql_features`` once
  the handover is read — one corrected example, at most, per label. It happens only when a
  lead's topics are read out of event-time order (a replayed backlog); the compacted topic and
  the store keep the latest.
- **volume only** (label None): leads scored but never disposed, so thresholds can tell
  what a lower threshold would add. Due once the capture has been read and the MQL context
  is complete (a lead without it can never be handed over, whatever the threshold), then
  again each time the score first reaches a higher 10-point band (at most 10 per lead,
  typically 1-3: a lead's volume is counted within 10 points of its best score, at the cost
  of a few small messages, never one per activity), and once at the handover (features then
  frozen; bands no longer matter).

Nothing is due before the lead's capture has been read (as for the handoff itself).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

import orjson

from streams.core import features as feats
from streams.core.contract import EVENT_NAMESPACE, epoch_ms

State = dict[str, Any]
Example = dict[str, Any]

# Statuses marketing sets (the MAP's MQL sync included); any other change is sales at work.
MARKETING_STATUSES = frozenset({"NEW", "MQL"})
BAND = 10  # score points per volume band
MQL, SALES = "mql", "sales"  # where an example's features come from
_TIMES = ("handed_over_at", "disposed_at", "scored_at", "occurred_at")


class Labels(Protocol):
    """What decides labels (``models.labels.LabelPolicy`` is one)."""

    def label_of(self, status: str | None) -> int | None: ...


def _example_id(lead_id: str, what: str) -> str:
    # The handoff's derived_id scheme (a replay derives the same example with the same id).
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{lead_id}/example/{what}"))


def _sales_changes(lifecycle_state: State | None) -> list[dict[str, Any]]:
    """The CRM's own changes, in event-time order (the state keeps them sorted)."""
    return [
        c for c in (lifecycle_state or {}).get("changes", ())
        if not c.get("system") and c["to"] not in MARKETING_STATUSES
    ]


def disposition(
    lifecycle_state: State | None, labels: Labels
) -> tuple[int, dict[str, Any]] | None:
    """(label, change) of the latest change the policy labels, or None."""
    for change in reversed((lifecycle_state or {}).get("changes", ())):
        if change.get("system"):
            continue
        label = labels.label_of(change["to"])
        if label is not None:
            return label, change
    return None


def features_before(inputs: Iterable[feats.Input], at: int) -> feats.Features | None:
    """The features folded from the marketing ``inputs`` dated strictly before ``at``
    (None: none were). Strictly: an activity at the very moment of a sales change may be its
    effect."""
    out: feats.Features | None = None
    for item in sorted(inputs, key=lambda i: i[0]):
        if item[0] >= at:
            break
        out = feats.apply(out, item)
    return out


def _frozen(state: State, change: dict[str, Any]) -> tuple[str, int, feats.Features] | None:
    """(where from, handed_over_at, features) as sales got the lead that ``change`` disposed
    of, or None when unknown yet."""
    if state.get("mql_at") is not None:
        return MQL, int(state["mql_at"]), state["mql_features"]
    sales = _sales_changes(state.get("lifecycle"))
    first_sales_at = min([c["occurred_at"] for c in sales] + [change["occurred_at"]])
    refold = features_before(state.get("inputs") or (), first_sales_at)
    if refold is None or refold["profile_at"] is None:
        return None  # no capture before sales acted: nothing to learn firmographics from
    return SALES, first_sales_at, refold


def example_of(state: State, label_policy: Labels) -> Example | None:
    """The example ``state`` makes due now (see module doc), or None; marks it sent."""
    features = state.get("features")
    scored = state.get("scored")
    if not features or features.get("profile_at") is None or scored is None:
        return None
    sent = state.get("example")
    labelled = disposition(state.get("lifecycle"), label_policy)
    label: int | None = None
    change: dict[str, Any] | None = None
    band: int | None = None
    source: str | None
    handed: int | None
    chosen: feats.Features
    if labelled is not None:
        label, change = labelled
        frozen = _frozen(state, change)
        if frozen is None:
            return None
        source, handed, chosen = frozen
        if sent is not None and sent["label"] == label and sent["source"] == source:
            return None
        at = int(change["occurred_at"])
    elif state.get("mql_at") is not None:
        source, handed, chosen = MQL, int(state["mql_at"]), state["mql_features"]
        if sent is not None and sent["source"] == MQL:
            return None
        at = handed
    else:
        if feats.held_back(features):
            return None
        band = min(int(scored["score"]), 100) // BAND
        if sent is not None and sent["band"] is not None and band <= sent["band"]:
            return None
        source, handed, chosen = None, None, features
        at = int(scored["at"])
    lead_id = state["lead_id"]
    # The disposition's own id: a label given again after a reopening is a new event.
    what = f"{label}/{handed}/{band if change is None else change['event_id']}"
    state["example"] = {"label": label, "source": source, "band": band}
    # A copy through JSON: the state keeps mutating in place after this returns.
    frozen_features = orjson.loads(orjson.dumps(chosen))
    return {
        "event_id": _example_id(lead_id, what),
        "lead_id": lead_id,
        "handed_over_at": handed,
        "disposed_at": None if change is None else int(change["occurred_at"]),
        "outcome": None if change is None else change["to"],
        "label": label,
        "reason": None if change is None else change.get("reason"),
        "campaign_id": frozen_features.get("campaign_id"),
        "features": frozen_features,
        "score": int(scored["score"]),
        "model_version": str(scored["version"]),
        "scored_at": int(scored["at"]),
        "historic": bool(state.get("historic")),
        "occurred_at": at,
    }


def record_of(example: Example) -> dict[str, Any]:
    """The TrainingExample (Avro) record of an example: features as a JSON string."""
    return {**example, "features": orjson.dumps(example["features"]).decode()}


def example_from_record(record: dict[str, Any]) -> Example:
    """A decoded TrainingExample back to the example format (times as epoch ms)."""
    out = dict(record)
    out["features"] = orjson.loads(record["features"])
    for key in _TIMES:
        value = out.get(key)
        if isinstance(value, datetime):
            out[key] = epoch_ms(value)
    return out
