"""Schema registries: the shared JSON file and a Confluent-compatible REST registry."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streams import schemas
from streams.codec import Codec
from streams.errors import ErrorCode, LeadflowError
from streams.registry import FileRegistry, HttpRegistry, canonical

REPO = Path(__file__).resolve().parents[2]


def _schema(n: int) -> dict[str, Any]:
    return {
        "type": "record",
        "name": f"R{n}",
        "namespace": "t",
        "doc": "test",
        "fields": [{"name": "a", "type": "int", "doc": "a"}],
    }


# --- FileRegistry -----------------------------------------------------------------------------


def test_register_is_idempotent_whatever_the_key_order(tmp_path: Path) -> None:
    registry = FileRegistry(tmp_path / "r.json")
    first = registry.register("s-value", _schema(1))
    shuffled = dict(reversed(list(_schema(1).items())))
    assert registry.register("s-value", shuffled) == first
    assert registry.register("s-value", _schema(2)) == first + 1
    assert registry.subjects() == {"s-value": [first, first + 1]}


def test_same_schema_under_two_subjects_shares_its_id(tmp_path: Path) -> None:
    registry = FileRegistry(tmp_path / "r.json")
    a = registry.register("a-value", _schema(1))
    assert registry.register("b-value", _schema(1)) == a
    assert registry.subjects() == {"a-value": [a], "b-value": [a]}


def test_ids_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "r.json"
    schema_id = FileRegistry(path).register("s-value", _schema(1))
    again = FileRegistry(path)
    assert again.schema(schema_id) == _schema(1)
    assert again.register("s-value", _schema(1)) == schema_id
    assert {p.name for p in path.parent.iterdir()} == {"r.json", "r.json.lock"}


def test_an_id_registered_by_another_instance_is_found(tmp_path: Path) -> None:
    reader = FileRegistry(tmp_path / "r.json")
    reader.register("s-value", _schema(1))
    schema_id = FileRegistry(tmp_path / "r.json").register("s-value", _schema(2))
    assert reader.schema(schema_id) == _schema(2)


def test_unknown_id(tmp_path: Path) -> None:
    registry = FileRegistry(tmp_path / "r.json")
    for _ in range(2):  # with and without a file
        with pytest.raises(LeadflowError) as excinfo:
            registry.schema(99)
        assert excinfo.value.code == ErrorCode.UNKNOWN_SCHEMA
        registry.register("s-value", _schema(1))


_WORKER = """
import json, sys
from streams.registry import FileRegistry
registry = FileRegistry(sys.argv[1])
me = int(sys.argv[2])
ids = {}
for n in range(32):
    schema = {"type": "record", "name": f"R{n % 8}_{me if n % 2 else 'shared'}", "doc": "d",
              "fields": [{"name": "a", "type": "int", "doc": "a"}]}
    ids[json.dumps(schema, sort_keys=True)] = registry.register(f"s{n % 3}-value", schema)
print(json.dumps(ids))
"""


def test_processes_sharing_the_file_agree_on_ids(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), str(me)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for me in range(4)
    ]
    seen: dict[str, int] = {}
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0
        for text, schema_id in json.loads(out).items():
            assert seen.setdefault(text, schema_id) == schema_id
    # 4 shared schemas (R0_shared, R2_shared, ...) + 4 per worker (R1_<me>, R3_<me>, ...)
    assert len(seen) == 4 + 4 * 4
    assert sorted(seen.values()) == list(range(1, len(seen) + 1))
    stored = json.loads(path.read_text())
    assert {canonical(s) for s in stored["schemas"].values()} == {
        canonical(json.loads(t)) for t in seen
    }
    assert not list(tmp_path.glob("*.tmp"))


# --- HttpRegistry against a real HTTP server --------------------------------------------------


class FakeSchemaRegistry(ThreadingHTTPServer):
    """The two endpoints of Confluent's Schema Registry REST API leadflow uses."""

    def __init__(self, auth: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.auth = auth
        self.ids: dict[str, int] = {}
        self.texts: dict[int, str] = {}
        self.requests: list[tuple[str, str, str | None]] = []

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeSchemaRegistry

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        auth = self.headers.get("Authorization")
        self.server.requests.append((self.command, self.path, auth))
        if self.server.auth and auth != self.server.auth:
            self._reply(401, {"error_code": 401, "message": "Unauthorized"})
            return False
        return True

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if not self._authorised():
            return
        parts = self.path.split("/")
        if len(parts) != 4 or parts[1] != "subjects" or parts[3] != "versions":
            self._reply(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("schemaType", "AVRO") != "AVRO" or "schema" not in body:
            self._reply(422, {"error_code": 42201, "message": "Invalid schema"})
            return
        text = canonical(json.loads(body["schema"]))
        if text not in self.server.ids:
            self.server.ids[text] = len(self.server.ids) + 1
            self.server.texts[self.server.ids[text]] = body["schema"]
        self._reply(200, {"id": self.server.ids[text]})

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._authorised():
            return
        prefix = "/schemas/ids/"
        found = None
        if self.path.startswith(prefix) and self.path[len(prefix) :].isdigit():
            found = self.server.texts.get(int(self.path[len(prefix) :]))
        if found is None:
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})
            return
        self._reply(200, {"schema": found})


@pytest.fixture
def server() -> Iterator[FakeSchemaRegistry]:
    srv = FakeSchemaRegistry()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_http_register_and_fetch(server: FakeSchemaRegistry) -> None:
    registry = HttpRegistry(server.url + "/")
    a = registry.register("leads.captured-value", _schema(1))
    assert registry.register("leads.captured-value", _schema(1)) == a  # cached: no request
    assert registry.schema(a) == _schema(1)  # cached from registration: no request
    assert server.requests == [("POST", "/subjects/leads.captured-value/versions", None)]
    fresh = HttpRegistry(server.url, timeout=2)
    assert fresh.schema(a) == _schema(1)
    assert fresh.schema(a) == _schema(1)
    assert server.requests[1:] == [("GET", f"/schemas/ids/{a}", None)]


def test_http_subject_is_escaped(server: FakeSchemaRegistry) -> None:
    HttpRegistry(server.url).register("odd/subject name", _schema(1))
    assert server.requests[0][1] == "/subjects/odd%2Fsubject%20name/versions"


def test_http_unknown_id(server: FakeSchemaRegistry) -> None:
    with pytest.raises(LeadflowError) as excinfo:
        HttpRegistry(server.url).schema(42)
    assert excinfo.value.code == ErrorCode.UNKNOWN_SCHEMA
    assert "Schema not found" in excinfo.value.detail


def test_http_basic_auth_from_the_url_is_sent_and_never_shown(server: FakeSchemaRegistry) -> None:
    server.auth = "Basic dXNlcjpzM2NyM3Q="  # user:s3cr3t
    host_port = server.url.removeprefix("http://")
    registry = HttpRegistry(f"http://user:s3cr3t@{host_port}")
    assert "s3cr3t" not in registry.url
    registry.register("s-value", _schema(1))
    wrong = HttpRegistry(f"http://user:nope@{host_port}")
    with pytest.raises(LeadflowError) as excinfo:
        wrong.register("s-value", _schema(2))
    assert excinfo.value.code == ErrorCode.UNAVAILABLE
    assert "nope" not in str(excinfo.value)


def test_http_unreachable_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LeadflowError) as excinfo:
        HttpRegistry(f"http://127.0.0.1:{port}", timeout=2).schema(1)
    assert excinfo.value.code == ErrorCode.UNAVAILABLE


def test_codec_over_http_registry(server: FakeSchemaRegistry) -> None:
    record = schemas.samples(schemas.latest("LeadCaptured"))[1]
    data = Codec(HttpRegistry(server.url)).encode("leads.captured-value", "LeadCaptured", record)
    assert Codec(HttpRegistry(server.url)).decode(data, "LeadCaptured") == record
