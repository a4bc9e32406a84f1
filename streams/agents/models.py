"""Models in the worker: retraining on the leader, publishing the champion, hot-swapping it.

- **Retraining** (leader only): every ``model_poll_s`` the leader checks whether a retrain is
  due (``retrain_every_s`` since the last attempt, or ``retrain_after_labels`` new labels in
  the example store) and runs ``models.retrain.job`` in a child process (or a thread), so the
  event loop never waits for it. A promotion is published at once; a rejection or a failure is
  recorded in DATA_DIR/models/retrains.jsonl with its reason, and the champion stays.
- **Publishing**: the champion goes on the compacted ``models.scoring`` topic under one key
  ("scoring"), so the topic's latest record is the model in force. The registry on disk is
  the truth about decisions: a ``leadflow model promote|rollback`` made by hand is published
  by the leader at its next check (a rollback to no trained model publishes a POINTS record:
  back to the configured points model).
- **Hot swap** (every worker): each worker reads ``models.scoring`` itself, outside the
  consumer group (an agent would get the one partition on one worker only), from the start
  when it starts — before its agents take any event, so a restart keeps the champion — then
  follows it. A record replaces ``app.policies`` with a copy holding the new model (frozen
  policies, swapped whole: an event is scored by one model, never half of one). The intake
  reads ``app.policies`` per batch.
- **Threshold**: a trained model's score is round(100·p); the MQL threshold in force stays
  the configured one until ``leadflow threshold apply`` records another, which every worker
  picks up within ``model_poll_s``. A promotion never changes it: the leader logs the
  recommended threshold and the command that applies it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import multiprocessing
import time
import uuid
from pathlib import Path
from typing import Any

from streams import topics
from streams.core.contract import EVENT_NAMESPACE
from streams.core.handoff import Model
from streams.core.scoring import PointsModel, ScoringPolicy

KEY = b"scoring"  # the model name: one key, so compaction keeps the one in force
POINTS = "POINTS"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def model_of(record: dict[str, Any], scoring: ScoringPolicy, registry_root: Path) -> Model:
    """The live scorer of a ModelPublished record. A linear model is scored from the record
    from the registry's pipeline when this worker has it (fitted attribute transforms), else
    from the record itself with the configured scoring's feature space;
    gradient boosting from its registry artefact (checked against its sha256)."""
    from models.features import FeatureSpace
    from models.registry import Registry
    from models.scorer import GRADIENT_BOOSTING, LinearModel

    kind = record["kind"]
    if kind == POINTS:
        return PointsModel(scoring)
    if kind == GRADIENT_BOOSTING:
        return Registry(registry_root).load(record["model_version"])
    # A model fitted on custom attributes needs its fitted transforms (scaling, bins,
    # top-K), which only the registry's pipeline holds.
    if (registry_root / "versions" / record["model_version"] / "model.json").exists():
        return Registry(registry_root).load(record["model_version"])
    return LinearModel.from_published(record, space=FeatureSpace.of(scoring))


def points_record(scoring: ScoringPolicy, *, now_ms: int) -> dict[str, Any]:
    """ModelPublished for "back to the configured points model" (a rollback past the first
    trained model)."""
    version = PointsModel(scoring).version
    return {
        "event_id": str(uuid.uuid5(EVENT_NAMESPACE, f"models.scoring/{version}/{now_ms}")),
        "model_version": version, "kind": POINTS, "created_at": now_ms, "features": [],
        "weights": {}, "intercept": 0.0, "threshold": scoring.threshold / 100, "metrics": {},
        "artifact_sha256": None, "training_window_start": None, "training_window_end": None,
        "occurred_at": now_ms,
    }


def champion_record(
    registry_root: Path, scoring: ScoringPolicy, *, now_ms: int
) -> dict[str, Any]:
    """ModelPublished for the registry's champion (POINTS when there is none)."""
    from models.registry import Registry, model_published_record

    registry = Registry(registry_root)
    version = registry.champion()
    if version is None:
        return points_record(scoring, now_ms=now_ms)
    event_id = str(uuid.uuid5(EVENT_NAMESPACE, f"models.scoring/{version}/{now_ms}"))
    return model_published_record(registry.published(version), event_id=event_id,
                                  occurred_at=now_ms)


def retrain_due(
    *, now_ms: int, last_at: int, labels: int, last_labels: int, every_s: float,
    after_labels: int,
) -> bool:
    return (every_s > 0 and now_ms - last_at >= every_s * 1000) or (
        after_labels > 0 and labels - last_labels >= after_labels
    )


def advice_lines(outcome: dict[str, Any]) -> list[str]:
    """What a retrain outcome says, for a log or a terminal: never a silent threshold."""
    lines = [f"retrain {outcome['status']}: {outcome['reason']} "
             f"(candidate {outcome.get('version') or '-'}, {outcome.get('labelled', 0)} labelled "
             f"examples, {outcome.get('seconds', 0):.1f} s)"]
    advice = outcome.get("advice") or {}
    if outcome["status"] == "promoted":
        lines.append(f"MQL threshold in force stays {outcome.get('threshold'):g}: a promotion "
                     "never changes it")
    if advice.get("recommended") is not None:
        lines.append(f"recommended threshold for {advice['model_version']}: "
                     f"{advice['recommended']} ({advice['reason']}); apply it with: "
                     f"{advice['command']}")
    elif advice:
        lines.append(f"no threshold recommendation: {advice.get('reason')}")
    return lines


class Models:
    """One worker's side of the loop (see module doc); ``register`` wires it to the app."""

    def __init__(self, app: Any) -> None:
        from models.examples import ExampleStore
        from models.retrain import roots

        self.app = app
        self.settings = app.settings
        self.root, examples_root = roots(app.settings)
        self.store = ExampleStore(examples_root)
        self.consumer: Any = None
        self.topic_version: str | None = None  # latest record seen on models.scoring
        self.published_at = 0  # its occurred_at (ms)
        self.running = False
        self.task: asyncio.Task[None] | None = None
        self.started_ms = _now_ms()
        self.last: tuple[int, int] | None = None  # last attempt: (at ms, labels seen)
        self._pool: concurrent.futures.Executor | None = None
        self._seen_decisions: tuple[tuple[int, int] | None, str | None] | None = None
        self._threshold_mtime: int | None = None

    # -- every worker: follow models.scoring ----------------------------------------------

    async def _consumer(self) -> Any:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap, group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            await consumer.topics()  # metadata, so the partitions are known
            parts = consumer.partitions_for_topic(topics.MODELS.name) or {0}
            tps = [TopicPartition(topics.MODELS.name, p) for p in sorted(parts)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    def install(self, record: dict[str, Any]) -> None:
        version = record["model_version"]
        self.topic_version = version
        occurred = record["occurred_at"]
        self.published_at = max(self.published_at, int(
            occurred.timestamp() * 1000 if hasattr(occurred, "timestamp") else occurred
        ))
        app = self.app
        current = app.policies.model.version
        if current == version:
            return
        try:
            model = model_of(record, app.policies.scoring, self.root)
        except Exception:
            app.log.exception("cannot load published model %s; %s stays in force", version,
                              current)
            return
        app.policies = dataclasses.replace(app.policies, model=model)
        app.log.warning("scoring model %s in force (was %s); MQL threshold stays %g", version,
                        current, app.policies.scoring.threshold)

    def _decode(self, records: Any) -> None:
        for r in records:
            try:
                self.install(self.app.codec.decode(r.value or b"", topics.MODELS.record))
            except Exception:
                self.app.log.exception("bad record on %s at offset %s", topics.MODELS.name,
                                       r.offset)

    async def catch_up(self, timeout_s: float = 15.0) -> None:
        """Install the latest published model before the agents start (startup hook)."""
        try:
            self.consumer = await self._consumer()
            consumer = self.consumer
            ends = await consumer.end_offsets(list(consumer.assignment()))
            deadline = time.monotonic() + timeout_s
            latest = None
            while time.monotonic() < deadline:
                behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
                if not behind:
                    break
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    latest = records[-1] if records else latest
            if latest is not None:  # only the last one counts: no swap through history
                self._decode([latest])
        except Exception:
            self.app.log.exception("could not read %s at start; following it from now on",
                                   topics.MODELS.name)

    async def follow(self) -> None:
        try:
            while True:
                try:
                    if self.consumer is None:
                        self.consumer = await self._consumer()
                    batch = await self.consumer.getmany(timeout_ms=1000)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.app.log.exception("reading %s failed; retrying", topics.MODELS.name)
                    await self._stop_consumer()
                    await asyncio.sleep(1.0)
                    continue
                for records in batch.values():
                    self._decode(records)
        finally:
            await self._stop_consumer()
            if self.task is not None:
                self.task.cancel()
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)

    async def _stop_consumer(self) -> None:
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception:
                self.app.log.exception("stopping the %s reader", topics.MODELS.name)

    # -- every worker: the applied threshold ------------------------------------------------

    def threshold_check(self) -> None:
        from models import thresholds

        path = self.root / thresholds.HISTORY
        mtime = path.stat().st_mtime_ns if path.exists() else None
        if mtime == self._threshold_mtime:
            return  # nothing applied since the last look: no need to read the history
        self._threshold_mtime = mtime
        entries = thresholds.history(self.root)
        if not entries:
            return
        entry = entries[-1]
        app = self.app
        scoring = app.policies.scoring
        if int(entry["threshold"]) == scoring.threshold:
            return
        app.policies = dataclasses.replace(
            app.policies, scoring=dataclasses.replace(scoring, threshold=entry["threshold"])
        )
        app.log.warning("MQL threshold %s in force (was %g): applied by %s, version %s: %s",
                        entry["threshold"], scoring.threshold, entry["by"], entry["version"],
                        entry["reason"])

    # -- the leader: publish decisions, retrain -----------------------------------------------

    async def publish(self, record: dict[str, Any]) -> None:
        app = self.app
        value = app.codec.encode(topics.MODELS.subject, topics.MODELS.record, record)
        producer = app.producer._ensure_producer()
        delivered = await producer.send(topics.MODELS.name, key=KEY, value=value)
        await delivered
        self.topic_version = record["model_version"]
        self.published_at = max(self.published_at, record["occurred_at"])
        app.log.warning("published %s model %s on %s", record["kind"], record["model_version"],
                        topics.MODELS.name)

    async def reconcile(self) -> None:
        """Publish the registry's champion when a decision newer than the topic's latest
        record changed it (a promote or rollback made with the CLI). A registry that has
        decided nothing publishes nothing: a new data dir never overrides the topic."""
        from models.registry import HISTORY, Registry

        path = self.root / HISTORY
        # The history is append-only: its size tells a new decision apart even when the
        # file's mtime does not move (coarser than a millisecond on common filesystems: a
        # rollback right after a promote went unpublished).
        stat = path.stat() if path.exists() else None
        key = ((stat.st_mtime_ns, stat.st_size) if stat else None, self.topic_version)
        if key == self._seen_decisions:
            return
        self._seen_decisions = key
        registry = Registry(self.root)
        decisions = [e for e in registry.history() if e["action"] in ("promote", "rollback")]
        if not decisions or decisions[-1]["at"] < self.published_at:
            return  # (one in the same millisecond as the last publish still counts)
        record = champion_record(self.root, self.app.policies.scoring, now_ms=_now_ms())
        if record["model_version"] != self.topic_version:
            await self.publish(record)

    def _executor(self) -> concurrent.futures.Executor:
        if self._pool is None:
            from models.retrain import lower_priority

            if self.settings.retrain_in == "thread":
                self._pool = concurrent.futures.ThreadPoolExecutor(1, "retrain")
            else:
                # spawn: a fork of a process running an event loop and Kafka clients
                # inherits their threads' locks in whatever state they were.
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn"),
                    initializer=lower_priority,
                )
        return self._pool

    def _last_attempt(self) -> tuple[int, int]:
        from models.retrain import history

        entries = history(self.root)
        if not entries:
            return self.started_ms, 0
        return int(entries[-1]["at"]), int(entries[-1].get("labels_seen") or 0)

    def due(self, now_ms: int) -> bool:
        labels = self.store.counts()["labelled"]
        s = self.settings
        rule = {"every_s": s.retrain_every_s, "after_labels": s.retrain_after_labels}
        if self.last is None:
            self.last = self._last_attempt()
        if not retrain_due(now_ms=now_ms, last_at=self.last[0], labels=labels,
                           last_labels=self.last[1], **rule):
            return False
        # Another worker may have been leader since: the record on disk decides.
        self.last = self._last_attempt()
        return retrain_due(now_ms=now_ms, last_at=self.last[0], labels=labels,
                           last_labels=self.last[1], **rule)

    async def leader_tick(self) -> None:
        await self.reconcile()
        if self.running or not self.due(_now_ms()):
            return
        self.running = True
        # A task of its own: the timer stays a quick check, whatever a retrain takes.
        self.task = asyncio.create_task(self.retrain())

    async def retrain(self) -> None:
        from models.retrain import FAILED, PROMOTED, Outcome, job, record

        by = f"worker:{self.settings.app_id}"
        loop = asyncio.get_running_loop()
        try:
            outcome = await loop.run_in_executor(self._executor(), job, self.settings, by)
        except Exception as exc:  # the child died (killed, out of memory): record it here
            self.app.log.exception("retraining crashed; the champion stays")
            failed = Outcome(FAILED, f"retraining process crashed: {type(exc).__name__}: {exc}",
                             at=_now_ms(), by=by,
                             labels_seen=self.store.counts()["labelled"])
            record(self.root, failed)
            outcome = failed.as_dict()
            self._pool = None  # a broken pool cannot be used again
        finally:
            self.running = False
        self.last = (int(outcome["at"]), int(outcome.get("labels_seen") or 0))
        log = self.app.log.warning if outcome["status"] != "rejected" else self.app.log.info
        for line in advice_lines(outcome):
            log("%s", line)
        if outcome["status"] == PROMOTED:
            try:
                await self.publish(champion_record(self.root, self.app.policies.scoring,
                                                   now_ms=_now_ms()))
            except Exception:  # the registry holds the decision: the next check publishes it
                self.app.log.exception("publishing %s failed; retrying at the next check",
                                       outcome.get("version"))


def register(app: Any) -> Models:
    models = Models(app)
    app.startup_hooks.append(models.catch_up)
    interval = app.settings.model_poll_s

    @app.task
    async def follow_models() -> None:
        await models.follow()

    @app.timer(interval=interval, on_leader=True, name="models.retrain")
    async def retrain() -> None:
        await models.leader_tick()

    @app.timer(interval=interval, name="models.threshold")
    async def threshold() -> None:
        models.threshold_check()

    return models
