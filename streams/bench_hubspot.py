"""`leadflow bench`'s connector figure: a HubSpot webhook batch of 100 events to the trace.

Batches of 100 ``contact.propertyChange`` events (hs_lead_status, 10 contacts × 10 changes)
are POSTed to /v1/connectors/hubspot at a fixed rate, signed with X-HubSpot-Signature-v3 as
HubSpot signs them. The contacts (10 new ones each batch) are captured first, untimed, by
workflow bodies: a status change of a contact leadflow has never
seen captured waits for its capture (agents.external), so the figure is the one of a CRM
whose contacts leadflow knows. A batch's latency is the last of its events' trace steps to be
written (their observed_at) minus when the request was sent; beside it, how long HubSpot
waits for the 200. The first second warms up and is not counted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson

from streams.connectors import auth, hubspot, records

SECRET = "bench-hubspot-client-secret"
BATCH = 100
CONTACTS = 10
VALUES = ("ATTEMPTED_TO_CONTACT", "IN_PROGRESS", "CONNECTED", "OPEN", "BAD_TIMING")


def pool(batches: int) -> list[int]:
    base = 10_000_000 + uuid.uuid4().int % 1_000_000_000 * 1000
    return [base + i for i in range(batches * CONTACTS)]


def workflow(contact: int, now_ms: int) -> bytes:
    """A workflow "Send a webhook" body: the contact, as a capture."""
    return orjson.dumps({"objectId": contact, "properties": {
        "email": f"bench.{contact}@bench.example.com", "firstname": "Bench",
        "lastname": str(contact), "company": "Bench Example", "createdate": now_ms - 60_000}})


def batch(n: int, now_ms: int, contacts_pool: list[int] | None = None
          ) -> tuple[bytes, list[str], set[str]]:
    """The body, its contacts' leads and its events' ids."""
    contacts_pool = contacts_pool or pool(n + 1)
    contacts = [contacts_pool[(n * CONTACTS + i) % len(contacts_pool)]
                for i in range(CONTACTS)]
    events = [{
        "eventId": n * BATCH + i, "subscriptionId": 1, "portalId": 62515, "appId": 1,
        "occurredAt": now_ms - BATCH + i, "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0, "objectId": contacts[i % CONTACTS],
        "propertyName": "hs_lead_status", "propertyValue": VALUES[i % len(VALUES)],
        "changeSource": "CRM_UI",
    } for i in range(BATCH)]
    leads = [records.external_lead_id("hubspot", "contact", c) for c in contacts]
    ids = {records.event_id("hubspot", hubspot.dedup_key(e), e["subscriptionType"])
           for e in events}
    return orjson.dumps(events), leads, ids


async def run(base: str, api_key: str, rate: float = 20.0, seconds: float = 10.0
              ) -> tuple[int, list[float], list[float]]:
    """(batches counted, batch-to-trace latencies ms, 200 latencies ms). ``api_key`` reads
    the traces (the batches themselves are signed the HubSpot way)."""
    import aiohttp

    from streams.access.client import headers as key_headers

    url = f"{base}/v1/connectors/hubspot"
    total, warmup = int(rate * seconds), int(rate)
    sent: list[tuple[float, list[str], set[str]]] = []
    acks: list[float] = []
    contacts = pool(total + warmup)
    async with aiohttp.ClientSession(headers=key_headers(api_key)) as http:

        async def post(body: bytes) -> None:
            stamp = str(int(time.time() * 1000))
            headers = {
                "Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
                "X-HubSpot-Signature-v3": auth.hubspot_signature("v3", SECRET, "POST", url,
                                                                 body, stamp)}
            async with http.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"POST {url}: {resp.status} {await resp.text()}")

        async def one(n: int) -> None:
            body, leads, ids = batch(n, int(time.time() * 1000), contacts)
            t0 = time.time()
            await post(body)
            if n >= warmup:
                sent.append((t0, leads, ids))
                acks.append((time.time() - t0) * 1000)

        for start_at in range(0, len(contacts), 20):  # captured first, untimed
            now = int(time.time() * 1000)
            await asyncio.gather(*(post(workflow(c, now))
                                   for c in contacts[start_at:start_at + 20]))
        await _linked(http, base, contacts)

        start = time.monotonic()
        pending = []
        for n in range(total + warmup):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one(n)))
        await asyncio.gather(*pending)
        latencies = []
        for t0, leads, ids in sent:
            latencies.append(await _batch_done(http, base, leads, ids) - t0 * 1000)
    return len(sent), latencies, acks


async def _linked(http: Any, base: str, contacts: list[int], timeout: float = 120.0) -> None:
    """Until every contact's capture is in its lead's trace (linked, and read by the intake:
    the timed batches must not queue behind the captures)."""
    deadline = time.monotonic() + timeout
    waiting = [records.external_lead_id("hubspot", "contact", c) for c in contacts]
    while waiting:
        async with http.get(f"{base}/v1/leads/{waiting[-1]}/trace") as resp:
            if resp.status == 200:
                waiting.pop()
                continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} HubSpot contacts not captured in {timeout} s")
        await asyncio.sleep(0.1)


async def _batch_done(http: Any, base: str, leads: list[str], ids: set[str],
                      timeout: float = 60.0) -> float:
    """When the last of a batch's events reached its trace (ms since the epoch)."""
    deadline = time.monotonic() + timeout
    want = len(ids)
    while True:
        latest, steps = 0.0, 0
        for lead_id in dict.fromkeys(leads):
            async with http.get(f"{base}/v1/leads/{lead_id}/trace") as resp:
                if resp.status != 200:
                    break
                trace = await resp.json()
            mine = [s for s in trace["steps"] if s["event_id"] in ids]
            steps += len(mine)
            latest = max([latest, *(s["observed_at"] for s in mine)])
        if steps >= want:
            return latest
        if time.monotonic() > deadline:
            raise RuntimeError(f"a HubSpot batch reached the trace with {steps} of {want} "
                               "events within 60 s")
        await asyncio.sleep(0.2)
