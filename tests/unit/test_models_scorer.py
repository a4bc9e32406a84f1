"""The live linear scorer gives the scikit-learn pipeline's probability for any lead, and a
score/factors shaped like the points model's."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.features import FeatureSpace
from models.scorer import LinearModel, sigmoid, to_score
from models.train import TrainResult, train
from streams.core.contract import ActivityType
from streams.core.features import new_features

T0 = 1_767_225_600_000
INDUSTRIES = ["SaaS", "Retail", "Education", "Mining"]  # Mining: never seen in training
TITLES = ["CTO", "Analyst", None, "Astronaut"]
TRIGGERS = ["viewed_pricing_page", "requested_demo", "searched_brand", "brand_new"]
ACTIVITIES = [a.value for a in ActivityType]


def _state(industry: str | None, title: str | None, size: str | None, triggers: list[str],
           counts: dict[str, int], tech: list[str]) -> dict[str, Any]:
    f = new_features()
    f.update(profile_at=T0, size_band=size, industry=industry, region="EMEA",
             tech=sorted(set(tech)), title=title, campaign_id="cmp-a",
             trigger_actions=sorted(set(triggers)), has_email=True, has_names=True,
             has_company=True, consent=True)
    f["counts"] = {k: v for k, v in counts.items() if v}
    return f


def _examples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        counts = {a: rng.randint(0, 4) for a in rng.sample(ACTIVITIES, 3)}
        f = _state(rng.choice(INDUSTRIES[:3]), rng.choice(TITLES[:3]),
                   rng.choice(["SIZE_1_10", "SIZE_51_200"]), rng.sample(TRIGGERS[:3], 1),
                   counts, rng.sample(["Kafka", "AWS", "Snowflake"], 2))
        logit = (-1 + (f["industry"] == "SaaS") + 0.5 * min(counts.get("PRICING_PAGE_VIEW", 0), 3)
                 + 1.5 * ("requested_demo" in f["trigger_actions"]))
        label = int(rng.random() < 1 / (1 + math.exp(-logit)))
        out.append({"lead_id": f"l{i:05d}", "handed_over_at": T0 + i, "label": label,
                    "features": f})
    return out


@pytest.fixture(scope="module")
def trained() -> TrainResult:
    return train(_examples(2000), space=FeatureSpace(activity_cap=4), min_count=1)


def _published(result: TrainResult) -> dict[str, Any]:
    return {"model_version": "lr-test", "kind": result.kind, "weights": result.weights,
            "intercept": result.intercept, "features": result.features,
            "pipeline": result.space.as_dict()}


states = st.builds(
    _state,
    industry=st.sampled_from(INDUSTRIES + [None]),
    title=st.sampled_from(TITLES),
    size=st.sampled_from(["SIZE_1_10", "SIZE_51_200", "SIZE_5001_PLUS", None]),
    triggers=st.lists(st.sampled_from(TRIGGERS), max_size=3),
    counts=st.dictionaries(st.sampled_from(ACTIVITIES), st.integers(0, 9), max_size=6),
    tech=st.lists(st.sampled_from(["Kafka", "AWS", "Snowflake", "COBOL"]), max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(state=states)
def test_same_probability_as_the_sklearn_pipeline(trained: TrainResult, state: dict) -> None:
    model = LinearModel.from_published(_published(trained))
    expected = float(trained.predict([state])[0])
    scored = model.score(state)
    assert scored.probability == pytest.approx(expected, abs=1e-12)
    assert model.probability(state) == scored.probability
    assert type(scored.probability) is float  # plain Python on the hot path
    assert scored.score == to_score(scored.probability)
    assert scored.model_version == "lr-test"
    vector = trained.space.vector(state)
    weights = model.weights
    expected_parts = sorted(
        ((weights[k] * v, k) for k, v in vector.items() if k in weights),
        key=lambda part: (-abs(part[0]), part[1]),
    )[:5]
    assert [(f.contribution, f.feature) for f in scored.factors] == expected_parts


def test_the_stored_pipeline_wins_over_the_callers_space(trained: TrainResult) -> None:
    model = LinearModel.from_published(_published(trained), space=FeatureSpace(activity_cap=1))
    assert model.space.activity_cap == 4
    published = _published(trained)
    del published["pipeline"]  # e.g. a ModelPublished record: the caller's space applies
    assert LinearModel.from_published(published, space=FeatureSpace(2)).space.activity_cap == 2


def test_score_rounds_half_up_and_clamps() -> None:
    assert [to_score(p) for p in (0.0, 0.004, 0.005, 0.594, 0.595, 0.999, 1.0)] == [
        0, 0, 1, 59, 60, 100, 100]
    assert to_score(-0.1) == 0 and to_score(1.5) == 100
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0 and sigmoid(0.0) == 0.5


def test_by_hand() -> None:
    model = LinearModel("v1", {"industry:SaaS": 1.0, "activity:PRICING_PAGE_VIEW": 0.5,
                               "title:CTO": 0.0}, intercept=-2.0)
    f = _state("SaaS", "CTO", "SIZE_1_10", [], {"PRICING_PAGE_VIEW": 7}, [])
    s = model.score(f)
    # -2 + 1 + 0.5 * min(7, 3)
    assert s.probability == pytest.approx(1 / (1 + math.exp(-0.5)))
    assert s.score == 62
    assert [(x.feature, x.contribution) for x in s.factors] == [
        ("activity:PRICING_PAGE_VIEW", 1.5), ("industry:SaaS", 1.0)]  # zero weight: no factor
    assert model.score(None).probability == pytest.approx(1 / (1 + math.exp(2)))


def test_refuses_what_it_cannot_score() -> None:
    with pytest.raises(ValueError, match="not linear"):
        LinearModel.from_published({"model_version": "g", "kind": "GRADIENT_BOOSTING"})
    with pytest.raises(ValueError, match="not linear"):
        LinearModel.from_published({"model_version": "p", "kind": "POINTS", "weights": {}})
    with pytest.raises(ValueError, match="version"):
        LinearModel("", {}, 0.0)
