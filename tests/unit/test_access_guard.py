"""The access guard over real HTTP (aiohttp's test server), on a clock the test moves."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.access import keys, rules
from streams.access.guard import KEY_ID, Guard
from streams.access.ratelimit import Limiter

INGEST, READ, ADMIN = keys.new_key(), keys.new_key(), keys.new_key()
STRANGER = keys.new_key()  # the form of a key, configured nowhere


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_guard(*, public: tuple[str, ...] = (), per_key: Limiter | None = None,
               per_address: Limiter | None = None, address_header: str = "",
               ring: keys.KeyRing | None = None) -> tuple[Guard, Counter[str], Clock]:
    table = rules.Endpoints()
    table.declare("/v1/webhooks/hubspot", rules.SIGNATURE)
    table.open_to_public(public)
    if ring is None:
        ring = keys.KeyRing([keys.configured("forms", ["ingest"], INGEST).line(),
                             keys.configured("analyst", ["read"], READ).line(),
                             keys.configured("ops", ["read", "admin"], ADMIN).line()])
    rejected: Counter[str] = Counter()
    clock = Clock()
    guard = Guard(table, ring, Limiter(0, 1) if per_key is None else per_key,
                  Limiter(0, 1) if per_address is None else per_address,
                  address_header=address_header, rejected=rejected, clock=clock)
    return guard, rejected, clock


@pytest.fixture
def served() -> list[str]:
    return []


async def client_for(guard: Guard, served: list[str]) -> TestClient:
    async def handler(request: web.Request) -> web.Response:
        served.append(f"{request.method} {request.path} by {request.get(KEY_ID)}")
        return web.json_response({"ok": True}, status=202 if request.method == "POST" else 200)

    app = web.Application(middlewares=[guard.middleware])
    for method, path in (("GET", "/v1/health"), ("POST", "/v1/leads"),
                         ("POST", "/v1/activities"), ("GET", "/v1/sla"),
                         ("GET", "/v1/leads/{lead_id}/trace"), ("GET", "/metrics"),
                         ("POST", "/v1/admin/erasures"), ("POST", "/v1/webhooks/hubspot"),
                         ("GET", "/table/{name}/")):
        app.router.add_route(method, path, handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(served: list[str]) -> AsyncIterator[TestClient]:
    guard, _, _ = make_guard(public=("/v1/activities",))
    c = await client_for(guard, served)
    yield c
    await c.close()


async def problem(resp: Any) -> dict[str, Any]:
    assert resp.content_type == "application/problem+json"
    body = await resp.json(content_type=None)
    assert body["status"] == resp.status and body["type"].endswith(body["code"])
    return body


async def test_without_a_key_reads_are_refused_and_health_is_open(
    client: TestClient, served: list[str]
) -> None:
    for path in ("/v1/sla", "/v1/leads/x/trace", "/metrics", "/table/traces/"):
        resp = await client.get(path)
        assert resp.status == 401, path
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="leadflow"'
        body = await problem(resp)
        assert body["code"] == "UNAUTHENTICATED" and "Authorization: Bearer" in body["detail"]
    assert (await client.post("/v1/leads", data=b"{}")).status == 401
    assert (await client.get("/v1/health")).status == 200
    assert served == ["GET /v1/health by None"]


async def test_a_key_without_the_scope_gets_403(client: TestClient, served: list[str]) -> None:
    resp = await client.get("/v1/sla", headers=bearer(INGEST))
    assert resp.status == 403
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer realm="leadflow", error="insufficient_scope", scope="read"')
    body = await problem(resp)
    assert body["code"] == "FORBIDDEN_SCOPE" and "'forms'" in body["detail"]
    assert (await client.post("/v1/leads", headers=bearer(READ))).status == 403
    assert (await client.post("/v1/admin/erasures", headers=bearer(READ))).status == 403
    assert (await client.get("/table/traces/", headers=bearer(READ))).status == 403
    assert served == []


async def test_the_right_scope_passes_by_either_header(
    client: TestClient, served: list[str]
) -> None:
    assert (await client.get("/v1/sla", headers=bearer(READ))).status == 200
    assert (await client.get("/metrics", headers={"X-API-Key": READ})).status == 200
    assert (await client.post("/v1/leads", headers=bearer(INGEST))).status == 202
    assert (await client.post("/v1/admin/erasures", headers=bearer(ADMIN))).status == 202
    assert (await client.get("/v1/nowhere", headers=bearer(READ))).status == 404
    assert (await client.get("/v1/nowhere")).status == 401
    assert served == ["GET /v1/sla by analyst", "GET /metrics by analyst",
                      "POST /v1/leads by forms", "POST /v1/admin/erasures by ops"]


async def test_a_wrong_key_is_401_even_where_no_key_is_needed(
    client: TestClient, served: list[str]
) -> None:
    for headers in (bearer(STRANGER), {"X-API-Key": STRANGER},
                    {"Authorization": f"Basic {STRANGER}"}, {"Authorization": "Bearer"}):
        for method, path in (("GET", "/v1/sla"), ("POST", "/v1/activities")):
            resp = await client.request(method, path, headers=headers)
            assert resp.status == 401, (headers, path)
            assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
            body = await problem(resp)
            assert STRANGER not in str(body) and STRANGER[4:] not in str(body)
    assert served == []


async def test_public_and_signed_endpoints_need_no_key(
    client: TestClient, served: list[str]
) -> None:
    assert (await client.post("/v1/activities")).status == 202
    assert (await client.post("/v1/webhooks/hubspot")).status == 202
    # A vendor's own credentials are the handler's to check (Pipedrive: Basic auth).
    for theirs in ({"Authorization": "Basic dXNlcjpwYXNz"}, bearer(STRANGER)):
        assert (await client.post("/v1/webhooks/hubspot", headers=theirs)).status == 202
    assert (await client.post("/v1/activities", headers=bearer(INGEST))).status == 202
    assert served == ["POST /v1/activities by None", "POST /v1/webhooks/hubspot by None",
                      "POST /v1/webhooks/hubspot by None", "POST /v1/webhooks/hubspot by None",
                      "POST /v1/activities by forms"]


async def test_no_key_configured_says_how_to_make_one(served: list[str]) -> None:
    guard, _, _ = make_guard(ring=keys.KeyRing())
    client = await client_for(guard, served)
    try:
        body = await problem(await client.get("/v1/stats"))
        assert "leadflow keys new" in body["detail"]
        assert (await client.get("/v1/health")).status == 200
    finally:
        await client.close()


async def test_a_key_over_its_rate_gets_429_before_its_request_is_read(
    served: list[str]
) -> None:
    guard, rejected, clock = make_guard(per_key=Limiter(rate=1, burst=2))
    client = await client_for(guard, served)
    try:
        answers = [(await client.post("/v1/leads", headers=bearer(INGEST))) for _ in range(3)]
        assert [r.status for r in answers] == [202, 202, 429]
        assert answers[2].headers["Retry-After"] == "1"
        body = await problem(answers[2])
        assert body["code"] == "RATE_LIMITED" and "key 'forms'" in body["detail"]
        assert len(served) == 2  # the refused request never reached its handler
        # Another key has its own bucket; the same key again once a second has passed.
        assert (await client.get("/v1/sla", headers=bearer(READ))).status == 200
        clock.now += 1.0
        assert (await client.post("/v1/leads", headers=bearer(INGEST))).status == 202
        assert rejected == Counter({"RATE_LIMITED": 1})
    finally:
        await client.close()


async def test_requests_without_a_valid_key_are_limited_by_address(served: list[str]) -> None:
    guard, rejected, clock = make_guard(public=("/v1/leads",), address_header="X-Forwarded-For",
                                        per_address=Limiter(rate=0.5, burst=2))
    client = await client_for(guard, served)
    try:
        spoofed = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}  # the proxy wrote the last
        codes = [(await client.post("/v1/leads", headers=spoofed)).status for _ in range(2)]
        codes += [(await client.get("/v1/sla", headers={**spoofed, **bearer(STRANGER)})).status]
        assert codes == [202, 202, 429]  # guessing keys costs the same budget
        other = {"X-Forwarded-For": "198.51.100.8"}
        assert (await client.post("/v1/leads", headers=other)).status == 202
        assert (await client.get("/v1/sla", headers={**spoofed, **bearer(READ)})).status == 200
        clock.now += 2.0
        assert (await client.post("/v1/leads", headers=spoofed)).status == 202
        assert rejected == Counter({"RATE_LIMITED": 1})
    finally:
        await client.close()


async def test_no_key_reaches_the_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for key in (INGEST, READ, ADMIN, STRANGER):
        for headers in (bearer(key), {"X-API-Key": key}):
            for path in ("/v1/sla", "/v1/admin/erasures"):
                await client.post(path, headers=headers)
                await client.get(path, headers=headers)
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "refused" in text and "'forms'" in text  # refusals are logged, by key id
    for key in (INGEST, READ, ADMIN, STRANGER):
        assert key not in text and key[4:20] not in text
