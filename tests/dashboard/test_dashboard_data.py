"""The pieces under the pages: the generator, the vectorised threshold table, masking and the
audit log, the worker's stats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard import data, data_models, generate, privacy, timeline
from models import thresholds
from streams.archive import layout
from tests.dashboard.conftest import Small


def test_generator_is_deterministic_and_in_archive_schema() -> None:
    a, b = generate.generate(300, seed=5, days=30), generate.generate(300, seed=5, days=30)
    assert a.keys() == set(layout.ARCHIVED.values())
    for record, frame in a.items():
        assert frame.schema == layout.schema(record), record
        assert frame.equals(b[record]), record
    assert not generate.generate(300, seed=6, days=30)["LeadCaptured"].equals(a["LeadCaptured"])


def test_generated_story_holds(small: Small) -> None:
    """The bad campaigns breach the 30 % ceiling, the good ones do not; every MQL is routed."""
    a = data.Archive(small.root)
    by = data.marketing(a, data.Filters(), data.Commitments())["dq_by_campaign"]
    slug = pl.col("campaign_id").str.extract(r"q\d-(.+)$")
    rates = by.group_by(slug.alias("slug")).agg(
        rate=pl.col("disqualified").sum() / pl.col("mqls").sum())
    rate = dict(rates.iter_rows())
    assert rate["ebook-ai"] > 0.30 and rate["display-retarget"] > 0.30
    assert rate["search-brand"] < 0.30 and rate["webinar-b"] < 0.30
    calls = data.marketing(a, data.Filters(), data.Commitments())["calls"]
    stop = calls.filter(pl.col("call") == "stop")
    assert stop.height and (stop["dq_rate"] > 0.30).all() and (stop["mqls"] >= 20).all()
    down = calls.filter(pl.col("call") == "double down")
    assert down.height and (down["dq_rate"] <= 0.30).all()
    mqls = small.frames["LeadScored"].filter(pl.col("is_mql"))["lead_id"].unique()
    assert set(mqls) == set(small.frames["LeadRouted"]["lead_id"])


probabilities = st.lists(st.floats(0.0, 1.0), min_size=2, max_size=60)


@given(probabilities, st.data())
def test_threshold_rows_equal_models_thresholds_table(ps: list[float], draw: st.DataObject
                                                      ) -> None:
    labels = draw.draw(st.lists(st.sampled_from([0, 1, None]), min_size=len(ps),
                                max_size=len(ps)))
    times = [1_700_000_000_000 + 3_600_000 * i for i in range(len(ps))]
    frame = pl.DataFrame({
        "probability": ps, "label": pl.Series(labels, dtype=pl.Int8), "context_complete": True,
        "occurred_at": pl.Series(times).cast(pl.Datetime("ms", "UTC")),
    })
    got = data_models.threshold_rows(frame)
    want = thresholds.table(ps, float(times[-1] - times[0]), labels)
    for g, w in zip(got, want, strict=True):
        for key, value in w.as_dict().items():
            other = g.as_dict()[key]
            if value is None or other is None:
                assert value == other, key
            else:
                assert math.isclose(other, value, rel_tol=1e-9, abs_tol=1e-9), key


def test_identify_and_mask() -> None:
    anyone = privacy.identify({}, {}, "", ("*",))
    assert anyone.allowed and anyone.identity == privacy.ANONYMOUS
    nobody = privacy.identify({}, {"X-Forwarded-Email": "ops@x.io"}, "", ("ops@x.io",))
    assert not nobody.allowed  # the header is not trusted unless configured
    proxied = privacy.identify({}, {"x-forwarded-email": "Ops@X.io"}, "X-Forwarded-Email",
                               ("ops@x.io",))
    assert proxied.allowed and proxied.via == "header X-Forwarded-Email"
    logged = privacy.identify({"is_logged_in": True, "email": "dana@x.io"},
                              {"X-Forwarded-Email": "ops@x.io"}, "X-Forwarded-Email",
                              ("ops@x.io",))
    assert logged.identity == "dana@x.io" and not logged.allowed
    row = {"lead_id": "l1", "email": "dana.kim@acme.io", "first_name": "Dana", "phone": "+1 555"}
    assert privacy.masked(row, logged) == {"lead_id": "l1", "email": "d•••@acme.io",
                                           "first_name": "D•••", "phone": "•••55"}
    assert privacy.masked(row, proxied) == row
    assert privacy.mask_text(b'{"email":"x@y.z"}') == "(hidden: 17 bytes)"


def test_audit_log_has_no_personal_data(tmp_path: Path) -> None:
    viewer = privacy.Viewer("ops@x.io", "streamlit auth", True)
    log = tmp_path / "audit" / "log.jsonl"
    privacy.audit(log, viewer, "lead identity", "lead-1", "RevOps")
    privacy.audit(log, viewer, "lead identity", "lead-2", "RevOps")
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["subject"] for x in lines] == ["lead-1", "lead-2"]
    assert set(lines[0]) == {"at", "viewer", "via", "page", "what", "subject"}


def test_timeline_matches_the_trace_rules(small: Small) -> None:
    a = data.Archive(small.root)
    routed = small.frames["LeadRouted"]
    lead_id = routed["lead_id"][3]
    steps, summary = timeline.lead_timeline(a, lead_id)
    kinds = steps["step"].to_list()
    assert kinds[0] in ("CAPTURED", "ACTIVITY") and "ROUTED" in kinds and "SLA" in kinds
    assert steps["event_time"].is_sorted()
    # After routing, the wait before a touch or status change is on people.
    after = steps.filter(pl.col("event_time") > routed.filter(
        pl.col("lead_id") == lead_id)["occurred_at"][0])
    waits = after.filter(pl.col("step").is_in(["TOUCH", "STATUS_CHANGED"]))["waits_on"]
    assert waits.eq("human").all()
    assert summary["system_ms"] + summary["human_ms"] == summary["elapsed_ms"]
    assert timeline.find_leads(a, "no-such-lead").is_empty()


def test_worker_stats_shapes() -> None:
    stats = {"sla_clocks": {"0": {"event_time": 1_000, "waiting_for": ["crm.touches"]}},
             "consumer_lag": {"leads.captured": {"0": 5}}}
    clocks = data_models.worker_lag(stats, 31_000)
    assert clocks.row(0, named=True)["behind_s"] == 30.0
    assert data_models.consumer_lag(stats).rows() == [("leads.captured", "0", 5)]
    assert data_models.worker_lag(None, 0).is_empty()


@pytest.mark.parametrize("record", sorted(layout.ARCHIVED.values()))
def test_empty_archive_answers_empty(tmp_path: Path, record: str) -> None:
    a = data.Archive(tmp_path)
    assert a.scan(record).collect().is_empty()
    assert a.days() is None


def test_read_cache_gives_the_archive_rows(small: Small, tmp_path: Path) -> None:
    """Cached months and day files together are exactly the archive; a late file makes its
    month stale (read from the day files) until the next refresh."""
    import shutil
    from datetime import date

    from dashboard.readcache import ReadCache

    root = tmp_path / "archive"
    shutil.copytree(small.root, root)
    rc = ReadCache(root, tmp_path / "cache")
    record = "LeadRouted"

    def rows(lf: pl.LazyFrame) -> pl.DataFrame:
        return lf.select("event_id", "date").collect().sort("event_id")

    assert rows(rc.scan(record)).equals(rows(layout.scan(root, record)))  # nothing cached yet
    built = rc.refresh(record, today=date(2026, 10, 15))
    assert built >= 1 and rc.refresh(record, today=date(2026, 10, 15)) == 0
    assert rows(rc.scan(record)).equals(rows(layout.scan(root, record)))

    late = small.frames[record].head(3).with_columns(
        event_id=pl.Series(["late-1", "late-2", "late-3"]))
    layout.write_frame(root, record, late, source="late")
    assert rows(rc.scan(record)).equals(rows(layout.scan(root, record)))
    assert rc.refresh(record, today=date(2026, 10, 15)) >= 1
    assert rows(rc.scan(record)).equals(rows(layout.scan(root, record)))
    after = data.Archive(root, cache=tmp_path / "cache")
    f = data.Filters()
    assert data.revops(after, f)["by_owner"].equals(data.revops(data.Archive(root), f)["by_owner"])
