"""What every page shares: settings, the archive, the sidebar filters, the viewer, caching and
the auto-refresh. Pages call ``ui.page(title, render)``."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import data, data_models, privacy, timeline
from streams.settings import Settings

log = logging.getLogger("leadflow.dashboard")
# The sidebar starts on the archive's last DEFAULT_DAYS days: what people look at first, and
# a quarter of a year's files to read instead of all of them. Any range can be picked.
DEFAULT_DAYS = 90


def settings() -> Settings:
    # Read on every run (a small TOML file): a changed leadflow.toml or environment applies
    # from the next refresh, with no restart.
    return Settings.load()


def cache_dir(s: Settings) -> Path | None:
    if s.dashboard_cache_dir.strip().lower() == "off":
        return None
    return Path(s.dashboard_cache_dir) if s.dashboard_cache_dir else s.data_path / "dashboard-cache"


def archive() -> data.Archive:
    from streams.archive.layout import archive_root

    s = settings()
    reps = (s.extra.get("routing") or {}).get("reps") or []
    teams = {str(r["id"]): str(r.get("team") or "(no team)") for r in reps if "id" in r}
    root, cache = archive_root(s), cache_dir(s)
    if cache is not None:
        _refresher(str(root), str(cache), max(60.0, s.dashboard_refresh_s))
    return data.Archive(root, teams=teams, cache=cache)


@st.cache_resource(show_spinner=False)
def _refresher(root: str, cache: str, every: float) -> threading.Thread:
    """One thread per server process keeps the read cache current (months whose days
    closed or changed); pages read whatever is fresh, the day files for the rest."""
    from dashboard.readcache import ReadCache

    def loop() -> None:
        rc = ReadCache(Path(root), Path(cache))
        while True:
            try:
                rc.refresh_all()
            except OSError as exc:  # a read-only disk: the pages read the day files
                log.warning("dashboard read cache not refreshed: %s", exc)
            time.sleep(every)

    thread = threading.Thread(target=loop, name="read-cache", daemon=True)
    thread.start()
    return thread


def commitments() -> data.Commitments:
    m = (settings().extra.get("sla") or {}).get("marketing") or {}
    d = data.Commitments()
    return data.Commitments(
        int(m.get("min_mqls_per_month", d.min_mqls_per_month)),
        float(m.get("max_disqualification_rate", d.max_dq_rate)),
        float(m.get("min_context_complete", d.min_context_complete)),
    )


def model_context() -> data_models.ModelContext:
    from streams import policies

    s = settings()
    p = policies.load(s)
    mp = policies.model_policy(s)
    c = commitments()
    points = (s.extra.get("scoring") or {}).get("points") or {}
    return data_models.ModelContext(
        registry_root=s.data_path / "models", positive=tuple(sorted(mp.labels.positive)),
        negative=tuple(sorted(mp.labels.negative)), threshold=int(p.scoring.threshold),
        min_mqls_per_month=c.min_mqls_per_month, max_dq_rate=c.max_dq_rate,
        capacity_per_month=mp.capacity_per_month, prefer=mp.prefer,
        points={str(k): float(v) for k, v in points.items()},
    )


def ttl() -> float:
    return max(1.0, settings().dashboard_refresh_s or 60.0)


@functools.cache
def _cached(fn: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    return st.cache_data(ttl=seconds, show_spinner="reading the archive…")(fn)


def cached(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` through Streamlit's cache, kept for the refresh interval (so a live
    archive shows new events within it, and every other view is instant)."""
    return _cached(fn, ttl())(*args)


Where = tuple[str, str | None, tuple[tuple[str, str], ...]]  # archive, cache, teams: hashable


def _arch(where: Where) -> data.Archive:
    root, cache, teams = where
    return data.Archive(Path(root), dict(teams), None if cache is None else Path(cache))


def _marketing(where: Where, f: data.Filters, c: data.Commitments) -> Any:
    return data.marketing(_arch(where), f, c)


def _revops(where: Where, f: data.Filters) -> Any:
    from dashboard import meetings

    a = _arch(where)
    return {**data.revops(a, f), **meetings.no_shows(a, f)}


def _data_team(where: Where, f: data.Filters, m: data_models.ModelContext) -> Any:
    return data_models.data_team(_arch(where), f, m)


def _pipeline(where: Where, f: data.Filters, m: data_models.ModelContext) -> Any:
    return data_models.pipeline(_arch(where), f, m)


def _choices(where: Where) -> dict[str, list[str]]:
    return data.choices(_arch(where))


def _find(where: Where, text: str) -> Any:
    return timeline.find_leads(_arch(where), text)


def _timeline(where: Where, lead_id: str) -> Any:
    return timeline.lead_timeline(_arch(where), lead_id)


QUERIES: dict[str, Callable[..., Any]] = {
    "marketing": _marketing, "revops": _revops, "data_team": _data_team,
    "pipeline": _pipeline, "choices": _choices, "find": _find, "timeline": _timeline,
}


def query(name: str, *args: Any) -> Any:
    """Run one page's queries (a name in QUERIES), through Streamlit's cache."""
    a = archive()
    where: Where = (str(a.root), None if a.cache is None else str(a.cache),
                    tuple(sorted(a.teams.items())))
    return cached(QUERIES[name], where, *args)


def sidebar() -> data.Filters:
    """The date range and campaign/owner filters, shared by every page (kept across pages
    in the session by their keys)."""
    a = archive()
    span = a.days()
    st.sidebar.markdown("### Filters")
    if span is None:
        st.sidebar.info(f"No archive yet in {a.root}")
        return data.Filters()
    first, last = span
    default = (max(first, last - timedelta(days=DEFAULT_DAYS - 1)), last)
    picked = st.sidebar.date_input("Dates (event time, UTC)", value=default, min_value=first,
                                   max_value=last, key="dates")
    start, end = _range(picked, default)
    options = query("choices")
    campaigns = st.sidebar.multiselect("Campaigns", options["campaigns"], key="campaigns",
                                       placeholder="all campaigns")
    owners = st.sidebar.multiselect("Owners", options["owners"], key="owners",
                                    placeholder="all owners")
    return data.Filters(start, end, tuple(campaigns), tuple(owners))


def _range(picked: Any, default: tuple[date, date]) -> tuple[date, date]:
    if isinstance(picked, date):
        return picked, picked
    values = tuple(picked or ())
    if len(values) == 2:
        return values[0], values[1]
    if len(values) == 1:  # the second click has not happened yet
        return values[0], values[0]
    return default


def viewer() -> privacy.Viewer:
    s = settings()
    try:
        user = st.user.to_dict()
    except Exception:  # noqa: BLE001 - no auth configured: nobody is logged in
        user = {}
    try:
        headers = dict(st.context.headers)
    except Exception:  # noqa: BLE001 - no request (bare mode)
        headers = {}
    return privacy.identify(user, headers, s.dashboard_identity_header,
                            s.dashboard_pii_viewers)


def audit(what: str, subject: str, page: str) -> None:
    """Log an unmasked view once per session (a rerun or refresh is the same view)."""
    v = viewer()
    seen: set[str] = st.session_state.setdefault("_audited", set())
    key = f"{v.identity}|{what}|{subject}"
    if key in seen:
        return
    seen.add(key)
    s = settings()
    path = Path(s.dashboard_audit_log) if s.dashboard_audit_log else (
        s.data_path / "dashboard-audit.jsonl")
    privacy.audit(path, v, what, subject, page)


def page(title: str, question: str, render: Callable[[data.Filters], None]) -> None:
    st.title(title)
    st.caption(question)
    f = sidebar()
    every = settings().dashboard_refresh_s
    body = st.fragment(run_every=every if every > 0 else None)(lambda: render(f))
    body()
