"""Admin endpoints: ``POST /v1/admin/erasures`` (erase a person, core.erasure).

Protected by an admin bearer token configured as its SHA-256 (``admin_token_sha256``, several
to rotate); ``admin_caller`` is the one place that decides, so that it can become the access
model's ``admin`` scope. A rejected body is not dead-lettered: it names the person to erase.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from faust.web import Request, Response, View

from streams import erase, topics
from streams.errors import ErrorCode, LeadflowError


def admin_caller(hashes: Iterable[str], headers: Mapping[str, str]) -> str | None:
    """Who calls (``admin:<first 12 hex of the token's hash>``, for the audit), or None when
    the request carries no configured admin token. Every configured hash is compared, in
    constant time, whatever matched before."""
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    matched = False
    for configured in hashes:
        matched |= hmac.compare_digest(digest, configured.strip().lower())
    return f"admin:{digest[:12]}" if matched else None


def _unauthorised(view: View) -> Response:
    body = {"type": "urn:leadflow:problem:UNAUTHORIZED", "title": "Admin token required",
            "status": 401, "code": "UNAUTHORIZED",
            "detail": "send Authorization: Bearer <admin token> (configured by its SHA-256 "
                      "in LEADFLOW_ADMIN_TOKEN_SHA256)"}
    return view.bytes(orjson.dumps(body), content_type="application/problem+json",
                      status=401, headers={"WWW-Authenticate": 'Bearer realm="leadflow-admin"'})


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
            caller = admin_caller(settings.admin_token_sha256, request.headers)
            if caller is None:
                return _unauthorised(self)
            try:
                raw = await request.content.read(settings.max_request_bytes + 1)
                if len(raw) > settings.max_request_bytes:
                    raise LeadflowError(ErrorCode.TOO_LARGE, "body is too large")
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
