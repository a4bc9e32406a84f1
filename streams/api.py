"""HTTP ingestion and read views (Faust web, aiohttp underneath).

Writes answer 202 only after the broker acknowledged the record, 503 with Retry-After when it
cannot. Every error is RFC 9457 problem+json with the dead-letter topic's error codes, and
every rejected body also lands in the dead-letter topic. In front of every route, the access
guard (streams.access.guard) checks the API key, its scope and the rate limit before a body
is read: its refusals (401, 403, 429) are not dead-lettered.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import orjson
from faust.exceptions import SameNode
from faust.web import Request, Response, View

from streams import malloc, topics, webhooks
from streams.core import compliance, contract, external, payloads, trace
from streams.deadletter import dead_letter, key_of
from streams.errors import ErrorCode, LeadflowError
from streams.store_memory import rocksdb_memory

STATUS = {
    ErrorCode.BAD_ENCODING: 400,
    ErrorCode.BAD_SIGNATURE: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNAVAILABLE: 503,
}
TITLES = {
    ErrorCode.BAD_ENCODING: "The body could not be decoded",
    ErrorCode.BAD_SIGNATURE: "The webhook signature is not valid",
    ErrorCode.NOT_FOUND: "Not found",
    ErrorCode.TOO_LARGE: "The body is too large",
    ErrorCode.UNAVAILABLE: "The broker did not acknowledge the event",
}
_CORRELATION = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# application/json or a structured +json type; no Content-Type at all is read as JSON too.
_JSON_MEDIA = re.compile(r"^application/(?:[\w.+-]+\+)?json$", re.IGNORECASE | re.ASCII)


class UnsupportedMedia(LeadflowError):
    """A body declared as something other than JSON: BAD_ENCODING, answered 415."""

    status = 415

    def __init__(self, media: str) -> None:
        super().__init__(
            ErrorCode.BAD_ENCODING,
            f"Content-Type {media[:100]!r} is not JSON; send application/json",
            "Content-Type",
        )


def problem(
    view: View, err: LeadflowError, correlation_id: str | None = None, **extra: Any
) -> Response:
    status = getattr(err, "status", None) or STATUS.get(err.code, 422)
    body: dict[str, Any] = {
        "type": f"urn:leadflow:problem:{err.code}",
        "title": TITLES.get(err.code, "The event breaks the contract"),
        "status": status,
        "detail": err.detail,
        "code": str(err.code),
    }
    if err.field:
        body["field"] = err.field
    if correlation_id:
        body["correlationId"] = correlation_id
    headers = {"X-Correlation-Id": correlation_id} if correlation_id else {}
    if err.code is ErrorCode.UNAVAILABLE:
        headers["Retry-After"] = "1"
    body.update(extra)
    return view.bytes(
        orjson.dumps(body), content_type="application/problem+json", status=status,
        headers=headers,
    )


def correlation_id(request: Request) -> str:
    """The caller's X-Correlation-Id when it is well formed, else a new one."""
    given = request.headers.get("X-Correlation-Id", "")
    return given if _CORRELATION.match(given) else str(uuid.uuid4())


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise LeadflowError(ErrorCode.TOO_LARGE, f"body of {declared} bytes is over {limit}")
    # StreamReader.read(n) returns what has arrived, up to n bytes: a large body comes in
    # several reads (one read cut it short, and a valid body failed its JSON or signature).
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise LeadflowError(ErrorCode.TOO_LARGE, f"body is over {limit} bytes")
    return bytes(body)


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise LeadflowError(ErrorCode.BAD_ENCODING, f"body is not JSON: {exc}") from exc


def register(app: Any) -> None:
    from streams.access import guard

    guard.install(app)
    settings = app.settings
    codec, stats = app.codec, app.stats
    traces = app.tables_by_name["traces"]
    skew = timedelta(seconds=settings.max_clock_skew_s)

    async def publish(spec: topics.TopicSpec, key: bytes | None, value: bytes) -> Any:
        try:
            return await asyncio.wait_for(
                app.producer.send_and_wait(spec.name, key, value, None, None, None),
                settings.send_timeout_s,
            )
        except Exception as exc:  # timeout or any Kafka error: the caller may retry
            raise LeadflowError(
                ErrorCode.UNAVAILABLE, f"broker did not acknowledge: {exc!r}"
            ) from exc

    async def ingest(view: View, request: Request, route: str) -> Response:
        cid = correlation_id(request)
        body = b""
        try:
            body = await read_body(request, settings.max_request_bytes)
            media = request.headers.get("Content-Type", "").split(";", 1)[0].strip()
            if media and not _JSON_MEDIA.match(media):
                raise UnsupportedMedia(media)
            if route == "crm":
                webhook_id = webhooks.verify(settings.webhook_secrets, request.headers, body)
                kind, record = payloads.crm_webhook(
                    parse_json(body), webhook_id=webhook_id, correlation_id=cid
                )
            elif route == "lead":
                kind, record = "lead", payloads.lead_from_json(parse_json(body), correlation_id=cid)
            else:
                kind = "activity"
                record = payloads.activity_from_json(parse_json(body), correlation_id=cid)
            record = contract.validate(
                kind, record, observed_at=datetime.now(UTC), max_skew=skew
            )
            spec = topics.BY_KIND[kind]
            await publish(
                spec, record["lead_id"].encode(), codec.encode(spec.subject, spec.record, record)
            )
        except LeadflowError as err:
            stats.http_rejected[str(err.code)] += 1
            if err.code is not ErrorCode.UNAVAILABLE:  # the sender retries; nothing is lost
                letter = dead_letter(
                    err, source_topic=f"http:{request.method} {request.path}",
                    value=body, correlation_id=cid, limit=codec.max_record_bytes,
                )
                try:
                    spec = topics.DEAD_LETTERS
                    await publish(spec, key_of(letter),
                                  codec.encode(spec.subject, spec.record, letter))
                    stats.dead_letters[str(err.code)] += 1
                except LeadflowError as unavailable:
                    err = unavailable  # not dead-lettered: answer 503 so the sender retries
            return problem(view, err, cid)
        return view.bytes(
            orjson.dumps({
                "status": "accepted",
                "eventId": record["event_id"],
                "leadId": record["lead_id"],
                "correlationId": cid,
                "trace": f"/v1/leads/{record['lead_id']}/trace",
            }),
            content_type="application/json",
            status=202,
            headers={"X-Correlation-Id": cid},
        )

    @app.page("/v1/leads")
    class Leads(View):
        async def post(self, request: Request) -> Response:
            return await ingest(self, request, "lead")

    @app.page("/v1/activities")
    class Activities(View):
        async def post(self, request: Request) -> Response:
            return await ingest(self, request, "activity")

    @app.page("/v1/webhooks/crm")
    class CrmWebhook(View):
        async def post(self, request: Request) -> Response:
            return await ingest(self, request, "crm")

    async def on_owner(view: View, request: Request, lead_id: str,
                       table: Any = None) -> Response | None:
        """Forward to the worker whose active partition holds ``lead_id`` (None: this one).

        Not Faust's ``table_route``: it finds the partition of the key as the table's
        serializer writes it (JSON, quoted), while leadflow places a lead on the partition of
        its bare id, like its inbound topics. With standby replicas the wrong worker had a
        copy to answer from, some seconds behind; without, it answered 404."""
        changelog = (table or traces).changelog_topic.get_topic_name()
        try:
            owner = app.assignor.key_store(changelog, lead_id.encode())
        except KeyError:  # no assignment yet (rebalancing)
            return problem(view, LeadflowError(
                ErrorCode.UNAVAILABLE, "partitions are being assigned; retry shortly"))
        try:
            return await app.router._route_req(owner, view.web, request)
        except SameNode:
            return None

    @app.page("/v1/leads/{lead_id}/trace")
    class Trace(View):
        async def get(self, request: Request, lead_id: str) -> Response:
            forwarded = await on_owner(self, request, lead_id)
            if forwarded is not None:
                return forwarded
            state = traces.data.get(lead_id)
            if state is None:
                return problem(self, LeadflowError(
                    ErrorCode.NOT_FOUND, f"no trace for lead {lead_id} (yet)", field="lead_id"
                ))
            related = trace.related_lead_ids(traces.data.get, lead_id)
            states = [traces.data.get(lid) for lid in related]
            steps = trace.timeline(states)
            return self.bytes(
                orjson.dumps({
                    "leadId": lead_id,
                    "canonicalLeadId": state.get("canonical") or lead_id,
                    "relatedLeadIds": related,
                    "aliases": state.get("aliases") or [],
                    "steps": steps,
                    "summary": trace.summary(steps),
                }),
                content_type="application/json",
            )

    links = app.tables_by_name["external_ids"]

    @app.page("/v1/external/{source}/{object_type}/{object_id}")
    class ExternalLink(View):
        """Which lead a vendor's object belongs to (agents.external): `leadflow trace
        hubspot:contact:5101` asks here first."""

        async def get(self, request: Request, source: str, object_type: str,
                      object_id: str) -> Response:
            key = external.external_key(source, object_type, object_id)
            forwarded = await on_owner(self, request, key, links)
            if forwarded is not None:
                return forwarded
            entry = links.data.get(key)
            if not isinstance(entry, dict) or "derived" not in entry:  # not a kept event
                return problem(self, LeadflowError(
                    ErrorCode.NOT_FOUND, f"no event of {key} seen (yet)", field="object_id"))
            return self.bytes(orjson.dumps(external.summary(key, entry)),
                              content_type="application/json")

    @app.page("/v1/sla")
    class Sla(View):
        async def get(self, request: Request) -> Response:
            teams = {rep.id: rep.team for rep in app.policies.routing.reps}
            states = (v for v in traces.data.values() if isinstance(v, dict))
            body = compliance.summarise(states, teams.get)
            body["contract_version"] = app.policies.contract.version
            body["months"] = marketing_months()
            return self.bytes(orjson.dumps(body), content_type="application/json")

    def marketing_months() -> dict[str, Any]:
        table = app.tables_by_name.get("marketing")
        if table is None:
            return {}
        return {k: v for k, v in sorted(table.data.items()) if not k.startswith("lead/")}

    from streams import metrics

    metrics.register(app)  # GET /metrics (Prometheus), beside the health check

    from streams import api_admin

    api_admin.register(app)  # POST /v1/admin/erasures, to keys of scope admin

    @app.page("/v1/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            broker_ok = True
            try:
                client = app.producer._ensure_producer().client
                await asyncio.wait_for(client.fetch_all_metadata(), 2.0)
            except Exception:
                broker_ok = False
            assignment = app.consumer.assignment() if app.consumer else set()
            recovering = metrics.is_recovering(app)
            ok = broker_ok and not recovering
            return self.json(
                {
                    "status": "ok" if ok else "degraded",
                    "broker": "ok" if broker_ok else "unreachable",
                    "assignedPartitions": len(assignment),
                    "assignment": metrics.assignment_by_topic(app),  # agents' topics
                    "recovering": recovering,
                    "time": time.time(),
                },
                status=200 if ok else 503,
            )

    @app.page("/v1/stats")
    class Stats(View):
        async def get(self, request: Request) -> Response:
            body = stats.as_dict()
            # Counting a RocksDB table reads every key: ?leads_traced=0 skips it (pollers).
            if request.query.get("leads_traced") != "0":
                body["leads_traced"] = len(traces.data)
            body["consumer_lag"] = metrics.consumer_lag(app)
            body["store_memory"] = rocksdb_memory(app)
            body["malloc"] = malloc.info()
            return self.json(body)

    @app.page("/v1/openapi.json")
    class OpenApi(View):
        async def get(self, request: Request) -> Response:
            doc = resources.files("streams").joinpath("openapi.json").read_bytes()
            return self.bytes(doc, content_type="application/json")

    asyncapi_doc: list[bytes] = []  # built at the first request, then served as is

    @app.page("/v1/asyncapi.json")
    class AsyncApi(View):
        async def get(self, request: Request) -> Response:
            if not asyncapi_doc:
                from streams import asyncapi

                asyncapi_doc.append(orjson.dumps(asyncapi.document(inline=True)))
            return self.bytes(asyncapi_doc[0], content_type="application/json")
