"""`leadflow bench dashboard`: every page's queries on a large generated archive, timed.

It generates (or reuses, in a cache directory) an archive of N leads (default 1,000,000,
about ten million events) and builds the dashboard's read cache of it (timed: the server
does it in the background), then for each page runs the function the app caches — all of
that page's queries — once cold (first run in this process) and then ``repeat`` times warm,
for the sidebar's default window (the last 90 days) and for the whole archive. Target:
every page under 1 s. Wall-clock times depend on what else the machine runs; the CPU time
(all polars threads) says how much work it was. Streamlit's cache makes a repeated view
instant: these are the figures of a first view and of each refresh after the cache expires.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl

from dashboard import data, data_models, generate, timeline
from dashboard.readcache import ReadCache

TARGET_S = 1.0


@dataclass
class Timing:
    page: str
    window: str
    cold_s: float
    warm_s: float  # median of the warm runs
    cpu_s: float  # process CPU time of the median warm run (every thread)

    @property
    def ok(self) -> bool:
        return self.cold_s < TARGET_S and self.warm_s < TARGET_S


@dataclass
class Report:
    root: Path
    leads: int
    events: int
    files: int
    generated_s: float | None
    cache_s: float
    cache_mb: float  # the read cache on disk: merged months and their lead-ordered copies
    timings: list[Timing]

    def table(self) -> str:
        made = ("reused" if self.generated_s is None
                else f"generated in {self.generated_s:.0f} s")
        lines = [f"archive {self.root}: {self.leads:,} leads, {self.events:,} events, "
                 f"{self.files:,} files ({made}; read cache built in {self.cache_s:.0f} s, "
                 f"{self.cache_mb:,.0f} MB); "
                 f"polars threads {pl.thread_pool_size()}",
                 f"{'page':28}{'window':14}{'cold s':>8}{'warm s':>8}{'cpu s':>8}"
                 f"  target < {TARGET_S:g} s"]
        for t in self.timings:
            lines.append(f"{t.page:28}{t.window:14}{t.cold_s:8.3f}{t.warm_s:8.3f}"
                         f"{t.cpu_s:8.3f}  {'ok' if t.ok else 'SLOW'}")
        return "\n".join(lines)


def _time(fn: Callable[[], Any], repeat: int) -> tuple[float, float, float]:
    started = time.perf_counter()
    fn()
    cold = time.perf_counter() - started
    warm: list[tuple[float, float]] = []
    for _ in range(max(1, repeat)):
        started, cpu = time.perf_counter(), time.process_time()
        fn()
        warm.append((time.perf_counter() - started, time.process_time() - cpu))
    wall, cpu_s = sorted(warm)[len(warm) // 2]
    return cold, statistics.median(w for w, _ in warm), cpu_s


def run(cache: Path, *, leads: int = 1_000_000, seed: int = 7, repeat: int = 3,
        teams: dict[str, str] | None = None, progress: Callable[[str], None] = print) -> Report:
    root = cache / f"archive-{leads}-{seed}"
    progress(f"archive of {leads:,} leads in {root} (generated once, then reused)")
    started = time.perf_counter()
    made = generate.ensure(root, leads, seed=seed)
    generated = time.perf_counter() - started if made else None
    progress("building the read cache (each month merged into one file, and by lead)")
    started = time.perf_counter()
    read_cache = cache / f"read-cache-{leads}-{seed}"
    ReadCache(root, read_cache).refresh_all()
    cache_s = time.perf_counter() - started
    cache_mb = sum(p.stat().st_size for p in read_cache.rglob("*.parquet")) / 2**20
    a = data.Archive(root, teams=teams or {}, cache=read_cache)
    span = a.days()
    if span is None:
        raise RuntimeError(f"no archive in {root}")
    first, last = span
    windows = {"last 90 days": data.Filters(last - timedelta(days=89), last),
               "all": data.Filters(first, last)}
    m = data_models.ModelContext(registry_root=cache / "no-registry")
    c = data.Commitments()
    lead = a.scan("LeadRouted").select("lead_id").head(1).collect()["lead_id"][0]
    email = a.scan("LeadCaptured").filter(pl.col("lead_id") == lead).select(
        "email").collect()["email"][0]
    pages: dict[str, Callable[[data.Filters], Any]] = {
        "Marketing": lambda f: data.marketing(a, f, c),
        "RevOps": lambda f: data.revops(a, f),
        "Data team": lambda f: data_models.data_team(a, f, m),
        "Pipeline health": lambda f: data_models.pipeline(a, f, m),
        "sidebar choices": lambda f: data.choices(a),
    }
    timings = []
    for page, fn in pages.items():
        for window, f in windows.items():
            progress(f"timing {page} ({window})")
            timings.append(Timing(page, window, *_time(lambda fn=fn, f=f: fn(f), repeat)))
    progress("timing a lead search and its timeline")
    timings.append(Timing("RevOps: find by email", "-",
                          *_time(lambda: timeline.find_leads(a, email), repeat)))
    timings.append(Timing("RevOps: find by lead id", "-",
                          *_time(lambda: timeline.find_leads(a, lead), repeat)))
    timings.append(Timing("RevOps: lead timeline", "-",
                          *_time(lambda: timeline.lead_timeline(a, lead), repeat)))
    from streams.archive import layout

    files = sum(len(layout.files(root, r)) for r in layout.ARCHIVED.values())
    events = sum(a.scan(r).select(pl.len()).collect().item() for r in layout.ARCHIVED.values())
    return Report(root, leads, events, files, generated, cache_s, cache_mb, timings)
