"""``<archive>/schemas.json``: the writer schema of every archived record, numbered by the archive.

Registries number schemas in the order they meet them, so the same id means different schemas
in the registry of a broker that was replaced (a fresh embedded broker with a fresh data dir).
The archive outlives them all, so it keeps its own numbering: a schema gets the id its first
registry gave it when that is still free here, else the next free one, and keeps it. Rows store
that id in ``_schema_id``; replay registers the schema in the target registry and rewrites the
id in the record's framing. Layout: ``{"<id>": {"schema": {...}, "subjects": [...]}}``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from streams.errors import LeadflowError
from streams.registry import canonical

SCHEMAS_FILE = "schemas.json"


class SchemaLog:
    def __init__(self, root: Path, schema_of: Callable[[int], dict[str, Any]] | None) -> None:
        """``schema_of``: the schema of a registry id, from the registry records come from."""
        self.path = root / SCHEMAS_FILE
        self.schema_of = schema_of
        self._ids: dict[int, int | None] = {}  # registry id -> archive id (None: unknown)
        self._subjects: set[tuple[str, int]] = set()

    def read(self) -> dict[int, dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        return {int(k): v for k, v in json.loads(text).items()}

    def archive_ids(self, topic: str, registry_ids: set[int]) -> dict[int, int | None]:
        """The archive id of each registry id; None for an id the registry does not know
        (the record did not decode either, and a replay sends its bytes as they are)."""
        subject = f"{topic}-value"
        new = {i for i in registry_ids if i not in self._ids or (
            self._ids[i] is not None and (subject, i) not in self._subjects)}
        if new and self.schema_of is not None:
            fetched = {}
            for registry_id in new:
                try:
                    fetched[registry_id] = self.schema_of(registry_id)
                except LeadflowError:
                    self._ids[registry_id] = None
            if fetched:
                self._record(subject, fetched)
        return {i: self._ids.get(i) for i in registry_ids}

    def _record(self, subject: str, fetched: dict[int, dict[str, Any]]) -> None:
        with self._exclusive():
            state = self.read()
            by_text = {canonical(e["schema"]): i for i, e in state.items()}
            changed = False
            for registry_id, schema in sorted(fetched.items()):
                archive_id = by_text.get(canonical(schema))
                if archive_id is None:
                    archive_id = registry_id if registry_id not in state else max(state) + 1
                    state[archive_id] = {"schema": schema, "subjects": []}
                    by_text[canonical(schema)] = archive_id
                    changed = True
                if subject not in state[archive_id]["subjects"]:
                    state[archive_id]["subjects"].append(subject)
                    changed = True
                self._ids[registry_id] = archive_id
                self._subjects.add((subject, registry_id))
            if changed:
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                text = json.dumps({str(k): v for k, v in sorted(state.items())}, indent=1)
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, self.path)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f".{self.path.name}.lock"), "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
