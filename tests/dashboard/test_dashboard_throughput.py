"""Events per second on the Pipeline health page are counted in the clock events arrive by
(``_timestamp``, when leadflow received them), not in event time: a demo that compresses
60 days of a funnel into two minutes shows the rate it ran at, per second of wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import data_models, generate
from dashboard.data import Archive, Filters
from tests.dashboard.conftest import APP, Small

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # the demo's wall clock, 2 minutes of it
SECONDS = 120


@pytest.fixture(scope="module")
def demo(small: Small, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    """The small archive as a compressed demo would leave it: the same events (event times
    over 60 days), all received within two minutes; and every arrival time."""
    arrived = pl.concat([f.select("_timestamp") for f in small.frames.values()])
    lo, hi = arrived["_timestamp"].min(), arrived["_timestamp"].max()
    scale = SECONDS * 1000 / (hi - lo).total_seconds()  # type: ignore[operator]

    def squeeze(ts: pl.Expr) -> pl.Expr:
        ms = ((ts - pl.lit(lo)).dt.total_milliseconds() / 1000 * scale).cast(pl.Int64)
        return pl.lit(START) + pl.duration(milliseconds=ms)

    frames = {r: f.with_columns(squeeze(pl.col("_timestamp")).cast(f["_timestamp"].dtype)
                                .alias("_timestamp"))
              for r, f in small.frames.items()}
    root = tmp_path_factory.mktemp("demo") / "archive"
    generate.write(root, frames)
    return root, pl.concat([f.select("_timestamp") for f in frames.values()])


def test_events_per_second_of_arrival(demo: tuple[Path, pl.DataFrame]) -> None:
    root, arrived = demo
    tp = data_models.throughput(Archive(root), Filters())
    # Buckets are seconds of the demo's wall clock, not days of event time.
    assert tp["at"].min() == START
    assert tp["at"].max() <= START + timedelta(seconds=SECONDS)  # type: ignore[operator]
    assert tp["bucket_s"].unique().to_list() == [1]
    assert int(tp["events"].sum()) == arrived.height
    per_second = arrived.group_by(pl.col("_timestamp").dt.truncate("1s")).len()
    totals = tp.group_by("at").agg(pl.col("per_s").sum())
    assert totals["per_s"].max() == per_second["len"].max()
    # The whole archive in two minutes: well over an event a second, on average and at peak.
    assert totals["per_s"].max() >= arrived.height / (SECONDS + 1) > 10  # type: ignore[operator]


def test_a_long_run_is_counted_per_hour_or_day_of_arrival(small: Small) -> None:
    """The generated archive arrived over 60 days (as if live): days of arrival time."""
    tp = data_models.throughput(Archive(small.root), Filters())
    assert tp["bucket_s"].unique().to_list() == [86_400]
    arrived = pl.concat([f.select("_timestamp") for f in small.frames.values()])
    per_day = arrived.group_by(pl.col("_timestamp").dt.truncate("1d")).len()
    assert tp.group_by("at").agg(pl.col("events").sum())["events"].sort().to_list() == (
        per_day["len"].sort().to_list())


def test_the_page_shows_the_arrival_rate(demo: tuple[Path, pl.DataFrame], app_env: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root, arrived = demo
    monkeypatch.setenv("LEADFLOW_ARCHIVE_DIR", str(root))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    at.switch_page("views/pipeline.py").run()
    assert not at.exception, [e.value for e in at.exception]
    peak = arrived.group_by(pl.col("_timestamp").dt.truncate("1s")).len()["len"].max()
    got = {m.label: m.value for m in at.metric}
    assert got["Peak arrival rate, events/s (per second)"] == f"{peak:,.3g}"
    assert any("wall clock" in s.value for s in at.subheader)
