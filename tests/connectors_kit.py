"""Connector test kit: the vendors' fixtures, their signatures computed with the documented
algorithms, and a local server speaking HubSpot's CRM API (GET /crm/v3/objects/{type}/{id})."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from streams.broker import free_port

FIXTURES = Path(__file__).parent / "fixtures" / "connectors"
HUBSPOT_SECRET = "hs-client-secret-0000-test"
HUBSPOT_TOKEN = "pat-na1-test-token"
CLOSE_KEY = "4b1f6c2f8d6e4a3b9c0d1e2f3a4b5c6d7e8f90112233445566778899aabbccdd"
CALENDLY_KEY = "calendly-signing-key-test"
PIPEDRIVE_AUTH = "leadflow:pd-pass-test"
CHILI_SECRET = "chili-shared-secret-test"
ZAPIER_TOKEN = "zapier-bearer-test"
MARKETO_TOKEN = "marketo-bearer-test"
SF_ORG = "00D5g000004ExAmEAA"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def hubspot_v3(uri: str, body: bytes, *, secret: str = HUBSPOT_SECRET, method: str = "POST",
               at_ms: int | None = None) -> dict[str, str]:
    """X-HubSpot-Signature-v3 as HubSpot documents it: base64(HMAC-SHA256(client secret,
    method + uri + body + timestamp))."""
    stamp = str(at_ms if at_ms is not None else int(time.time() * 1000))
    message = f"{method}{uri}{body.decode()}{stamp}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return {"X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
            "X-HubSpot-Request-Timestamp": stamp, "Content-Type": "application/json"}


def close_sig(body: bytes, *, key: str = CLOSE_KEY, at: int | None = None) -> dict[str, str]:
    """close-sig-hash: hex HMAC-SHA256 keyed with bytes.fromhex(key) over timestamp + body."""
    stamp = str(at if at is not None else int(time.time()))
    digest = hmac.new(bytes.fromhex(key), stamp.encode() + body, hashlib.sha256).hexdigest()
    return {"close-sig-hash": digest, "close-sig-timestamp": stamp,
            "Content-Type": "application/json"}


def calendly_sig(body: bytes, *, key: str = CALENDLY_KEY, at: int | None = None) -> dict[str, str]:
    """Calendly-Webhook-Signature: t=<s>,v1=hex HMAC-SHA256(key, t + "." + body)."""
    stamp = str(at if at is not None else int(time.time()))
    digest = hmac.new(key.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Calendly-Webhook-Signature": f"t={stamp},v1={digest}",
            "Content-Type": "application/json"}


def basic(credential: str = PIPEDRIVE_AUTH) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credential.encode()).decode(),
            "Content-Type": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


class HubSpotApi:
    """A local HubSpot CRM API: the objects of hubspot_api.json, a bearer token, and on
    demand some 429s first (with Retry-After, as HubSpot's rate limiter answers)."""

    def __init__(self, objects: dict[str, Any] | None = None, rate_limited: int = 0) -> None:
        self.objects = objects or json.loads(fixture("hubspot_api.json"))
        self.rate_limited = rate_limited
        self.calls: list[str] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def handler(self, request: web.Request) -> web.Response:
        key = f"{request.match_info['type']}/{request.match_info['id']}"
        self.calls.append(key)
        if request.headers.get("Authorization") != f"Bearer {HUBSPOT_TOKEN}":
            return web.json_response({"status": "error", "category": "INVALID_AUTHENTICATION"},
                                     status=401)
        if self.rate_limited > 0:
            self.rate_limited -= 1
            return web.json_response(
                {"status": "error", "message": "You have reached your secondly limit.",
                 "errorType": "RATE_LIMIT", "policyName": "SECONDLY"},
                status=429, headers={"Retry-After": "0.05"})
        found = self.objects.get(key)
        if found is None:
            return web.json_response({"status": "error", "category": "OBJECT_NOT_FOUND"},
                                     status=404)
        return web.json_response(found)

    async def batch_read(self, request: web.Request) -> web.Response:
        """POST /crm/v3/objects/{type}/batch/read: 200 with results, 207 when some ids are
        missing (listed in errors)."""
        kind = request.match_info["type"]
        self.calls.append(f"{kind}/batch")
        if request.headers.get("Authorization") != f"Bearer {HUBSPOT_TOKEN}":
            return web.json_response({"status": "error", "category": "INVALID_AUTHENTICATION"},
                                     status=401)
        if self.rate_limited > 0:
            self.rate_limited -= 1
            return web.json_response({"status": "error", "errorType": "RATE_LIMIT"},
                                     status=429, headers={"Retry-After": "0.05"})
        body = await request.json()
        results, missing = [], []
        for one in body["inputs"]:
            found = self.objects.get(f"{kind}/{one['id']}")
            if found is None:
                missing.append(one["id"])
            else:
                results.append(found)
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results,
                                  "startedAt": "2026-12-01T00:00:00Z",
                                  "completedAt": "2026-12-01T00:00:01Z"}
        if missing:
            answer["numErrors"] = 1
            answer["errors"] = [{"status": "error", "category": "OBJECT_NOT_FOUND",
                                 "message": "Could not get some CONTACT objects",
                                 "context": {"ids": missing}}]
        return web.json_response(answer, status=207 if missing else 200)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/crm/v3/objects/{type}/batch/read", self.batch_read)
        app.router.add_get("/crm/v3/objects/{type}/{id}", self.handler)
        return app

    async def start(self) -> web.AppRunner:
        runner = web.AppRunner(self.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner


@contextmanager
def hubspot_api_thread(api: HubSpotApi) -> Iterator[HubSpotApi]:
    """The local API on its own event loop, for tests that drive a worker process."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["runner"] = loop.run_until_complete(api.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield api
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
