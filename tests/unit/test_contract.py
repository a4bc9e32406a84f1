"""The contract on records from any door: normalisation, every rejection, robustness."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import contract, payloads
from streams.core.contract import validate
from streams.errors import ErrorCode, LeadflowError

EXAMPLES = Path(__file__).parents[3] / "shared" / "examples"
AVRO = Path(__file__).parents[2] / "avro"
OBSERVED = datetime(2026, 11, 23, 12, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def records() -> dict[str, dict[str, Any]]:
    return {
        "lead": payloads.lead_from_json(example("lead-captured")),
        "activity": payloads.activity_from_json(example("activity-recorded")),
        "status": payloads.status_from_json(example("crm-lead-status-updated")["payload"]),
        "touch": payloads.touch_from_json(example("crm-lead-touch-logged")["payload"]),
    }


def check(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    return validate(kind, record, observed_at=OBSERVED, max_skew=SKEW)


@contextmanager
def raises(code: ErrorCode, field: str | None = None) -> Iterator[None]:
    with pytest.raises(LeadflowError) as info:
        yield
    assert info.value.code is code, info.value
    if field is not None:
        assert info.value.field == field, info.value


def changed(kind: str, path: str, value: Any) -> dict[str, Any]:
    record = records()[kind]
    *parents, last = path.split(".")
    target = record
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return record


# --- normalisation -------------------------------------------------------------------------


def test_lead_email_is_normalised_and_lower_cased() -> None:
    record = check("lead", changed("lead", "email", "  Dana.Whitfield@NORTHWIND-analytics.io "))
    assert record["email"] == "dana.whitfield@northwind-analytics.io"


def test_validate_returns_a_copy_and_leaves_the_input_alone() -> None:
    original = records()["lead"]
    before = copy.deepcopy(original)
    result = check("lead", original)
    assert original == before
    assert result is not original
    assert result["email"] != original["email"]


@pytest.mark.parametrize("kind", ["lead", "activity", "status", "touch"])
def test_examples_are_valid_and_validation_is_idempotent(kind: str) -> None:
    once = check(kind, records()[kind])
    assert check(kind, once) == once


def test_uuid_spellings_are_canonicalised() -> None:
    lead_id = "3F6C2A9E8D1B4C579A0E2B7D4F1C8E53"
    record = changed("activity", "lead_id", lead_id)
    record["event_id"] = uuid.UUID("0b8e1f7a-5c3d-4e29-b6a1-9f2c7d4e8a10")  # as fastavro decodes
    result = check("activity", record)
    assert result["lead_id"] == "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"
    assert result["event_id"] == "0b8e1f7a-5c3d-4e29-b6a1-9f2c7d4e8a10"


def test_timestamps_in_other_zones_become_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 11, 21, 11, 31, 5, tzinfo=plus_two)
    result = check("activity", changed("activity", "occurred_at", moment))
    assert result["occurred_at"].tzinfo is UTC
    assert result["occurred_at"] == moment


def test_optional_text_is_stripped_and_blank_becomes_none() -> None:
    result = check("status", changed("status", "sales_notes", "   "))
    assert result["sales_notes"] is None
    assert check("lead", changed("lead", "phone", " +1 555 "))["phone"] == "+1 555"


def test_tolerated_defaults() -> None:
    assert check("lead", changed("lead", "company_size", "UNKNOWN"))["company_size"] == "UNKNOWN"
    assert check("status", changed("status", "previous_status", "UNKNOWN"))
    assert check("touch", changed("touch", "channel", "OTHER"))
    assert check("activity", changed("activity", "activity_type", "OTHER"))
    assert check("activity", changed("activity", "properties", None))["properties"] == {}


def test_disqualification_without_reason_is_an_sla_matter_not_a_rejection() -> None:
    record = changed("status", "disqualification_reason", None)
    record["sales_notes"] = None
    assert check("status", record)["new_status"] == "DISQUALIFIED"


def test_skew_boundary_is_inclusive() -> None:
    assert check("activity", changed("activity", "occurred_at", OBSERVED + SKEW))
    assert check("activity", changed("activity", "occurred_at", contract.EARLIEST))


# --- rejections ----------------------------------------------------------------------------


REJECTIONS = [
    ("lead", "email", "not-an-email", ErrorCode.INVALID_EMAIL, "email"),
    ("lead", "email", "dana@localhost", ErrorCode.INVALID_EMAIL, "email"),
    ("lead", "email", None, ErrorCode.MISSING_FIELD, "email"),
    ("lead", "email", " ", ErrorCode.MISSING_FIELD, "email"),
    ("lead", "company_name", 7, ErrorCode.FIELD_MISMATCH, "company_name"),
    ("lead", "region", ["NA-West"], ErrorCode.FIELD_MISMATCH, "region"),
    ("lead", "lead_id", "lead-17", ErrorCode.FIELD_MISMATCH, "lead_id"),
    ("lead", "lead_id", ..., ErrorCode.MISSING_FIELD, "lead_id"),
    ("lead", "event_id", "", ErrorCode.MISSING_FIELD, "event_id"),
    ("lead", "event_id", 12, ErrorCode.FIELD_MISMATCH, "event_id"),
    ("lead", "company_size", "SIZE_HUGE", ErrorCode.INVALID_ENUM, "company_size"),
    ("lead", "company_size", None, ErrorCode.MISSING_FIELD, "company_size"),
    ("lead", "marketing_score", "72", ErrorCode.FIELD_MISMATCH, "marketing_score"),
    ("lead", "marketing_score", 2**31, ErrorCode.FIELD_MISMATCH, "marketing_score"),
    ("lead", "trigger_actions", "x", ErrorCode.FIELD_MISMATCH, "trigger_actions"),
    ("lead", "enrichment", None, ErrorCode.MISSING_FIELD, "enrichment"),
    ("lead", "attribution", [], ErrorCode.FIELD_MISMATCH, "attribution"),
    ("lead", "consent", "yes", ErrorCode.FIELD_MISMATCH, "consent"),
    ("lead", "consent.lawful_basis", "VITAL", ErrorCode.INVALID_ENUM, "consent.lawful_basis"),
    (
        "lead",
        "consent.consented_at",
        OBSERVED + timedelta(days=1),
        ErrorCode.TIMESTAMP_ABSURD,
        "consent.consented_at",
    ),
    ("lead", "consent.channels", "email", ErrorCode.FIELD_MISMATCH, "consent.channels"),
    ("lead", "source_system", "", ErrorCode.MISSING_FIELD, "source_system"),
    ("lead", "correlation_id", 5, ErrorCode.FIELD_MISMATCH, "correlation_id"),
    (
        "activity",
        "occurred_at",
        datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
        ErrorCode.TIMESTAMP_ABSURD,
        "occurred_at",
    ),
    (
        "activity",
        "occurred_at",
        datetime(1970, 1, 1, tzinfo=UTC),
        ErrorCode.TIMESTAMP_ABSURD,
        "occurred_at",
    ),
    (
        "activity",
        "occurred_at",
        OBSERVED + SKEW + timedelta(milliseconds=1),
        ErrorCode.TIMESTAMP_ABSURD,
        "occurred_at",
    ),
    ("activity", "occurred_at", datetime(2026, 11, 21), ErrorCode.FIELD_MISMATCH, "occurred_at"),
    ("activity", "occurred_at", "2026-11-21T09:31:05Z", ErrorCode.FIELD_MISMATCH, "occurred_at"),
    ("activity", "occurred_at", None, ErrorCode.MISSING_FIELD, "occurred_at"),
    ("activity", "activity_type", "TELEPORT", ErrorCode.INVALID_ENUM, "activity_type"),
    ("activity", "activity_type", ["DEMO_REQUEST"], ErrorCode.FIELD_MISMATCH, "activity_type"),
    ("activity", "properties", {"n": 1}, ErrorCode.FIELD_MISMATCH, "properties"),
    ("activity", "campaign_id", 3, ErrorCode.FIELD_MISMATCH, "campaign_id"),
    ("status", "new_status", "UNKNOWN", ErrorCode.INVALID_ENUM, "new_status"),
    ("status", "new_status", "Disqualified", ErrorCode.INVALID_ENUM, "new_status"),
    ("status", "new_status", None, ErrorCode.MISSING_FIELD, "new_status"),
    ("status", "previous_status", "LUKEWARM", ErrorCode.INVALID_ENUM, "previous_status"),
    ("status", "updated_by", 1, ErrorCode.FIELD_MISMATCH, "updated_by"),
    ("touch", "touch_id", "t-1", ErrorCode.FIELD_MISMATCH, "touch_id"),
    ("touch", "rep_id", " ", ErrorCode.MISSING_FIELD, "rep_id"),
    ("touch", "channel", "PIGEON", ErrorCode.INVALID_ENUM, "channel"),
    ("touch", "outcome", None, ErrorCode.MISSING_FIELD, "outcome"),
]


@pytest.mark.parametrize(("kind", "path", "value", "code", "field"), REJECTIONS)
def test_rejections(kind: str, path: str, value: Any, code: ErrorCode, field: str) -> None:
    with raises(code, field):
        check(kind, changed(kind, path, value))


def test_programming_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="topic kind"):
        validate("sla", records()["lead"], observed_at=OBSERVED, max_skew=SKEW)
    with pytest.raises(ValueError, match="timezone"):
        validate("lead", records()["lead"], observed_at=datetime(2026, 1, 1), max_skew=SKEW)


def test_email_normalisation_is_cached_including_rejections() -> None:
    contract._validated_email.cache_clear()
    for _ in range(3):
        assert contract.normalise_email("A.B@Example.COM") == "a.b@example.com"
        with raises(ErrorCode.INVALID_EMAIL, "email"):
            contract.normalise_email("nobody@")
    info = contract._validated_email.cache_info()
    assert (info.misses, info.hits) == (2, 4)


def test_error_text_and_pickling() -> None:
    import pickle

    err = LeadflowError(ErrorCode.INVALID_ENUM, "bad", field="channel")
    assert str(err) == "INVALID_ENUM: bad (field channel)"
    again = pickle.loads(pickle.dumps(err))
    assert (again.code, again.detail, again.field) == (err.code, err.detail, err.field)


# --- agreement with the Avro contracts -----------------------------------------------------


def avro_enums() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "enum":
                found[node["name"]] = node["symbols"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    # Oldest first, so the latest version of each contract is the one that stays.
    for path in sorted(AVRO.glob("*/v*.avsc"), key=lambda p: int(p.stem[1:])):
        walk(json.loads(path.read_text()))
    return found


@pytest.mark.parametrize(
    "enum",
    [
        contract.SizeBand,
        contract.LawfulBasis,
        contract.ActivityType,
        contract.LeadStatus,
        contract.TouchChannel,
        contract.TouchOutcome,
        ErrorCode,
    ],
)
def test_python_enums_match_the_avro_enums(enum: type) -> None:
    symbols = avro_enums().get(enum.__name__)
    if symbols is None:
        pytest.skip(f"no Avro enum {enum.__name__} under {AVRO}")
    python = [m.value for m in enum]  # type: ignore[attr-defined]
    # The Avro ErrorCode adds UNKNOWN as its default symbol.
    assert [s for s in symbols if s in python] == python
    assert set(symbols) - set(python) <= {"UNKNOWN"}


@pytest.mark.parametrize(
    ("kind", "schema"),
    [
        ("lead", "LeadCaptured"),
        ("activity", "ActivityRecorded"),
        ("status", "LeadStatusChanged"),
        ("touch", "SalesTouchLogged"),
    ],
)
def test_validated_records_fit_the_avro_schema(kind: str, schema: str) -> None:
    fastavro = pytest.importorskip("fastavro")
    path = AVRO / schema / "v1.avsc"
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    parsed = fastavro.parse_schema(json.loads(path.read_text()))
    record = check(kind, records()[kind])
    assert fastavro.validation.validate(record, parsed, strict=True)


# --- robustness: only LeadflowError for any field content ----------------------------------

odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(["", " ", "UNKNOWN", "OTHER", "CALL", "x@y.io", str(uuid.uuid4())]),
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.uuids(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.integers(), max_size=3),
)


@settings(max_examples=400)
@given(
    kind=st.sampled_from(["lead", "activity", "status", "touch"]),
    data=st.data(),
)
def test_validate_only_raises_leadflow_errors(kind: str, data: st.DataObject) -> None:
    record = records()[kind]
    keys = sorted(record)
    if kind == "lead":
        keys += ["consent.lawful_basis", "consent.consented_at"]
    for path in data.draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
        value = data.draw(odd_values | st.just(...))
        *parents, last = path.split(".")
        target = record
        for key in parents:
            target = target[key] if isinstance(target.get(key), dict) else {}
        if value is ...:
            target.pop(last, None)
        else:
            target[last] = value
    try:
        result = check(kind, record)
    except LeadflowError as err:
        assert isinstance(err.code, ErrorCode)
        return
    assert check(kind, result) == result


@given(st.text())
def test_event_uuid5_is_uuid5_in_the_event_namespace(name: str) -> None:
    assert contract.event_uuid5(name) == str(uuid.uuid5(contract.EVENT_NAMESPACE, name))


def test_an_address_longer_than_any_is_refused_without_being_memoised() -> None:
    """Validation is memoised (65,536 addresses); each of those can be a megabyte long when a
    producer sends garbage, so one key of the memo must stay small (the intake fuzz test sent
    ~150 addresses of up to 200,000 characters)."""
    contract._validated_email.cache_clear()
    for n in (321, 200_000):
        with pytest.raises(LeadflowError) as caught:
            contract.normalise_email("y" * n + "@example.org")
        assert caught.value.code is ErrorCode.INVALID_EMAIL
    assert contract._validated_email.cache_info().currsize == 0
    with pytest.raises(LeadflowError) as caught:  # long, yet within the bound: refused as ever
        contract.normalise_email("y" * 300 + "@example.org")
    assert caught.value.code is ErrorCode.INVALID_EMAIL
    assert contract.normalise_email("Pat.Doe@Example.ORG") == "pat.doe@example.org"
