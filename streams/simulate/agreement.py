"""Check the referee: the engine's verdicts against the simulator's truth, clause by clause.

Counting MET and BREACHED is not enough (130 false breaches and 130 missed ones would
count the same); each lead's verdict is compared with the truth's: the final verdicts
(revision 1) with the truth's finals, and the corrections with the corrections the truth
predicts. Overdue notices are not verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

Key = tuple[str, str]  # (lead id, clause)
PENDING = "PENDING"


@dataclass
class ClauseAgreement:
    agree: int = 0
    disagree: int = 0
    not_final: int = 0  # the truth knows a verdict, the engine has not issued it yet
    unexpected: int = 0  # the engine issued a verdict the truth does not know yet
    examples: list[str] = field(default_factory=list)  # lead ids that disagree

    @property
    def share(self) -> float | None:
        judged = self.agree + self.disagree
        return self.agree / judged if judged else None


def compare(expected: Mapping[Key, str], got: Mapping[Key, str], *, examples: int = 3
            ) -> dict[str, ClauseAgreement]:
    """``expected``: the truth's verdict per (lead, clause), PENDING while not yet known;
    ``got``: the engine's verdict in force per (lead, clause)."""
    out: dict[str, ClauseAgreement] = {}
    for (lead_id, clause), want in expected.items():
        row = out.setdefault(clause, ClauseAgreement())
        have = got.get((lead_id, clause))
        if want == PENDING:
            row.unexpected += have is not None
        elif have is None:
            row.not_final += 1
        elif have == want:
            row.agree += 1
        else:
            row.disagree += 1
            if len(row.examples) < examples:
                row.examples.append(lead_id)
    return dict(sorted(out.items()))


def archived_verdicts(archive_root: Path) -> tuple[dict[Key, str], dict[Key, str]]:
    """(final verdicts, latest corrections) per (lead, clause) in the Parquet archive."""
    import polars as pl

    from streams.archive import layout

    df = layout.scan(archive_root, "SlaEvaluated").filter(
        pl.col("lead_id").is_not_null() & (pl.col("status").fill_null("FINAL") != "OVERDUE")
    ).select("lead_id", "clause", pl.col("revision").fill_null(1), "verdict").collect()
    finals: dict[Key, str] = {}
    latest: dict[Key, tuple[int, str]] = {}
    for lead_id, clause, revision, verdict in df.iter_rows():
        key = (lead_id, clause)
        if revision == 1:
            finals[key] = verdict
        elif key not in latest or revision >= latest[key][0]:
            latest[key] = (revision, verdict)
    return finals, {key: verdict for key, (_, verdict) in latest.items()}


def compare_corrections(expected: Mapping[Key, str], got: Mapping[Key, str]
                        ) -> tuple[int, int, int]:
    """(corrections expected, issued, issued that the truth predicts with that verdict)."""
    return len(expected), len(got), sum(expected.get(k) == v for k, v in got.items())


TARGET = 0.995  # of final verdicts that must agree, per clause


def agrees(rows: Mapping[str, ClauseAgreement], target: float = TARGET) -> bool:
    return all(r.share is None or r.share >= target for r in rows.values())


def report_lines(rows: Mapping[str, ClauseAgreement], target: float = TARGET) -> list[str]:
    lines = []
    for clause, r in rows.items():
        share = r.share
        mark = "ok" if share is None or share >= target else "MISMATCH"
        pct = "   n/a" if share is None else f"{100 * share:6.2f}%"
        lines.append(
            f"  verdicts {clause:24} agree {r.agree:5}  disagree {r.disagree:4} ({pct})  "
            f"not final yet {r.not_final:4}  {mark}"
            + (f"  e.g. {', '.join(x[:8] for x in r.examples)}" if r.examples else ""))
    return lines
