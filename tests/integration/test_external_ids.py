"""External ids end to end: a lead captured through the API, then the CRM's copy of the
person (a HubSpot contact with the same e-mail) and the rep's work on it, named only by the
contact's id. The rep's status changes and call land on the first lead, whose SLA verdicts
are MET as the events say — and no second lead is handed to sales. In both arrival orders:
the contact's creation first, or its status change and call first (held until the link)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams import erase
from streams.connectors import records
from streams.views import fetch_link, fetch_trace
from tests.conftest import EXAMPLES, Worker, start_worker, stop_worker, wait_for
from tests.connectors_kit import HUBSPOT_SECRET, HUBSPOT_TOKEN, HubSpotApi, hubspot_api_thread
from tests.integration.test_connectors_e2e import PUBLIC, hs_post
from tests.integration.test_incomplete_leads import full_trace
from tests.integration.test_intake import post

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 9, 15, 42, tzinfo=UTC)  # the example lead's capture
CONTACTS = {"first": ("6201", "8901"), "reverse": ("6202", "8902"), "erased": ("6203", "8903"),
            "restart": ("6204", "8904"), "byemail": ("6205", "8905")}


def email_of(case: str) -> str:
    return f"dana.{case}@northwind-analytics.io"


def hubspot_objects() -> dict[str, Any]:
    objects = {}
    for case, (contact, call) in CONTACTS.items():
        objects[f"contacts/{contact}"] = {
            "id": contact, "archived": False,
            "properties": {"email": email_of(case).upper(), "firstname": "Dana",
                           "lastname": "Whitfield", "company": "Northwind Analytics",
                           "hs_object_id": contact}}
        objects[f"calls/{call}"] = {
            "id": call, "archived": False,
            "properties": {"hs_timestamp": "2026-11-21T11:15:42.000Z",
                           "hubspot_owner_id": "7001", "hs_call_status": "COMPLETED"},
            "associations": {"contacts": {"results": [{"id": contact,
                                                       "type": "call_to_contact"}]}}}
    return objects


@pytest.fixture(scope="module")
def api() -> Iterator[HubSpotApi]:
    with hubspot_api_thread(HubSpotApi(hubspot_objects())) as server:
        yield server


def hubspot_worker(broker: Any, api: HubSpotApi, data_dir: Any, **env: str) -> Worker:
    return start_worker(
        broker, data_dir,
        LEADFLOW_PUBLIC_BASE_URL=PUBLIC,
        LEADFLOW_HUBSPOT_CLIENT_SECRETS=HUBSPOT_SECRET,
        LEADFLOW_HUBSPOT_API_URL=api.url,
        LEADFLOW_HUBSPOT_API_TOKEN=HUBSPOT_TOKEN,
        **env,
    )


@pytest.fixture(scope="module")
def worker(broker, api, tmp_path_factory) -> Iterator[Worker]:
    w = hubspot_worker(broker, api, tmp_path_factory.mktemp("external"))
    yield w
    stop_worker(w)


def at(delta: timedelta) -> int:
    return int((T0 + delta).timestamp() * 1000)


def creation(contact: str) -> dict[str, Any]:
    return {"eventId": 1, "subscriptionId": 2101, "portalId": 62515, "appId": 54321,
            "occurredAt": at(timedelta(minutes=10)), "subscriptionType": "contact.creation",
            "objectId": int(contact), "changeFlag": "CREATED", "changeSource": "INTEGRATION"}


def rep_work(contact: str, call: str) -> list[dict[str, Any]]:
    """The rep's work, named by HubSpot's ids only: working after 1 h, a call after 2 h, the
    customer after a day."""
    common = {"subscriptionId": 2102, "portalId": 62515, "appId": 54321,
              "objectId": int(contact), "subscriptionType": "contact.propertyChange",
              "changeSource": "CRM_UI", "sourceId": "userId:7001"}
    return [
        common | {"eventId": 2, "occurredAt": at(timedelta(hours=1)),
                  "propertyName": "hs_lead_status", "propertyValue": "IN_PROGRESS"},
        {"eventId": 3, "subscriptionId": 2103, "portalId": 62515, "appId": 54321,
         "occurredAt": at(timedelta(hours=2)), "subscriptionType": "object.creation",
         "objectId": int(call), "objectTypeId": "0-48", "changeFlag": "CREATED"},
        common | {"eventId": 4, "occurredAt": at(timedelta(days=1)),
                  "propertyName": "lifecyclestage", "propertyValue": "customer"},
    ]


def capture_lead(worker: Worker, case: str) -> str:
    lead = json.loads((EXAMPLES / "lead-captured.json").read_text())
    lead_id = lead["leadId"] = str(uuid.uuid4())
    lead["email"] = email_of(case)
    status, _, answer = post(worker.base_url, "/v1/leads", json.dumps(lead).encode())
    assert status == 202, answer
    full_trace(worker, lead_id, lambda kinds: "ROUTED" in kinds)
    return lead_id


def send(worker: Worker, events: list[dict[str, Any]]) -> None:
    status, _, answer = hs_post(worker, json.dumps(events).encode())
    assert status == 200 and not answer["rejected"], answer


def verdicts(body: dict[str, Any]) -> dict[str, str]:
    return {s["detail"]["clause"]: s["detail"]["verdict"] for s in body["steps"]
            if s["kind"] == "SLA" and s["detail"]["status"] == "FINAL"}


def assert_on_first_lead(worker: Worker, lead_id: str, contact: str) -> None:
    derived = records.external_lead_id("hubspot", "contact", contact)

    def done() -> dict[str, Any] | None:
        status, body = fetch_trace(worker.base_url, lead_id)
        final = verdicts(body) if status == 200 else {}
        if {"FIRST_TOUCH", "STATUS_UPDATE"} <= set(final):
            return body
        # The rep's work on a lead of its own (the bug this guards against): fail now.
        assert fetch_trace(worker.base_url, derived)[0] == 404, "the contact is a second lead"
        return None

    body = wait_for(f"final FIRST_TOUCH and STATUS_UPDATE on {lead_id}", done, 90)
    hubspot = [s for s in body["steps"] if s["source"] == "hubspot"]
    assert [s["kind"] for s in hubspot] == ["CAPTURED", "STATUS_CHANGED", "TOUCH",
                                            "STATUS_CHANGED"]
    assert {s["lead_id"] for s in hubspot} == {lead_id}  # on the first lead's own trace
    # The truth, from the events in event-time order: routed at capture (09:15:42), a call
    # 2 h later (window 24 h), an update after 1 h and the close after a day (every 48 h).
    final = verdicts(body)
    assert final["FIRST_TOUCH"] == "MET" and final["STATUS_UPDATE"] == "MET", final
    assert body["summary"]["capture_to_first_touch_ms"] == 2 * 3600 * 1000
    # The contact made no lead of its own: nothing was handed to sales twice.
    assert fetch_trace(worker.base_url, derived)[0] == 404
    assert len([s for s in body["steps"] if s["kind"] == "ROUTED"]) == 1
    status, link = fetch_link(worker.base_url, "hubspot", "contact", contact)
    assert status == 200 and link["leadId"] == lead_id and link["held"] == 0
    from click.testing import CliRunner

    from streams.cli import main

    shown = CliRunner().invoke(main, ["trace", f"hubspot:contact:{contact}", "--json",
                                      "--url", worker.base_url])
    assert json.loads(shown.output)["leadId"] == lead_id


def test_the_crms_contact_links_to_the_lead_captured_first(worker: Worker) -> None:
    contact, call = CONTACTS["first"]
    lead_id = capture_lead(worker, "first")
    send(worker, [creation(contact), *rep_work(contact, call)])
    assert_on_first_lead(worker, lead_id, contact)


def test_events_before_the_link_are_held_then_land_on_the_first_lead(worker: Worker) -> None:
    contact, call = CONTACTS["reverse"]
    lead_id = capture_lead(worker, "reverse")
    send(worker, rep_work(contact, call))  # the contact's creation is not here yet

    def held() -> dict[str, Any] | None:
        status, link = fetch_link(worker.base_url, "hubspot", "contact", contact)
        return link if status == 200 and link["held"] == 3 else None

    link = wait_for("the rep's work held", held, 30)
    assert link["leadId"] is None
    send(worker, [creation(contact)])
    assert_on_first_lead(worker, lead_id, contact)


def wait_held(worker: Worker, contact: str, count: int) -> dict[str, Any]:
    def held() -> dict[str, Any] | None:
        status, link = fetch_link(worker.base_url, "hubspot", "contact", contact)
        return link if status == 200 and link["held"] == count else None

    return wait_for(f"{count} events of {contact} held", held, 30)


def test_the_crms_privacy_deletion_erases_the_lead_it_is_linked_to(worker: Worker) -> None:
    contact, call = CONTACTS["erased"]
    lead_id = capture_lead(worker, "erased")
    send(worker, [creation(contact), *rep_work(contact, call)[:1]])

    def linked() -> dict[str, Any] | None:
        status, link = fetch_link(worker.base_url, "hubspot", "contact", contact)
        return link if status == 200 and link["sent"] == 1 else None

    assert wait_for("the contact linked", linked, 30)["leadId"] == lead_id
    deletion = {"eventId": 9, "subscriptionType": "contact.privacyDeletion",
                "objectId": int(contact), "occurredAt": at(timedelta(days=2)),
                "portalId": 62515, "appId": 54321}
    status, _, answer = hs_post(worker, json.dumps([deletion]).encode())
    assert status == 200, answer
    (asked,) = answer["erasures"]
    # The contact's person is erased, and so the lead captured first, not only the
    # contact's own (never created) lead.
    done = erase.wait(worker.settings, {"erasure_id": asked["erasureId"], "lead_id": lead_id},
                      60)
    assert done["leads"] == [lead_id]
    link = wait_for("the link table forgets", lambda: (
        lambda s, b: b if s == 200 and b["sent"] == 0 else None)(
        *fetch_link(worker.base_url, "hubspot", "contact", contact)), 30)
    assert link["leadId"] == lead_id


def test_any_erasure_of_the_person_empties_the_link_table(worker: Worker) -> None:
    """Not only the CRM's own deletion: an erasure by e-mail (`leadflow erase`) reaches the
    person's contacts too, and the events the link table kept for them (a status change's
    notes, the capture) go."""
    contact, call = CONTACTS["byemail"]
    lead_id = capture_lead(worker, "byemail")
    send(worker, [creation(contact), *rep_work(contact, call)[:1]])

    def sent(count: int) -> Any:
        def check() -> dict[str, Any] | None:
            status, link = fetch_link(worker.base_url, "hubspot", "contact", contact)
            return link if status == 200 and link["sent"] == count else None
        return check

    assert wait_for("the contact linked", sent(1), 30)["leadId"] == lead_id
    done = erase.run(worker.settings, email_of("byemail"), by="dpo@test", timeout_s=60)
    assert lead_id in done["leads"]
    assert wait_for("the link table forgets", sent(0), 30)["leadId"] == lead_id


def test_held_events_survive_a_restart(broker, api, tmp_path_factory, worker: Worker) -> None:
    """The link table is a changelogged table: a worker restarted in between still holds
    the rep's work and releases it when the contact's creation comes."""
    stop_worker(worker)  # the module's worker would share the partitions otherwise
    contact, call = CONTACTS["restart"]
    data = tmp_path_factory.mktemp("restart")
    app_id = f"leadflow-test-{uuid.uuid4().hex[:8]}"
    first = hubspot_worker(broker, api, data, LEADFLOW_APP_ID=app_id)
    try:
        lead_id = capture_lead(first, "restart")
        send(first, rep_work(contact, call))
        assert wait_held(first, contact, 3)["leadId"] is None
    finally:
        stop_worker(first)
    second = hubspot_worker(broker, api, data, LEADFLOW_APP_ID=app_id)
    try:
        assert wait_held(second, contact, 3)["leadId"] is None
        send(second, [creation(contact)])
        assert_on_first_lead(second, lead_id, contact)
    finally:
        stop_worker(second)
