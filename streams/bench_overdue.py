"""`leadflow bench`'s overdue figure: from a deadline passing to the rep's overdue notice.

Hand-raiser leads (15-minute first-touch window) are POSTed dated so that their deadline +
grace passes one by one during the latency phase, while that phase's fresh leads keep every
partition's clock at the wall clock. The latency of one lead is the wall time its OVERDUE
SlaEvaluated was produced (the record's timestamp) minus the moment deadline + grace passed.
Nothing touches these leads, so every one of them must be noticed.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from streams import kafka, topics
from streams.access.client import headers
from streams.settings import Settings

_JSON = {"Content-Type": "application/json"}  # the API answers 415 to anything else


def _hand_raiser(lead_id: str, captured: datetime) -> bytes:
    return json.dumps({
        "leadId": lead_id, "email": f"overdue-{lead_id[:13]}@example.org",
        "firstName": "Over", "lastName": "Due", "companyName": "Bench Co", "jobTitle": "CTO",
        "companySize": "51-200", "region": "EMEA", "triggerActions": ["requested_demo"],
        "enrichedData": {"industry": "SaaS", "techStack": ["AWS"]},
        "attribution": {"campaignId": "cmp-bench"},
        "consent": {"lawfulBasis": "consent",
                    "consentTimestamp": (captured - timedelta(days=1)).isoformat()},
        "timestamp": captured.isoformat(),
    }).encode()


async def _watch_overdue(settings: Settings, want: set[str], found: dict[str, tuple[int, int]],
                         ready: asyncio.Event) -> None:
    """lead id → (Kafka timestamp, deadline) of its first OVERDUE notice."""
    async for timestamp, v in kafka.tail(settings, topics.SLA, ready):
        if v["lead_id"] in want and v.get("status") == "OVERDUE":
            deadline = v["deadline"]
            if isinstance(deadline, datetime):
                deadline = int(deadline.timestamp() * 1000)
            found.setdefault(v["lead_id"], (timestamp, deadline))


async def overdue_latency(settings: Settings, base: str, seconds: float, grace_ms: int,
                          leads: int = 40) -> list[float]:
    """Milliseconds from deadline + grace passing to the overdue notice, one per lead."""
    import aiohttp

    lead_ids = [str(uuid.uuid4()) for _ in range(leads)]
    found: dict[str, tuple[int, int]] = {}
    ready = asyncio.Event()
    watcher = asyncio.create_task(_watch_overdue(settings, set(lead_ids), found, ready))
    await ready.wait()
    window = timedelta(minutes=15) + timedelta(milliseconds=grace_ms)
    now, start = datetime.now(UTC), time.monotonic()
    async with aiohttp.ClientSession(base_url=base, headers=headers(settings.api_key)) as http:
        for i, lead_id in enumerate(lead_ids):
            due_in = 2.0 + (seconds - 2.0) * i / leads  # spread over the phase
            # Each a second before its deadline passes: one at a time beside the phase's
            # leads, not a burst that would queue them.
            await asyncio.sleep(max(0.0, start + due_in - 1.0 - time.monotonic()))
            body = _hand_raiser(lead_id, now - window + timedelta(seconds=due_in))
            async with http.post("/v1/leads", data=body, headers=_JSON) as resp:
                if resp.status != 202:
                    raise RuntimeError(f"POST /v1/leads: {resp.status} {await resp.text()}")
    deadline = time.monotonic() + seconds + 30
    while len(found) < leads and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    watcher.cancel()
    if len(found) < leads:
        raise RuntimeError(f"{leads - len(found)} of {leads} overdue notices never came")
    return [float(ts - (due + grace_ms)) for ts, due in found.values()]


def run_beside(latency: Any, settings: Settings, base: str, seconds: float, grace_ms: int
               ) -> tuple[Any, list[float]]:
    """Run the HTTP latency phase (a coroutine) and the overdue measurement together."""

    async def both() -> tuple[Any, list[float]]:
        return await asyncio.gather(latency, overdue_latency(settings, base, seconds, grace_ms))

    return asyncio.run(both())
