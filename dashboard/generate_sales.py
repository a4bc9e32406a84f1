"""The sales half of the synthetic archive: routing, touches, status changes, SLA verdicts,
plus dead letters and published models. See ``generate`` for the story."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from dashboard import synth
from dashboard.synth import DAY_MS, HOUR_MS, MINUTE_MS
from streams.core.durations import format_duration
from streams.simulate import catalog as C

GRACE_MS = MINUTE_MS
STATUS_EVERY_MS = 48 * HOUR_MS
WINDOW_MS = {"HAND_RAISER": 15 * MINUTE_MS, "STANDARD": 24 * HOUR_MS}
CONTRACT = "2026-11"
TERMINAL = ("DISQUALIFIED", "CLOSED_WON", "CLOSED_LOST")
# (rep id, regions, median first touch in minutes, diligence, share of DQs without reason)
REPS = tuple((f"rep-{name}", regions, median, diligence, no_reason)
             for name, regions, median, diligence, no_reason in C.REP_PERSONAS)
DESK = ("rep-desk", (), 20.0, 0.9, 0.05)
# Reasons sales gives, by campaign: the bad campaigns' leads are students and tyre-kickers.
REASONS_BY_SLUG = {"ebook-ai": (5, 3, 1, 1), "display-retarget": (7, 3, 1, 6)}
REASON_CHOICES = ("student_or_job_seeker", "no_project", "not_decision_maker",
                  "bad_contact_data")


def _assign(rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    """Index into REPS + (DESK,) per lead, -1 when nobody could take it (queued)."""
    n = region.size
    out = np.full(n, -1)
    u = rng.random(n)
    for r_i, name in enumerate(C.REGIONS):
        pool = [k for k, rep in enumerate(REPS) if name in rep[1]]
        rows = region == r_i
        out[rows] = np.asarray(pool)[(u[rows] * len(pool)).astype(int)]
    roll = rng.random(n)
    out[roll < 0.12] = len(REPS)
    out[roll < 0.03] = -1
    return out


def _routed(rng: np.random.Generator, people: pl.DataFrame, outcome: pl.DataFrame,
            end: int) -> pl.DataFrame:
    mql = outcome.filter(pl.col("mql_ms").is_not_null()).join(
        people.select("i", "region_i", "size_i", "camp", "quality", "region", "slug"), on="i")
    mql = mql.with_columns(routed_ms=pl.col("mql_ms") + pl.Series(
        synth.lognormal_ms(rng, 300.0, 0.8, mql.height))).filter(pl.col("routed_ms") <= end)
    rep = _assign(rng, mql["region_i"].to_numpy())
    staff = (*REPS, DESK)
    ids = synth.take([s[0] for s in staff] + [None], np.where(rep < 0, len(staff), rep))
    median = np.array([s[2] for s in staff] + [600.0])[rep]
    diligence = np.array([s[3] for s in staff] + [0.5])[rep]
    no_reason = np.array([s[4] for s in staff] + [0.2])[rep]
    tier = pl.when(pl.col("hand_raiser")).then(pl.lit("HAND_RAISER")).otherwise(pl.lit("STANDARD"))
    rule = (pl.when(pl.col("hand_raiser")).then(pl.lit("hand-raisers"))
            .when(pl.col("size_i") >= 4).then(pl.lit("enterprise")).otherwise(pl.lit("territory")))
    return mql.with_columns(owner_id=ids, median_min=median, diligence=diligence,
                            no_reason=no_reason, tier=tier, rule=rule)


def _routed_frame(rng: np.random.Generator, r: pl.DataFrame) -> pl.DataFrame:
    due = pl.col("routed_ms") + pl.when(pl.col("tier") == "HAND_RAISER").then(
        WINDOW_MS["HAND_RAISER"]).otherwise(WINDOW_MS["STANDARD"])
    df = r.select(
        event_id=synth.uuids(rng, r.height), lead_id="lead_id", owner_id="owner_id",
        queue=pl.when(pl.col("rule") == "hand-raisers").then(pl.lit("hand-raiser-queue"))
        .otherwise(pl.lit("unassigned")),
        rule="rule",
        candidates=pl.when(pl.col("owner_id").is_null()).then(pl.lit([], pl.List(pl.String)))
        .otherwise(pl.concat_list("owner_id")),
        tier="tier", first_touch_due_at=synth.ms_to_dt(due),
        next_status_update_due_at=synth.ms_to_dt(pl.col("routed_ms") + STATUS_EVERY_MS),
        occurred_at=synth.ms_to_dt(pl.col("routed_ms")), correlation_id=pl.lit(None, pl.String),
    )
    return synth.envelope(df, "LeadRouted", observed_ms=pl.col("occurred_at").dt.epoch("ms") + 5)


def _touches(rng: np.random.Generator, r: pl.DataFrame, end: int) -> pl.DataFrame:
    owned = r.filter(pl.col("owner_id").is_not_null())
    n = owned.height
    touched = rng.random(n) < 0.7 + 0.25 * owned["diligence"].to_numpy()
    hr = (owned["tier"] == "HAND_RAISER").to_numpy()
    median = owned["median_min"].to_numpy() * np.where(hr, 0.3, 1.0) * MINUTE_MS
    first = owned["routed_ms"].to_numpy() + synth.lognormal_ms(rng, median, 1.1, n)
    count = np.where(touched, 1 + np.minimum(rng.poisson(1.0, n), 4), 0)
    who = np.repeat(np.arange(n), count)
    nth = np.arange(who.size) - np.repeat(np.cumsum(count) - count, count)
    at = first[who] + (nth * rng.exponential(1.5, who.size) * DAY_MS).astype(np.int64)
    keep = at <= end
    return pl.DataFrame({"k": who[keep], "at": at[keep]}).join(
        owned.with_row_index("k").select(pl.col("k").cast(pl.Int64), "i", "lead_id",
                                         "owner_id"), on="k")


def _touch_frame(rng: np.random.Generator, t: pl.DataFrame) -> pl.DataFrame:
    n = t.height
    df = t.select(
        event_id=synth.uuids(rng, n), lead_id="lead_id", touch_id=synth.uuids(rng, n),
        rep_id="owner_id",
        channel=synth.take(("CALL", "EMAIL", "MEETING", "SMS", "SOCIAL"),
                           synth.pick(rng, range(5), n, (45, 35, 8, 5, 7))),
        outcome=synth.take(("CONNECTED", "VOICEMAIL", "NO_ANSWER", "REPLIED", "SCHEDULED"),
                           synth.pick(rng, range(5), n, (30, 25, 25, 12, 8))),
        occurred_at=synth.ms_to_dt(pl.col("at")), source_system=pl.lit("salesforce"),
        correlation_id=pl.lit(None, pl.String),
    )
    return synth.envelope(df, "SalesTouchLogged",
                          observed_ms=pl.col("occurred_at").dt.epoch("ms") + 900)


def _statuses(rng: np.random.Generator, r: pl.DataFrame, touches: pl.DataFrame,
              end: int) -> pl.DataFrame:
    """Each touched lead's path: WORKING, then disqualified, or SAL → SQL → won/lost, or no
    response. Careless reps leave long gaps (status-update breaches)."""
    first = touches.group_by("i").agg(ft=pl.col("at").min())
    w = r.join(first, on="i").sort("i")
    n = w.height
    q = w["quality"].to_numpy()
    slack = np.where(rng.random(n) > w["diligence"].to_numpy(), 4.0, 1.0)
    slug = w["slug"].to_numpy()
    bad = np.isin(slug, list(REASONS_BY_SLUG))
    p_dq = 1 / (1 + np.exp(0.9 * (q - 1.0) + 1.0 - np.where(bad, 1.2, 0.0)))
    roll = rng.random(n)
    path = np.where(roll < p_dq, 0, np.where(rng.random(n) < 0.7, 1, 2))  # DQ, SAL…, none
    t_work = w["ft"].to_numpy() + synth.lognormal_ms(rng, 2 * HOUR_MS, 1.0, n)

    def later(t: np.ndarray, days: float) -> np.ndarray:
        return t + (rng.exponential(days, n) * slack * DAY_MS).astype(np.int64)

    t_next = later(t_work, 0.5)
    t_sql = later(t_next, 0.6)
    t_close = later(t_sql, 0.7)
    sql = rng.random(n) < 0.6
    won = rng.random(n) < 0.45
    reasons_general = synth.pick(rng, C.DQ_REASONS, n)
    reasons_bad = synth.pick(rng, REASON_CHOICES, n, (5, 3, 1, 3))
    reason = np.where(bad, -1 - reasons_bad, reasons_general)
    without = rng.random(n) < w["no_reason"].to_numpy()
    rows = [(np.arange(n), t_work, "WORKING", "MQL")]
    dq = path == 0
    rows.append((np.flatnonzero(dq), t_next[dq], "DISQUALIFIED", "WORKING"))
    sal = path == 1
    rows.append((np.flatnonzero(sal), t_next[sal], "SAL", "WORKING"))
    s2 = sal & sql
    rows.append((np.flatnonzero(s2), t_sql[s2], "SQL", "SAL"))
    rows.append((np.flatnonzero(s2 & won), t_close[s2 & won], "CLOSED_WON", "SQL"))
    rows.append((np.flatnonzero(s2 & ~won), t_close[s2 & ~won], "CLOSED_LOST", "SQL"))
    nores = path == 2
    rows.append((np.flatnonzero(nores), t_next[nores], "NO_RESPONSE", "WORKING"))
    parts = [pl.DataFrame({"k": k, "at": at, "new_status": new, "previous_status": prev})
             for k, at, new, prev in rows]
    s = pl.concat(parts).filter(pl.col("at") <= end)
    reason_text = [*C.DQ_REASONS, *reversed(REASON_CHOICES)]
    meta = pl.DataFrame({"k": np.arange(n), "reason_i": np.where(reason < 0, len(reason_text)
                                                                   + reason, reason),
                         "without": without})
    return s.join(meta, on="k").join(
        w.with_row_index("k").select(pl.col("k").cast(pl.Int64), "i", "lead_id", "owner_id",
                                     "routed_ms", "tier", "campaign_id"), on="k",
    ).with_columns(
        reason=pl.when((pl.col("new_status") == "DISQUALIFIED") & ~pl.col("without"))
        .then(pl.col("reason_i").replace_strict(dict(enumerate(reason_text)),
                                                return_dtype=pl.String)),
    )


def _status_frame(rng: np.random.Generator, s: pl.DataFrame) -> pl.DataFrame:
    n = s.height
    note = synth.take(C.DQ_NOTES, synth.pick(rng, C.DQ_NOTES, n))
    df = s.with_columns(note=note).select(
        event_id=synth.uuids(rng, n), lead_id="lead_id", previous_status="previous_status",
        new_status="new_status", disqualification_reason="reason",
        sales_notes=pl.when(pl.col("reason").is_not_null()).then(pl.col("note")),
        updated_by="owner_id", occurred_at=synth.ms_to_dt(pl.col("at")),
        source_system=pl.lit("salesforce"), correlation_id=pl.lit(None, pl.String),
    )
    return synth.envelope(df, "LeadStatusChanged",
                          observed_ms=pl.col("occurred_at").dt.epoch("ms") + 1500)


def _fmt(ms: pl.Expr) -> pl.Expr:
    return ms.map_elements(format_duration, return_dtype=pl.String)


def _verdicts(r: pl.DataFrame, touches: pl.DataFrame, s: pl.DataFrame, outcome: pl.DataFrame,
              end: int) -> pl.DataFrame:
    """One verdict per clause and lead, as the SLA core judges them (see core/sla.py)."""
    base = ["i", "lead_id", "owner_id", "tier", "campaign_id"]
    v = []
    owner = r.select(*base, clause=pl.lit("OWNER_ASSIGNED"),
                     verdict=pl.when(pl.col("owner_id").is_null()).then(pl.lit("BREACHED"))
                     .otherwise(pl.lit("MET")), deadline="routed_ms",
                     met_at=pl.when(pl.col("owner_id").is_not_null()).then(pl.col("routed_ms")),
                     at="routed_ms",
                     detail=pl.when(pl.col("owner_id").is_null())
                     .then(pl.lit("no rep could take the lead"))
                     .otherwise(pl.format("assigned to {}", pl.col("owner_id"))))
    v.append(owner)
    first = touches.group_by("i").agg(ft=pl.col("at").min())
    window = pl.when(pl.col("tier") == "HAND_RAISER").then(WINDOW_MS["HAND_RAISER"]).otherwise(
        WINDOW_MS["STANDARD"])
    ft = r.join(first, on="i", how="left").with_columns(due=pl.col("routed_ms") + window,
                                                        win=window)
    met = pl.col("ft") <= pl.col("due")
    late = pl.col("ft") <= pl.col("due") + GRACE_MS
    v.append(ft.filter(met | (pl.col("due") + GRACE_MS <= end)).select(
        *base, clause=pl.lit("FIRST_TOUCH"),
        verdict=pl.when(met).then(pl.lit("MET")).otherwise(pl.lit("BREACHED")),
        deadline="due", met_at=pl.when(late).then(pl.col("ft")),
        at=pl.when(late).then(pl.col("ft")).otherwise(pl.col("due")),
        detail=pl.when(met).then(pl.format("first touch after {} (window {})",
                                           _fmt(pl.col("ft") - pl.col("routed_ms")),
                                           _fmt(pl.col("win"))))
        .when(late).then(pl.format("first touch {} late (window {})",
                                   _fmt(pl.col("ft") - pl.col("due")), _fmt(pl.col("win"))))
        .otherwise(pl.format("no touch within {}", _fmt(pl.col("win")))),
    ))
    v.append(_status_verdicts(r, s, end, base))
    dq = s.filter(pl.col("new_status") == "DISQUALIFIED")
    v.append(dq.select(
        *base, clause=pl.lit("DISQUALIFICATION_REASON"),
        verdict=pl.when(pl.col("reason").is_null()).then(pl.lit("BREACHED"))
        .otherwise(pl.lit("MET")), deadline=pl.lit(None, pl.Int64),
        met_at=pl.when(pl.col("reason").is_not_null()).then(pl.col("at")), at="at",
        detail=pl.when(pl.col("reason").is_null()).then(pl.lit("missing: reason, notes"))
        .otherwise(pl.lit("reason and notes given")),
    ))
    cols = [*base, "clause", "verdict", "deadline", "met_at", "at", "detail"]
    sales = pl.concat([x.select(cols).with_columns(pl.col("deadline").cast(pl.Int64),
                                                   pl.col("met_at").cast(pl.Int64)) for x in v])
    sales = sales.with_columns(party=pl.lit("SALES"))
    crossed = outcome.filter(pl.col("cross_ms").is_not_null())
    context = crossed.select(
        "i", "lead_id", owner_id=pl.lit(None, pl.String), tier=pl.lit(None, pl.String),
        campaign_id="campaign_id", clause=pl.lit("CONTEXT_COMPLETE"),
        verdict=pl.when(pl.col("incomplete")).then(pl.lit("BREACHED")).otherwise(pl.lit("MET")),
        deadline=pl.lit(None, pl.Int64),
        met_at=pl.when(~pl.col("incomplete")).then(pl.col("cross_ms")), at="cross_ms",
        detail=pl.when(pl.col("incomplete")).then(pl.format("missing: {}", pl.col("missing")))
        .otherwise(pl.lit("context complete")), party=pl.lit("MARKETING"),
    )
    return pl.concat([sales, context.select(sales.columns)])


def _status_verdicts(r: pl.DataFrame, s: pl.DataFrame, end: int, base: list[str]
                     ) -> pl.DataFrame:
    """STATUS_UPDATE: every update within 48 h of the previous one (or of routing) until a
    terminal status (MET); the first gap over it is the breach."""
    chain = s.sort("i", "at").with_columns(
        prev=pl.col("at").shift(1).over("i").fill_null(pl.col("routed_ms")))
    chain = chain.with_columns(due=pl.col("prev") + STATUS_EVERY_MS)
    late = chain.filter(pl.col("at") > pl.col("due") + GRACE_MS).group_by("i").agg(
        pl.all().sort_by("at").first())
    every = format_duration(STATUS_EVERY_MS)
    breach_late = late.select(
        *base, deadline="due", met_at="at", at="at",
        detail=pl.format("status update {} late (every {})", _fmt(pl.col("at") - pl.col("due")),
                         pl.lit(every)), verdict=pl.lit("BREACHED"))
    rest = r.join(late.select("i"), on="i", how="anti")
    last = chain.group_by("i").agg(pl.all().sort_by("at").last())
    rest = rest.join(last.select("i", "new_status", last_at="at"), on="i", how="left")
    rest = rest.with_columns(due=pl.col("last_at").fill_null(pl.col("routed_ms")) + STATUS_EVERY_MS)
    terminal = pl.col("new_status").is_in(TERMINAL)
    done = rest.filter(terminal).select(
        *base, deadline="due", met_at="last_at", at="last_at",
        detail=pl.format("{} with every update within {}", pl.col("new_status"), pl.lit(every)),
        verdict=pl.lit("MET"))
    silent = rest.filter(~terminal.fill_null(False) & (pl.col("due") + GRACE_MS <= end)).select(
        *base, deadline="due", met_at=pl.lit(None, pl.Int64), at="due",
        detail=pl.lit(f"no status update within {every}"), verdict=pl.lit("BREACHED"))
    out = pl.concat([breach_late, done, silent], how="diagonal_relaxed")
    return out.with_columns(clause=pl.lit("STATUS_UPDATE"))


def _verdict_frame(rng: np.random.Generator, v: pl.DataFrame) -> pl.DataFrame:
    n = v.height
    lag = pl.Series(synth.lognormal_ms(rng, 1500.0, 1.0, n))
    df = v.select(
        event_id=synth.uuids(rng, n), lead_id="lead_id", party="party", clause="clause",
        verdict="verdict", deadline=synth.ms_to_dt(pl.col("deadline")),
        met_at=synth.ms_to_dt(pl.col("met_at")), evaluated_at=synth.ms_to_dt(pl.col("at")),
        owner_id="owner_id", tier="tier", campaign_id="campaign_id",
        contract_version=pl.lit(CONTRACT), detail="detail",
        occurred_at=synth.ms_to_dt(pl.col("at") + lag), correlation_id=pl.lit(None, pl.String),
        status=pl.lit("FINAL"), revision=pl.lit(1, pl.Int32),
        verdict_key=pl.format("{}/{}", "lead_id", "clause"), supersedes=pl.lit(None, pl.String),
        late_source=pl.lit(None, pl.String), late_by_ms=pl.lit(None, pl.Int64),
    )
    return synth.envelope(df, "SlaEvaluated", observed_ms=pl.col("occurred_at").dt.epoch("ms"))


def sales(rng: np.random.Generator, end: int, people: pl.DataFrame,
          outcome: pl.DataFrame) -> dict[str, pl.DataFrame]:
    r = _routed(rng, people, outcome, end)
    touches = _touches(rng, r, end)
    statuses = _statuses(rng, r, touches, end)
    verdicts = _verdicts(r, touches, statuses, outcome, end)
    return {
        "LeadRouted": _routed_frame(rng, r),
        "SalesTouchLogged": _touch_frame(rng, touches),
        "LeadStatusChanged": _status_frame(rng, statuses),
        "SlaEvaluated": _verdict_frame(rng, verdicts),
    }


DEAD_CODES = ("MISSING_FIELD", "INVALID_EMAIL", "INVALID_ENUM", "BAD_ENCODING",
              "TIMESTAMP_ABSURD", "CONSENT_MISSING", "UNKNOWN_SCHEMA", "INTERNAL")
DEAD_WEIGHTS = (30, 20, 15, 10, 8, 10, 4, 1)
DEAD_FIELD = ("company_name", "email", "new_status", None, "occurred_at", "consent", None, None)
DEAD_DETAIL = ("company_name is required and may not be blank",
               "not a valid email address: the domain name is invalid",
               "'Maybe Later' is not a known lead status",
               "not Confluent framing: the first byte is 0x7b, expected 0",
               "occurred_at is before 2000-01-01", "a lead needs consent with a lawful basis",
               "schema id 999 is not registered", "KeyError: 'steps'")
DEAD_TOPIC = (0, 0, 2, 1, 1, 0, 3, 1)


def dead_letters(rng: np.random.Generator, end: int, people: pl.DataFrame) -> pl.DataFrame:
    """About one inbound event in a hundred is rejected; each keeps its original bytes (a
    rejected lead's JSON carries its email and names: personal data the dashboard masks)."""
    n = max(1, people.height // 8)
    src = people.sample(n, with_replacement=True, seed=int(rng.integers(1 << 31)))
    code = synth.pick(rng, DEAD_CODES, n, DEAD_WEIGHTS)
    topics = ("leads.captured", "leads.activity", "crm.status-changed", "crm.touches")
    at = np.minimum(src["captured_ms"].to_numpy() + rng.integers(0, HOUR_MS, n), end)
    body = pl.concat_str(
        pl.lit('{"leadId":"'), "lead_id", pl.lit('","email":"'), "email",
        pl.lit('","firstName":"'), "first_name", pl.lit('","lastName":"'), "last_name",
        pl.lit('"}'))
    df = src.with_columns(code=code, at=at).select(
        event_id=synth.uuids(rng, n),
        error_code=synth.take(DEAD_CODES, code), detail=synth.take(DEAD_DETAIL, code),
        field=synth.take(DEAD_FIELD, code),
        source_topic=synth.take(topics, np.asarray(DEAD_TOPIC)[code]),
        source_partition=pl.lit(0, pl.Int32), source_offset=pl.int_range(pl.len()),
        original_key=pl.col("lead_id").cast(pl.Binary), original_value=body.cast(pl.Binary),
        observed_at=synth.ms_to_dt(pl.col("at")), correlation_id=pl.lit(None, pl.String),
        lead_id="lead_id",
    )
    out = synth.envelope(df, "DeadLetter", observed_ms=pl.col("observed_at").dt.epoch("ms"))
    return out


def models(rng: np.random.Generator, versions: list[tuple[str, str, int]],
           threshold: int) -> pl.DataFrame:
    rows = []
    for k, (version, kind, at) in enumerate(versions):
        auc = 0.60 + 0.07 * k
        weights = {"industry:SaaS": 0.4 + 0.05 * k, "size:SIZE_51_200": 0.3,
                   "title:VP Engineering": 0.5, "activity:PRICING_PAGE_VIEW": 0.35 + 0.1 * k,
                   "trigger:downloaded_ebook_ai": -0.6 - 0.1 * k, "title:Student": -1.2,
                   "region:LATAM": -0.25, "hand_raiser": 0.9}
        if kind == "POINTS":
            weights = {"base": 20.0, "industry:SaaS": 10.0, "title:VP Engineering": 10.0,
                       "activity:PRICING_PAGE_VIEW": 10.0, "trigger:downloaded_ebook_ai": -5.0,
                       "title:Student": -20.0, "hand_raiser": 25.0}
        rows.append({
            "event_id": str(synth.uuids(rng, 1)[0]), "model_version": version, "kind": kind,
            "created_at": at, "features": sorted(weights), "weights": json.dumps(weights,
                                                                               sort_keys=True),
            "intercept": -1.5, "threshold": threshold / 100,
            "metrics": json.dumps({"roc_auc": auc, "pr_auc": auc - 0.25, "brier": 0.16 - 0.01 * k,
                                   "ece": 0.03, "positives": 400.0 * (k + 1),
                                   "negatives": 1200.0 * (k + 1)}, sort_keys=True),
            "artifact_sha256": None, "training_window_start": None,
            "training_window_end": at, "occurred_at": at, "lead_id": "model",
        })
    df = pl.DataFrame(rows).with_columns(
        synth.ms_to_dt(pl.col(c)) for c in ("created_at", "training_window_end", "occurred_at"))
    df = df.with_columns(training_window_start=pl.lit(None, pl.Datetime("ms", "UTC")))
    return synth.envelope(df.drop("lead_id").with_columns(model=pl.lit("scoring")),
                          "ModelPublished", key="model",
                          observed_ms=pl.col("occurred_at").dt.epoch("ms"))
