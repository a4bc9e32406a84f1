"""HubSpot batches against a local server speaking HubSpot's CRM API: captures read by id,
repeats and out-of-order pairs, rate limits, privacy deletions."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.connectors import hubspot, records
from streams.errors import LeadflowError
from tests.connectors_kit import HUBSPOT_TOKEN, HubSpotApi, fixture

LEAD = records.external_lead_id("hubspot", "contact", 5101)


@pytest.fixture
async def local_api():
    server = HubSpotApi()
    runner = await server.start()
    yield server
    await runner.cleanup()


def client(server: HubSpotApi, token: str = HUBSPOT_TOKEN, attempts: int = 4) -> hubspot.Api:
    return hubspot.Api(server.url, token, attempts=attempts, backoff_s=0.01)


async def test_batch_maps_every_subscription(local_api):
    batch = json.loads(fixture("hubspot_batch.json"))
    items, erasures = await hubspot.translate_batch(batch, hubspot.Config(), client(local_api),
                                                    "cid")
    assert erasures == []
    assert len(items) == len(batch)
    assert all(not i.errors for i in items)
    kinds = [[k for k, _ in i.outputs] for i in items]
    assert kinds == [["lead"], ["status"], ["status"], ["status"], ["touch"], ["activity"], []]
    capture = items[0].outputs[0][1]
    assert capture["lead_id"] == LEAD and capture["email"] == "ines.moreau@fabrik.example.com"
    assert capture["company_size"] == "SIZE_51_200" and capture["region"] == "Germany"
    # The repeat (attemptNumber 1) has the same dedup key and event id as its original.
    assert items[2].key == items[3].key
    assert items[2].outputs[0][1]["event_id"] == items[3].outputs[0][1]["event_id"]
    # The out-of-order pair keeps its event times: the trace orders by them.
    connected, in_progress = items[1].outputs[0][1], items[2].outputs[0][1]
    assert (connected["new_status"], in_progress["new_status"]) == ("SAL", "WORKING")
    assert in_progress["occurred_at"] < connected["occurred_at"]
    touch = items[4].outputs[0][1]
    assert touch["lead_id"] == LEAD and touch["channel"] == "CALL" and touch["rep_id"] == "7001"
    booked = items[5].outputs[0][1]
    assert booked["activity_type"] == "MEETING_BOOKED" and booked["lead_id"] == LEAD
    # Contacts are read in one batch call, engagements one by one with their associations.
    assert sorted(local_api.calls) == ["calls/8801", "contacts/batch", "meetings/9901"]


async def test_rate_limited_then_served(local_api):
    local_api.rate_limited = 2
    found = await client(local_api).get_object("contacts", 5101, ("email",))
    assert found["id"] == "5101" and local_api.calls.count("contacts/5101") == 3
    local_api.rate_limited = 1
    found = await client(local_api).read_batch("contacts", [5101, 777], ("email",))
    assert list(found) == ["5101"] and local_api.calls.count("contacts/batch") == 2


async def test_rate_limited_past_the_attempts_is_unavailable(local_api):
    local_api.rate_limited = 5
    with pytest.raises(LeadflowError) as err:
        await client(local_api, attempts=2).get_object("contacts", 5101, ("email",))
    assert err.value.code == "UNAVAILABLE"


async def test_unknown_contact_is_an_item_error(local_api):
    event = {"subscriptionType": "contact.creation", "objectId": 404404,
             "occurredAt": 1796100000000}
    (item,), _ = await hubspot.translate_batch([event], hubspot.Config(), client(local_api), None)
    assert item.outputs == [] and item.errors[0].code == "NOT_FOUND"


async def test_wrong_token_is_unavailable(local_api):
    event = {"subscriptionType": "contact.creation", "objectId": 5101,
             "occurredAt": 1796100000000}
    (item,), _ = await hubspot.translate_batch([event], hubspot.Config(),
                                               client(local_api, token="wrong"), None)
    assert item.errors[0].code == "UNAVAILABLE"


async def test_privacy_deletion_is_returned_for_erasure(local_api):
    batch = [{"subscriptionType": "contact.privacyDeletion", "objectId": 5101,
              "occurredAt": 1796100000000},
             {"subscriptionType": "contact.propertyChange", "objectId": 5101,
              "propertyName": "hs_lead_status", "propertyValue": "OPEN_DEAL",
              "occurredAt": 1796100000001}]
    items, erasures = await hubspot.translate_batch(batch, hubspot.Config(), client(local_api),
                                                    None)
    assert erasures == [5101] and items[0].outputs[0][1]["new_status"] == "SQL"


async def test_status_tables_are_configuration(local_api):
    event = {"subscriptionType": "contact.propertyChange", "objectId": 5101,
             "propertyName": "hs_lead_status", "propertyValue": "DEMO_SET",
             "occurredAt": 1796100000000}
    (item,), _ = await hubspot.translate_batch([event], hubspot.Config(), client(local_api), None)
    assert item.errors[0].code == "INVALID_ENUM"
    config = hubspot.Config(status={**hubspot.LEAD_STATUS, "demo_set": "SAL"})
    (item,), _ = await hubspot.translate_batch([event], config, client(local_api), None)
    assert item.outputs[0][1]["new_status"] == "SAL"
    other = dict(event, propertyName="custom_stage", propertyValue="x")
    (item,), _ = await hubspot.translate_batch([other], config, client(local_api), None)
    assert item.outputs == [] and item.errors == []  # not a status property: ignored


def test_workflow_body_is_a_capture():
    item = hubspot.translate_workflow(json.loads(fixture("hubspot_workflow.json")),
                                      hubspot.Config(), "cid")
    (kind, record), = item.outputs
    assert kind == "lead" and record["lead_id"] == records.external_lead_id(
        "hubspot", "contact", 5202)
    legacy = {"vid": 5202, "properties": {k: {"value": v} for k, v in json.loads(
        fixture("hubspot_workflow.json"))["properties"].items()}}
    assert hubspot.translate_workflow(legacy, hubspot.Config(), "cid").outputs == item.outputs
    assert record["attributes"] == {}  # no property is mapped to an attribute


async def test_configured_contact_properties_are_custom_attributes(local_api):
    """[connectors.hubspot.attributes]: property = attribute; the contract types them."""
    from streams.core import contract
    config = hubspot.Config(attributes={"numemployees": "headcount", "jobtitle": "role",
                                        "hs_not_sent": "absent"})
    body = json.loads(fixture("hubspot_workflow.json"))
    (_, record), = hubspot.translate_workflow(body, config, "cid").outputs
    assert record["attributes"] == {"headcount": "35", "role": "CTO"}
    checked = contract.validate("lead", record, observed_at=record["occurred_at"],
                                max_skew=timedelta(days=1))
    assert checked["attributes"] == {"headcount": "35", "role": "CTO"}  # typed when declared
    batch = [e for e in json.loads(fixture("hubspot_batch.json"))
             if e["subscriptionType"] == "contact.creation"]
    (item,), _ = await hubspot.translate_batch(batch, config, client(local_api), None)
    assert item.outputs[0][1]["attributes"].get("headcount")  # read from the API with the rest


def _status_events() -> list[dict]:
    batch = json.loads(fixture("hubspot_batch.json"))
    return [e for e in batch if e["subscriptionType"] == "contact.propertyChange"]


@settings(max_examples=60)
@given(st.data())
def test_any_order_and_repeats_give_the_same_records(data):
    """Redeliveries and reordering across batches change nothing: the records are a function
    of the set of events (the trace then orders them by event time)."""
    events = _status_events()
    picks = data.draw(st.lists(st.sampled_from(events), min_size=len(events)))
    picks = data.draw(st.permutations(picks + events))
    cut = data.draw(st.integers(0, len(picks)))
    found = {}
    for part in (picks[:cut], picks[cut:]):
        items, _ = asyncio.run(hubspot.translate_batch(part, hubspot.Config(), None, None))
        for item in items:
            for _, record in item.outputs:
                assert found.setdefault(record["event_id"], record) == record
    expected, _ = asyncio.run(hubspot.translate_batch(events, hubspot.Config(), None, None))
    assert set(found) == {r["event_id"] for i in expected for _, r in i.outputs}


async def test_meeting_outcome_changes_are_meeting_events(local_api):
    def change(value, at):
        return {"subscriptionType": "object.propertyChange", "objectTypeId": "0-47",
                "objectId": 9901, "propertyName": "hs_meeting_outcome", "propertyValue": value,
                "occurredAt": at}

    items, _ = await hubspot.translate_batch(
        [change("NO_SHOW", 1796200000000), change("COMPLETED", 1796300000000),
         dict(change("x", 1796300000001), propertyName="hs_meeting_title")],
        hubspot.Config(), client(local_api), None)
    (kind, no_show), = items[0].outputs
    assert no_show["activity_type"] == "MEETING_NO_SHOW"
    (kind, held), = items[1].outputs
    assert held["activity_type"] == "MEETING_HELD" and held["lead_id"] == LEAD
    assert held["properties"]["repId"] == "7001"
    assert items[2].outputs == [] and items[2].errors == []
