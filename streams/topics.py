"""Every topic leadflow reads or writes: name, contract, key, retention policy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    record: str  # Avro record name under avro/
    key: str  # what the Kafka key holds
    kind: str = ""  # intake kind for inbound topics: lead | activity | status | touch
    compacted: bool = False
    partitions: int | None = None  # None: the `partitions` setting
    # Topic configs leadflow creates the topic with, beyond "compacted" (cleanup.policy).
    config: tuple[tuple[str, str], ...] = ()

    @property
    def topic_configs(self) -> dict[str, str]:
        out = dict(self.config)
        if self.compacted:
            out.setdefault("cleanup.policy", "compact")
        return out

    @property
    def subject(self) -> str:
        # Confluent TopicNameStrategy
        return f"{self.name}-value"


LEADS = TopicSpec("leads.captured", "LeadCaptured", "lead_id", kind="lead")
ACTIVITY = TopicSpec("leads.activity", "ActivityRecorded", "lead_id", kind="activity")
STATUS = TopicSpec("crm.status-changed", "LeadStatusChanged", "lead_id", kind="status")
TOUCHES = TopicSpec("crm.touches", "SalesTouchLogged", "lead_id", kind="touch")
INBOUND = (LEADS, ACTIVITY, STATUS, TOUCHES)

SCORED = TopicSpec("leads.scored", "LeadScored", "lead_id")
ROUTED = TopicSpec("leads.routed", "LeadRouted", "lead_id")
SLA = TopicSpec("sla.evaluated", "SlaEvaluated", "lead_id or campaign id")
# One key ("scoring"): compaction keeps the champion in force, which a restarted worker reads.
MODELS = TopicSpec(
    "models.scoring", "ModelPublished", "model name", compacted=True, partitions=1
)
_DAY_MS = 86_400_000
# Dead letters hold a person's bytes: each has a key of its own (deadletter.key_of: where
# its input came from; the same input rejected again replaces it), so an erasure deletes it
# with a tombstone. Kafka compacts a closed segment within max.compaction.lag.ms and closes
# the active one after a day (at its next append); everything goes after 30 days anyway.
DEAD_LETTERS = TopicSpec(
    "leadflow.dead-letters", "DeadLetter",
    "where its input came from: topic/partition/offset (HTTP: route/event id); a null value "
    "(tombstone): erased", compacted=True,
    config=(("cleanup.policy", "compact,delete"), ("retention.ms", str(30 * _DAY_MS)),
            ("max.compaction.lag.ms", str(_DAY_MS)), ("segment.ms", str(_DAY_MS))),
)
OUTBOUND = (SCORED, ROUTED, SLA, MODELS, DEAD_LETTERS)

# Identity is keyed by the person (a hash of the normalised email): its own partitioning.
IDENTITY_CLAIMS = TopicSpec("leadflow.identity-claims", "IdentityClaim", "identity key")
IDENTITY_RESOLVED = TopicSpec("leadflow.identity-resolved", "IdentityResolved", "lead_id")
# Rep capacity and monthly figures are shared by every lead: one partition each, in order.
ROUTING = TopicSpec("leadflow.routing", "RoutingRequest", "lead_id", partitions=1)
MARKETING = TopicSpec("leadflow.marketing", "MarketingFact", "lead_id", partitions=1)
# Training examples: compacted, so a lead's latest example replaces the earlier ones; one
# partition, so one feedback agent stores them all where retraining reads them.
EXAMPLES = TopicSpec(
    "leadflow.examples", "TrainingExample", "lead_id", compacted=True, partitions=1
)
# Erasures (core.erasure): keyed by lead id for the intake, by identity key (a hash of the
# e-mail) for the identity agent; both read the topic and each takes its own.
ERASURES = TopicSpec("leadflow.erasures", "ErasureRequested", "lead id or identity key")
# Connectors' events that name a vendor's object, not a lead (core.external), and identity's
# answers: keyed by the object's external key (source:type:id), like the link table.
EXTERNAL = TopicSpec("leadflow.external-events", "ExternalEvent", "external key")
INTERNAL = (IDENTITY_CLAIMS, IDENTITY_RESOLVED, ROUTING, MARKETING, EXAMPLES, ERASURES,
            EXTERNAL)

ALL = INBOUND + OUTBOUND + INTERNAL
BY_NAME = {t.name: t for t in ALL}
BY_KIND = {t.kind: t for t in INBOUND}
