"""`leadflow up`: embedded broker + worker (+ the simulated funnel), stopped together."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any

from streams import topics
from streams.archive import layout
from streams.broker import _die_with_parent, broker_for, stop_process
from streams.settings import ENV_PREFIX, Settings
from streams.views import get_json


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with code {proc.returncode}; see its log")
        with contextlib.suppress(OSError):
            if get_json(f"{base}/v1/health", timeout=2)[0] == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"worker not healthy after {timeout:.0f}s")


def _wait_drained(base: str, key: str, timeout: float = 30.0) -> dict[str, Any]:
    """Stats once the worker has seen nothing new for a second (the backlog is done)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, stats = get_json(f"{base}/v1/stats", key=key)
        if last and stats["received_total"] == last["received_total"]:
            return stats
        last = stats
        time.sleep(1.0)
    return last


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


# The ports `leadflow up` opens: (setting, what listens there, its flag).
PORTS = (("broker_port", "the embedded broker", "--broker-port"),
         ("web_port", "the API", "--web-port"),
         ("dashboard_port", "the dashboard", "--dashboard-port"))


def port_env(settings: Settings) -> dict[str, str]:
    """The ports in force as LEADFLOW_* variables, for the child processes (the worker and
    the dashboard load their settings from the environment): a flag reaches them too."""
    return {ENV_PREFIX + name.upper(): str(getattr(settings, name)) for name, _, _ in PORTS}


def port_problem(settings: Settings) -> str | None:
    """Why a port `up` is about to open cannot be, naming the flag that moves it; or None.
    Checked before anything starts, so the answer is a sentence, not a child's traceback."""
    hosts = {"broker_port": "127.0.0.1", "web_port": settings.web_host,
             "dashboard_port": settings.dashboard_host}
    seen: dict[int, str] = {}
    for name, what, flag in PORTS:
        if name == "broker_port" and not settings.embedded:
            continue  # an external Kafka (LEADFLOW_BROKER_URL): no broker of ours
        port = getattr(settings, name)
        if port in seen:
            return (f"PORT_IN_USE: {what} and {seen[port]} would both listen on port {port}; "
                    f"give one another port with {flag} N")
        seen[port] = what
        with socket.socket() as probe:
            # As the servers bind: a port left in TIME_WAIT is free, a listening one is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((hosts[name], port))
            except OSError as exc:
                return (f"PORT_IN_USE: port {port} for {what} is taken on {hosts[name]} "
                        f"({exc.strerror}); choose another with {flag} N (or "
                        f"{ENV_PREFIX}{name.upper()})")
    return None


LOCAL_KEY_ID = "leadflow-up"


def local_key(settings: Settings, env: dict[str, str]) -> tuple[Settings, str]:
    """The API key of the processes `up` starts (the simulator, the dashboard, its summary)
    and of a `leadflow trace` beside it: LEADFLOW_API_KEY, else the one in DATA_DIR/api-key,
    else a new one written there (mode 0600). The worker accepts it with every scope, besides
    any LEADFLOW_API_KEYS: `up` is the operator's own laptop or demo. Returns the settings
    with the key and where it came from, for the banner (never the key itself)."""
    from streams.access import client, keys

    key = client.client_key(settings)
    if settings.api_key:
        where = f"from {client.ENV}"
    elif key:
        where = f"in {client.key_file(settings)}"
    else:
        key = keys.new_key()
        where = f"new, in {client.write_key_file(settings, key)}"
    lines = list(settings.api_keys)
    if all(keys.parse(line, i).digest != keys.digest(key) for i, line in enumerate(lines, 1)):
        lines.append(keys.configured(LOCAL_KEY_ID, keys.SCOPES, key).line())
    env[ENV_PREFIX + "API_KEYS"] = ",".join(lines)
    env[client.ENV] = key
    note = f"{where} (scopes ingest, read, admin; send it as Authorization: Bearer KEY)"
    return settings.replace(api_keys=tuple(lines), api_key=key), note


def run_up(
    settings: Settings, *, demo: bool, exit_after: float | None, leads: int, seed: int
) -> int:
    problem = port_problem(settings)
    if problem is not None:
        print(f"leadflow up: {problem}", file=sys.stderr)
        return 2
    # SIGTERM (a service manager, `kill`) stops everything like Ctrl-C; SIGINT is set too,
    # because a shell starting us in the background would have us ignore it.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    settings, key_note = local_key(settings, env)
    if demo and not settings.webhook_secrets:
        # The demo signs its own CRM webhooks; a real CRM gets LEADFLOW_WEBHOOK_SECRETS.
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        settings = settings.replace(webhook_secrets=(secret,))
        env["LEADFLOW_WEBHOOK_SECRETS"] = secret
    with broker_for(settings) as s:
        env.update(port_env(s))
        base = f"http://{s.web_host}:{s.web_port}"
        log = s.data_path / "worker.log"
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"], env=env,
            stdout=log.open("ab"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )
        dashboard = None
        try:
            _wait_healthy(base, worker)
            where = "embedded, in memory" if s.embedded else s.broker_url
            print(f"broker   {s.bootstrap} ({where})")
            print(f"API      {base}   (OpenAPI: {base}/v1/openapi.json)")
            print(f"worker   log in {log}")
            print(f"key      {key_note}")
            dashboard = _start_dashboard(s, env)
            # A plain `leadflow trace` asks the API where LEADFLOW_WEB_PORT says, not --web-port.
            away = s.web_port != Settings.load().web_port
            print("trace    leadflow trace LEAD_ID" + (f" --url {base}" if away else ""))
            sim = _start_demo(s, base, leads, seed, exit_after) if demo else None
            print("running; Ctrl-C stops everything" if exit_after is None
                  else f"running for {exit_after:.0f}s")
            try:
                if exit_after is None:
                    signal.pause()
                else:
                    time.sleep(exit_after)
            except KeyboardInterrupt:
                print("\nstopping")
                return 0
            if sim is not None:
                sim.join(timeout=30)
            return _summary(base, s.api_key, sim, layout.archive_root(s))
        finally:
            for proc, wait in ((dashboard, 10), (worker, 30)):
                if proc is not None:
                    stop_process(proc, wait)


def _start_dashboard(settings: Settings, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The dashboard beside the worker, over the archive the worker writes; it re-reads the
    archive every dashboard_refresh_s, so the demo's events show up as they arrive."""
    from dashboard import server

    log = settings.data_path / "dashboard.log"
    proc = server.start(settings, log.open("ab"), env=env, preexec_fn=_die_with_parent)
    print(f"dashboard {server.url(settings)}   (log in {log})")
    return proc


class _Demo(threading.Thread):
    def __init__(self, settings: Settings, base: str, leads: int, seed: int, wall: float):
        super().__init__(daemon=True, name="simulator")
        self.settings, self.base, self.leads, self.seed, self.wall = (
            settings, base, leads, seed, wall
        )
        self.scenario: Any = None
        self.report: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        from streams.simulate import generate, send_http, write_truth

        try:
            self.scenario = generate(self.seed, leads=self.leads, wall_seconds=self.wall)
            write_truth(self.scenario, self.settings.data_path / "truth.jsonl")
            self.report = asyncio.run(send_http(
                self.scenario, self.base, self.settings.webhook_secrets[0],
                progress=sys.stderr.isatty(), api_key=self.settings.api_key,
            ))
        except BaseException as exc:  # reported in the summary, never silently lost
            self.error = exc


def _start_demo(
    settings: Settings, base: str, leads: int, seed: int, exit_after: float | None
) -> _Demo:
    # Leave a fifth of a timed run for the worker to drain before the summary.
    wall = 0.6 * exit_after if exit_after else 120.0
    print(f"demo     {leads} simulated leads over a week, replayed in {wall:.0f}s; "
          f"hidden truth in {settings.data_path / 'truth.jsonl'}")
    demo = _Demo(settings, base, leads, seed, wall)
    demo.start()
    return demo


def _summary(base: str, key: str, demo: _Demo | None, archive_root: Any = None) -> int:
    stats = _wait_drained(base, key)
    dead = stats["dead_letters"]
    print("\nsummary")
    inbound = sum(stats["received"].get(t.name, 0) for t in topics.INBOUND)
    print(f"  events in      {inbound + sum(stats['http_rejected'].values())}"
          f"  (Kafka {inbound}, rejected at the HTTP edge {sum(stats['http_rejected'].values())})")
    print(f"  accepted       {stats['accepted_total']}  {stats['accepted']}")
    print(f"  duplicates     {stats['duplicates_total']} (dropped by event id)")
    print(f"  dead letters   {stats['dead_letters_total']}  {dead}")
    print(f"  leads traced   {stats['leads_traced']}  (aliases linked: {stats['aliases']})")
    h = stats["handoff"]
    print(f"  handoff        scored {h.get('scored', 0)}, MQL {h.get('mql', 0)}, "
          f"context incomplete {h.get('context_incomplete', 0)}, routed to a rep "
          f"{h.get('routed', 0)}, queued {h.get('queued', 0)}, closed {h.get('release', 0)}")
    sla = stats["sla"]
    for clause in sorted({k.split("/")[0] for k in sla}):
        print(f"  SLA {clause:24} met {sla.get(clause + '/MET', 0):6}  "
              f"breached {sla.get(clause + '/BREACHED', 0):6}  "
              f"(overdue notices {sla.get(clause + '/OVERDUE', 0)}, "
              f"corrections {sla.get(clause + '/CORRECTION', 0)})")
    if demo is None:
        return 0
    if demo.error is not None or demo.scenario is None:
        print(f"  simulator failed: {demo.error!r}")
        return 1
    expected = Counter(d.expected for d in demo.scenario.deliveries if d.transport != "kafka")
    ok = True
    for code, n in sorted(expected.items()):
        if code == "OK":
            got = stats["accepted_total"]
        elif code == "DUPLICATE":
            got = stats["duplicates_total"]
        else:
            got = dead.get(code, 0)
        mark = "ok" if got == n else "MISMATCH"
        ok &= got == n
        print(f"  expected {code:17} {n:6}  got {got:6}  {mark}")
    for what, n, got in (
        ("leads traced", len(demo.scenario.truth), stats["leads_traced"]),
        ("alias links", len(demo.scenario.aliases()), stats["aliases"]),
    ):
        ok &= got == n
        print(f"  expected {what:17} {n:6}  got {got:6}  {'ok' if got == n else 'MISMATCH'}")
    return 0 if _verdict_check(demo, archive_root) and ok else 1


def _verdict_check(demo: _Demo, archive_root: Any) -> bool:
    """The referee's own check: each lead's verdicts against the truth, clause by clause."""
    from streams.simulate import agreement

    time.sleep(3)  # the archive writes a row within archive_flush_s of its event
    finals, corrections = agreement.archived_verdicts(archive_root)
    rows = agreement.compare(demo.scenario.expected_verdicts(), finals)
    print("\n".join(agreement.report_lines(rows)))
    now_ms = int(demo.scenario.now.timestamp() * 1000)
    want, got, right = agreement.compare_corrections(
        demo.scenario.expected_corrections(known_by=now_ms), corrections)
    print(f"  corrections    expected {want}, issued {got}, as the truth predicts {right}"
          f"  {'ok' if got == right else 'MISMATCH'}")
    return agreement.agrees(rows) and got == right
