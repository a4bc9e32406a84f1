"""The MQL contract as configuration: which context fields a lead must carry, and consent."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.core import contract, payloads
from streams.core import features as feats
from streams.core.sla import Contract

REPO = Path(__file__).parents[2]
EXAMPLES = REPO.parent / "shared" / "examples"
SEED = REPO / "tests" / "fixtures" / "mql-schema-v2.1.json"
NOW = datetime(2026, 11, 21, 10, tzinfo=UTC)


def features_of(body: dict[str, Any]) -> feats.Features:
    record = contract.validate("lead", payloads.lead_from_json(body), observed_at=NOW,
                               max_skew=timedelta(days=1))
    return feats.update(None, "lead", record)


def example() -> dict[str, Any]:
    return json.loads((EXAMPLES / "lead-captured.json").read_text())


def test_the_default_is_todays_contract_with_region() -> None:
    c = Contract.from_config({})
    assert c.context_fields == ("email", "names", "company", "region", "size_band",
                                "trigger_action", "consent")
    assert c.consent_required is True
    shipped = tomllib.loads((REPO / "leadflow.toml").read_text())["sla"]
    assert Contract.from_config(shipped).context_fields == c.context_fields


def test_the_example_lead_is_complete() -> None:
    assert Contract().missing_context(features_of(example())) == []


def test_the_seed_object_misses_region_size_and_consent() -> None:
    f = features_of(json.loads(SEED.read_text()))
    assert f["size_band"] == "SIZE_201_PLUS"  # accepted as sent, but spans three bands
    assert Contract().missing_context(f) == ["region", "size_band", "consent"]
    assert Contract().held_back(f) == ["consent"]


def test_a_b2c_team_defines_its_own_contract() -> None:
    c = Contract.from_config({"marketing": {"context_fields": ["email", "trigger_action"],
                                            "consent_required": False}})
    body = {k: v for k, v in example().items()
            if k not in ("companyName", "companySize", "region", "consent")}
    f = features_of(body)
    assert c.missing_context(f) == [] and c.held_back(f) == []
    assert c.missing_context(features_of({**body, "triggerActions": []})) == ["trigger_action"]
    # Today's contract would name all of it.
    assert Contract().missing_context(f) == ["company", "region", "size_band", "consent"]


def test_a_missing_basis_is_recorded_when_required_even_if_not_a_context_field() -> None:
    c = Contract.from_config({"marketing": {"context_fields": ["email"]}})
    f = features_of({**example(), "consent": None})
    assert c.missing_context(f) == ["consent"] and c.held_back(f) == ["consent"]
    relaxed = Contract.from_config({"marketing": {"context_fields": ["email"],
                                                  "consent_required": False}})
    assert relaxed.missing_context(f) == [] and relaxed.held_back(f) == []


def test_fields_are_reported_in_the_configured_order_once() -> None:
    c = Contract.from_config({"marketing": {"context_fields": ["consent", "email", "consent"]}})
    assert c.context_fields == ("consent", "email")
    assert c.missing_context(None) == ["consent", "email"]


@pytest.mark.parametrize(("value", "message"), [
    (["email", "shoe_size"], "unknown field"),
    ("email", "list of names"),
    ([1], "list of names"),
])
def test_bad_context_fields_name_the_key(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        Contract.from_config({"marketing": {"context_fields": value}})
    assert "sla.marketing.context_fields" in str(info.value)


def test_consent_required_must_be_a_flag() -> None:
    with pytest.raises(ValueError, match="sla.marketing.consent_required"):
        Contract.from_config({"marketing": {"consent_required": "yes"}})


def test_the_seed_object_fits_the_documented_body() -> None:
    from importlib import resources

    import jsonschema

    doc = json.loads(resources.files("streams").joinpath("openapi.json").read_text())
    schema = {"$ref": "#/components/schemas/LeadCaptured", "components": doc["components"]}
    jsonschema.validate(json.loads(SEED.read_text()), schema)
