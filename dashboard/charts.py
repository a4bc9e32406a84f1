"""Altair charts for the pages: each takes a query's frame and returns a chart."""

from __future__ import annotations

import altair as alt
import polars as pl

RED, GREEN, GREY, BLUE = "#d62728", "#2ca02c", "#7f7f7f", "#1f77b4"


def _frame(df: pl.DataFrame) -> alt.Data:
    return alt.Data(values=df.to_dicts())


def mql_volume(df: pl.DataFrame) -> alt.LayerChart:
    long = df.unpivot(index=["month", "commitment"], on=["mqls", "incomplete"],
                      variable_name="context", value_name="leads").with_columns(
        context=pl.col("context").replace({"mqls": "complete (MQL)",
                                           "incomplete": "incomplete"}))
    bars = alt.Chart(_frame(long)).mark_bar().encode(
        x=alt.X("month:O", title="month"), y=alt.Y("leads:Q", title="leads that crossed"),
        color=alt.Color("context:N", scale=alt.Scale(domain=["complete (MQL)", "incomplete"],
                                                     range=[BLUE, "#ff7f0e"])),
        tooltip=["month:O", "context:N", "leads:Q"])
    rule = alt.Chart(_frame(df.select("commitment").head(1))).mark_rule(
        color=RED, strokeDash=[6, 3]).encode(y="commitment:Q")
    return (bars + rule).properties(height=280)


def dq_by_campaign(df: pl.DataFrame, ceiling: float) -> alt.LayerChart:
    bars = alt.Chart(_frame(df)).mark_bar().encode(
        y=alt.Y("campaign_id:N", sort="-x", title=None, axis=alt.Axis(labelLimit=240)),
        x=alt.X("dq_rate:Q", axis=alt.Axis(format="%"), title="disqualified share of MQLs"),
        color=alt.condition(alt.datum.dq_rate > ceiling, alt.value(RED), alt.value(BLUE)),
        tooltip=["campaign_id:N", "mqls:Q", "disqualified:Q",
                 alt.Tooltip("dq_rate:Q", format=".1%")])
    rule = alt.Chart(alt.Data(values=[{"ceiling": ceiling}])).mark_rule(
        color=RED, strokeDash=[6, 3]).encode(x="ceiling:Q")
    return (bars + rule).properties(height=max(200, 16 * df.height))


def reasons(df: pl.DataFrame) -> alt.Chart:
    return alt.Chart(_frame(df)).mark_bar().encode(
        y=alt.Y("campaign_id:N", title=None, sort="-x", axis=alt.Axis(labelLimit=240)),
        x=alt.X("leads:Q", stack="zero"),
        color=alt.Color("reason:N"), tooltip=["campaign_id:N", "reason:N", "leads:Q"],
    ).properties(height=max(200, 16 * df["campaign_id"].n_unique()))


def share_vs_target(df: pl.DataFrame, x: str, share: str, target: float) -> alt.LayerChart:
    line = alt.Chart(_frame(df)).mark_line(point=True).encode(
        x=alt.X(f"{x}:O"), y=alt.Y(f"{share}:Q", axis=alt.Axis(format="%"),
                                   scale=alt.Scale(zero=False)),
        tooltip=[f"{x}:O", alt.Tooltip(f"{share}:Q", format=".1%")])
    rule = alt.Chart(alt.Data(values=[{"t": target}])).mark_rule(
        color=RED, strokeDash=[6, 3]).encode(y="t:Q")
    return (line + rule).properties(height=220)


def trend(df: pl.DataFrame) -> alt.VConcatChart:
    frame = _frame(df.with_columns(pl.col("week").dt.strftime("%Y-%m-%d")))
    base = alt.Chart(frame).encode(x=alt.X("week:T", title="week"))
    mqls = base.mark_line(point=True).encode(y=alt.Y("mqls:Q", title="MQLs"))
    dq = base.mark_line(color=RED).encode(
        y=alt.Y("dq_rate:Q", axis=alt.Axis(format="%"), title="DQ rate"))
    return alt.vconcat(mqls.properties(height=160), dq.properties(height=120))


def bars(df: pl.DataFrame, x: str, y: str, color: str | None = None, *,
         fmt: str | None = None, horizontal: bool = False, height: int = 240) -> alt.Chart:
    """Bars of ``y`` per ``x`` (in the frame's order); ``horizontal`` puts ``x`` down the side."""
    axis = alt.Axis(format=fmt) if fmt else alt.Axis()
    if horizontal:
        enc: dict = {"y": alt.Y(f"{x}:N", sort=None, title=None),
                     "x": alt.X(f"{y}:Q", axis=axis)}
        height = max(height, 22 * df[x].n_unique())
    else:
        enc = {"x": alt.X(f"{x}:N", sort=None, title=None), "y": alt.Y(f"{y}:Q", axis=axis)}
    if color:
        enc["color"] = alt.Color(f"{color}:N")
    return alt.Chart(_frame(df)).mark_bar().encode(
        **enc, tooltip=[f"{x}:N", f"{y}:Q", *([f"{color}:N"] if color else [])],
    ).properties(height=height)


def calibration(df: pl.DataFrame) -> alt.LayerChart:
    diag = alt.Chart(alt.Data(values=[{"p": 0}, {"p": 1}])).mark_line(
        color=GREY, strokeDash=[4, 4]).encode(x="p:Q", y="p:Q")
    points = alt.Chart(_frame(df)).mark_line(point=True).encode(
        x=alt.X("expected:Q", title="predicted probability", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("observed:Q", title="share converted", scale=alt.Scale(domain=[0, 1])),
        tooltip=["expected:Q", "observed:Q", "leads:Q"])
    return (diag + points).properties(height=260)


def thresholds(df: pl.DataFrame, recommended: int, current: int) -> alt.LayerChart:
    long = df.select("threshold", "mqls_per_month", "dq_rate", "precision", "recall")
    rates = long.unpivot(index="threshold", on=["dq_rate", "precision", "recall"],
                         variable_name="metric", value_name="value").drop_nulls()
    lines = alt.Chart(_frame(rates)).mark_line().encode(
        x=alt.X("threshold:Q"), y=alt.Y("value:Q", axis=alt.Axis(format="%"), title="rate"),
        color="metric:N", tooltip=["threshold:Q", "metric:N", alt.Tooltip("value:Q", format=".1%")])
    marks = alt.Chart(alt.Data(values=[{"t": recommended, "what": "recommended"},
                                       {"t": current, "what": "in force"}])).mark_rule(
        strokeDash=[6, 3]).encode(x="t:Q", color=alt.Color("what:N", scale=alt.Scale(
            domain=["recommended", "in force"], range=[GREEN, GREY])))
    return (lines + marks).resolve_scale(color="independent").properties(height=260)


def throughput(df: pl.DataFrame) -> alt.Chart:
    frame = _frame(df.with_columns(pl.col("at").dt.strftime("%Y-%m-%dT%H:%M:%SZ")))
    # An area needs two points in time; a first second of data is drawn as bars.
    mark = alt.Chart(frame).mark_area() if df["at"].n_unique() > 2 else alt.Chart(
        frame).mark_bar()
    return mark.encode(
        x=alt.X("at:T", title="arrival time (wall clock, UTC)"),
        y=alt.Y("per_s:Q", stack="zero", title="events/s (arrival)"),
        color="topic:N", tooltip=["at:T", "topic:N", alt.Tooltip("per_s:Q", format=".2f")],
    ).properties(height=260)
