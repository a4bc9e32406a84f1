"""Erasure in the archive: the erasure log, and archive files rewritten without a person.

``<archive>/erasures.jsonl`` is the erasure log and audit trail (``core.erasure.audit`` lines:
who asked, when, which erasure, which lead ids, how many files were rewritten — never the
personal data). It travels with the archive, so whatever reads the archive consults it: the
archiver scrubs the rows of an erased lead before it writes them (a record still in flight, or
read again from an inbound topic), and ``leadflow replay`` scrubs what it sends.

``rewrite`` rewrites each archive file that holds an erased lead's personal data: the rows
scrubbed (``core.erasure.scrub``, the original bytes re-encoded with their own writer schema),
an undecodable input of that lead dropped, written to a dot file, synced and renamed over the
old one, like every archive write. The archiver and a rewrite exclude each other through
``<archive>/.erasures.lock`` (the archiver holds it shared while it reads the log and writes
a batch): a batch written before the lead was logged is on disk when the rewrite looks, one
written after sees the lead in the log.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import polars as pl

from streams.archive import columns, layout
from streams.archive.schemalog import SchemaLog
from streams.codec import HEADER_BYTES
from streams.core import erasure

LOG = "erasures.jsonl"
LOCK = ".erasures.lock"
# Record types whose rows can hold personal data; the others are never rewritten.
REWRITTEN = tuple(erasure.PERSONAL)


class ErasureLog:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / LOG
        self._cache: tuple[tuple[int, int], Erased] | None = None

    @contextlib.contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, entry: dict[str, Any]) -> None:
        """One audit line, on disk before this returns."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"at": _iso_now(), **entry}, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def erased(self) -> Erased:
        """Lead ids and identity keys erased so far (each with its first erasure id); read
        again only when the log changed."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return Erased()
        stamp = (st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != stamp:
            found = Erased()
            for e in self.entries():
                if e.get("kind") == "erased" and e.get("lead_id"):
                    found.leads.setdefault(e["lead_id"], e["erasure_id"])
                if e.get("kind") in ("erased", "identity") and e.get("identity_key"):
                    found.keys.setdefault(e["identity_key"], e["erasure_id"])
            self._cache = (stamp, found)
        return self._cache[1]


@dataclass
class Erased:
    leads: dict[str, str] = field(default_factory=dict)  # lead id -> erasure id
    keys: dict[str, str] = field(default_factory=dict)  # identity key -> erasure id

    def __bool__(self) -> bool:
        return bool(self.leads or self.keys)

    def of(self, record_name: str, row: dict[str, Any]) -> str | None:
        """The erasure a row (decoded fields and envelope) falls under, or None."""
        for lead in (row.get("lead_id"), row.get("_key"), _text(row.get("original_key"))):
            if lead and lead in self.leads:
                return self.leads[lead]
        if not self.keys:
            return None
        if record_name == "LeadCaptured" and row.get("email"):
            key = erasure.identity_key_scan(row["email"])
            if key in self.keys:
                return self.keys[key]
        if record_name == "DeadLetter" or row.get("event_id") is None:
            raw = row.get("original_value") if record_name == "DeadLetter" else row.get("_value")
            for key in erasure.keys_in(raw) | erasure.keys_in(row.get("detail")):
                if key in self.keys:
                    return self.keys[key]
        return None


def _text(key: Any) -> str | None:
    # A dead letter's original key (bytes): the lead id of a rejected Kafka record.
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else None


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


_PARSED: dict[str, Any] = {}


def reencode(value: bytes, schema: dict[str, Any], record_name: str, erased_by: str
             ) -> tuple[bytes, dict[str, Any]]:
    """``value`` (Confluent framing) decoded with its writer ``schema``, scrubbed, encoded
    again under the same framing; and the scrubbed record."""
    key = json.dumps(schema, sort_keys=True)
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = _PARSED[key] = fastavro.parse_schema(schema)
    body = io.BytesIO(value)
    body.seek(HEADER_BYTES)
    record = erasure.scrub(record_name, fastavro.schemaless_reader(body, parsed, None),
                           erased_by)
    out = io.BytesIO()
    out.write(value[:HEADER_BYTES])
    fastavro.schemaless_writer(out, parsed, record)
    return out.getvalue(), record


def scrub_rows(record_name: str, rows: list[dict[str, Any]], erased: Erased,
               schema_of: Callable[[int], dict[str, Any] | None],
               letters: set[tuple[int, str]] | None = None) -> tuple[list[dict], int]:
    """Rows (decoded fields as Python values, envelope) with every erased person's data
    scrubbed; an undecodable row of an erased lead is left out. ``schema_of``: the writer
    schema of a row's ``_schema_id``. Returns the rows and how many changed. ``letters``
    collects the (partition, key) on leadflow.dead-letters of each dead letter that changed:
    what held the person there, for a tombstone (a null key cannot have one: ``unkeyed``)."""
    if not erased or record_name not in erasure.PERSONAL:
        return rows, 0
    out, changed = [], 0
    for row in rows:
        erased_by = erased.of(record_name, row)
        if erased_by is None:
            out.append(row)
            continue
        if row.get("event_id") is None and record_name != "DeadLetter" or (
                row.get("_value") is None):
            changed += 1  # undecodable: its bytes cannot be scrubbed, so it goes
            _held(record_name, row, letters)
            continue
        schema = schema_of(row["_schema_id"]) if row.get("_schema_id") is not None else None
        if schema is None:
            changed += 1
            _held(record_name, row, letters)
            continue
        value, record = reencode(row["_value"], schema, record_name, erased_by)
        new = {**row, **{k: record.get(k) for k in _top(record_name)}, "_value": value}
        if new != row:
            changed += 1
            _held(record_name, row, letters)
        out.append(new)
    return out, changed


UNKEYED = (-1, "")  # a dead letter written before they had keys: no tombstone can reach it


def _held(record_name: str, row: dict[str, Any], letters: set[tuple[int, str]] | None) -> None:
    if letters is None or record_name != "DeadLetter":
        return
    key, partition = row.get("_key"), row.get("_partition")
    letters.add((partition, key) if key is not None and partition is not None else UNKEYED)


def _top(record_name: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(f.split(".")[0] for f in erasure.PERSONAL[record_name]))


@dataclass
class Rewritten:
    files: int = 0
    rows: int = 0
    days: set[tuple[str, str]] = field(default_factory=set)  # (record, YYYY-MM-DD)


def rewrite(root: Path, erased: Erased, *, only: Erased | None = None) -> Rewritten:
    """Rewrite every archive file holding rows of ``only`` (default: everything erased);
    the caller holds the log's exclusive lock. Files already clean are left as they are."""
    target = only or erased
    done = Rewritten()
    schema_of = _archived_schemas(root)
    for record_name in REWRITTEN:
        paths = layout.files(root, record_name)
        for path in sorted(_candidates(paths, record_name, target)):
            frame = pl.read_parquet(path)
            rows = _python_rows(frame, record_name)
            kept, changed = scrub_rows(record_name, rows, target, schema_of)
            if not changed:
                continue
            new = layout.to_frame(record_name, [_as_record(r) for r in kept])
            new = new.select([c for c in frame.columns if c in new.columns])
            _replace(path, new)
            done.files += 1
            done.rows += changed
            done.days.add((record_name, path.parent.name.partition("=")[2]))
    return done


def dead_letter_keys(root: Path, target: Erased) -> set[tuple[int, str]]:
    """(partition, key) on leadflow.dead-letters of every archived dead letter that still
    holds one of ``target``'s people: what the erasure tombstones before ``rewrite`` scrubs
    the rows (after it, a scrubbed letter no longer shows whose it was). ``UNKEYED`` among
    them stands for any without a key."""
    schema_of = _archived_schemas(root)
    letters: set[tuple[int, str]] = set()
    paths = layout.files(root, "DeadLetter")
    for path in sorted(_candidates(paths, "DeadLetter", target)):
        rows = _python_rows(pl.read_parquet(path), "DeadLetter")
        scrub_rows("DeadLetter", rows, target, schema_of, letters)
    return letters


def _archived_schemas(root: Path) -> Callable[[int], dict[str, Any] | None]:
    """The writer schema of an archive schema id (None: unknown)."""
    schemas = SchemaLog(root, None).read()

    def schema_of(archive_id: int) -> dict[str, Any] | None:
        entry = schemas.get(archive_id)
        return None if entry is None else entry["schema"]

    return schema_of


def _candidates(paths: list[Path], record_name: str, target: Erased) -> set[Path]:
    """The files that may hold an erased lead's row, an erased person's address, or (erasing
    by e-mail) an address in bytes that did not decode: one scan of a few columns over all
    the record type's files (a lead is a needle in millions of rows)."""
    if not paths:
        return set()
    lf = layout.scan_files(paths, record_name, include_file_paths="__file")
    names = layout.schema(record_name).names()
    found: set[str] = set()
    ids = list(target.leads)
    if ids:
        hit = pl.any_horizontal(pl.col(c).is_in(ids) for c in ("lead_id", "_key") if c in names)
        if "original_key" in names:  # a dead letter: the lead id it was keyed by
            hit = hit | pl.col("original_key").is_in([i.encode() for i in ids])
        found |= set(lf.filter(hit).select("__file").unique().collect()["__file"])
    if target.keys:
        # Each of the person's leads comes with its own erasure (the identity fans them
        # out), so hashing every address of the archive is needed only when none is known.
        if record_name == "LeadCaptured" and not target.leads:
            for file, email in lf.select("__file", "email").unique().collect().iter_rows():
                if email and erasure.identity_key_scan(email) in target.keys:
                    found.add(file)
        if record_name == "DeadLetter":
            loose = lf.select("__file", "original_value", "detail")
        else:
            loose = lf.filter(pl.col("event_id").is_null()).select("__file", "_value")
        for file, *values in loose.collect().iter_rows():
            if any(erasure.keys_in(v) & target.keys.keys() for v in values):
                found.add(file)
    return {Path(f) for f in found}


def _python_rows(frame: pl.DataFrame, record_name: str) -> list[dict[str, Any]]:
    """Rows as the writer had them: maps back from their JSON text."""
    rows = frame.to_dicts()
    maps = [n for n, t in columns.field_columns(record_name).items()
            if n in frame.columns and n == "properties"]
    for row in rows:
        for name in maps:
            if isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
    return rows


def _as_record(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != layout.PARTITION}


def _replace(path: Path, frame: pl.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.erasure.tmp")
    try:
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def purge_read_cache(cache: Path | None, days: set[tuple[str, str]]) -> int:
    """Delete the dashboard read cache's months built from rewritten days (they hold the old
    rows); the dashboard reads the day files until its next refresh rebuilds them."""
    if cache is None or not cache.is_dir():
        return 0
    purged = 0
    for record_name, month in {(r, d[:7]) for r, d in days}:
        for path in (cache / record_name).glob(f"{month}*"):
            path.unlink(missing_ok=True)
            purged += 1
    return purged
