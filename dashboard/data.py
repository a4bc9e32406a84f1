"""The dashboard's questions, answered over the archive with polars lazy scans.

One function per question, each pure: archive (or frames) and filters in, a collected
``polars.DataFrame`` out; no Streamlit, no network, nothing done at import. Each page has
one entry point (``marketing``, ``revops`` here; ``data_team`` and ``pipeline`` in
``dashboard.data_models``) that answers all of its questions in one go: that is what the
app caches and what ``leadflow bench dashboard`` times.

Definitions (the SLA core's, so the page and the verdicts agree):

- a lead *crosses* when its score first reaches the threshold: the lead-level
  ``CONTEXT_COMPLETE`` verdict, one per crossing lead, dated at the crossing. Monthly MQL
  volume counts crossings (complete or not), as ``MQL_VOLUME`` does;
- an *MQL* is a crossing handed to sales (routed: incomplete context is judged against
  marketing but handed over all the same, a missing lawful basis may hold it back); a
  campaign's disqualification rate is the share of its MQLs later set to ``DISQUALIFIED``
  (by the month they crossed);
- the date filter applies to when the thing counted happened (crossing, routing, verdict,
  scoring, arrival), read through the archive's ``date`` partitions so other days' files
  are never opened. What sales did with those leads (touches, status changes) is read from
  the window's first day on: a status dated before its lead entered the window (a CRM
  clock hours off, say) is not counted.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from streams.archive import layout

TERMINAL = ("DISQUALIFIED", "CLOSED_WON", "CLOSED_LOST")
KEY_SEED = 20261122
CONVERTED = ("SQL", "CLOSED_WON")
NO_REASON = "(no reason given)"


@dataclass(frozen=True)
class Filters:
    """The sidebar: an inclusive date range and, if any, the campaigns and owners kept."""

    start: date | None = None
    end: date | None = None
    campaigns: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()


@dataclass(frozen=True)
class Commitments:
    """Marketing's side of the SLA contract ([sla.marketing] in leadflow.toml)."""

    min_mqls_per_month: int = 250
    max_dq_rate: float = 0.30
    min_context_complete: float = 0.90


@dataclass(frozen=True)
class Archive:
    root: Path
    teams: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    # The dashboard's read cache (see readcache.py); None reads the day files only.
    cache: Path | None = None

    def scan(self, record: str, f: Filters | None = None) -> pl.LazyFrame:
        if self.cache is not None:
            from dashboard.readcache import ReadCache

            lf = ReadCache(self.root, self.cache).scan(record)
        else:
            lf = layout.scan(self.root, record)
        if f is not None and f.start is not None:
            lf = lf.filter(pl.col(layout.PARTITION) >= f.start)
        if f is not None and f.end is not None:
            lf = lf.filter(pl.col(layout.PARTITION) <= f.end)
        return lf

    def lead_rows(self, record: str, lead_ids: Collection[str]) -> pl.LazyFrame:
        """These leads' rows of ``record``, each lead's in the archive's order; through the
        read cache's lead-ordered months if any (a row group per month, not every row)."""
        if self.cache is not None:
            from dashboard.readcache import ReadCache

            lf = ReadCache(self.root, self.cache).scan(record, by_lead=True)
        else:
            lf = layout.scan(self.root, record)
        return lf.filter(pl.col("lead_id").is_in(list(lead_ids)))

    def days(self) -> tuple[date, date] | None:
        """First and last archived day (from the partition directories: no file is read)."""
        found = sorted(
            d.name.split("=", 1)[1]
            for d in self.root.glob(f"*/{layout.PARTITION}=*") if d.is_dir()
        )
        if not found:
            return None
        return date.fromisoformat(found[0]), date.fromisoformat(found[-1])


def key() -> pl.Expr:
    """A lead's join key: a 64-bit hash of its id. Joining and grouping a million UUID strings
    costs two to three times more than integers; a collision among 10^6 leads has odds of
    about 1 in 3·10^7."""
    return pl.col("lead_id").hash(seed=KEY_SEED).alias("k")


def campaign_of() -> pl.Expr:
    return pl.col("attribution").struct.field("campaign_id").alias("campaign_id")


def lead_campaigns(a: Archive) -> pl.LazyFrame:
    return a.scan("LeadCaptured").select(key(), campaign_of(), "occurred_at").sort(
        "occurred_at").filter(pl.col("k").is_first_distinct()).drop("occurred_at")


def lead_owners(a: Archive) -> pl.LazyFrame:
    """The latest owner of every routed lead."""
    return a.scan("LeadRouted").select(key(), "owner_id", "occurred_at").sort("occurred_at").filter(
        pl.col("k").is_last_distinct()).drop("occurred_at")


def keep_leads(lf: pl.LazyFrame, a: Archive, f: Filters, *, campaign: str | None = None,
               owner: str | None = None) -> pl.LazyFrame:
    """Apply the campaign and owner filters to rows with a lead key ``k``: directly on the
    row's own ``campaign``/``owner`` column when it has one, else through the lead."""
    for chosen, column, of_leads, key in ((f.campaigns, campaign, lead_campaigns, "campaign_id"),
                                          (f.owners, owner, lead_owners, "owner_id")):
        if not chosen:
            continue
        if column:
            lf = lf.filter(pl.col(column).is_in(chosen))
        else:
            ids = of_leads(a).filter(pl.col(key).is_in(chosen))
            lf = lf.join(ids.select("k"), on="k", how="semi")
    return lf


def choices(a: Archive) -> dict[str, list[str]]:
    """What the sidebar offers: every campaign and owner in the archive."""
    campaigns = a.scan("SlaEvaluated").select("campaign_id").unique().drop_nulls()
    owners = a.scan("LeadRouted").select("owner_id").unique().drop_nulls()
    got = pl.collect_all([campaigns, owners])
    return {"campaigns": sorted(got[0]["campaign_id"].to_list()),
            "owners": sorted(got[1]["owner_id"].to_list())}


# --- Marketing ---------------------------------------------------------------------------


def crossings(a: Archive, f: Filters) -> pl.DataFrame:
    """One row per lead that crossed the threshold in the window: when, campaign, whether
    its context was complete and what was missing, whether sales got it (``handed``: an
    MQL) and what sales made of it."""
    verdicts = a.scan("SlaEvaluated", f).filter(
        (pl.col("clause") == "CONTEXT_COMPLETE") & pl.col("lead_id").is_not_null()
    ).select(key(), "campaign_id", "detail", at="evaluated_at",
             complete=pl.col("verdict") == "MET")
    verdicts = keep_leads(verdicts, a, f, campaign="campaign_id")
    handed = a.scan("LeadRouted", since(f)).select(key()).unique().with_columns(
        handed=pl.lit(True))
    return verdicts.join(outcomes(a, f), on="k", how="left").join(
        handed, on="k", how="left").with_columns(pl.col("handed").fill_null(False),
        pl.col("dq").fill_null(False), pl.col("converted").fill_null(False),
        month=pl.col("at").dt.strftime("%Y-%m"),
    ).collect()


def since(f: Filters) -> Filters:
    """What happens to a lead after it entered the window happens in or after the window:
    its sales events are read from the window's first day on."""
    return Filters(start=f.start)


def outcomes(a: Archive, f: Filters) -> pl.LazyFrame:
    """Per lead, in one pass over its status changes: disqualified (and the first reason
    given), converted (reached SQL or won)."""
    statuses = a.scan("LeadStatusChanged", since(f)).filter(
        pl.col("new_status").is_in(("DISQUALIFIED", *CONVERTED)))
    is_dq = pl.col("new_status") == "DISQUALIFIED"
    return statuses.group_by(key()).agg(
        dq=is_dq.any(), reason=pl.col("disqualification_reason").filter(is_dq).first(),
        converted=pl.col("new_status").is_in(CONVERTED).any())


def mql_volume(x: pl.DataFrame, c: Commitments) -> pl.DataFrame:
    """Per month: leads that crossed, handed to sales (MQLs), with incomplete context, against
    the monthly commitment."""
    return x.group_by("month").agg(
        crossed=pl.len(), mqls=pl.col("handed").sum(),
        incomplete=(~pl.col("complete")).sum(),
    ).with_columns(
        commitment=pl.lit(c.min_mqls_per_month),
        met=pl.col("crossed") >= c.min_mqls_per_month,
    ).sort("month")


def dq_by_campaign(x: pl.DataFrame, c: Commitments) -> pl.DataFrame:
    """Per campaign: MQLs, disqualified, the rate against the ceiling, conversions."""
    return x.filter(pl.col("handed")).group_by("campaign_id").agg(
        mqls=pl.len(), disqualified=pl.col("dq").sum(), converted=pl.col("converted").sum(),
    ).with_columns(
        dq_rate=pl.col("disqualified") / pl.col("mqls"),
        conversion_rate=pl.col("converted") / pl.col("mqls"),
        ceiling=pl.lit(c.max_dq_rate),
    ).with_columns(over_ceiling=pl.col("dq_rate") > c.max_dq_rate).sort(
        "dq_rate", descending=True)


def dq_reasons(x: pl.DataFrame) -> pl.DataFrame:
    """Why sales disqualified each campaign's MQLs."""
    return x.filter(pl.col("handed") & pl.col("dq")).group_by(
        "campaign_id", reason=pl.col("reason").fill_null(NO_REASON)
    ).agg(leads=pl.len()).sort(["campaign_id", "leads"], descending=[False, True])


def context_completeness(x: pl.DataFrame, c: Commitments) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per month: share of crossings with complete context vs the target; what was
    missing, field by field, over the window)."""
    monthly = x.group_by("month").agg(
        crossed=pl.len(), complete=pl.col("complete").sum()
    ).with_columns(share=pl.col("complete") / pl.col("crossed"),
                   target=pl.lit(c.min_context_complete)).sort("month")
    missing = (
        x.filter(~pl.col("complete"))
        .select(field=pl.col("detail").str.strip_prefix("missing: ").str.split(", "))
        .explode("field").group_by("field").agg(leads=pl.len()).sort("leads", descending=True)
    )
    return monthly, missing


def weekly_trend(x: pl.DataFrame) -> pl.DataFrame:
    """Week by week: MQLs, their disqualification rate and the context share."""
    return x.group_by(week=pl.col("at").dt.truncate("1w")).agg(
        crossed=pl.len(), mqls=pl.col("handed").sum(),
        dq_rate=(pl.col("dq") & pl.col("handed")).sum() / pl.col("handed").sum(),
        context_share=pl.col("complete").mean(),
    ).sort("week")


def campaign_calls(by_campaign: pl.DataFrame, c: Commitments, *, min_mqls: int = 20
                   ) -> pl.DataFrame:
    """Stop the campaigns whose MQLs sales disqualifies above the ceiling; double down on
    those under it that convert better than the average MQL. Campaigns with fewer than
    ``min_mqls`` MQLs are too small to call."""
    total = by_campaign["mqls"].sum()
    overall = by_campaign["converted"].sum() / total if total else 0.0
    call = (
        pl.when(pl.col("mqls") < min_mqls).then(pl.lit("too early"))
        .when(pl.col("dq_rate") > c.max_dq_rate).then(pl.lit("stop"))
        .when(pl.col("conversion_rate") >= overall).then(pl.lit("double down"))
        .otherwise(pl.lit("keep"))
    )
    why = (
        pl.when(pl.col("mqls") < min_mqls).then(pl.format("only {} MQLs", pl.col("mqls")))
        .when(pl.col("dq_rate") > c.max_dq_rate).then(pl.format(
            "{}% disqualified, ceiling {}%", (pl.col("dq_rate") * 100).round(1),
            pl.lit(round(c.max_dq_rate * 100, 1))))
        .otherwise(pl.format("{}% converted vs {}% on average",
                             (pl.col("conversion_rate") * 100).round(1),
                             pl.lit(round(overall * 100, 1))))
    )
    order = {"stop": 0, "double down": 1, "keep": 2, "too early": 3}
    return by_campaign.select(
        call.alias("call"), "campaign_id", "mqls", "dq_rate", "conversion_rate", why=why,
    ).with_columns(rank=pl.col("call").replace_strict(order, return_dtype=pl.Int8)).sort(
        ["rank", "dq_rate"], descending=[False, True]).drop("rank")


def marketing(a: Archive, f: Filters, c: Commitments) -> dict[str, pl.DataFrame]:
    x = crossings(a, f)
    by_campaign = dq_by_campaign(x, c)
    monthly, missing = context_completeness(x, c)
    return {
        "volume": mql_volume(x, c), "dq_by_campaign": by_campaign, "reasons": dq_reasons(x),
        "context": monthly, "missing": missing, "trend": weekly_trend(x),
        "calls": campaign_calls(by_campaign, c),
    }


# --- RevOps ------------------------------------------------------------------------------


def sales_verdicts(a: Archive, f: Filters) -> pl.LazyFrame:
    """Each sales clause's verdict in force: the final one, or its latest correction
    (``corrected``); overdue notices are ``overdue_now``'s."""
    lf = a.scan("SlaEvaluated", f).filter(
        (pl.col("party") == "SALES") & pl.col("lead_id").is_not_null()
        & (pl.col("status").fill_null("FINAL") != "OVERDUE")
    ).with_columns(pl.col("revision").fill_null(1)).sort("revision").unique(
        subset=["lead_id", "clause"], keep="last", maintain_order=True,
    ).select("lead_id", key(), "clause", "verdict", "owner_id", "tier", "campaign_id", "deadline",
             "met_at", "evaluated_at", "detail", corrected=pl.col("revision") > 1)
    return keep_leads(lf, a, f, campaign="campaign_id", owner="owner_id")


def overdue_now(a: Archive, f: Filters) -> pl.DataFrame:
    """Overdue notices with no final verdict yet: the reps to chase now."""
    lf = a.scan("SlaEvaluated", f).filter(pl.col("lead_id").is_not_null())
    notices = lf.filter(pl.col("status") == "OVERDUE")
    finals = lf.filter(pl.col("status").fill_null("FINAL") != "OVERDUE").select(
        "lead_id", "clause")
    return notices.join(finals, on=["lead_id", "clause"], how="anti").select(
        "lead_id", "clause", "owner_id", "deadline", "detail").sort("deadline").collect()


def compliance(v: pl.DataFrame, teams: dict[str, str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per owner and clause, per team and clause): met, breached and the met rate."""
    by_owner = v.group_by(pl.col("owner_id").fill_null("(queued)").alias("owner"), "clause").agg(
        met=(pl.col("verdict") == "MET").sum(), breached=(pl.col("verdict") == "BREACHED").sum())
    by_team = by_owner.group_by(
        pl.col("owner").replace_strict(teams, default="(no team)", return_dtype=pl.String)
        .alias("team"), "clause").agg(pl.col("met").sum(), pl.col("breached").sum())
    rate = (pl.col("met") / (pl.col("met") + pl.col("breached"))).alias("met_rate")
    return (by_owner.with_columns(rate).sort("owner", "clause"),
            by_team.with_columns(rate).sort("team", "clause"))


def sales_activity(a: Archive, f: Filters) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Per lead: first and last touch; first and last status change, when it closed."""
    touches = a.scan("SalesTouchLogged", since(f)).group_by(key()).agg(
        touched_at=pl.col("occurred_at").min(), last_touch_at=pl.col("occurred_at").max())
    statuses = a.scan("LeadStatusChanged", since(f)).group_by(key()).agg(
        first_status_at=pl.col("occurred_at").min(), last_status_at=pl.col("occurred_at").max(),
        closed_at=pl.col("occurred_at").filter(pl.col("new_status").is_in(TERMINAL)).min())
    return touches, statuses


def open_breaches(v: pl.DataFrame, touches: pl.DataFrame, statuses: pl.DataFrame
                  ) -> pl.DataFrame:
    """Breaches nobody has acted on yet: a sales clause BREACHED with nothing met, and since
    its verdict no touch or status change of the lead, which is not closed. Overdue is
    counted to the latest verdict in the archive (in a live archive: about now)."""
    as_of = v["evaluated_at"].max()
    acted = pl.max_horizontal("last_touch_at", "last_status_at")
    return (
        v.filter((pl.col("verdict") == "BREACHED") & pl.col("met_at").is_null())
        .join(touches, on="k", how="left").join(statuses, on="k", how="left")
        .filter(pl.col("closed_at").is_null()
                & (acted.is_null() | (acted < pl.col("evaluated_at"))))
        .with_columns(overdue=pl.lit(as_of, pl.Datetime("ms", "UTC")) - pl.col("deadline"))
        .select("lead_id", "owner_id", "tier", "clause", "deadline", "overdue", "detail")
        .sort("overdue", descending=True)
    )


# Time-to-first-touch buckets, in minutes (upper bounds), as people read them.
TOUCH_BUCKETS = ((5, "< 5m"), (15, "5-15m"), (60, "15m-1h"), (240, "1-4h"), (1440, "4-24h"),
                 (4320, "1-3d"))


def routed_leads(a: Archive, f: Filters) -> pl.LazyFrame:
    lf = a.scan("LeadRouted", f).select(key(), "owner_id", "tier", routed_at="occurred_at")
    # A reassignment routes a lead again: its first routing starts the clocks.
    lf = lf.sort("routed_at").filter(pl.col("k").is_first_distinct())
    return keep_leads(lf, a, f, owner="owner_id")


def first_touch(p: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per tier: leads, touched, median / p90 minutes to the first touch; per tier and
    bucket: leads) — the distribution the FIRST_TOUCH clause is about."""
    minutes = ((pl.col("touched_at") - pl.col("routed_at")).dt.total_seconds() / 60).alias(
        "minutes")
    t = p.select("tier", minutes)
    stats = t.group_by("tier").agg(
        leads=pl.len(), touched=pl.col("minutes").is_not_null().sum(),
        median_min=pl.col("minutes").median(), p90_min=pl.col("minutes").quantile(0.9),
    ).sort("tier")
    bucket = pl.when(pl.col("minutes").is_null()).then(pl.lit("not yet"))
    for upper, label in TOUCH_BUCKETS:
        bucket = bucket.when(pl.col("minutes") < upper).then(pl.lit(label))
    order = [label for _, label in TOUCH_BUCKETS] + ["> 3d", "not yet"]
    hist = t.group_by("tier", bucket=bucket.otherwise(pl.lit("> 3d"))).agg(leads=pl.len())
    hist = hist.with_columns(order=pl.col("bucket").replace_strict(
        {b: i for i, b in enumerate(order)}, return_dtype=pl.Int8)).sort("tier", "order")
    return stats, hist.drop("order")


STAGES = (
    ("captured → routed", "captured_at", "routed_at", "system"),
    ("routed → first touch", "routed_at", "touched_at", "human"),
    ("first touch → first status", "touched_at", "first_status_at", "human"),
    ("first status → closed", "first_status_at", "closed_at", "human"),
)


def stage_times(p: pl.DataFrame) -> pl.DataFrame:
    """Where in the path the time goes: per stage, leads that went through it and the
    median / p90 / total hours it took, and who it waited on."""
    parts = []
    for i, (name, a_col, b_col, who) in enumerate(STAGES):
        hours = (pl.col(b_col) - pl.col(a_col)).dt.total_seconds() / 3600
        parts.append(p.select(hours.alias("hours")).drop_nulls().select(
            order=pl.lit(i), stage=pl.lit(name), waits_on=pl.lit(who), leads=pl.len(),
            median_h=pl.col("hours").median(), p90_h=pl.col("hours").quantile(0.9),
            total_h=pl.col("hours").sum(),
        ))
    out = pl.concat(parts)
    return out.with_columns(share=pl.col("total_h") / pl.col("total_h").sum()).sort(
        "order").drop("order")


def revops(a: Archive, f: Filters) -> dict[str, pl.DataFrame]:
    routed = routed_leads(a, f)
    # Captured before it was routed: no later day can hold the capture.
    captured = a.scan("LeadCaptured", Filters(end=f.end)).select(
        key(), captured_at="occurred_at").filter(pl.col("k").is_first_distinct())
    touches, statuses = sales_activity(a, f)
    v, paths, touch_df, status_df = pl.collect_all([
        sales_verdicts(a, f), routed.join(captured, on="k", how="left"), touches, statuses,
    ])
    paths = paths.join(touch_df, on="k", how="left").join(status_df, on="k", how="left")
    stats, hist = first_touch(paths)
    by_owner, by_team = compliance(v, a.teams)
    return {
        "by_owner": by_owner, "by_team": by_team, "open": open_breaches(v, touch_df, status_df),
        "overdue": overdue_now(a, f),
        "corrections": v.filter(pl.col("corrected")).select(
            "lead_id", "clause", "verdict", "owner_id", "deadline", "detail"),
        "touch_stats": stats, "touch_hist": hist, "stages": stage_times(paths),
    }
