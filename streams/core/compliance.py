"""SLA compliance summarised from lead states: by owner, team, tier and campaign.

Each lead state keeps its final verdict per clause (``sla_done``), who owned it and its tier,
so the summary is a fold over the states a worker holds — always consistent with the
verdicts sent, and rebuilt for free after a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

DIMENSIONS = ("owner", "team", "tier", "campaign")


def _bump(table: dict[str, dict[str, Any]], key: str, clause: str, verdict: str) -> None:
    row = table.setdefault(key, {"met": 0, "breached": 0, "clauses": {}})
    row["met" if verdict == "MET" else "breached"] += 1
    per = row["clauses"].setdefault(clause, {"met": 0, "breached": 0})
    per["met" if verdict == "MET" else "breached"] += 1


def summarise(
    states: Iterable[Mapping[str, Any]], team_of: Callable[[str | None], str | None]
) -> dict[str, Any]:
    """{"overall": row, "by_owner": {owner: row}, "by_team", "by_tier", "by_campaign",
    "routed_without_verdict": n, "overdue": [...]} with row = {"met", "breached", "rate"
    (met share), "clauses": {...}} over final verdicts (corrections applied). Leads without an
    owner count under "(queue)"; marketing clauses under their campaign. ``overdue`` lists
    the clauses whose deadline passed with nothing that meets them, not final yet."""
    tables: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in ("overall", *DIMENSIONS)}
    waiting = 0
    overdue: list[dict[str, Any]] = []
    for state in states:
        done = state.get("sla_done")
        routed = state.get("routed") or {}
        if routed and not done:
            waiting += 1
        for clause, deadline in (state.get("sla_overdue") or {}).items():
            if clause not in (done or {}):
                overdue.append({"lead_id": state.get("lead_id"), "clause": clause,
                                "owner": routed.get("owner"), "deadline": deadline})
        if not done:
            continue
        owner = routed.get("owner") or "(queue)"
        keys = {
            "overall": "all",
            "owner": owner,
            "team": team_of(routed.get("owner")) or "(none)",
            "tier": routed.get("tier") or "(not routed)",
            "campaign": (state.get("features") or {}).get("campaign_id") or "(none)",
        }
        for clause, verdict in done.items():
            for dim, key in keys.items():
                _bump(tables[dim], key, clause, verdict)
    for table in tables.values():
        for row in table.values():
            total = row["met"] + row["breached"]
            row["rate"] = round(row["met"] / total, 4) if total else None
    overall = tables.pop("overall").get("all", {"met": 0, "breached": 0, "rate": None,
                                                 "clauses": {}})
    return {
        "overall": overall,
        **{f"by_{d}": dict(sorted(tables[d].items())) for d in DIMENSIONS},
        "routed_without_verdict": waiting,
        "overdue": sorted(overdue, key=lambda o: (o["deadline"], o["lead_id"] or "")),
    }
