"""Monthly marketing clauses: months, counts and verdicts from counts."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from streams.core import monthly
from streams.core.contract import epoch_ms
from streams.core.sla import BREACHED, DISQUALIFICATION_RATE, MET, MQL_VOLUME, Contract

C = Contract()


def at(tz: str, *parts: int) -> int:
    return epoch_ms(datetime(*parts, tzinfo=ZoneInfo(tz)))


def test_months() -> None:
    assert monthly.month_of(at("UTC", 2026, 11, 30, 23, 59)) == "2026-11"
    assert monthly.month_of(at("UTC", 2026, 12, 1)) == "2026-12"
    berlin = datetime(2026, 12, 1, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    assert monthly.month_of(berlin) == "2026-11"
    assert monthly.month_end("2026-11") == at("UTC", 2026, 12, 1)
    assert monthly.month_end("2026-12") == at("UTC", 2027, 1, 1)
    assert monthly.month_due(C, "2026-11") == (at("UTC", 2026, 12, 1), at("UTC", 2026, 12, 15))
    for bad in ("2026-13", "2026-1", "Nov 2026", "2026-00"):
        with pytest.raises(ValueError, match="month"):
            monthly.month_end(bad)


def test_count() -> None:
    month = monthly.count(None, "mqls", "webinar-b")
    month = monthly.count(month, "mqls", "webinar-b", 2)
    month = monthly.count(month, "disqualified", None)
    assert month == {"mqls": {"webinar-b": 3}, "disqualified": {"(none)": 1}, "complete": {}}
    with pytest.raises(ValueError, match="kind"):
        monthly.count(month, "sqls", "x")


def test_evaluate_month() -> None:
    counts = {"mqls": {"webinar-b": 200, "ads": 12, "quiet": 0},
              "disqualified": {"webinar-b": 40, "ads": 6, "quiet": 1},
              "complete": {"webinar-b": 190, "ads": 10}}
    verdicts = monthly.evaluate_month(C, "2026-11", counts)
    got = {(v.clause, v.scope): v for v in verdicts}
    assert set(got) == {(MQL_VOLUME, "2026-11"), ("CONTEXT_COMPLETE", "2026-11"),
                        (DISQUALIFICATION_RATE, "2026-11"),
                        (DISQUALIFICATION_RATE, "2026-11/webinar-b"),
                        (DISQUALIFICATION_RATE, "2026-11/ads")}
    volume = got[(MQL_VOLUME, "2026-11")]
    assert (volume.verdict, volume.detail, volume.party) == (BREACHED, "212 MQLs < 250",
                                                             "MARKETING")
    assert volume.evaluated_at == volume.deadline == at("UTC", 2026, 12, 1)
    context = got[("CONTEXT_COMPLETE", "2026-11")]
    assert context.verdict == MET and "200 of 212" in context.detail  # 94.3% >= 90%
    overall = got[(DISQUALIFICATION_RATE, "2026-11")]
    assert overall.verdict == MET and overall.detail.startswith("47 of 212")
    assert overall.evaluated_at == at("UTC", 2026, 12, 15)
    assert got[(DISQUALIFICATION_RATE, "2026-11/webinar-b")].verdict == MET  # 20%
    ads = got[(DISQUALIFICATION_RATE, "2026-11/ads")]
    assert (ads.verdict, ads.campaign_id) == (BREACHED, "ads")  # 50%
    assert all(v.version == "2026-11" for v in verdicts)


def test_evaluate_month_boundaries() -> None:
    # Exactly at the limits is within them (no float rounding: 75/250 is 0.30).
    counts = {"mqls": {"a": 250}, "disqualified": {"a": 75}, "complete": {"a": 225}}
    assert {v.verdict for v in monthly.evaluate_month(C, "2026-11", counts)} == {MET}
    c = Contract(max_disqualification_rate=0.1, min_context_complete=0.7)
    counts = {"mqls": {"a": 10}, "disqualified": {"a": 1}, "complete": {"a": 7}}
    shares = [v for v in monthly.evaluate_month(c, "2026-11", counts) if v.clause != MQL_VOLUME]
    assert {v.verdict for v in shares} == {MET}
    # No MQLs: a volume verdict only.
    empty = monthly.evaluate_month(C, "2026-11", None)
    assert [(v.clause, v.verdict, v.detail) for v in empty] == [
        (MQL_VOLUME, BREACHED, "0 MQLs < 250")]
    # The agent judges volume at month end and the rate after settling.
    only = monthly.evaluate_month(C, "2026-11", counts, clauses=[DISQUALIFICATION_RATE])
    assert {v.clause for v in only} == {DISQUALIFICATION_RATE}
