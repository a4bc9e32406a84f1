"""The marketing side of the SLA, judged per calendar month (UTC) from plain counts.

The marketing agent counts each month's MQLs, the complete ones and the disqualified ones,
per campaign (``count``), and decides when a month can be judged (``month_due``: the month
end for volume and context share, plus ``settle`` for the disqualification rate, since sales
needs time to disposition the month's MQLs). ``evaluate_month`` is pure; exactly-once is the
agent's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from fractions import Fraction

from streams.core.contract import epoch_ms, to_ms
from streams.core.sla import (
    BREACHED,
    CLAUSES,
    CONTEXT_COMPLETE,
    DISQUALIFICATION_RATE,
    MARKETING,
    MET,
    MQL_VOLUME,
    Contract,
    State,
    Verdict,
)

KINDS = ("mqls", "disqualified", "complete")
NO_CAMPAIGN = "(none)"  # JSON keys must be strings; leads without a campaign count here

_MONTH = re.compile(r"(\d{4})-(\d{2})")


def month_of(ms: int | datetime) -> str:
    """The calendar month (UTC) of an instant, "YYYY-MM"."""
    moment = datetime.fromtimestamp(to_ms(ms) // 1000, UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def month_end(month: str) -> int:
    """The first millisecond of the month after ``month`` ("YYYY-MM"), UTC."""
    match = _MONTH.fullmatch(month) if isinstance(month, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"bad month {month!r}: expected 'YYYY-MM'")
    year, mon = int(match.group(1)), int(match.group(2))
    year, mon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return epoch_ms(datetime(year, mon, 1, tzinfo=UTC))


def month_due(contract: Contract, month: str) -> tuple[int, int]:
    """(when volume and context share can be judged, when the DQ rate can): the month end,
    and the month end + settle (sales needs time to disposition the month's MQLs)."""
    end = month_end(month)
    return end, end + contract.settle_ms


def count(month_state: State | None, kind: str, campaign: str | None, n: int = 1) -> State:
    """Add ``n`` to ``kind`` ("mqls", "disqualified", "complete") for ``campaign`` in one
    month's counts (created when None). Count a disqualification under the month the lead
    became an MQL: the rate is of that month's MQLs. Deduplication is the caller's."""
    if kind not in KINDS:
        raise ValueError(f"bad count kind {kind!r}: expected one of {', '.join(KINDS)}")
    state = month_state if month_state is not None else {k: {} for k in KINDS}
    bucket = state.setdefault(kind, {})
    key = campaign or NO_CAMPAIGN
    bucket[key] = bucket.get(key, 0) + n
    return state


def _share(limit: float) -> Fraction:
    # The decimal as written in the config (0.3 is 3/10, not its binary neighbour), so a rate
    # exactly at the limit compares as people expect.
    return Fraction(repr(limit))


def _pct(value: Fraction | float) -> str:
    return f"{float(value) * 100:.1f}%"


def evaluate_month(contract: Contract, month: str, counts: State | None, *,
                   clauses: Iterable[str] | None = None) -> list[Verdict]:
    """The marketing verdicts of ``month`` from its counts: MQL_VOLUME (total >= min),
    CONTEXT_COMPLETE (share of complete MQLs >= min) and DISQUALIFICATION_RATE overall and per
    campaign (rate <= max). No MQLs → no share or rate verdict. ``clauses`` filters."""
    wanted = set(CLAUSES if clauses is None else clauses)
    counts = counts or {}
    mqls, dqs, complete = (counts.get(k) or {} for k in KINDS)
    end, settled = month_due(contract, month)
    total, total_dq, total_complete = sum(mqls.values()), sum(dqs.values()), sum(complete.values())
    v = contract.version
    out: list[Verdict] = []
    if MQL_VOLUME in wanted:
        ok = total >= contract.min_mqls_per_month
        detail = f"{total} MQLs {'>=' if ok else '<'} {contract.min_mqls_per_month}"
        out.append(Verdict(MQL_VOLUME, MARKETING, MET if ok else BREACHED, end, None, end,
                           detail=detail, scope=month, version=v))
    if CONTEXT_COMPLETE in wanted and total:
        share = Fraction(total_complete, total)
        ok = share >= _share(contract.min_context_complete)
        detail = (f"{total_complete} of {total} MQLs complete ({_pct(share)}) "
                  f"{'>=' if ok else '<'} {_pct(contract.min_context_complete)}")
        out.append(Verdict(CONTEXT_COMPLETE, MARKETING, MET if ok else BREACHED, end, None, end,
                           detail=detail, scope=month, version=v))
    if DISQUALIFICATION_RATE in wanted:
        limit = _share(contract.max_disqualification_rate)
        rows = [(None, month, total, total_dq)] + [
            (c, f"{month}/{c}", mqls.get(c, 0), dqs.get(c, 0)) for c in sorted(set(mqls) | set(dqs))
        ]
        for campaign, scope, n, dq in rows:
            if not n:
                continue
            rate = Fraction(dq, n)
            ok = rate <= limit
            detail = (f"{dq} of {n} MQLs disqualified ({_pct(rate)}) "
                      f"{'<=' if ok else '>'} {_pct(limit)}")
            out.append(Verdict(DISQUALIFICATION_RATE, MARKETING, MET if ok else BREACHED,
                               settled, None, settled,
                               campaign_id=None if campaign == NO_CAMPAIGN else campaign,
                               detail=detail, scope=scope, version=v))
    return out
