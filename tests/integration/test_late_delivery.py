"""Late CRM deliveries through the HTTP API, as a real week would bring them: every final
verdict equals the truth, and evidence later than the allowed lateness brings exactly the
corrections the truth predicts."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams import policies, topics
from streams.settings import Settings
from streams.simulate import generate, send_http
from streams.simulate.agreement import compare
from tests.conftest import SECRET, start_worker, stop_worker
from tests.integration.test_intake import read_topic
from tests.integration.test_sla_truth import fresh_broker

pytestmark = pytest.mark.integration


def test_a_delay_heavy_week_gives_the_truths_finals_and_corrections(tmp_path: Path) -> None:
    # 20 % of CRM events 1-30 min late, 2 % 1-20 h late; three days replayed in 60 s. A fixed
    # past week (reps' hours make routing depend on the time of day), seed 68: three of the
    # hours-late touches overturn a final breach; the nearest delivery to a final verdict's
    # moment is 78 min of event time (a second of wall time) away from it.
    now = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
    scenario = generate(68, leads=300, days=3, now=now, bad_share=0, delays="heavy",
                        wall_seconds=60, policies=policies.load(Settings.load()))
    late = [d for d in scenario.deliveries
            if d.occurred_ms and d.delivered_ms - d.occurred_ms > 3_600_000]
    assert late, "a scenario with deliveries later than the allowed lateness"
    with fresh_broker(tmp_path) as broker:
        worker = start_worker(broker, tmp_path / "worker", LEADFLOW_SLA_TICK_S="0.2")
        try:
            report = asyncio.run(send_http(scenario, worker.base_url, SECRET, progress=False))
            assert not report.mismatches, report.mismatches[:5]
            want = scenario.expected_verdicts()  # final verdicts known by the scenario's now
            fixes = scenario.expected_corrections()  # the last deliveries come after now
            known = {k for k, v in want.items() if v != "PENDING"}
            deadline = time.monotonic() + 120
            while True:
                records = [r for r in read_topic(worker, topics.SLA) if r["lead_id"]]
                finals = {(r["lead_id"], r["clause"]): r["verdict"] for r in records
                          if r["status"] == "FINAL"}
                got_fixes = {(r["lead_id"], r["clause"]): r["verdict"] for r in records
                             if r["status"] == "CORRECTION"}
                if (known <= finals.keys() and fixes.keys() <= got_fixes.keys()) or (
                        time.monotonic() > deadline):
                    break
                time.sleep(2)
        finally:
            stop_worker(worker)
    rows = compare(want, finals)
    for clause, row in rows.items():
        assert row.disagree == 0 and row.not_final == 0, (clause, row)
    assert len(fixes) > 0, "the truth predicts corrections for the hours-late evidence"
    assert got_fixes == fixes
    once = [(r["lead_id"], r["clause"]) for r in records if r["status"] == "FINAL"]
    assert len(once) == len(set(once)), "one final verdict per clause and lead"
    for r in records:
        if r["status"] == "CORRECTION":
            assert r["supersedes"] and r["late_source"] and r["late_by_ms"] > 3_600_000
