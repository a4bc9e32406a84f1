"""Machine-readable error codes shared by the API, the codec, the contract and dead letters.

The symbols match the Avro ``DeadLetter.error_code`` enum (which adds ``UNKNOWN`` as its
default), so a code travels unchanged from the place it is raised to the dead-letter topic.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_ENCODING = "BAD_ENCODING"  # not Confluent framing, Avro undecodable, bad JSON/UTF-8
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"  # schema id not in registry, or of another subject
    TOO_LARGE = "TOO_LARGE"  # record/request over the configured size limit
    MISSING_FIELD = "MISSING_FIELD"  # a required field absent, null or blank
    FIELD_MISMATCH = "FIELD_MISMATCH"  # wrong type or format (bad uuid, not a list, ...)
    INVALID_EMAIL = "INVALID_EMAIL"  # email syntax
    INVALID_ENUM = "INVALID_ENUM"  # value outside a closed set (status, activity type, ...)
    TIMESTAMP_ABSURD = "TIMESTAMP_ABSURD"  # before 2000-01-01 or too far after observation
    CONSENT_MISSING = "CONSENT_MISSING"  # kept for old dead letters: a missing basis is judged now
    BAD_SIGNATURE = "BAD_SIGNATURE"  # webhook signature missing/invalid/outside tolerance
    UNKNOWN_EVENT = "UNKNOWN_EVENT"  # webhook envelope event type not handled
    UNAVAILABLE = "UNAVAILABLE"  # broker did not acknowledge (HTTP 503)
    NOT_FOUND = "NOT_FOUND"
    INTERNAL = "INTERNAL"  # leadflow failed on this record: a bug, dead-lettered to replay later
    DELIVERY_FAILED = "DELIVERY_FAILED"  # outbound webhook refused/unreachable after retries


class LeadflowError(Exception):
    """An error a user (or a foreign producer) can cause, with a code and the offending field."""

    def __init__(self, code: ErrorCode, detail: str, field: str | None = None) -> None:
        # Passing every argument to Exception keeps the error picklable (args are replayed
        # into __init__), which matters when it crosses a process or executor boundary.
        super().__init__(code, detail, field)
        self.code = code
        self.detail = detail
        self.field = field

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        return f"{self.code}: {self.detail}{where}"

    def __repr__(self) -> str:
        return f"LeadflowError({self.code!s}, {self.detail!r}, field={self.field!r})"
