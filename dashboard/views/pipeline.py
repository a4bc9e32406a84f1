"""Pipeline health: events/s by topic as they arrive (wall clock), the worker's lag, dead
letters, retrains."""

from __future__ import annotations

import time

import polars as pl
import streamlit as st

from dashboard import charts, data_models, privacy, ui
from dashboard.data import Filters
from streams.access.client import client_key
from streams.views import get_json

PAGE = "Pipeline health"


def worker_stats() -> tuple[str, dict | None, str | None]:
    s = ui.settings()
    base = s.dashboard_worker_url or f"http://{s.web_host}:{s.web_port}"
    try:
        status, body = get_json(f"{base.rstrip('/')}/v1/stats", timeout=1.5,
                                key=client_key(s))
    except OSError as exc:
        return base, None, str(exc)
    return (base, body, None) if status == 200 else (base, None, f"HTTP {status}")


def render(f: Filters) -> None:
    m = ui.model_context()
    q = ui.query("pipeline", f, m)
    tp = q["throughput"]
    st.subheader("Events per second as they arrive (wall clock), by topic")
    if tp.is_empty():
        st.info("Nothing archived in this window.")
    else:
        bucket = data_models.BUCKET_NAMES[int(tp["bucket_s"][0])]
        st.caption("Counted by when leadflow received each event (its Kafka record time, "
                   "wall clock), not by its event time; averaged per "
                   f"{bucket} of arrival. The dates in the sidebar (event time) pick the "
                   "events.")
        cols = st.columns(3)
        cols[0].metric("Events archived", f"{int(tp['events'].sum()):,}")
        peak = tp.group_by("at").agg(pl.col("per_s").sum())["per_s"].max()
        cols[1].metric(f"Peak arrival rate, events/s (per {bucket})", f"{peak:,.3g}",
                       help=f"The busiest {bucket} of wall-clock time, all topics together")
        cols[2].metric("Dead letters", f"{int(q['dead_letters']['letters'].sum()):,}")
        st.altair_chart(charts.throughput(tp), width="stretch")

    st.subheader("The worker: consumer lag")
    base, stats, error = worker_stats()
    if stats is None:
        st.warning(f"No worker answers at {base}/v1/stats ({error}): lag unknown. Set "
                   "LEADFLOW_DASHBOARD_WORKER_URL if it runs elsewhere, and LEADFLOW_API_KEY "
                   "to a key of scope read if it answers 401 or 403.")
    else:
        lag = data_models.consumer_lag(stats)
        if not lag.is_empty():
            st.dataframe(lag, hide_index=True)
        clocks = data_models.worker_lag(stats, int(time.time() * 1000))
        cols = st.columns(3)
        cols[0].metric("Events received", f"{stats.get('received_total', 0):,}")
        cols[1].metric("Dead letters (worker)", f"{stats.get('dead_letters_total', 0):,}")
        behind = clocks["behind_s"].max() if not clocks.is_empty() else None
        cols[2].metric("Event-time clock behind", "–" if behind is None else f"{behind:,.0f} s")
        st.dataframe(clocks, hide_index=True)

    st.subheader("Dead letters by error code")
    counts, samples = q["dead_letters"], q["samples"]
    if counts.is_empty():
        st.success("No dead letters in this window.")
    else:
        st.altair_chart(charts.bars(counts, "error_code", "letters", "source_topic"),
                        width="stretch")
        who = ui.viewer()
        if who.allowed:
            for event_id in samples["event_id"]:
                ui.audit("dead letter payload", event_id, PAGE)
            shown = samples["original_value"].map_elements(privacy.preview,
                                                           return_dtype=pl.String)
        else:
            shown = samples["original_value"].map_elements(privacy.mask_text,
                                                           return_dtype=pl.String)
        st.markdown("**Samples** (latest per code; payloads "
                    + ("shown, audited)" if who.allowed else "masked)"))
        st.dataframe(samples.with_columns(original_value=shown), hide_index=True)

    st.subheader("Retrain history")
    st.dataframe(q["retrains"], hide_index=True)


ui.page(PAGE, "Is the pipeline keeping up? What is it rejecting, and why? When did the model "
        "last change?", render)
