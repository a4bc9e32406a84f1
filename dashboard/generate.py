"""A synthetic archive at any volume: N leads, about ten archived events each.

The story is the simulator's (``streams.simulate.catalog``: its campaigns, firmographics, reps
and disqualification reasons) told in columns instead of one lead at a time, so a million
leads take about a minute. Each lead has a hidden quality (campaign, size, industry, region,
title, noise) that drives its score, its activities and what sales makes of it; the bad
campaigns (``ebook-ai``, ``display-retarget``) send leads sales disqualifies above the 30 %
ceiling and leave context out more often; slow reps (``ben``, ``farid``) breach first-touch
and status-update deadlines. Decisions follow leadflow's rules closely enough to read like
a real archive: score >= 60 crosses, a crossing with complete context is an MQL that is
routed, verdicts have the clauses, deadlines and details the SLA core writes.

Deterministic: ``generate(leads, seed=…)`` returns the same frames every time. Nothing after
``end`` (default a fixed date, not today, so tests do not change with the calendar).

    python -m dashboard.generate --leads 1000000 --out /tmp/archive
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from dashboard import generate_sales as sales
from dashboard import synth
from dashboard.synth import DAY_MS
from streams.archive import layout
from streams.simulate import catalog as C

THRESHOLD = 60
DEFAULT_END = date(2026, 11, 1)
SIZES = ("SIZE_1_10", "SIZE_11_50", "SIZE_51_200", "SIZE_201_1000", "SIZE_1001_5000",
         "SIZE_5001_PLUS")
SIZE_EFFECT = np.array([C.SIZE_EFFECT[b] for b in C.SIZE_BANDS])
ACTIVITIES = ("EMAIL_OPEN", "EMAIL_CLICK", "PAGE_VIEW", "PRICING_PAGE_VIEW", "CONTENT_DOWNLOAD",
              "WEBINAR_ATTEND", "FORM_SUBMIT", "DEMO_REQUEST", "MEETING_BOOKED",
              "CONTACT_SUPPORT", "OTHER")
ACTIVITY_WEIGHTS = (25, 12, 22, 8, 10, 7, 6, 4, 2, 3, 1)
HAND_RAISING = (ACTIVITIES.index("DEMO_REQUEST"), ACTIVITIES.index("MEETING_BOOKED"))
MISSING = ("size_band", "trigger_action", "company", "consent")
# Campaigns whose leads more often arrive without the context the MQL contract asks for.
INCOMPLETE_SHARE = {"ebook-ai": 0.22, "display-retarget": 0.16}
MARKER = "generated.json"


@dataclass(frozen=True)
class Spec:
    leads: int
    seed: int = 7
    days: int = 365
    end: str = DEFAULT_END.isoformat()

    @property
    def end_ms(self) -> int:
        return int(datetime.fromisoformat(self.end).replace(tzinfo=UTC).timestamp() * 1000)


def model_versions(spec: Spec) -> list[tuple[str, str, int]]:
    """(version, kind, published at) of the models in force over the span: the points model,
    then two retrained logistic regressions."""
    start = spec.end_ms - spec.days * DAY_MS
    span = spec.days * DAY_MS
    return [
        ("points-3f9a2c71e0", "POINTS", start - DAY_MS),
        ("lr-retrain-1", "LOGISTIC_REGRESSION", start + int(0.4 * span)),
        ("lr-retrain-2", "LOGISTIC_REGRESSION", start + int(0.75 * span)),
    ]


def _leads(rng: np.random.Generator, spec: Spec) -> pl.DataFrame:
    n, end = spec.leads, spec.end_ms
    span = spec.days * DAY_MS
    captured = end - span + (span * rng.power(1.3, n)).astype(np.int64)  # volume grows
    camp = synth.pick(rng, C.CAMPAIGNS, n, [c[4] for c in C.CAMPAIGNS])
    region = synth.pick(rng, C.REGIONS, n, C.REGION_WEIGHTS)
    size = synth.pick(rng, SIZES, n, C.SIZE_WEIGHTS)
    industry = synth.pick(rng, C.INDUSTRIES, n, C.INDUSTRY_WEIGHTS)
    title = synth.pick(rng, C.TITLES, n, C.TITLE_WEIGHTS)
    quality = (
        np.array([c[3] for c in C.CAMPAIGNS])[camp] + SIZE_EFFECT[size]
        + np.array([C.INDUSTRY_EFFECT[i] for i in C.INDUSTRIES])[industry]
        + np.array([C.REGION_EFFECT[r] for r in C.REGIONS])[region]
        + np.array([t[1] for t in C.TITLES])[title] + rng.normal(0.0, 0.8, n)
    )
    slugs = [c[0] for c in C.CAMPAIGNS]
    incomplete_p = np.array([INCOMPLETE_SHARE.get(s, 0.04) for s in slugs])[camp]
    incomplete = rng.random(n) < incomplete_p
    first = synth.pick(rng, C.FIRST_NAMES, n)
    last = synth.pick(rng, C.LAST_NAMES, n)
    head = synth.pick(rng, C.COMPANY_HEADS, n)
    core = synth.pick(rng, C.COMPANY_CORES, n)
    tld = synth.pick(rng, C.TLDS, n)
    none = len(C.EXTRA_TRIGGERS)  # the index of "no extra trigger"
    extra_trigger = np.where(rng.random(n) < 0.4, synth.pick(rng, C.EXTRA_TRIGGERS, n), none)
    df = pl.DataFrame({
        "i": np.arange(n, dtype=np.int64),
        "lead_id": synth.uuids(rng, n),
        "captured_ms": captured,
        "camp": camp, "region_i": region, "size_i": size, "title_i": title,
        "quality": quality,
        "incomplete": incomplete,
        "missing": synth.take(MISSING, synth.pick(rng, MISSING, n, (5, 3, 1, 1))),
        "first_name": synth.take(C.FIRST_NAMES, first),
        "last_name": synth.take(C.LAST_NAMES, last),
        "company_name": synth.take(C.COMPANY_HEADS, head) + " " + synth.take(C.COMPANY_CORES,
                                                                              core),
        "tld": synth.take(C.TLDS, tld),
        "industry": synth.take(C.INDUSTRIES, industry),
        "job_title": synth.take([t[0] for t in C.TITLES], title),
        "region": synth.take(C.REGIONS, region),
        "company_size": synth.take(SIZES, size),
        "slug": synth.take(slugs, camp),
        "utm_source": synth.take([c[1] for c in C.CAMPAIGNS], camp),
        "utm_medium": synth.take([c[2] for c in C.CAMPAIGNS], camp),
        "trigger": synth.take([c[5] for c in C.CAMPAIGNS], camp),
        "extra_trigger": synth.take((*C.EXTRA_TRIGGERS, None), extra_trigger),
        "phone_tail": rng.integers(1000, 9999, n),
        "tech_a": synth.take(C.TECH, synth.pick(rng, C.TECH, n)),
        "tech_b": synth.take(C.TECH, synth.pick(rng, C.TECH, n)),
    })
    when = synth.ms_to_dt(pl.col("captured_ms"))
    quarter = ((when.dt.month() - 1) // 3 + 1).cast(pl.String)
    return df.with_columns(
        campaign_id=pl.format("cmp-{}-q{}-{}", when.dt.year(), quarter, pl.col("slug")),
        email=pl.format("{}.{}@{}{}", pl.col("first_name"), pl.col("last_name"),
                        pl.col("company_name").str.split(" ").list.first(), pl.col("tld"))
        .str.to_lowercase().str.replace_all(r"[^a-z0-9.@\-]", ""),
    )


def _captured(leads: pl.DataFrame) -> pl.DataFrame:
    gap = pl.col("incomplete")
    missing = pl.col("missing")
    triggers = pl.concat_list(pl.col("trigger"), pl.col("extra_trigger")).list.drop_nulls()
    df = leads.select(
        event_id=pl.col("event_id_capture"), lead_id="lead_id",
        email="email", first_name="first_name", last_name="last_name",
        phone=pl.format("+1 555 01{}", pl.col("phone_tail")),
        job_title="job_title",
        company_name=pl.when(gap & (missing == "company")).then(pl.lit(""))
        .otherwise(pl.col("company_name")),
        company_size=pl.when(gap & (missing == "size_band")).then(pl.lit("UNKNOWN"))
        .otherwise(pl.col("company_size")),
        region="region",
        marketing_score=pl.lit(None, pl.Int32),
        trigger_actions=pl.when(gap & (missing == "trigger_action"))
        .then(pl.lit([], pl.List(pl.String))).otherwise(triggers),
        enrichment=pl.struct(
            linkedin_url=pl.format("https://www.linkedin.com/in/{}-{}", pl.col("first_name"),
                                   pl.col("last_name")).str.to_lowercase(),
            industry="industry",
            tech_stack=pl.concat_list("tech_a", "tech_b").list.unique(maintain_order=True),
        ),
        attribution=pl.struct(
            campaign_id="campaign_id", utm_source="utm_source", utm_medium="utm_medium",
            utm_campaign="slug", original_source="utm_source", latest_source="utm_source",
        ),
        consent=pl.when(gap & (missing == "consent")).then(None).otherwise(pl.struct(
            lawful_basis=pl.lit("CONSENT"), consented_at=synth.ms_to_dt(pl.col("captured_ms")),
            channels=pl.lit(["email"], pl.List(pl.String)),
        )),
        occurred_at=synth.ms_to_dt(pl.col("captured_ms")),
        source_system=pl.lit("hubspot"),
        correlation_id=pl.lit(None, pl.String),
        attributes=pl.lit("{}"),
    )
    return synth.envelope(df, "LeadCaptured", observed_ms=pl.col("occurred_at")
                          .dt.epoch("ms") + 40)


def _activities(rng: np.random.Generator, leads: pl.DataFrame, end: int) -> pl.DataFrame:
    """Activities of every lead: hot leads do more, and more of the hand-raising kind."""
    q = leads["quality"].to_numpy()
    counts = rng.poisson(4.2 + 1.0 * np.clip(q, 0, None))
    owner = np.repeat(np.arange(leads.height), counts)
    m = owner.size
    captured = leads["captured_ms"].to_numpy()[owner]
    before = rng.random(m) < 0.15
    offset = (rng.exponential(4.0, m) * DAY_MS).astype(np.int64)
    at = np.where(before, captured - offset // 2, captured + offset)
    weights = np.tile(np.asarray(ACTIVITY_WEIGHTS, float), (2, 1))
    weights[1, list(HAND_RAISING)] *= 3  # better leads ask for sales more often
    hot = q[owner] > 1.0
    kind = np.where(hot, synth.pick(rng, ACTIVITIES, m, weights[1]),
                    synth.pick(rng, ACTIVITIES, m, weights[0]))
    keep = at <= end
    df = pl.DataFrame({"i": owner[keep], "at": at[keep], "kind": kind[keep]})
    return df.join(leads.select("i", "lead_id", "campaign_id"), on="i", how="left")


def _activity_frame(rng: np.random.Generator, acts: pl.DataFrame) -> pl.DataFrame:
    n = acts.height
    df = acts.select(
        event_id=synth.uuids(rng, n), lead_id="lead_id",
        activity_type=synth.take(ACTIVITIES, acts["kind"].to_numpy()),
        campaign_id=pl.when(pl.col("kind") == ACTIVITIES.index("PAGE_VIEW"))
        .then(None).otherwise(pl.col("campaign_id")),
        properties=pl.lit("{}"),
        occurred_at=synth.ms_to_dt(pl.col("at")),
        source_system=pl.lit("marketo"),
        correlation_id=pl.lit(None, pl.String),
        attributes=pl.lit("{}"),
    )
    lag = synth.lognormal_ms(rng, 60.0, 1.0, n)
    return synth.envelope(df, "ActivityRecorded",
                          observed_ms=pl.col("occurred_at").dt.epoch("ms") + pl.Series(lag))


def _scores(rng: np.random.Generator, spec: Spec, leads: pl.DataFrame,
            acts: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """LeadScored rows (one at capture, one more when a later activity moved the score) and
    the per-lead outcome: crossed when, MQL (crossed with complete context) when."""
    n = leads.height
    final = np.clip(np.rint(48 + 14 * leads["quality"].to_numpy() + rng.normal(0, 6, n)), 0, 100)
    lift = synth.take((0, 0, 5, 10, 15, 20), synth.pick(rng, range(6), n)).to_numpy()
    later = (
        acts.join(leads.select("i", "captured_ms"), on="i")
        .filter(pl.col("at") > pl.col("captured_ms"))
        .group_by("i").agg(second_ms=pl.col("at").min())
    )
    hr = acts.filter(pl.col("kind").is_in(HAND_RAISING)).group_by("i").agg(hr_ms=pl.col("at").min())
    df = leads.select("i", "lead_id", "captured_ms", "incomplete", "campaign_id",
                      "missing").with_columns(final=final, lift=lift)
    df = df.join(later, on="i", how="left").join(hr, on="i", how="left").with_columns(
        lift=pl.when(pl.col("second_ms").is_null()).then(0).otherwise(pl.col("lift")))
    df = df.with_columns(first=(pl.col("final") - pl.col("lift")).clip(0, 100).cast(pl.Int32),
                         final=pl.col("final").cast(pl.Int32))
    first_at = pl.col("captured_ms")
    df = df.with_columns(
        cross_ms=pl.when(pl.col("first") >= THRESHOLD).then(first_at)
        .when(pl.col("final") >= THRESHOLD).then(pl.col("second_ms")).otherwise(None),
    ).with_columns(
        mql_ms=pl.when(~pl.col("incomplete")).then(pl.col("cross_ms")),
        hand_raiser=pl.col("hr_ms").is_not_null()
        & (pl.col("hr_ms") <= pl.col("cross_ms").fill_null(0)),
    )
    rows = pl.concat([
        df.select("i", "lead_id", "incomplete", score="first", at=first_at),
        df.filter(pl.col("lift") > 0).select("i", "lead_id", "incomplete", score="final",
                                             at="second_ms"),
    ])
    versions = model_versions(spec)
    starts = pl.Series([v[2] for v in versions])
    which = starts.search_sorted(rows["at"], side="right") - 1
    complete = ~pl.col("incomplete")
    scored = rows.with_columns(
        model_version=synth.take([v[0] for v in versions], which.clip(0).to_numpy()),
    ).select(
        event_id=synth.uuids(rng, rows.height), lead_id="lead_id", score="score",
        probability=pl.col("score") / 100, model_version="model_version",
        threshold=pl.lit(THRESHOLD / 100), is_mql=(pl.col("score") >= THRESHOLD) & complete,
        context_complete=complete,
        top_factors=pl.concat_list(
            pl.struct(feature=pl.lit("base"), contribution=pl.lit(20.0)),
            pl.struct(feature=pl.lit("activity:PRICING_PAGE_VIEW"),
                      contribution=(pl.col("score") / 5).round(0)),
        ),
        occurred_at=synth.ms_to_dt(pl.col("at")), correlation_id=pl.lit(None, pl.String),
    )
    scored = synth.envelope(scored, "LeadScored",
                            observed_ms=pl.col("occurred_at").dt.epoch("ms") + 120)
    return scored, df


def generate(leads: int, *, seed: int = 7, days: int = 365,
             end: date = DEFAULT_END) -> dict[str, pl.DataFrame]:
    """Every archived record type as a frame in its archive schema (see ``layout.schema``)."""
    spec = Spec(leads, seed, days, end.isoformat())
    rng = np.random.default_rng(seed)
    people = _leads(rng, spec)
    people = people.with_columns(event_id_capture=synth.uuids(rng, people.height))
    acts = _activities(rng, people, spec.end_ms)
    scored, outcome = _scores(rng, spec, people, acts)
    frames = {
        "LeadCaptured": _captured(people),
        "ActivityRecorded": _activity_frame(rng, acts),
        "LeadScored": scored,
    }
    frames.update(sales.sales(rng, spec.end_ms, people, outcome))
    frames["DeadLetter"] = sales.dead_letters(rng, spec.end_ms, people)
    frames["ModelPublished"] = sales.models(rng, model_versions(spec), THRESHOLD)
    return frames


def write(root: Path, frames: dict[str, pl.DataFrame], *, source: str = "generated") -> None:
    for record, frame in frames.items():
        layout.write_frame(root, record, frame, source=source)


def ensure(root: Path, leads: int, *, seed: int = 7, days: int = 365) -> bool:
    """Make ``root`` hold the archive of (leads, seed, days), generating it only when it
    holds another one or none (its ``generated.json`` says which). True when generated."""
    spec = Spec(leads, seed, days)
    marker = root / MARKER
    if marker.exists() and json.loads(marker.read_text()) == asdict(spec):
        return False
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    write(root, generate(leads, seed=seed, days=days))
    marker.write_text(json.dumps(asdict(spec)))
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--out", type=Path, required=True, help="archive directory (replaced)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ensure(args.out, args.leads, seed=args.seed, days=args.days)
    events = sum(len(layout.files(args.out, r)) for r in layout.ARCHIVED.values())
    print(f"{args.leads} leads in {args.out} ({events} files) "
          f"in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
