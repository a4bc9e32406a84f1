"""Request authentication, exactly as each vendor documents it.

Every check raises ``AuthError`` (HTTP 401, code BAD_SIGNATURE) with a ``reason`` that says
which part failed: MISSING, TAMPERED (no secret reproduces the signature), STALE (timestamp
outside the tolerance), REPLAYED (``ReplayGuard``), WRONG_ORG (Salesforce). Several secrets
may be configured for each source, newest first, so a secret rotates without downtime.
Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from streams.errors import ErrorCode, LeadflowError


class AuthError(LeadflowError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(ErrorCode.BAD_SIGNATURE, detail)
        self.reason = reason

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (AuthError, (self.reason, self.detail))


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _need(secrets: Sequence[str], what: str) -> None:
    if not any(secrets):
        raise AuthError("NOT_CONFIGURED", f"no {what} is configured; refusing unsigned input")


def _header(headers: dict[str, str], name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise AuthError("MISSING", f"header {name} is missing")
    return value


def _fresh(stamp: str, tolerance_s: float, now: float, name: str, *, millis: bool) -> None:
    try:
        at = float(stamp) / (1000 if millis else 1)
    except ValueError:
        raise AuthError("STALE", f"{name} {stamp[:32]!r} is not a timestamp") from None
    if abs(now - at) > tolerance_s:
        raise AuthError("STALE", f"{name} is {now - at:.0f} s from now; the tolerance is "
                                 f"{tolerance_s:.0f} s")


def _match(candidates: Sequence[str], given: str, what: str) -> None:
    for expected in candidates:
        if hmac.compare_digest(expected.encode(), given.encode()):
            return
    raise AuthError("TAMPERED", f"{what} does not match the body (wrong secret or altered body)")


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def hubspot_signature(version: str, secret: str, method: str, uri: str, body: bytes,
                      timestamp: str = "") -> str:
    """HubSpot's X-HubSpot-Signature (v1, v2) and X-HubSpot-Signature-v3."""
    text = body.decode("utf-8", "replace")
    if version == "v1":
        return hashlib.sha256(f"{secret}{text}".encode()).hexdigest()
    if version == "v2":
        return hashlib.sha256(f"{secret}{method}{uri}{text}".encode()).hexdigest()
    message = f"{method}{uri}{text}{timestamp}".encode()
    return base64.b64encode(hmac_sha256(secret.encode(), message)).decode()


# HubSpot's v3 instructions decode these escapes in the URI before signing; the URI as
# received is tried too, so a URL without them verifies either way.
_HUBSPOT_DECODE = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
                   "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}


def _hubspot_uris(uri: str) -> list[str]:
    decoded = uri
    for escape, char in _HUBSPOT_DECODE.items():
        decoded = decoded.replace(escape, char).replace(escape.lower(), char)
    return [uri] if decoded == uri else [uri, decoded]


def verify_hubspot(secrets: Sequence[str], versions: Sequence[str], method: str, uri: str,
                   headers: Mapping[str, str], body: bytes, *, tolerance_s: float,
                   now: float | None = None) -> str:
    """v3 always; v1/v2 only when listed in ``versions``. Returns the signature."""
    _need(secrets, "HubSpot client secret (LEADFLOW_HUBSPOT_CLIENT_SECRETS)")
    low = _lower(headers)
    now = time.time() if now is None else now
    if "x-hubspot-signature-v3" in low or "v3" in versions and "x-hubspot-signature" not in low:
        given = _header(low, "X-HubSpot-Signature-v3")
        stamp = _header(low, "X-HubSpot-Request-Timestamp")
        _fresh(stamp, tolerance_s, now, "X-HubSpot-Request-Timestamp", millis=True)
        _match([hubspot_signature("v3", s, method, u, body, stamp)
                for s in secrets for u in _hubspot_uris(uri)], given, "X-HubSpot-Signature-v3")
        return given
    version = low.get("x-hubspot-signature-version", "v1").strip().lower()
    if version not in ("v1", "v2") or version not in versions:
        raise AuthError("MISSING", f"HubSpot signature {version} is not accepted; enable it in "
                                   "LEADFLOW_HUBSPOT_SIGNATURE_VERSIONS or use v3")
    given = _header(low, "X-HubSpot-Signature")
    _match([hubspot_signature(version, s, method, uri, body) for s in secrets], given,
           f"X-HubSpot-Signature ({version})")
    return given


def verify_close(keys: Sequence[str], headers: Mapping[str, str], body: bytes, *,
                 tolerance_s: float, now: float | None = None) -> str:
    """close-sig-hash: hex HMAC-SHA256 keyed with the hex-decoded signature key over
    close-sig-timestamp + body."""
    _need(keys, "Close signature key (LEADFLOW_CLOSE_SIGNATURE_KEYS)")
    low = _lower(headers)
    given = _header(low, "close-sig-hash").lower()
    stamp = _header(low, "close-sig-timestamp")
    _fresh(stamp, tolerance_s, time.time() if now is None else now, "close-sig-timestamp",
           millis=False)
    expected = []
    for key in keys:
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            continue  # not a Close key; the others may still match
        expected.append(hmac_sha256(raw, stamp.encode() + body).hex())
    _match(expected, given, "close-sig-hash")
    return given


def verify_calendly(keys: Sequence[str], headers: Mapping[str, str], body: bytes, *,
                    tolerance_s: float, now: float | None = None) -> str:
    """Calendly-Webhook-Signature: t=<unix s>,v1=<hex HMAC-SHA256 over "t.body">."""
    _need(keys, "Calendly webhook signing key (LEADFLOW_CALENDLY_SIGNING_KEYS)")
    low = _lower(headers)
    parts = dict(p.strip().split("=", 1) for p in _header(
        low, "Calendly-Webhook-Signature").split(",") if "=" in p)
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp or not given:
        raise AuthError("MISSING", "Calendly-Webhook-Signature needs t= and v1=")
    _fresh(stamp, tolerance_s, time.time() if now is None else now, "signature t", millis=False)
    _match([hmac_sha256(k.encode(), stamp.encode() + b"." + body).hex() for k in keys],
           given.lower(), "Calendly-Webhook-Signature")
    return given


def verify_hmac(secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *,
                header: str, message: str, encoding: str, prefix: str = "",
                timestamp_header: str = "", tolerance_s: float = 300.0,
                now: float | None = None) -> str:
    """A generic HMAC-SHA256: ``message`` is a template of ``{body}`` and ``{timestamp}``
    (the value of ``timestamp_header``, checked against the tolerance when set)."""
    _need(secrets, "HMAC secret")
    low = _lower(headers)
    given = _header(low, header).removeprefix(prefix).strip()
    stamp = ""
    if timestamp_header:
        stamp = _header(low, timestamp_header)
        _fresh(stamp, tolerance_s, time.time() if now is None else now, timestamp_header,
               millis=len(stamp) > 11)
    head, _, tail = message.partition("{body}")
    signed = head.format(timestamp=stamp).encode() + body + tail.format(timestamp=stamp).encode()
    digests = [hmac_sha256(s.encode(), signed) for s in secrets]
    encoded = [base64.b64encode(d).decode() if encoding == "base64" else d.hex()
               for d in digests]
    _match(encoded, given if encoding == "base64" else given.lower(), header)
    return given


def verify_basic(credentials: Sequence[str], headers: Mapping[str, str]) -> str:
    """HTTP basic auth against ``user:password`` pairs."""
    _need(credentials, "basic-auth credential (user:password)")
    value = _header(_lower(headers), "Authorization")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        raise AuthError("MISSING", "Authorization must be Basic")
    try:
        given = base64.b64decode(token.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise AuthError("TAMPERED", "Authorization is not valid base64") from None
    _match(credentials, given, "basic-auth credential")
    return ""


def verify_token(tokens: Sequence[str], headers: Mapping[str, str], header: str,
                 prefix: str = "") -> str:
    """A bearer token (``Authorization: Bearer …``) or a shared secret in a named header."""
    _need(tokens, f"secret for header {header}")
    given = _header(_lower(headers), header)
    if prefix:
        if not given.lower().startswith(prefix.lower()):
            raise AuthError("MISSING", f"{header} must start with {prefix.strip()}")
        given = given[len(prefix):].strip()
    _match(tokens, given, header)
    return ""


class ReplayGuard:
    """Signed deliveries already accepted, remembered for the timestamp tolerance: a second
    identical request inside it is a replay (after it, the timestamp check refuses it).

    Only accepted deliveries are remembered: a vendor's retry of a request leadflow failed
    is let through. Per worker; every event id is also deduplicated in the trace."""

    def __init__(self, ttl_s: float, limit: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()

    def check(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if key and key in self._seen:
            raise AuthError("REPLAYED", "this signed request was already accepted")

    def remember(self, key: str, now: float | None = None) -> None:
        if not key:
            return
        now = time.monotonic() if now is None else now
        self._seen[key] = now + self.ttl_s
        self._seen.move_to_end(key)
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)
