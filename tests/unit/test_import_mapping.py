"""`leadflow import` without Kafka: the mapping file, rows → records, bad rows with their line
numbers, deterministic ids, and the command's reports and exit codes (--dry-run)."""

from __future__ import annotations

import csv
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import lifecycle
from streams.errors import LeadflowError
from streams.importing.command import EXAMPLES, import_command
from streams.importing.exceptions import ExportError, MappingError
from streams.importing.export import Export, OfflineRegistry, Summary, rejected_path
from streams.importing.mapping import ImportMapping, load_mapping, parse_mapping
from streams.importing.rows import (
    MappedRow,
    RowError,
    crm_lead_id,
    derived_lead_id,
    map_row,
    status_path,
)

MAPPING_FILE = EXAMPLES / "example-mapping.toml"
EXPORT_FILE = EXAMPLES / "example-export.csv"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SKEW = timedelta(days=1)
LEAD_ID = "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"

BASE_DOC: dict[str, Any] = {
    "columns": {
        "lead_id": "id", "email": "email", "first_name": "first", "last_name": "last",
        "company_name": "company", "company_size": "size", "region": "region",
        "created_at": "created", "lawful_basis": "consent", "status": "status",
        "status_at": "status_at", "disqualification_reason": "reason", "sales_notes": "notes",
        "owner": "owner", "tech_stack": "tech",
    },
    "activities": {"pricing": "pricing_page_view", "demos": "DEMO_REQUEST"},
    "statuses": {"Closed - Won": "CLOSED_WON", "Unqualified": "disqualified", "Open": "NEW"},
    "defaults": {"lawful_basis": "LEGITIMATE_INTEREST"},
}
BASE_ROW = {
    "id": LEAD_ID, "email": "Pat.Doe@Example.org", "first": "Pat", "last": "Doe",
    "company": "Example Corp", "size": "51-200", "region": "EMEA",
    "created": "2025-03-01T09:00:00Z", "consent": "", "status": "Closed - Won",
    "status_at": "2025-04-01T12:00:00Z", "reason": "", "notes": "", "owner": "rep-amy",
    "tech": "AWS; Kafka ;", "pricing": "2", "demos": "1",
}


def mapping(**changes: dict[str, Any]) -> ImportMapping:
    doc = {k: dict(v) for k, v in BASE_DOC.items()}
    for section, values in changes.items():
        doc.setdefault(section, {}).update(values)
        for key, value in values.items():
            if value is None:
                del doc[section][key]
    return parse_mapping(doc)


def row(**cells: str) -> dict[str, str]:
    return {**BASE_ROW, **cells}


def mapped(cells: dict[str, str], m: ImportMapping | None = None, line: int = 2) -> MappedRow:
    result = map_row(m or mapping(), line, cells, observed_at=NOW, max_skew=SKEW)
    assert isinstance(result, MappedRow), result
    return result


def rejected(cells: dict[str, str], m: ImportMapping | None = None, line: int = 2) -> RowError:
    result = map_row(m or mapping(), line, cells, observed_at=NOW, max_skew=SKEW)
    assert isinstance(result, RowError), result
    return result


def of_kind(result: MappedRow, kind: str) -> list[dict[str, Any]]:
    return [r for k, r in result.records if k == kind]


# --- the mapping file ------------------------------------------------------------------------


def test_the_shipped_example_loads_and_every_row_imports() -> None:
    m = load_mapping(MAPPING_FILE)
    assert m.lead_ids == "crm" and m.handover_ms == 3_600_000
    summary = Summary()
    results = list(Export(EXPORT_FILE, m).plan(
        observed_at=NOW, max_skew=SKEW, codec=_codec(), summary=summary,
    ))
    assert [r for _, r in results if isinstance(r, RowError)] == []
    assert summary.rows == summary.imported == 8
    assert set(summary.events) == {"leads.captured", "leads.activity", "crm.status-changed"}


@pytest.mark.parametrize(
    ("doc_change", "names"),
    [
        ({"colums": {}}, "[colums]"),
        ({"columns": {"emial": "x"}}, "[columns] emial"),
        ({"columns": {"email": None}}, "[columns] email"),
        ({"columns": {"region": None}}, "[columns] region"),
        ({"defaults": {"lawful_basis": None}, "columns": {"lawful_basis": None}},
         "[columns] lawful_basis"),
        ({"columns": {"first_name": ""}}, "[columns] first_name"),
        ({"columns": {"first_name": 3}}, "[columns] first_name"),
        ({"statuses": {"Won": "WON"}}, "[statuses] 'Won'"),
        ({"statuses": {"closed -   WON": "CLOSED_LOST"}}, "listed twice"),
        ({"activities": {"views": "teleport"}}, "[activities] 'views'"),
        ({"lawful_bases": {"yes": "maybe"}}, "[lawful_bases] 'yes'"),
        ({"company_sizes": {"Huge": "lots"}}, "[company_sizes] 'Huge'"),
        ({"defaults": {"email": "x@example.org"}}, "[defaults] email"),
        ({"defaults": {"status": "Sold"}}, "[defaults] status"),
        ({"defaults": {"nickname": "x"}}, "[defaults] nickname"),
        ({"formats": {"timezone": "Mars/Olympus"}}, "[formats] timezone"),
        ({"formats": {"datetime": "dd/mm/yyyy"}}, "[formats] datetime"),
        ({"formats": {"lead_ids": "salesforce"}}, "[formats] lead_ids"),
        ({"formats": {"handover": "soon"}}, "[formats] handover"),
        ({"formats": {"delimiter": ",,"}}, "[formats] delimiter"),
        ({"formats": {"encoding": "klingon"}}, "[formats] encoding"),
        ({"formats": {"colour": "red"}}, "[formats] colour"),
        ({"columns": {"status": None}}, "[columns] status_at"),
    ],
)
def test_mapping_errors_name_the_bad_key(doc_change: dict[str, Any], names: str) -> None:
    with pytest.raises(MappingError) as info:
        mapping(**doc_change)
    assert names in str(info.value)


def test_mapping_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text("[columns]\nemail = \n")
    with pytest.raises(MappingError, match="m.toml: not valid TOML"):
        load_mapping(bad)
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "missing.toml")


def test_a_mapped_column_missing_from_the_export_is_named(tmp_path: Path) -> None:
    export = _write_csv(tmp_path, [{k: v for k, v in BASE_ROW.items() if k != "owner"}])
    with pytest.raises(MappingError, match=r"\[columns\] owner = 'owner': no such column"):
        Export(export, mapping()).header()
    doubled = tmp_path / "doubled.csv"
    doubled.write_text("email,email\n")
    with pytest.raises(ExportError, match="appear twice"):
        Export(doubled, mapping()).header()


# --- rows → records -----------------------------------------------------------------------


def test_a_row_becomes_a_capture_its_activities_and_a_legal_status_history() -> None:
    result = mapped(row())
    kinds = [k for k, _ in result.records]
    assert kinds == ["lead", "activity", "activity", "activity",
                     "status", "status", "status", "status"]
    lead = of_kind(result, "lead")[0]
    assert lead["lead_id"] == result.lead_id == LEAD_ID
    assert lead["email"] == "pat.doe@example.org"  # the contract normalised it
    assert lead["company_size"] == "SIZE_51_200"
    assert lead["enrichment"]["tech_stack"] == ["AWS", "Kafka"]
    assert lead["consent"]["lawful_basis"] == "LEGITIMATE_INTEREST"  # [defaults], cell blank
    assert lead["consent"]["consented_at"] == lead["occurred_at"]
    assert lead["source_system"] == "import"
    activities = of_kind(result, "activity")
    assert [a["activity_type"] for a in activities] == ["PRICING_PAGE_VIEW"] * 2 + ["DEMO_REQUEST"]
    statuses = of_kind(result, "status")
    assert [s["new_status"] for s in statuses] == ["MQL", "SAL", "SQL", "CLOSED_WON"]
    created = lead["occurred_at"]
    assert statuses[0]["occurred_at"] == created + timedelta(hours=1)  # the handover
    assert statuses[-1]["occurred_at"] == datetime(2025, 4, 1, 12, tzinfo=UTC)
    assert statuses[0]["updated_by"] is None and statuses[-1]["updated_by"] == "rep-amy"
    assert all(created < a["occurred_at"] < statuses[0]["occurred_at"] for a in activities)


@pytest.mark.parametrize("final", sorted(lifecycle.STATUSES))
def test_every_final_status_is_reached_by_legal_moves(final: str) -> None:
    result = mapped(row(status=final, reason="budget", notes="no budget"))
    statuses = of_kind(result, "status")
    assert [s["new_status"] for s in statuses] == list(status_path(final))
    state = None
    for s in statuses:
        state, _ = lifecycle.apply(state, lifecycle.new_change(s))
    fold = lifecycle.fold(state)
    assert fold.status == final
    assert all(t.legal and not t.violations for t in fold.transitions)
    if final == "NEW":
        assert statuses == []  # never handed over


@given(
    spelling=st.sampled_from(["Closed - Won", "closed - won", "CLOSED -  WON", " closed\t- Won ",
                              "closed won", "Closed_Won", "closed-won"]),
    swap=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_status_values_map_in_any_case_and_spacing(spelling: str, swap: list[bool]) -> None:
    text = "".join(c.swapcase() if s else c for c, s in zip(spelling, swap + [False] * 20,
                                                            strict=False))
    assert mapping().status(text) == "CLOSED_WON"


def test_statuses_outside_the_table_may_be_leadflow_spellings_but_nothing_else() -> None:
    m = mapping()
    assert m.status("Unqualified") == "DISQUALIFIED"
    assert m.status("no response") == "NO_RESPONSE"
    error = rejected(row(status="Sold"))
    assert (error.code, error.where) == ("INVALID_ENUM", "status")
    assert "'Sold'" in error.detail


@settings(max_examples=60, deadline=None)
@given(
    pricing=st.integers(0, 40), demos=st.integers(0, 40),
    to_final_s=st.integers(0, 90 * 86_400),
    final=st.sampled_from(sorted(lifecycle.STATUSES - {"NEW"})),
)
def test_activities_precede_every_status_and_statuses_keep_path_order(
    pricing: int, demos: int, to_final_s: int, final: str
) -> None:
    created = datetime(2025, 3, 1, 9, tzinfo=UTC)
    status_at = created + timedelta(seconds=to_final_s)
    result = mapped(row(pricing=str(pricing), demos=str(demos), status=final,
                        status_at=status_at.isoformat()))
    activities = of_kind(result, "activity")
    statuses = of_kind(result, "status")
    assert len(activities) == pricing + demos
    assert len({a["event_id"] for a in activities}) == pricing + demos
    times = [s["occurred_at"] for s in statuses]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(created <= a["occurred_at"] <= times[0] for a in activities)
    if final != "MQL":  # MQL as the final status is dated at status_at like any final one
        assert times[0] <= created + timedelta(hours=1)
    assert abs(times[-1] - status_at) <= timedelta(milliseconds=len(times))


@pytest.mark.parametrize(
    ("cells", "code", "where"),
    [
        ({"email": "not-an-email"}, "INVALID_EMAIL", "email"),
        ({"email": ""}, "MISSING_FIELD", "email"),
        ({"status": "Maybe later"}, "INVALID_ENUM", "status"),
        ({"status": ""}, "MISSING_FIELD", "status"),
        ({"created": ""}, "MISSING_FIELD", "created"),
        ({"created": "31/31/2025"}, "FIELD_MISMATCH", "created"),
        ({"created": "1999-12-31T00:00:00Z"}, "TIMESTAMP_ABSURD", "created"),
        ({"created": "2026-03-01T00:00:00Z", "status": "Open"}, "TIMESTAMP_ABSURD",
         "created"),  # after NOW + skew
        ({"status_at": "2025-02-01T00:00:00Z"}, "TIMESTAMP_ABSURD", "status_at"),
        ({"status_at": ""}, "MISSING_FIELD", "status_at"),
        ({"status_at": "someday"}, "FIELD_MISMATCH", "status_at"),
        ({"id": "not-a-uuid"}, "FIELD_MISMATCH", "id"),
        ({"id": " "}, "MISSING_FIELD", "id"),
        ({"size": "lots"}, "INVALID_ENUM", "size"),
        ({"consent": "maybe"}, "INVALID_ENUM", "consent"),
        ({"pricing": "-1"}, "FIELD_MISMATCH", "pricing"),
        ({"pricing": "2.5"}, "FIELD_MISMATCH", "pricing"),
        ({"pricing": "many"}, "FIELD_MISMATCH", "pricing"),
        ({"demos": "1001"}, "FIELD_MISMATCH", "demos"),
    ],
)
def test_bad_rows_name_the_column_and_the_reason(cells: dict[str, str], code: str,
                                                 where: str) -> None:
    error = rejected(row(**cells), line=7)
    assert (error.line, error.code, error.where) == (7, code, where), error
    assert str(error).startswith(f"line 7: {code} {where}: ")


def test_consent_without_a_basis_or_a_date_is_no_basis_recorded() -> None:
    # Incomplete history, not malformed: the lead is kept, with no lawful basis recorded.
    no_default = mapping(defaults={"lawful_basis": None})
    assert of_kind(mapped(row(), no_default), "lead")[0]["consent"]["lawful_basis"] == "UNKNOWN"
    dated = mapping(columns={"consent_at": "consent_at"})
    undated = mapped({**row(consent="consent"), "consent_at": ""}, dated)
    assert of_kind(undated, "lead")[0]["consent"] is None
    ok = mapped({**row(consent="Consent"), "consent_at": "2025-02-01"}, dated)
    lead = of_kind(ok, "lead")[0]
    assert lead["consent"] == {"lawful_basis": "CONSENT", "channels": [],
                               "consented_at": datetime(2025, 2, 1, tzinfo=UTC)}


def test_counts_tolerate_spreadsheet_spellings() -> None:
    result = mapped(row(pricing="3.0", demos=" "))
    assert len(of_kind(result, "activity")) == 3


def test_times_read_iso_and_the_mapping_formats_in_its_time_zone() -> None:
    m = mapping(formats={"datetime": ["%m/%d/%Y %I:%M %p"], "timezone": "America/New_York"})
    lead = of_kind(mapped(row(created="03/14/2025 9:05 AM", status="Open"), m), "lead")[0]
    assert lead["occurred_at"] == datetime(2025, 3, 14, 13, 5, tzinfo=UTC)  # EDT, UTC-4
    lead = of_kind(mapped(row(created="2025-01-14 09:05:00.123456", status="Open"), m), "lead")[0]
    assert lead["occurred_at"] == datetime(2025, 1, 14, 14, 5, 0, 123_000, tzinfo=UTC)  # EST
    lead = of_kind(mapped(row(created="2025-01-14T09:05:00+01:00", status="Open"), m), "lead")[0]
    assert lead["occurred_at"] == datetime(2025, 1, 14, 8, 5, tzinfo=UTC)


def test_new_means_captured_only_and_mql_is_one_change_at_the_status_time() -> None:
    assert of_kind(mapped(row(status="Open")), "status") == []
    mql = of_kind(mapped(row(status="mql")), "status")
    assert [(s["new_status"], s["occurred_at"]) for s in mql] == [
        ("MQL", datetime(2025, 4, 1, 12, tzinfo=UTC))]


def test_without_a_status_time_the_history_is_dated_at_the_handover() -> None:
    m = mapping(columns={"status_at": None})
    statuses = of_kind(mapped(row(status="Unqualified", reason="r", notes="n"), m), "status")
    created = datetime(2025, 3, 1, 9, tzinfo=UTC)
    assert [s["occurred_at"] for s in statuses] == [
        created + timedelta(hours=1), created + timedelta(hours=1, milliseconds=1)]
    assert (statuses[-1]["disqualification_reason"], statuses[-1]["sales_notes"]) == ("r", "n")
    assert statuses[0]["disqualification_reason"] is None


# --- deterministic ids ------------------------------------------------------------------------


def test_the_same_row_gives_the_same_ids_every_time() -> None:
    first, second = mapped(row()), mapped(row())
    assert first.records == second.records
    ids = [r["event_id"] for _, r in first.records]
    assert len(set(ids)) == len(ids)
    other = mapped(row(id=str(uuid.uuid4())))
    assert not set(ids) & {r["event_id"] for _, r in other.records}


@given(email=st.emails(), minutes=st.integers(0, 10**6))
@settings(max_examples=50, deadline=None)
def test_derived_lead_ids_follow_the_normalised_email_and_the_capture_time(
    email: str, minutes: int
) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    try:
        same = derived_lead_id(email.upper(), at) == derived_lead_id(email, at)
    except LeadflowError:  # hypothesis may build addresses email-validator refuses
        return
    assert same
    assert derived_lead_id(email, at) != derived_lead_id(email, at + timedelta(minutes=1))


def test_rows_without_a_lead_id_column_get_a_derived_one() -> None:
    m = mapping(columns={"lead_id": None})
    result = mapped(row(email="PAT.DOE@example.org"), m)
    assert result.lead_id == derived_lead_id("pat.doe@example.org",
                                             datetime(2025, 3, 1, 9, tzinfo=UTC))


def test_crm_ids_and_lenient_uuids() -> None:
    assert mapped(row(id=LEAD_ID.upper())).lead_id == LEAD_ID
    crm = mapping(formats={"lead_ids": "crm"})
    assert mapped(row(id="00Q5e00001AaA01"), crm).lead_id == crm_lead_id("00Q5e00001AaA01")
    assert crm_lead_id("00Q5e00001AaA01") != crm_lead_id("00Q5e00001AaA02")


# --- a whole file -----------------------------------------------------------------------------


def test_bad_rows_in_a_file_are_reported_with_their_editor_line_numbers(tmp_path: Path) -> None:
    rows = [
        row(),  # line 2
        row(id=str(uuid.uuid4()), email="bad-email"),  # line 3
        {k: "" for k in BASE_ROW},  # line 4: empty, skipped and counted
        row(id=str(uuid.uuid4()), first="Multi\nLine", status="Sold"),  # lines 5-6
        row(),  # line 7: the same lead as line 2
        row(id=str(uuid.uuid4()), created="yesterday"),  # line 8
        row(id=str(uuid.uuid4()), created=""),  # line 9
    ]
    export = _write_csv(tmp_path, rows)
    with export.open("a") as fh:
        fh.write("too,few\n")  # line 10
    summary = Summary()
    results = list(Export(export, mapping()).plan(observed_at=NOW, max_skew=SKEW,
                                                  summary=summary))
    errors = [str(r) for _, r in results if isinstance(r, RowError)]
    assert [e.split(":")[0] for e in errors] == [
        "line 3", "line 5", "line 7", "line 8", "line 9", "line 10"]
    assert errors[0].startswith("line 3: INVALID_EMAIL email:")
    assert errors[1].startswith("line 5: INVALID_ENUM status:")
    assert errors[2] == "line 7: FIELD_MISMATCH id: same lead id as line 2"
    assert errors[3].startswith("line 8: FIELD_MISMATCH created:")
    assert errors[4].startswith("line 9: MISSING_FIELD created:")
    assert errors[5].startswith("line 10: FIELD_MISMATCH row: 2 cells where the header has")
    assert (summary.rows, summary.empty, summary.imported, summary.rejected_rows) == (7, 1, 1, 6)


def test_an_undecodable_export_stops_with_a_clear_error(tmp_path: Path) -> None:
    export = _write_csv(tmp_path, [row()])
    with export.open("ab") as fh:
        fh.write(b"\xff\xfe,broken\n")
    with pytest.raises(ExportError, match="line 3 is not utf-8-sig text"):
        list(Export(export, mapping()).plan(observed_at=NOW, max_skew=SKEW))


# --- the command (dry run: no broker) ----------------------------------------------------------


def test_dry_run_reports_rejects_and_writes_them_next_to_the_export(tmp_path: Path) -> None:
    export = _write_csv(tmp_path, [row(), row(id=str(uuid.uuid4()), email="nope")])
    mapping_file = _write_mapping(tmp_path)
    result = CliRunner().invoke(
        import_command, [str(export), "--mapping", str(mapping_file), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "line 3: INVALID_EMAIL email:" in result.stderr
    assert "REJECTED    1 (INVALID_EMAIL 1)" in result.stdout
    assert "to produce  crm.status-changed 4, leads.activity 3, leads.captured 1" in result.stdout
    with rejected_path(export).open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [(w["line"], w["email"]) for w in written] == [("3", "nope")]
    assert written[0]["error"].startswith("INVALID_EMAIL email:")

    strict = CliRunner().invoke(
        import_command, [str(export), "-m", str(mapping_file), "--dry-run", "--strict"]
    )
    assert strict.exit_code == 2 and "nothing imported" in strict.stderr

    export.write_text(export.read_text().splitlines()[0] + "\n" + ",".join(
        f'"{v}"' for v in row().values()) + "\n")
    clean = CliRunner().invoke(import_command, [str(export), "-m", str(mapping_file), "--dry-run"])
    assert clean.exit_code == 0 and "rejected    0" in clean.stdout
    assert not rejected_path(export).exists()  # the earlier run's rejects are gone


def test_exit_codes_for_nothing_importable_and_unusable_mappings(tmp_path: Path) -> None:
    export = _write_csv(tmp_path, [row(email="nope")])
    mapping_file = _write_mapping(tmp_path)
    result = CliRunner().invoke(import_command, [str(export), "-m", str(mapping_file)])
    assert result.exit_code == 1 and "no row could be imported" in result.stderr
    mapping_file.write_text(mapping_file.read_text().replace("[columns]", "[colums]"))
    result = CliRunner().invoke(import_command, [str(export), "-m", str(mapping_file)])
    assert result.exit_code == 2 and "[colums]: unknown section" in result.stderr


# --- helpers ----------------------------------------------------------------------------------


def _codec() -> Any:
    from streams.codec import Codec

    return Codec(OfflineRegistry())


def _write_csv(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_mapping(tmp_path: Path) -> Path:
    lines = []
    for section, values in BASE_DOC.items():
        lines.append(f"[{section}]")
        lines += [f'"{k}" = "{v}"' for k, v in values.items()]
    path = tmp_path / "mapping.toml"
    path.write_text("\n".join(lines) + "\n")
    assert tomllib.loads(path.read_text())["columns"]["email"] == "email"
    return path
