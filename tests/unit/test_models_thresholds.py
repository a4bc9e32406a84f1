"""Threshold maths by hand, the recommendation and its compromises, monotonicity, and the
recorded, versioned apply."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import thresholds as th
from models.scorer import LinearModel
from streams.core.features import new_features

P = [0.9, 0.7, 0.5, 0.2]
Y = [1, 0, 1, None]  # the last lead was never handed over


def rows(window: float = th.MONTH_MS) -> list[th.Row]:
    return th.table(P, window, Y)


def test_table_by_hand() -> None:
    t = rows()
    assert len(t) == 101 and [r.threshold for r in t] == list(range(101))
    r0 = t[0]
    assert (r0.leads, r0.labelled) == (4, 3)
    assert r0.mqls_per_month == pytest.approx(4)
    assert r0.dq_rate == pytest.approx(1 - 2.3 / 4)
    assert r0.conversions_per_month == pytest.approx(2.3)
    assert r0.precision == pytest.approx(2 / 3) and r0.recall == 1.0
    assert dataclasses.replace(t[20], threshold=0) == t[0]  # 0.2 scores 20: still in
    r21 = t[21]
    assert (r21.leads, r21.dq_rate, r21.precision) == (3, pytest.approx(0.3), pytest.approx(2 / 3))
    r51 = t[51]
    assert (r51.leads, r51.dq_rate, r51.precision, r51.recall) == (
        2, pytest.approx(0.2), 0.5, 0.5)
    r71 = t[71]
    assert (r71.leads, r71.dq_rate, r71.precision, r71.recall) == (1, pytest.approx(0.1), 1.0, 0.5)
    r91 = t[91]
    assert (r91.leads, r91.dq_rate, r91.precision, r91.recall) == (0, None, None, 0.0)
    assert r91.mqls_per_month == 0.0


def test_volume_scales_with_the_window() -> None:
    two_months = th.table(P, 2 * th.MONTH_MS)
    assert two_months[0].mqls_per_month == pytest.approx(2)
    assert two_months[0].conversions_per_month == pytest.approx(1.15)
    assert two_months[0].precision is None and two_months[0].recall is None  # no labels
    with pytest.raises(ValueError, match="window"):
        th.table(P, 0)
    with pytest.raises(ValueError, match="same length"):
        th.table(P, th.MONTH_MS, [1])


def test_recommend_the_highest_that_meets_everything() -> None:
    rec = th.recommend(rows(), min_mqls_per_month=2, max_dq_rate=0.3)
    assert (rec.threshold, rec.satisfied, rec.failing) == (70, True, ())
    assert "highest threshold" in rec.reason
    # Capacity is an upper bound on volume: 2/month still fits a capacity of 2.
    assert th.recommend(rows(), min_mqls_per_month=1, max_dq_rate=0.3,
                        capacity_per_month=2).threshold == 90


def test_compromise_quality_or_volume() -> None:
    quality = th.recommend(rows(), min_mqls_per_month=3, max_dq_rate=0.25)
    assert (quality.threshold, quality.satisfied, quality.failing) == (51, False, ("min_mqls",))
    assert ">= 3 MQLs/month cannot hold" in quality.reason
    volume = th.recommend(rows(), min_mqls_per_month=3, max_dq_rate=0.25, prefer="volume")
    assert (volume.threshold, volume.failing) == (50, ("max_dq_rate",))
    assert "DQ rate <= 25% cannot hold" in volume.reason


def test_capacity_is_kept_first() -> None:
    rec = th.recommend(rows(), min_mqls_per_month=2, max_dq_rate=0.3, capacity_per_month=1)
    assert (rec.threshold, rec.failing) == (71, ("min_mqls",))
    tiny = th.recommend(rows(), min_mqls_per_month=2, capacity_per_month=0.5)
    assert tiny.threshold == 91 and set(tiny.failing) == {"min_mqls", "max_dq_rate"}
    assert "within sales capacity" in tiny.reason
    none = th.recommend(rows(), capacity_per_month=-1)
    assert none.threshold == 100 and "capacity" in none.failing
    with pytest.raises(ValueError, match="no scored leads"):
        th.recommend(th.table([], th.MONTH_MS))


def test_what_changes_if_applied() -> None:
    delta = th.changes(rows(), current=50, proposed=70)
    assert delta["mqls_per_month"]["delta"] == pytest.approx(-1)
    assert delta["dq_rate"]["delta"] == pytest.approx(0.2 - 0.3)
    assert delta["precision"] == {"current": pytest.approx(2 / 3), "proposed": 0.5,
                                  "delta": pytest.approx(0.5 - 2 / 3)}
    assert th.changes(rows(), 50, 95)["dq_rate"]["delta"] is None
    with pytest.raises(ValueError):
        th.changes(rows(), 50, 101)


probabilities = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(ps=probabilities, data=st.data())
def test_monotone_in_the_threshold(ps: list[float], data: st.DataObject) -> None:
    labels = data.draw(st.lists(st.sampled_from([0, 1, None]), min_size=len(ps),
                                max_size=len(ps)))
    t = th.table(ps, th.MONTH_MS, labels)
    for lo, hi in zip(t, t[1:], strict=False):
        assert hi.mqls_per_month <= lo.mqls_per_month
        assert hi.conversions_per_month <= lo.conversions_per_month + 1e-9
        if hi.dq_rate is not None:
            assert lo.dq_rate is not None and hi.dq_rate <= lo.dq_rate + 1e-9
        if hi.recall is not None:
            assert lo.recall is not None and hi.recall <= lo.recall
    assert t[0].leads == len(ps)
    floor, ceiling = data.draw(st.integers(0, 60)), data.draw(st.floats(0, 1))
    rec = th.recommend(t, min_mqls_per_month=floor, max_dq_rate=ceiling)

    def meets(r: th.Row) -> bool:
        return r.mqls_per_month >= floor and r.dq_rate is not None and r.dq_rate <= ceiling

    assert rec.satisfied == any(meets(r) for r in t)
    if rec.satisfied:
        assert meets(rec.row)
        assert not any(meets(r) for r in t if r.threshold > rec.threshold)


def _lead(scored_at: int, label: int | None, consent: bool = True) -> dict:
    f = new_features()
    f.update(profile_at=1, size_band="SIZE_51_200", industry="SaaS",
             trigger_actions=["x"], has_email=True, has_names=True,
             has_company=True, consent=consent)
    return {"lead_id": str(scored_at), "features": f, "label": label, "scored_at": scored_at}


def test_from_examples_rescores_and_skips_leads_held_back() -> None:
    model = LinearModel("v", {"industry:SaaS": 1.0}, 0.0)
    leads = [_lead(0, 1), _lead(1000, None), _lead(2000, 0, consent=False), _lead(3000, 0)]
    ps, labels, window = th.from_examples(leads, model)
    assert ps == [pytest.approx(0.7310585786)] * 3
    assert labels == [1, None, 0]
    assert window == 3000
    assert th.from_examples(leads, model, window_ms=10.0)[2] == 10.0
    with pytest.raises(ValueError, match="window"):
        th.from_examples(leads[:1], model)


def test_apply_is_versioned_and_recorded(tmp_path: Path) -> None:
    assert th.current(tmp_path) is None
    first = th.apply(tmp_path, 55, "alice", "capacity doubled", now_ms=1,
                     expected={"mqls_per_month": 300.0})
    assert first == {"version": 1, "threshold": 55, "previous": None, "by": "alice",
                     "reason": "capacity doubled", "at": 1,
                     "expected": {"mqls_per_month": 300.0}}
    th.apply(tmp_path, 62, "bob", "DQ rate over 30%", now_ms=2)
    assert th.current(tmp_path) == 62
    assert [(h["version"], h["threshold"], h["previous"]) for h in th.history(tmp_path)] == [
        (1, 55, None), (2, 62, 55)]
    for bad in (101, -1, 55.5, True):
        with pytest.raises(ValueError, match="integer 0..100"):
            th.apply(tmp_path, bad, "x", "y")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="who"):
        th.apply(tmp_path, 50, "", "why")
    assert th.current(tmp_path) == 62
