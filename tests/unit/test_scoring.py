"""The points model and the MQL decision: maths by hand, cap, clamp, factors, versions,
the shared feature vocabulary, configuration, and the default table's vocabulary."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.contract import ActivityType
from streams.core.features import new_features, update
from streams.core.scoring import (
    DEFAULT_POINTS,
    Decision,
    Factor,
    PointsModel,
    Score,
    ScoringPolicy,
    decide,
    feature_vector,
)
from streams.simulate import catalog

TABLE: dict[str, Any] = {
    "base": 10,
    "activity_cap": 3,
    "industry:SaaS": 20,
    "size:SIZE_201_1000": 15,
    "region:NA-West": 5,
    "tech:Kubernetes": 5,
    "tech:Kafka": 4,
    "title:CTO": 10,
    "campaign:cmp-a": 3,
    "activity:PRICING_PAGE_VIEW": 30,
    "activity:CONTACT_SUPPORT": -10,
    "trigger:requested_demo": 25,
    "hand_raiser": 30,
}


def policy(**points: Any) -> ScoringPolicy:
    return ScoringPolicy.from_config({"points": {**TABLE, **points}})


def lead_features(**over: Any) -> dict[str, Any]:
    state = new_features()
    state.update(
        profile_at=1,
        size_band="SIZE_201_1000",
        industry="SaaS",
        region="NA-West",
        tech=["AWS", "Kubernetes"],
        title="CTO",
        campaign_id="cmp-a",
        trigger_actions=["attended_webinar_B"],
        has_email=True,
        has_names=True,
        has_company=True,
        consent=True,
        first_at=1,
        last_event_at=1,
    )
    state.update(over)
    return state


def with_activities(state: dict[str, Any], *kinds: str) -> dict[str, Any]:
    for i, kind in enumerate(kinds):
        update(state, "activity", {"occurred_at": 10 + i, "activity_type": kind})
    return state


# --- points maths --------------------------------------------------------------------------


def test_points_add_up_by_hand() -> None:
    model = PointsModel(policy())
    # 10 base + 20 SaaS + 15 size + 5 NA-West + 5 Kubernetes (AWS: no points) + 10 CTO + 3 cmp-a
    assert model.score(lead_features()).score == 68
    state = with_activities(lead_features(industry="Retail"), "PRICING_PAGE_VIEW")
    assert model.score(state).score == 68 - 20 + 30


def test_an_activity_counts_at_most_cap_times_also_when_negative() -> None:
    model = PointsModel(policy(base=50, **{"activity:PRICING_PAGE_VIEW": 5}))
    bare = lead_features(industry=None, size_band=None, region=None, tech=[], title=None)
    bare["campaign_id"] = None
    assert model.score(bare).score == 50
    assert model.score(with_activities(bare, *["PRICING_PAGE_VIEW"] * 2)).score == 60
    assert model.score(with_activities(bare, *["PRICING_PAGE_VIEW"] * 3)).score == 65  # 5 in all
    support = with_activities(dict(bare, counts={}, last_at={}), *["CONTACT_SUPPORT"] * 7)
    assert model.score(support).score == 50 - 3 * 10


def test_score_is_clamped_to_0_100_and_probability_is_score_over_100() -> None:
    model = PointsModel(policy())
    high = with_activities(lead_features(trigger_actions=["requested_demo"]), "PRICING_PAGE_VIEW")
    score = model.score(high)
    assert (score.score, score.probability) == (100, 1.0)
    low = PointsModel(policy(base=-50)).score(lead_features())
    assert (low.score, low.probability) == (8, 0.08)
    assert PointsModel(policy(base=-200)).score(lead_features()).score == 0
    assert PointsModel(policy()).score(None).score == 10  # nothing known: base


def test_rounds_half_up() -> None:
    assert PointsModel(policy(base=10.5)).score(new_features()).score == 11
    assert PointsModel(policy(base=11.5)).score(new_features()).score == 12
    assert PointsModel(policy(base=11.49)).score(new_features()).score == 11


def test_hand_raiser_points_follow_the_policy_definition() -> None:
    state = with_activities(lead_features(), "MEETING_BOOKED")
    assert PointsModel(policy()).score(state).score == 68 + 30
    strict = ScoringPolicy.from_config(
        {"points": TABLE, "hand_raiser_activities": ["DEMO_REQUEST"]}
    )
    assert PointsModel(strict).score(state).score == 68


def test_factors_are_the_top_five_by_absolute_contribution_then_name() -> None:
    state = with_activities(lead_features(), "CONTACT_SUPPORT", "CONTACT_SUPPORT")
    score = PointsModel(policy(**{"region:NA-West": 0})).score(state)
    assert score.factors == (
        Factor("activity:CONTACT_SUPPORT", -20.0),
        Factor("industry:SaaS", 20.0),
        Factor("size:SIZE_201_1000", 15.0),
        Factor("title:CTO", 10.0),
        Factor("tech:Kubernetes", 5.0),
    )
    as_dict = score.as_dict()
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert as_dict["factors"][0] == {"feature": "activity:CONTACT_SUPPORT", "contribution": -20.0}


# --- versions ------------------------------------------------------------------------------


def test_version_is_a_stable_hash_of_what_changes_a_score() -> None:
    v = policy().version
    assert v.startswith("points-") and len(v) == len("points-") + 10
    reordered = dict(reversed(list(TABLE.items())))
    assert ScoringPolicy.from_config({"points": reordered}).version == v
    as_floats = {k: float(x) if k != "activity_cap" else x for k, x in TABLE.items()}
    assert ScoringPolicy.from_config({"points": as_floats}).version == v
    assert policy(**{"industry:SaaS": 21}).version != v
    assert policy(base=11).version != v
    assert policy(activity_cap=2).version != v
    assert policy(**{"tech:Java": 1}).version != v
    other_triggers = {"points": TABLE, "hand_raiser_triggers": ["requested_demo"]}
    assert ScoringPolicy.from_config(other_triggers).version != v
    # The threshold decides MQL, it does not change a score.
    assert ScoringPolicy.from_config({"points": TABLE, "threshold": 70}).version == v
    pinned = ScoringPolicy.from_config({"points": TABLE, "version": "points-2026-11"})
    assert PointsModel(pinned).score(None).model_version == "points-2026-11"


# --- the shared vocabulary -----------------------------------------------------------------


def test_feature_vector_uses_the_shared_vocabulary() -> None:
    state = with_activities(lead_features(), *["PAGE_VIEW"] * 5, "DEMO_REQUEST")
    assert feature_vector(state, 3) == {
        "industry:SaaS": 1.0,
        "size:SIZE_201_1000": 1.0,
        "region:NA-West": 1.0,
        "title:CTO": 1.0,
        "campaign:cmp-a": 1.0,
        "tech:AWS": 1.0,
        "tech:Kubernetes": 1.0,
        "trigger:attended_webinar_B": 1.0,
        "activity:PAGE_VIEW": 3.0,
        "activity:DEMO_REQUEST": 1.0,
        "hand_raiser": 1.0,  # default definition: DEMO_REQUEST
    }
    assert "hand_raiser" not in feature_vector(state, 3, hand_raiser=False)
    assert feature_vector(None, 3) == {}


_STATES = st.builds(
    lambda size, industry, tech, triggers, counts: lead_features(
        size_band=size,
        industry=industry,
        tech=sorted(set(tech)),
        trigger_actions=sorted(set(triggers)),
        counts=counts,
    ),
    st.sampled_from([None, "UNKNOWN", "SIZE_201_1000", "SIZE_1_10"]),
    st.sampled_from([None, "SaaS", "Retail"]),
    st.lists(st.sampled_from(["Kubernetes", "Kafka", "AWS"]), max_size=3),
    st.lists(st.sampled_from(["requested_demo", "submitted_contact_form", "x"]), max_size=3),
    st.dictionaries(st.sampled_from([a.value for a in ActivityType]), st.integers(0, 6)),
)


@settings(max_examples=150, deadline=None)
@given(_STATES, st.integers(1, 4), st.integers(-20, 40))
def test_points_score_equals_base_plus_table_dot_feature_vector(
    state: dict[str, Any], cap: int, base: int
) -> None:
    p = policy(base=base, activity_cap=cap)
    vector = feature_vector(state, cap, hand_raiser=None)
    total = base + sum(p.points.get(name, 0) * value for name, value in vector.items())
    score = PointsModel(p).score(state)
    assert score.score == min(100, max(0, total))  # integer points: no rounding involved
    contributions = [f.contribution for f in score.factors]
    assert len(contributions) <= 5 and 0 not in contributions
    assert contributions == sorted(contributions, key=abs, reverse=True)


# --- the MQL decision ----------------------------------------------------------------------


def test_decide_becomes_mql_once_with_complete_context() -> None:
    p = policy()
    state = lead_features()
    at_threshold = Score(60, 0.6, p.version, ())
    assert decide(p, state, at_threshold, False) == Decision(True, True, [])
    assert decide(p, state, at_threshold, True) == Decision(True, False, [])
    assert decide(p, state, Score(59, 0.59, p.version, ()), False) == Decision(False, False, [])
    incomplete = lead_features(size_band="UNKNOWN", consent=False)
    assert decide(p, incomplete, 95, False) == Decision(True, False, ["size_band", "consent"])
    assert decide(p, None, 95, False).missing[0] == "email"
    assert decide(p, state, 95, False).as_dict() == {"crossed": True, "is_mql": True, "missing": []}


# --- configuration -------------------------------------------------------------------------


def test_defaults() -> None:
    p = ScoringPolicy.from_config({})
    assert (p.threshold, p.model, p.activity_cap, p.base) == (
        60,
        "points",
        3,
        DEFAULT_POINTS["base"],
    )
    assert p.hand_raiser_activities == {"DEMO_REQUEST", "MEETING_BOOKED"}
    assert p.hand_raiser_triggers == {"requested_demo", "submitted_contact_form"}
    assert "base" not in p.points and "activity_cap" not in p.points
    given_table = ScoringPolicy.from_config({"points": {"industry:SaaS": 5}})
    assert (given_table.base, given_table.activity_cap, dict(given_table.points)) == (
        0,
        3,
        {"industry:SaaS": 5},
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"threshold": 101}, "scoring.threshold"),
        ({"threshold": True}, "scoring.threshold"),
        ({"threshold": "60"}, "scoring.threshold"),
        ({"model": ""}, "scoring.model"),
        ({"hand_raiser_activities": ["DEMO"]}, "scoring.hand_raiser_activities"),
        ({"hand_raiser_activities": "DEMO_REQUEST"}, "scoring.hand_raiser_activities"),
        ({"hand_raiser_triggers": [""]}, "scoring.hand_raiser_triggers"),
        ({"points": []}, "scoring.points"),
        ({"points": {"base": "10"}}, "scoring.points.base"),
        ({"points": {"activity_cap": 0}}, "scoring.points.activity_cap"),
        ({"points": {"activity_cap": 2.5}}, "scoring.points.activity_cap"),
        ({"points": {"industry:SaaS": "20"}}, 'scoring.points."industry:SaaS"'),
        ({"points": {"industry:SaaS": float("nan")}}, 'scoring.points."industry:SaaS"'),
        ({"points": {"SaaS": 20}}, 'scoring.points."SaaS"'),
        ({"points": {"colour:red": 20}}, 'scoring.points."colour:red"'),
        ({"points": {"industry:": 20}}, 'scoring.points."industry:"'),
        ({"points": {"activity:PRICING": 20}}, 'scoring.points."activity:PRICING"'),
        ({"points": {"size:51-200": 20}}, 'scoring.points."size:51-200"'),
        ({"version": 3}, "scoring.version"),
    ],
)
def test_bad_config_names_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ValueError) as err:
        ScoringPolicy.from_config(section)
    assert key in str(err.value)


def test_the_default_table_speaks_the_simulators_vocabulary() -> None:
    """Every default entry names something leads can actually have, so none is dead weight."""
    known = {
        "industry": set(catalog.INDUSTRIES),
        "region": set(catalog.REGIONS),
        "tech": set(catalog.TECH),
        "title": {t for t, _ in catalog.TITLES},
        "trigger": {c[5] for c in catalog.CAMPAIGNS}
        | set(catalog.EXTRA_TRIGGERS)
        | {
            "requested_demo",
            "viewed_pricing_page",
        },
    }
    for name in ScoringPolicy.from_config({}).points:
        family, _, value = name.partition(":")
        if family in known:
            assert value in known[family], name
