"""Tell owners about their new leads (every LeadRouted) and chase them when a deadline passes
(every overdue SlaEvaluated), POSTed to LEADFLOW_NOTIFY_URL.

A consumer group of its own (not a Faust agent) reads leads.routed, so an endpoint that is
slow or down delays notifications only, never the handoff. Each delivery is retried with
doubling waits; after the last attempt the LeadRouted lands in the dead-letter topic as
DELIVERY_FAILED (with the last answer) and the consumer moves on. Offsets are committed
after a batch is delivered or dead-lettered: at least once, and the webhook-id (the LeadRouted
event id) lets the receiver drop repeats.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from streams import topics, webhooks
from streams.agents.emit import Emitter
from streams.core import outbound
from streams.errors import ErrorCode, LeadflowError


async def deliver(http: Any, url: str, secret: str, msg_id: str, body: bytes,
                  waits: list[float]) -> str | None:
    """POST until accepted; None on success, else what the last attempt got."""
    for wait in [*waits, None]:
        headers = {"content-type": "application/json", **webhooks.sign(secret, msg_id, body)}
        try:
            async with http.post(url, data=body, headers=headers) as resp:
                status, answer = resp.status, f"HTTP {resp.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            status, answer = None, f"{type(exc).__name__}: {exc}"
        if status is not None and 200 <= status < 300:
            return None
        if wait is None or not outbound.retryable(status):
            return answer
        await asyncio.sleep(wait)
    return None  # unreachable: the loop returns on its last attempt


def register(app: Any) -> None:
    settings = app.settings
    if not settings.notify_url:
        return
    if not settings.notify_secret:
        raise ValueError(
            "LEADFLOW_NOTIFY_URL is set but LEADFLOW_NOTIFY_SECRET is not: owner notifications "
            "are signed like inbound webhooks (a whsec_... secret the receiver verifies)"
        )
    emitter = Emitter(app)
    waits = outbound.delays(settings.notify_attempts, settings.notify_backoff_s)

    async def one(http: Any, msg: Any) -> None:
        spec = topics.SLA if msg.topic == topics.SLA.name else topics.ROUTED
        try:
            record = app.codec.decode(msg.value or b"", spec.record)
        except LeadflowError as err:  # our own topic: only a foreign producer gets here
            failure: LeadflowError | None = err
        else:
            if spec is topics.SLA:
                if record.get("status") != "OVERDUE" or not record.get("lead_id"):
                    return  # verdicts are for the record; only overdue notices chase
                msg_id, body = outbound.overdue_notification(record)
            else:
                msg_id, body = outbound.notification(record)
            answer = await deliver(http, settings.notify_url, settings.notify_secret, msg_id,
                                   body, waits)
            app.stats.notified["delivered" if answer is None else "failed"] += 1
            failure = answer and LeadflowError(
                ErrorCode.DELIVERY_FAILED,
                f"POST {settings.notify_url}: {answer} after {len(waits) + 1} attempts",
            )
        if failure:
            await emitter.reject(failure, msg)

    @app.task
    async def notify_owners() -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topics.ROUTED.name, topics.SLA.name, bootstrap_servers=settings.bootstrap,
            group_id=f"{settings.app_id}-notify", enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        timeout = aiohttp.ClientTimeout(total=settings.send_timeout_s)
        await consumer.start()
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                while True:
                    batch = await consumer.getmany(timeout_ms=1000, max_records=50)
                    if batch:
                        await asyncio.gather(*(one(http, m) for ms in batch.values() for m in ms))
                        await consumer.commit()
        finally:
            await consumer.stop()
