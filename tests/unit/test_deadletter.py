"""Dead letters fit the record size limit, whatever they carry."""

from __future__ import annotations

from pathlib import Path

from streams import topics
from streams.codec import Codec
from streams.deadletter import dead_letter, key_of
from streams.errors import ErrorCode, LeadflowError
from streams.registry import FileRegistry


def test_a_dead_letter_of_an_input_over_the_limit_keeps_its_first_bytes_and_fits(
    tmp_path: Path,
) -> None:
    """The intake rejected a record of 1 MiB + 1 as TOO_LARGE, then failed to send the dead
    letter holding it (itself over the limit): the agent crashed and was restarted over and
    over (found by tests/integration/test_fuzz_intake.py)."""
    codec = Codec(FileRegistry(tmp_path / "registry.json"))
    limit = codec.max_record_bytes
    err = LeadflowError(ErrorCode.TOO_LARGE, "record is too large")
    value, key = b"\x00" + b"v" * limit, b"k" * 100_000
    letter = dead_letter(err, source_topic="leads.captured", value=value, key=key, limit=limit)
    encoded = codec.encode(topics.DEAD_LETTERS.subject, topics.DEAD_LETTERS.record, letter)
    assert len(encoded) <= limit
    kept = letter["original_value"]
    assert value.startswith(kept) and len(kept) > limit // 2
    assert key.startswith(letter["original_key"])
    assert f"value truncated to {len(kept)} of {len(value)} bytes" in letter["detail"]
    assert "key truncated to" in letter["detail"]


def test_a_dead_letter_under_the_limit_keeps_everything() -> None:
    err = LeadflowError(ErrorCode.BAD_ENCODING, "not Confluent framing")
    letter = dead_letter(err, source_topic="t", value=b"garbage" * 1000, key=b"lead")
    assert (letter["original_value"], letter["original_key"]) == (b"garbage" * 1000, b"lead")
    assert letter["detail"] == "not Confluent framing"


def test_a_dead_letter_is_keyed_by_where_its_input_came_from() -> None:
    """The topic is compacted, so an erasure can delete a dead letter by its key: a key per
    input, never null (Kafka refuses a record without a key on a compacted topic), the same
    for the same Kafka record rejected again (after a restart), never the lead id (a lead's
    dead letters would replace each other)."""
    err = LeadflowError(ErrorCode.BAD_ENCODING, "not Confluent framing")
    kafka = [dead_letter(err, source_topic="leads.captured", value=b"x", key=b"lead-1",
                         partition=2, offset=offset) for offset in (7, 7, 8)]
    assert [key_of(d) for d in kafka] == [b"leads.captured/2/7"] * 2 + [b"leads.captured/2/8"]
    http = [dead_letter(err, source_topic="http:POST /v1/leads", value=b"{}") for _ in range(2)]
    keys = {key_of(d) for d in http}
    assert len(keys) == 2 and all(k.startswith(b"http:POST /v1/leads/") for k in keys)
    assert key_of(http[0]).endswith(http[0]["event_id"].encode())
