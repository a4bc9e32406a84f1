"""Owner notifications through a real HTTP receiver: signed, retried, dead-lettered."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streams import webhooks
from streams.broker import EmbeddedBroker, free_port
from tests.conftest import SECRET, Worker, start_worker, stop_worker
from tests.integration.test_intake import dead_letters, example, post

pytestmark = pytest.mark.integration


class Receiver(ThreadingHTTPServer):
    """Verifies every signature; refuses the first try of each message with 503, and every
    try for a lead in ``refuse``."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), Handler)
        self.tries: Counter[str] = Counter()
        self.accepted: dict[str, dict[str, Any]] = {}
        self.refuse: set[str] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/leadflow"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["content-length"]))
        msg_id = webhooks.verify([SECRET], dict(self.headers), body)
        doc = json.loads(body)
        self.server.tries[msg_id] += 1
        ok = doc["data"]["leadId"] not in self.server.refuse and self.server.tries[msg_id] > 1
        if ok:
            self.server.accepted[msg_id] = doc
        self.send_response(204 if ok else 503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def notifying(broker: EmbeddedBroker, receiver: Receiver,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    worker = start_worker(
        broker, Path(tmp_path_factory.mktemp("notify")), LEADFLOW_NOTIFY_URL=receiver.url,
        LEADFLOW_NOTIFY_SECRET=SECRET, LEADFLOW_NOTIFY_ATTEMPTS="3",
        LEADFLOW_NOTIFY_BACKOFF_S="0.1",
    )
    yield worker
    stop_worker(worker)


def send_lead(worker: Worker, lead_id: str) -> None:
    lead = json.loads(example("lead-captured.json"))
    lead.update(leadId=lead_id, email=f"{lead_id[:8]}@example.org",
                timestamp=datetime.now(UTC).isoformat())
    assert post(worker.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202


def test_the_owner_is_notified_after_a_retry_and_a_refusing_endpoint_ends_in_dead_letters(
    notifying: Worker, receiver: Receiver
) -> None:
    accepted, refused = str(uuid.uuid4()), str(uuid.uuid4())
    receiver.refuse.add(refused)
    send_lead(notifying, accepted)
    send_lead(notifying, refused)

    deadline = time.monotonic() + 30
    letters: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not letters:
        letters = [d for d in dead_letters(notifying) if d["error_code"] == "DELIVERY_FAILED"]
    (letter,) = letters
    assert letter["original_key"] == refused.encode()
    assert letter["source_topic"] == "leads.routed"
    assert "HTTP 503 after 3 attempts" in letter["detail"]

    docs = {d["data"]["leadId"]: (msg_id, d) for msg_id, d in receiver.accepted.items()}
    assert refused not in docs
    msg_id, doc = docs[accepted]
    assert receiver.tries[msg_id] == 2  # refused once with 503, accepted on the retry
    assert doc["type"] == "lead.assigned" and doc["data"]["ownerId"]
    assert doc["data"]["firstTouchDueAt"] > doc["timestamp"]


def test_the_owner_is_chased_when_a_first_touch_deadline_passes(
    notifying: Worker, receiver: Receiver
) -> None:
    lead_id = str(uuid.uuid4())
    lead = json.loads(example("lead-captured.json"))
    captured = datetime.now(UTC) - timedelta(hours=25)  # a STANDARD lead: 24 h to touch it
    lead.update(leadId=lead_id, email=f"{lead_id[:8]}@example.org", timestamp=captured.isoformat())
    assert post(notifying.base_url, "/v1/leads", json.dumps(lead).encode())[0] == 202
    # An event dated now moves the partition's clock past the deadline.
    activity = json.loads(example("activity-recorded.json"))
    activity.update(eventId=str(uuid.uuid4()), leadId=lead_id, type="page_view",
                    timestamp=datetime.now(UTC).isoformat())
    assert post(notifying.base_url, "/v1/activities", json.dumps(activity).encode())[0] == 202

    def overdue() -> list[dict[str, Any]]:
        return [d for d in receiver.accepted.values()
                if d["type"] == "lead.sla_overdue" and d["data"]["leadId"] == lead_id]

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not overdue():
        time.sleep(0.5)
    (doc,) = overdue()
    assert doc["data"]["clause"] == "FIRST_TOUCH" and doc["data"]["ownerId"]
    assert doc["data"]["verdictKey"] == f"{lead_id}/FIRST_TOUCH"
    assert doc["data"]["deadline"] < datetime.now(UTC).isoformat()
