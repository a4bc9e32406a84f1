"""Salesforce outbound messages: SOAP parsed with defusedxml, OrganizationId checked,
one capture per lead and a status per notification."""

from __future__ import annotations

import pytest

from streams.connectors import auth, records, salesforce
from streams.errors import LeadflowError
from tests.connectors_kit import SF_ORG, fixture


def test_notifications_to_records():
    notes = salesforce.parse(fixture("salesforce_outbound.xml"))
    assert salesforce.check_org(notes, [SF_ORG[:15]]) == SF_ORG  # 15- or 18-character id
    items = salesforce.translate(notes, salesforce.LEAD_STATUS, "cid")
    assert [i.key for i in items] == ["04l5g00000ExAmp1AA", "04l5g00000ExAmp2AA"]
    lead_id = records.external_lead_id("salesforce", "Lead", "00Q5g00000ExAmp1EA")
    (k1, cap1), (k2, st1) = items[0].outputs
    (k3, cap2), (k4, st2) = items[1].outputs
    assert (k1, k2, k3, k4) == ("lead", "status", "lead", "status")
    assert cap1["event_id"] == cap2["event_id"]  # one lead, one capture
    assert cap1["lead_id"] == lead_id and cap1["company_size"] == "SIZE_201_1000"
    assert (st1["new_status"], st2["new_status"]) == ("MQL", "WORKING")
    assert st1["event_id"] != st2["event_id"]


def test_wrong_org_is_refused():
    notes = salesforce.parse(fixture("salesforce_outbound.xml"))
    with pytest.raises(auth.AuthError) as err:
        salesforce.check_org(notes, ["00D000000000001"])
    assert err.value.reason == "WRONG_ORG"
    with pytest.raises(auth.AuthError):
        salesforce.check_org(notes, [])


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>',
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    b"not xml",
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>',
])
def test_hostile_or_foreign_xml_is_refused(body):
    with pytest.raises(LeadflowError) as err:
        salesforce.parse(body)
    assert err.value.code in ("BAD_ENCODING", "FIELD_MISMATCH")


def test_unknown_status_is_an_item_error_and_ack_is_soap():
    text = fixture("salesforce_outbound.xml").replace(b"Working - Contacted", b"Nurture")
    items = salesforce.translate(salesforce.parse(text), salesforce.LEAD_STATUS, None)
    assert items[1].errors[0].code == "INVALID_ENUM"
    assert b"<Ack>true</Ack>" in salesforce.ACK


def test_only_leads_are_mapped():
    text = fixture("salesforce_outbound.xml").replace(b'xsi:type="sf:Lead"',
                                                      b'xsi:type="sf:Contact"', 1)
    items = salesforce.translate(salesforce.parse(text), salesforce.LEAD_STATUS, None)
    assert items[0].outputs == [] and items[0].errors[0].code == "FIELD_MISMATCH"
    assert [k for k, _ in items[1].outputs] == ["lead", "status"]
