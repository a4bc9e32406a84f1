"""Vendor signatures: computed as documented (and with HubSpot's own library), refused when
tampered, stale, replayed or signed with another secret."""

from __future__ import annotations

import time

import pytest
from hubspot.utils.signature import Signature

from streams.connectors import auth
from tests.connectors_kit import (
    CALENDLY_KEY,
    CLOSE_KEY,
    HUBSPOT_SECRET,
    basic,
    bearer,
    calendly_sig,
    close_sig,
    fixture,
    hubspot_v3,
)

URI = "https://leadflow.example.test/v1/connectors/hubspot"
BODY = fixture("hubspot_batch.json")


def verify_hs(headers, body=BODY, *, versions=("v3",), secrets=(HUBSPOT_SECRET,), uri=URI):
    return auth.verify_hubspot(secrets, versions, "POST", uri, headers, body, tolerance_s=300)


def test_hubspot_v3_matches_hubspots_own_library():
    headers = hubspot_v3(URI, BODY)
    stamp = headers["X-HubSpot-Request-Timestamp"]
    ours = auth.hubspot_signature("v3", HUBSPOT_SECRET, "POST", URI, BODY, stamp)
    theirs = Signature.get_signature(HUBSPOT_SECRET, BODY.decode(), "v3", URI, "POST", stamp)
    assert ours == theirs == headers["X-HubSpot-Signature-v3"]
    assert Signature.is_valid(theirs, HUBSPOT_SECRET, BODY.decode(), URI, "POST", "v3", stamp)
    assert verify_hs(headers) == theirs


def test_hubspot_v3_signed_by_the_library_is_accepted():
    stamp = str(int(time.time() * 1000))
    signature = Signature.get_signature(HUBSPOT_SECRET, BODY.decode(), "v3", URI, "POST", stamp)
    verify_hs({"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp})


@pytest.mark.parametrize("change", ["body", "uri", "secret"])
def test_hubspot_v3_tampered_is_refused(change):
    headers = hubspot_v3(URI, BODY, secret="another" if change == "secret" else HUBSPOT_SECRET)
    body = BODY.replace(b"CONNECTED", b"UNQUALIFIED") if change == "body" else BODY
    uri = URI + "?x=1" if change == "uri" else URI
    with pytest.raises(auth.AuthError) as err:
        verify_hs(headers, body, uri=uri)
    assert err.value.reason == "TAMPERED" and err.value.code == "BAD_SIGNATURE"


def test_hubspot_v3_stale_timestamp_is_refused():
    headers = hubspot_v3(URI, BODY, at_ms=int((time.time() - 301) * 1000))
    with pytest.raises(auth.AuthError) as err:
        verify_hs(headers)
    assert err.value.reason == "STALE"


def test_hubspot_v1_v2_only_when_configured():
    for version in ("v1", "v2"):
        signature = Signature.get_signature(HUBSPOT_SECRET, BODY.decode(), version, URI, "POST")
        headers = {"X-HubSpot-Signature": signature, "X-HubSpot-Signature-Version": version}
        with pytest.raises(auth.AuthError):
            verify_hs(headers)
        assert verify_hs(headers, versions=("v3", version)) == signature
        assert auth.hubspot_signature(version, HUBSPOT_SECRET, "POST", URI, BODY) == signature


def test_hubspot_rotation_any_secret_matches():
    verify_hs(hubspot_v3(URI, BODY), secrets=("new-secret", HUBSPOT_SECRET))


def test_close_signature():
    body = fixture("close_lead_created.json")
    headers = close_sig(body)
    assert auth.verify_close([CLOSE_KEY], headers, body, tolerance_s=300)
    with pytest.raises(auth.AuthError) as err:
        auth.verify_close([CLOSE_KEY], headers, body + b" ", tolerance_s=300)
    assert err.value.reason == "TAMPERED"
    with pytest.raises(auth.AuthError) as err:
        auth.verify_close([CLOSE_KEY], close_sig(body, at=int(time.time()) - 600), body,
                          tolerance_s=300)
    assert err.value.reason == "STALE"


def test_calendly_signature():
    body = fixture("calendly_invitee_created.json")
    headers = calendly_sig(body)
    auth.verify_calendly([CALENDLY_KEY], headers, body, tolerance_s=300)
    with pytest.raises(auth.AuthError) as err:
        auth.verify_calendly([CALENDLY_KEY], headers, body.replace(b"Omar", b"Omer"),
                             tolerance_s=300)
    assert err.value.reason == "TAMPERED"
    with pytest.raises(auth.AuthError) as err:
        auth.verify_calendly([CALENDLY_KEY], calendly_sig(body, at=1), body, tolerance_s=300)
    assert err.value.reason == "STALE"
    with pytest.raises(auth.AuthError) as err:
        auth.verify_calendly([CALENDLY_KEY], {}, body, tolerance_s=300)
    assert err.value.reason == "MISSING"


def test_basic_and_bearer_and_header():
    auth.verify_basic(["u:p"], basic("u:p"))
    with pytest.raises(auth.AuthError):
        auth.verify_basic(["u:p"], basic("u:wrong"))
    auth.verify_token(["t0k"], bearer("t0k"), "Authorization", "Bearer ")
    with pytest.raises(auth.AuthError):
        auth.verify_token(["t0k"], bearer("nope"), "Authorization", "Bearer ")
    auth.verify_token(["s"], {"X-Secret": "s"}, "X-Secret")
    with pytest.raises(auth.AuthError) as err:
        auth.verify_token([], {"X-Secret": "s"}, "X-Secret")
    assert err.value.reason == "NOT_CONFIGURED"


def test_generic_hmac_message_template():
    import base64
    import hashlib
    import hmac

    body = b'{"a":1}'
    stamp = str(int(time.time()))
    sig = base64.b64encode(hmac.new(b"k", f"v0:{stamp}:".encode() + body,
                                    hashlib.sha256).digest()).decode()
    headers = {"X-Sig": "sha256=" + sig, "X-Ts": stamp}
    kwargs = dict(header="X-Sig", message="v0:{timestamp}:{body}", encoding="base64",
                  prefix="sha256=", timestamp_header="X-Ts")
    auth.verify_hmac(["k"], headers, body, **kwargs)
    with pytest.raises(auth.AuthError):
        auth.verify_hmac(["k"], headers, b'{"a":2}', **kwargs)


def test_replay_guard_refuses_a_second_accepted_request():
    guard = auth.ReplayGuard(ttl_s=300)
    guard.check("sig", now=0)
    guard.remember("sig", now=0)
    with pytest.raises(auth.AuthError) as err:
        guard.check("sig", now=10)
    assert err.value.reason == "REPLAYED"
    guard.check("sig", now=301)  # past the tolerance the timestamp check refuses it instead


def test_hubspot_v3_uri_with_escapes_verifies_decoded_or_as_sent():
    sent = URI + "?portal=a%3Ab"
    for signed_uri in (sent, URI + "?portal=a:b"):
        verify_hs(hubspot_v3(signed_uri, BODY), uri=sent)
