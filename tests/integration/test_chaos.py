"""Chaos: two workers share a simulated backlog and are killed with SIGKILL (no flush, no
commit, no close: the OOM killer, node loss, ``docker kill``) four times at random points,
worker A three times and worker B once, each restarted on its own data dir at once. At the
end every lead's trace holds each input step exactly once, every verdict comes once and is
the simulator's truth, and the dead letters hold every bad input and nothing else.

``make test`` runs a scaled-down backlog; ``LEADFLOW_CHAOS=full`` runs 20,000 leads. Each
run prints its figures (``-s``)."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams import policies, topics
from streams.agents.sla import partition_of
from streams.settings import Settings
from streams.simulate import DUPLICATE, OK, generate
from streams.simulate.truth import kafka_expected_counts
from streams.views import get_json
from tests.conftest import start_worker, stop_worker
from tests.integration.test_intake import read_topic
from tests.integration.test_scale_out import (
    INPUT_STEPS,
    _collect_verdicts,
    _expected_steps,
    _traces,
    _verdict_key,
    _wait_drained,
)
from tests.integration.test_sla_truth import FAST_CLOCK, backlog_verdicts, fill, fresh_broker

pytestmark = pytest.mark.integration

FULL = os.environ.get("LEADFLOW_CHAOS") == "full"
LEADS = 20_000 if FULL else 2_000
SEED = int(os.environ.get("LEADFLOW_CHAOS_SEED", "19"))
KILLS = ("a", "a", "a", "b")


def _stats(worker: Any) -> dict[str, Any]:
    """A worker's counters, without counting its traced leads (a scan of every key of a
    RocksDB table: seconds at 20,000 leads on a loaded machine)."""
    for _ in range(5):
        try:
            return get_json(f"{worker.base_url}/v1/stats?leads_traced=0", timeout=30)[1]
        except OSError:  # timed out (urllib wraps some in URLError)
            time.sleep(1)
    raise AssertionError(f"{worker.base_url}/v1/stats did not answer")


def _received(workers: list[Any]) -> int:
    return sum(_stats(w)["received_total"] for w in workers)


def _plan(rng: random.Random, total: int) -> list[tuple[int, str]]:
    """(records read by both workers, counted across restarts; worker to kill) per kill."""
    marks = sorted(rng.uniform(0.05, 0.8) for _ in KILLS)
    who = list(KILLS)
    rng.shuffle(who)
    return [(int(total * m), w) for m, w in zip(marks, who, strict=True)]


def _steps_off(scenario: Any, traces: dict[str, tuple[int, Any]]) -> tuple[list, list]:
    """(leads missing an input step, leads holding one twice)."""
    want = _expected_steps(scenario)
    lost, doubled = [], []
    for lead_id in scenario.truth:
        status, body = traces[lead_id]
        ids = Counter(s["event_id"] for s in body.get("steps", [])
                      if s["lead_id"] == lead_id and s["kind"] in INPUT_STEPS
                      ) if status == 200 else Counter()
        if len(ids) < want[lead_id]:
            lost.append((lead_id, want[lead_id], len(ids)))
        if any(n > 1 for n in ids.values()) or len(ids) > want[lead_id]:
            doubled.append((lead_id, want[lead_id], sum(ids.values())))
    return lost, doubled


@pytest.mark.timeout(3600 if FULL else 400)
@pytest.mark.parametrize("store", ["rocksdb", "memory"])
def test_two_workers_killed_four_times_lose_and_double_nothing(
    tmp_path: Path, store: str,
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    now = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    scenario = generate(SEED, leads=LEADS, days=4, now=now, bad_share=0.03, wall_seconds=0,
                        policies=policies.load(Settings.load()))
    counts = kafka_expected_counts(scenario)
    assert counts is not None
    total = sum(counts.values())
    plan = _plan(rng, total)
    env = {
        **FAST_CLOCK,
        "LEADFLOW_APP_ID": f"chaos-{uuid.uuid4().hex[:8]}",  # one group for both workers
        "LEADFLOW_STORE": store,
        "LEADFLOW_STANDBY_REPLICAS": "1",
        "LEADFLOW_RETRAIN_EVERY_S": "0", "LEADFLOW_RETRAIN_AFTER_LABELS": "0",
        "LEADFLOW_ARCHIVE": "false", "LEADFLOW_LOG_LEVEL": os.environ.get("CHAOS_LOG", "warn"),
    }
    dirs = {"a": tmp_path / "a", "b": tmp_path / "b"}
    figures: dict[str, Any] = {"store": store, "leads": LEADS, "events": total, "seed": SEED,
                               "kills": []}
    with fresh_broker(tmp_path) as broker:
        settings = fill(broker, scenario)
        # Started and restarted in the background: the other worker reads on meanwhile.
        pool = ThreadPoolExecutor(2)
        starting = {name: pool.submit(start_worker, broker, d, **env)
                    for name, d in dirs.items()}
        workers: dict[str, Any] = {}
        before = 0  # records the killed processes had read
        try:
            for mark, name in plan:
                workers[name] = starting[name].result()
                deadline, passed = time.monotonic() + 300, None
                while True:
                    live = [f.result() for f in starting.values() if f.done()]
                    read = before + _received(live)
                    if read >= mark:
                        # Past the mark: killed once busy since its (re)start, if it gets
                        # anything to do within a few seconds (a drained backlog: nothing).
                        passed = passed or time.monotonic()
                        if _received([workers[name]]) or time.monotonic() - passed > 5:
                            break
                    assert time.monotonic() < deadline, f"stuck at {read} of {mark} read"
                    time.sleep(0.1)
                before += _received([workers[name]])
                workers[name].proc.kill()
                workers[name].proc.wait()
                figures["kills"].append((name, read))
                starting[name] = pool.submit(start_worker, broker, dirs[name], **env)
            workers = {name: f.result() for name, f in starting.items()}
            alive = list(workers.values())
            _wait_drained(alive, (*topics.INBOUND, topics.IDENTITY_RESOLVED, topics.ROUTED),
                          settings.partitions, timeout=600 if FULL else 240, stats=_stats)
            expected = scenario.expected_verdicts(final=True, exact_only=True)
            verdicts = _collect_verdicts(alive[0], set(expected))
            traces = _traces(alive, sorted(scenario.truth))
            dead = read_topic(alive[0], topics.DEAD_LETTERS)
        finally:
            for f in starting.values():
                w = f.result()
                if w.proc.poll() is None:
                    stop_worker(w)
            pool.shutdown()
    figures["seconds"] = round(time.monotonic() - started)
    report = _judge(scenario, counts, verdicts, traces, dead)
    figures.update({k: len(v) if isinstance(v, list) else v for k, v in report.items()})
    figures["steps_lost_by_partition"] = dict(Counter(
        partition_of(lead, settings.partitions) for lead, *_ in report["steps_lost"]))
    print(f"\nchaos figures: {figures}")
    assert not report["steps_lost"], f"leads missing input steps: {report['steps_lost'][:5]}"
    assert not report["steps_doubled"], f"leads with doubled steps: {report['steps_doubled'][:5]}"
    assert not report["verdicts_doubled"], (
        f"clauses judged twice: {report['verdicts_doubled'][:5]}")
    assert not report["verdicts_conflicting"], (
        f"repeats that differ: {report['verdicts_conflicting'][:5]}")
    assert not report["verdicts_missing"], f"verdicts never came: {report['verdicts_missing'][:5]}"
    assert not report["verdicts_wrong"], f"verdicts differ: {report['verdicts_wrong'][:5]}"
    assert report["dead_letters_by_code"] == report["bad_inputs_by_code"], report


def _judge(scenario: Any, counts: Counter[str], verdicts: list[dict[str, Any]],
           traces: dict[str, tuple[int, Any]], dead: list[dict[str, Any]]) -> dict[str, Any]:
    lost, doubled = _steps_off(scenario, traces)
    finals = [v for v in verdicts if v["status"] == "FINAL"]
    # A verdict resent with its event id is a repeat a reader recognises (at least once);
    # two verdicts with different ids for one clause are a clause judged twice.
    ids = {v["event_id"] for v in finals}
    # ... and a repeat must say the same: a reader keeps whichever copy it reads first.
    said: dict[str, set[Any]] = {}
    for v in verdicts:
        said.setdefault(v["event_id"], set()).add((v["verdict"], v["met_at"], v["status"]))
    conflicting = [i for i, s in said.items() if len(s) > 1]
    once = Counter(_verdict_key(v) for v in {v["event_id"]: v for v in finals}.values())
    twice = [k for k, n in once.items() if n > 1]
    missing: list[Any] = []
    wrong: list[Any] = []
    if not twice:
        try:
            got = backlog_verdicts(scenario, list({v["event_id"]: v for v in verdicts}.values()))
        except AssertionError as err:  # a final verdict other than the truth's
            if os.environ.get("CHAOS_DUMP"):
                import json
                import re
                leads = sorted(set(re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                              r"[0-9a-f]{12}", str(err))))
                mine = [v for v in verdicts if v["lead_id"] in leads]
                Path(os.environ["CHAOS_DUMP"]).write_text(json.dumps(
                    {"error": str(err), "traces": {k: traces[k] for k in leads if k in traces},
                     "verdicts": mine}, default=str, indent=1))
            return {"steps_lost": lost, "steps_doubled": doubled, "verdicts_doubled": [],
                    "verdicts_conflicting": conflicting,
                    "verdicts_missing": [], "verdicts_wrong": [str(err)[:2000]],
                    "dead_letters_by_code": None, "bad_inputs_by_code": None}
        want = scenario.expected_verdicts(final=True, exact_only=True, corrected=True)
        missing = [k for k in want if k not in got]
        wrong = [(k, v, got[k]) for k, v in want.items() if k in got and got[k] != v]
    bad_input = Counter({k: n for k, n in counts.items() if k not in (OK, DUPLICATE)})
    by_source = {(d["source_topic"], d["source_partition"], d["source_offset"]): d["error_code"]
                 for d in dead}
    return {
        "steps_lost": lost, "steps_doubled": doubled,
        "verdicts": len(ids), "verdicts_repeated": len(finals) - len(ids),
        "verdicts_doubled": twice, "verdicts_conflicting": conflicting,
        "verdicts_missing": missing, "verdicts_wrong": wrong,
        "dead_letters": len(dead), "dead_letter_repeats": len(dead) - len(by_source),
        "dead_letters_by_code": dict(Counter(by_source.values())),
        "bad_inputs_by_code": dict(bad_input),
    }


def test_the_kill_plan_is_three_of_a_and_one_of_b_at_increasing_points() -> None:
    plan = _plan(random.Random(SEED), 10_000)
    assert sorted(w for _, w in plan) == ["a", "a", "a", "b"]
    marks = [m for m, _ in plan]
    assert marks == sorted(marks) and marks[0] >= 1_000 and marks[-1] <= 8_000

