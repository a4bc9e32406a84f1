"""The handoff's rules as configured: scoring, routing, the SLA contract, and what is a label.

They live in leadflow.toml beside the [leadflow] settings (sections [scoring], [routing],
[sla], [model]); ``Settings.extra`` carries those sections and this module turns them into
the core's objects, failing at start-up with the offending key rather than mid-stream.

The MQL threshold in force is ``[scoring] threshold`` until ``leadflow threshold apply``
records another (``models.thresholds.current`` under DATA_DIR/models): an applied threshold is
an explicit, versioned decision and wins over the file.
"""

from __future__ import annotations

import dataclasses

from models.policy import ModelPolicy
from streams.core import sla
from streams.core.handoff import Policies
from streams.core.routing import RoutingConfig
from streams.core.scoring import PointsModel, ScoringPolicy
from streams.settings import Settings


def model_policy(settings: Settings) -> ModelPolicy:
    return ModelPolicy.from_config(settings.extra.get("model"))


def applied_threshold(settings: Settings) -> int | None:
    from models.thresholds import current

    return current(settings.data_path / "models")


def load(settings: Settings) -> Policies:
    extra = settings.extra
    scoring = ScoringPolicy.from_config(extra.get("scoring", {}), extra.get("attributes"))
    applied = applied_threshold(settings)
    if applied is not None:
        scoring = dataclasses.replace(scoring, threshold=applied)
    return Policies(
        scoring=scoring,
        model=PointsModel(scoring),
        routing=RoutingConfig.from_config(extra.get("routing", {})),
        contract=sla.Contract.from_config(extra.get("sla", {})),
        labels=model_policy(settings).labels,
    )
