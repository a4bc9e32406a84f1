"""Connectors built from settings: the shipped mappings, the team's own mappings
(connector_mappings_dir), the status tables of leadflow.toml ``[connectors.NAME.status]``,
and each source's secrets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.connectors import engine, hubspot, salesforce

BUILT_IN = ("pipedrive", "close", "calendly", "chilipiper")  # a path of their own each
EXAMPLES = ("marketo", "zapier")  # served under /v1/connectors/generic/{name}


@dataclass
class Connectors:
    mappings: dict[str, engine.SourceMapping] = field(default_factory=dict)  # built-in + generic
    generic: set[str] = field(default_factory=set)
    hubspot: hubspot.Config = field(default_factory=hubspot.Config)
    salesforce_status: Mapping[str, str] = field(
        default_factory=lambda: dict(salesforce.LEAD_STATUS))


def _table(extra: Mapping[str, Any], name: str, key: str) -> dict[str, str]:
    section = (extra.get("connectors") or {}).get(name) or {}
    return {str(k).strip().lower(): str(v).upper() for k, v in (section.get(key) or {}).items()}


def build(settings: Any) -> Connectors:
    extra = settings.extra or {}
    out = Connectors()
    for name in (*BUILT_IN, *EXAMPLES):
        out.mappings[name] = engine.shipped(name).with_status(_table(extra, name, "status"))
    out.generic.update(EXAMPLES)
    if settings.connector_mappings_dir:
        for path in sorted(Path(settings.connector_mappings_dir).glob("*.toml")):
            mapping = engine.load_file(path)
            out.mappings[mapping.name] = mapping.with_status(
                _table(extra, mapping.name, "status"))
            if mapping.name not in BUILT_IN:  # a built-in's name replaces the shipped one
                out.generic.add(mapping.name)
    out.hubspot = hubspot.Config(
        status={**hubspot.LEAD_STATUS, **_table(extra, "hubspot", "status")},
        lifecycle={**hubspot.LIFECYCLE, **_table(extra, "hubspot", "lifecyclestage")},
        status_properties=tuple(settings.hubspot_status_properties),
        attributes={str(k): str(v) for k, v in (
            ((extra.get("connectors") or {}).get("hubspot") or {}).get("attributes") or {}
        ).items()},
    )
    out.salesforce_status = {**salesforce.LEAD_STATUS, **_table(extra, "salesforce", "status")}
    return out


def secrets_for(settings: Any, mapping: engine.SourceMapping) -> tuple[str, ...]:
    """The secrets a mapping's [auth] names: a settings field (``secrets = "close_…"``);
    for generic_secrets, the entries ``name:secret`` of this mapping."""
    source = str(mapping.auth.get("secrets") or "generic_secrets")
    values = tuple(getattr(settings, source, ()) or ())
    if source != "generic_secrets":
        return values
    prefix = mapping.name + ":"
    return tuple(v[len(prefix):] for v in values if v.startswith(prefix))
