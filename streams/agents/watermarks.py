"""Routing watermarks: how far each inbound partition this worker owns has sent its routing
requests.

Every ``routing_tick_s``, and as soon as intake has flushed routing requests, the worker
sends, for each inbound partition it actively owns, a WATERMARK record onto the
one-partition routing topic: every routing request of that partition ordered at or before
it is out (``core.routing_order.watermark``). It goes through the same producer and onto
the same topic-partition as the requests intake sent before it, so it arrives after them;
the router holds requests until every partition's watermark has passed them
(``agents.routing``).

Intake notes its progress after each flush (``app.intake_progress``), so a watermark never
covers a request still staged. A partition with nothing to promise yet (a lagging input not
read at all, or the worker is rebalancing and recovering its tables) still gets a watermark,
``UNKNOWN``: the router then knows it has an owner and keeps waiting for it instead of
deeming it stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from typing import Any

from streams import topics
from streams.agents.emit import Emitter
from streams.agents.sla import INPUTS, lagging
from streams.core import routing_order

NIL_UUID = "00000000-0000-0000-0000-000000000000"
# At most one watermark sent early (after routing requests) per this long.
EARLY_GAP_S = 0.02


def record(partition: int, at_ms: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "lead_id": NIL_UUID,
        "action": routing_order.WATERMARK,
        "occurred_at": at_ms,
        "partition": partition,
    }


def register(app: Any) -> None:
    progress: routing_order.Progress = app.intake_progress
    emitter = Emitter(app)
    tick_s = app.settings.routing_tick_s
    handoff = app.stats.handoff

    def requested() -> int:
        """Routing requests intake has staged so far (ROUTE counts as "mql")."""
        return handoff["mql"] + handoff["release"] + handoff["reassign"]

    async def send() -> None:
        consumer = app.consumer
        committed = consumer._committed_offset  # Faust's own record of its commits
        rebalancing = app.rebalancing
        wall_ms = int(time.time() * 1000)
        for p in sorted({tp.partition for tp in app.assignor.assigned_actives()
                         if tp.topic == topics.LEADS.name}):
            if rebalancing:
                # Positions are moving and tables recovering (which may outlast the stale
                # limit): promise nothing, but keep the partition from looking ownerless.
                at = routing_order.UNKNOWN
            else:
                done = progress.done(p, INPUTS, committed)
                lag = lagging(consumer, INPUTS, p, done)  # type: ignore[arg-type]
                at = routing_order.watermark(progress.marks.get(p, {}), lag, wall_ms)
            emitter.stage(topics.ROUTING, str(p).encode(), record(p, at), 0)
        await emitter.flush()

    @app.task(traced=False)
    async def watermarks() -> None:
        """Every tick; and at once (at most every EARLY_GAP_S) after intake flushed a batch
        that sent routing requests, so a caught-up router decides them a hop later instead
        of up to a tick later."""
        wake = asyncio.Event()
        progress.on_flushed = wake.set
        sent, next_tick = requested(), time.monotonic() + tick_s
        while True:
            timeout = next_tick - time.monotonic()
            if timeout > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout)
            wake.clear()
            made = requested()
            if time.monotonic() < next_tick and made == sent:
                continue  # a flush that routed nothing: the tick will do
            sent, next_tick = made, time.monotonic() + tick_s
            try:
                await send()
            except Exception:  # the next tick tries again; a silent owner looks dead
                app.log.exception("routing watermarks not sent")
            await asyncio.sleep(EARLY_GAP_S)
