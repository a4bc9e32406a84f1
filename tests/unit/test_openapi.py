"""The OpenAPI document kept in the repo matches the API and accepts the real example bodies."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from streams.app import build_app
from streams.settings import Settings
from tests.conftest import EXAMPLES

DOC = json.loads(resources.files("streams").joinpath("openapi.json").read_text())


def schema(name: str) -> dict[str, Any]:
    # Resolve $refs against the whole document.
    return {"$ref": f"#/components/schemas/{name}", "components": DOC["components"]}


def test_every_route_of_the_app_is_documented_and_nothing_else(tmp_path: Any) -> None:
    app = build_app(Settings.load(env={}, data_dir=str(tmp_path)))
    ours = {path for path in app.web.views if path.startswith("/v1/")}
    assert ours == set(DOC["paths"])


@pytest.mark.parametrize(
    ("example", "name"),
    [
        ("lead-captured.json", "LeadCaptured"),
        ("activity-recorded.json", "ActivityRecorded"),
        ("crm-lead-status-updated.json", "CrmWebhook"),
        ("crm-lead-touch-logged.json", "CrmWebhook"),
    ],
)
def test_examples_fit_the_documented_bodies(example: str, name: str) -> None:
    jsonschema.validate(json.loads((EXAMPLES / example).read_text()), schema(name))


def test_a_body_without_its_lead_id_does_not_fit() -> None:
    body = json.loads((EXAMPLES / "lead-captured.json").read_text())
    del body["leadId"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, schema("LeadCaptured"))


def test_each_operation_documents_the_access_it_needs(tmp_path: Any) -> None:
    from streams.access import guard, rules

    app = build_app(Settings.load(env={}, data_dir=str(tmp_path)))
    table = guard.endpoints(app)
    for path, ops in DOC["paths"].items():
        need = table.need(path)
        for op in ops.values():
            if need == rules.OPEN:
                assert op["security"] == [], path
                assert not {"403", "429"} & set(op["responses"]), path
                continue
            if need == rules.SIGNATURE:  # a vendor's webhook: its signature, limited by address
                assert op["security"] == [] and "429" in op["responses"], path
                continue
            assert op["security"] == [{"bearerKey": [need.scope]}, {"headerKey": [need.scope]}]
            assert {"401", "403", "429"} <= set(op["responses"]), path
    limited = DOC["components"]["responses"]["RateLimited"]
    assert "Retry-After" in limited["headers"]
    assert "WWW-Authenticate" in DOC["components"]["responses"]["Unauthenticated"]["headers"]
