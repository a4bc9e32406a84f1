"""The bench's events/s: over the whole of the work, not only until the last inbound event."""

from __future__ import annotations

from typing import Any

from streams.bench import work_rate
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
