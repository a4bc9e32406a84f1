"""Custom attributes of simulated leads, with real signal (``generate(attributes=True)``).

Two, like a B2C team's CRM properties: where the lead came in (``lead_origin``, categorical)
and how long the person spent on the site before the form (``time_on_site_s``, numeric,
log-normal). Each shifts the hidden conversion log-odds (``EFFECTS``, and per unit of
log1p(seconds) around its median), so a model that uses them can rank better and the
points model, which does not know them, cannot.

Drawn from their own random stream per lead (seeded by the lead id), so turning them on adds
values without moving any other draw; off (the default), the scenario is byte for byte as
without this module.
"""

from __future__ import annotations

import math
import random

from streams.core.attributes import CATEGORICAL, LOG, NUMERIC, Spec

ORIGINS = ("Landing Page", "API", "Lead Add Form", "Lead Import")
ORIGIN_WEIGHTS = (0.5, 0.3, 0.12, 0.08)
EFFECTS = {"Landing Page": 0.15, "API": 0.0, "Lead Add Form": 0.9, "Lead Import": -0.7}
TIME_EFFECT = 0.45  # per unit of log1p(seconds), around the median
_MEDIAN_LOG = 5.5  # log-seconds: a median visit of ~4 minutes
SPECS = (Spec("lead_origin", CATEGORICAL), Spec("time_on_site_s", NUMERIC, LOG))


def draw(lead_id: str) -> tuple[dict[str, object], float]:
    """(attributes as the API body carries them, their effect on the hidden log-odds before
    the funnel's effect scale)."""
    rng = random.Random(f"attributes/{lead_id}")
    origin = rng.choices(ORIGINS, ORIGIN_WEIGHTS)[0]
    seconds = int(rng.lognormvariate(_MEDIAN_LOG, 1.0)) if rng.random() > 0.15 else 0
    effect = EFFECTS[origin] + TIME_EFFECT * (math.log1p(seconds) - _MEDIAN_LOG)
    return {"lead_origin": origin, "time_on_site_s": seconds}, effect
