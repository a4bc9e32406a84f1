"""Replay a scenario against the HTTP API, signed as Standard Webhooks, and judge every answer."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from streams.access.client import env_key
from streams.access.client import headers as key_headers
from streams.simulate.model import Delivery, Scenario
from streams.simulate.report import Pacer, Progress, SendReport, judge
from streams.webhooks import sign

if TYPE_CHECKING:
    import aiohttp

PATHS = {"lead": "/v1/leads", "activity": "/v1/activities", "crm": "/v1/webhooks/crm"}
MAX_RETRY_AFTER_S = 30.0
# A 429 is the API asking to slow down, not a failure: waited out this many times per delivery.
MAX_RATE_LIMITED = 1000


async def send_http(
    scenario: Scenario,
    base_url: str,
    secret: str,
    *,
    rate: float | None = None,
    progress: bool = True,
    concurrency: int = 16,
    realtime: bool = True,
    max_retries: int = 5,
    timeout_s: float = 30.0,
    api_key: str | None = None,
) -> SendReport:
    """POST every delivery (Kafka-only ones skipped) and return what came back.

    Deliveries go at ``due_s`` after the start when the scenario was generated with a
    ``wall_seconds`` (and ``realtime``), else as fast as ``rate`` (events/s) and
    ``concurrency`` allow. One lead's deliveries never overtake each other, as on a Kafka
    partition, so only the scenario's deliberate reorderings arrive out of order. A 503 is
    retried after its Retry-After, a 429 (rate limited) too without counting as an attempt.
    ``secret`` is a Standard Webhooks secret (``whsec_...``), ``api_key`` the API key sent as
    a bearer token (scope ingest; None: LEADFLOW_API_KEY).
    """
    import aiohttp

    if api_key is None:
        api_key = env_key()
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    base = base_url.rstrip("/")
    report = SendReport()
    pacer = Pacer(realtime and scenario.compression > 0, rate)
    total = sum(1 for d in scenario.deliveries if d.transport == "any")
    bar = Progress(total, progress, "http")
    slots = asyncio.Semaphore(concurrency)
    last_of_lead: dict[str, asyncio.Task[None]] = {}
    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def one(index: int, d: Delivery, before: asyncio.Task[None] | None) -> None:
        try:
            if before is not None:
                await asyncio.wait([before])
            status, body = await _post(session, base, d, secret, max_retries, report, api_key)
            judge(index, d, status, body, report)
            if status is None:
                report.errors += 1
            report.sent += 1
            bar.update()
        finally:
            slots.release()

    def forget(task: asyncio.Task[None], lead_id: str | None) -> None:
        tasks.discard(task)
        if lead_id is not None and last_of_lead.get(lead_id) is task:
            del last_of_lead[lead_id]

    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            for index, d in enumerate(scenario.deliveries):
                if d.transport != "any":
                    report.skipped += 1
                    continue
                await pacer.wait(d.due_s)
                await slots.acquire()
                before = last_of_lead.get(d.lead_id) if d.lead_id else None
                task = asyncio.create_task(one(index, d, before))
                tasks.add(task)
                task.add_done_callback(lambda t, lid=d.lead_id: forget(t, lid))
                if d.lead_id:
                    last_of_lead[d.lead_id] = task
            if tasks:
                await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        bar.close()
    report.elapsed_s = pacer.elapsed()
    report.mismatches.sort(key=lambda m: m.index)
    return report


async def _post(
    session: aiohttp.ClientSession,
    base: str,
    d: Delivery,
    secret: str,
    max_retries: int,
    report: SendReport,
    api_key: str = "",
) -> tuple[int | None, bytes]:
    import aiohttp

    url = base + PATHS[d.channel]
    attempt = limited = 0
    while True:
        # Signed at send time: the receiver's tolerance (5 min) is about when it was sent.
        headers = sign(secret, d.webhook_id, d.body)
        headers["Content-Type"] = "application/json"
        headers.update(key_headers(api_key))
        try:
            async with session.post(url, data=d.body, headers=headers) as resp:
                body = await resp.read()
                if resp.status == 429 and limited < MAX_RATE_LIMITED:
                    limited += 1
                elif resp.status != 503 or attempt == max_retries:
                    return resp.status, body
                else:
                    attempt += 1
                wait = _retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            if attempt == max_retries:
                return None, f"{type(exc).__name__}: {exc}".encode()
            wait = min(MAX_RETRY_AFTER_S, 0.25 * 2**attempt)
            attempt += 1
        report.retries += 1
        await asyncio.sleep(wait)


def _retry_after(value: str | None) -> float:
    # Seconds only: the API sends "1"; an HTTP date or garbage falls back to one second.
    with contextlib.suppress(TypeError, ValueError):
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value)))  # type: ignore[arg-type]
    return 1.0
