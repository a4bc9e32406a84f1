"""A realistic synthetic funnel with hidden ground truth, and the senders that replay it.

``generate`` is pure and deterministic for a seed and the handoff rules (by default the
configured ones): the simulated reps are the routing configuration's reps, sales only works
the leads those rules hand over, every source delivers with a delay of its own
(``DELAY_PROFILES``), and the truth holds the SLA verdict the engine must reach per lead and
clause (``Scenario.expected_verdicts``) and which final verdicts late evidence corrects
(``Scenario.expected_corrections``). ``write_truth`` stores what the engine and the models
should find; ``send_http`` / ``send_kafka`` deliver a scenario to a running leadflow (they
import aiohttp / aiokafka only when called).
"""

from streams.simulate.delays import PROFILES as DELAY_PROFILES
from streams.simulate.http_sender import send_http
from streams.simulate.kafka_sender import kafka_plan, send_kafka
from streams.simulate.model import (
    BAD_KINDS,
    DEFAULT_BAD_MIX,
    DUPLICATE,
    KAFKA_ONLY,
    OK,
    Campaign,
    Delivery,
    LeadTruth,
    Rep,
    Scenario,
)
from streams.simulate.report import Mismatch, SendReport
from streams.simulate.sales import LEGAL_NEXT
from streams.simulate.scenario import generate
from streams.simulate.truth import corrections_of, read_truth, verdicts_of, write_truth

__all__ = [
    "BAD_KINDS",
    "DEFAULT_BAD_MIX",
    "DELAY_PROFILES",
    "DUPLICATE",
    "KAFKA_ONLY",
    "LEGAL_NEXT",
    "OK",
    "Campaign",
    "Delivery",
    "LeadTruth",
    "Mismatch",
    "Rep",
    "Scenario",
    "SendReport",
    "corrections_of",
    "generate",
    "kafka_plan",
    "read_truth",
    "send_http",
    "send_kafka",
    "verdicts_of",
    "write_truth",
]
