"""Admin endpoints: ``POST /v1/admin/erasures`` (erase a person, core.erasure).

Routes under ``/v1/admin/`` need an API key of scope ``admin``: the access guard
(streams.access.guard) refuses every other request before it gets here, and tells the
handler which key called, for the audit (``key:<id>``). A rejected body is not
dead-lettered: it names the person to erase.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from faust.web import Request, Response, View

from streams import erase, topics
from streams.access.guard import KEY_ID
from streams.api import read_body
from streams.errors import ErrorCode, LeadflowError


def _subject(body: Any) -> str:
    if not isinstance(body, dict):
        raise LeadflowError(ErrorCode.FIELD_MISMATCH, "body must be a JSON object", "body")
    lead = body.get("lead_id", body.get("leadId"))
    email = body.get("email")
    if (lead is None) == (email is None):
        raise LeadflowError(ErrorCode.MISSING_FIELD, "give exactly one of lead_id and email",
                            "lead_id" if lead is None else "email")
    value = lead if lead is not None else email
    if not isinstance(value, str):
        raise LeadflowError(ErrorCode.FIELD_MISMATCH, "must be a string",
                            "lead_id" if lead is not None else "email")
    if lead is not None and "@" in value:
        raise LeadflowError(ErrorCode.FIELD_MISMATCH, "lead_id must be a uuid", "lead_id")
    if email is not None and "@" not in value:
        raise LeadflowError(ErrorCode.INVALID_EMAIL, "email is not an address", "email")
    return value


def register(app: Any) -> None:
    from streams.api import problem

    settings, codec = app.settings, app.codec

    @app.page("/v1/admin/erasures")
    class Erasures(View):
        async def post(self, request: Request) -> Response:
            caller = f"key:{request[KEY_ID]}"  # the guard let only an admin key through
            try:
                raw = await read_body(request, settings.max_request_bytes)
                try:
                    body = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise LeadflowError(ErrorCode.BAD_ENCODING, f"body is not JSON: {exc}"
                                        ) from exc
                key, record = erase.prepare(_subject(body), by=caller, via="api")
                spec = topics.ERASURES
                value = codec.encode(spec.subject, spec.record, record)
                await asyncio.to_thread(erase.audit_request, settings, record)
                try:
                    await asyncio.wait_for(app.producer.send_and_wait(
                        spec.name, key, value, None, None, None), settings.send_timeout_s)
                except Exception as exc:
                    raise LeadflowError(ErrorCode.UNAVAILABLE,
                                        f"broker did not acknowledge: {exc!r}") from exc
            except LeadflowError as err:
                return problem(self, err)
            answer = {"status": "accepted", "erasureId": record["erasure_id"],
                      "subject": "lead" if record["lead_id"] else "email"}
            if record["lead_id"]:
                answer["leadId"] = record["lead_id"]
            return self.bytes(orjson.dumps(answer), content_type="application/json",
                              status=202)
