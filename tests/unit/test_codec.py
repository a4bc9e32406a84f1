"""Codec: Confluent framing, schema resolution, and failure modes on hostile bytes."""

from __future__ import annotations

import contextlib
import copy
import io
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import schemas
from streams.codec import Codec, canonical_uuid, with_lead_id
from streams.errors import ErrorCode, LeadflowError
from streams.registry import FileRegistry

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SUBJECTS = {
    "LeadCaptured": "leads.captured-value",
    "ActivityRecorded": "leads.activity-value",
    "LeadStatusChanged": "crm.status-changed-value",
    "SalesTouchLogged": "crm.touches-value",
}


def _symbols(record: str, type_name: str) -> list[str]:
    names: dict[str, Any] = {}
    for _ in schemas._walk(schemas.latest(record), names):
        pass
    return list(names[f"{schemas.NAMESPACE}.{type_name}"]["symbols"])


# --- strategies: valid records as the rest of leadflow builds them ----------------------------

uuids = st.uuids().map(str)
# Millisecond precision in 2000..2100: what timestamp-millis can carry without loss.
stamps = st.integers(946_684_800_000, 4_102_444_800_000).map(
    lambda ms: EPOCH + timedelta(milliseconds=ms)
)
texts = st.text(max_size=40)
maybe_text = st.none() | texts
string_lists = st.lists(texts, max_size=5)


def _trailer() -> dict[str, Any]:
    return {
        "event_id": uuids,
        "occurred_at": stamps,
        "source_system": st.sampled_from(["api", "crm-webhook", "kafka", "simulator"]),
        "correlation_id": st.none() | uuids,
    }


lead_captured = st.fixed_dictionaries(
    {
        "lead_id": uuids,
        "email": st.emails().map(str.lower),
        "first_name": texts,
        "last_name": texts,
        "phone": maybe_text,
        "job_title": maybe_text,
        "company_name": texts,
        "company_size": st.sampled_from(_symbols("LeadCaptured", "SizeBand")),
        "region": texts,
        "marketing_score": st.none() | st.integers(-(2**31), 2**31 - 1),
        "trigger_actions": string_lists,
        "enrichment": st.fixed_dictionaries(
            {"linkedin_url": maybe_text, "industry": maybe_text, "tech_stack": string_lists}
        ),
        "attribution": st.fixed_dictionaries(
            {
                k: maybe_text
                for k in (
                    "campaign_id",
                    "utm_source",
                    "utm_medium",
                    "utm_campaign",
                    "original_source",
                    "latest_source",
                )
            }
        ),
        "consent": st.none()
        | st.fixed_dictionaries(
            {
                "lawful_basis": st.sampled_from(_symbols("LeadCaptured", "LawfulBasis")),
                "consented_at": stamps,
                "channels": string_lists,
            }
        ),
        **_trailer(),
    }
)
activity_recorded = st.fixed_dictionaries(
    {
        "lead_id": uuids,
        "activity_type": st.sampled_from(_symbols("ActivityRecorded", "ActivityType")),
        "campaign_id": maybe_text,
        "properties": st.dictionaries(texts, texts, max_size=5),
        **_trailer(),
    }
)
statuses = st.sampled_from(_symbols("LeadStatusChanged", "LeadStatus"))
lead_status_changed = st.fixed_dictionaries(
    {
        "lead_id": uuids,
        "previous_status": st.none() | statuses,
        "new_status": statuses,
        "disqualification_reason": maybe_text,
        "sales_notes": maybe_text,
        "updated_by": maybe_text,
        **_trailer(),
    }
)
sales_touch_logged = st.fixed_dictionaries(
    {
        "lead_id": uuids,
        "touch_id": uuids,
        "rep_id": texts,
        "channel": st.sampled_from(_symbols("SalesTouchLogged", "TouchChannel")),
        "outcome": st.sampled_from(_symbols("SalesTouchLogged", "TouchOutcome")),
        **_trailer(),
    }
)
INBOUND = {
    "LeadCaptured": lead_captured,
    "ActivityRecorded": activity_recorded,
    "LeadStatusChanged": lead_status_changed,
    "SalesTouchLogged": sales_touch_logged,
}
any_inbound = st.one_of(*(s.map(lambda r, n=n: (n, r)) for n, s in INBOUND.items()))


@pytest.fixture(scope="module")
def codec(tmp_path_factory: pytest.TempPathFactory) -> Codec:
    return Codec(FileRegistry(tmp_path_factory.mktemp("registry") / "schemas.json"))


class CountingRegistry:
    def __init__(self, path: Path) -> None:
        self.inner = FileRegistry(path)
        self.registers = 0
        self.lookups = 0

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        self.registers += 1
        return self.inner.register(subject, schema)

    def schema(self, schema_id: int) -> dict[str, Any]:
        self.lookups += 1
        return self.inner.schema(schema_id)


def _sample(name: str, i: int = 1) -> dict[str, Any]:
    return schemas.samples(schemas.latest(name))[i]


def _code(excinfo: pytest.ExceptionInfo[LeadflowError]) -> ErrorCode:
    return excinfo.value.code


# --- round trips ------------------------------------------------------------------------------

_PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", sorted(INBOUND))
@_PROPERTY
@given(data=st.data())
def test_inbound_records_round_trip(codec: Codec, name: str, data: st.DataObject) -> None:
    record = data.draw(INBOUND[name])
    encoded = codec.encode(SUBJECTS[name], name, record)
    assert encoded[0] == 0
    if name in ("LeadCaptured", "ActivityRecorded"):  # v2: custom attributes, default {}
        record = {**record, "attributes": record.get("attributes", {})}
    assert codec.decode(encoded, name) == record


@pytest.mark.parametrize("name", sorted(INBOUND))
@_PROPERTY
@given(data=st.data(), new=uuids)
def test_a_lead_id_patched_in_place_reads_as_a_record_written_anew(
    codec: Codec, name: str, data: st.DataObject, new: str,
) -> None:
    record = data.draw(INBOUND[name])
    encoded = codec.encode(SUBJECTS[name], name, record)
    patched = with_lead_id(encoded, record["lead_id"], new)
    assert patched is not None
    assert patched == codec.encode(SUBJECTS[name], name, {**record, "lead_id": new})


def test_a_lead_id_is_patched_only_where_the_bytes_name_it(codec: Codec) -> None:
    record = _sample("LeadStatusChanged")
    encoded = codec.encode(SUBJECTS["LeadStatusChanged"], "LeadStatusChanged", record)
    new = str(uuid.uuid4())
    assert with_lead_id(encoded, str(uuid.uuid4()), new) is None  # another lead's record
    assert with_lead_id(encoded, record["lead_id"], "not-a-uuid") is None
    assert with_lead_id(encoded, record["lead_id"], new.upper()) is None  # not canonical
    assert with_lead_id(encoded[:40], record["lead_id"], new) is None  # cut short
    assert with_lead_id(b"\x01" + encoded[1:], record["lead_id"], new) is None  # not framed


@pytest.mark.parametrize("name", schemas.record_names())
def test_every_record_round_trips_its_samples(codec: Codec, name: str) -> None:
    for record in schemas.samples(schemas.latest(name)):
        assert codec.decode(codec.encode(f"{name}-value", name, record), name) == record


def test_decoded_types_are_plain_str_and_aware_utc(codec: Codec) -> None:
    record = _sample("SalesTouchLogged")
    record["touch_id"] = uuid.UUID(record["touch_id"])  # encode accepts UUID objects too
    data = codec.encode("crm.touches-value", "SalesTouchLogged", record)
    out = codec.decode(data, "SalesTouchLogged")
    assert type(out["touch_id"]) is str and type(out["lead_id"]) is str
    assert out["occurred_at"].tzinfo is not None
    assert out["occurred_at"].utcoffset() == timedelta(0)


def test_uuids_come_back_canonical(codec: Codec) -> None:
    record = _sample("SalesTouchLogged")
    record["lead_id"] = "{3F6C2A9E8D1B4C579A0E2B7D4F1C8E53}"
    data = codec.encode("crm.touches-value", "SalesTouchLogged", record)
    out = codec.decode(data, "SalesTouchLogged")
    assert out["lead_id"] == "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"


def test_a_string_that_is_no_uuid_is_a_field_mismatch(codec: Codec) -> None:
    record = _sample("SlaEvaluated")
    record["lead_id"] = "lead-42"
    data = codec.encode("sla.evaluated-value", "SlaEvaluated", record)
    with pytest.raises(LeadflowError) as excinfo:
        codec.decode(data, "SlaEvaluated")
    assert (_code(excinfo), excinfo.value.field) == (ErrorCode.FIELD_MISMATCH, "lead_id")


def test_canonical_uuid() -> None:
    assert canonical_uuid("3F6C2A9E-8D1B-4C57-9A0E-2B7D4F1C8E53", "x") == (
        "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53"
    )
    with pytest.raises(LeadflowError):
        canonical_uuid("", "x")


def test_accepts_bytearray_and_memoryview(codec: Codec) -> None:
    record = _sample("ActivityRecorded")
    data = codec.encode("leads.activity-value", "ActivityRecorded", record)
    assert codec.decode(bytearray(data), "ActivityRecorded") == record
    assert codec.decode(memoryview(data), "ActivityRecorded") == record


# --- registry use -----------------------------------------------------------------------------


def test_registers_once_and_parses_writer_once(tmp_path: Path) -> None:
    registry = CountingRegistry(tmp_path / "r.json")
    writer, reader = Codec(registry), Codec(registry)
    record = _sample("ActivityRecorded")
    encoded = [writer.encode("leads.activity-value", "ActivityRecorded", record) for _ in range(5)]
    for data in encoded:
        reader.decode(data, "ActivityRecorded")
    assert (registry.registers, registry.lookups) == (1, 1)


def test_encode_with_an_explicit_schema(codec: Codec) -> None:
    schema = schemas.latest("IdentityClaim")
    record = _sample("IdentityClaim")
    data = codec.encode("leadflow.identity-claims-value", schema, record)
    assert codec.decode(data, "IdentityClaim") == record


def test_reads_an_older_and_a_newer_writer_through_the_latest_reader(codec: Codec) -> None:
    newer = copy.deepcopy(schemas.latest("ActivityRecorded"))
    newer["fields"].insert(
        3, {"name": "channel", "type": ["null", "string"], "default": None, "doc": "x"}
    )
    next(f for f in newer["fields"] if f["name"] == "activity_type")["type"]["symbols"].insert(
        0, "CHAT_STARTED"
    )
    record = {**_sample("ActivityRecorded"), "channel": "chat", "activity_type": "CHAT_STARTED"}
    out = codec.decode(codec.encode("leads.activity-value", newer, record), "ActivityRecorded")
    expected = {k: v for k, v in record.items() if k != "channel"}
    assert out == {**expected, "activity_type": "OTHER"}  # unknown symbol -> enum default

    older = copy.deepcopy(schemas.latest("ActivityRecorded"))
    older["fields"] = [f for f in older["fields"] if f["name"] != "properties"]
    record = {k: v for k, v in _sample("ActivityRecorded").items() if k != "properties"}
    out = codec.decode(codec.encode("leads.activity-value", older, record), "ActivityRecorded")
    assert out == {**record, "properties": {}}


# --- failure modes ----------------------------------------------------------------------------


def test_unknown_schema_id(codec: Codec) -> None:
    with pytest.raises(LeadflowError) as excinfo:
        codec.decode(b"\x00\x7f\xff\xff\xff" + b"\x00" * 20, "LeadCaptured")
    assert _code(excinfo) == ErrorCode.UNKNOWN_SCHEMA


def test_schema_id_of_another_record(codec: Codec) -> None:
    data = codec.encode("leads.activity-value", "ActivityRecorded", _sample("ActivityRecorded"))
    with pytest.raises(LeadflowError) as excinfo:
        codec.decode(data, "LeadCaptured")
    assert _code(excinfo) == ErrorCode.UNKNOWN_SCHEMA
    assert "ActivityRecorded" in excinfo.value.detail


def test_unknown_reader_record(codec: Codec) -> None:
    data = codec.encode("leads.activity-value", "ActivityRecorded", _sample("ActivityRecorded"))
    with pytest.raises(LeadflowError) as excinfo:
        codec.decode(data, "NoSuchRecord")
    assert _code(excinfo) == ErrorCode.UNKNOWN_SCHEMA


class DictRegistry:
    def __init__(self, by_id: dict[int, Any]) -> None:
        self.by_id = by_id

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        raise AssertionError("read-only")

    def schema(self, schema_id: int) -> dict[str, Any]:
        return self.by_id[schema_id]


@pytest.mark.parametrize(
    "stored",
    [
        {"type": "string"},
        {"type": "record", "name": "Broken", "fields": [{"name": "a", "type": "nope"}]},
    ],
)
def test_registry_schema_that_is_not_a_readable_record(stored: dict[str, Any]) -> None:
    with pytest.raises(LeadflowError) as excinfo:
        Codec(DictRegistry({7: stored})).decode(b"\x00\x00\x00\x00\x07\x00", "LeadCaptured")
    assert _code(excinfo) == ErrorCode.UNKNOWN_SCHEMA


def test_encoding_an_unknown_record_name(codec: Codec) -> None:
    with pytest.raises(LeadflowError) as excinfo:
        codec.encode("x-value", "NoSuchRecord", {})
    assert _code(excinfo) == ErrorCode.UNKNOWN_SCHEMA


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00\x01", b"\x01\x00\x00\x00\x01\x00"])
def test_not_confluent_framing(codec: Codec, data: bytes) -> None:
    with pytest.raises(LeadflowError) as excinfo:
        codec.decode(data, "LeadCaptured")
    assert _code(excinfo) == ErrorCode.BAD_ENCODING


def test_trailing_bytes(codec: Codec) -> None:
    data = codec.encode("leads.activity-value", "ActivityRecorded", _sample("ActivityRecorded"))
    with pytest.raises(LeadflowError) as excinfo:
        codec.decode(data + b"\x00", "ActivityRecorded")
    assert _code(excinfo) == ErrorCode.BAD_ENCODING


def test_too_large_is_checked_before_anything_else(tmp_path: Path) -> None:
    small = Codec(FileRegistry(tmp_path / "r.json"), max_record_bytes=64)
    with pytest.raises(LeadflowError) as excinfo:
        small.decode(b"\xff" * 65, "LeadCaptured")
    assert _code(excinfo) == ErrorCode.TOO_LARGE
    record = {**_sample("ActivityRecorded"), "properties": {"page": "x" * 100}}
    with pytest.raises(LeadflowError) as excinfo:
        small.encode("leads.activity-value", "ActivityRecorded", record)
    assert _code(excinfo) == ErrorCode.TOO_LARGE


def test_encoding_an_invalid_record(codec: Codec) -> None:
    record = _sample("ActivityRecorded")
    for broken in (
        {k: v for k, v in record.items() if k != "lead_id"},
        {**record, "activity_type": "NOT_A_SYMBOL"},
        {**record, "leadId": record["lead_id"]},
    ):
        with pytest.raises(LeadflowError) as excinfo:
            codec.encode("leads.activity-value", "ActivityRecorded", broken)
        assert _code(excinfo) == ErrorCode.FIELD_MISMATCH


@_PROPERTY
@given(case=any_inbound)
def test_every_truncation_is_bad_encoding(codec: Codec, case: tuple[str, dict[str, Any]]) -> None:
    name, record = case
    data = codec.encode(SUBJECTS[name], name, record)
    for cut in range(len(data)):
        with pytest.raises(LeadflowError) as excinfo:
            codec.decode(data[:cut], name)
        assert _code(excinfo) == ErrorCode.BAD_ENCODING, (cut, excinfo.value)


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(INBOUND)), body=st.binary(max_size=400))
def test_random_bodies_only_raise_leadflow_errors(codec: Codec, name: str, body: bytes) -> None:
    header = codec.encode(SUBJECTS[name], name, _sample(name))[:5]
    try:
        codec.decode(header + body, name)
    except LeadflowError as exc:
        assert exc.code in (ErrorCode.BAD_ENCODING, ErrorCode.FIELD_MISMATCH)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64))
def test_random_bytes_only_raise_leadflow_errors(codec: Codec, data: bytes) -> None:
    with contextlib.suppress(LeadflowError):
        codec.decode(data, "LeadCaptured")


# --- bounded decoding -------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    """Avro long: zigzag, then little-endian base-128."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _avro_str(s: str) -> bytes:
    raw = s.encode()
    return _varint(len(raw)) + raw


HUGE = 2**31


def _hostile_bodies() -> dict[str, tuple[str, bytes]]:
    """Bodies whose next length prefix claims 2**31 items or bytes, with almost no input."""
    lead = str(uuid.uuid4())
    captured_head = b"".join(
        [_avro_str(str(uuid.uuid4())), _avro_str(lead), _avro_str("a@b.c"), _avro_str("A")]
        + [_avro_str("B"), b"\x00", b"\x00", _avro_str("Co"), b"\x00", _avro_str("EU"), b"\x00"]
    )
    activity_head = _avro_str(str(uuid.uuid4())) + _avro_str(lead) + b"\x00" + b"\x00"
    dead_head = _avro_str(str(uuid.uuid4())) + b"\x00" + _avro_str("d") + b"\x00" + _avro_str("t")
    dead_head += b"\x00\x00"  # no partition, no offset
    return {
        "string length": ("LeadCaptured", _varint(HUGE) + b"x" * 16),
        "array count": ("LeadCaptured", captured_head + _varint(HUGE) + b"\x02a" * 4),
        "array block size": ("LeadCaptured", captured_head + _varint(-HUGE) + _varint(HUGE)),
        "map count": ("ActivityRecorded", activity_head + _varint(HUGE) + b"\x02k\x02v"),
        "bytes length": ("DeadLetter", dead_head + b"\x02" + _varint(HUGE) + b"zz"),
    }


@pytest.mark.parametrize("case", sorted(_hostile_bodies()))
def test_length_prefixes_cannot_make_decode_allocate(codec: Codec, case: str) -> None:
    name, body = _hostile_bodies()[case]
    header = codec.encode(f"{name}-value", name, _sample(name))[:5]
    codec.decode(codec.encode(f"{name}-value", name, _sample(name)), name)  # warm the caches
    tracemalloc.start()
    try:
        with pytest.raises(LeadflowError) as excinfo:
            codec.decode(header + body, name)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _code(excinfo) == ErrorCode.BAD_ENCODING
    assert peak < 256 * 1024, f"{case}: decode peaked at {peak} bytes for {len(body)} input bytes"


def test_the_allocation_probe_would_see_zero_width_items() -> None:
    """Control: without schemas.lint's rule, a count prefix alone makes fastavro allocate."""
    schema = {"type": "array", "items": "null"}
    field = {"name": "a", "type": schema, "doc": "a"}
    assert schemas.lint({"type": "record", "name": "R", "doc": "r", "fields": [field]})
    parsed = fastavro.parse_schema(schema)
    tracemalloc.start()
    try:
        fastavro.schemaless_reader(io.BytesIO(_varint(2**20) + b"\x00"), parsed)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak > 256 * 1024


@pytest.mark.parametrize("index", [-1, -3, -11, -12, 11, 2**40])
def test_an_enum_index_outside_the_symbols_is_bad_encoding_even_negative(
    tmp_path: Path, index: int
) -> None:
    """fastavro reads ``symbols[index]``: index -3 of LeadStatus read as CLOSED_WON, a valid
    status from bytes no Avro writer produces (found by tests/integration/test_fuzz_intake.py)."""
    codec = Codec(FileRegistry(tmp_path / "registry.json"))
    raw = schemas.latest("LeadStatusChanged")
    record = {
        "event_id": str(uuid.uuid4()), "lead_id": str(uuid.uuid4()), "previous_status": None,
        "new_status": "WORKING", "disqualification_reason": None, "sales_notes": None,
        "updated_by": None, "occurred_at": datetime.now(UTC), "source_system": "t",
        "correlation_id": None,
    }
    framed = codec.encode("crm.status-changed-value", "LeadStatusChanged", record)
    # The same record with new_status as a bare long: the index goes where the symbol went.
    wide = copy.deepcopy(raw)
    for f in wide["fields"]:
        if f["name"] == "previous_status":
            f["type"] = ["null", "long"]
        if f["name"] == "new_status":
            f["type"] = "long"
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(wide), {**record, "new_status": index})
    assert codec.decode(framed, "LeadStatusChanged")["new_status"] == "WORKING"
    with pytest.raises(LeadflowError) as caught:
        codec.decode(framed[:5] + body.getvalue(), "LeadStatusChanged")
    assert caught.value.code is ErrorCode.BAD_ENCODING
