"""`leadflow bench`'s connector figure: a HubSpot webhook batch of 100 events to the trace.

Batches of 100 ``contact.propertyChange`` events (hs_lead_status, 10 contacts × 10 changes,
new contacts every batch) are POSTed to /v1/connectors/hubspot at a fixed rate, signed with
X-HubSpot-Signature-v3 as HubSpot signs them. A batch's latency is the last of its events'
trace steps to be written (their observed_at) minus when the request was sent; beside it,
how long HubSpot waits for the 200. The first second warms up and is not counted.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import orjson

from streams.connectors import auth, records

SECRET = "bench-hubspot-client-secret"
BATCH = 100
CONTACTS = 10
VALUES = ("ATTEMPTED_TO_CONTACT", "IN_PROGRESS", "CONNECTED", "OPEN", "BAD_TIMING")


def batch(n: int, now_ms: int) -> tuple[bytes, list[str]]:
    base = 10_000_000 + n * CONTACTS + uuid.uuid4().int % 1_000_000_000 * 1000
    contacts = [base + i for i in range(CONTACTS)]
    events = [{
        "eventId": n * BATCH + i, "subscriptionId": 1, "portalId": 62515, "appId": 1,
        "occurredAt": now_ms - BATCH + i, "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0, "objectId": contacts[i % CONTACTS],
        "propertyName": "hs_lead_status", "propertyValue": VALUES[i % len(VALUES)],
        "changeSource": "CRM_UI",
    } for i in range(BATCH)]
    leads = [records.external_lead_id("hubspot", "contact", c) for c in contacts]
    return orjson.dumps(events), leads


async def run(base: str, api_key: str, rate: float = 20.0, seconds: float = 10.0
              ) -> tuple[int, list[float], list[float]]:
    """(batches counted, batch-to-trace latencies ms, 200 latencies ms). ``api_key`` reads
    the traces (the batches themselves are signed the HubSpot way)."""
    import aiohttp

    from streams.access.client import headers as key_headers

    url = f"{base}/v1/connectors/hubspot"
    total, warmup = int(rate * seconds), int(rate)
    sent: list[tuple[float, list[str], int]] = []
    acks: list[float] = []
    async with aiohttp.ClientSession(headers=key_headers(api_key)) as http:

        async def one(n: int) -> None:
            body, leads = batch(n, int(time.time() * 1000))
            stamp = str(int(time.time() * 1000))
            headers = {
                "Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
                "X-HubSpot-Signature-v3": auth.hubspot_signature("v3", SECRET, "POST", url,
                                                                 body, stamp)}
            t0 = time.time()
            async with http.post(url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"POST {url}: {resp.status} {await resp.text()}")
            if n >= warmup:
                sent.append((t0, leads, BATCH))
                acks.append((time.time() - t0) * 1000)

        start = time.monotonic()
        pending = []
        for n in range(total + warmup):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(one(n)))
        await asyncio.gather(*pending)
        latencies = []
        for t0, leads, want in sent:
            latencies.append(await _batch_done(http, base, leads, want) - t0 * 1000)
    return len(sent), latencies, acks


async def _batch_done(http: Any, base: str, leads: list[str], want: int,
                      timeout: float = 60.0) -> float:
    """When the last of a batch's events reached its trace (ms since the epoch)."""
    deadline = time.monotonic() + timeout
    while True:
        latest, steps = 0.0, 0
        for lead_id in leads:
            async with http.get(f"{base}/v1/leads/{lead_id}/trace") as resp:
                if resp.status != 200:
                    break
                trace = await resp.json()
            mine = [s for s in trace["steps"] if s["kind"] == "STATUS_CHANGED"]
            steps += len(mine)
            latest = max([latest, *(s["observed_at"] for s in mine)])
        if steps >= want:
            return latest
        if time.monotonic() > deadline:
            raise RuntimeError(f"a HubSpot batch reached the trace with {steps} of {want} "
                               "events within 60 s")
        await asyncio.sleep(0.2)
