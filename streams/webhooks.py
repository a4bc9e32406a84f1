"""Standard Webhooks signatures (HMAC-SHA256 over ``id.timestamp.body``).

The ``standardwebhooks`` library does the signing, the 5-minute tolerance, several
space-separated signatures and the constant-time compare; here we add secret rotation (any of
the configured secrets may match) and turn its errors into our error code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from streams.errors import ErrorCode, LeadflowError


def sign(secret: str, msg_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
    """Headers a sender attaches: webhook-id, webhook-timestamp, webhook-signature."""
    at = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


def verify(secrets: Sequence[str], headers: Mapping[str, str], body: bytes) -> str:
    """Return the webhook-id when one of the secrets signed this body; else BAD_SIGNATURE."""
    if not secrets:
        raise LeadflowError(
            ErrorCode.BAD_SIGNATURE,
            "no webhook secret is configured (LEADFLOW_WEBHOOK_SECRETS); refusing unsigned input",
        )
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id", "")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LeadflowError(ErrorCode.BAD_ENCODING, f"body is not UTF-8: {exc}") from exc
    reason = "no matching signature"
    for secret in secrets:
        try:
            Webhook(secret).verify(text, lower, json_parse=False)
            return msg_id
        except WebhookVerificationError as exc:
            reason = str(exc)
        except (ValueError, TypeError) as exc:  # malformed signature list or base64
            reason = f"malformed webhook-signature header: {exc}"
    raise LeadflowError(ErrorCode.BAD_SIGNATURE, f"webhook signature rejected: {reason}")
