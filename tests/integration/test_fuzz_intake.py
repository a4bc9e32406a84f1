"""Poison and garbage never stop the stream (issue 19, part 2).

Hypothesis generates over a thousand malformed records for each inbound topic and over a
thousand malformed requests for each HTTP endpoint (fuzz_inputs.py says what each breaks and
the code it must earn); simulated good traffic goes between them, through the embedded broker
and one real worker. Then: every bad input is in the dead letters with its code and nothing
else is, every bad request got problem+json with its code, every good event is traced, and the
worker is the same process, never rebalanced, its memory bounded. The figures go to stdout
(``pytest -s``) and to fuzz-report.json beside the worker's log.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams import schemas, topics, webhooks
from streams.access.client import headers as client_headers
from streams.codec import Codec
from streams.registry import FileRegistry
from streams.simulate.kafka_sender import encode_plan, kafka_plan
from streams.simulate.scenario import generate
from tests.conftest import API_KEY, EXAMPLES, SECRET, Worker, wait_for
from tests.integration.fuzz_inputs import (
    PATHS,
    AvroKit,
    BadRecord,
    BadRequest,
    collect,
    http_bad,
    kafka_bad,
)

pytestmark = pytest.mark.integration

N_BAD = 1000  # per inbound topic and per endpoint
GOOD_EVERY = 8  # one good input after every this many bad ones
RSS_LIMIT_MIB = 1024  # an idle worker holds ~200 MiB; garbage must not pin much beyond that


def _examples() -> dict[str, dict[str, Any]]:
    names = {"lead": "lead-captured.json", "activity": "activity-recorded.json",
             "status": "crm-lead-status-updated.json", "touch": "crm-lead-touch-logged.json"}
    return {k: json.loads((EXAMPLES / v).read_text()) for k, v in names.items()}


class Rss:
    """Samples a process's resident memory (and reads its kernel-kept peak) while alive."""

    def __init__(self, pid: int) -> None:
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def field(self, name: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) // 1024  # kB -> MiB
        raise KeyError(name)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.samples.append(self.field("VmRSS"))

    def __enter__(self) -> Rss:
        self.start = self.field("VmRSS")
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.end, self.peak = self.field("VmRSS"), self.field("VmHWM")


def _good_traffic(codec: Codec) -> tuple[list[Any], list[Any]]:
    """Simulated deliveries: half the leads go over Kafka, half over HTTP (one lead's events
    all one way, in order)."""
    scenario = generate(19, leads=60, days=2, now=datetime.now(UTC) - timedelta(minutes=5),
                        bad_share=0, repeat_share=0, wall_seconds=0, delays="none")
    kafka, http = [], []
    for d in scenario.deliveries:
        assert d.expected == "OK" and d.lead_id
        if int(d.lead_id.replace("-", ""), 16) % 2:
            plan = kafka_plan(d)
            value, expected = encode_plan(plan, codec, None)
            assert expected == "OK" and plan.record is not None
            kafka.append((plan.topic, plan.key, value, plan.record["lead_id"],
                          plan.record["event_id"]))
        else:
            http.append(d)
    return kafka, http


def _interleave(bad: list[Any], good: list[Any]) -> list[tuple[bool, Any]]:
    out: list[tuple[bool, Any]] = []
    good_iter = iter(good)
    for i, item in enumerate(bad):
        out.append((False, item))
        if i % GOOD_EVERY == GOOD_EVERY - 1 and (g := next(good_iter, None)) is not None:
            out.append((True, g))
    out += [(True, g) for g in good_iter]
    return out


async def _send_kafka(bootstrap: str, stream: list[tuple[bool, Any]]) -> tuple[
    dict[tuple[str, int, int], BadRecord], list[tuple[str, str]]
]:
    """Produce in order; (topic, partition, offset) of each bad record, (lead, event) of each
    good one."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_request_size=8 * 1024 * 1024)
    await producer.start()
    bad: dict[tuple[str, int, int], BadRecord] = {}
    good: list[tuple[str, str]] = []
    try:
        pending: list[tuple[Any, Any]] = []
        for is_good, item in stream:
            if is_good:
                topic, key, value, lead_id, event_id = item
                pending.append((await producer.send(topic, value, key=key), None))
                good.append((lead_id, event_id))
            else:
                pending.append((await producer.send(item.topic, item.value, key=item.key), item))
            if len(pending) >= 500:
                await _settle(pending, bad)
        await _settle(pending, bad)
    finally:
        await producer.stop()
    return bad, good


async def _settle(pending: list[tuple[Any, Any]], bad: dict[Any, BadRecord]) -> None:
    for fut, item in pending:
        meta = await fut
        if item is not None:
            bad[(meta.topic, meta.partition, meta.offset)] = item
    pending.clear()


def _headers(req: BadRequest, cid: str, body_signed: bytes) -> dict[str, str]:
    headers = {"X-Correlation-Id": cid, **req.headers}
    if req.content_type:
        headers["Content-Type"] = req.content_type
    if req.path != PATHS["crm"] or req.sign == "none":
        return headers
    msg = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    how = req.sign
    if how == "valid":
        return headers | webhooks.sign(SECRET, msg, body_signed)
    if how == "unsigned":
        return headers
    if how == "wrong_secret":
        return headers | webhooks.sign("whsec_" + "b3RoZXItc2VjcmV0LW9mLXNvbWVvbmU=", msg,
                                       body_signed)
    if how in ("stale", "replayed_stale"):
        return headers | webhooks.sign(SECRET, msg, body_signed, now - timedelta(minutes=6))
    if how == "future":
        return headers | webhooks.sign(SECRET, msg, body_signed, now + timedelta(minutes=6))
    if how == "garbage_signature":
        return headers | {"webhook-id": msg, "webhook-timestamp": str(int(now.timestamp())),
                          "webhook-signature": "v1,not-base64!! v1, v2,=="}
    if how == "other_body":
        return headers | webhooks.sign(SECRET, msg, body_signed + b" ")
    if how == "timestamp_not_a_number":
        signed = webhooks.sign(SECRET, msg, body_signed)
        return headers | signed | {"webhook-timestamp": "soon"}
    if how == "signature_of_other_id":
        return headers | webhooks.sign(SECRET, msg, body_signed) | {"webhook-id": msg + "x"}
    raise AssertionError(how)


async def _send_http(base: str, stream: list[tuple[bool, Any]]) -> tuple[
    list[tuple[BadRequest, int, str, dict[str, Any]]], list[tuple[str, str]], int
]:
    """POST everything, 8 at a time. Bad: (request, status, content type, problem); good:
    (lead, event) of each 202; and how many exact replays were accepted again."""
    sem = asyncio.Semaphore(8)
    bad: list[tuple[BadRequest, int, str, dict[str, Any]]] = []
    good: list[tuple[str, str]] = []
    replays = 0
    timeout = aiohttp.ClientTimeout(total=60)

    # With the tests' key of scope ingest: the fuzz is of bodies and signatures, not access.
    async with aiohttp.ClientSession(base, timeout=timeout,
                                     headers=client_headers(API_KEY)) as http:

        async def post(path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, Any]:
            for _ in range(20):  # 503: the broker did not acknowledge in time; senders retry
                async with sem, http.post(path, data=body, headers=headers) as resp:
                    raw = await resp.read()
                    if resp.status != 503:
                        return resp.status, resp.headers.get("Content-Type", ""), json.loads(raw)
                await asyncio.sleep(1)
            raise AssertionError(f"{path}: 503 twenty times")

        async def one(is_good: bool, item: Any, i: int) -> None:
            nonlocal replays
            cid = f"fuzz-{i}"
            if is_good:
                path = {"lead": "/v1/leads", "activity": "/v1/activities"}.get(
                    item.channel, "/v1/webhooks/crm")
                headers = {"Content-Type": "application/json", "X-Correlation-Id": cid}
                if path == "/v1/webhooks/crm":
                    headers |= webhooks.sign(SECRET, item.webhook_id, item.body)
                status, _, answer = await post(path, item.body, headers)
                assert status == 202, (status, answer, item.body[:300])
                good.append((answer["leadId"], answer["eventId"]))
                if i % 5 == 0 and path == "/v1/webhooks/crm":  # the CRM retries: same request
                    status, _, again = await post(path, item.body, headers)
                    assert (status, again["eventId"]) == (202, answer["eventId"])
                    replays += 1
                return
            status, ctype, answer = await post(item.path, item.body, _headers(item, cid, item.body))
            bad.append((item, status, ctype, answer))

        await asyncio.gather(*(one(g, item, i) for i, (g, item) in enumerate(stream)))
    return bad, good, replays


def _dead_letters(bootstrap: str, codec: Codec, want: int, timeout: float) -> list[dict]:
    """Every dead letter once at least ``want`` are there (or the timeout passed)."""

    async def read() -> list[dict]:
        consumer = AIOKafkaConsumer(
            topics.DEAD_LETTERS.name, bootstrap_servers=bootstrap,
            auto_offset_reset="earliest", enable_auto_commit=False,
        )
        await consumer.start()
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for records in batch.values():
                    out += [codec.decode(r.value, topics.DEAD_LETTERS.record) for r in records]
                if len(out) >= want and not batch:
                    break
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_poison_and_garbage_never_stop_the_stream(worker: Worker) -> None:
    settings = worker.settings
    registry = FileRegistry(settings.registry_path)
    codec = Codec(registry)
    started = time.monotonic()

    # -- generate ------------------------------------------------------------------------------
    kits = {spec.name: AvroKit(codec, spec, []) for spec in topics.INBOUND}
    other = [registry.register(t.subject, schemas.latest(t.record))
             for t in (topics.DEAD_LETTERS, topics.SCORED)]
    for kit in kits.values():
        kit.foreign_ids = other + [k.own_id for k in kits.values() if k is not kit]
    bad_records = {
        name: collect(kafka_bad(kit, settings.max_record_bytes), N_BAD)
        for name, kit in kits.items()
    }
    examples = _examples()
    bad_requests = {
        route: collect(http_bad(route, examples, settings.max_request_bytes), N_BAD)
        for route in PATHS
    }
    good_kafka, good_http = _good_traffic(codec)
    generated = time.monotonic()
    kafka_stream = _interleave([r for rs in _zip(bad_records.values()) for r in rs], good_kafka)
    http_stream = _interleave([r for rs in _zip(bad_requests.values()) for r in rs], good_http)

    # -- send, watching the worker -------------------------------------------------------------
    pid = worker.proc.pid
    log_before = worker.log.read_text(errors="replace")

    async def send_all() -> Any:
        return await asyncio.gather(_send_kafka(settings.bootstrap, kafka_stream),
                                    _send_http(worker.base_url, http_stream))

    with Rss(pid) as rss:
        (kafka_bad_sent, kafka_good), (http_bad_sent, http_good, replays) = asyncio.run(
            send_all())
        sent = time.monotonic()
        want = len(kafka_bad_sent) + len(http_bad_sent)
        letters = _dead_letters(settings.bootstrap, codec, want, timeout=90)
        good = kafka_good + http_good
        leads = sorted({lead for lead, _ in good})
        traced: set[str] = set()

        def all_traced() -> bool:
            from streams.views import fetch_trace

            for lead in leads:
                status, body = fetch_trace(worker.base_url, lead)
                if status == 200:
                    traced.update(s["event_id"] for s in body["steps"])
            return all(event in traced for _, event in good)

        try:
            wait_for("every good event traced", all_traced, timeout=60)
        except AssertionError:
            missing = [(lead, e) for lead, e in good if e not in traced]
            raise AssertionError(
                f"{len(missing)} of {len(good)} good events not traced, e.g. {missing[:3]}; "
                f"{len(letters)} of {want} dead letters; worker alive: "
                f"{worker.proc.poll() is None}; log:\n"
                + worker.log.read_text(errors="replace")[-6000:]) from None
    done = time.monotonic()

    # -- the dead letters: every bad input once with its code, nothing else --------------------
    inbound = {t.name for t in topics.INBOUND}
    by_source: dict[tuple[str, int, int], str] = {}
    by_cid: dict[str, str] = {}
    strays = []
    for d in letters:
        if d["source_topic"] in inbound:
            where = (d["source_topic"], d["source_partition"], d["source_offset"])
            assert where not in by_source, f"dead-lettered twice: {where}"
            by_source[where] = d["error_code"]
        elif d["source_topic"].startswith("http:"):
            by_cid[d["correlation_id"]] = d["error_code"]
        else:
            strays.append(d)
    assert not strays, [(d["source_topic"], d["error_code"], d["detail"]) for d in strays[:5]]
    wrong = Counter(
        (item.topic, item.kind, item.code, by_source.get(where, "NOT DEAD-LETTERED"))
        for where, item in kafka_bad_sent.items() if by_source.get(where) != item.code
    )
    if wrong:
        raise AssertionError("bad records dead-lettered wrongly (topic, way, expected, got):\n"
                             + "\n".join(f"{n} x {k}" for k, n in wrong.most_common(30)))
    assert set(by_source) == set(kafka_bad_sent), "good Kafka records were dead-lettered"

    problems = Counter()
    for req, status, ctype, answer in http_bad_sent:
        got = (status, ctype.split(";")[0], answer.get("code"),
               by_cid.get(answer.get("correlationId", "")))
        expected = (req.status, "application/problem+json", req.code, req.code)
        if got != expected:
            problems[(req.path, req.kind, expected, got)] += 1
    if problems:
        raise AssertionError("bad requests answered wrongly (path, way, expected, got):\n"
                             + "\n".join(f"{n} x {k}" for k, n in problems.most_common(30)))
    bad_cids = {a["correlationId"] for *_, a in http_bad_sent}
    assert set(by_cid) == bad_cids, "good requests were dead-lettered"

    # -- the worker: same process, one assignment, bounded memory -----------------------------
    assert worker.proc.poll() is None, "the worker died"
    log = worker.log.read_text(errors="replace")[len(log_before):]
    assert "Traceback" not in log, log[log.index("Traceback"):][:3000]
    assert "Restarting dead" not in log and "Crashed" not in log, log[-3000:]
    assert "Elected group leader" not in log and "rebalancing" not in log.lower(), log[-3000:]
    assert rss.peak < RSS_LIMIT_MIB, f"worker peak RSS {rss.peak} MiB"

    report = {
        "inputs": {
            **{name: Counter(r.topic for r in kafka_bad_sent.values())[name] for name in inbound},
            **{path: sum(1 for r, *_ in http_bad_sent if r.path == path)
               for path in PATHS.values()},
        },
        "good": {"kafka": len(kafka_good), "http": len(http_good), "replayed_webhooks": replays},
        "dead_letters_by_code": dict(sorted(Counter(d["error_code"] for d in letters).items())),
        "kafka_dead_letters_by_topic_and_code": {
            name: dict(sorted(Counter(c for (t, _, _), c in by_source.items()
                                      if t == name).items())) for name in sorted(inbound)},
        "http_by_route_and_code": {
            path: dict(sorted(Counter(r.code for r, *_ in http_bad_sent
                                      if r.path == path).items())) for path in PATHS.values()},
        "worker_rss_mib": {"start": rss.start, "peak": rss.peak, "end": rss.end},
        "seconds": {"generate": round(generated - started, 1), "send": round(sent - generated, 1),
                    "drain": round(done - sent, 1)},
    }
    print("\nfuzz report:", json.dumps(report, indent=1))
    (worker.log.parent / "fuzz-report.json").write_text(json.dumps(report, indent=1))
    for name in inbound:
        assert report["inputs"][name] >= N_BAD
    for path in PATHS.values():
        assert report["inputs"][path] >= N_BAD


def _zip(groups: Any) -> list[list[Any]]:
    """Round robin over the groups: the endpoints take their bad requests side by side."""
    groups = [list(g) for g in groups]
    return [[g[i] for g in groups if i < len(g)] for i in range(max(map(len, groups)))]
