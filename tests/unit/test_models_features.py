"""The shared feature pipeline: the same vector as the points model's vocabulary, the space
stored with a model, and the fitted vocabulary."""

from __future__ import annotations

import pytest

from models.features import FeatureSpace, fit_vectorizer, vectors, vocabulary
from streams.core.features import new_features
from streams.core.scoring import ScoringPolicy, feature_vector


def _lead(**counts: int) -> dict:
    f = new_features()
    f.update(profile_at=1, size_band="SIZE_51_200", industry="SaaS", region="EMEA",
             tech=["Kafka"], title="CTO", campaign_id="cmp-a",
             trigger_actions=["submitted_contact_form"], has_email=True, has_names=True,
             has_company=True, consent=True)
    f["counts"] = dict(counts)
    return f


def test_vector_is_the_points_vocabulary() -> None:
    f = _lead(PRICING_PAGE_VIEW=5, EMAIL_OPEN=1)
    space = FeatureSpace()
    assert space.vector(f) == feature_vector(f, 3)
    assert space.vector(f)["activity:PRICING_PAGE_VIEW"] == 3.0  # capped
    assert space.vector(f)["hand_raiser"] == 1.0  # the default trigger raises a hand
    assert space.vector(None) == {}


def test_space_follows_the_scoring_policy() -> None:
    policy = ScoringPolicy(activity_cap=5, hand_raiser_triggers=frozenset({"other"}))
    space = FeatureSpace.of(policy)
    f = _lead(PRICING_PAGE_VIEW=5)
    v = space.vector(f)
    assert v["activity:PRICING_PAGE_VIEW"] == 5.0
    assert "hand_raiser" not in v  # submitted_contact_form is not a hand-raise here
    assert FeatureSpace.from_dict(space.as_dict()) == space


def test_space_refuses_a_bad_cap() -> None:
    with pytest.raises(ValueError, match="activity_cap"):
        FeatureSpace(activity_cap=0)


def test_vectorizer_vocabulary_and_min_count() -> None:
    rows = vectors(FeatureSpace(), [_lead(EMAIL_OPEN=1), _lead(EMAIL_OPEN=2), _lead()])
    rows[2]["title:Intern"] = 1.0
    full = fit_vectorizer(rows)
    assert "title:Intern" in vocabulary(full)
    assert vocabulary(full) == sorted(vocabulary(full))
    pruned = fit_vectorizer(rows, min_count=2)
    assert "title:Intern" not in vocabulary(pruned)
    assert "activity:EMAIL_OPEN" in vocabulary(pruned)
    # Features outside the vocabulary are ignored, not an error.
    X = pruned.transform([{"title:Intern": 1.0, "activity:EMAIL_OPEN": 2.0}])
    assert X.sum() == 2.0
