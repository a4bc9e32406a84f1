"""The AsyncAPI document: valid AsyncAPI 3.0, current in the repo, true to topics.py and avro/.

``tests/fixtures/asyncapi-3.0.0.schema.json`` is the AsyncAPI Initiative's JSON Schema of the
3.0.0 specification (github.com/asyncapi/spec-json-schemas, schemas/3.0.0-without-$id.json,
Apache-2.0), kept here so the check runs offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from streams import asyncapi, schemas, topics

REPO = Path(__file__).parents[2]
SPEC = json.loads((REPO / "tests" / "fixtures" / "asyncapi-3.0.0.schema.json").read_text())


@pytest.mark.parametrize("inline", [False, True])
def test_the_document_is_valid_asyncapi_3(inline: bool) -> None:
    doc = asyncapi.document(inline=inline)
    validator = jsonschema.validators.validator_for(SPEC)(SPEC)
    errors = [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert errors == []


def test_the_checked_in_document_is_current() -> None:
    # After changing streams/topics.py or avro/: `leadflow asyncapi --write`.
    assert (REPO / "docs" / "asyncapi.yaml").read_text() == asyncapi.dump_yaml(
        asyncapi.document())


def test_every_topic_is_a_channel_with_its_key_role_and_latest_contract() -> None:
    doc = yaml.safe_load((REPO / "docs" / "asyncapi.yaml").read_text())
    by_address = {c["address"]: c for c in doc["channels"].values()}
    assert set(by_address) == {t.name for t in topics.ALL}
    for spec in topics.ALL:
        channel = by_address[spec.name]
        (ref,) = channel["messages"].values()
        message = doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
        assert message["bindings"]["kafka"]["key"]["description"] == spec.key
        assert message["x-avro-subject"] == spec.subject
        path = REPO / "docs" / message["payload"]["schema"]["$ref"]
        assert json.loads(path.read_text()) == schemas.latest(spec.record)
        internal = spec in topics.INTERNAL
        assert channel["x-internal"] is internal
        assert channel["tags"] == [{"name": "internal" if internal else
                                    "inbound" if spec in topics.INBOUND else "outbound"}]
        kafka = channel["bindings"]["kafka"]
        assert kafka["topic"] == spec.name and kafka.get("partitions") == spec.partitions
        assert ("topicConfiguration" in kafka) is spec.compacted


def test_leadflow_receives_inbound_and_sends_outbound() -> None:
    doc = asyncapi.document()
    actions: dict[str, set[str]] = {}
    for op in doc["operations"].values():
        address = doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["address"]
        actions.setdefault(address, set()).add(op["action"])
    for spec in topics.ALL:
        want = {"receive"} if spec in topics.INBOUND else {"send"} if spec in topics.OUTBOUND \
            else {"send", "receive"}
        assert actions[spec.name] == want, spec.name


def test_served_document_inlines_the_contracts(tmp_path: Any) -> None:
    doc = asyncapi.document(inline=True)
    for spec in topics.ALL:
        payload = doc["components"]["messages"][spec.record]["payload"]
        assert payload["schema"] == schemas.latest(spec.record)
        assert payload["schemaFormat"].startswith("application/vnd.apache.avro+json")
