"""In-process counters of one worker, served at GET /v1/stats and used by `leadflow up`."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    started_at: float = field(default_factory=time.time)
    received: Counter[str] = field(default_factory=Counter)  # by topic
    internal: Counter[str] = field(default_factory=Counter)  # by topic: routing, marketing, ...
    accepted: Counter[str] = field(default_factory=Counter)  # by kind
    duplicates: Counter[str] = field(default_factory=Counter)  # by kind
    dead_letters: Counter[str] = field(default_factory=Counter)  # by error code
    http_rejected: Counter[str] = field(default_factory=Counter)  # by error code, never on Kafka
    aliases: int = 0
    erased: int = 0  # leads erased (core.erasure) by this worker
    handoff: Counter[str] = field(default_factory=Counter)  # scored, mql, routed, ...
    sla: Counter[str] = field(default_factory=Counter)  # "CLAUSE/VERDICT"
    notified: Counter[str] = field(default_factory=Counter)  # delivered | failed
    # partition → its SLA clock: event time (ms), the inputs it waits for, leads with a deadline
    clocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The router's hold: requests held, up to when they may go, each partition's watermark
    routing: dict[str, Any] = field(default_factory=dict)
    first_event_at: float = 0.0
    last_event_at: float = 0.0
    # When an agent last took work, inbound or internal: the pipeline's work on a backlog
    # ends there, which can be well after its last inbound event (benchmarks divide by it).
    last_work_at: float = 0.0

    def saw_event(self, topic: str, now: float) -> None:
        self.received[topic] += 1
        if not self.first_event_at:
            self.first_event_at = now
        self.last_event_at = self.last_work_at = now

    def saw_internal(self, topic: str, n: int = 1) -> None:
        """Count ``n`` records of one of leadflow's own topics taken by its agent."""
        self.internal[topic] += n
        self.last_work_at = time.time()

    def decided(self, spec: Any, record: dict[str, Any]) -> None:
        """Count a decision the handoff sends (``spec`` is its TopicSpec)."""
        name = spec.name
        if name == "sla.evaluated":
            clause, status = record["clause"], record.get("status", "FINAL")
            if status == "OVERDUE":
                self.sla[f"{clause}/OVERDUE"] += 1
                return
            if status == "CORRECTION":  # the counts hold each clause's latest verdict
                self.sla[f"{clause}/CORRECTION"] += 1
                self.sla[f"{clause}/{'MET' if record['verdict'] != 'MET' else 'BREACHED'}"] -= 1
            self.sla[f"{clause}/{record['verdict']}"] += 1
        elif name == "leadflow.routing":
            self.handoff[{"ROUTE": "mql"}.get(record["action"], record["action"].lower())] += 1
        elif name == "leads.routed":
            self.handoff["routed" if record["owner_id"] else "queued"] += 1
        elif name == "leads.scored":
            self.handoff["scored"] += 1
        elif name == "leadflow.marketing" and not record["complete"]:
            self.handoff["context_incomplete"] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.time() - self.started_at, 3),
            "received": dict(self.received),
            "received_total": sum(self.received.values()),
            "internal": dict(self.internal),
            "internal_total": sum(self.internal.values()),
            "accepted": dict(self.accepted),
            "accepted_total": sum(self.accepted.values()),
            "duplicates": dict(self.duplicates),
            "duplicates_total": sum(self.duplicates.values()),
            "dead_letters": dict(self.dead_letters),
            "dead_letters_total": sum(self.dead_letters.values()),
            "http_rejected": dict(self.http_rejected),
            "aliases": self.aliases,
            "erased": self.erased,
            "handoff": dict(self.handoff),
            "sla": dict(self.sla),
            "notified": dict(self.notified),
            "sla_clocks": {str(p): c for p, c in sorted(self.clocks.items())},
            "routing": self.routing,
            "first_event_at": self.first_event_at,
            "last_event_at": self.last_event_at,
            "last_work_at": self.last_work_at,
        }
