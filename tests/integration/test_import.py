"""`leadflow import` through the embedded broker and a worker: the shipped example export plus
a few bad rows → traces for the good leads, the bad rows reported by line and in the rejected
file, nothing dead-lettered, and a second import of the same file changes nothing."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from streams.importing.command import EXAMPLES
from streams.importing.export import rejected_path
from streams.importing.rows import crm_lead_id
from streams.views import get_json
from tests.conftest import Worker
from tests.integration.test_intake import dead_letters, wait_trace

pytestmark = pytest.mark.integration

MAPPING = EXAMPLES / "example-mapping.toml"
# The example's rows: CRM lead id → (activities, final status path length).
GOOD = {
    "00Q5e00001AaA01": (4, 4),  # 3 pricing views + 1 webinar; MQL SAL SQL CLOSED_WON
    "00Q5e00001AaA02": (0, 2),  # MQL DISQUALIFIED
    "00Q5e00001AaA03": (3, 4),  # CLOSED_LOST
    "00Q5e00001AaA04": (2, 2),  # WORKING
    "00Q5e00001AaA05": (0, 2),  # DISQUALIFIED
    "00Q5e00001AaA06": (5, 3),  # SQL
    "00Q5e00001AaA07": (0, 0),  # NEW: captured only
    "00Q5e00001AaA08": (2, 4),  # CLOSED_WON
}
BAD_ROWS = {
    10: ("00Q5e00001AaZ01,not-an-email,Bad,Email", "INVALID_EMAIL Email:"),
    11: ("00Q5e00001AaZ02,ok2@example.org,Odd,Status", "INVALID_ENUM Lead Status:"),
    12: ("00Q5e00001AaZ03,ok3@example.org,No,Created", "MISSING_FIELD Created Date:"),
    13: ("00Q5e00001AaZ04,ok4@example.org,Bad,Date", "FIELD_MISMATCH Created Date:"),
}


def _bad_row(prefix: str, line: int) -> str:
    created = {12: "", 13: "31/31/2025 09:05"}.get(line, "02/11/2025 10:00")
    status = "Maybe Later" if line == 11 else "Closed - Won"
    rest = ["CTO", "Acme", "51-200", "NA-West", "SaaS", "", "cmp", "web",
            "viewed_pricing_page", created, "Opt-in", "1", "0", "0", status,
            "03/02/2025 16:40", "", "", "rep-amy"]
    return ",".join([prefix, *rest])


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("import") / "crm-export.csv"
    text = (EXAMPLES / "example-export.csv").read_text(encoding="utf-8")
    assert len(text.splitlines()) == 9  # header + 8 rows: the bad ones are lines 10-13
    path.write_text(text + "".join(_bad_row(p, n) + "\n" for n, (p, _) in BAD_ROWS.items()),
                    encoding="utf-8")
    return path


def leadflow_import(worker: Worker, export: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LEADFLOW_BROKER_PORT": str(worker.settings.broker_port),
        "LEADFLOW_DATA_DIR": str(worker.settings.data_path),
        "LEADFLOW_SCHEMA_REGISTRY_FILE": str(worker.settings.registry_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", "import", str(export), "--mapping", str(MAPPING),
         *args],
        capture_output=True, text=True, env=env, timeout=120,
    )


def stats(worker: Worker) -> dict[str, Any]:
    status, body = get_json(f"{worker.base_url}/v1/stats", timeout=5)
    assert status == 200, body
    return body


def test_import_reports_bad_rows_and_traces_the_good_leads(worker: Worker, export: Path) -> None:
    done = leadflow_import(worker, export)
    assert done.returncode == 0, done.stdout + done.stderr
    for line, (_, reported) in BAD_ROWS.items():
        assert f"line {line}: {reported}" in done.stderr
    assert "REJECTED    4" in done.stdout
    assert "produced    crm.status-changed 21, leads.activity 16, leads.captured 8" in done.stdout

    with rejected_path(export).open(newline="", encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert [int(w["line"]) for w in written] == list(BAD_ROWS)
    assert [w["Lead ID"] for w in written] == [p.split(",")[0] for p, _ in BAD_ROWS.values()]
    assert all(w["error"].startswith(BAD_ROWS[int(w["line"])][1]) for w in written)

    for crm_id, (activities, statuses) in GOOD.items():
        trace = wait_trace(worker, crm_lead_id(crm_id), 1 + activities + statuses, timeout=60)
        kinds = [s["kind"] for s in trace["steps"]]
        assert kinds == ["CAPTURED"] + ["ACTIVITY"] * activities + ["STATUS_CHANGED"] * statuses
        assert {s["source"] for s in trace["steps"]} == {"import"}
        assert trace["steps"][0]["correlation_id"].startswith("import:crm-export.csv:")
    won = wait_trace(worker, crm_lead_id("00Q5e00001AaA01"), 8)
    assert [s["detail"]["new"] for s in won["steps"] if s["kind"] == "STATUS_CHANGED"] == [
        "MQL", "SAL", "SQL", "CLOSED_WON"]
    assert dead_letters(worker) == []


def test_importing_the_same_file_again_changes_nothing(worker: Worker, export: Path) -> None:
    ids = [crm_lead_id(c) for c in GOOD]
    events = sum(1 + a + s for a, s in GOOD.values())
    # Input steps only: the handoff keeps adding its own (SLA verdicts as clocks move).
    before_traces = {i: wait_trace(worker, i, 1, timeout=60)["steps"] for i in ids}
    before = stats(worker)["duplicates_total"]

    done = leadflow_import(worker, export)
    assert done.returncode == 0, done.stdout + done.stderr

    deadline = time.monotonic() + 60
    while stats(worker)["duplicates_total"] < before + events and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stats(worker)["duplicates_total"] == before + events  # every event was a duplicate
    for lead_id in ids:
        assert wait_trace(worker, lead_id, 1)["steps"] == before_traces[lead_id]
    assert dead_letters(worker) == []
