"""The AsyncAPI 3.0 document of leadflow's Kafka side, generated from ``topics`` and ``avro/``.

OpenAPI describes the HTTP doors; this describes the topics, for a team that produces to
leadflow's inbound topics or consumes its decisions from its own services. It is generated,
never written by hand: ``docs/asyncapi.yaml`` is this module's output (``leadflow asyncapi``
rewrites it; a test checks it is current), with each message's payload a ``$ref`` to its
Avro contract under ``avro/``. ``GET /v1/asyncapi.json`` serves the same document with the
contracts inlined, so it stands alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streams import schemas, topics
from streams.topics import TopicSpec

AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
# Confluent wire format: magic byte 0, 4-byte schema id, Avro binary.
CONTENT_TYPE = "application/vnd.apache.avro+binary"
BINDING = "0.5.0"

_ROLES = {
    **{t.name: "inbound" for t in topics.INBOUND},
    **{t.name: "outbound" for t in topics.OUTBOUND},
    **{t.name: "internal" for t in topics.INTERNAL},
}
_ROLE_TEXT = {
    "inbound": "Inbound: leadflow reads it. Any producer may write to it (Avro, Confluent "
               "framing, subject <topic>-value, keyed by lead id); intake validates every record "
               "and dead-letters what is malformed.",
    "outbound": "Outbound: leadflow writes it. Consume it from your own services.",
    "internal": "Internal: leadflow writes and reads it between its own stages. Do not produce "
                "to it; its contract may change with leadflow.",
}


def channel_id(spec: TopicSpec) -> str:
    """``leads.captured`` → ``leadsCaptured``: an AsyncAPI id for a topic name."""
    words = spec.name.replace("-", ".").split(".")
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def latest_version(record: str) -> int:
    return schemas.versions(record)[-1][0]


def avro_path(record: str) -> str:
    """The latest contract's path, relative to the repository root."""
    return f"avro/{record}/v{latest_version(record)}.avsc"


def document(*, inline: bool = False, version: str = "") -> dict[str, Any]:
    """The document. ``inline``: each payload is its Avro schema itself, else a ``$ref`` to
    the file (relative to ``docs/``, where the generated document is kept)."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in topics.ALL:
        cid = channel_id(spec)
        role = _ROLES[spec.name]
        schema = schemas.latest(spec.record)
        message = spec.record
        messages[message] = {
            "name": message,
            "title": message,
            "summary": schema.get("doc", ""),
            "contentType": CONTENT_TYPE,
            "payload": {
                "schemaFormat": AVRO_FORMAT,
                "schema": schema if inline else {"$ref": "../" + avro_path(spec.record)},
            },
            "bindings": {"kafka": {
                "key": {"type": "string", "description": spec.key},
                "schemaIdLocation": "payload",
                "schemaIdPayloadEncoding": "confluent",
                "schemaLookupStrategy": "TopicNameStrategy",
                "bindingVersion": BINDING,
            }},
            "x-avro-subject": spec.subject,
            "x-avro-contract": avro_path(spec.record),
        }
        kafka: dict[str, Any] = {"topic": spec.name, "bindingVersion": BINDING}
        if spec.partitions is not None:
            kafka["partitions"] = spec.partitions
        if spec.compacted:
            kafka["topicConfiguration"] = {
                k: v.split(",") if k == "cleanup.policy" else int(v)
                for k, v in spec.topic_configs.items()}
        partitions = (f"{spec.partitions} partition(s)" if spec.partitions is not None
                      else "partitions: the `partitions` setting")
        channels[cid] = {
            "address": spec.name,
            "title": spec.name,
            "description": f"{_ROLE_TEXT[role]} Key: {spec.key}. {partitions}"
                           + (", compacted" if spec.compacted else "")
                           + (" and deleted after retention.ms." if "delete" in spec.topic_configs
                              .get("cleanup.policy", "") else "."),
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
            "bindings": {"kafka": kafka},
            "tags": [{"name": role}],
            "x-internal": role == "internal",
        }
        # From leadflow's side: it receives the inbound topics, sends the outbound ones, and
        # does both with the internal ones.
        actions = {"inbound": ("receive",), "outbound": ("send",),
                   "internal": ("send", "receive")}[role]
        for action in actions:
            operations[f"{action}{cid[:1].upper()}{cid[1:]}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{cid}"},
                "messages": [{"$ref": f"#/channels/{cid}/messages/{message}"}],
                "tags": [{"name": role}],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "leadflow topics",
            "version": version or _package_version(),
            "description": (
                "Every Kafka topic leadflow reads or writes, keyed by lead id unless said "
                "otherwise. Values are Avro in Confluent's wire format (byte 0 = 0, 4-byte "
                "big-endian schema id, Avro binary), subject <topic>-value, every subject "
                "FULL_TRANSITIVE. Inbound topics take records from any producer; outbound "
                "topics carry leadflow's decisions; internal topics (x-internal) are "
                "leadflow's own, as are the Faust table changelogs (<app id>-*-changelog), "
                "which are not listed. Generated from streams/topics.py and avro/."
            ),
            "tags": [{"name": r, "description": t} for r, t in _ROLE_TEXT.items()],
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "embedded": {
                "host": "127.0.0.1:9092", "protocol": "kafka",
                "description": "The embedded broker `leadflow up` starts (broker_port).",
            },
            "production": {
                "host": "kafka-1:9092", "protocol": "kafka",
                "description": "Apache Kafka as docker-compose.yml runs it (broker_url).",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("leadflow")
    except PackageNotFoundError:
        return "0.0.0"


def dump_yaml(doc: dict[str, Any]) -> str:
    import yaml

    header = ("# Generated by `leadflow asyncapi --write` from streams/topics.py and avro/;"
              " do not edit.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def repo_file() -> Path:
    return schemas.schema_dir().parent / "docs" / "asyncapi.yaml"
