"""Custom attributes (issue 22): typing, the feature fold, points rules, fitted encodings, the
trained model live as in training, and the API / contract paths."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.features import FeatureSpace
from models.registry import Registry
from models.scorer import ArtifactModel
from models.train import RANDOM_SPLIT, TIME_SPLIT, train
from streams.core import attributes as attrs
from streams.core import contract, features, payloads
from streams.core.scoring import PointsModel, ScoringPolicy
from streams.errors import LeadflowError

NOW = datetime(2026, 3, 1, tzinfo=UTC)
SKEW = timedelta(days=1)


def test_values_are_typed_by_declaration_or_by_value() -> None:
    specs = {s.name: s for s in attrs.specs_from_config({
        "visits": {"type": "numeric"}, "flag": {"type": "boolean"},
        "tags": {"type": "multi"}, "origin": "categorical"})}
    got = attrs.parse({"visits": "1,204", "flag": "Yes", "tags": "b; a;;a", "origin": 3.0,
                       "free": 2, "blank": "  "}, specs)
    assert got == {"visits": 1204.0, "flag": True, "tags": ["a", "b"], "origin": "3",
                   "free": 2}
    with pytest.raises(ValueError, match="attributes.visits"):
        attrs.parse({"visits": "many"}, specs)
    with pytest.raises(ValueError, match="not an attribute name"):
        attrs.parse({"bad name": 1})
    with pytest.raises(ValueError, match="encoding"):
        attrs.specs_from_config({"x": {"type": "numeric", "encoding": "top_k"}})


def test_connector_properties_map_by_a_plain_table() -> None:
    props = {"hs_lead_origin": "Landing Page", "time_on_site": "640", "email": "x@y.z"}
    mapping = {"hs_lead_origin": "lead_origin", "time_on_site": "time_on_site_s"}
    specs = {"time_on_site_s": attrs.Spec("time_on_site_s", attrs.NUMERIC)}
    assert attrs.from_properties(props, mapping, specs) == {
        "lead_origin": "Landing Page", "time_on_site_s": 640.0}


@pytest.mark.parametrize(("rule", "value", "points"), [
    ("attr:lead_origin=Landing Page", "Landing Page", 15.0),
    ("attr:lead_origin=Landing Page", "API", None),
    ("attr:lead_origin!=API", "Landing Page", 15.0),
    ("attr:time_on_site_s>=600", 600.0, 15.0),
    ("attr:time_on_site_s>=600", 599.0, None),
    ("attr:time_on_site_s<10", 3.0, 15.0),
    ("attr:flag=true", True, 15.0),
    ("attr:flag=true", False, None),
    ("attr:tags=b", ["a", "b"], 15.0),
    ("attr:time_on_site_s", 2.0, 30.0),
])
def test_points_rules(rule: str, value: attrs.Value, points: float | None) -> None:
    assert attrs.rule_of(rule).points(value, 15.0) == points


def test_bad_rules_are_refused_at_load() -> None:
    with pytest.raises(ValueError, match="not a number to compare"):
        ScoringPolicy.from_config({"points": {"attr:time>=soon": 5}})
    with pytest.raises(ValueError, match="nothing to compare"):
        ScoringPolicy.from_config({"points": {"attr:origin=": 5}})


def _lead(lead_id: str = "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53", at: int = 1_000,
          **attributes: attrs.Value) -> dict:
    return {"lead_id": lead_id, "occurred_at": at, "company_size": "SIZE_51_200",
            "attributes": attributes}


def _activity(at: int, **attributes: attrs.Value) -> dict:
    return {"occurred_at": at, "activity_type": "PAGE_VIEW", "attributes": attributes}


def test_points_model_scores_attributes_and_names_them_as_factors() -> None:
    policy = ScoringPolicy.from_config({"points": {
        "base": 20, "attr:lead_origin=Landing Page": 15, "attr:time_on_site_s>=600": 10}})
    state = features.update(None, "lead", _lead(lead_origin="Landing Page"))
    features.update(state, "activity", _activity(2_000, time_on_site_s=640.0))
    score = PointsModel(policy).score(state)
    assert score.score == 45
    assert [f.feature for f in score.factors] == [
        "attr:lead_origin=Landing Page", "attr:time_on_site_s>=600"]


@settings(max_examples=50, deadline=None)
@given(st.permutations(range(5)))
def test_activity_attributes_fold_in_any_order(order: list[int]) -> None:
    events = [("lead", _lead(origin="API", visits=1.0)),
              ("activity", _activity(5_000, visits=3.0)),
              ("activity", _activity(5_000, visits=4.0)),  # same ms: decided by value
              ("activity", _activity(2_000, visits=9.0, origin="Form")),
              ("activity", _activity(7_000))]
    state = None
    for i in order:
        state = features.update(state, *events[i])
    assert attrs.values(state) == {"origin": "Form", "visits": 4.0}


def _examples(n: int, seed: int = 1, dated: bool = True) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        origin = rng.choice(["API", "Landing Page", "Lead Add Form", "Rare"
                             if rng.random() < 0.01 else "API"])
        seconds = rng.lognormvariate(5.5, 1.0)
        flag = rng.random() < 0.3
        logit = -0.5 + (1.5 if origin == "Lead Add Form" else 0) + 0.002 * (seconds - 250) - (
            1.0 if flag else 0)
        label = int(rng.random() < 1 / (1 + 2.718 ** -logit))
        state = features.update(None, "lead", _lead(
            f"00000000-0000-4000-8000-{i:012d}", 1_000 + i,
            lead_origin=origin, time_on_site_s=seconds, flag=flag))
        out.append({"lead_id": state and f"l{i}", "label": label, "features": state,
                    "handed_over_at": 10_000 + (i if dated else 0), "scored_at": 1_000 + i})
    return out


def test_fitted_transforms_are_stored_with_the_model_and_score_live_as_trained(
        tmp_path: Path) -> None:
    space = FeatureSpace(attributes=attrs.specs_from_config({
        "lead_origin": {"type": "categorical", "top_k": 3},
        "time_on_site_s": {"type": "numeric", "encoding": "bins", "bins": 4}}))
    result = train(_examples(800), space=space)
    assert result.params["split"] == TIME_SPLIT
    enc = result.space.encoders
    assert len(enc["time_on_site_s"]["edges"]) == 3
    assert "Rare" not in enc["lead_origin"]["keep"]
    assert any(f.startswith("attr:time_on_site_s#") for f in result.features)
    assert "attr:flag=true" in result.features
    registry = Registry(tmp_path)
    version = registry.save(result, created_by="test", threshold=60)
    live = registry.load(version)
    holdout = [e["features"] for e in result.holdout]
    assert [live.probability(s) for s in holdout] == pytest.approx(
        list(result.predict(holdout)), abs=1e-9)
    rare = features.update(None, "lead", _lead(lead_origin="Rare", time_on_site_s=1e6))
    vector = live.space.vector(rare)
    assert "attr:lead_origin=other" in vector
    assert any(k.startswith("attr:time_on_site_s#") and k.endswith("..") for k in vector)


def test_gradient_boosting_is_explained_per_lead(tmp_path: Path) -> None:
    result = train(_examples(600), kind="gbm")
    registry = Registry(tmp_path)
    model = registry.load(registry.save(result, created_by="test", threshold=60))
    assert isinstance(model, ArtifactModel)
    score = model.score(result.holdout[0]["features"])
    assert score.factors and all(f.feature.startswith("attr:") for f in score.factors)
    assert score.probability == pytest.approx(result.predict([result.holdout[0]["features"]])[0])


def test_undated_history_is_held_out_by_a_stratified_random_split() -> None:
    examples = _examples(500, dated=False)
    result = train(examples, kind="auto")
    assert result.params["split"] == RANDOM_SPLIT
    share = sum(e["label"] for e in result.holdout) / len(result.holdout)
    overall = sum(e["label"] for e in examples) / len(examples)
    assert share == pytest.approx(overall, abs=0.01)
    assert set(result.params["auto"]) >= {"logistic_auc", "gbm_auc", "chosen"}


def test_api_body_attributes_reach_the_record() -> None:
    body = {"leadId": "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53", "type": "page_view",
            "timestamp": "2026-02-01T00:00:00Z",
            "attributes": {"time_on_site_s": 640, "returning": True, "tags": ["a"]}}
    record = payloads.activity_from_json(body)
    assert record["attributes"] == {"returning": True, "tags": ["a"], "time_on_site_s": 640.0}
    with pytest.raises(LeadflowError) as caught:
        payloads.activity_from_json({**body, "attributes": {"x": {"nested": 1}}})
    assert caught.value.field == "attributes"
    assert "attributes" not in payloads.activity_from_json(
        {k: v for k, v in body.items() if k != "attributes"})


def _anonymous(source: str) -> dict:
    return {"event_id": "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e54",
            "lead_id": "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53", "email": "", "first_name": "",
            "last_name": "", "company_name": "", "region": "", "company_size": "UNKNOWN",
            "trigger_actions": [], "enrichment": {}, "attribution": {},
            "consent": {"lawful_basis": "UNKNOWN", "consented_at": NOW},
            "occurred_at": NOW, "source_system": source, "attributes": {"origin": "API"}}


def test_history_without_personal_data_is_accepted_only_from_an_import() -> None:
    record = contract.validate("lead", _anonymous("import"), observed_at=NOW, max_skew=SKEW)
    assert record["email"] == ""
    assert record["attributes"] == {"origin": "API"}
    state = features.update(None, "lead", record)
    assert state["consent"] is False and not state["has_email"]
    assert features.missing_context(state)[:3] == ["email", "names", "company"]
    with pytest.raises(LeadflowError):
        contract.validate("lead", _anonymous("api"), observed_at=NOW, max_skew=SKEW)


def test_declared_types_win_over_text_sent_by_a_crm() -> None:
    space = FeatureSpace(attributes=attrs.specs_from_config({
        "seconds": {"type": "numeric"}, "flag": {"type": "boolean"}}))
    typed = [features.update(None, "lead", _lead(seconds=float(s), flag=s > 2))
             for s in range(5)]
    texts = [features.update(None, "lead", _lead(seconds=str(s), flag="Yes" if s > 2 else "no"))
             for s in range(5)]
    fitted = space.fit(texts)
    assert fitted.encoders["seconds"]["mean"] == 2.0
    assert [fitted.vector(t) for t in texts] == [fitted.vector(t) for t in typed]


def test_threshold_window_of_imported_history() -> None:
    from models import thresholds
    from models.scorer import LinearModel

    model = LinearModel("v", {"attr:flag=true": 1.0}, 0.0)
    history = [{**e, "historic": True, "scored_at": 5} for e in _examples(50)]
    ps, _, window = thresholds.from_examples(history, model)
    assert len(ps) == 50 and window == 49  # handover times span 49 ms; every lead kept
    undated = [{**e, "handed_over_at": 7} for e in history]
    with pytest.raises(ValueError, match="--period"):
        thresholds.from_examples(undated, model)
    assert thresholds.from_examples(undated, model, window_ms=90.0)[2] == 90.0


def test_the_trace_shows_attributes() -> None:
    from streams.core import trace

    step = trace.step_from_record("activity", {
        **_activity(5_000, time_on_site_s=640.0, tags=["a", "b"]),
        "event_id": "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e54",
        "lead_id": "3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53", "source_system": "api"}, 6_000)
    assert step["detail"]["attributes"] == "tags=a|b time_on_site_s=640"
