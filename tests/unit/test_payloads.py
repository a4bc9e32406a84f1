"""JSON bodies as senders write them → record dicts; every error path; never a foreign crash."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core import contract, payloads
from streams.errors import ErrorCode, LeadflowError

EXAMPLES = Path(__file__).parents[3] / "shared" / "examples"
LEAD_ID = "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


@contextmanager
def raises(code: ErrorCode, field: str | None = None) -> Iterator[None]:
    with pytest.raises(LeadflowError) as info:
        yield
    assert info.value.code is code, info.value
    if field is not None:
        assert info.value.field == field, info.value


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- the four examples ---------------------------------------------------------------------


def test_lead_example_maps_to_lead_captured() -> None:
    body = example("lead-captured")
    record = payloads.lead_from_json(body, correlation_id="req-1")
    assert record == {
        "event_id": payloads.body_event_id(body, "lead"),
        "lead_id": LEAD_ID,
        "email": "Dana.Whitfield@Northwind-Analytics.io",
        "first_name": "Dana",
        "last_name": "Whitfield",
        "phone": "+1 415 555 0134",
        "job_title": "VP Engineering",
        "company_name": "Northwind Analytics",
        "company_size": "SIZE_51_200",
        "region": "NA-West",
        "marketing_score": 72,
        "trigger_actions": ["downloaded_whitepaper_A", "attended_webinar_B", "viewed_pricing_page"],
        "enrichment": {
            "linkedin_url": "https://www.linkedin.com/company/northwind-analytics",
            "industry": "SaaS",
            "tech_stack": ["React", "Node.js", "AWS"],
        },
        "attribution": {
            "campaign_id": "cmp-2026-q4-webinar-b",
            "utm_source": "linkedin",
            "utm_medium": "paid_social",
            "utm_campaign": "q4-webinar-b",
            "original_source": "paid_social",
            "latest_source": "webinar",
        },
        "consent": {
            "lawful_basis": "CONSENT",
            "consented_at": ts("2026-11-20T14:02:11+00:00"),
            "channels": ["email", "phone"],
        },
        "occurred_at": ts("2026-11-21T09:15:42+00:00"),
        "source_system": "api",
        "correlation_id": "req-1",
    }
    assert uuid.UUID(record["event_id"]).version == 5


def test_activity_example_maps_to_activity_recorded() -> None:
    record = payloads.activity_from_json(example("activity-recorded"), source_system="simulator")
    assert record == {
        "event_id": "0b8e1f7a-5c3d-4e29-b6a1-9f2c7d4e8a10",
        "lead_id": LEAD_ID,
        "activity_type": "DEMO_REQUEST",
        "campaign_id": "cmp-2026-q4-webinar-b",
        "properties": {"page": "/pricing/enterprise", "formId": "demo-v3"},
        "occurred_at": ts("2026-11-21T09:31:05+00:00"),
        "source_system": "simulator",
        "correlation_id": None,
    }


def test_status_webhook_example_maps_to_status_changed() -> None:
    kind, record = payloads.crm_webhook(
        example("crm-lead-status-updated"),
        webhook_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        correlation_id="req-2",
    )
    assert kind == "status"
    assert record == {
        "event_id": payloads.webhook_event_id("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
        "lead_id": LEAD_ID,
        "previous_status": "MQL",
        "new_status": "DISQUALIFIED",
        "disqualification_reason": "no_budget_for_6_months",
        "sales_notes": "Good conversation, but no budget until next fiscal year. Re-engage in Q4.",
        "updated_by": "sales_rep_id_123",
        "occurred_at": ts("2026-11-22T16:40:00+00:00"),
        "source_system": "crm-webhook",
        "correlation_id": "req-2",
    }


def test_touch_webhook_example_maps_to_touch_logged() -> None:
    envelope = example("crm-lead-touch-logged")
    kind, record = payloads.crm_webhook(envelope, webhook_id=None, correlation_id=None)
    assert kind == "touch"
    assert record == {
        "event_id": payloads.body_event_id(envelope["payload"], "touch"),
        "lead_id": LEAD_ID,
        "touch_id": "7d2a9c41-0e6b-4f83-a5d2-1c9b8e7f6a30",
        "rep_id": "sales_rep_id_123",
        "channel": "CALL",
        "outcome": "CONNECTED",
        "occurred_at": ts("2026-11-21T09:52:10+00:00"),
        "source_system": "crm-webhook",
        "correlation_id": None,
    }


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("lead-captured", "lead"),
        ("activity-recorded", "activity"),
        ("crm-lead-status-updated", "status"),
        ("crm-lead-touch-logged", "touch"),
    ],
)
def test_every_example_passes_the_contract(name: str, kind: str) -> None:
    body = example(name)
    if kind == "lead":
        record = payloads.lead_from_json(body)
    elif kind == "activity":
        record = payloads.activity_from_json(body)
    else:
        mapped_kind, record = payloads.crm_webhook(body, webhook_id="w1", correlation_id=None)
        assert mapped_kind == kind
    observed = record["occurred_at"] + timedelta(minutes=1)
    contract.validate(kind, record, observed_at=observed, max_skew=timedelta(minutes=5))


# --- event ids -----------------------------------------------------------------------------


def test_identical_bodies_get_identical_event_ids_whatever_the_key_order() -> None:
    body = example("lead-captured")
    reordered = dict(reversed(list(body.items())))
    first = payloads.lead_from_json(body)["event_id"]
    assert payloads.lead_from_json(reordered)["event_id"] == first
    changed = {**body, "timestamp": "2026-11-21T09:15:43Z"}
    assert payloads.lead_from_json(changed)["event_id"] != first


def test_body_event_id_wins_over_webhook_id_and_is_canonicalised() -> None:
    envelope = example("crm-lead-status-updated")
    envelope["payload"]["eventId"] = "{0B8E1F7A5C3D4E29B6A19F2C7D4E8A10}"
    _, record = payloads.crm_webhook(envelope, webhook_id="msg_1", correlation_id=None)
    assert record["event_id"] == "0b8e1f7a-5c3d-4e29-b6a1-9f2c7d4e8a10"


def test_webhook_retries_share_an_event_id() -> None:
    one = payloads.crm_webhook(example("crm-lead-touch-logged"), webhook_id="m", correlation_id="a")
    two = payloads.crm_webhook(example("crm-lead-touch-logged"), webhook_id="m", correlation_id="b")
    assert one[1]["event_id"] == two[1]["event_id"] == payloads.webhook_event_id("m")


@pytest.mark.parametrize("bad", ["not-a-uuid", 42, ["x"], "0b8e1f7a-5c3d-4e29-b6a1-9f2c7d4e8a1"])
def test_event_id_that_is_not_a_uuid_is_a_mismatch(bad: Any) -> None:
    body = {**example("activity-recorded"), "eventId": bad}
    with raises(ErrorCode.FIELD_MISMATCH, "eventId"):
        payloads.activity_from_json(body)


def test_blank_event_id_counts_as_absent() -> None:
    body = {**example("activity-recorded"), "eventId": "  "}
    assert payloads.activity_from_json(body)["event_id"] == payloads.body_event_id(body, "activity")


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T09:31:05Z", "2026-11-21T09:31:05+00:00"),
        ("2026-11-21T11:31:05+02:00", "2026-11-21T09:31:05+00:00"),
        ("2026-11-21T09:31:05.123456Z", "2026-11-21T09:31:05.123000+00:00"),
        ("2026-11-21 04:31:05-05:00", "2026-11-21T09:31:05+00:00"),
    ],
)
def test_timestamps_become_aware_utc_millis(text: str, expected: str) -> None:
    record = payloads.activity_from_json({**example("activity-recorded"), "timestamp": text})
    assert record["occurred_at"] == datetime.fromisoformat(expected)
    assert record["occurred_at"].tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("2026-11-21T09:31:05", ErrorCode.FIELD_MISMATCH),  # naive
        ("2026-11-21", ErrorCode.FIELD_MISMATCH),
        ("yesterday", ErrorCode.FIELD_MISMATCH),
        (1795252542000, ErrorCode.FIELD_MISMATCH),
        ("0001-01-01T00:00:00+01:00", ErrorCode.FIELD_MISMATCH),  # overflows when made UTC
        (None, ErrorCode.MISSING_FIELD),
        ("", ErrorCode.MISSING_FIELD),
    ],
)
def test_bad_timestamps(value: Any, code: ErrorCode) -> None:
    with raises(code, "timestamp"):
        payloads.activity_from_json({**example("activity-recorded"), "timestamp": value})


def test_bad_consent_timestamp_names_the_nested_field() -> None:
    body = example("lead-captured")
    body["consent"]["consentTimestamp"] = "2026-11-20T14:02:11"
    with raises(ErrorCode.FIELD_MISMATCH, "consent.consentTimestamp"):
        payloads.lead_from_json(body)


# --- enums ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "band"),
    [
        ("1-10", "SIZE_1_10"),
        ("11-50", "SIZE_11_50"),
        ("51-200", "SIZE_51_200"),
        ("51 – 200", "SIZE_51_200"),
        ("201-1000", "SIZE_201_1000"),
        ("1,001-5,000", "SIZE_1001_5000"),
        ("5001+", "SIZE_5001_PLUS"),
        ("5000+", "SIZE_5001_PLUS"),
        ("10000+", "SIZE_5001_PLUS"),
        ("10,000+", "SIZE_5001_PLUS"),
        ("150", "SIZE_51_200"),
        (150, "SIZE_51_200"),
        (12000, "SIZE_5001_PLUS"),
        ("size_201_1000", "SIZE_201_1000"),
        ("unknown", "UNKNOWN"),
        (None, "UNKNOWN"),
        ("", "UNKNOWN"),
    ],
)
def test_company_sizes(value: Any, band: str) -> None:
    body = {**example("lead-captured"), "companySize": value}
    assert payloads.lead_from_json(body)["company_size"] == band


@pytest.mark.parametrize(
    ("value", "band"),
    [("201+", "SIZE_201_PLUS"), ("50-300", "UNKNOWN"), ("200+", "UNKNOWN"), ("11-200", "UNKNOWN")],
)
def test_sizes_that_span_bands_are_accepted(value: str, band: str) -> None:
    # Real answers, not malformed ones: the seed's "201+" keeps its own symbol, other spans
    # are not known; both leave the context incomplete, which the MQL contract judges.
    body = {**example("lead-captured"), "companySize": value}
    assert payloads.lead_from_json(body)["company_size"] == band


def test_absent_company_size_is_unknown() -> None:
    body = example("lead-captured")
    del body["companySize"]
    assert payloads.lead_from_json(body)["company_size"] == "UNKNOWN"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("huge", ErrorCode.INVALID_ENUM),
        ("200-51", ErrorCode.INVALID_ENUM),
        ("0", ErrorCode.INVALID_ENUM),
        (-5, ErrorCode.INVALID_ENUM),
        (True, ErrorCode.FIELD_MISMATCH),
        (3.5, ErrorCode.FIELD_MISMATCH),
        (["51-200"], ErrorCode.FIELD_MISMATCH),
    ],
)
def test_bad_company_sizes(value: Any, code: ErrorCode) -> None:
    with raises(code, "companySize"):
        payloads.lead_from_json({**example("lead-captured"), "companySize": value})


def status_body(**changes: Any) -> dict[str, Any]:
    return {**example("crm-lead-status-updated")["payload"], **changes}


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("Disqualified", "DISQUALIFIED"),
        ("closed won", "CLOSED_WON"),
        ("Closed-Lost", "CLOSED_LOST"),
        ("mql", "MQL"),
        ("  No Response ", "NO_RESPONSE"),
        ("bad - fit", "BAD_FIT"),
        ("SQL", "SQL"),
    ],
)
def test_statuses_in_any_spelling(value: str, status: str) -> None:
    assert payloads.status_from_json(status_body(newStatus=value))["new_status"] == status


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("unknown", ErrorCode.INVALID_ENUM),
        ("promoted", ErrorCode.INVALID_ENUM),
        (3, ErrorCode.FIELD_MISMATCH),
        (None, ErrorCode.MISSING_FIELD),
        (" ", ErrorCode.MISSING_FIELD),
    ],
)
def test_bad_new_status(value: Any, code: ErrorCode) -> None:
    with raises(code, "newStatus"):
        payloads.status_from_json(status_body(newStatus=value))


def test_previous_status_is_optional_but_checked() -> None:
    assert payloads.status_from_json(status_body(previousStatus=None))["previous_status"] is None
    assert payloads.status_from_json(status_body(previousStatus=""))["previous_status"] is None
    with raises(ErrorCode.INVALID_ENUM, "previousStatus"):
        payloads.status_from_json(status_body(previousStatus="lukewarm"))


def test_status_event_id_parameter_is_used_when_the_body_has_none() -> None:
    eid = str(uuid.uuid4())
    assert payloads.status_from_json(status_body(), event_id=eid)["event_id"] == eid
    with raises(ErrorCode.FIELD_MISMATCH, "eventId"):
        payloads.status_from_json(status_body(), event_id="webhook-123")


@pytest.mark.parametrize(
    ("value", "symbol"),
    [
        ("demo_request", "DEMO_REQUEST"),
        ("Pricing Page View", "PRICING_PAGE_VIEW"),
        ("email-open", "EMAIL_OPEN"),
        ("other", "OTHER"),
    ],
)
def test_activity_types(value: str, symbol: str) -> None:
    body = {**example("activity-recorded"), "type": value}
    assert payloads.activity_from_json(body)["activity_type"] == symbol


def test_unknown_activity_type_is_invalid_enum() -> None:
    with raises(ErrorCode.INVALID_ENUM, "type"):
        payloads.activity_from_json({**example("activity-recorded"), "type": "teleport"})


def touch_body(**changes: Any) -> dict[str, Any]:
    body = {**example("crm-lead-touch-logged")["payload"], **changes}
    return {k: v for k, v in body.items() if v is not ...}


def test_touch_outcome_is_optional_channel_is_not() -> None:
    assert payloads.touch_from_json(touch_body(outcome=...))["outcome"] == "OTHER"
    assert payloads.touch_from_json(touch_body(channel="Meeting"))["channel"] == "MEETING"
    with raises(ErrorCode.MISSING_FIELD, "channel"):
        payloads.touch_from_json(touch_body(channel=...))
    with raises(ErrorCode.INVALID_ENUM, "channel"):
        payloads.touch_from_json(touch_body(channel="carrier pigeon"))
    with raises(ErrorCode.INVALID_ENUM, "outcome"):
        payloads.touch_from_json(touch_body(outcome="ecstatic"))
    with raises(ErrorCode.FIELD_MISMATCH, "touchId"):
        payloads.touch_from_json(touch_body(touchId="t-1"))
    with raises(ErrorCode.MISSING_FIELD, "repId"):
        payloads.touch_from_json(touch_body(repId=" "))


# --- required fields, types, consent -------------------------------------------------------


@pytest.mark.parametrize("key", ["leadId", "email", "timestamp"])
def test_missing_or_blank_lead_fields(key: str) -> None:
    body = example("lead-captured")
    del body[key]
    with raises(ErrorCode.MISSING_FIELD, key):
        payloads.lead_from_json(body)
    with raises(ErrorCode.MISSING_FIELD, key):
        payloads.lead_from_json({**example("lead-captured"), key: "   "})


@pytest.mark.parametrize("key", ["firstName", "lastName", "companyName", "region"])
def test_absent_or_blank_lead_context_is_accepted_as_not_known(key: str) -> None:
    # Incomplete, not malformed: "" is the Avro string's "not known"; the MQL contract judges.
    observed = datetime(2026, 11, 21, 10, tzinfo=UTC)
    for body in ({k: v for k, v in example("lead-captured").items() if k != key},
                 {**example("lead-captured"), key: "   "}):
        record = contract.validate("lead", payloads.lead_from_json(body),
                                   observed_at=observed, max_skew=timedelta())
        name = {"firstName": "first_name", "lastName": "last_name",
                "companyName": "company_name", "region": "region"}[key]
        assert record[name] == ""


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("triggerActions", "viewed_pricing_page", "triggerActions"),
        ("triggerActions", ["ok", 7], "triggerActions"),
        ("firstName", 5, "firstName"),
        ("phone", 4155550134, "phone"),
        ("leadId", "lead-17", "leadId"),
        ("leadId", 17, "leadId"),
        ("leadScore", "72", "leadScore"),
        ("leadScore", 72.5, "leadScore"),
        ("leadScore", True, "leadScore"),
        ("leadScore", 2**40, "leadScore"),
        ("enrichedData", ["SaaS"], "enrichedData"),
        ("enrichedData", {"techStack": "React"}, "enrichedData.techStack"),
        ("enrichedData", {"industry": 3}, "enrichedData.industry"),
        ("attribution", {"utmSource": ["x"]}, "attribution.utmSource"),
        ("consent", "yes", "consent"),
        ("consent", {"lawfulBasis": "consent", "channels": "email"}, "consent.channels"),
    ],
)
def test_wrong_types_are_field_mismatch(key: str, value: Any, field: str) -> None:
    with raises(ErrorCode.FIELD_MISMATCH, field):
        payloads.lead_from_json({**example("lead-captured"), key: value})


def test_optional_lead_fields_and_unknown_keys() -> None:
    body = example("lead-captured")
    for key in ("phone", "jobTitle", "leadScore", "triggerActions", "enrichedData", "attribution"):
        del body[key]
    body["favouriteColour"] = "teal"
    record = payloads.lead_from_json({**body, "leadScore": 72.0})
    assert record["marketing_score"] == 72
    record = payloads.lead_from_json(body)
    assert record["phone"] is record["job_title"] is record["marketing_score"] is None
    assert record["trigger_actions"] == []
    assert record["enrichment"] == {"linkedin_url": None, "industry": None, "tech_stack": []}
    assert set(record["attribution"].values()) == {None}
    assert "favouriteColour" not in json.dumps(record, default=str)


def test_lead_without_consent_is_accepted_with_no_basis_recorded() -> None:
    observed = datetime(2026, 11, 21, 10, tzinfo=UTC)
    body = example("lead-captured")
    del body["consent"]
    for variant in (body, {**body, "consent": None},
                    {**body, "consent": {"channels": ["email"]}},
                    {**body, "consent": {"lawfulBasis": "consent"}}):  # no date: no basis
        record = payloads.lead_from_json(variant)
        out = contract.validate("lead", record, observed_at=observed, max_skew=timedelta())
        assert out["consent"] is None
    spelled_wrong = {**body, "consent": {"lawfulBasis": "vital",
                                         "consentTimestamp": "2026-11-20T14:02:11Z"}}
    with raises(ErrorCode.INVALID_ENUM, "consent.lawfulBasis"):
        payloads.lead_from_json(spelled_wrong)


@pytest.mark.parametrize(
    ("consent", "expected"),
    [
        ({"lawfulBasis": "legitimate interest"}, ("LEGITIMATE_INTEREST", None, [])),
        ({"lawfulBasis": "Contract", "channels": [" email ", ""]}, ("CONTRACT", None, ["email"])),
        ({"consentTimestamp": "2026-11-20T14:02:11Z"}, ("UNKNOWN", "2026-11-20T14:02:11Z", [])),
        ({}, ("UNKNOWN", None, [])),
    ],
)
def test_consent_mapping(consent: dict[str, Any], expected: tuple[Any, ...]) -> None:
    record = payloads.lead_from_json({**example("lead-captured"), "consent": consent})
    basis, at, channels = expected
    assert record["consent"] == {
        "lawful_basis": basis,
        "consented_at": None if at is None else datetime.fromisoformat(at),
        "channels": channels,
    }


def test_unknown_lawful_basis_is_invalid_enum() -> None:
    body = {**example("lead-captured"), "consent": {"lawfulBasis": "vital_interests"}}
    with raises(ErrorCode.INVALID_ENUM, "consent.lawfulBasis"):
        payloads.lead_from_json(body)


def test_activity_properties_scalars_become_strings() -> None:
    props = {"page": "/p", "seconds": 35, "ratio": 0.5, "new": True, "gone": None}
    body = {**example("activity-recorded"), "properties": props}
    assert payloads.activity_from_json(body)["properties"] == {
        "page": "/p",
        "seconds": "35",
        "ratio": "0.5",
        "new": "true",
    }
    with raises(ErrorCode.FIELD_MISMATCH, "properties.utm"):
        payloads.activity_from_json({**body, "properties": {"utm": {"source": "x"}}})
    with raises(ErrorCode.FIELD_MISMATCH, "properties"):
        payloads.activity_from_json({**body, "properties": ["page"]})
    assert payloads.activity_from_json({**body, "properties": None})["properties"] == {}


@pytest.mark.parametrize("body", [None, [], "lead", 3, True])
def test_body_must_be_an_object(body: Any) -> None:
    for mapper in (payloads.lead_from_json, payloads.activity_from_json):
        with raises(ErrorCode.FIELD_MISMATCH):
            mapper(body)
    with raises(ErrorCode.FIELD_MISMATCH):
        payloads.crm_webhook(body, webhook_id="w", correlation_id=None)


# --- webhook envelope ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "code", "field"),
    [
        ({"event": "lead.deleted", "payload": {}}, ErrorCode.UNKNOWN_EVENT, "event"),
        ({"payload": {}}, ErrorCode.MISSING_FIELD, "event"),
        ({"event": " ", "payload": {}}, ErrorCode.MISSING_FIELD, "event"),
        ({"event": 7, "payload": {}}, ErrorCode.FIELD_MISMATCH, "event"),
        ({"event": "lead.status.updated"}, ErrorCode.MISSING_FIELD, "payload"),
        ({"event": "lead.touch.logged", "payload": []}, ErrorCode.FIELD_MISMATCH, "payload"),
        ({"event": "lead.touch.logged", "payload": {}}, ErrorCode.MISSING_FIELD, "leadId"),
    ],
)
def test_webhook_envelope_errors(envelope: Any, code: ErrorCode, field: str) -> None:
    with raises(code, field):
        payloads.crm_webhook(envelope, webhook_id="w", correlation_id=None)


def test_body_event_id_refuses_non_json() -> None:
    with raises(ErrorCode.BAD_ENCODING):
        payloads.body_event_id({"a": object()}, "lead")


# --- properties: only LeadflowError, whatever the JSON -------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Plausible-looking values reach deeper than random ones.
tricky = st.sampled_from(
    [
        "",
        " ",
        "51-200",
        "10000+",
        "closed won",
        "demo_request",
        "call",
        "consent",
        "2026-11-21T09:31:05Z",
        "2026-11-21T09:31:05",
        LEAD_ID,
        LEAD_ID.upper(),
        "a@b.io",
        "nan",
    ]
)
field_values = json_values | tricky


def mutated(name: str, path: tuple[str, ...] = ()) -> st.SearchStrategy[dict[str, Any]]:
    base = example(name)
    target = base
    for key in path:
        target = target[key]
    keys = sorted(target) + ["eventId", "extra"]

    def apply(changes: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(base)
        inner = body
        for key in path:
            inner = inner[key]
        for key, value in changes.items():
            if value is ...:
                inner.pop(key, None)
            else:
                inner[key] = value
        return body

    change = st.dictionaries(st.sampled_from(keys), field_values | st.just(...), max_size=4)
    return change.map(apply)


def only_leadflow_errors(call: Any) -> None:
    try:
        record = call()
    except LeadflowError as err:
        assert isinstance(err.code, ErrorCode)
        return
    assert isinstance(record, tuple | dict)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values | mutated("lead-captured") | mutated("lead-captured", ("consent",)))
def test_lead_mapping_only_raises_leadflow_errors(body: Any) -> None:
    only_leadflow_errors(lambda: payloads.lead_from_json(body))


@settings(max_examples=200)
@given(body=json_values | mutated("activity-recorded"))
def test_activity_mapping_only_raises_leadflow_errors(body: Any) -> None:
    only_leadflow_errors(lambda: payloads.activity_from_json(body))


@settings(max_examples=300)
@given(
    envelope=json_values
    | mutated("crm-lead-status-updated")
    | mutated("crm-lead-status-updated", ("payload",))
    | mutated("crm-lead-touch-logged", ("payload",)),
    webhook_id=st.none() | st.text(max_size=10),
)
def test_webhook_mapping_only_raises_leadflow_errors(envelope: Any, webhook_id: str | None) -> None:
    only_leadflow_errors(
        lambda: payloads.crm_webhook(envelope, webhook_id=webhook_id, correlation_id=None)
    )


@settings(max_examples=100)
@given(body=mutated("lead-captured"))
def test_mapping_then_contract_only_raises_leadflow_errors(body: dict[str, Any]) -> None:
    def both() -> dict[str, Any]:
        record = payloads.lead_from_json(body)
        observed = datetime(2026, 11, 21, 10, tzinfo=UTC)
        return contract.validate("lead", record, observed_at=observed, max_skew=timedelta(0))

    only_leadflow_errors(both)
