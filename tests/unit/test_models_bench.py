"""`bench model` on a small scenario: examples are frozen at the MQL moment (nothing from
after the handover leaks in), and the report has its rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams import policies
from streams.bench_model import run_model_bench, scenario_examples
from streams.core.features import held_back
from streams.settings import Settings
from streams.simulate import generate

REPO = Path(__file__).resolve().parents[2]
POLICIES = policies.load(Settings.load(env={}, toml_path=REPO / "leadflow.toml"))
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_examples_are_the_leads_as_handed_over() -> None:
    s = generate(11, leads=800, days=14, now=NOW, bad_share=0.05, wall_seconds=0,
                 policies=POLICIES)
    examples, oracle = scenario_examples(s)
    mqls = {t.lead_id for t in s.truth.values() if t.mql_at and t.alias_of is None}
    assert {e["lead_id"] for e in examples} == mqls and set(oracle) == mqls
    last_delivered: dict[str, int] = {}
    for d in s.deliveries:
        if d.bad_kind is None and d.channel == "activity" and d.occurred_ms is not None:
            last_delivered[d.lead_id] = max(last_delivered.get(d.lead_id, 0), d.occurred_ms)
    later = 0
    for e in examples:
        truth = s.truth[e["lead_id"]]
        f = e["features"]
        assert e["handed_over_at"] == int(truth.mql_at.timestamp() * 1000)
        assert e["label"] == int(truth.outcome in ("CLOSED_WON", "CLOSED_LOST"))
        assert f["last_event_at"] <= e["handed_over_at"]  # nothing from after the handover
        assert not held_back(f)
        assert POLICIES.model.score(f).score >= POLICIES.scoring.threshold
        assert truth.probability <= oracle[e["lead_id"]] < 1
        later += last_delivered.get(e["lead_id"], 0) > e["handed_over_at"]
    assert later > len(examples) / 4  # most leads do more after the handover, left out


def test_bench_report() -> None:
    bench = run_model_bench(seed=3, leads=1500, days=30, label_counts=(200, 100_000),
                            big=2_000, repeats=2, policies=POLICIES)
    assert [r.labels for r in bench.rows] == [200] and bench.skipped == [100_000]
    assert bench.rows[0].windows == 2
    assert 0.6 < bench.oracle_auc < 1
    assert bench.big_n == 2_000
    table = bench.table()
    for text in ("oracle", "200", "skipped", "reached SQL", "train on 2,000 examples"):
        assert text in table
    with pytest.raises(ValueError, match="too few"):
        run_model_bench(seed=3, leads=10, days=1, policies=POLICIES, big=10)
