"""Reading CSV cells as leadflow values: text with defaults, times, whole numbers, lists."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from streams.core.contract import fail
from streams.errors import ErrorCode
from streams.importing.mapping import ImportMapping

_INT32 = 2**31


def parse_time(raw: str, mapping: ImportMapping, key: str) -> datetime:
    """ISO 8601 or one of ``[formats] datetime``; naive times are in ``[formats] timezone``.
    Truncated to the millisecond (what Avro timestamp-millis keeps)."""
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        for pattern in mapping.datetime_formats:
            try:
                moment = datetime.strptime(raw, pattern)
                break
            except ValueError:
                continue
    if moment is None:
        tried = "".join(f", {p!r}" for p in mapping.datetime_formats)
        raise fail(
            ErrorCode.FIELD_MISMATCH,
            f"{raw[:64]!r} is not a time (tried ISO 8601{tried}; see [formats] datetime)", key,
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=mapping.timezone or UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:
        raise fail(ErrorCode.TIMESTAMP_ABSURD, f"{raw[:64]!r} is out of range", key) from None
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def whole(raw: str, key: str, what: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        try:
            number = float(raw)
        except ValueError:
            number = float("nan")
        if not number.is_integer():  # spreadsheets write 3 as "3.0"; "3.5" is not a count
            raise fail(ErrorCode.FIELD_MISMATCH, f"{raw[:64]!r} is not {what}", key) from None
        value = int(number)
    if not -_INT32 <= value < _INT32:
        raise fail(ErrorCode.FIELD_MISMATCH, f"{raw[:64]!r} is out of range", key)
    return value


class Row:
    """Cell access by leadflow field: stripped, blank as None, ``[defaults]`` filled in."""

    def __init__(self, mapping: ImportMapping, cells: Mapping[str, str | None]) -> None:
        self.mapping = mapping
        self.cells = cells

    def text(self, name: str) -> str | None:
        column = self.mapping.columns.get(name)
        value = (self.cells.get(column) or "").strip() if column is not None else ""
        return value or self.mapping.defaults.get(name)

    def time(self, name: str) -> datetime | None:
        raw = self.text(name)
        return None if raw is None else parse_time(raw, self.mapping, name)

    def items(self, name: str) -> list[str]:
        raw = self.text(name)
        if raw is None:
            return []
        return [part.strip() for part in raw.split(self.mapping.list_separator) if part.strip()]
