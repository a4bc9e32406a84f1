"""History without personal data (issue 22): the generated B2C export in tests/fixtures
imports with a mapping that names only its own columns, leadflow's model on it comes within
0.01 ROC AUC of the textbook scikit-learn pipeline, and a threshold recommendation comes out.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from streams.bench_export import run_export_bench
from streams.importing.exceptions import MappingError
from streams.importing.export import Export, Summary
from streams.importing.mapping import load_mapping, parse_mapping
from streams.importing.rows import MappedRow, RowError, map_row
from streams.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
EXPORT = FIXTURES / "b2c-export.csv"
MAPPING = FIXTURES / "b2c-mapping.toml"
NOW = datetime(2026, 3, 1, tzinfo=UTC)
SKEW = timedelta(days=1)


def test_the_shipped_export_is_what_its_seeded_script_writes(tmp_path: Path) -> None:
    script = (FIXTURES / "make_b2c_export.py").read_text()
    copy = tmp_path / "make_b2c_export.py"
    copy.write_text(script)
    subprocess.run([sys.executable, str(copy)], check=True, capture_output=True)
    assert (tmp_path / "b2c-export.csv").read_bytes() == EXPORT.read_bytes()


def test_it_imports_with_only_its_own_columns() -> None:
    mapping = load_mapping(MAPPING)
    assert not mapping.personal and mapping.dated == "row order"
    summary = Summary()
    rows = [r for _, r in Export(EXPORT, mapping).plan(observed_at=NOW, max_skew=SKEW,
                                                       summary=summary)]
    assert summary.rows == summary.imported == 9_240 and not summary.rejected
    first = rows[0]
    assert isinstance(first, MappedRow)
    lead = first.records[0][1]
    assert lead["email"] == "" and (lead["consent"] or {}).get("lawful_basis") in (
        None, "UNKNOWN")
    assert lead["attributes"]["time_on_site_s"] == 498.0
    assert lead["attributes"]["do_not_email"] is False
    assert rows[1].records[0][1]["occurred_at"] - lead["occurred_at"] == timedelta(minutes=15)


def _mapping(extra: str = "") -> dict:
    import tomllib

    return tomllib.loads('[columns]\nlead_id = "id"\nstatus = "won"\n' + extra)


def test_history_needs_only_an_id_and_an_outcome() -> None:
    m = parse_mapping(_mapping('[attributes]\nvisits = { column = "v", type = "numeric" }\n'
                               '[formats]\nlead_ids = "crm"\n'))
    assert m.dated == "undated"
    got = map_row(m, 2, {"id": "A1", "won": "SQL", "v": "3"}, observed_at=NOW, max_skew=SKEW)
    assert isinstance(got, MappedRow)
    assert got.records[0][1]["occurred_at"] == m.start
    bad = map_row(m, 3, {"id": "A2", "won": "SQL", "v": "lots"}, observed_at=NOW,
                  max_skew=SKEW)
    assert isinstance(bad, RowError) and bad.where == "v" and bad.code == "FIELD_MISMATCH"


@pytest.mark.parametrize(("extra", "message"), [
    ('first_name = "f"\n', "personal data needs"),
    ('created_at = "c"\n[formats]\nrow_spacing = "1h"\n', "dated by"),
])
def test_mappings_that_cannot_hold(extra: str, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_mapping(_mapping(extra))
    import tomllib

    with pytest.raises(MappingError, match="lead_id"):
        parse_mapping(tomllib.loads('[columns]\nstatus = "won"\n'))


def test_leadflow_matches_the_sklearn_baseline_and_recommends_a_threshold(
        tmp_path: Path) -> None:
    settings = Settings.load({"LEADFLOW_DATA_DIR": str(tmp_path)}, tmp_path / "none.toml")
    bench = run_export_bench(EXPORT, MAPPING, settings, gbm=False)
    lr = bench.line("leadflow logistic regression").roc_auc
    base = bench.line("sklearn baseline (one-hot + scaling + LR)").roc_auc
    assert bench.split == "time" and bench.examples == 9_240
    assert lr >= base - 0.01, bench.table()
    assert lr > 0.8 > bench.lines[-1].roc_auc  # real signal; the points model knows none of it
    assert bench.advice is not None and isinstance(bench.advice["recommended"], int)
    assert bench.period_days == pytest.approx(9_240 * 15 / 1440)
