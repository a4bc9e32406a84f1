"""API keys: made here, given to a client once, configured on the workers only as a hash.

A key is ``lfk_`` and 43 url-safe base64 characters (32 random bytes). The prefix lets the
log redactor and secret scanners recognise one. A worker is configured with lines
``ID:SCOPE[+SCOPE…]:SHA256HEX`` (``leadflow keys new`` prints both), so its configuration,
``leadflow config`` and a leaked environment never hold a usable key. Several lines may
carry the same scopes: that is how a key is rotated without downtime.

Looking a presented key up is one SHA-256 and a dict lookup by digest: the digest of a
random 256-bit key reveals nothing about keys that match part of it, so no constant-time
compare is needed (the same reasoning as GitHub's token lookup).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from streams.errors import ErrorCode, LeadflowError

SCOPES = ("ingest", "read", "admin")
PREFIX = "lfk_"
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ApiKey:
    """A configured key: its id (named in logs and 403s), its scopes and its SHA-256."""

    id: str
    scopes: frozenset[str]
    digest: str

    def line(self) -> str:
        return f"{self.id}:{'+'.join(s for s in SCOPES if s in self.scopes)}:{self.digest}"


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(s.strip().lower() for s in scopes if s.strip())
    unknown = chosen - set(SCOPES)
    if not chosen or unknown:
        raise LeadflowError(
            ErrorCode.INVALID_ENUM,
            f"scopes must be some of {', '.join(SCOPES)}"
            + (f", not {', '.join(sorted(unknown))}" if unknown else ""),
            field="scope",
        )
    return chosen


def configured(key_id: str, scopes: Iterable[str], key: str) -> ApiKey:
    """The entry a worker is configured with for ``key``."""
    if not _ID.match(key_id):
        raise LeadflowError(
            ErrorCode.FIELD_MISMATCH,
            f"a key id is 1-64 letters, digits, '.', '_' or '-', not {key_id!r}", field="id",
        )
    return ApiKey(key_id, check_scopes(scopes), digest(key))


def parse(line: str, position: int = 1) -> ApiKey:
    """One ``ID:SCOPE[+SCOPE]:SHA256HEX`` entry of LEADFLOW_API_KEYS."""
    parts = line.strip().split(":")
    where = f"LEADFLOW_API_KEYS entry {position}"
    if len(parts) != 3:
        raise LeadflowError(
            ErrorCode.FIELD_MISMATCH,
            f"{where} is not ID:SCOPE[+SCOPE]:SHA256HEX (`leadflow keys new` prints one); "
            "a key itself is never configured on a worker, only its hash",
            field="api_keys",
        )
    key_id, scopes, hexdigest = parts
    if not _ID.match(key_id):
        raise LeadflowError(ErrorCode.FIELD_MISMATCH, f"{where}: bad key id {key_id!r}",
                            field="api_keys")
    if not _HEX.match(hexdigest.lower()):
        raise LeadflowError(
            ErrorCode.FIELD_MISMATCH,
            f"{where} ({key_id}): the hash is not 64 hex digits of SHA-256", field="api_keys",
        )
    try:
        chosen = check_scopes(scopes.split("+"))
    except LeadflowError as err:
        raise LeadflowError(err.code, f"{where} ({key_id}): {err.detail}",
                            field="api_keys") from None
    return ApiKey(key_id, chosen, hexdigest.lower())


class KeyRing:
    """The keys a worker accepts, by digest."""

    def __init__(self, lines: Iterable[str] = ()) -> None:
        self._by_digest: dict[str, ApiKey] = {}
        ids: set[str] = set()
        for position, line in enumerate(lines, 1):
            key = parse(line, position)
            if key.id in ids:
                raise LeadflowError(
                    ErrorCode.FIELD_MISMATCH,
                    f"LEADFLOW_API_KEYS: key id {key.id!r} twice; give each key its own id "
                    "(a rotated key gets a new one)", field="api_keys",
                )
            if key.digest in self._by_digest:
                raise LeadflowError(
                    ErrorCode.FIELD_MISMATCH,
                    f"LEADFLOW_API_KEYS: {key.id!r} has the hash of "
                    f"{self._by_digest[key.digest].id!r}", field="api_keys",
                )
            ids.add(key.id)
            self._by_digest[key.digest] = key

    def __len__(self) -> int:
        return len(self._by_digest)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._by_digest.values(), key=lambda k: k.id))

    def find(self, presented: str) -> ApiKey | None:
        return self._by_digest.get(digest(presented)) if presented else None
