"""A whole CRM export: CSV rows with their line numbers → mapped rows or row errors.

Line numbers are those an editor shows (the header is line 1; a quoted cell spanning lines
counts them all), so a user can find a rejected row. Completely empty rows (Excel leaves
",,,," at the end of sheets) hold nothing to import; they are counted, not reported.

Beyond one row's own checks (``rows.map_row``) the file as a whole is checked for the same
lead twice — both would carry the same event ids, so the second would silently lose — and
every record is encoded against its Avro schema, so nothing fails after producing began.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from streams import topics
from streams.codec import Codec
from streams.errors import ErrorCode, LeadflowError
from streams.importing.exceptions import ExportError
from streams.importing.mapping import ImportMapping, check_header
from streams.importing.rows import MappedRow, RowError, map_row

Result = MappedRow | RowError


@dataclass
class Summary:
    """What an import read, imported and rejected."""

    rows: int = 0  # data rows read (empty rows not counted)
    empty: int = 0
    imported: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # error code → rows
    events: Counter[str] = field(default_factory=Counter)  # topic → records

    def add(self, result: Result) -> None:
        self.rows += 1
        if isinstance(result, RowError):
            self.rejected[result.code] += 1
            return
        self.imported += 1
        for kind, _ in result.records:
            self.events[topics.BY_KIND[kind].name] += 1

    @property
    def rejected_rows(self) -> int:
        return sum(self.rejected.values())


class OfflineRegistry:
    """A registry that hands out id 0 and knows no schema: enough to check that a record
    encodes under its schema (and within the size limit) without reaching a registry."""

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        return 0

    def schema(self, schema_id: int) -> dict[str, Any]:
        raise LeadflowError(ErrorCode.UNKNOWN_SCHEMA, "offline registry: encode checks only")


def rejected_path(export: Path) -> Path:
    """Where the rejected rows of ``export`` go: ``<name>.rejected.csv`` next to it."""
    return export.with_name(f"{export.stem}.rejected.csv")


class Export:
    """A CRM export read through a mapping. Each method reads the file afresh, so a big
    export is never held in memory (an import checks every row before producing any)."""

    def __init__(self, path: Path, mapping: ImportMapping) -> None:
        self.path = path
        self.mapping = mapping

    def header(self) -> list[str]:
        """The header row, checked against the mapping (``ExportError``/``MappingError``)."""
        with self._open() as fh:
            return self._header(csv.reader(fh, delimiter=self.mapping.delimiter))

    def count(self) -> int:
        """Data rows, empty ones excluded (for a progress bar's total)."""
        return sum(1 for _ in self.rows())

    def rows(self, summary: Summary | None = None) -> Iterator[tuple[int, list[str]]]:
        """(line, cells) of every data row; empty rows are counted in ``summary``."""
        with self._open() as fh:
            reader = csv.reader(fh, delimiter=self.mapping.delimiter)
            self._header(reader)
            line = reader.line_num + 1
            try:
                for cells in reader:
                    if any(c.strip() for c in cells):
                        yield line, cells
                    elif summary is not None:
                        summary.empty += 1
                    line = reader.line_num + 1
            except UnicodeDecodeError:
                raise self._undecodable() from None
            except csv.Error as exc:
                raise ExportError(f"{self.path}: line {line}: not readable as CSV: {exc}") from None

    def plan(
        self,
        *,
        observed_at: datetime,
        max_skew: timedelta,
        codec: Codec | None = None,
        summary: Summary | None = None,
    ) -> Iterator[tuple[list[str], Result]]:
        """(cells, what the row becomes) for every data row, in file order. With ``codec``
        every record is also encoded, and a record that does not encode rejects its row."""
        header = self.header()
        width = len(header)
        seen: dict[str, int] = {}
        for line, cells in self.rows(summary):
            result: Result
            if len(cells) != width:
                result = RowError(
                    line, ErrorCode.FIELD_MISMATCH.value, "row",
                    f"{len(cells)} cells where the header has {width} (a stray delimiter "
                    "or quote?)",
                )
            else:
                result = map_row(
                    self.mapping, line, dict(zip(header, cells, strict=True)),
                    observed_at=observed_at, max_skew=max_skew,
                    correlation_id=f"import:{self.path.name}:{line}",
                )
            if isinstance(result, MappedRow):
                result = self._once(result, seen) or self._encodes(result, codec)
            if summary is not None:
                summary.add(result)
            yield cells, result

    def _once(self, row: MappedRow, seen: dict[str, int]) -> RowError | None:
        first = seen.setdefault(row.lead_id, row.line)
        if first == row.line:
            return None
        columns = self.mapping.columns
        if "lead_id" in columns:
            where, what = columns["lead_id"], "lead id"
        else:
            where, what = columns["email"], "email and capture time (so the same lead id)"
        return RowError(
            row.line, ErrorCode.FIELD_MISMATCH.value, where, f"same {what} as line {first}"
        )

    @staticmethod
    def _encodes(row: MappedRow, codec: Codec | None) -> Result:
        if codec is None:
            return row
        for kind, record in row.records:
            spec = topics.BY_KIND[kind]
            try:
                codec.encode(spec.subject, spec.record, record)
            except LeadflowError as err:
                return RowError(row.line, str(err.code), spec.record, err.detail)
        return row

    def _open(self) -> IO[str]:
        try:
            # newline="": the csv module handles line ends itself, including inside quotes.
            return self.path.open(newline="", encoding=self.mapping.encoding)
        except OSError as exc:
            raise ExportError(f"{self.path}: cannot read the export: {exc.strerror}") from exc

    def _undecodable(self) -> ExportError:
        """The error naming the first line that does not decode (decoding runs ahead of the
        csv reader in chunks, so where it failed says little; only read on failure)."""
        encoding = self.mapping.encoding
        with self.path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    raw.decode(encoding)
                except UnicodeDecodeError as exc:
                    return ExportError(
                        f"{self.path}: line {number} is not {encoding} text ({exc.reason} at "
                        f"byte {exc.start + 1}); set [formats] encoding in the mapping"
                    )
        return ExportError(f"{self.path}: not {encoding} text; set [formats] encoding")

    def _header(self, reader: Any) -> list[str]:
        try:
            header = next(reader, None)
        except UnicodeDecodeError:
            # Text is decoded in chunks ahead of the csv reader: the bad byte may be far below.
            raise self._undecodable() from None
        except csv.Error as exc:
            raise ExportError(f"{self.path}: the header line is not readable: {exc}") from None
        if not header or not any(c.strip() for c in header):
            raise ExportError(f"{self.path}: empty file, or no header line")
        header = [c.strip() for c in header]
        doubles = sorted({c for c in header if header.count(c) > 1})
        if doubles:
            raise ExportError(f"{self.path}: column(s) {doubles} appear twice in the header")
        check_header(self.mapping, header, str(self.path))
        return header


class RejectedWriter:
    """The rejected rows as CSV: ``line``, ``error``, then the row as it was. Opened on the
    first rejection, so an import without any writes no file."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path = path
        self.header = header
        self.rows = 0
        self._fh: IO[str] | None = None
        self._writer: Any = None

    def write(self, error: RowError, cells: list[str]) -> None:
        if self._writer is None:
            self._fh = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(["line", "error", *self.header])
        self._writer.writerow([error.line, error.message, *cells])
        self.rows += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
