"""Schema registries: where the codec turns a schema into an id and an id back into a schema.

- ``FileRegistry``: a JSON file, for the embedded broker on a laptop, in CI and in tests.
  Several worker processes may share it, so writes are serialised with ``flock`` and made
  atomic with a rename; readers never lock, they only ever see a complete file.
- ``HttpRegistry``: a Confluent-compatible Schema Registry over REST, for production.

Ids follow Confluent's rules: one id per distinct schema, shared by every subject that
registers it; registering the same schema again returns the same id.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from streams.errors import ErrorCode, LeadflowError

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class Registry(Protocol):
    def register(self, subject: str, schema: dict[str, Any]) -> int: ...

    def schema(self, schema_id: int) -> dict[str, Any]: ...


def canonical(schema: dict[str, Any]) -> str:
    """One text per schema whatever its key order or spacing, so re-registering is idempotent."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class FileRegistry:
    """Subjects, versions and ids in one JSON file, safe to share between processes.

    File layout: ``{"schemas": {"<id>": <schema>}, "subjects": {"<subject>": [<id>, ...]}}``
    where each subject's list holds its ids in version order.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._schemas: dict[int, dict[str, Any]] = {}
        self._ids: dict[tuple[str, str], int] = {}
        self._mutex = threading.Lock()

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        text = canonical(schema)
        known = self._ids.get((subject, text))
        if known is not None:
            return known
        with self._mutex, self._exclusive():
            state = self._read()
            by_text = {canonical(s): int(i) for i, s in state["schemas"].items()}
            schema_id = by_text.get(text)
            if schema_id is None:
                schema_id = max((int(i) for i in state["schemas"]), default=0) + 1
                state["schemas"][str(schema_id)] = json.loads(text)
            history = state["subjects"].setdefault(subject, [])
            if schema_id not in history:
                history.append(schema_id)
                self._write(state)
            self._remember(state)
            self._ids[(subject, text)] = schema_id
            return schema_id

    def schema(self, schema_id: int) -> dict[str, Any]:
        found = self._schemas.get(schema_id)
        if found is None:
            # Another process may have registered it since we last looked.
            with self._mutex:
                self._remember(self._read())
                found = self._schemas.get(schema_id)
        if found is None:
            raise LeadflowError(
                ErrorCode.UNKNOWN_SCHEMA, f"schema id {schema_id} is not in {self.path}"
            )
        return found

    def subjects(self) -> dict[str, list[int]]:
        """Every subject with its ids in version order (for operators and tests)."""
        return {k: list(v) for k, v in self._read()["subjects"].items()}

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"schemas": {}, "subjects": {}}
        state = json.loads(text)
        state.setdefault("schemas", {})
        state.setdefault("subjects", {})
        return state

    def _write(self, state: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(state, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _remember(self, state: dict[str, Any]) -> None:
        for key, schema in state["schemas"].items():
            self._schemas.setdefault(int(key), schema)


class HttpRegistry:
    """A Confluent-compatible Schema Registry. Credentials may be given in the URL
    (``https://user:secret@host``); they are sent as HTTP Basic auth and never shown."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urllib.parse.urlsplit(url)
        self._auth: str | None = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            pair = f"{user}:{urllib.parse.unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
            netloc = parts.hostname or ""
            if parts.port is not None:
                netloc = f"{netloc}:{parts.port}"
            parts = parts._replace(netloc=netloc)
        self.url = urllib.parse.urlunsplit(parts).rstrip("/")
        self.timeout = timeout
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        text = canonical(schema)
        known = self._ids.get((subject, text))
        if known is not None:
            return known
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        answer = self._call("POST", path, {"schemaType": "AVRO", "schema": text})
        try:
            schema_id = int(answer["id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LeadflowError(
                ErrorCode.UNAVAILABLE, f"registry at {self.url} answered without an id"
            ) from exc
        self._ids[(subject, text)] = schema_id
        self._schemas.setdefault(schema_id, json.loads(text))
        return schema_id

    def schema(self, schema_id: int) -> dict[str, Any]:
        found = self._schemas.get(schema_id)
        if found is not None:
            return found
        answer = self._call("GET", f"/schemas/ids/{int(schema_id)}", None)
        if answer.get("schemaType", "AVRO") != "AVRO":
            raise LeadflowError(
                ErrorCode.UNKNOWN_SCHEMA,
                f"schema id {schema_id} is {answer['schemaType']}, not AVRO",
            )
        try:
            found = json.loads(answer["schema"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LeadflowError(
                ErrorCode.UNKNOWN_SCHEMA, f"registry gave no readable schema for id {schema_id}"
            ) from exc
        if not isinstance(found, dict):
            raise LeadflowError(
                ErrorCode.UNKNOWN_SCHEMA, f"schema id {schema_id} is not an Avro record"
            )
        self._schemas[schema_id] = found
        return found

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", _CONTENT_TYPE)
        if data is not None:
            request.add_header("Content-Type", _CONTENT_TYPE)
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            message = _error_message(exc)
            if exc.code == 404:
                raise LeadflowError(
                    ErrorCode.UNKNOWN_SCHEMA, f"{method} {path}: {message}"
                ) from exc
            if exc.code in (409, 422):
                # Incompatible or invalid schema: a contract problem, not an outage.
                raise LeadflowError(
                    ErrorCode.UNKNOWN_SCHEMA, f"registry refused {path}: {message}"
                ) from exc
            raise LeadflowError(
                ErrorCode.UNAVAILABLE, f"registry at {self.url}: HTTP {exc.code} {message}"
            ) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise LeadflowError(
                ErrorCode.UNAVAILABLE, f"registry at {self.url} unreachable: {exc}"
            ) from exc
        if not isinstance(answer, dict):
            raise LeadflowError(ErrorCode.UNAVAILABLE, f"registry at {self.url}: not a JSON object")
        return answer


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("message", exc.reason))
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)
