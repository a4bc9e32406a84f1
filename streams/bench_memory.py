"""`leadflow bench memory`: a worker's resident memory against the leads it has seen.

One worker per store (RocksDB, then memory) on an embedded broker of its own drains a backlog
written in chunks of simulated leads. The chunks follow each other in event time, at
``LEADS_PER_DAY`` (a million leads is a year), so the worker sees one long history rather
than the same month again and again. After each checkpoint's chunk the worker has read every
event and settled (every agent idle for two seconds); then its resident set (VmRSS) is read.
Per lead is the growth beyond the empty worker's RSS (ready, nothing read yet), divided by
the leads traced.

``profile`` runs the worker under memray (``--aggregate``); ``memray summary`` or
``memray flamegraph`` on the file it keeps show what holds the memory at the high-water mark.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from streams.bench import inbound
from streams.bench_scale import _Bench, _run_in_tmp, _say, _table, _wait_ready
from streams.broker import EmbeddedBroker, free_port
from streams.settings import Settings
from streams.views import get_json

LEADS_PER_DAY = 2_740  # ~a million leads a year
CHUNK = 10_000
TARGET_PER_LEAD = 2048  # bytes per lead beyond the empty worker's RSS (RocksDB)
TARGET_RSS = 1.5 * 2**30  # at a million leads (RocksDB)


@dataclass
class Point:
    leads: int  # leads traced by the worker
    events: int  # inbound events it read
    rss: int  # bytes
    seconds: float  # since the first chunk was written


@dataclass
class StoreRun:
    store: str
    empty_rss: int
    points: list[Point] = field(default_factory=list)

    def per_lead(self, p: Point) -> float:
        return (p.rss - self.empty_rss) / p.leads if p.leads else 0.0


@dataclass
class MemoryResult:
    runs: list[StoreRun]

    def table(self) -> str:
        rows = []
        for run in self.runs:
            rows.append((f"{run.store}: empty worker RSS", _mib(run.empty_rss)))
            for p in run.points:
                rows.append((f"{run.store}: {p.leads:,} leads ({p.events:,} events)",
                             f"{_mib(p.rss)}  {run.per_lead(p) / 1024:5.2f} KiB/lead"
                             f"  {p.seconds:6.0f} s"))
        return _table(rows)


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def checkpoints(leads: int) -> list[int]:
    """10k, 100k and ``leads`` (when beyond them), none above ``leads``."""
    return sorted({n for n in (10_000, 100_000) if n <= leads} | {leads})


async def _write_chunk(settings: Settings, seed: int, leads: int, end: datetime) -> int:
    from streams.app import make_registry
    from streams.codec import Codec
    from streams.simulate import generate, send_kafka

    scenario = generate(seed=seed, leads=leads, days=leads / LEADS_PER_DAY, now=end,
                        bad_share=0.0, wall_seconds=0)
    codec = Codec(make_registry(settings), settings.max_record_bytes)
    report = await send_kafka(scenario, settings.bootstrap, codec, rate=None, progress=False)
    return int(report.sent)


def _stats(base: str, key: str, count: bool = False) -> dict | None:
    """GET /v1/stats; the leads traced only when ``count`` (it reads every RocksDB key)."""
    try:
        status, body = get_json(f"{base}/v1/stats" + ("" if count else "?leads_traced=0"),
                                timeout=60, key=key)
    except OSError:
        return None
    if status in (401, 403):  # not a slow worker: waiting on would wait the whole timeout
        raise RuntimeError(f"GET {base}/v1/stats refused: {body}")
    return body if status == 200 else None


def _wait_idle(base: str, key: str, timeout: float = 600) -> dict:
    """Until every agent has had nothing to do for two seconds (as ``bench.wait_idle``)."""
    deadline, last, still = time.monotonic() + timeout, None, 0
    while time.monotonic() < deadline:
        stats = _stats(base, key) or {}
        total = stats.get("received_total", 0) + stats.get("internal_total", 0)
        still = still + 1 if total == last else 0
        if still >= 2:
            break
        last = total
        time.sleep(1.0)
    return _stats(base, key, count=True) or {}


def _wait_read(base: str, key: str, proc: subprocess.Popen[bytes], expected: int,
               timeout: float = 3600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}")
        stats = _stats(base, key)
        if stats is not None and inbound(stats) >= expected:
            return
        time.sleep(1.0)
    raise RuntimeError(f"{expected:,} events not read in {timeout:.0f}s")


def _store_run(settings: Settings, tmp: Path, broker: EmbeddedBroker, store: str, leads: int,
               profile: Path | None) -> StoreRun:
    from streams.kafka import ensure_topics

    bench = _Bench(settings, tmp, broker)
    asyncio.run(ensure_topics(bench.settings))
    env = {"LEADFLOW_STORE": store, "LEADFLOW_APP_ID": f"bench-memory-{uuid.uuid4().hex[:6]}"}
    if profile is None:
        base, proc = bench.start(store, env["LEADFLOW_APP_ID"], **env)
    else:
        base, proc = _start_profiled(bench, store, env, profile)
    try:
        _wait_ready(base, proc)
        time.sleep(2.0)
        run = StoreRun(store, rss_bytes(proc.pid))
        _say(f"{store}: empty worker {_mib(run.empty_rss)}")
        marks = checkpoints(leads)
        n_chunks = -(-leads // CHUNK)
        end = datetime.now(UTC).replace(microsecond=0)
        sent, written, t0 = 0, 0, time.monotonic()
        for i in range(n_chunks):
            size = min(CHUNK, leads - written)
            # Chunk i ends where chunk i+1 starts; the last one ends now.
            later = sum(min(CHUNK, leads - CHUNK * j) for j in range(i + 1, n_chunks))
            chunk_end = end - timedelta(days=later / LEADS_PER_DAY)
            sent += asyncio.run(_write_chunk(bench.settings, 1000 + i, size, chunk_end))
            written += size
            _wait_read(base, bench.key, proc, sent)
            if written in marks:
                stats = _wait_idle(base, bench.key)
                point = Point(int(stats.get("leads_traced", written)), inbound(stats),
                              rss_bytes(proc.pid), time.monotonic() - t0)
                run.points.append(point)
                indexed = sum(c.get("indexed", 0) for c in stats.get("sla_clocks", {}).values())
                _say(f"{store}: {point.leads:,} leads, {_mib(point.rss)}, "
                     f"{run.per_lead(point) / 1024:.2f} KiB/lead; SLA index {indexed:,} "
                     f"entries; malloc {stats.get('malloc')}; RocksDB {stats.get('store_memory')}")
            elif i % 2 == 1:
                _say(f"{store}: {written:,} leads written, RSS {_mib(rss_bytes(proc.pid))}; "
                     f"RocksDB {(_stats(base, bench.key) or {}).get('store_memory')}")
    finally:
        bench.stop_all()
    return run


def _start_profiled(bench: _Bench, name: str, env: dict[str, str],
                    profile: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    data = bench.tmp / name
    data.mkdir(parents=True, exist_ok=True)
    out = profile / f"worker-{name}.bin"
    out.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "memray", "run", "--aggregate", "-o", str(out),
         "-m", "streams.cli", "worker"],
        env={**bench.env, "LEADFLOW_WEB_PORT": str(port), "LEADFLOW_DATA_DIR": str(data),
             **env},
        stdout=(data / "worker.log").open("wb"), stderr=subprocess.STDOUT)
    bench.procs.append(proc)
    _say(f"{name}: profiling into {out}")
    return f"http://127.0.0.1:{port}", proc


def run_memory_bench(settings: Settings, leads: int, stores: list[str],
                     profile: Path | None = None) -> MemoryResult:
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    runs = [_run_in_tmp(lambda tmp, broker, s=s: _store_run(settings, tmp, broker, s, leads,
                                                             profile))
            for s in stores]
    return MemoryResult(runs)


if __name__ == "__main__":  # python -m streams.bench_memory LEADS [STORE...]
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(run_memory_bench(Settings.load(), n, sys.argv[2:] or ["rocksdb", "memory"],
                           Path(os.environ["MEMRAY_DIR"]) if os.environ.get("MEMRAY_DIR")
                           else None).table())
