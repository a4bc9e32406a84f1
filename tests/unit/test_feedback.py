"""Training examples, pure: labels, no leakage, once per lead and label, history, volume."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.labels import LabelPolicy
from streams import policies, topics
from streams.codec import Codec
from streams.core import feedback, handoff, payloads, trace
from streams.registry import FileRegistry
from streams.settings import Settings
from tests.unit.test_handoff import status

EXAMPLES = Path(__file__).parents[3] / "shared" / "examples"
MIN = 60_000
HOUR = 60 * MIN
T0 = 1_795_000_000_000  # 2026-11-18, an ordinary Wednesday
LOW = {"triggerActions": ["downloaded_ebook_ai"], "jobTitle": "Analyst", "region": "EMEA"}


@pytest.fixture(scope="module")
def p() -> handoff.Policies:
    return policies.load(Settings.load(toml_path=Path(__file__).parents[2] / "leadflow.toml",
                                       data_dir="/nonexistent/leadflow"))


def lead(lead_id: str, at: int = T0, **changes: Any) -> dict[str, Any]:
    """The example capture (score 75: an MQL at once); with ``LOW``, a complete lead at 40."""
    body = json.loads((EXAMPLES / "lead-captured.json").read_text())
    body.update(leadId=lead_id, **changes)
    record = payloads.lead_from_json(body)
    record.update(event_id=str(uuid.uuid4()), occurred_at=at)
    return record


def activity(lead_id: str, at: int, kind: str = "pricing_page_view") -> dict[str, Any]:
    record = payloads.activity_from_json(
        {"leadId": lead_id, "type": kind, "timestamp": "2026-11-18T00:00:00Z"}
    )
    record.update(event_id=str(uuid.uuid4()), occurred_at=at, activity_type=kind.upper())
    return record


class Lead:
    """One lead's state fed through the handoff as the intake does; collects its examples."""

    def __init__(self, p: handoff.Policies, lead_id: str | None = None) -> None:
        self.p = p
        self.id = lead_id or str(uuid.uuid4())
        self.state = trace.new_state(self.id)
        self.examples: list[dict[str, Any]] = []

    def feed(self, kind: str, record: dict[str, Any]) -> list[dict[str, Any]]:
        step = trace.step_from_record(kind, record, record["occurred_at"])
        self.state, added = trace.apply(self.state, self.id, step, now_ms=T0,
                                        retention_ms=1 << 50)
        assert added
        sends = handoff.on_event(self.p, self.state, kind, record, now_ms=T0, step=step)
        new = [feedback.example_from_record(r) for s, _, r in sends if s is topics.EXAMPLES]
        self.examples += new
        return new

    def lead(self, at: int = T0, **changes: Any) -> list[dict[str, Any]]:
        return self.feed("lead", lead(self.id, at, **changes))

    def activity(self, at: int, kind: str = "pricing_page_view") -> list[dict[str, Any]]:
        return self.feed("activity", activity(self.id, at, kind))

    def status(self, new: str, at: int, reason: str | None = None) -> list[dict[str, Any]]:
        return self.feed("status", status(self.id, new, at, reason))


def test_a_disqualified_mql_is_a_negative_example_with_its_reason(p):
    x = Lead(p)
    (handover,) = x.lead()
    assert handover["label"] is None and handover["handed_over_at"] == T0  # volume, frozen
    (example,) = x.status("DISQUALIFIED", T0 + 2 * HOUR, reason="no_budget")
    assert example["label"] == 0 and example["outcome"] == "DISQUALIFIED"
    assert example["reason"] == "no_budget" and example["disposed_at"] == T0 + 2 * HOUR
    assert example["handed_over_at"] == x.state["mql_at"] == T0
    assert example["features"] == x.state["mql_features"]
    assert example["campaign_id"] == "cmp-2026-q4-webinar-b"
    assert example["score"] == 75 and example["model_version"].startswith("points-")
    assert example["occurred_at"] == T0 + 2 * HOUR and not example["historic"]


def test_a_feature_changed_after_the_handover_does_not_reach_the_example(p):
    x = Lead(p)
    x.lead()
    for i in range(3):  # sales booked meetings after the handover: their doing, not marketing's
        x.activity(T0 + (i + 1) * HOUR, "meeting_booked")
    assert x.state["features"]["counts"] == {"MEETING_BOOKED": 3}
    x.status("SAL", T0 + 5 * HOUR)
    (example,) = x.status("SQL", T0 + 6 * HOUR)
    assert example["label"] == 1 and example["outcome"] == "SQL"
    assert example["features"]["counts"] == {}
    assert example["features"]["last_event_at"] == T0


def test_one_example_per_label_and_the_latest_disposition_wins(p):
    x = Lead(p)
    x.lead()
    x.status("SAL", T0 + HOUR)
    assert x.status("SQL", T0 + 2 * HOUR)[0]["label"] == 1
    assert x.status("CLOSED_WON", T0 + 3 * HOUR) == []  # still positive: nothing new
    assert feedback.example_of(x.state, p.labels) is None  # asked again: nothing due
    y = Lead(p)
    y.lead()
    y.status("SAL", T0 + HOUR)
    y.status("SQL", T0 + 2 * HOUR)
    (lost,) = y.status("CLOSED_LOST", T0 + 3 * HOUR)
    assert (lost["label"], lost["outcome"]) == (0, "CLOSED_LOST")
    z = Lead(p)  # disqualified, reopened by the CRM, qualified after all
    z.lead()
    assert z.status("DISQUALIFIED", T0 + HOUR, reason="no_budget")[0]["label"] == 0
    assert z.status("SAL", T0 + 2 * HOUR) == []  # reopened: the verdict stands meanwhile
    (won,) = z.status("SQL", T0 + 3 * HOUR)
    assert won["label"] == 1 and won["reason"] is None
    ids = [e["event_id"] for e in (*x.examples, *y.examples, *z.examples)]
    assert len(set(ids)) == len(ids)


def test_a_late_status_dated_before_the_latest_disposition_changes_nothing(p):
    x = Lead(p)
    x.lead()
    x.status("SQL", T0 + 3 * HOUR)
    assert x.status("DISQUALIFIED", T0 + HOUR, reason="dup") == []  # older: SQL is the latest


def test_labels_follow_the_policy(p):
    strict = handoff.Policies(p.scoring, p.model, p.routing, p.contract,
                              labels=LabelPolicy(positive=frozenset({"CLOSED_WON"}),
                                                 negative=frozenset({"CLOSED_LOST"})))
    x = Lead(strict)
    x.lead()
    assert x.status("SAL", T0 + HOUR) == [] and x.status("SQL", T0 + 2 * HOUR) == []
    assert x.status("CLOSED_WON", T0 + 3 * HOUR)[0]["label"] == 1
    off = Lead(handoff.Policies(p.scoring, p.model, p.routing, p.contract))  # no labels
    assert off.lead() == [] and off.status("DISQUALIFIED", T0 + HOUR, "no_budget") == []


def test_an_imported_lead_that_never_crossed_takes_its_features_at_the_first_sales_status(p):
    x = Lead(p)
    x.feed("lead", {**lead(x.id, **LOW), "source_system": "import"})
    x.activity(T0 + MIN, "email_open")
    x.status("MQL", T0 + HOUR)  # marketing's status: sales has not acted yet
    x.activity(T0 + HOUR + MIN, "email_open")
    x.status("SAL", T0 + 2 * HOUR)  # the first sales status: sales has the lead from here
    x.activity(T0 + 2 * HOUR + MIN, "email_open")  # sales' doing: must not count
    (example,) = x.status("DISQUALIFIED", T0 + 3 * HOUR, reason="no_fit")
    assert x.state.get("mql_at") is None and x.state["historic"]  # leadflow never handed over
    assert example["label"] == 0 and example["historic"] and example["reason"] == "no_fit"
    assert example["handed_over_at"] == T0 + 2 * HOUR
    assert example["features"]["counts"] == {"EMAIL_OPEN": 2}
    assert example["features"]["title"] == "Analyst"


def test_a_disposition_read_before_the_capture_waits_for_the_handover(p):
    x = Lead(p)
    assert x.status("DISQUALIFIED", T0 + HOUR, reason="no_budget") == []  # no capture yet
    (example,) = x.lead()
    assert example["label"] == 0 and example["handed_over_at"] == T0


def test_a_lead_never_handed_over_counts_for_volume_once_per_score_band(p):
    x = Lead(p)
    (first,) = x.lead(**LOW)
    assert first["label"] is None and first["handed_over_at"] is None and first["score"] == 40
    assert x.lead(T0 + MIN, **LOW) == []  # same band
    (fifty,) = x.activity(T0 + 2 * MIN)
    assert fifty["score"] == 50 and fifty["features"]["counts"] == {"PRICING_PAGE_VIEW": 1}
    (handover,) = x.activity(T0 + 3 * MIN)  # 60: an MQL now, features frozen
    assert handover["handed_over_at"] == T0 + 3 * MIN and handover["label"] is None
    assert x.activity(T0 + 4 * MIN) == [] and x.activity(T0 + 5 * MIN, "webinar_attend") == []


def test_a_lead_held_back_is_no_example(p):
    x = Lead(p)
    assert x.lead(consent=None, **LOW) == []  # no lawful basis: not handed over as it is
    (example,) = Lead(p).lead(companySize=None, **LOW)  # incomplete, but handed over on cue
    assert example["handed_over_at"] is None and example["label"] is None


def test_an_example_travels_as_avro_and_comes_back_equal(p, tmp_path):
    x = Lead(p)
    x.lead()
    del x.state["example"]  # due again, straight from the core this time
    example = feedback.example_of(x.state, p.labels)
    assert example is not None
    codec = Codec(FileRegistry(tmp_path / "schemas.json"))
    data = codec.encode(topics.EXAMPLES.subject, topics.EXAMPLES.record,
                        feedback.record_of(example))
    assert feedback.example_from_record(codec.decode(data, topics.EXAMPLES.record)) == example


# Arrival order: a lead's topics are read in any order. Whatever the order, the example the
# lead ends with (the one the store keeps) has the label of event-time order and the features
# the handoff froze at the handover. (When the handover is dated depends on which of the
# lead's marketing events were read when it crossed: that is the handoff's rule.)
def _events(lead_id: str, verdict: str) -> list[tuple[str, dict[str, Any]]]:
    events = [("lead", lead(lead_id, T0, **LOW))]
    events += [("activity", activity(lead_id, T0 + i * MIN)) for i in (1, 2, 3)]
    events += [("status", status(lead_id, "SAL", T0 + HOUR)),
               ("status", status(lead_id, "SQL", T0 + 2 * HOUR))]
    if verdict != "SQL":
        events.append(("status", status(lead_id, verdict, T0 + 3 * HOUR, reason="r")))
    return events


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(7)), verdict=st.sampled_from(["SQL", "CLOSED_LOST"]))
def test_the_final_example_does_not_depend_on_arrival_order(p, order, verdict):
    lead_id = str(uuid.uuid4())
    events = _events(lead_id, verdict)
    reference = Lead(p, lead_id)
    for kind, record in events:
        reference.feed(kind, record)
    x = Lead(p, lead_id)
    for i in order:
        if i < len(events):
            x.feed(*events[i])
    final, expected = x.examples[-1], reference.examples[-1]
    keys = ("label", "outcome", "disposed_at")
    assert {k: final[k] for k in keys} == {k: expected[k] for k in keys}
    assert final["handed_over_at"] == x.state["mql_at"]
    assert final["features"] == x.state["mql_features"]
    labelled = [e["label"] for e in x.examples if e["label"] is not None]
    assert len(labelled) <= len(set(labelled)) + 1  # a label repeats at most once (see doc)
