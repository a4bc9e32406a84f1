"""Confluent's own Avro serde and leadflow's Codec read each other's bytes.

Confluent's AvroSerializer takes the same Python shapes as leadflow's records: uuids as str
(or uuid.UUID), timestamps as tz-aware datetimes (or int millis), enums as symbol strings —
it writes with fastavro too. Its AvroDeserializer returns uuid.UUID objects for uuid fields,
where leadflow's Codec returns str.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

# The schema-registry half of confluent-kafka needs its extra (authlib, httpx2, cachetools):
# `confluent-kafka[schemaregistry]`. Without it this module is reported as skipped.
pytest.importorskip(
    "confluent_kafka.schema_registry",
    reason="needs confluent-kafka[schemaregistry] (authlib, httpx2, cachetools)",
)

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams import schemas
from streams.codec import Codec
from streams.errors import ErrorCode, LeadflowError

TOPICS = {
    "LeadCaptured": "leads.captured",
    "ActivityRecorded": "leads.activity",
    "LeadStatusChanged": "crm.status-changed",
    "SalesTouchLogged": "crm.touches",
    "LeadScored": "leads.scored",
    "LeadRouted": "leads.routed",
    "SlaEvaluated": "sla.evaluated",
    "ModelPublished": "models.scoring",
    "DeadLetter": "leadflow.dead-letters",
    "IdentityClaim": "leadflow.identity-claims",
    "IdentityResolved": "leadflow.identity-resolved",
}


class ConfluentClientRegistry:
    """leadflow's Registry protocol over a confluent_kafka SchemaRegistryClient, so both sides
    draw ids from one registry."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self.client = client

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        return self.client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))

    def schema(self, schema_id: int) -> dict[str, Any]:
        try:
            found = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            raise LeadflowError(ErrorCode.UNKNOWN_SCHEMA, str(exc)) from exc
        return json.loads(found.schema_str or "null")


@pytest.fixture
def client() -> SchemaRegistryClient:
    return SchemaRegistryClient.new_client({"url": "mock://leadflow-test"})


def _value(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def _uuids_as_str(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _uuids_as_str(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_uuids_as_str(v) for v in value]
    return value


def test_mock_client_is_the_in_memory_registry(client: SchemaRegistryClient) -> None:
    assert type(client).__name__ == "MockSchemaRegistryClient"


@pytest.mark.parametrize("name", sorted(TOPICS))
def test_confluent_writes_and_leadflow_reads(client: SchemaRegistryClient, name: str) -> None:
    schema_text = json.dumps(schemas.latest(name))
    serializer = AvroSerializer(client, schema_text)
    codec = Codec(ConfluentClientRegistry(client))
    for record in schemas.samples(schemas.latest(name)):
        data = serializer(record, _value(TOPICS[name]))
        assert data is not None
        assert codec.decode(data, name) == record


@pytest.mark.parametrize("name", sorted(TOPICS))
def test_leadflow_writes_and_confluent_reads(client: SchemaRegistryClient, name: str) -> None:
    codec = Codec(ConfluentClientRegistry(client))
    writer_only = AvroDeserializer(client)
    with_reader = AvroDeserializer(client, json.dumps(schemas.latest(name)))
    for record in schemas.samples(schemas.latest(name)):
        data = codec.encode(f"{TOPICS[name]}-value", name, record)
        for deserializer in (writer_only, with_reader):
            assert _uuids_as_str(deserializer(data, _value(TOPICS[name]))) == record


def test_both_sides_write_identical_bytes(client: SchemaRegistryClient) -> None:
    """Same registry, same schema text, same record: the very same message bytes."""
    name, topic = "LeadCaptured", TOPICS["LeadCaptured"]
    serializer = AvroSerializer(client, json.dumps(schemas.latest(name)))
    codec = Codec(ConfluentClientRegistry(client))
    for record in schemas.samples(schemas.latest(name)):
        theirs = serializer(record, _value(topic))
        assert codec.encode(f"{topic}-value", name, record) == theirs


def test_confluent_accepts_uuid_objects_and_int_millis(client: SchemaRegistryClient) -> None:
    name, topic = "SalesTouchLogged", TOPICS["SalesTouchLogged"]
    record = schemas.samples(schemas.latest(name))[1]
    as_python = {
        **record,
        "lead_id": uuid.UUID(record["lead_id"]),
        "occurred_at": int(record["occurred_at"].timestamp() * 1000),
    }
    data = AvroSerializer(client, json.dumps(schemas.latest(name)))(as_python, _value(topic))
    assert data is not None
    assert Codec(ConfluentClientRegistry(client)).decode(data, name) == record


def test_unknown_id_through_the_confluent_client(client: SchemaRegistryClient) -> None:
    with pytest.raises(LeadflowError) as excinfo:
        Codec(ConfluentClientRegistry(client)).decode(b"\x00\x00\x00\x03\x09\x00", "LeadScored")
    assert excinfo.value.code == ErrorCode.UNKNOWN_SCHEMA
