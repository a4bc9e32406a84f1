"""The training examples on disk: what the feedback agent stores and retraining reads.

Append-only JSON lines under ``settings.data_path / "examples"``, one segment per UTC day of
writing (``2026-11-02.jsonl``), plus ``manifest.json`` (how many examples and labelled ones
were ever appended: the retraining trigger counts new labels with it, without reading the
segments). JSON lines rather than Parquet: one writer appends a few lines per batch, which
Parquet cannot do without a file per batch; ``orjson`` reads 100,000 examples in well under a
second.

A lead may have several lines (a volume example, its handover, its disposition, a redelivery
after a crash): ``read`` keeps the LAST line of each lead, in segment then line order — the
same rule as compaction of the ``leadflow.examples`` topic. ``compact`` rewrites closed
segments to their latest lines per lead. A line cut short by a crash is skipped (counted in
``skipped``), never fatal.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from models.registry import write_atomic

MANIFEST = "manifest.json"
SUFFIX = ".jsonl"


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


class ExampleStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.skipped = 0  # undecodable lines seen by the last read

    def segments(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.suffix == SUFFIX and p.is_file())

    def counts(self) -> dict[str, int]:
        """{"appended", "labelled"}: examples ever appended (lines, repeats included)."""
        path = self.root / MANIFEST
        if not path.exists():
            return {"appended": 0, "labelled": 0}
        try:
            data = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            return {"appended": 0, "labelled": 0}
        return {"appended": int(data.get("appended", 0)), "labelled": int(data.get("labelled", 0))}

    def append(self, examples: Iterable[Mapping[str, Any]], *, now_ms: int | None = None) -> int:
        """Append ``examples`` to today's segment in one write; returns how many."""
        batch = list(examples)
        if not batch:
            return 0
        lines = [orjson.dumps(e) + b"\n" for e in batch]
        labelled = sum(1 for e in batch if e.get("label") is not None)
        self.root.mkdir(parents=True, exist_ok=True)
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        with (self.root / f"{_day(now)}{SUFFIX}").open("ab") as out:
            out.write(b"".join(lines))
            out.flush()
            os.fsync(out.fileno())
        counts = self.counts()
        counts["appended"] += len(lines)
        counts["labelled"] += labelled
        write_atomic(self.root / MANIFEST, orjson.dumps(counts))
        return len(lines)

    def _latest(self, paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for path in paths:
            with path.open("rb") as src:
                for line in src:
                    try:
                        example = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        self.skipped += 1
                        continue
                    lead_id = example.get("lead_id") if isinstance(example, dict) else None
                    if lead_id is None:
                        self.skipped += 1
                        continue
                    latest.pop(lead_id, None)  # re-insert: dict order = latest line order
                    latest[lead_id] = example
        return latest

    def read(self) -> list[dict[str, Any]]:
        """The latest example of every lead (order: when each lead's latest was written)."""
        self.skipped = 0
        return list(self._latest(self.segments()).values())

    def compact(self, *, now_ms: int | None = None) -> int:
        """Rewrite the segments older than yesterday (the feedback agent may still append to
        today's and, around midnight, yesterday's) into the newest of them, keeping each
        lead's latest line; returns the lines dropped."""
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        open_from = _day(now - 86_400_000)
        closed = [p for p in self.segments() if p.stem < open_from]
        if len(closed) < 2:
            return 0
        before = sum(1 for p in closed for _ in p.open("rb"))
        latest = self._latest(closed)
        write_atomic(closed[-1], b"".join(orjson.dumps(e) + b"\n" for e in latest.values()))
        for path in closed[:-1]:
            path.unlink(missing_ok=True)  # a concurrent compaction got there first
        return before - len(latest)
