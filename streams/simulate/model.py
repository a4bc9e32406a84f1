"""The simulator's data: what is delivered (``Delivery``) and what is secretly true."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

Channel = Literal["lead", "activity", "crm"]
Transport = Literal["any", "kafka"]

OK = "OK"
DUPLICATE = "DUPLICATE"

# Each kind of bad input and the outcome the engine must produce for it (HTTP and Kafka,
# unless ``send_kafka`` has to fall back to raw bytes, see ``kafka_plan``).
BAD_KINDS: dict[str, str] = {
    "malformed_json": "BAD_ENCODING",
    "missing_field": "MISSING_FIELD",
    "invalid_email": "INVALID_EMAIL",
    "consent_missing": "CONSENT_MISSING",
    "unknown_status": "INVALID_ENUM",
    "bad_timestamp": "FIELD_MISMATCH",
    "duplicate": DUPLICATE,
    "out_of_order": OK,
    "garbage_bytes": "BAD_ENCODING",  # Kafka only
    "unknown_schema": "UNKNOWN_SCHEMA",  # Kafka only
}
KAFKA_ONLY = frozenset({"garbage_bytes", "unknown_schema"})
DEFAULT_BAD_MIX: dict[str, float] = {
    "malformed_json": 0.13,
    "missing_field": 0.13,
    "invalid_email": 0.11,
    "consent_missing": 0.11,
    "unknown_status": 0.10,
    "bad_timestamp": 0.10,
    "duplicate": 0.16,
    "out_of_order": 0.08,
    "garbage_bytes": 0.04,
    "unknown_schema": 0.04,
}


@dataclass(slots=True)
class Delivery:
    """One request body as it will be sent, with the outcome the engine must produce.

    ``body`` is exactly what is POSTed (or, on Kafka, what is mapped to a record).
    ``webhook_id`` is the Standard Webhooks message id; CRMs reuse it when they resend, so
    for ``crm`` it is the idempotency key. ``expected`` is an ``ErrorCode`` value, ``"OK"``
    or ``"DUPLICATE"`` (accepted and then dropped, never dead-lettered).
    """

    due_s: float
    channel: Channel
    body: bytes
    webhook_id: str
    lead_id: str | None
    expected: str
    bad_kind: str | None = None
    occurred_ms: int | None = None  # event time (epoch ms) the body claims, if it has one
    transport: Transport = "any"  # "kafka": only ``send_kafka`` sends it (e.g. garbage bytes)

    @property
    def occurred_at(self) -> datetime | None:
        if self.occurred_ms is None:
            return None
        return datetime.fromtimestamp(self.occurred_ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    quality: float  # hidden: additive shift of the true conversion log-odds
    weight: float  # share of lead volume
    trigger: str


@dataclass(frozen=True, slots=True)
class Rep:
    rep_id: str
    regions: tuple[str, ...]
    first_touch_median_min: float
    diligence: float  # probability of recording a status change at all, and how soon
    dq_without_reason: float  # share of disqualifications sent without reason and notes


@dataclass(slots=True)
class LeadTruth:
    """What is really true about one lead; never part of any event."""

    lead_id: str
    email_key: str
    campaign_id: str
    rep_id: str | None
    captured_at: datetime
    probability: float
    converted: bool
    outcome: str  # CLOSED_WON | CLOSED_LOST | DISQUALIFIED (eventual, maybe not yet observed)
    hand_raiser: bool
    alias_of: str | None = None
    final_status: str | None = None  # last status the CRM reported inside the window
    statuses: list[str] = field(default_factory=list)
    good_events: int = 0


@dataclass(slots=True)
class Scenario:
    seed: int
    now: datetime
    start: datetime
    days: float
    compression: float  # event seconds per wall second; 0 = as fast as possible
    deliveries: list[Delivery]
    campaigns: list[Campaign]
    reps: list[Rep]
    truth: dict[str, LeadTruth]

    @property
    def wall_seconds(self) -> float:
        return 0.0 if not self.compression else self.days * 86_400 / self.compression

    def expected_counts(self, transport: Transport = "any") -> Counter[str]:
        """Expected outcomes as generated: ``"any"`` counts what ``send_http`` sends, ``"kafka"``
        every delivery, before ``send_kafka`` turns bodies its mappers refuse into raw bytes
        (``truth.kafka_expected_counts`` applies that)."""
        return Counter(
            d.expected for d in self.deliveries if transport == "kafka" or d.transport == "any"
        )

    def aliases(self) -> list[tuple[str, str]]:
        """(canonical lead id, alias lead id) pairs identity resolution must find."""
        return sorted((t.alias_of, t.lead_id) for t in self.truth.values() if t.alias_of)
