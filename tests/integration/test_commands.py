"""The commands a newcomer runs: `leadflow up --demo --exit-after`, `leadflow trace`, bench."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.broker import free_port
from streams.settings import Settings
from tests.conftest import Worker
from tests.integration.test_intake import example, post, wait_trace

pytestmark = pytest.mark.integration


def leadflow(*args: str, env: dict[str, str] | None = None, timeout: float = 180):
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )


def test_up_demo_accounts_for_every_simulated_input(tmp_path: Path) -> None:
    env = {
        "LEADFLOW_BROKER_PORT": str(free_port()), "LEADFLOW_WEB_PORT": str(free_port()),
        "LEADFLOW_DATA_DIR": str(tmp_path), "LEADFLOW_WEBHOOK_SECRETS": "",
        "LEADFLOW_DASHBOARD_PORT": str(free_port()),
    }
    done = leadflow("up", "--demo", "--exit-after", "25", "--leads", "80", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"dashboard http://127.0.0.1:{env['LEADFLOW_DASHBOARD_PORT']}" in out
    assert "summary" in out and "  MISMATCH" not in out
    for code in ("OK", "DUPLICATE", "BAD_ENCODING", "MISSING_FIELD", "leads traced"):
        assert f"expected {code}" in out
    assert (tmp_path / "truth.jsonl").is_file()


def test_trace_command_prints_the_timeline(worker: Worker) -> None:
    assert post(worker.base_url, "/v1/leads", example("lead-captured.json"))[0] == 202
    lead_id = "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"
    wait_trace(worker, lead_id, 1)
    done = leadflow("trace", lead_id, "--url", worker.base_url)
    assert done.returncode == 0, done.stderr
    assert f"lead {lead_id}" in done.stdout and "CAPTURED" in done.stdout
    missing = leadflow("trace", "00000000-0000-4000-8000-000000000000", "--url", worker.base_url)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


def test_schemas_check_and_config_commands() -> None:
    done = leadflow("schemas", "check")
    assert done.returncode == 0 and "OK" in done.stdout
    done = leadflow("config", env={"LEADFLOW_WEB_PORT": "9123", "LEADFLOW_WEBHOOK_SECRETS": "s"})
    assert "LEADFLOW_WEB_PORT" in done.stdout and "9123" in done.stdout
    assert "<1 secret(s)>" in done.stdout  # secrets are never printed


def test_bench_memory_reads_its_worker_and_reports_a_point() -> None:
    from streams.bench_memory import run_memory_bench

    # 300 leads, one store: what the million-lead run does per checkpoint, in seconds. (It
    # once waited its hour-long timeout on every /v1/stats it was refused for want of a key.)
    result = run_memory_bench(Settings.load(env={}), 300, ["rocksdb"])
    (run,) = result.runs
    (point,) = run.points
    assert 250 <= point.leads <= 300 and point.events > point.leads and point.rss > 0


def test_bench_runs_end_to_end_and_prints_its_table() -> None:
    from streams.bench import run_bench

    result = run_bench(Settings.load(env={}), events=600, rate=50, seconds=1)
    assert result.events == 600 and result.bare_rate > 0 and result.worker_rate > 0
    assert result.http_sent == 50 and 0 < result.p50_ms <= result.p99_ms
    assert result.p50_ms <= result.routed_p50_ms  # routed after captured
    assert "full pipeline" in result.table()
    if Path("/proc/stat").exists():  # Linux: the hypervisor's share is measured
        assert result.steal is not None and 0 <= result.steal <= 1
        assert "CPU stolen by the hypervisor" in result.table()
