"""Who is looking, whether they may see personal data, and the audit of every unmasked view.

Identity, in order: Streamlit's logged-in user (``st.user``, when OIDC auth is configured in
``.streamlit/secrets.toml``), else the email in the trusted proxy header named by
``dashboard_identity_header`` (for example ``X-Forwarded-Email`` from oauth2-proxy; only set
it when every request passes through that proxy, or anyone can claim any name), else
anonymous. A viewer sees personal data (emails, names, phones, sales notes, rejected
payloads) only when their email is in ``dashboard_pii_viewers`` ("*" lets everyone, for a
laptop demo). Every unmasked view appends one JSON line to the audit log — viewer, what,
which lead, when — and never the personal data itself.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ANONYMOUS = "anonymous"
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(\.[\w-]+)+")


@dataclass(frozen=True)
class Viewer:
    identity: str  # an email, or "anonymous"
    via: str  # "streamlit auth" | "header <name>" | "none"
    allowed: bool


def identify(user: Mapping[str, Any] | None, headers: Mapping[str, str] | None,
             header: str, allowed: tuple[str, ...]) -> Viewer:
    identity, via = ANONYMOUS, "none"
    if user and user.get("is_logged_in") and user.get("email"):
        identity, via = str(user["email"]).strip().lower(), "streamlit auth"
    elif header and headers:
        wanted = header.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), "")
        if value.strip():
            identity, via = value.strip().lower(), f"header {header}"
    names = {a.strip().lower() for a in allowed}
    ok = "*" in names or (identity != ANONYMOUS and identity in names)
    return Viewer(identity, via, ok)


def mask_email(value: str | None) -> str | None:
    if not value:
        return value
    local, _, domain = value.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"


def mask_name(value: str | None) -> str | None:
    return f"{value[:1]}•••" if value else value


def mask_phone(value: str | None) -> str | None:
    return f"•••{value[-2:]}" if value else value


def mask_text(value: str | bytes | None) -> str | None:
    """Free text or a rejected payload: only its size shows."""
    if value is None:
        return None
    return f"(hidden: {len(value)} {'bytes' if isinstance(value, bytes) else 'characters'})"


def preview(value: bytes | None, limit: int = 300) -> str | None:
    if value is None:
        return None
    text = value[:limit].decode("utf-8", errors="replace")
    return text + ("…" if len(value) > limit else "")


MASKS = {"email": mask_email, "first_name": mask_name, "last_name": mask_name,
         "phone": mask_phone}


def masked(row: Mapping[str, Any], viewer: Viewer) -> dict[str, Any]:
    """A lead's row with its personal fields masked unless the viewer may see them."""
    if viewer.allowed:
        return dict(row)
    return {k: MASKS[k](v) if k in MASKS else v for k, v in row.items()}


def redact_emails(text: str | None) -> str | None:
    return None if text is None else _EMAIL.sub(lambda m: mask_email(m.group(0)) or "", text)


def audit(path: Path, viewer: Viewer, what: str, subject: str, page: str) -> None:
    """One line per unmasked view; appended with O_APPEND so concurrent sessions never
    interleave within a line."""
    line = json.dumps({
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"), "viewer": viewer.identity,
        "via": viewer.via, "page": page, "what": what, "subject": subject,
    }, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
