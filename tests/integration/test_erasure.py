"""Erasure end to end: a person posted with a unique e-mail, name and phone, with activities,
status changes, dead letters (an HTTP body, a Kafka record), an archive, a training example
and a dashboard read cache, is erased (`leadflow erase EMAIL`, then again by lead id over the
admin endpoint); the worker is restarted from its changelogs; the archive is replayed into a
fresh broker and worker. Then none of the person's values occurs in anything leadflow wrote
after the erasure: any record produced after it on the first broker (and every record of every
table changelog, which never held them), any record on the second broker, any file under the
data directory (Parquet read cell by cell: its pages are compressed, so its raw bytes would
hide a value). The dead-letter
topic, compacted on Kafka (the embedded broker never compacts), is read as compaction leaves
it, the last record per key: the person's dead letters are tombstones there."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dashboard.readcache import ReadCache
from streams import erase, topics
from streams.access import keys
from streams.archive import layout
from streams.settings import Settings
from streams.transport import true_end_offsets
from tests.conftest import API_KEY, API_KEYS, start_worker, stop_worker, wait_for
from tests.integration.test_intake import post, signed, wait_trace
from tests.integration.test_replay import replay_cli
from tests.integration.test_sla_truth import fresh_broker

pytestmark = pytest.mark.integration

# The admin endpoint wants a key of scope admin; the tests' own key has every scope.
READ_ONLY = keys.new_key()


class Person:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.email = f"Erin.Quorvath-{tag}@Erasure-Test.example.org"
        self.first = f"Erinquo{tag[:6]}"
        self.last = f"Quorvathel{tag[6:]}"
        self.phone = f"+44 20 7946 {int(tag[:6], 16) % 10_000:04d}"
        self.lead_id = str(uuid.uuid4())

    def needles(self) -> list[bytes]:
        digits = "".join(c for c in self.phone if c.isdigit())
        return [v.lower().encode() for v in (self.email, self.first, self.last, self.phone,
                                              digits)]


def _texts(value: Any) -> list[bytes]:
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray, memoryview)):
        return [bytes(value)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)] + [
            str(k).encode() for k in value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    return [str(value).encode()]


def found_in(data: bytes, person: Person) -> list[bytes]:
    low = data.lower()
    return [n for n in person.needles() if n in low]


def files_holding(root: Path, person: Person) -> dict[str, list[bytes]]:
    """Every file under ``root`` that holds one of the person's values: Parquet cell by cell
    (binary cells as their bytes), everything else as raw bytes."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            data = b"\0".join(t for row in frame.iter_rows() for t in _texts(row))
        else:
            data = path.read_bytes()
        if hits := found_in(data, person):
            out[str(path.relative_to(root))] = hits
    return out


async def _records(bootstrap: str, ends: dict[TopicPartition, int],
                   start: dict[TopicPartition, int] | None = None) -> AsyncIterator[Any]:
    """Every record of ``ends``' partitions from ``start`` (default: their beginnings) up to
    those ends (a worker that runs keeps writing: routing watermarks)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        todo = {tp: end for tp, end in ends.items() if end > (start or {}).get(tp, 0)}
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, (start or {}).get(tp, 0))
        while todo:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, f"partitions stopped short of their ends: {todo}"
            for tp, records in batch.items():
                for r in records:
                    if tp in todo and r.offset < todo[tp]:
                        yield r
                if tp in todo and await consumer.position(tp) >= todo[tp]:
                    del todo[tp]
                    consumer.pause(tp)
    finally:
        await consumer.stop()


async def _topic_records(bootstrap: str, start: dict[TopicPartition, int] | None = None
                         ) -> dict[str, list[tuple[int, bytes]]]:
    """(offset, key + value + headers) of every record per topic, from ``start`` (default:
    the beginning of every partition) up to the ends of the partitions now."""
    out: dict[str, list[tuple[int, bytes]]] = {}
    async for r in _records(bootstrap, await _ends(bootstrap), start):
        raw = b"\0".join([r.key or b"", r.value or b"", *(v for _, v in r.headers or ())])
        out.setdefault(r.topic, []).append((r.offset, raw))
    return out


async def _ends(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in await consumer.topics()
               for p in consumer.partitions_for_topic(t) or ()]
        ends = dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()
    # The embedded broker answers with its last batch's base offset + 1: the erasure's two
    # tombstones, one batch, read as one (seen: 1 in 4 runs).
    return {**ends, **await true_end_offsets(bootstrap, ends)}


async def _compacted(bootstrap: str, topic: str) -> dict[tuple[int, bytes | None], bytes | None]:
    """``topic`` as compaction leaves it: the last value per (partition, key)."""
    ends = {tp: end for tp, end in (await _ends(bootstrap)).items() if tp.topic == topic}
    return {(r.partition, r.key): r.value async for r in _records(bootstrap, ends)}


def dead_letters_holding(bootstrap: str, person: Person
                         ) -> tuple[dict[tuple[int, bytes | None], list[bytes]], int]:
    """The dead letters that hold the person once compacted, and how many are tombstones."""
    view = asyncio.run(_compacted(bootstrap, topics.DEAD_LETTERS.name))
    assert all(key is not None for _, key in view), "every dead letter has a key"
    held = {k: hits for k, v in view.items() if v and (hits := found_in(v, person))}
    return held, sum(v is None for v in view.values())


async def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key)
    finally:
        await producer.stop()


def topics_holding(bootstrap: str, person: Person,
                   start: dict[TopicPartition, int] | None = None) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for topic, records in asyncio.run(_topic_records(bootstrap, start)).items():
        for _, raw in records:
            if hits := found_in(raw, person):
                out.setdefault(topic, []).extend(h for h in hits if h not in out.get(topic, []))
    return out


def lead_body(person: Person, at: datetime) -> dict[str, Any]:
    return {
        "leadId": person.lead_id, "email": person.email, "firstName": person.first,
        "lastName": person.last, "phone": person.phone, "jobTitle": "Head of Data",
        "companyName": "Erasure Testing Ltd", "companySize": "51-200", "region": "EMEA",
        "triggerActions": ["requested_demo"],
        "enrichedData": {"linkedinUrl": f"https://www.linkedin.com/in/{person.first.lower()}",
                         "industry": "SaaS", "techStack": ["Python"]},
        "attribution": {"campaignId": "cmp-erasure", "utmSource": "google"},
        "consent": {"lawfulBasis": "consent", "consentTimestamp": at.isoformat(),
                    "channels": ["email"]},
        "timestamp": at.isoformat(),
    }


def post_person(base: str, person: Person, at: datetime) -> None:
    body = json.dumps(lead_body(person, at)).encode()
    assert post(base, "/v1/leads", body)[0] == 202
    for i, kind in enumerate(("pricing_page_view", "demo_request")):
        activity = {"eventId": str(uuid.uuid4()), "leadId": person.lead_id, "type": kind,
                    "properties": {"formEmail": person.email, "name": person.first},
                    "timestamp": (at + timedelta(minutes=5 + i)).isoformat()}
        assert post(base, "/v1/activities", json.dumps(activity).encode())[0] == 202
    statuses = [("MQL", "SAL"), ("SAL", "SQL"), ("SQL", "Closed Won")]
    for i, (before, after) in enumerate(statuses):
        change = {"event": "lead.status.updated", "payload": {
            "leadId": person.lead_id, "previousStatus": before, "newStatus": after,
            "salesNotes": f"Spoke to {person.first} {person.last} on {person.phone}",
            "updatedBy": "rep-erasure", "timestamp": (at + timedelta(hours=1 + i)).isoformat()}}
        body = json.dumps(change).encode()
        assert post(base, "/v1/webhooks/crm", body, signed(body))[0] == 202
    # A body the contract rejects (a size band that is no band): dead-lettered with its
    # bytes, the e-mail in it.
    bad = {**lead_body(person, at), "leadId": str(uuid.uuid4()), "companySize": "enormous"}
    assert post(base, "/v1/leads", json.dumps(bad).encode())[0] == 422


def produce_bad_record(bootstrap: str, person: Person) -> None:
    """A record of the lead on leads.captured that is JSON, not Avro: dead-lettered with its
    bytes (the person's name and phone, no address: only the lead id finds it)."""
    body = json.dumps({"leadId": person.lead_id, "firstName": person.first,
                       "lastName": person.last, "phone": person.phone}).encode()
    asyncio.run(_produce(bootstrap, topics.LEADS.name, person.lead_id.encode(), body))


def archived_letters(archive: Path) -> pl.DataFrame:
    return layout.scan(archive, "DeadLetter").collect()


def archived_lead(archive: Path, person: Person, record: str) -> pl.DataFrame:
    return layout.scan(archive, record).filter(pl.col("lead_id") == person.lead_id).collect()


def examples_of(data: Path, person: Person) -> list[str]:
    return [line for p in (data / "examples").glob("*.jsonl")
            for line in p.read_text().splitlines() if person.lead_id in line]


def cli_erase(env: dict[str, str], subject: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "streams.cli", "erase", subject, "--by",
                           "dpo@test", "--wait", "120"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def admin_post(base: str, body: dict[str, Any], token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}" if token else ""}
    status, _, answer = post(base, "/v1/admin/erasures", json.dumps(body).encode(), headers)
    return status, answer


def test_an_erased_person_is_in_nothing_leadflow_writes_after_the_erasure(
        tmp_path: Path) -> None:
    person = Person()
    data = tmp_path / "data"
    archive = data / "archive"
    at = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    app_id = f"leadflow-erasure-{uuid.uuid4().hex[:8]}"
    env = {"LEADFLOW_APP_ID": app_id, "LEADFLOW_ARCHIVE_FLUSH_S": "0.5",
           "LEADFLOW_API_KEYS": f"{API_KEYS},"
           f"{keys.configured('reader', ['read'], READ_ONLY).line()}"}

    with fresh_broker(tmp_path / "first") as broker:
        worker = start_worker(broker, data, **env)
        settings = worker.settings
        try:
            post_person(worker.base_url, person, at)
            produce_bad_record(settings.bootstrap, person)
            wait_trace(worker, person.lead_id, steps=6, timeout=60)
            wait_for("the lead, its statuses and both dead letters archived", lambda: (
                archived_lead(archive, person, "LeadCaptured").height
                and archived_lead(archive, person, "LeadStatusChanged").height == 3
                and archived_lead(archive, person, "ActivityRecorded").height == 2
                and set(archived_letters(archive)["source_topic"]) >= {
                    topics.LEADS.name, "http:POST /v1/leads"}), timeout=90)
            wait_for("a training example", lambda: examples_of(data, person), timeout=90)
            assert ReadCache(archive, data / "dashboard-cache").refresh_all() > 0
            # The search finds the person before the erasure, in each kind of place.
            before = files_holding(data, person)
            assert any(p.startswith("archive/LeadCaptured/") for p in before), before
            assert any(p.startswith("archive/DeadLetter/") for p in before), before
            assert any(p.startswith("dashboard-cache/") for p in before), before
            assert "leads.captured" in topics_holding(settings.bootstrap, person)
            held, _ = dead_letters_holding(settings.bootstrap, person)
            assert len(held) == 2, held  # the HTTP body and the Kafka record

            ends = asyncio.run(_ends(settings.bootstrap))
            cli_env = {**os.environ, "LEADFLOW_BROKER_PORT": str(broker.port),
                       "LEADFLOW_DATA_DIR": str(data), "LEADFLOW_APP_ID": app_id}
            done = cli_erase(cli_env, person.email)
            assert done["status"] == "done" and done["leads"] == [person.lead_id], done
            assert done["files"] >= 4, done  # captured, statuses, activities, dead letter
            assert done["dead_letter_tombstones"] == 2, done
            # Each dead letter of the person has a tombstone: none holds them once compacted.
            held, tombstones = dead_letters_holding(settings.bootstrap, person)
            assert not held and tombstones == 2, (held, tombstones)

            # Admin endpoint: only with an admin key; by lead id, the same person: nothing left.
            assert admin_post(worker.base_url, {"lead_id": person.lead_id}, None)[0] == 401
            assert admin_post(worker.base_url, {"lead_id": person.lead_id}, "wrong")[0] == 401
            assert admin_post(worker.base_url, {"lead_id": person.lead_id}, READ_ONLY)[0] == 403
            status, answer = admin_post(worker.base_url, {"lead_id": person.lead_id}, API_KEY)
            assert status == 202 and answer["leadId"] == person.lead_id, answer
            again = wait_for("the admin erasure done", lambda: erase.progress(
                settings, {"erasure_id": answer["erasureId"], "lead_id": person.lead_id}))
            # Repeating it changes nothing: no file rewritten, no tombstone sent.
            assert again["files"] == again["dead_letter_tombstones"] == 0, again
            snapshot = {p: p.stat().st_mtime_ns for p in archive.rglob("*.parquet")}
            repeat = cli_erase(cli_env, person.email)
            assert repeat["erasure_id"] == done["erasure_id"] and repeat["files"] == 0
            assert repeat["dead_letter_tombstones"] == 0, repeat
            assert snapshot == {p: p.stat().st_mtime_ns for p in archive.rglob("*.parquet")}
            assert dead_letters_holding(settings.bootstrap, person) == ({}, 2)
        finally:
            stop_worker(worker)

        # Restarted from its changelogs (memory store: the tables are read back from them).
        worker = start_worker(broker, data, **env)
        try:
            trace = wait_trace(worker, person.lead_id, steps=6, timeout=60)
            assert not found_in(json.dumps(trace).encode(), person)
            assert {s["kind"] for s in trace["steps"]} >= {"CAPTURED", "STATUS_CHANGED"}
        finally:
            stop_worker(worker)
        after = topics_holding(settings.bootstrap, person, start=ends)
        letters = dead_letters_holding(settings.bootstrap, person)
        changelogs = {t: v for t, v in topics_holding(settings.bootstrap, person).items()
                      if t.endswith("-changelog")}

    assert not after, f"records written after the erasure hold the person: {after}"
    assert not changelogs, f"table changelogs hold the person: {changelogs}"
    assert letters == ({}, 2), f"compacted, the dead letters hold the person: {letters}"

    # The broker is gone: replay the (rewritten) archive into a fresh one, a fresh worker.
    with fresh_broker(tmp_path / "second") as broker:
        out = replay_cli(broker.port, Path(os.environ["LEADFLOW_SCHEMA_REGISTRY_FILE"]), archive)
        assert "leads.captured" in out
        worker = start_worker(broker, data, **{**env, "LEADFLOW_APP_ID": app_id + "-2"})
        try:
            trace = wait_trace(worker, person.lead_id, steps=6, timeout=60)
            assert not found_in(json.dumps(trace).encode(), person)
            wait_for("the replayed decisions archived", lambda: archived_lead(
                archive, person, "LeadScored").height, timeout=60)
        finally:
            stop_worker(worker)
        second = topics_holding(Settings.load(env={
            **os.environ, "LEADFLOW_BROKER_PORT": str(broker.port)}).bootstrap, person)
    assert not second, f"the replay brought the person back: {second}"
    left = files_holding(data, person)
    assert not left, f"files under the data directory hold the person: {left}"
    log = [json.loads(line) for line in (archive / "erasures.jsonl").read_text().splitlines()]
    assert {e["kind"] for e in log} >= {"requested", "identity", "erased", "rewritten"}
    # The tombstones are audited (counts only): both of the first erasure's, none after.
    sent = [e.get("dead_letter_tombstones") for e in log if e["kind"] == "rewritten"]
    assert sum(sent) == 2 and sent[-1] == 0, sent
    assert all(e.get("requested_by") in (None, "dpo@test") or
               e["requested_by"] == "key:tests" for e in log)
