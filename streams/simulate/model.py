"""The simulator's data: what is delivered (``Delivery``) and what is secretly true."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from streams.simulate.verdicts import Judged, latest

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
    # Event time (epoch ms) at which it reaches leadflow: occurred + delivery delay (see
    # ``delays``), what ``due_s`` is in wall seconds.
    delivered_ms: int | None = None

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
    """A rep of the routing configuration (same id) and their hidden habits."""

    rep_id: str
    regions: tuple[str, ...]  # the rep's territories in the routing config (empty = any)
    first_touch_median_min: float
    diligence: float  # probability of recording a status change at all, and how soon
    dq_without_reason: float  # share of disqualifications sent without reason and notes


@dataclass(slots=True)
class LeadTruth:
    """What is really true about one lead; never part of any event.

    The handover fields say what leadflow must decide from the lead's events (the simulator
    replays them through the same core): when the score first crossed the threshold and
    whether the context was complete then, when the lead became an MQL (None: never, so
    sales never saw it), its tier, and the routing decision (``owner`` None: the lead waits
    in ``queue`` and gets no sales events). ``verdicts`` are the SLA verdicts per clause as
    of the scenario's ``now`` ("MET", "BREACHED" or "PENDING" while a deadline + grace is
    still ahead); ``verdicts_final`` what they become once every deadline has passed with
    no further event. ``exact`` is False when bad delivery (out of order) may let the
    engine see the lead's events in another order, so its verdicts may legitimately differ.
    ``sla`` holds, per clause, the final verdict and the event time it becomes known, whether
    an overdue notice comes first, and the correction late evidence brings, if any
    (``verdicts.Judged``; the rules are in ``verdicts``).
    """

    lead_id: str
    email_key: str
    campaign_id: str
    captured_at: datetime
    # Of conversion, given what the person did up to the MQL moment (up to the horizon if it
    # never became one): what sales receives, and what a model can know.
    probability: float
    converted: bool
    outcome: str  # CLOSED_WON | CLOSED_LOST | DISQUALIFIED (eventual, maybe not yet observed)
    hand_raiser: bool
    alias_of: str | None = None
    final_status: str | None = None  # last status the CRM reported inside the window
    statuses: list[str] = field(default_factory=list)
    good_events: int = 0
    crossed_at: datetime | None = None
    context_complete: bool | None = None  # at crossing; None if the score never crossed
    missing: list[str] = field(default_factory=list)  # context missing at crossing
    mql_at: datetime | None = None
    tier: str | None = None
    owner: str | None = None  # the rep leadflow routes the lead to (who then works it)
    queue: str | None = None
    rule: str | None = None
    exact: bool = True
    verdicts: dict[str, str] = field(default_factory=dict)
    verdicts_final: dict[str, str] = field(default_factory=dict)
    sla: dict[str, Judged] = field(default_factory=dict)

    @property
    def reached_sql(self) -> bool:
        """Whether sales eventually takes it to SQL (lost only ever comes after SQL)."""
        return self.outcome in ("CLOSED_WON", "CLOSED_LOST")


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
    sla_version: str = ""  # the contract the verdicts were judged under
    # The handoff rules the scenario was generated for (core.handoff.Policies).
    policies: Any = field(default=None, repr=False, compare=False)
    delays: str = "none"  # the delivery delay profile (``delays.PROFILES``)
    max_lateness_ms: int = 0  # the contract's allowed lateness the truth was judged with

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

    def expected_verdicts(
        self, final: bool = False, *, exact_only: bool = False, corrected: bool = False
    ) -> dict[tuple[str, str], str]:
        """(lead id, clause) → verdict the engine must reach: as of ``now`` ("MET",
        "BREACHED", "PENDING"), or ``final`` once every deadline has passed (no "PENDING").
        ``exact_only`` leaves out leads whose bad delivery may legitimately change them.
        ``corrected``: the verdict in force, a correction known by then replacing the final
        verdict (``verdicts.latest``)."""
        out: dict[tuple[str, str], str] = {}
        now_ms = None if final else int(self.now.timestamp() * 1000)
        for t in self.truth.values():
            if exact_only and not t.exact:
                continue
            if corrected:
                verdicts = latest(t.sla, now_ms)
            else:
                verdicts = t.verdicts_final if final else t.verdicts
            for clause, verdict in verdicts.items():
                out[(t.lead_id, clause)] = verdict
        return out

    def expected_corrections(
        self, *, exact_only: bool = False, known_by: int | None = None
    ) -> dict[tuple[str, str], str]:
        """(lead id, clause) → the verdict a correction must supersede the final one with,
        for the clauses late evidence changes after their final verdict (``known_by``: only
        those known by that event time)."""
        return {
            (t.lead_id, clause): j.correction.verdict
            for t in self.truth.values()
            if t.exact or not exact_only
            for clause, j in t.sla.items()
            if j.correction is not None and (known_by is None or j.correction.known_at <= known_by)
        }

    def verdict_counts(self, final: bool = False) -> dict[str, dict[str, int]]:
        """clause → verdict → number of leads (for a summary)."""
        counts: dict[str, Counter[str]] = {}
        for (_, clause), verdict in self.expected_verdicts(final).items():
            counts.setdefault(clause, Counter())[verdict] += 1
        return {c: dict(sorted(v.items())) for c, v in sorted(counts.items())}

    def aliases(self) -> list[tuple[str, str]]:
        """(canonical lead id, alias lead id) pairs identity resolution must find."""
        return sorted((t.alias_of, t.lead_id) for t in self.truth.values() if t.alias_of)
