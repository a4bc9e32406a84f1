"""The hidden truth on disk: one JSON Lines file, a summary line then one line per lead.

Line 1 (``"kind": "summary"``): seed, window, the delivery delay profile (``delays``) and how
many deliveries land after ``now``, expected outcome counts per transport, good events per
lead, the canonical/alias pairs identity resolution must find, the campaigns' true quality,
the reps' habits, and the handoff leadflow must decide: MQLs, routing and the SLA verdicts
counted by clause (``sla``: as of ``now``, final, corrections and overdue notices, and the
``max_lateness_ms`` they were judged with). Then ``"kind": "lead"`` lines with each lead's
true conversion probability, eventual outcome, what the CRM showed inside the window, when it
crossed the threshold and became an MQL, its owner or queue, and its SLA verdicts per clause:
``verdicts`` as of ``now``, ``verdicts_final`` once every deadline and the allowed lateness
have passed, and ``sla``, per clause::

    {"verdict": "MET" | "BREACHED",   the final verdict
     "known_at": ms,                  event time (epoch ms) from which the engine can know it
     "overdue": bool,                 whether an overdue notice comes first
     "correction": null | {"verdict": "MET", "known_at": ms,
                           "late_source": "crm", "late_by_ms": ms}}

(the rules are in ``verdicts``; leads with ``exact`` false may legitimately differ).
Nothing here is ever part of an event; it is what the engine and the models are graded on.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from streams.simulate.model import LeadTruth, Scenario


def kafka_expected_counts(scenario: Scenario) -> Counter[str] | None:
    """Expected outcomes when every delivery goes through ``send_kafka`` (None if the
    payload mappers are not importable). Only bad bodies can differ from the HTTP path."""
    try:
        from streams.simulate.kafka_sender import kafka_plan
    except ImportError:  # pragma: no cover - partial installs
        return None
    counts: Counter[str] = Counter()
    for d in scenario.deliveries:
        counts[d.expected if d.bad_kind is None else kafka_plan(d).expected] += 1
    return counts


def summary(scenario: Scenario) -> dict[str, Any]:
    truth = scenario.truth.values()
    kafka = kafka_expected_counts(scenario)
    now_ms = int(scenario.now.timestamp() * 1000)
    return {
        "kind": "summary",
        "seed": scenario.seed,
        "now": scenario.now.isoformat(),
        "start": scenario.start.isoformat(),
        "days": scenario.days,
        "compression": scenario.compression,
        "wall_seconds": scenario.wall_seconds,
        "deliveries": len(scenario.deliveries),
        "delays": scenario.delays,
        "delivered_after_now": sum(
            1 for d in scenario.deliveries if (d.delivered_ms or 0) > now_ms
        ),
        "leads": len(scenario.truth),
        "people": sum(1 for t in truth if t.alias_of is None),
        "expected_http": dict(sorted(scenario.expected_counts("any").items())),
        "expected_kafka": None if kafka is None else dict(sorted(kafka.items())),
        "bad_kinds": dict(
            sorted(Counter(d.bad_kind for d in scenario.deliveries if d.bad_kind).items())
        ),
        "good_events": sum(t.good_events for t in truth),
        "good_events_per_lead": {t.lead_id: t.good_events for t in truth},
        "aliases": [list(pair) for pair in scenario.aliases()],
        "converted": sum(1 for t in truth if t.converted and t.alias_of is None),
        "hand_raisers": sum(1 for t in truth if t.hand_raiser),
        "campaigns": [dataclasses.asdict(c) for c in scenario.campaigns],
        "reps": [dataclasses.asdict(r) for r in scenario.reps],
        "handoff": {
            "crossed": sum(1 for t in truth if t.crossed_at is not None),
            "context_incomplete": sum(1 for t in truth if t.context_complete is False),
            "mqls": sum(1 for t in truth if t.mql_at is not None),
            "routed": sum(1 for t in truth if t.owner is not None),
            "queued": sum(1 for t in truth if t.mql_at is not None and t.owner is None),
            "owners": dict(sorted(Counter(t.owner for t in truth if t.owner).items())),
            "inexact": sum(1 for t in truth if not t.exact),
        },
        "sla": {
            "version": scenario.sla_version,
            "verdicts": scenario.verdict_counts(),
            "verdicts_final": scenario.verdict_counts(final=True),
            "max_lateness_ms": scenario.max_lateness_ms,
            "corrections": dict(sorted(
                Counter(clause for _, clause in scenario.expected_corrections()).items()
            )),
            "overdue": dict(sorted(
                Counter(c for t in truth for c, j in t.sla.items() if j.overdue).items()
            )),
        },
    }


_TIMES = ("captured_at", "crossed_at", "mql_at")


def lead_row(t: LeadTruth) -> dict[str, Any]:
    """One lead's line of the truth file (times as ISO 8601)."""
    row = dataclasses.asdict(t)
    for name in _TIMES:
        if row[name] is not None:
            row[name] = row[name].isoformat()
    return {"kind": "lead", **row}


def write_truth(scenario: Scenario, path: str | os.PathLike[str]) -> Path:
    """Write the truth file atomically (readers never see half of it); return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(json.dumps(summary(scenario), ensure_ascii=False) + "\n")
        for t in scenario.truth.values():
            out.write(json.dumps(lead_row(t), ensure_ascii=False) + "\n")
    os.replace(tmp, target)
    return target


def read_truth(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, lead rows) of a truth file."""
    with Path(path).open(encoding="utf-8") as src:
        head = json.loads(src.readline())
        leads = [json.loads(line) for line in src if line.strip()]
    if head.get("kind") != "summary":
        raise ValueError(f"{path} is not a leadflow truth file (no summary line)")
    return head, leads


def verdicts_of(
    leads: list[dict[str, Any]], final: bool = False, *, exact_only: bool = False
) -> dict[tuple[str, str], str]:
    """(lead id, clause) → expected verdict from the lead rows of a truth file (see
    ``Scenario.expected_verdicts``)."""
    key = "verdicts_final" if final else "verdicts"
    return {
        (row["lead_id"], clause): verdict
        for row in leads
        if row.get("kind", "lead") == "lead" and (row.get("exact", True) or not exact_only)
        for clause, verdict in row.get(key, {}).items()
    }


def corrections_of(
    leads: list[dict[str, Any]], *, exact_only: bool = False
) -> dict[tuple[str, str], str]:
    """(lead id, clause) → corrected verdict from the lead rows of a truth file (see
    ``Scenario.expected_corrections``)."""
    return {
        (row["lead_id"], clause): judged["correction"]["verdict"]
        for row in leads
        if row.get("kind", "lead") == "lead" and (row.get("exact", True) or not exact_only)
        for clause, judged in row.get("sla", {}).items()
        if judged.get("correction")
    }
