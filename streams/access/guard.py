"""The middleware in front of every route of a worker's web server: key, scope, rate.

Order of the checks, and why:

1. An ``OPEN`` route (health, the API documents) passes untouched: load balancers poll it.
2. The request is charged to a token bucket *before anything else is read*: its key's, when
   it presents a valid key, else its source address's (public and signed endpoints, and
   every failed attempt: guessing keys costs a flood its budget). An empty bucket answers
   429 with Retry-After, and the body was never read, so a sender retrying it loses nothing;
   an event answered 202 was published before the answer (``api.ingest``).
3. A key that is presented but unknown answers 401, even on a public endpoint: a client
   that sends one believes it needs it, and should hear it is wrong. A signed route's
   credentials are the vendor's (Pipedrive's Basic auth, say): no key is looked for there.
4. Public and signed routes pass (the handler checks the signature); a key route needs a
   valid key (401) with the route's scope (403).

Refusals are problem+json with a code (``UNAUTHENTICATED``, ``FORBIDDEN_SCOPE``,
``RATE_LIMITED``), counted in ``http_rejected``, and never dead-lettered: their bodies were
not read. Neither the key nor the Authorization header appears in a log line or an answer;
the key's id does.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any

import orjson
from aiohttp import web

from streams.access.keys import KeyRing
from streams.access.ratelimit import Limiter, retry_after
from streams.access.rules import Endpoints, Need

log = logging.getLogger(__name__)
REALM = 'Bearer realm="leadflow"'
_CORRELATION = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Where a handler finds the id of the key that called it (an audit records who acted).
KEY_ID = web.RequestKey("leadflow.api_key_id", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AccessCode(StrEnum):
    """Codes of refused requests; HTTP only (nothing refused here is dead-lettered)."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN_SCOPE = "FORBIDDEN_SCOPE"
    RATE_LIMITED = "RATE_LIMITED"


TITLES = {
    AccessCode.UNAUTHENTICATED: "An API key is needed",
    AccessCode.FORBIDDEN_SCOPE: "The API key lacks the scope this endpoint needs",
    AccessCode.RATE_LIMITED: "Too many requests",
}
STATUS = {AccessCode.UNAUTHENTICATED: 401, AccessCode.FORBIDDEN_SCOPE: 403,
          AccessCode.RATE_LIMITED: 429}


def refusal(
    code: AccessCode, detail: str, headers: Mapping[str, str], correlation_id: str | None = None
) -> web.Response:
    status = STATUS[code]
    body: dict[str, Any] = {
        "type": f"urn:leadflow:problem:{code}", "title": TITLES[code], "status": status,
        "detail": detail, "code": str(code),
    }
    out = dict(headers)
    if correlation_id:
        body["correlationId"] = correlation_id
        out["X-Correlation-Id"] = correlation_id
    return web.Response(body=orjson.dumps(body), status=status, headers=out,
                        content_type="application/problem+json")


def presented_key(headers: Mapping[str, str]) -> tuple[bool, str]:
    """(whether credentials were sent, the key): ``Authorization: Bearer KEY`` or
    ``X-API-Key: KEY``. Another Authorization scheme counts as credentials that are wrong."""
    auth = headers.get("Authorization", "").strip()
    if auth:
        scheme, _, value = auth.partition(" ")
        return True, value.strip() if scheme.lower() == "bearer" else ""
    key = headers.get("X-API-Key", "").strip()
    return bool(key), key


class Guard:
    def __init__(
        self,
        endpoints: Endpoints,
        ring: KeyRing,
        per_key: Limiter,
        per_address: Limiter,
        *,
        address_header: str = "",
        rejected: Any = None,  # a Counter by code (Stats.http_rejected)
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoints, self.ring = endpoints, ring
        self.per_key, self.per_address = per_key, per_address
        self.address_header = address_header
        self.rejected = rejected
        self.clock = clock

    def address(self, request: web.Request) -> str:
        """The client's address: the peer's, or behind a trusted proxy the last entry of the
        header it sets (a client can write the earlier ones itself)."""
        if self.address_header:
            value = request.headers.get(self.address_header, "")
            last = value.rsplit(",", 1)[-1].strip()
            if last:
                return last
        return request.remote or "unknown"

    def need(self, request: web.Request) -> Need:
        resource = request.match_info.route.resource
        return self.endpoints.need(resource.canonical if resource is not None else None)

    def refuse(self, request: web.Request, code: AccessCode, detail: str,
               headers: Mapping[str, str], who: str) -> web.Response:
        if self.rejected is not None:
            self.rejected[str(code)] += 1
        if code is not AccessCode.RATE_LIMITED:  # a flood would flood the log too
            log.info("refused %s %s from %s: %s (%s)", request.method, request.path,
                     self.address(request), code, who)
        cid = request.headers.get("X-Correlation-Id", "")
        return refusal(code, detail, headers, cid if _CORRELATION.match(cid) else None)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        need = self.need(request)
        if need.kind == "open":
            return await handler(request)
        if need.kind == "signature":
            # The vendor's own mechanism owns the request's credentials (Pipedrive sends
            # Authorization: Basic): no key is looked for, the address pays.
            sent, presented = False, ""
        else:
            sent, presented = presented_key(request.headers)
        key = self.ring.find(presented)
        limiter, name, what = ((self.per_key, key.id, f"key {key.id!r}") if key is not None
                               else (self.per_address, self.address(request), "this address"))
        wait = limiter.take(name, self.clock())
        if wait > 0:
            after = retry_after(wait)
            return self.refuse(
                request, AccessCode.RATE_LIMITED,
                f"over {limiter.rate:g} requests/s (burst {limiter.burst}) for {what}; "
                f"retry after {after} s", {"Retry-After": after}, what)
        if sent and key is None:
            return self.refuse(
                request, AccessCode.UNAUTHENTICATED,
                "the API key presented is not one this worker accepts (revoked, mistyped, or "
                "configured on other workers only); send Authorization: Bearer KEY",
                {"WWW-Authenticate": f'{REALM}, error="invalid_token"'}, "unknown key")
        if key is not None:
            request[KEY_ID] = key.id
        if need.kind in ("public", "signature"):
            return await handler(request)
        if key is None:
            return self.refuse(request, AccessCode.UNAUTHENTICATED, self._missing(need),
                               {"WWW-Authenticate": REALM}, "no key")
        if need.scope is not None and need.scope not in key.scopes:
            return self.refuse(
                request, AccessCode.FORBIDDEN_SCOPE,
                f"key {key.id!r} has scope {'+'.join(sorted(key.scopes))}; "
                f"{request.method} {request.path} needs {need.scope}",
                {"WWW-Authenticate":
                 f'{REALM}, error="insufficient_scope", scope="{need.scope}"'},
                f"key {key.id!r}")
        return await handler(request)

    def _missing(self, need: Need) -> str:
        scope = f" with scope {need.scope}" if need.scope else ""
        detail = (f"this endpoint needs an API key{scope}: send Authorization: Bearer KEY "
                  "(or X-API-Key: KEY)")
        if not len(self.ring):
            detail += ("; this worker accepts none yet: configure LEADFLOW_API_KEYS "
                       "(`leadflow keys new` makes a key and its line)")
        return detail



def endpoints(app: Any) -> Endpoints:
    """The app's access table; a module serving a route declares what it needs here, e.g.
    ``endpoints(app).declare("/v1/webhooks/hubspot", rules.SIGNATURE)``."""
    table = getattr(app, "access_endpoints", None)
    if table is None:
        table = app.access_endpoints = Endpoints()
    return table


def install(app: Any) -> Guard:
    """Put the guard in front of the app's web server, as the settings say. A bad key line or
    public endpoint stops the worker here, before it serves anything."""
    settings = app.settings
    table = endpoints(app)
    table.open_to_public(settings.public_endpoints)
    ring = KeyRing(settings.api_keys)
    guard = Guard(
        table, ring,
        Limiter(settings.rate_limit_key, settings.rate_limit_key_burst),
        Limiter(settings.rate_limit_address, settings.rate_limit_address_burst),
        address_header=settings.client_address_header,
        rejected=app.stats.http_rejected,
    )
    web_app = app.web.web_app
    web_app.middlewares.append(guard.middleware)

    async def announce(_: web.Application) -> None:
        public = ", ".join(sorted(table.public)) or "none"
        if len(ring):
            log.info("API access: %d key(s) (%s); public endpoints: %s", len(ring),
                     ", ".join(k.id for k in ring), public)
        else:
            log.warning("API access: no key configured (LEADFLOW_API_KEYS): every endpoint "
                        "but health, the API documents and the public ones (%s) answers "
                        "401", public)

    web_app.on_startup.append(announce)
    return guard
