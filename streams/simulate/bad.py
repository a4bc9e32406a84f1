"""Bad input, each kind with the outcome the engine must produce for it.

Bad events are extra deliveries made from good ones (new ids, so rejecting them never
changes a real lead), except ``duplicate`` (an exact resend) and ``out_of_order`` (a real
status change held up until after the next one).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streams.simulate import catalog as C
from streams.simulate.funnel import (
    CHANNELS,
    SECOND,
    Funnel,
    dumps,
    iso,
    kind_of,
    loads,
    uuid4,
    webhook_id,
)
from streams.simulate.model import BAD_KINDS, KAFKA_ONLY, Delivery


def allocate(n_bad: int, mix: Mapping[str, float]) -> dict[str, int]:
    """Split ``n_bad`` over the kinds by weight, deterministically (largest remainder)."""
    unknown = set(mix) - set(BAD_KINDS)
    if unknown:
        raise ValueError(f"unknown bad input kinds: {sorted(unknown)}")
    total = sum(mix.values())
    exact = {k: n_bad * w / total for k, w in mix.items() if w > 0}
    counts = {k: int(v) for k, v in exact.items()}
    rest = sorted(exact, key=lambda k: (counts[k] - exact[k], k))
    for k in rest[: n_bad - sum(counts.values())]:
        counts[k] += 1
    return counts


def inject(f: Funnel, counts: Mapping[str, int]) -> list[Delivery]:
    """Return the bad deliveries to add to ``f.events`` (good, in event-time order);
    ``out_of_order`` holds some of those good ones back instead. Times in ``due_s`` are
    still epoch ms, delivery delays included (see ``funnel.event``)."""
    rng = f.rng
    events = f.events
    kinds = [kind_of(d) for d in events]
    by_kind: dict[str, list[int]] = {"lead": [], "activity": [], "status": [], "touch": []}
    for i, kind in enumerate(kinds):
        by_kind[kind].append(i)
    lead_src = by_kind["lead"]
    any_src = range(len(events))
    out: list[Delivery] = []

    def add(
        kind: str, src: int, body: bytes, ms: int, *, lead_id: Any, channel: str | None = None
    ) -> None:
        d = Delivery(
            due_s=float(ms),
            channel=channel or CHANNELS[kinds[src]],  # type: ignore[arg-type]
            body=body,
            webhook_id=webhook_id(rng),
            # The lead the body names (a rejected lead form names a lead that never exists).
            lead_id=lead_id if isinstance(lead_id, str) and lead_id.strip() else None,
            expected=BAD_KINDS[kind],
            bad_kind=kind,
            occurred_ms=ms,
            transport="kafka" if kind in KAFKA_ONLY else "any",
        )
        out.append(d)

    def later(src: int) -> int:
        occurred = events[src].occurred_ms or f.now_ms  # good events always have a time
        return min(f.now_ms, occurred + rng.randint(1, 30 * 60) * SECOND)

    # Reordering first: a resend must follow its original where that finally lands.
    for kind, n in sorted(counts.items(), key=lambda item: item[0] != "out_of_order"):
        if n <= 0:
            continue
        if kind == "out_of_order":
            _reorder(rng, events, by_kind["status"], n, f.now_ms)
            continue
        if kind == "duplicate":
            for i in rng.sample(any_src, min(n, len(events))):
                orig = events[i]
                resend = orig.due_s + int(rng.lognormvariate(11.7, 1.0))  # ~2 min
                if resend > f.now_ms:
                    # Inside the window, unless the original itself lands after it: a resend
                    # never overtakes what it repeats.
                    resend = max(f.now_ms, orig.due_s)
                out.append(
                    dataclasses.replace(
                        orig, due_s=float(resend), expected=BAD_KINDS[kind], bad_kind=kind
                    )
                )
            continue
        pool = {
            "invalid_email": lead_src,
            "unknown_status": by_kind["status"], "unknown_schema": by_kind["activity"],
        }.get(kind, any_src)
        if not pool:
            continue
        for _ in range(n):
            src = rng.choice(pool)
            if kind == "garbage_bytes":
                # A first byte of 0 would be Confluent framing; keep it clearly foreign.
                body = bytes([rng.randint(1, 255)]) + rng.randbytes(rng.randint(8, 200))
                channel = rng.choice(("lead", "activity", "crm"))
                add(kind, src, body, later(src), lead_id=events[src].lead_id, channel=channel)
                continue
            ms = later(src)
            payload = _fresh(f, kinds[src], events[src].body, ms)
            inner = payload.get("payload", payload)
            if kind == "malformed_json":
                add(kind, src, _malform(rng, dumps(payload)), ms, lead_id=inner.get("leadId"))
                continue
            if kind == "missing_field":
                _drop_required(rng, kinds[src], inner)
            elif kind == "invalid_email":
                inner["email"] = _bad_email(rng, inner["email"])
            elif kind == "unknown_status":
                inner["newStatus"] = rng.choice(C.UNKNOWN_STATUSES)
            elif kind == "bad_timestamp":
                inner["timestamp"] = _bad_timestamp(rng, ms)
            add(kind, src, dumps(payload), ms, lead_id=inner.get("leadId"))
    return out


def _fresh(f: Funnel, kind: str, body: bytes, ms: int) -> dict[str, Any]:
    """A copy of a good body as a new, independent event (new ids, new time)."""
    rng = f.rng
    payload = loads(body)
    inner = payload.get("payload", payload)
    if kind == "lead":
        # A different submission: a new lead and a new address, so no real lead is touched.
        inner["leadId"] = uuid4(rng)
        local, _, domain = inner["email"].partition("@")
        inner["email"] = f"{local}.{rng.randint(100, 99999)}@{domain}"
    elif kind == "activity":
        inner["eventId"] = uuid4(rng)
    elif kind == "touch":
        inner["touchId"] = uuid4(rng)
    inner["timestamp"] = iso(ms, millis=kind == "activity")
    return payload


def _malform(rng: random.Random, body: bytes) -> bytes:
    text = body.decode()
    r = rng.random()
    if r < 0.5:
        # Truncated on a character boundary: still UTF-8 (it must be signable), not JSON.
        return text[: rng.randint(len(text) // 3, len(text) - 2)].encode()
    if r < 0.75:
        return text.replace('"', "'").encode()
    return (text[:-1] + ",}").encode()


def _drop_required(rng: random.Random, kind: str, inner: dict[str, Any]) -> None:
    name = {
        "lead": rng.choice(("email", "email", "leadId")),
        "activity": rng.choice(("leadId", "type")),
        "status": rng.choice(("leadId", "newStatus")),
        "touch": rng.choice(("leadId", "repId")),
    }[kind]
    r = rng.random()
    if r < 0.6:
        del inner[name]
    elif r < 0.8:
        inner[name] = None
    else:
        inner[name] = "  "


def _bad_email(rng: random.Random, email: str) -> str:
    local, _, domain = email.partition("@")
    return rng.choice(
        (
            f"{local}.{domain}",  # no @
            f"{local.replace('.', ' ')} x@{domain}",  # space in the local part
            f"{local}@@{domain}",
            f"{local}@{domain.replace('.', '..', 1)}",
        )
    )


def _bad_timestamp(rng: random.Random, ms: int) -> str:
    aware = iso(ms)
    return rng.choice(
        (
            aware[:-1],  # naive ISO, no zone: ambiguous, so rejected
            aware[:-1].replace("T", " "),
            datetime.fromtimestamp(ms / 1000, UTC).strftime("%d/%m/%Y %H:%M"),
            "yesterday",
        )
    )


def _reorder(
    rng: random.Random, events: list[Delivery], status_idx: list[int], n: int, now_ms: int
) -> None:
    """Hold ``n`` status changes up until just after the change that followed them in event
    time, as a slow webhook does. A delivery never comes before the event it reports, so the
    engine's event-time clock never runs ahead and only the reordered lead is affected.
    ``events`` are in event-time order (``due_s`` may already hold a delivery delay).
    """
    by_lead: dict[str | None, list[int]] = {}
    for i in status_idx:
        by_lead.setdefault(events[i].lead_id, []).append(i)
    pairs = [v[-2:] for v in by_lead.values()
             if len(v) >= 2 and (events[v[-1]].occurred_ms or now_ms) < now_ms]
    for earlier, later in rng.sample(pairs, min(n, len(pairs))):
        d = events[earlier]
        # Its own delivery delay may hold it up longer already.
        d.due_s = max(d.due_s, events[later].due_s + 1)
        d.bad_kind, d.expected = "out_of_order", BAD_KINDS["out_of_order"]
