"""The Avro contracts: conventions, shared types, and FULL_TRANSITIVE compatibility checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streams import schemas
from streams.errors import ErrorCode

SPEC_RECORDS = {
    "LeadCaptured",
    "ErasureRequested",
    "ActivityRecorded",
    "LeadStatusChanged",
    "SalesTouchLogged",
    "LeadScored",
    "LeadRouted",
    "SlaEvaluated",
    "ModelPublished",
    "DeadLetter",
    "IdentityClaim",
    "ExternalEvent",
    "IdentityResolved",
    "RoutingRequest",
    "MarketingFact",
    "TrainingExample",
}


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _named(schema: dict[str, Any], type_name: str) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for _ in schemas._walk(schema, names):
        pass
    return names[f"{schemas.NAMESPACE}.{type_name}"]


def test_repo_contracts_have_no_problems() -> None:
    assert schemas.check_all() == []


def test_every_record_of_the_spec_has_a_v1() -> None:
    assert set(schemas.record_names()) == SPEC_RECORDS
    for name in SPEC_RECORDS:
        assert (schemas.schema_dir() / name / "v1.avsc").is_file()


@pytest.mark.parametrize("name", sorted(SPEC_RECORDS))
def test_each_file_parses_standalone(name: str) -> None:
    for path in (schemas.schema_dir() / name).glob("*.avsc"):
        parsed = fastavro.parse_schema(json.loads(path.read_text()))
        assert parsed["name"] == f"{schemas.NAMESPACE}.{name}"


def test_versions_and_latest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = schemas.latest("ActivityRecorded")
    v2 = copy.deepcopy(v1)
    v2["fields"].append({"name": "extra", "type": ["null", "string"], "default": None, "doc": "x"})
    (tmp_path / "ActivityRecorded").mkdir()
    (tmp_path / "ActivityRecorded" / "v1.avsc").write_text(json.dumps(v1))
    (tmp_path / "ActivityRecorded" / "v2.avsc").write_text(json.dumps(v2))
    (tmp_path / "ActivityRecorded" / "notes.txt").write_text("ignored")
    monkeypatch.setattr(schemas, "schema_dir", lambda: tmp_path)
    assert [n for n, _ in schemas.versions("ActivityRecorded")] == [1, 2]
    assert schemas.latest("ActivityRecorded") == v2
    assert schemas.check_all() == []
    with pytest.raises(KeyError):
        schemas.versions("NoSuchRecord")


def test_dead_letter_error_codes_match_errors_module() -> None:
    enum = _named(schemas.latest("DeadLetter"), "ErrorCode")
    assert enum["symbols"] == [code.value for code in ErrorCode] + ["UNKNOWN"]
    assert enum["default"] == "UNKNOWN"


def test_shared_named_types_are_identical_copies() -> None:
    routed = _named(schemas.latest("LeadRouted"), "LeadTier")
    evaluated = _named(schemas.latest("SlaEvaluated"), "LeadTier")
    assert routed == evaluated


def test_conventions_on_fields() -> None:
    captured = schemas.latest("LeadCaptured")
    assert _field(captured, "event_id")["type"] == {"type": "string", "logicalType": "uuid"}
    assert _field(captured, "occurred_at")["type"] == {
        "type": "long",
        "logicalType": "timestamp-millis",
    }
    assert _field(captured, "source_system")["default"] == "api"
    assert _field(captured, "correlation_id") == {
        "name": "correlation_id",
        "type": ["null", "string"],
        "doc": _field(captured, "correlation_id")["doc"],
        "default": None,
    }
    assert _field(schemas.latest("ActivityRecorded"), "properties")["default"] == {}


def test_samples_cover_every_enum_symbol() -> None:
    schema = schemas.latest("LeadStatusChanged")
    family = schemas.samples(schema)
    symbols = _named(schema, "LeadStatus")["symbols"]
    assert {s["new_status"] for s in family} == set(symbols)
    assert {s["previous_status"] for s in family} >= {None, *symbols[:-1]}
    assert family == schemas.samples(schema)  # deterministic


# --- detection of incompatible changes -------------------------------------------------------


def _v1() -> dict[str, Any]:
    return copy.deepcopy(schemas.latest("LeadStatusChanged"))


def test_adding_an_optional_field_is_compatible() -> None:
    v2 = _v1()
    v2["fields"].append({"name": "team", "type": ["null", "string"], "default": None, "doc": "x"})
    assert schemas.check_compatibility(_v1(), v2) == []


def test_adding_a_required_field_is_detected() -> None:
    v2 = _v1()
    v2["fields"].append({"name": "team", "type": "string", "doc": "Team of the rep."})
    problems = schemas.check_compatibility(_v1(), v2)
    assert problems and all(p.startswith("new cannot read old") for p in problems)


def test_removing_a_field_without_default_is_detected() -> None:
    v2 = _v1()
    v2["fields"] = [f for f in v2["fields"] if f["name"] != "new_status"]
    problems = schemas.check_compatibility(_v1(), v2)
    assert problems and all(p.startswith("old cannot read new") for p in problems)


def test_removing_an_enum_symbol_without_default_is_detected() -> None:
    old, new = _v1(), _v1()
    for schema, drop in ((old, False), (new, True)):
        enum = _field(schema, "previous_status")["type"][1]
        del enum["default"]
        if drop:
            enum["symbols"].remove("BAD_FIT")
    problems = schemas.check_compatibility(old, new)
    assert any("new cannot read old" in p and "BAD_FIT" in p for p in problems)


def test_changing_a_field_type_is_detected() -> None:
    v2 = _v1()
    _field(v2, "updated_by")["type"] = ["null", "long"]
    assert schemas.check_compatibility(_v1(), v2)


def test_check_all_reports_an_incompatible_v2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v2 = _v1()
    v2["fields"].append({"name": "team", "type": "string", "doc": "Team of the rep."})
    target = tmp_path / "LeadStatusChanged"
    target.mkdir()
    (target / "v1.avsc").write_text(json.dumps(_v1()))
    (target / "v2.avsc").write_text(json.dumps(v2))
    monkeypatch.setattr(schemas, "schema_dir", lambda: tmp_path)
    problems = schemas.check_all()
    assert problems and all(p.startswith("LeadStatusChanged v1<->v2") for p in problems)


def test_check_all_reports_drifting_shared_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routed, evaluated = schemas.latest("LeadRouted"), schemas.latest("SlaEvaluated")
    _named(evaluated, "LeadTier")["doc"] = "a different story"
    for schema in (routed, evaluated):
        (tmp_path / schema["name"]).mkdir()
        (tmp_path / schema["name"] / "v1.avsc").write_text(json.dumps(schema))
    monkeypatch.setattr(schemas, "schema_dir", lambda: tmp_path)
    assert schemas.check_all() == [
        "SlaEvaluated: io.leadflow.events.LeadTier differs from its definition in LeadRouted"
    ]


def test_check_all_reports_file_layout_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "Wrong").mkdir()
    (tmp_path / "Wrong" / "v2.avsc").write_text(json.dumps(_v1()))
    monkeypatch.setattr(schemas, "schema_dir", lambda: tmp_path)
    problems = schemas.check_all()
    assert "Wrong: versions [2] are not 1..N" in problems
    assert "Wrong/v2.avsc: must define record Wrong" in problems


# --- lint -------------------------------------------------------------------------------------


def _record(fields: list[dict[str, Any]], doc: str | None = "A record.") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "record", "name": "R", "namespace": "t", "fields": fields}
    if doc:
        schema["doc"] = doc
    return schema


def test_lint_finds_missing_docs() -> None:
    problems = schemas.lint(_record([{"name": "a", "type": "int"}], doc=None))
    assert problems == ["R: record has no doc", "R.a: field has no doc"]


def test_lint_finds_enum_without_default() -> None:
    enum = {"type": "enum", "name": "E", "doc": "e", "symbols": ["A", "B"]}
    assert schemas.lint(_record([{"name": "e", "type": enum, "doc": "d"}])) == [
        "E: enum has no default among its symbols"
    ]


def test_lint_finds_zero_width_collection_items() -> None:
    empty = {"type": "record", "name": "Empty", "doc": "e", "fields": []}
    fields = [
        {"name": "a", "type": {"type": "array", "items": "null"}, "doc": "d"},
        {"name": "m", "type": {"type": "map", "values": empty}, "doc": "d"},
        {"name": "ok", "type": {"type": "array", "items": ["null", "int"]}, "doc": "d"},
    ]
    problems = schemas.lint(_record(fields))
    assert len(problems) == 2
    assert all("zero bytes wide" in p for p in problems)


def test_lint_reports_unparsable_schema() -> None:
    problems = schemas.lint(_record([{"name": "a", "type": "nope", "doc": "d"}]))
    assert len(problems) == 1 and problems[0].startswith("does not parse")
