"""Every page through Streamlit's AppTest against a small generated archive: the numbers on
the page equal the ones computed here straight from the generated frames (not through
dashboard.data), the filters change them, and nothing raises."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from models import thresholds
from tests.dashboard.conftest import APP, Small

pytestmark = pytest.mark.usefixtures("app_env")


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at



def test_the_root_opens_marketing() -> None:
    """/ runs the first page (a bare AppTest run is a visit to the root). Each page's own URL,
    /marketing included, is checked in a real browser: tests/e2e/test_browser.py."""
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Marketing"]
def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def crossings(small: Small) -> pl.DataFrame:
    """Per lead: when its score first reached 60, and whether it was ever an MQL."""
    s = small.frames["LeadScored"]
    crossed = s.filter(pl.col("score") >= 60).group_by("lead_id").agg(
        at=pl.col("occurred_at").min())
    mql = s.filter(pl.col("is_mql")).select("lead_id").unique().with_columns(mql=pl.lit(True))
    return crossed.join(mql, on="lead_id", how="left").with_columns(pl.col("mql").fill_null(False))


def campaign_leads(small: Small, campaign: str) -> pl.Series:
    c = small.frames["LeadCaptured"]
    return c.filter(pl.col("attribution").struct.field("campaign_id") == campaign)["lead_id"]


def test_marketing_numbers_and_filters(small: Small) -> None:
    at = open_page("marketing")
    x = crossings(small)
    statuses = small.frames["LeadStatusChanged"]
    dq = statuses.filter(pl.col("new_status") == "DISQUALIFIED")["lead_id"].unique()
    mqls = x.filter(pl.col("mql"))
    rate = mqls["lead_id"].is_in(dq.implode()).sum() / mqls.height
    got = metrics(at)
    assert got["Leads that crossed"] == f"{x.height:,}"
    assert got["MQLs handed to sales"] == f"{mqls.height:,}"
    assert got["Disqualified share of MQLs"] == f"{rate:.1%}"

    campaign = (small.frames["LeadCaptured"].group_by(
        pl.col("attribution").struct.field("campaign_id")).len().sort("len")[-1, 0])
    at.multiselect(key="campaigns").set_value([campaign]).run()
    assert not at.exception
    kept = x.filter(pl.col("lead_id").is_in(campaign_leads(small, campaign).implode()))
    assert metrics(at)["Leads that crossed"] == f"{kept.height:,}"
    assert kept.height < x.height

    at.multiselect(key="campaigns").set_value([]).run()
    last = x["at"].max().date()  # type: ignore[union-attr]
    start = last - timedelta(days=19)
    at.date_input(key="dates").set_value((start, last)).run()
    assert not at.exception
    recent = x.filter(pl.col("at").dt.date() >= start)
    assert metrics(at)["Leads that crossed"] == f"{recent.height:,}"
    assert recent.height < x.height


def sales_verdicts(small: Small) -> pl.DataFrame:
    v = small.frames["SlaEvaluated"]
    return v.filter((pl.col("party") == "SALES") & pl.col("lead_id").is_not_null())


def test_revops_compliance_and_owner_filter(small: Small) -> None:
    at = open_page("revops")
    v = sales_verdicts(small)
    breached = v.filter(pl.col("verdict") == "BREACHED").height
    got = metrics(at)
    assert got["Final breaches"] == f"{breached:,}"
    assert got["Sales verdicts met"] == f"{(v.height - breached) / v.height:.1%}"
    assert got["Overdue now"] == "0" and got["Corrections"] == "0"  # the archive's are all final

    at.multiselect(key="owners").set_value(["rep-ben"]).run()
    assert not at.exception
    ben = v.filter(pl.col("owner_id") == "rep-ben")
    ben_breached = ben.filter(pl.col("verdict") == "BREACHED").height
    assert metrics(at)["Final breaches"] == f"{ben_breached:,}"
    assert 0 < ben_breached < breached


def a_routed_lead(small: Small) -> tuple[str, str, int]:
    """(lead id, email, how many steps its timeline must have)."""
    lead_id = small.frames["LeadRouted"]["lead_id"][0]
    email = small.frames["LeadCaptured"].filter(pl.col("lead_id") == lead_id)["email"][0]
    per_record = sum(f.filter(pl.col("lead_id") == lead_id).height
                     for name, f in small.frames.items() if "lead_id" in f.columns
                     and name != "DeadLetter")
    return lead_id, email, per_record + 1  # + the MQL step the first MQL score adds


def test_revops_lead_search_masks_personal_data(small: Small, app_env: Path) -> None:
    lead_id, email, steps = a_routed_lead(small)
    at = open_page("revops")
    at.text_input(key="lead_search").input(email.upper()).run()
    assert not at.exception, [e.value for e in at.exception]
    identity = at.dataframe[0].value
    assert identity["lead_id"][0] == lead_id
    assert identity["email"][0] != email and identity["email"][0].startswith(email[0] + "•••@")
    assert metrics(at)["Steps"] == str(steps)
    assert not app_env.exists()  # nothing unmasked, nothing to audit


def test_revops_allowed_viewer_sees_and_is_audited(
    small: Small, app_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_DASHBOARD_PII_VIEWERS", "ops@example.com")
    lead_id, email, _ = a_routed_lead(small)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.user = {"is_logged_in": True, "email": "ops@example.com"}
    at.run().switch_page("views/revops.py").run()
    at.text_input(key="lead_search").input(lead_id).run()
    assert not at.exception
    assert at.dataframe[0].value["email"][0] == email
    lines = [json.loads(x) for x in app_env.read_text().splitlines()]
    assert [(x["viewer"], x["subject"], x["page"]) for x in lines] == [
        ("ops@example.com", lead_id, "RevOps")]
    assert email not in app_env.read_text()


def test_data_team_threshold_explorer(small: Small) -> None:
    at = open_page("data_team")
    s = small.frames["LeadScored"].sort("occurred_at")
    latest = s.unique("lead_id", keep="last", maintain_order=True)
    statuses = small.frames["LeadStatusChanged"]
    pos = statuses.filter(pl.col("new_status").is_in(["SQL", "CLOSED_WON"]))["lead_id"]
    neg = statuses.filter(pl.col("new_status").is_in(["DISQUALIFIED", "BAD_FIT",
                                                      "CLOSED_LOST"]))["lead_id"]
    labelled = latest.filter(pl.col("lead_id").is_in(pl.concat([pos, neg]).implode()))
    got = metrics(at)
    assert got["Leads scored"] == f"{latest.height:,}"
    assert got["With an outcome (labelled)"] == f"{labelled.height:,}"

    eligible = latest.filter(pl.col("context_complete"))
    labels = [1 if lid in set(pos) else 0 if lid in set(neg) else None
              for lid in eligible["lead_id"]]
    window = (eligible["occurred_at"].max() - eligible["occurred_at"].min()).total_seconds()
    rows = thresholds.table(eligible["probability"].to_list(), window * 1000, labels)
    best = thresholds.recommend(rows)
    assert at.slider(key="threshold").value == best.threshold
    assert got["MQLs per month"] == f"{best.row.mqls_per_month:,.0f}"
    assert f"leadflow threshold apply {best.threshold}" in at.code[0].value

    higher = min(100, best.threshold + 10)
    at.slider(key="threshold").set_value(higher).run()
    assert not at.exception
    assert metrics(at)["MQLs per month"] == f"{rows[higher].mqls_per_month:,.0f}"
    assert rows[higher].mqls_per_month < best.row.mqls_per_month


def test_pipeline_without_worker(small: Small) -> None:
    at = open_page("pipeline")
    got = metrics(at)
    assert got["Events archived"] == f"{sum(f.height for f in small.frames.values()):,}"
    assert got["Dead letters"] == f"{small.frames['DeadLetter'].height:,}"
    assert any("No worker answers" in w.value for w in at.warning)
    samples = next(d.value for d in at.dataframe if "original_value" in d.value.columns)
    assert samples["original_value"].str.startswith("(hidden:").all()

    last = max(f["_event_time"].max() for f in small.frames.values()).date()
    start = last - timedelta(days=6)
    at.date_input(key="dates").set_value((start, last)).run()
    assert not at.exception
    week = sum(f.filter(pl.col("_event_time").dt.date() >= start).height
               for f in small.frames.values())
    letters = small.frames["DeadLetter"].filter(pl.col("observed_at").dt.date() >= start)
    assert metrics(at)["Events archived"] == f"{week:,}"
    assert metrics(at)["Dead letters"] == f"{letters.height:,}"


@pytest.mark.parametrize("page", ["marketing", "revops", "data_team", "pipeline"])
def test_pages_on_an_empty_archive(page: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the first event is archived every page still opens and says so."""
    monkeypatch.setenv("LEADFLOW_ARCHIVE_DIR", str(tmp_path / "nothing-yet"))
    at = open_page(page)
    assert any("No archive yet" in i.value for i in at.sidebar.info)
