"""Salesforce Outbound Messages: SOAP 1.1 ``notifications`` of up to 100 ``Notification``s,
each carrying an sObject (here ``sf:Lead``) with the fields chosen in Setup, answered with
``<Ack>true</Ack>``. Salesforce signs nothing: the ``OrganizationId`` is checked against
configuration (and the endpoint should only be reachable over TLS).

Salesforce redelivers a message it got no Ack for, with the same Notification Id, for up to
24 h: the Notification Id is the dedup key. Every notification is the lead as it is now, so
it is both a capture (the identity and company fields) and a status (``Status``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from streams.connectors import records
from streams.connectors.auth import AuthError
from streams.connectors.engine import IGNORE, Item
from streams.errors import ErrorCode, LeadflowError

SOURCE = "salesforce"
OUTBOUND = "{http://soap.sforce.com/2005/09/outbound}"
SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"

ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>"
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    b"<Ack>true</Ack></notificationsResponse>"
    b"</soapenv:Body></soapenv:Envelope>"
)

# Salesforce's standard lead statuses → lifecycle ([connectors.salesforce.status]).
LEAD_STATUS = {
    "open - not contacted": "MQL",
    "working - contacted": "WORKING",
    "closed - converted": "SQL",
    "closed - not converted": "DISQUALIFIED",
}


def fault(message: str) -> bytes:
    """A SOAP Fault: Salesforce keeps the message and retries it."""
    from xml.sax.saxutils import escape

    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        "<soapenv:Body><soapenv:Fault><faultcode>soapenv:Server</faultcode>"
        f"<faultstring>{escape(message)}</faultstring></soapenv:Fault>"
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


def parse(body: bytes) -> Element:
    try:
        root = ElementTree.fromstring(body, forbid_dtd=True)
    except (DefusedXmlException, ElementTree.ParseError, ValueError) as exc:
        raise LeadflowError(ErrorCode.BAD_ENCODING, f"not a SOAP message: {exc}") from None
    notifications = root.find(f"{SOAP}Body/{OUTBOUND}notifications")
    if notifications is None:
        raise LeadflowError(ErrorCode.FIELD_MISMATCH, "no soapenv:Body/notifications element")
    return notifications


def _org15(org: str) -> str:
    return org.strip()[:15]  # the 18-character id is the 15-character one plus a checksum


def check_org(notifications: Element, allowed: Sequence[str]) -> str:
    if not any(allowed):
        raise AuthError("NOT_CONFIGURED", "no Salesforce OrganizationId is configured "
                        "(LEADFLOW_SALESFORCE_ORG_IDS); refusing unverified input")
    org = (notifications.findtext(f"{OUTBOUND}OrganizationId") or "").strip()
    if not org or _org15(org) not in {_org15(a) for a in allowed}:
        raise AuthError("WRONG_ORG", f"OrganizationId {org[:18]!r} is not configured")
    return org


def _fields(sobject: Element) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for child in sobject:
        name = child.tag.rsplit("}", 1)[-1]
        nil = child.get(f"{XSI}nil") == "true"
        out[name] = None if nil else (child.text or "").strip() or None
    return out


def translate(notifications: Element, status_map: Mapping[str, str],
              correlation_id: str | None) -> list[Item]:
    items = []
    for note in notifications.findall(f"{OUTBOUND}Notification"):
        note_id = (note.findtext(f"{OUTBOUND}Id") or "").strip()
        sobject = note.find(f"{OUTBOUND}sObject")
        item = Item(note_id, [], [])
        items.append(item)
        try:
            if not note_id or sobject is None:
                raise LeadflowError(ErrorCode.MISSING_FIELD, "a Notification needs Id and "
                                    "sObject", "Notification")
            kind = (sobject.get(f"{XSI}type") or "sf:Lead").rsplit(":", 1)[-1]
            if kind != "Lead":
                raise LeadflowError(ErrorCode.FIELD_MISMATCH, f"an outbound message of "
                                    f"sf:{kind[:40]}: only sf:Lead is mapped", "sObject")
            f = _fields(sobject)
            object_id = f.get("Id")
            if not object_id:
                raise LeadflowError(ErrorCode.MISSING_FIELD, "the sObject has no Id", "sf:Id")
            when = f.get("LastModifiedDate") or f.get("CreatedDate")
            if not when:
                raise LeadflowError(ErrorCode.MISSING_FIELD, "add LastModifiedDate to the "
                                    "outbound message's fields", "sf:LastModifiedDate")
            occurred = records.timestamp(when, "LastModifiedDate")
            lead_id = records.external_lead_id(SOURCE, kind, object_id)
            head = records.base(SOURCE, note_id, "capture", lead_id, occurred, correlation_id,
                                records.external_key(SOURCE, kind, object_id))
            # The capture is dated when the lead was created, so later notifications of the
            # same lead are the same capture (a duplicate) rather than new ones.
            created = records.timestamp(f.get("CreatedDate") or when, "CreatedDate")
            capture_head = {**head, "occurred_at": created,
                            "event_id": records.event_id(SOURCE, f"{kind}:{object_id}",
                                                         "capture")}
            item.outputs.append(records.capture(capture_head, {
                "email": f.get("Email"), "first_name": f.get("FirstName"),
                "last_name": f.get("LastName"), "phone": f.get("Phone"),
                "job_title": f.get("Title"), "company_name": f.get("Company"),
                "company_size": f.get("NumberOfEmployees"),
                "region": f.get("Country") or f.get("State"), "industry": f.get("Industry"),
                "original_source": f.get("LeadSource"),
                "marketing_score": f.get("Rating_Score__c"),
            }))
            status_text = f.get("Status")
            if status_text:
                ours = status_map.get(status_text.lower())
                if ours is None:
                    raise LeadflowError(
                        ErrorCode.INVALID_ENUM, f"Salesforce Status {status_text[:64]!r} has "
                        "no lifecycle status; add it to [connectors.salesforce.status]",
                        "sf:Status")
                if ours != IGNORE:
                    status_head = {**head, "event_id": records.event_id(
                        SOURCE, f"{kind}:{object_id}:{status_text}:{when}", "status")}
                    item.outputs.append(records.status(
                        status_head, ours, reason=f.get("Disqualification_Reason__c"),
                        notes=f.get("Description"), by=f.get("OwnerId")))
        except LeadflowError as err:
            item.errors.append(err)
    return items
