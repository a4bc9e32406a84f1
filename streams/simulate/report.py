"""What a sender reports, the oracle that judges each HTTP answer, pacing and progress."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from streams.simulate.model import DUPLICATE, OK, Delivery


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A delivery whose answer differs from what the scenario expects."""

    index: int  # position in ``Scenario.deliveries``
    channel: str
    lead_id: str | None
    bad_kind: str | None
    expected: str
    status: int | None  # HTTP status; None when the request never got an answer
    code: str | None  # the problem's "code", if the answer was a problem
    detail: str | None


@dataclass
class SendReport:
    sent: int = 0
    skipped: int = 0  # deliveries for the other transport (e.g. garbage bytes over HTTP)
    by_status: Counter[int] = field(default_factory=Counter)  # HTTP only
    by_code: Counter[str] = field(default_factory=Counter)  # problem codes received (HTTP)
    by_topic: Counter[str] = field(default_factory=Counter)  # Kafka only
    by_expected: Counter[str] = field(default_factory=Counter)
    # Kafka: bodies the mappers refused travel as raw bytes, so the worker's verdict becomes
    # BAD_ENCODING; this counts them (already reflected in ``by_expected``).
    raw_fallbacks: int = 0
    retries: int = 0
    errors: int = 0  # requests or sends that failed for good (connection, timeout, Kafka)
    mismatches: list[Mismatch] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.errors

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "skipped": self.skipped,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_code": dict(sorted(self.by_code.items())),
            "by_topic": dict(sorted(self.by_topic.items())),
            "by_expected": dict(sorted(self.by_expected.items())),
            "raw_fallbacks": self.raw_fallbacks,
            "retries": self.retries,
            "errors": self.errors,
            "mismatches": len(self.mismatches),
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate, 1),
        }


def problem_code(body: bytes) -> tuple[str | None, str | None]:
    """(code, detail) of an RFC 9457 problem body; (None, text) for anything else."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None, body[:200].decode("utf-8", "replace")
    if not isinstance(doc, dict):
        return None, None
    code = doc.get("code")
    return (code if isinstance(code, str) else None), doc.get("detail")


def judge(
    index: int, d: Delivery, status: int | None, body: bytes, report: SendReport
) -> None:
    """The test oracle: count the answer and record it when it is not what was expected.

    Accepted (2xx) is right for OK and for DUPLICATE (the API acknowledges a resend; the
    worker drops it); any other expectation must come back as a problem with that code.
    """
    code, detail = problem_code(body) if status is not None and status >= 400 else (None, None)
    report.by_expected[d.expected] += 1
    if status is not None:
        report.by_status[status] += 1
    if code:
        report.by_code[code] += 1
    accepted = status is not None and 200 <= status < 300
    if d.expected in (OK, DUPLICATE):
        right = accepted
    else:
        right = status is not None and status >= 400 and code == d.expected
    if not right:
        if status is None:
            detail = body.decode("utf-8", "replace")
        report.mismatches.append(
            Mismatch(index, d.channel, d.lead_id, d.bad_kind, d.expected, status, code, detail)
        )


class Pacer:
    """When each delivery may go: its ``due_s`` (scaled already) and an optional max rate."""

    def __init__(self, realtime: bool, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (events per second) or None")
        self.realtime = realtime
        self.interval = 1.0 / rate if rate else 0.0
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time()
        self.next_slot = self.start

    async def wait(self, due_s: float) -> None:
        at = self.start + due_s if self.realtime else self.start
        if self.interval:
            at = max(at, self.next_slot)
            self.next_slot = at + self.interval
        delay = at - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    def elapsed(self) -> float:
        return self.loop.time() - self.start


class Progress:
    """A tqdm bar on stderr when it is a terminal; silent otherwise (CI logs stay clean)."""

    def __init__(self, total: int, enabled: bool, desc: str) -> None:
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is a dependency
                return
            self._bar = tqdm(total=total, desc=desc, unit="ev", file=sys.stderr, smoothing=0.1)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
