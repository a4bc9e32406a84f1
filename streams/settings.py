"""The one settings object: defaults < leadflow.toml < LEADFLOW_* environment.

Every setting has an environment variable (its name upper-cased with the LEADFLOW_ prefix)
and a default that works on a laptop. Nothing is read at import time: call
``Settings.load()``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "LEADFLOW_"

# The defaults below are tuned for the embedded broker; against a real Kafka these apply
# unless set explicitly: Kafka answers a fetch as soon as data arrives, and a longer session
# rides out GC pauses and network blips that a laptop demo does not have.
KAFKA_DEFAULTS = {
    "fetch_max_wait_ms": 500,
    "session_timeout_s": 30.0,
    "heartbeat_interval_s": 3.0,
    "rebalance_timeout_s": 60.0,
    # Production keeps tables on disk: a restarted worker replays only the changelog tail.
    "store": "rocksdb",
}


@dataclass(frozen=True)
class Settings:
    # Kafka. Empty broker_url means: start the embedded broker on broker_port.
    broker_url: str = ""
    broker_port: int = 9092
    schema_registry_url: str = ""
    # The file registry used when no URL is set; empty means DATA_DIR/schemas.json. Every
    # process that shares a broker must share the registry, or schema ids mean different things.
    schema_registry_file: str = ""
    app_id: str = "leadflow"
    partitions: int = 4
    # Faust hard-codes 1500 ms; the embedded broker polls storage while a fetch waits, so each
    # hop would cost up to ~0.75 s. 20 ms embedded; Kafka answers fetches on arrival anyway.
    fetch_max_wait_ms: int = 20
    # Faust defaults (60 s session) make a group join take ~30 s on the embedded broker.
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 2.0
    rebalance_timeout_s: float = 10.0
    producer_linger_ms: int = 5
    # How long the producer waits for the broker to answer one produce request before it
    # drops the connection and sends the batch again (batches themselves are kept for Faust's
    # 20 minutes). Faust's one timeout for both let one unanswered request stop every agent.
    producer_response_timeout_s: float = 30.0
    # The producer's record batch, one per partition and request. Faust's 16 KiB held three
    # lead states (~4.6 KiB each): a flush of 886 traces took ~300 requests, one at a time,
    # over 7 s, and the stop-and-restart test's workers fell minutes behind.
    producer_max_batch_bytes: int = 524_288
    # Worker state
    store: str = "memory"  # memory | rocksdb (the default against a real Kafka)
    # Copies of each table partition kept warm on other workers (Faust's
    # table_standby_replicas): a failover starts from a nearly current copy instead of
    # replaying the whole changelog. Ignored with a single worker.
    standby_replicas: int = 1
    # Where a worker keeps its RocksDB tables; empty means DATA_DIR/worker. Set it per worker
    # to let several workers on one host share DATA_DIR (model registry, applied threshold,
    # examples) without ever opening each other's RocksDB files.
    state_dir: str = ""
    # RocksDB's memory for the whole worker (LEADFLOW_STORE=rocksdb): one block cache shared by
    # every table partition, half of it at most for the memtables (streams/rocksdb_store.py).
    rocksdb_memory_mb: int = 128
    data_dir: str = ".leadflow"
    # Intake takes up to this many events at a time, waiting at most this long for them.
    intake_batch: int = 500
    intake_batch_wait_ms: int = 10
    dedup_retention_days: float = 7.0
    # Contract
    max_record_bytes: int = 1_048_576
    # How far after its observation an event may claim to have happened before it is absurd.
    # A day, because CRMs label local time as UTC (up to 14 h off) and that is not an attack.
    max_clock_skew_s: float = 86_400.0
    # HTTP API
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    max_request_bytes: int = 262_144
    webhook_secrets: tuple[str, ...] = ()
    send_timeout_s: float = 5.0
    # Connectors (POST /v1/connectors/...; README "Connect your systems"). Each secret setting
    # takes several values, comma-separated, newest first, to rotate without downtime.
    # public_base_url: the scheme://host[:port] the vendors call (HubSpot signs the URL it
    # called, and leadflow usually sits behind a proxy); empty: the request's own Host.
    public_base_url: str = ""
    # Signed timestamps older (or newer) than this are refused, and accepted signed requests
    # are remembered this long to refuse replays.
    connector_tolerance_s: float = 300.0
    hubspot_client_secrets: tuple[str, ...] = ()
    hubspot_signature_versions: tuple[str, ...] = ("v3",)  # add v1, v2 for legacy apps
    # Contact properties whose changes are lead status changes ([connectors.hubspot.status]
    # translates their values); lifecyclestage has its own table.
    hubspot_status_properties: tuple[str, ...] = ("hs_lead_status",)
    # HubSpot's API, for what events carry only ids of (contacts, calls, meetings): a
    # private-app token with crm.objects.contacts.read.
    hubspot_api_url: str = "https://api.hubapi.com"
    hubspot_api_token: str = ""
    hubspot_api_attempts: int = 4
    # Events naming a vendor's object wait this long for the object's capture (which links
    # it to its lead, core.external) before they go to the object's own lead.
    external_hold_s: float = 600.0
    salesforce_org_ids: tuple[str, ...] = ()  # 15- or 18-character OrganizationId
    pipedrive_basic_auth: tuple[str, ...] = ()  # user:password
    close_signature_keys: tuple[str, ...] = ()  # hex signature_key of the subscription
    calendly_signing_keys: tuple[str, ...] = ()
    chilipiper_secrets: tuple[str, ...] = ()
    chilipiper_secret_header: str = "X-ChiliPiper-Secret"
    # Generic mappings: NAME.toml files here (beside the shipped marketo and zapier), with
    # their secrets as name:secret (basic auth: name:user:password).
    connector_mappings_dir: str = ""
    generic_secrets: tuple[str, ...] = ()
    # Access (streams/access). The keys a worker accepts, as "ID:SCOPE[+SCOPE]:SHA256HEX"
    # lines (`leadflow keys new` prints one; scopes ingest, read, admin); several at once to
    # rotate. With none, every endpoint but health, the API documents and the public ones
    # answers 401: a worker is never open by accident.
    api_keys: tuple[str, ...] = ()
    # Ingest endpoints opened to anyone on purpose (a web form posting to /v1/leads).
    public_endpoints: tuple[str, ...] = ()
    # The key leadflow's own clients send (`leadflow trace`, `simulate`, the dashboard, the
    # benches); empty: DATA_DIR/api-key, which `leadflow up` writes when it makes one.
    api_key: str = ""
    # Token buckets, requests/s and burst: per key, and per source address for requests
    # without a valid key (public and signed endpoints, failed attempts). 0: no limit.
    rate_limit_key: float = 500.0
    rate_limit_key_burst: int = 1000
    rate_limit_address: float = 50.0
    rate_limit_address_burst: int = 100
    # Behind a trusted reverse proxy, the header it writes the client's address into
    # (X-Forwarded-For: its last entry is taken); empty trusts no header.
    client_address_header: str = ""
    # SLA clocks: how often due deadlines are judged, and after how long without events a
    # partition's event-time clock follows the wall clock (a quiet night still breaches).
    sla_tick_s: float = 1.0
    sla_idle_s: float = 10.0
    # How fast an idle partition's clock runs on from its latest event, in event time per
    # wall time (capped at the wall clock). 1: a replay of the past stays in the past; a large
    # value makes the clock jump to now, judging every deadline a finished history left open.
    sla_idle_pace: float = 1.0
    # A breach is final once the clock has been past deadline + grace + lateness for this
    # much wall time: events already sent are still in flight between hops and topics.
    sla_settle_s: float = 3.0
    # Routing decides in one order across partitions (when leadflow received the inputs,
    # then event time: core.routing_order): each worker sends a watermark per inbound
    # partition it owns this often, and after each flush that sent routing requests; a
    # partition whose watermarks stop for routing_stale_s (its owner died) stops holding
    # the others back. 0: as long as the group can take to hand a dead worker's partitions
    # to another (session timeout + rebalance timeout), which then sends watermarks again.
    routing_tick_s: float = 0.2
    routing_stale_s: float = 0.0
    # Owner notifications: every routing decision POSTed here, signed like inbound webhooks
    # with notify_secret, retried with doubling waits, dead-lettered after the last attempt.
    notify_url: str = ""
    notify_secret: str = ""
    notify_attempts: int = 5
    notify_backoff_s: float = 1.0
    # The feedback loop. The leader retrains every retrain_every_s and after
    # retrain_after_labels new labels (0 disables either); model_poll_s is how often it checks
    # (and how soon a `leadflow model promote|rollback` is published, and every worker picks
    # up a `leadflow threshold apply`). Retraining runs in a child process ("process": the
    # stream keeps a core to itself) or a thread ("thread": where processes cannot be made).
    retrain_every_s: float = 3600.0
    retrain_after_labels: int = 500
    model_poll_s: float = 5.0
    retrain_in: str = "process"
    # The archive: every inbound event and every decision as Parquet, the durable record that
    # outlives the (in-memory) embedded broker and feeds the dashboard and `leadflow replay`.
    # Empty archive_dir means DATA_DIR/archive. Rows are buffered per topic-partition and
    # written when archive_batch rows are waiting or archive_flush_s has passed: fewer,
    # larger files than one per event, and a row is on disk a few seconds after its event.
    archive: bool = True
    archive_dir: str = ""
    archive_batch: int = 5000
    archive_flush_s: float = 2.0
    # The dashboard (`leadflow dashboard`, started by `leadflow up`). Its pages re-read the
    # archive at most every dashboard_refresh_s (cache lifetime and auto-refresh alike), so
    # the demo's live events show up without a click; 0 turns the auto-refresh off.
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8501
    dashboard_refresh_s: float = 5.0
    # Where the Pipeline health page asks for GET /v1/stats; empty: http://WEB_HOST:WEB_PORT.
    dashboard_worker_url: str = ""
    # Personal data (emails, names, phones, notes, rejected payloads) is masked unless the
    # viewer's email is listed here ("*": everyone, for a laptop demo only). The viewer is
    # Streamlit's logged-in user (st.user, when auth is configured) or, behind a trusted
    # proxy that sets it, the header named in dashboard_identity_header; empty trusts none.
    dashboard_pii_viewers: tuple[str, ...] = ()
    dashboard_identity_header: str = ""
    # Every unmasked view is one JSON line here (viewer, lead, when; never the data shown).
    # Empty means DATA_DIR/dashboard-audit.jsonl.
    dashboard_audit_log: str = ""
    # The dashboard's read cache: past months of the archive merged into one file each (the
    # archive's many small day files cost more to open than to read). Empty means
    # DATA_DIR/dashboard-cache; "off" reads the archive's files only.
    dashboard_cache_dir: str = ""
    # How often the worker commits the offsets of processed events (Faust's default). A crash
    # reprocesses at most this much (duplicates are dropped by event id); SIGTERM commits all.
    commit_interval_s: float = 2.8
    # Logging. log_format: auto (JSON lines when stderr is not a terminal), json or text.
    log_level: str = "warn"
    log_format: str = "auto"
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def bootstrap(self) -> str:
        """host:port list for aiokafka clients."""
        if self.embedded:
            return f"127.0.0.1:{self.broker_port}"
        return ",".join(u.split("://", 1)[-1] for u in self.broker_url.split(","))

    @property
    def faust_broker(self) -> str:
        # Our transport subclass is registered under the "leadflow" URL scheme.
        return ";".join(f"leadflow://{hp}" for hp in self.bootstrap.split(","))

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def routing_stale_ms(self) -> int:
        """Shorter, and a worker killed without leaving the group (SIGKILL, OOM, node loss)
        has its partitions decided past before their next owner speaks: out of order."""
        stale = self.routing_stale_s or self.session_timeout_s + self.rebalance_timeout_s
        return int(stale * 1000)

    @property
    def registry_path(self) -> Path:
        return Path(self.schema_registry_file) if self.schema_registry_file else (
            self.data_path / "schemas.json"
        )

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        toml_path: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> Settings:
        env = os.environ if env is None else env
        path = Path(toml_path or env.get(ENV_PREFIX + "CONFIG", "leadflow.toml"))
        doc: dict[str, Any] = {}
        if path.is_file():
            with path.open("rb") as fh:
                doc = tomllib.load(fh)
        values: dict[str, Any] = {}
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        for name, f in known.items():
            if name in doc.get("leadflow", {}):
                values[name] = _coerce(f, doc["leadflow"][name])
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _coerce(f, raw)
        values.update(overrides)
        if values.get("broker_url"):
            for name, default in KAFKA_DEFAULTS.items():
                values.setdefault(name, default)
        # Everything else in the file (routing, SLA contract, model policy) is for later stages.
        extra = {k: v for k, v in doc.items() if k != "leadflow"}
        return cls(**values, extra=extra)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def documented(cls) -> list[tuple[str, str, Any]]:
        """(setting, environment variable, default) for the README and `leadflow config`."""
        return [
            (f.name, ENV_PREFIX + f.name.upper(), f.default)
            for f in fields(cls)
            if f.name != "extra"
        ]


def _coerce(f: dataclasses.Field[Any], raw: Any) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    if kind.startswith("tuple"):
        if isinstance(raw, str):
            return tuple(s.strip() for s in raw.split(",") if s.strip())
        return tuple(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        return str(raw).lower() in ("1", "true", "yes", "on")
    return str(raw)
