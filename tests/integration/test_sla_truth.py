"""A simulated stretch of days through the embedded broker: the engine reaches exactly the SLA
verdicts the simulator's ground truth predicts, and the same ones again on a replay."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams import policies, topics
from streams.broker import EmbeddedBroker
from streams.codec import Codec
from streams.kafka import ensure_topics
from streams.registry import FileRegistry
from streams.settings import Settings
from streams.simulate import DUPLICATE, OK, Scenario, generate, send_kafka
from streams.simulate.truth import kafka_expected_counts
from streams.views import get_json
from tests.conftest import Worker, start_worker, stop_worker
from tests.integration.test_intake import read_topic

pytestmark = pytest.mark.integration

# The clock jumps to the wall clock one second after the history is read, so every deadline
# of a stretch that ended weeks ago has passed and the final verdicts are all due.
FAST_CLOCK = {"LEADFLOW_SLA_IDLE_S": "1", "LEADFLOW_SLA_TICK_S": "0.2",
              "LEADFLOW_SLA_IDLE_PACE": "1e9", "LEADFLOW_SLA_SETTLE_S": "0.5"}


@contextmanager
def fresh_broker(tmp: Path) -> Iterator[EmbeddedBroker]:
    """A broker and a schema registry of their own, as on a new machine."""
    tmp.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("LEADFLOW_SCHEMA_REGISTRY_FILE")
    os.environ["LEADFLOW_SCHEMA_REGISTRY_FILE"] = str(tmp / "schemas.json")
    try:
        with EmbeddedBroker(0, tmp / "broker.log") as broker:
            yield broker
    finally:
        if previous is None:
            os.environ.pop("LEADFLOW_SCHEMA_REGISTRY_FILE", None)
        else:
            os.environ["LEADFLOW_SCHEMA_REGISTRY_FILE"] = previous


def fill(broker: EmbeddedBroker, scenario: Scenario) -> Settings:
    """Every delivery of ``scenario`` on ``broker``'s inbound topics, as any Avro producer
    would write them; returns the settings that reach that broker."""
    settings = Settings.load(env={**os.environ, "LEADFLOW_BROKER_PORT": str(broker.port)})
    asyncio.run(ensure_topics(settings))
    codec = Codec(FileRegistry(settings.registry_path))
    asyncio.run(send_kafka(scenario, settings.bootstrap, codec, progress=False, realtime=False))
    return settings


def run(scenario: Scenario, tmp: Path) -> list[dict]:
    """The scenario as history: all of it on the topics first, then a worker reads it. Returns
    the per-lead verdicts once every expected one has come (and nothing more after)."""
    with fresh_broker(tmp) as broker:
        fill(broker, scenario)
        worker = start_worker(broker, tmp / "worker", **FAST_CLOCK)
        try:
            verdicts = collect(worker, scenario)
            # Every delivery handled exactly once: nothing lost, nothing taken twice.
            stats = get_json(f"{worker.base_url}/v1/stats")[1]
            expected = kafka_expected_counts(scenario)
            assert stats["accepted_total"] == expected[OK]
            assert stats["duplicates_total"] == expected[DUPLICATE]
            assert stats["dead_letters_total"] == sum(expected.values()) - expected[OK] - expected[
                DUPLICATE]
            return verdicts
        finally:
            stop_worker(worker)


def collect(worker: Worker, scenario: Scenario) -> list[dict]:
    want = set(scenario.expected_verdicts(final=True, exact_only=True))
    deadline = time.monotonic() + 180
    seen: list[dict] = []
    while time.monotonic() < deadline:
        seen = [v for v in read_topic(worker, topics.SLA)
                if v["lead_id"] in scenario.truth and v["status"] == "FINAL"]
        if want <= {(v["lead_id"], v["clause"]) for v in seen}:
            time.sleep(3)  # more ticks must judge nothing again
            return [v for v in read_topic(worker, topics.SLA) if v["lead_id"] in scenario.truth]
        time.sleep(2)
    missing = sorted(want - {(v["lead_id"], v["clause"]) for v in seen})
    clocks = get_json(f"{worker.base_url}/v1/stats")[1]["sla_clocks"]
    trace = get_json(f"{worker.base_url}/v1/leads/{missing[0][0]}/trace")[1]
    raise AssertionError(f"{len(missing)} verdicts never came, e.g. {missing[:5]}; clocks: "
                         f"{clocks}; trace of the first: {trace}")


def backlog_verdicts(scenario: Scenario, records: list[dict]) -> dict[tuple[str, str], str]:
    """The verdicts in force in ``records`` of a backlog, checked against the truth.

    A backlog reads each topic in delivery order but the topics at their own pace, and the
    clock waits for the slowest that can meet a clause: evidence the truth calls late may
    still be read in time, so a clause the truth corrects may come out final at once (the
    verdict of event-time order). What must hold: one final verdict per clause, each equal to
    the truth's unless the truth predicts a correction for it, corrections only where the
    truth predicts one, and the verdicts in force equal the truth's."""
    finals = [v for v in records if v["status"] == "FINAL" and v["lead_id"]]
    once = Counter((v["lead_id"], v["clause"]) for v in finals)
    assert max(once.values()) == 1, "a clause was judged twice"
    force = {(v["lead_id"], v["clause"]): v["verdict"] for v in finals}
    predicted = scenario.expected_corrections(exact_only=True)
    wrong = [(k, v, force.get(k)) for k, v in scenario.expected_verdicts(
        final=True, exact_only=True).items() if k not in predicted and force.get(k) != v]
    assert not wrong, f"{len(wrong)} final verdicts differ from the truth: {wrong[:5]}"
    for v in sorted((v for v in records if v["status"] == "CORRECTION"),
                    key=lambda v: v["revision"]):
        key = (v["lead_id"], v["clause"])
        assert key in predicted or v["lead_id"] not in scenario.truth or not scenario.truth[
            v["lead_id"]].exact, f"a correction the truth does not predict: {v}"
        force[key] = v["verdict"]
    return force


def test_simulated_days_give_the_predicted_verdicts_and_the_same_again_on_replay(
    tmp_path: Path,
) -> None:
    now = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # a Monday morning, long enough ago
    scenario = generate(7, leads=150, days=4, now=now, bad_share=0.03, wall_seconds=0,
                        policies=policies.load(Settings.load()))
    expected = scenario.expected_verdicts(final=True, exact_only=True)
    counts = Counter(expected.values())
    assert counts["MET"] > 20 and counts["BREACHED"] > 20  # a stretch worth judging

    first = run(scenario, tmp_path / "first")
    got = backlog_verdicts(scenario, first)
    in_force = scenario.expected_verdicts(final=True, exact_only=True, corrected=True)
    wrong = {k: (v, got.get(k)) for k, v in in_force.items() if got.get(k) != v}
    assert not wrong, f"{len(wrong)} of {len(expected)} verdicts differ: {list(wrong.items())[:5]}"
    exact = {t.lead_id for t in scenario.truth.values() if t.exact}
    extra = [k for k in got if k[0] in exact and k not in expected]
    assert not extra, f"verdicts the truth does not predict: {extra[:5]}"

    # The same final verdicts (by event id) and the same verdicts in force again; overdue
    # notices, and whether a late touch is read in time, depend on the pace of each topic.
    again = run(scenario, tmp_path / "replay")
    assert backlog_verdicts(scenario, again) == got
    assert sorted(v["event_id"] for v in again if v["status"] == "FINAL") == sorted(
        v["event_id"] for v in first if v["status"] == "FINAL")
