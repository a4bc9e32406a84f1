"""Access on a real worker: keys and scopes, a public endpoint, a flood, and logs without keys.

The worker accepts four keys (the tests' own of every scope, a reader, a form backend, a
flooder), opens POST /v1/activities to the public and limits each key to 20 requests/s (burst
10) and each address without a key to 5/s (burst 20). It takes the client's address from
X-Forwarded-For, as behind a proxy, so a test can come from an address of its own.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.access import keys
from streams.access.client import headers
from streams.broker import EmbeddedBroker
from streams.views import fetch_trace, get_json
from tests.conftest import API_KEYS, Worker, start_worker, stop_worker, wait_for
from tests.integration.test_intake import example, post

pytestmark = pytest.mark.integration

READER, FORMS, FLOODER = keys.new_key(), keys.new_key(), keys.new_key()
STRANGER = keys.new_key()
LINES = [API_KEYS, keys.configured("reader", ["read"], READER).line(),
         keys.configured("forms", ["ingest"], FORMS).line(),
         keys.configured("flooder", ["ingest"], FLOODER).line()]


@pytest.fixture(scope="module")
def guarded(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = start_worker(
        broker, tmp_path_factory.mktemp("guarded"),
        LEADFLOW_API_KEYS=",".join(LINES), LEADFLOW_PUBLIC_ENDPOINTS="/v1/activities",
        LEADFLOW_RATE_LIMIT_KEY="20", LEADFLOW_RATE_LIMIT_KEY_BURST="10",
        LEADFLOW_RATE_LIMIT_ADDRESS="5", LEADFLOW_RATE_LIMIT_ADDRESS_BURST="20",
        LEADFLOW_CLIENT_ADDRESS_HEADER="X-Forwarded-For",
    )
    yield w
    stop_worker(w)


def lead(lead_id: str) -> bytes:
    body = json.loads(example("lead-captured.json"))
    body.update(leadId=lead_id, email=f"{lead_id[:8]}@example.org")
    return json.dumps(body).encode()


def test_reads_without_a_key_get_401_and_health_stays_open(guarded: Worker) -> None:
    base = guarded.base_url
    for path in ("/v1/leads/3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53/trace", "/v1/sla",
                 "/v1/stats", "/metrics", "/table/traces/"):
        status, body = get_json(base + path, key="")
        assert (status, body["code"]) == (401, "UNAUTHENTICATED"), path
    for path in ("/v1/health", "/v1/openapi.json"):
        assert get_json(base + path, key="")[0] == 200, path
    assert get_json(base + "/v1/sla", key=STRANGER)[0] == 401
    status, _, body = post(base, "/v1/leads", lead(str(uuid.uuid4())), {"Authorization": ""})
    assert (status, body["code"]) == (401, "UNAUTHENTICATED")


def test_a_key_without_the_scope_gets_403(guarded: Worker) -> None:
    base = guarded.base_url
    status, body = get_json(base + "/v1/sla", key=FORMS)
    assert (status, body["code"]) == (403, "FORBIDDEN_SCOPE")
    lead_id = str(uuid.uuid4())
    status, _, body = post(base, "/v1/leads", lead(lead_id), headers(READER))
    assert (status, body["code"]) == (403, "FORBIDDEN_SCOPE")
    status, _, _ = post(base, "/v1/leads", lead(lead_id), headers(FORMS))
    assert status == 202
    assert get_json(base + "/v1/sla", key=READER)[0] == 200
    assert wait_for("the form's lead traced",
                    lambda: fetch_trace(base, lead_id, key=READER)[0] == 200)


def test_a_public_endpoint_takes_no_key_but_is_limited_by_address(guarded: Worker) -> None:
    body = json.loads(example("activity-recorded.json"))
    codes = []
    for _ in range(40):
        body["eventId"] = str(uuid.uuid4())
        status, answer_headers, answer = post(
            guarded.base_url, "/v1/activities", json.dumps(body).encode(),
            {"Authorization": "", "X-Forwarded-For": "203.0.113.50"})
        codes.append(status)
        if status == 429:
            assert answer["code"] == "RATE_LIMITED" and answer_headers["Retry-After"] == "1"
    assert set(codes) == {202, 429} and codes.index(429) >= 20, codes
    # Another address has a bucket of its own.
    status, _, _ = post(guarded.base_url, "/v1/activities", json.dumps(body).encode(),
                        {"Authorization": "", "X-Forwarded-For": "203.0.113.51"})
    assert status == 202


async def _flood(base: str, bodies: dict[str, bytes]) -> dict[str, tuple[int, Any, str | None]]:
    import aiohttp

    async with aiohttp.ClientSession(
            headers={**headers(FLOODER), "Content-Type": "application/json"}) as http:

        async def one(lead_id: str) -> tuple[str, tuple[int, Any, str | None]]:
            async with http.post(f"{base}/v1/leads", data=bodies[lead_id]) as resp:
                return lead_id, (resp.status, await resp.json(content_type=None),
                                 resp.headers.get("Retry-After"))

        return dict(await asyncio.gather(*(one(lead_id) for lead_id in bodies)))


def _captured(base: str) -> int | None:
    """Leads the worker's intake read; None when the reader is itself rate limited (its
    polling shares the limit of 20/s)."""
    status, body = get_json(base + "/v1/stats", key=READER)
    return int(body["received"].get("leads.captured", 0)) if status == 200 else None


def test_a_flood_gets_429_and_every_accepted_event_reaches_its_trace(guarded: Worker) -> None:
    base = guarded.base_url
    before = wait_for("stats", lambda: [n] if (n := _captured(base)) is not None else None)[0]
    bodies = {lead_id: lead(lead_id) for lead_id in (str(uuid.uuid4()) for _ in range(80))}
    answers = asyncio.run(_flood(base, bodies))
    accepted = [k for k, (status, _, _) in answers.items() if status == 202]
    limited = [k for k, (status, _, _) in answers.items() if status == 429]
    assert len(accepted) + len(limited) == len(bodies), {s for s, _, _ in answers.values()}
    assert 10 <= len(accepted) < len(bodies) and limited
    for lead_id in limited:
        status, body, retry_after = answers[lead_id]
        assert body["code"] == "RATE_LIMITED" and retry_after is not None
        assert int(retry_after) >= 1
    for lead_id in accepted:
        wait_for(f"accepted lead {lead_id} traced",
                 lambda lid=lead_id: fetch_trace(base, lid, key=READER)[0] == 200)
    # Exactly the accepted leads were published: a refused request was never read.
    assert wait_for("intake settled", lambda: _captured(base) == before + len(accepted))
    # The sender loses nothing by a 429: it sends again after Retry-After until accepted.
    waiting = {k: bodies[k] for k in limited}
    for _ in range(30):
        if not waiting:
            break
        asyncio.run(asyncio.sleep(max(int(answers[k][2] or 1) for k in waiting)))
        again = asyncio.run(_flood(base, waiting))
        waiting = {k: waiting[k] for k, (status, _, _) in again.items() if status == 429}
        assert all(status in (202, 429) for status, _, _ in again.values())
    assert not waiting
    for lead_id in bodies:
        wait_for(f"lead {lead_id} traced",
                 lambda lid=lead_id: fetch_trace(base, lid, key=READER)[0] == 200)
    assert wait_for("intake settled", lambda: _captured(base) == before + len(bodies))


def test_no_key_appears_in_the_log_or_an_answer(guarded: Worker) -> None:
    base = guarded.base_url
    answers = []
    for key in (READER, FORMS, FLOODER, STRANGER):
        for path in ("/v1/sla", "/v1/stats", "/v1/leads/x/trace"):
            answers.append(get_json(base + path, key=key))
        for extra in (headers(key), {"X-API-Key": key, "Authorization": ""}):
            answers.append(post(base, "/v1/leads", b"{not json", extra))
            answers.append(post(base, "/v1/activities", b'{"leadId": 1}', extra))
    # (The reader's own bucket may be empty after the flood test's polling: 200 or 429.)
    assert {a[0] for a in answers} >= {401, 403, 400}
    log = Path(guarded.log).read_text(encoding="utf-8", errors="replace")
    assert "refused" in log and "'forms'" in log  # the refusals were logged, by key id
    text = log + json.dumps([str(a) for a in answers])
    for key in (READER, FORMS, FLOODER, STRANGER):
        assert key not in text and key[4:24] not in text
