"""Delivery delays: how long after it happened each event reaches leadflow, per source.

Real sources are late, each in its own way, and the referee must cope (DESIGN: "Final
verdicts are facts"). Two kinds of source feed a scenario:

* the lead/activity API (``Delivery.channel`` "lead" and "activity"): a marketing system's
  sync, a fraction of a second behind and *in order* — one queue, so a lead's capture always
  lands before its activities and leads become MQLs in the order they did in event time;
* CRM webhooks ("crm": touches and status changes): independent requests, mostly within
  seconds, a tail retried minutes later and a few hours later (HubSpot and Salesforce retry
  for 24 h), so they overtake each other and arrive out of order.

A Kafka producer in front of either changes nothing here: ``send_http`` and ``send_kafka``
replay the same schedule, so a delay belongs to the system that produced the event.

Delays are in event time: ``due`` = occurred + delay, before ``generate`` scales the schedule
to wall seconds, so under time compression they shrink with the clock and a demo week is
late the way a real week is. They come from a random stream of their own (seeded from the
scenario's seed), so the main stream — bodies, ids, bad input — is drawn as without delays.

Profiles (``generate(delays=...)``, ``leadflow simulate --delays``), each band log-uniform
between its bounds (short delays commoner than long ones, as retries with backoff are):

=========  ===========================  ====================================================
profile    API (lead, activity)         CRM webhooks
=========  ===========================  ====================================================
none       0                            0 (the schedule of event times, as before)
realistic  50 ms – 1 s, in order        94.5 %: 0.2–10 s; 5 %: 1–10 min; 0.5 %: 1–6 h
heavy      50 ms – 1 s, in order        78 %: 0.2–10 s; 20 %: 1–30 min; 2 %: 1–20 h
=========  ===========================  ====================================================
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

from streams.simulate.model import Delivery

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
# Mixed into the seed so the delays' stream is independent of the scenario's main stream.
SALT = 0x5D_E1A7


@dataclass(frozen=True, slots=True)
class Band:
    """A share of a source's events and the range (ms) of their delays."""

    share: float
    low_ms: int
    high_ms: int

    def draw(self, rng: random.Random) -> int:
        return round(self.low_ms * math.exp(rng.random() * math.log(self.high_ms / self.low_ms)))


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    api_ms: tuple[int, int]  # (low, high) of the API's latency; (0, 0): none
    crm: tuple[Band, ...]  # shares add up to 1; empty: no delay


_API = (50, SECOND)
PROFILES: dict[str, Profile] = {
    "none": Profile("none", (0, 0), ()),
    "realistic": Profile("realistic", _API, (
        Band(0.945, 200, 10 * SECOND),
        Band(0.05, MINUTE, 10 * MINUTE),  # retried after a timeout or a 5xx
        Band(0.005, HOUR, 6 * HOUR),  # the receiver was down: the sender's backoff retries
    )),
    "heavy": Profile("heavy", _API, (
        Band(0.78, 200, 10 * SECOND),
        Band(0.20, MINUTE, 30 * MINUTE),
        Band(0.02, HOUR, 20 * HOUR),
    )),
}


class Delays:
    """The delays of one scenario. ``crm`` is asked once per CRM event as sales writes it
    (routing must know when a closing status frees its rep); ``api`` sets the whole
    marketing side at once, because an in-order queue needs the events in event-time order."""

    def __init__(self, profile: str, seed: int) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown delay profile {profile!r}: one of {sorted(PROFILES)}")
        self.profile = PROFILES[profile]
        self._rng = random.Random(seed ^ SALT)

    def crm(self) -> int:
        """The delay (ms) of the next CRM webhook."""
        bands = self.profile.crm
        if not bands:
            return 0
        rng = self._rng
        r, acc = rng.random(), 0.0
        for band in bands:
            acc += band.share
            if r < acc:
                return band.draw(rng)
        return bands[-1].draw(rng)

    def api(self, events: Iterable[Delivery]) -> None:
        """Move the API events among ``events`` (``due_s`` still epoch ms) to when the queue
        delivers them: each one latency after it happened, never before the one ahead."""
        low, high = self.profile.api_ms
        if not high:
            return
        rng = self._rng
        last = 0
        marketing = [d for d in events if d.channel != "crm" and d.occurred_ms is not None]
        marketing.sort(key=_occurred)  # stable: same-millisecond events keep their order
        for d in marketing:
            last = max(last, _occurred(d) + low + int(rng.random() * (high - low)))
            d.due_s = float(last)


def _occurred(d: Delivery) -> int:
    return d.occurred_ms or 0
