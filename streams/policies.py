"""The handoff's rules as configured: scoring, routing and the SLA contract.

They live in leadflow.toml beside the [leadflow] settings (sections [scoring], [routing],
[sla]); ``Settings.extra`` carries those sections and this module turns them into the core's
objects, failing at start-up with the offending key rather than mid-stream.
"""

from __future__ import annotations

from streams.core import sla
from streams.core.handoff import Policies
from streams.core.routing import RoutingConfig
from streams.core.scoring import PointsModel, ScoringPolicy
from streams.settings import Settings


def load(settings: Settings) -> Policies:
    extra = settings.extra
    scoring = ScoringPolicy.from_config(extra.get("scoring", {}))
    return Policies(
        scoring=scoring,
        model=PointsModel(scoring),
        routing=RoutingConfig.from_config(extra.get("routing", {})),
        contract=sla.Contract.from_config(extra.get("sla", {})),
    )
