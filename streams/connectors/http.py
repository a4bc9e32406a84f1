"""One path per connector: POST /v1/connectors/{hubspot,salesforce,pipedrive,close,calendly,
chilipiper} and /v1/connectors/generic/{name}.

A request is authenticated the vendor's way (``auth``), refused as a replay if the same
signed request was already accepted, translated (``hubspot``, ``salesforce`` or a mapping
through ``engine``), checked against the contract record by record, and published to the
inbound topics before the answer: 200 with a summary (Salesforce: the SOAP Ack). A record the
contract rejects is dead-lettered with its code and the rest of the batch goes through (a
refusal would make the vendor retry the whole batch for a day). An authentication failure is
401 problem+json with code BAD_SIGNATURE and a ``reason``; a broker that does not acknowledge
is 503 (Salesforce: a SOAP fault), and the vendor's retry is deduplicated by event id.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from faust.web import Request, Response, View

from streams import erase, topics
from streams.agents.emit import Emitter
from streams.agents.external import control_record, event_record
from streams.api import correlation_id, parse_json, problem, read_body
from streams.connectors import auth, config, engine, hubspot, salesforce
from streams.connectors.engine import Item
from streams.core import contract, erasure
from streams.deadletter import dead_letter, key_of
from streams.errors import ErrorCode, LeadflowError


def register(app: Any) -> None:
    settings = app.settings
    codec, stats = app.codec, app.stats
    connectors = app.connectors = config.build(settings)
    guard = auth.ReplayGuard(settings.connector_tolerance_s)
    api = app.hubspot_api = hubspot.Api(
        settings.hubspot_api_url, settings.hubspot_api_token, settings.hubspot_api_attempts)
    skew = timedelta(seconds=settings.max_clock_skew_s)
    tolerance = settings.connector_tolerance_s

    async def publish(spec: topics.TopicSpec, key: bytes | None, value: bytes) -> Any:
        try:
            return await asyncio.wait_for(
                app.producer.send_and_wait(spec.name, key, value, None, None, None),
                settings.send_timeout_s,
            )
        except Exception as exc:
            raise LeadflowError(
                ErrorCode.UNAVAILABLE, f"broker did not acknowledge: {exc!r}") from exc

    async def publish_all(batch: list[tuple[topics.TopicSpec, bytes, bytes]]) -> None:
        """Hand a request's records to the producer in order (one lead's events keep it),
        then wait once for all the broker's acknowledgements."""
        if not batch:
            return
        emitter = Emitter(app)  # one aiokafka batch per partition, as agents send
        for spec, key, value in batch:
            emitter.stage_encoded(spec, key, value)
        try:
            await asyncio.wait_for(emitter.flush(), settings.send_timeout_s)
        except Exception as exc:
            raise LeadflowError(
                ErrorCode.UNAVAILABLE, f"broker did not acknowledge: {exc!r}") from exc

    async def letter(err: LeadflowError, request: Request, body: bytes, cid: str) -> None:
        stats.http_rejected[str(err.code)] += 1
        record = dead_letter(err, source_topic=f"http:{request.method} {request.path}",
                             value=body, correlation_id=cid)
        spec = topics.DEAD_LETTERS
        await publish(spec, key_of(record), codec.encode(spec.subject, spec.record, record))
        stats.dead_letters[str(err.code)] += 1

    async def accept(items: list[Item], request: Request, body: bytes,
                     cid: str) -> dict[str, Any]:
        """Validate and publish every record of ``items``; dead-letter what the contract
        rejects. Returns the summary the JSON answers carry."""
        now = datetime.now(UTC)
        seen: set[str] = set()
        keys: set[str] = set()
        sends: list[tuple[str, dict[str, Any], str | None]] = []
        errors: list[LeadflowError] = []
        repeats = 0
        for item in items:
            if item.key and item.key in keys:
                repeats += 1  # the same vendor event twice in one batch
                continue
            keys.add(item.key)
            errors.extend(item.errors)
            for kind, record in item.outputs:
                if record["event_id"] in seen:
                    repeats += 1
                    continue
                seen.add(record["event_id"])
                object_key = record.pop("external_key", None)
                try:
                    sends.append((kind, contract.validate(kind, record, observed_at=now,
                                                          max_skew=skew), object_key))
                except LeadflowError as err:
                    errors.append(err)
        await publish_all([outgoing(kind, rec, object_key) for kind, rec, object_key in sends])
        transient = [e for e in errors if e.code is ErrorCode.UNAVAILABLE]
        for err in errors:
            if err.code is not ErrorCode.UNAVAILABLE:
                await letter(err, request, body, cid)
        if transient:
            # A lookup failed (HubSpot's API): the vendor's retry brings those events back,
            # and what was published now is then a repeat.
            raise LeadflowError(ErrorCode.UNAVAILABLE, transient[0].detail)
        return {
            "status": "accepted",
            "correlationId": cid,
            # leadId of an event about a vendor object: the object's own lead id; the link
            # agent may put the event on the lead of the same person captured first.
            "events": [{"eventId": r["event_id"], "leadId": r["lead_id"], "kind": k}
                       | ({"externalKey": x} if x else {}) for k, r, x in sends],
            "repeats": repeats,
            "rejected": [{"code": str(e.code), "detail": e.detail, "field": e.field}
                         for e in errors],
        }

    def outgoing(kind: str, record: dict[str, Any], object_key: str | None
                 ) -> tuple[topics.TopicSpec, bytes, bytes]:
        """An event naming a lead goes to its inbound topic; one about a vendor object goes
        to the link agent, keyed by the object (agents.external)."""
        spec = topics.BY_KIND[kind]
        value = codec.encode(spec.subject, spec.record, record)
        if object_key is None:
            return spec, record["lead_id"].encode(), value
        person = (erasure.identity_key_or_none(record["email"])
                  if kind == "lead" and record.get("email") else None)
        ext = topics.EXTERNAL
        return ext, object_key.encode(), codec.encode(ext.subject, ext.record, event_record(
            object_key, kind, record, value, person))

    def public_uri(request: Request) -> str:
        if settings.public_base_url:
            return settings.public_base_url.rstrip("/") + request.rel_url.path_qs
        return str(request.url)

    async def handle(view: View, request: Request, name: str) -> Response:
        cid = correlation_id(request)
        body = b""
        try:
            body = await read_body(request, settings.max_request_bytes)
            replay_key, items, answer, erasures = await translate(name, request, body, cid)
            summary = await accept(items, request, body, cid)
            if erasures:
                summary["erasures"] = await erase_contacts(erasures, cid)
            guard.remember(replay_key)
            return answer(view, summary)
        except LeadflowError as err:
            if err.code is not ErrorCode.UNAVAILABLE:
                try:
                    await letter(err, request, body, cid)
                except LeadflowError as unavailable:
                    err = unavailable
            if name == "salesforce" and err.code is ErrorCode.UNAVAILABLE:
                return view.bytes(salesforce.fault(err.detail), status=500,
                                  content_type="text/xml")
            extra = {"reason": err.reason} if isinstance(err, auth.AuthError) else {}
            return problem(view, err, cid, **extra)

    def json_answer(view: View, summary: dict[str, Any]) -> Response:
        return view.bytes(orjson.dumps(summary), content_type="application/json", status=200,
                          headers={"X-Correlation-Id": summary["correlationId"]})

    def soap_ack(view: View, summary: dict[str, Any]) -> Response:
        return view.bytes(salesforce.ACK, content_type="text/xml", status=200)

    async def translate(name: str, request: Request, body: bytes, cid: str) -> Any:
        headers = request.headers
        if name == "hubspot":
            key = auth.verify_hubspot(
                settings.hubspot_client_secrets, settings.hubspot_signature_versions,
                request.method, public_uri(request), headers, body, tolerance_s=tolerance)
            guard.check("hubspot:" + key)
            doc = parse_json(body)
            if isinstance(doc, dict):
                item = hubspot.translate_workflow(doc, connectors.hubspot, cid)
                return "hubspot:" + key, [item], json_answer, []
            items, erasures = await hubspot.translate_batch(doc, connectors.hubspot, api, cid)
            return "hubspot:" + key, items, json_answer, erasures
        if name == "salesforce":
            notifications = salesforce.parse(body)
            salesforce.check_org(notifications, settings.salesforce_org_ids)
            return "", salesforce.translate(notifications, connectors.salesforce_status,
                                            cid), soap_ack, []
        mapping = connectors.mappings[name]
        key = authenticate(mapping, headers, body)
        guard.check(f"{name}:{key}" if key else "")
        items = list(engine.run(mapping, parse_json(body), cid))
        return (f"{name}:{key}" if key else ""), items, json_answer, []

    async def erase_contacts(object_ids: list[Any], cid: str) -> list[dict[str, Any]]:
        """HubSpot's contact.privacyDeletion → an erasure of the contact's lead (and, through
        its identity, of every lead of that person): streams.erase, as the admin API asks."""
        asked = []
        spec = topics.ERASURES
        for object_id in object_ids:
            if object_id in (None, ""):
                continue
            lead_id = hubspot.contact_lead(object_id)
            key, record = erase.prepare(lead_id, by="hubspot", via="hubspot", correlation_id=cid)
            await asyncio.to_thread(erase.audit_request, settings, record)
            await publish(spec, key, codec.encode(spec.subject, spec.record, record))
            # The contact may be linked to a lead captured first (agents.external): the link
            # agent hands the erasure to the contact's person, so that lead goes too.
            ext, contact = topics.EXTERNAL, hubspot.contact_key(object_id)
            await publish(ext, contact.encode(), codec.encode(ext.subject, ext.record,
                          control_record(contact, "ERASE", record["erasure_id"],
                                         record["requested_at"], derived_lead_id=lead_id,
                                         payload=codec.encode(spec.subject, spec.record,
                                                              record),
                                         correlation_id=cid)))
            asked.append({"objectId": object_id, "leadId": lead_id,
                          "erasureId": record["erasure_id"]})
        return asked

    def authenticate(mapping: engine.SourceMapping, headers: Any, body: bytes) -> str:
        spec = mapping.auth
        method = spec.get("method")
        secrets = config.secrets_for(settings, mapping)
        if method == "close":
            return auth.verify_close(secrets, headers, body, tolerance_s=tolerance)
        if method == "calendly":
            return auth.verify_calendly(secrets, headers, body, tolerance_s=tolerance)
        if method == "basic":
            return auth.verify_basic(secrets, headers)
        if method == "bearer":
            return auth.verify_token(secrets, headers, "Authorization", "Bearer ")
        if method == "header":
            header = spec.get("header") or getattr(settings, spec.get("header_setting", ""), "")
            return auth.verify_token(secrets, headers, header)
        if method == "hmac":
            return auth.verify_hmac(
                secrets, headers, body, header=spec["header"],
                message=spec.get("message", "{body}"), encoding=spec.get("encoding", "hex"),
                prefix=spec.get("prefix", ""), timestamp_header=spec.get("timestamp_header", ""),
                tolerance_s=tolerance)
        raise auth.AuthError("NOT_CONFIGURED", f"mapping {mapping.name}: unknown auth method "
                             f"{method!r} (hmac, basic, bearer, header, close, calendly)")

    def page(path: str, name: str) -> None:
        class Connector(View):
            async def post(self, request: Request) -> Response:
                return await handle(self, request, name)

        Connector.__name__ = f"Connector_{name}"
        app.page(path)(Connector)

    paths = [f"/v1/connectors/{name}" for name in ("hubspot", "salesforce", *config.BUILT_IN)]
    for path in paths:
        page(path, path.rsplit("/", 1)[1])
    declare_vendor_authenticated(app, [*paths, "/v1/connectors/generic/{name}"])

    @app.page("/v1/connectors/generic/{name}")
    class Generic(View):
        async def post(self, request: Request, name: str) -> Response:
            if name not in connectors.generic:
                return problem(self, LeadflowError(
                    ErrorCode.NOT_FOUND, f"no mapping named {name!r}; known: "
                    f"{sorted(connectors.generic)}", field="name"))
            return await handle(self, request, name)


def declare_vendor_authenticated(app: Any, paths: list[str]) -> None:
    """Tell the API-key guard (streams.access, issue 20) that these routes authenticate their
    senders by the vendor's own mechanism: vendors send no leadflow API key."""
    try:
        from streams.access import guard, rules  # type: ignore[import-not-found]
    except ImportError:  # no API keys in this build
        return
    for path in paths:
        guard.endpoints(app).declare(path, rules.SIGNATURE)
