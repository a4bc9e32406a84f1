"""What each endpoint of the API needs, by its route pattern.

- ``OPEN``: anyone, unlimited (health checks, the OpenAPI and AsyncAPI documents).
- ``SIGNATURE``: the handler authenticates the sender by a signature of the body (a vendor's
  webhook); no key needed, limited per source address.
- ``PUBLIC``: an ingest endpoint opened to anyone on purpose (``public_endpoints``: a web
  form posting straight to leadflow); limited per source address.
- ``Need("key", scope)``: an API key holding that scope.

A route nobody declared needs ``admin``: an endpoint added without a thought for access is
closed, not open (Faust's own debugging views, ``/table/…`` with raw table values, included).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.errors import ErrorCode, LeadflowError


@dataclass(frozen=True)
class Need:
    kind: str  # open | signature | public | key
    scope: str | None = None


OPEN = Need("open")
SIGNATURE = Need("signature")
PUBLIC = Need("public")
INGEST, READ, ADMIN = Need("key", "ingest"), Need("key", "read"), Need("key", "admin")
# No route matched: any valid key gets its 404 (or 405); no key gets 401, as anywhere.
ANY_KEY = Need("key")

DEFAULTS: dict[str, Need] = {
    "/v1/health": OPEN,
    "/v1/openapi.json": OPEN,
    "/v1/asyncapi.json": OPEN,
    "/v1/leads": INGEST,
    "/v1/activities": INGEST,
    "/v1/webhooks/crm": INGEST,
    "/v1/leads/{lead_id}/trace": READ,
    "/v1/external/{source}/{object_type}/{object_id}": READ,
    "/v1/sla": READ,
    "/v1/stats": READ,
    "/metrics": READ,
}


class Endpoints:
    """The access table of one app: the defaults, what modules declare, the public ones."""

    def __init__(self) -> None:
        self.rules = dict(DEFAULTS)
        self.public: frozenset[str] = frozenset()

    def declare(self, pattern: str, need: Need) -> None:
        """Say what a route needs (a vendor webhook: ``SIGNATURE``), before it serves."""
        self.rules[_norm(pattern)] = need

    def open_to_public(self, paths: Iterable[str]) -> None:
        """Open ingest endpoints to anyone; anything else stops the worker with a reason."""
        paths = [_norm(p) for p in paths if p.strip()]
        may = sorted(p for p, need in self.rules.items() if need == INGEST)
        for path in paths:
            if self.rules.get(path) != INGEST:
                raise LeadflowError(
                    ErrorCode.INVALID_ENUM,
                    f"LEADFLOW_PUBLIC_ENDPOINTS: {path} cannot be opened to the public; only "
                    f"ingest endpoints can be: {', '.join(may)}", field="public_endpoints",
                )
        self.public = frozenset(paths)

    def need(self, pattern: str | None) -> Need:
        """What a request to the route ``pattern`` needs (None: no route matched)."""
        if pattern is None:
            return ANY_KEY
        pattern = _norm(pattern)
        if pattern in self.public:
            return PUBLIC
        found = self.rules.get(pattern)
        if found is not None:
            return found
        return ADMIN


def _norm(pattern: str) -> str:
    pattern = pattern.strip()
    return pattern.rstrip("/") or "/"
