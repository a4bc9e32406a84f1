"""HubSpot: webhook batches (Webhooks API), workflow "Send a webhook" bodies, and the
contacts, calls and meetings its events name only by id, read from HubSpot's CRM API.

A Webhooks API request is a JSON array of up to 100 events::

    {"eventId": 1, "subscriptionId": 2, "portalId": 3, "appId": 4, "occurredAt": <ms>,
     "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": 123,
     "propertyName": "hs_lead_status", "propertyValue": "IN_PROGRESS", "changeSource": "CRM"}

HubSpot says eventId is not guaranteed unique, so a delivery of one event is identified by
(subscriptionType, objectTypeId, objectId, propertyName, occurredAt).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from streams.connectors import records
from streams.connectors.engine import IGNORE, Item
from streams.errors import ErrorCode, LeadflowError

SOURCE = "hubspot"
CONTACT_PROPERTIES = (
    "email", "firstname", "lastname", "phone", "jobtitle", "company", "country", "state",
    "numemployees", "industry", "hs_lead_status", "lifecyclestage", "hubspotscore",
    "hs_analytics_source", "hs_latest_source", "createdate",
)
CALL_PROPERTIES = ("hs_timestamp", "hubspot_owner_id", "hs_call_direction",
                   "hs_call_disposition", "hs_call_status")
MEETING_PROPERTIES = ("hs_timestamp", "hubspot_owner_id", "hs_meeting_outcome",
                      "hs_meeting_start_time")
OBJECT_TYPES = {"0-48": "calls", "0-47": "meetings", "calls": "calls", "meetings": "meetings",
                "call": "calls", "meeting": "meetings"}

# HubSpot's standard values → lifecycle (leadflow.toml [connectors.hubspot.status] and
# [connectors.hubspot.lifecyclestage] add to or replace them; "IGNORE" records nothing).
LEAD_STATUS = {
    "new": "MQL", "open": "MQL", "in_progress": "WORKING", "attempted_to_contact": "WORKING",
    "connected": "SAL", "open_deal": "SQL", "unqualified": "DISQUALIFIED",
    "bad_timing": "NO_RESPONSE",
}
LIFECYCLE = {
    "subscriber": IGNORE, "lead": IGNORE, "marketingqualifiedlead": "MQL",
    "salesqualifiedlead": "SQL", "opportunity": "SQL", "customer": "CLOSED_WON",
    "evangelist": IGNORE, "other": IGNORE,
}
MEETING_OUTCOME = {"scheduled": "booked", "completed": "held", "rescheduled": "rescheduled",
                   "no_show": "no_show", "canceled": "cancelled", "cancelled": "cancelled"}


@dataclass
class Config:
    status: Mapping[str, str] = field(default_factory=lambda: dict(LEAD_STATUS))
    lifecycle: Mapping[str, str] = field(default_factory=lambda: dict(LIFECYCLE))
    status_properties: tuple[str, ...] = ("hs_lead_status",)
    # Contact properties kept as custom attributes ([connectors.hubspot.attributes]:
    # property = attribute name); their types are the attributes' declarations.
    attributes: Mapping[str, str] = field(default_factory=dict)


class Api:
    """HubSpot's CRM API v3 with a private-app token: contacts in batches of up to 100
    (POST /crm/v3/objects/contacts/batch/read), calls and meetings one by one with their
    associated contacts (GET /crm/v3/objects/{type}/{id}?associations=contacts). Retries on
    429 (after Retry-After, else a doubling wait) and on 5xx or network errors."""

    BATCH = 100

    def __init__(self, base_url: str, token: str, attempts: int = 4,
                 backoff_s: float = 0.25, timeout_s: float = 3.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def get_object(self, object_type: str, object_id: Any,
                         properties: tuple[str, ...], associations: str = "") -> dict[str, Any]:
        params = {"properties": ",".join(properties)}
        if associations:
            params["associations"] = associations
        found = await self._call("GET", f"/crm/v3/objects/{object_type}/{object_id}",
                                 params=params)
        if found is None:
            raise LeadflowError(ErrorCode.NOT_FOUND, f"HubSpot has no {object_type} {object_id}")
        return found

    async def read_batch(self, object_type: str, ids: list[Any],
                         properties: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """id → object for the ids HubSpot has (a missing one is simply absent)."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), self.BATCH):
            chunk = ids[start:start + self.BATCH]
            body = {"properties": list(properties), "inputs": [{"id": str(i)} for i in chunk]}
            found = await self._call("POST", f"/crm/v3/objects/{object_type}/batch/read",
                                     json=body)
            for result in (found or {}).get("results") or []:
                out[str(result.get("id"))] = result
        return out

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        """The answer's JSON; None for 404. UNAVAILABLE after the last attempt."""
        if not self.token:
            raise LeadflowError(ErrorCode.UNAVAILABLE, "HubSpot events carry ids only; set "
                                "LEADFLOW_HUBSPOT_API_TOKEN (private app) to read them")
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        wait = self.backoff_s
        problem = "no attempt"
        # A session per call: only captures and engagements need one, and nothing is left
        # open when the worker stops.
        async with aiohttp.ClientSession(self.base_url, timeout=self.timeout) as session:
            for attempt in range(self.attempts):
                if attempt:
                    await asyncio.sleep(wait * (1 + random.random() / 4))
                    wait *= 2
                try:
                    async with session.request(method, path, headers=headers,
                                               **kwargs) as resp:
                        if resp.status in (200, 207):  # 207: a batch with some ids missing
                            return await resp.json()
                        if resp.status == 404:
                            return None
                        problem = f"HTTP {resp.status}"
                        if resp.status == 429:
                            after = resp.headers.get("Retry-After", "")
                            if after.replace(".", "", 1).isdigit():
                                wait = min(float(after), 10.0)
                        elif resp.status < 500:
                            raise LeadflowError(ErrorCode.UNAVAILABLE,
                                                f"HubSpot API answered {resp.status}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    problem = repr(exc)
        raise LeadflowError(ErrorCode.UNAVAILABLE,
                            f"HubSpot API failed {self.attempts} times: {problem}")


def dedup_key(event: Mapping[str, Any]) -> str:
    return "|".join(str(event.get(k, "")) for k in (
        "subscriptionType", "objectTypeId", "objectId", "propertyName", "occurredAt"))


def contact_lead(object_id: Any) -> str:
    return records.external_lead_id(SOURCE, "contact", object_id)


def contact_key(object_id: Any) -> str:
    return records.external_key(SOURCE, "contact", object_id)


def _prop(properties: Mapping[str, Any], name: str) -> Any:
    value = properties.get(name)
    return value.get("value") if isinstance(value, dict) else value  # workflow v1 shape


def capture_from(properties: Mapping[str, Any], head: records.Record,
                 attributes: Mapping[str, str]) -> records.Output:
    p = lambda n: _prop(properties, n)  # noqa: E731
    return records.capture(head, {
        "attributes": {attr: p(prop) for prop, attr in attributes.items()},
        "email": p("email"), "first_name": p("firstname"), "last_name": p("lastname"),
        "phone": p("phone"), "job_title": p("jobtitle"), "company_name": p("company"),
        "company_size": p("numemployees"), "region": p("country") or p("state"),
        "marketing_score": p("hubspotscore"), "industry": p("industry"),
        "original_source": p("hs_analytics_source"), "latest_source": p("hs_latest_source"),
        "trigger_actions": p("hs_lead_trigger"),
    })


def _status(table: Mapping[str, str], value: Any, what: str) -> str | None:
    text = records.text(value)
    if text is None:
        return None
    ours = table.get(text.lower())
    if ours is None:
        raise LeadflowError(ErrorCode.INVALID_ENUM, f"HubSpot {what} {text[:64]!r} has no "
                            f"lifecycle status; add it to [connectors.hubspot.{what}] in "
                            "leadflow.toml", what)
    return None if ours == IGNORE else ours


async def translate_batch(events: Any, config: Config, api: Api,
                          correlation_id: str | None) -> tuple[list[Item], list[Any]]:
    """The batch's items, and the object ids of its contact.privacyDeletion events (for
    erasure, which the caller owns)."""
    if not isinstance(events, list):
        raise LeadflowError(ErrorCode.FIELD_MISMATCH, "a HubSpot webhook body is a JSON array")
    erasures = [e.get("objectId") for e in events
                if isinstance(e, dict) and e.get("subscriptionType") == "contact.privacyDeletion"]
    rest = [e for e in events if not (isinstance(e, dict) and e.get("subscriptionType")
                                      == "contact.privacyDeletion")]
    created = list(dict.fromkeys(
        e.get("objectId") for e in rest
        if isinstance(e, dict) and e.get("subscriptionType") == "contact.creation"
        and e.get("objectId") not in (None, "")))
    contacts: dict[str, dict[str, Any]] | LeadflowError = {}
    if created:
        try:
            contacts = await api.read_batch("contacts", created,
                                            (*CONTACT_PROPERTIES, *config.attributes))
        except LeadflowError as err:
            contacts = err  # each creation carries the error; the other events go through
    items = list(await asyncio.gather(*(_one(e, config, api, contacts, correlation_id)
                                        for e in rest)))
    return items, erasures


async def _one(event: Any, config: Config, api: Api,
               contacts: dict[str, dict[str, Any]] | LeadflowError, cid: str | None) -> Item:
    if not isinstance(event, dict):
        return Item("", [], [LeadflowError(ErrorCode.FIELD_MISMATCH,
                                           "each HubSpot event is a JSON object")])
    key = dedup_key(event)
    item = Item(key, [], [])
    try:
        kind = event.get("subscriptionType")
        object_id = event.get("objectId")
        if object_id in (None, ""):
            raise LeadflowError(ErrorCode.MISSING_FIELD, "objectId is required", "objectId")
        occurred = records.timestamp(event.get("occurredAt"), "occurredAt")
        head = records.base(SOURCE, key, str(kind), contact_lead(object_id), occurred, cid,
                            contact_key(object_id))
        if kind == "contact.creation":
            if isinstance(contacts, LeadflowError):
                raise contacts
            contact = contacts.get(str(object_id))
            if contact is None:
                raise LeadflowError(ErrorCode.NOT_FOUND, f"HubSpot has no contact {object_id}")
            item.outputs.append(capture_from(contact.get("properties") or {}, head,
                                             config.attributes))
        elif kind == "contact.propertyChange":
            name = event.get("propertyName")
            table, what = ((config.lifecycle, "lifecyclestage") if name == "lifecyclestage"
                           else (config.status, "status"))
            if name == "lifecyclestage" or name in config.status_properties:
                new = _status(table, event.get("propertyValue"), what)
                if new is not None:
                    by = event.get("sourceId") or event.get("changeSource")
                    item.outputs.append(records.status(head, new, by=by))
        elif kind == "object.creation":
            item.outputs.extend(await _engagement(event, object_id, head, api))
        elif (kind == "object.propertyChange" and event.get("propertyName")
              == "hs_meeting_outcome" and OBJECT_TYPES.get(str(event.get("objectTypeId")))
              == "meetings"):
            # A meeting's outcome set later (completed, no-show, cancelled, rescheduled).
            item.outputs.extend(await _engagement(event, object_id, head, api,
                                                  outcome=event.get("propertyValue")))
        # Other subscription types are acknowledged and ignored: HubSpot would retry a
        # refusal for a day, and they carry nothing for the handoff.
    except LeadflowError as err:
        item.errors.append(err)
    return item


async def _engagement(event: Mapping[str, Any], object_id: Any, head: records.Record,
                      api: Api, outcome: Any = None) -> list[records.Output]:
    """A call or meeting created, or a meeting's outcome changed: a touch (a call, a meeting
    held) or a meeting event, on every contact it is associated with."""
    object_type = OBJECT_TYPES.get(str(event.get("objectTypeId") or event.get("objectType")))
    if object_type is None:
        return []
    props = MEETING_PROPERTIES if object_type == "meetings" else CALL_PROPERTIES
    found = await api.get_object(object_type, object_id, props, associations="contacts")
    properties = found.get("properties") or {}
    contacts = ((found.get("associations") or {}).get("contacts") or {}).get("results") or []
    out = []
    for contact in contacts:
        lead_head = {**records.of_object(head, SOURCE, "contact", contact.get("id")),
                     "event_id": records.event_id(SOURCE, head["event_id"], str(contact))}
        if object_type == "calls":
            out.append(records.touch(lead_head, f"call:{object_id}",
                                     properties.get("hubspot_owner_id"), "CALL", "CONNECTED"))
        else:
            said = str(outcome or properties.get("hs_meeting_outcome") or "scheduled").lower()
            out.append(records.meeting_record(
                lead_head, MEETING_OUTCOME.get(said, "booked"),
                meeting_key=f"meeting:{object_id}", rep=properties.get("hubspot_owner_id"),
                starts_at=properties.get("hs_meeting_start_time")))
    return out


def translate_workflow(body: Mapping[str, Any], config: Config,
                       correlation_id: str | None) -> Item:
    """A workflow's "Send a webhook" body: the contact with its properties, as a capture.
    Its object id is ``objectId`` (current action) or ``vid`` (legacy)."""
    object_id = body.get("objectId", body.get("vid", body.get("hs_object_id")))
    properties = body.get("properties") or {}
    if object_id in (None, "") or not isinstance(properties, dict):
        raise LeadflowError(ErrorCode.MISSING_FIELD, "a workflow webhook needs objectId (or "
                            "vid) and properties", "objectId")
    when = (_prop(properties, "lastmodifieddate") or _prop(properties, "createdate")
            or body.get("occurredAt"))
    if when in (None, ""):
        raise LeadflowError(ErrorCode.MISSING_FIELD, "the contact has no createdate",
                            "properties.createdate")
    key = f"workflow|{object_id}|{when}"
    head = records.base(SOURCE, key, "workflow", contact_lead(object_id),
                        records.timestamp(when, "createdate"), correlation_id,
                        contact_key(object_id))
    return Item(key, [capture_from(properties, head, config.attributes)], [])
