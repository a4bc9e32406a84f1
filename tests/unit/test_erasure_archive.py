"""Erasure rules (core.erasure) and the archive side: the log, the archiver's scrub, rewrites."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from streams import schemas, topics
from streams.archive import layout
from streams.archive.erasures import Erased, ErasureLog, dead_letter_keys, rewrite
from streams.archive.writer import Raw, Writer
from streams.codec import Codec
from streams.core import contract, erasure
from streams.core.erasure import Subject
from streams.deadletter import dead_letter, key_of
from streams.errors import ErrorCode, LeadflowError
from streams.registry import FileRegistry

T0 = datetime(2025, 6, 1, 12, tzinfo=UTC)
EMAIL = "Dana.Whitfield@Northwind-Analytics.io"
NEEDLES = [b"dana.whitfield@northwind-analytics.io", b"Dana", b"Whitfield", b"0134"]


@pytest.fixture
def codec(tmp_path: Path) -> Codec:
    return Codec(FileRegistry(tmp_path / "registry.json"))


def lead(lead_id: str, email: str = EMAIL, names: tuple[str, str, str] = (
        "Dana", "Whitfield", "+1 415 555 0134")) -> dict[str, Any]:
    base = schemas.samples(schemas.latest("LeadCaptured"))[1]
    first, last, phone = names
    return {**base, "lead_id": lead_id, "event_id": str(uuid.uuid4()), "email": email,
            "first_name": first, "last_name": last, "phone": phone, "occurred_at": T0}


def raw(codec: Codec, spec: topics.TopicSpec, record: dict[str, Any], offset: int,
        key: bytes | None) -> Raw:
    value = codec.encode(spec.subject, spec.record, record)
    return Raw(offset=offset, key=key, value=value,
               timestamp_ms=int((T0 + timedelta(minutes=1)).timestamp() * 1000))


def cells(frame: pl.DataFrame) -> bytes:
    out = []
    for row in frame.iter_rows():
        for v in row:
            out.append(v if isinstance(v, bytes) else str(v).encode())
    return b"\0".join(out).lower()


def test_identity_key_is_per_person_and_holds_no_address() -> None:
    key = erasure.identity_key(EMAIL)
    assert key == erasure.identity_key("  dana.whitfield@northwind-analytics.io ")
    assert "dana" not in key and len(key) == 64
    assert erasure.keys_in(b"junk {\"email\": \"" + EMAIL.encode() + b"\"}") == {key}


def test_subjects_and_ids_are_stable() -> None:
    lead_id = str(uuid.uuid4())
    assert erasure.subject_of(lead_id.upper()).lead_id == lead_id
    by_mail = erasure.subject_of(EMAIL)
    assert by_mail.lead_id is None and by_mail.identity_key == erasure.identity_key(EMAIL)
    assert erasure.erasure_id(by_mail) == erasure.erasure_id(Subject(
        identity_key=erasure.identity_key(EMAIL.lower())))
    for bad in ("", "someone", "not-a-uuid-at-all"):
        with pytest.raises(LeadflowError):
            erasure.subject_of(bad)


def test_a_scrubbed_capture_still_passes_the_contract_with_the_same_shape() -> None:
    record = lead(str(uuid.uuid4()))
    eid = str(uuid.uuid4())
    out = erasure.scrub("LeadCaptured", record, eid)
    assert b"dana" not in repr(out).lower().encode() and b"0134" not in repr(out).encode()
    checked = contract.validate("lead", out, observed_at=T0 + timedelta(days=1),
                                max_skew=timedelta(days=1))
    assert checked["email"].endswith("@erased.example")
    # Idempotent, even under another erasure's id: the placeholder stays.
    assert erasure.scrub("LeadCaptured", out, str(uuid.uuid4())) == out


def test_mark_is_idempotent_and_drops_the_identity_key() -> None:
    record = {"erasure_id": str(uuid.uuid4())}
    state = {"lead_id": "x", "steps": [], "identity_key": "k"}
    marked, changed = erasure.mark(state, "x", record, 5)
    assert changed and "identity_key" not in marked and marked["erased"]["id"]
    assert erasure.mark(marked, "x", {"erasure_id": "other"}, 6) == (marked, False)


def _archive(tmp_path: Path, codec: Codec, lead_id: str, other: str,
             erasures: ErasureLog | None = None) -> Writer:
    w = Writer(tmp_path / "archive", codec.decode, schema_of=codec.registry.schema,
               erasures=erasures)
    w.add(topics.LEADS.name, 0, [
        raw(codec, topics.LEADS, lead(lead_id), 0, lead_id.encode()),
        raw(codec, topics.LEADS, lead(other, "someone.else@example.org",
                                      ("Sam", "Else", "+1 212 555 0199")), 1, other.encode()),
        Raw(offset=2, key=lead_id.encode(), value=b"garbage " + EMAIL.encode(),
            timestamp_ms=int(T0.timestamp() * 1000)),
    ])
    letter = dead_letter(LeadflowError(ErrorCode.CONSENT_MISSING, "no consent"),
                         source_topic="http:POST /v1/leads",
                         value=b'{"email": "' + EMAIL.encode() + b'", "firstName": "Dana"}')
    w.add(topics.DEAD_LETTERS.name, 1, [raw(codec, topics.DEAD_LETTERS, letter, 0, None)])
    w.flush(force=True)
    return w


def test_rewrite_scrubs_the_person_and_leaves_everyone_else(tmp_path: Path,
                                                            codec: Codec) -> None:
    lead_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    _archive(tmp_path, codec, lead_id, other)
    root = tmp_path / "archive"
    assert all(n.lower() in cells(layout.scan(root, "LeadCaptured").collect()) for n in NEEDLES)
    eid = str(uuid.uuid4())
    target = Erased({lead_id: eid}, {erasure.identity_key(EMAIL): eid})
    done = rewrite(root, target)
    assert done.files == 2 and done.rows == 3  # the capture, the garbage, the dead letter
    for record in ("LeadCaptured", "DeadLetter"):
        found = cells(layout.scan(root, record).collect())
        assert not [n for n in NEEDLES if n.lower() in found], record
    leads = layout.scan(root, "LeadCaptured").sort("_offset").collect()
    assert leads["lead_id"].to_list() == [lead_id, other]  # the garbage row is gone
    assert leads["email"][1] == "someone.else@example.org"
    # The rewritten bytes decode to the scrubbed record: a replay sends that.
    again = codec.decode(leads["_value"][0], "LeadCaptured")
    assert again["email"] == erasure.placeholder_email(eid) and again["phone"] is None
    assert rewrite(root, target).files == 0  # repeating it changes nothing


def test_the_archiver_scrubs_an_erased_lead_before_writing(tmp_path: Path,
                                                           codec: Codec) -> None:
    lead_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    log = ErasureLog(tmp_path / "archive")
    log.append(erasure.audit("erased", str(uuid.uuid4()), lead_id=lead_id,
                             identity_key=erasure.identity_key(EMAIL)))
    w = _archive(tmp_path, codec, lead_id, other, erasures=log)
    assert w.counts.erased == 3
    root = tmp_path / "archive"
    for record in ("LeadCaptured", "DeadLetter"):
        assert not [n for n in NEEDLES if n.lower() in cells(layout.scan(root, record).collect())]
    assert layout.scan(root, "LeadCaptured").collect().height == 2


@pytest.mark.parametrize("body", [{}, {"lead_id": "x@y.z"}, {"email": "no-at-sign"},
                                  {"lead_id": str(uuid.uuid4()), "email": EMAIL},
                                  {"email": 5}, []])
def test_an_admin_body_names_exactly_one_lead_or_address(body: Any) -> None:
    from streams.api_admin import _subject

    with pytest.raises(LeadflowError):
        _subject(body)


@pytest.mark.parametrize("sample", range(len(schemas.samples(schemas.latest("LeadCaptured")))))
def test_scrubbing_every_sample_capture_is_idempotent(sample: int) -> None:
    record = schemas.samples(schemas.latest("LeadCaptured"))[sample]
    once = erasure.scrub("LeadCaptured", record, str(uuid.uuid4()))
    assert erasure.scrub("LeadCaptured", once, str(uuid.uuid4())) == once
    assert once["first_name"] == once["last_name"] == erasure.ERASED and once["phone"] is None


@pytest.mark.parametrize("address", [EMAIL, "  a.b+c@x.example.org ", "ÄÖ@bücher.de"])
def test_the_scan_key_of_an_address_is_its_identity_key(address: str) -> None:
    assert erasure.identity_key_scan(contract.normalise_email(address)) == (
        erasure.identity_key(address))


def _letters(codec: Codec, lead_id: str) -> tuple[list[Raw], bytes, bytes]:
    """On partition 1 of the dead-letter topic: a bad Kafka record of the lead (its bytes
    name no one), an HTTP body naming the person by address, another person's, a tombstone.
    Returns them and the keys of the first two."""
    bad = LeadflowError(ErrorCode.BAD_ENCODING, "not Confluent framing")
    of_lead = dead_letter(bad, source_topic=topics.LEADS.name, value=b"\x07junk",
                          key=lead_id.encode(), partition=0, offset=5)
    of_mail = dead_letter(LeadflowError(ErrorCode.CONSENT_MISSING, "no consent"),
                          source_topic="http:POST /v1/leads",
                          value=b'{"email": "' + EMAIL.encode() + b'"}')
    other = dead_letter(LeadflowError(ErrorCode.CONSENT_MISSING, "no consent"),
                        source_topic="http:POST /v1/leads",
                        value=b'{"email": "someone.else@example.org"}')
    records = [raw(codec, topics.DEAD_LETTERS, d, i, key_of(d))
               for i, d in enumerate((of_lead, of_mail, other))]
    records.append(Raw(offset=3, key=key_of(of_mail), value=None,
                       timestamp_ms=int(T0.timestamp() * 1000)))
    return records, key_of(of_lead), key_of(of_mail)


def test_the_erasure_finds_the_dead_letters_that_hold_the_person_before_scrubbing(
        tmp_path: Path, codec: Codec) -> None:
    lead_id = str(uuid.uuid4())
    root = tmp_path / "archive"
    w = Writer(root, codec.decode, schema_of=codec.registry.schema)
    records, by_lead, by_mail = _letters(codec, lead_id)
    w.add(topics.DEAD_LETTERS.name, 1, records)
    w.flush(force=True)
    # The tombstone is not a dead letter: nothing archived for it.
    assert w.counts.tombstones == 1 and layout.scan(root, "DeadLetter").collect().height == 3
    eid = str(uuid.uuid4())
    key = erasure.identity_key(EMAIL)
    # By lead id through the letter's original key (its Kafka key is where it came from).
    assert dead_letter_keys(root, Erased({lead_id: eid}, {})) == {(1, by_lead.decode())}
    assert dead_letter_keys(root, Erased({}, {key: eid})) == {(1, by_mail.decode())}
    both = Erased({lead_id: eid}, {key: eid})
    assert dead_letter_keys(root, both) == {(1, by_lead.decode()), (1, by_mail.decode())}
    assert rewrite(root, both).rows == 2
    assert dead_letter_keys(root, both) == set()  # scrubbed: a repeat tombstones nothing


def test_the_archiver_collects_the_dead_letters_it_scrubs_for_their_tombstones(
        tmp_path: Path, codec: Codec) -> None:
    lead_id = str(uuid.uuid4())
    log = ErasureLog(tmp_path / "archive")
    log.append(erasure.audit("erased", str(uuid.uuid4()), lead_id=lead_id,
                             identity_key=erasure.identity_key(EMAIL)))
    w = Writer(tmp_path / "archive", codec.decode, schema_of=codec.registry.schema,
               erasures=log)
    records, by_lead, by_mail = _letters(codec, lead_id)
    w.add(topics.DEAD_LETTERS.name, 1, records)
    w.flush(force=True)
    assert w.dead_letters == {(1, by_lead.decode()), (1, by_mail.decode())}
    assert not [n for n in NEEDLES if n.lower() in cells(
        layout.scan(tmp_path / "archive", "DeadLetter").collect())]
