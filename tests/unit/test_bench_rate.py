"""The bench's events/s: over the whole of the work, not only until the last inbound event."""

from __future__ import annotations

import os
from typing import Any

from streams.bench import work_rate
from streams.bench_scale import ScaleResult, ScaleRun, cpu_seconds
from streams.stats import Stats


def stats(received: dict[str, int], first: float, last_event: float, last_work: float) -> Any:
    s = Stats(received=received, first_event_at=first, last_event_at=last_event,
              last_work_at=last_work)
    return s.as_dict()


def test_the_rate_runs_to_the_last_internal_work() -> None:
    one = stats({"leads.captured": 600, "leads.activity": 400, "leads.routed": 50},
                first=100.0, last_event=104.0, last_work=110.0)
    assert work_rate([one]) == 100.0  # 1,000 inbound events in 10 s (routed is internal)


def test_two_workers_count_together_from_the_first_event_to_the_last_work() -> None:
    a = stats({"leads.activity": 500}, first=100.0, last_event=105.0, last_work=105.0)
    b = stats({"leads.activity": 700}, first=101.0, last_event=106.0, last_work=108.0)
    assert work_rate([a, b]) == 150.0


def test_internal_work_moves_the_end() -> None:
    s = Stats()
    s.saw_event("leads.captured", 100.0)
    s.saw_internal("leadflow.routing", 3)
    assert s.internal["leadflow.routing"] == 3 and s.last_work_at > s.last_event_at


def test_the_scale_bench_compares_medians_of_alternating_rounds() -> None:
    runs = [ScaleRun(1, 1000.0, 25.0, 5.0), ScaleRun(2, 1500.0, 40.0, 8.0),
            ScaleRun(1, 2000.0, 20.0, 5.0), ScaleRun(2, 1700.0, 38.0, 8.0),
            ScaleRun(1, 1200.0, 24.0, 5.0), ScaleRun(2, 2400.0, 36.0, 8.0)]
    result = ScaleResult(50_000, runs)
    assert (result.one_rate, result.two_rate) == (1200.0, 1700.0)
    assert round(result.speedup, 3) == round(1700 / 1200, 3)
    table = result.table()
    assert "round 2: events/s, one / two" in table and "2,000 / 1,700" in table
    assert "500 / 800" in table  # worker CPU-µs per event of round 1


def test_cpu_seconds_reads_a_live_process_and_not_a_gone_one() -> None:
    spent = cpu_seconds(os.getpid())
    assert spent is not None and spent > 0
    assert cpu_seconds(2**22 + 12345) is None
