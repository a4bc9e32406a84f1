"""Token buckets by name (a key id, a source address), on a clock the caller passes in.

A bucket holds up to ``burst`` tokens and gains ``rate`` a second; a request takes one. When
none is left the answer is how long until one is: the API's Retry-After. Nothing is queued:
a refused request was never read, so nothing it carried can be lost.
"""

from __future__ import annotations

import math
from collections import OrderedDict


class Limiter:
    """``take(name, now)`` → 0.0 when allowed, else seconds until a token.

    At most ``max_buckets`` names are remembered, the least recently used forgotten first: a
    forgotten bucket starts full again, which a flood from that many addresses could use,
    but memory stays bounded whatever arrives."""

    def __init__(self, rate: float, burst: int, max_buckets: int = 100_000) -> None:
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self.max_buckets = max_buckets
        # name -> (tokens, at)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, name: str, now: float) -> float:
        if not self.enabled:
            return 0.0
        buckets = self._buckets
        tokens, at = buckets.pop(name, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
        if tokens >= 1.0:
            buckets[name] = (tokens - 1.0, now)
            wait = 0.0
        else:
            buckets[name] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        while len(buckets) > self.max_buckets:
            buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """Whole seconds for the Retry-After header: never 0, which invites an instant retry."""
    return str(max(1, math.ceil(wait)))
