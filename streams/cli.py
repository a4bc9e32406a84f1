"""The `leadflow` command."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sys
import time
from collections.abc import Coroutine
from typing import Any

import click

from streams.cli_keys import keys_group
from streams.cli_models import model_group, threshold_group
from streams.importing.command import import_command
from streams.settings import Settings


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion from sync code, even where a loop is already set up."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """leadflow: the marketing-to-sales lead handoff, run as a stream.

    \b
    Quick start:
      leadflow up --demo            embedded broker + worker + simulated funnel
      leadflow trace LEAD_ID        a lead's timeline, step by step
    """


@main.command()
@click.option("--port", type=int, default=None, help="Port (default LEADFLOW_BROKER_PORT).")
def broker(port: int | None) -> None:
    """Run the embedded broker in the foreground (data lives in memory).

    \b
    Example:
      leadflow broker --port 9092
    """
    from streams.broker import EmbeddedBroker

    settings = Settings.load()
    with EmbeddedBroker(port or settings.broker_port) as b:
        click.echo(f"embedded broker on {b.bootstrap} (in memory: data is gone when it stops)")
        try:
            while b.proc is not None and b.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


@main.command()
def worker() -> None:
    """Run a worker: the stream agents, tables and the HTTP API.

    Needs a running broker (LEADFLOW_BROKER_URL, or the embedded one on LEADFLOW_BROKER_PORT).

    \b
    Example:
      LEADFLOW_BROKER_PORT=9092 leadflow worker
    """
    from streams.app import build_app, run_worker
    from streams.kafka import ensure_topics

    settings = Settings.load()
    run_async(ensure_topics(settings))
    app = build_app(settings)
    run_worker(app, settings.log_level)


@main.command()
@click.option("--demo", is_flag=True, help="Also run the simulator against the API.")
@click.option("--exit-after", type=float, default=None, help="Stop after SECONDS and summarise.")
@click.option("--leads", type=int, default=300, show_default=True, help="Simulated leads.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--dashboard-port", type=click.IntRange(1, 65535), default=None,
              help="The dashboard's port (default LEADFLOW_DASHBOARD_PORT, "
                   f"{Settings.dashboard_port}).")
@click.option("--web-port", type=click.IntRange(1, 65535), default=None,
              help=f"The API's port (default LEADFLOW_WEB_PORT, {Settings.web_port}).")
@click.option("--broker-port", type=click.IntRange(1, 65535), default=None,
              help="The embedded broker's port (default LEADFLOW_BROKER_PORT, "
                   f"{Settings.broker_port}; unused with LEADFLOW_BROKER_URL).")
def up(demo: bool, exit_after: float | None, leads: int, seed: int, dashboard_port: int | None,
       web_port: int | None, broker_port: int | None) -> None:
    """Start everything: embedded broker (unless LEADFLOW_BROKER_URL), worker, API, dashboard.

    \b
    Examples:
      leadflow up --demo
      leadflow up --demo --exit-after 60
      leadflow up --dashboard-port 8502 --web-port 8081 --broker-port 9093
    """
    from streams.up import run_up

    ports = {"dashboard_port": dashboard_port, "web_port": web_port, "broker_port": broker_port}
    settings = Settings.load().replace(**{k: v for k, v in ports.items() if v is not None})
    sys.exit(run_up(settings, demo=demo, exit_after=exit_after, leads=leads, seed=seed))


@main.command()
@click.argument("lead_id")
@click.option("--url", default=None, help="API base URL (default http://WEB_HOST:WEB_PORT).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def trace(lead_id: str, url: str | None, as_json: bool) -> None:
    """Print a lead's timeline: every step with event and observation time.

    A vendor's object names its lead too (SOURCE:TYPE:ID): the lead it is linked to (the
    first lead of its person), else the object's own.

    \b
    Example:
      leadflow trace 3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53
      leadflow trace hubspot:contact:5101
      leadflow trace salesforce:Lead:00Q5g00000ExAmp1EA
    """
    from streams.access.client import client_key
    from streams.connectors.records import external_lead_id
    from streams.views import fetch_link, fetch_trace, render_trace

    settings = Settings.load()
    base = url or f"http://{settings.web_host}:{settings.web_port}"
    key = client_key(settings)
    source, _, rest = lead_id.partition(":")
    kind, _, object_id = rest.partition(":")
    if object_id:
        status, link = fetch_link(base, source, kind, object_id, key=key)
        linked = link.get("leadId") if status == 200 else None
        lead_id = linked or external_lead_id(source, kind, object_id)
    status, body = fetch_trace(base, lead_id, key=key)
    if as_json:
        click.echo(json.dumps(body, indent=2))
    elif status != 200:
        raise click.ClickException(f"{body.get('code')}: {body.get('detail')}")
    else:
        click.echo(render_trace(body))
    if status != 200:
        sys.exit(1)


@main.command()
@click.argument("target", type=click.Choice(["pipeline", "model", "dashboard", "scale",
                                             "recovery", "memory"]), default="pipeline")
@click.option("--events", type=int, default=50_000, show_default=True, help="Backlog size.")
@click.option("--rate", type=float, default=200.0, show_default=True, help="HTTP requests/s.")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="HTTP load time.")
@click.option("--kind", type=click.Choice(["logistic", "gbm"]), default="logistic",
              show_default=True, help="model: the model family to retrain.")
@click.option("--export", "export", type=click.Path(exists=True, dir_okay=False), default=None,
              help="model: a CRM export (CSV) to judge leadflow's model on, beside the "
                   "scikit-learn baseline and the points model (needs --mapping).")
@click.option("--mapping", "mapping", type=click.Path(exists=True, dir_okay=False),
              default=None, help="model: the import mapping of --export.")
@click.option("--attributes/--no-attributes", default=False, show_default=True,
              help="model: simulated leads carry custom attributes with real signal.")
@click.option("--leads", type=int, default=None,
              help="dashboard: leads in the generated archive (about 10 events each; default "
                   "1,000,000). memory: leads drained (default 100,000; 10k and 100k reported).")
@click.option("--cache", type=click.Path(file_okay=False), default=None,
              help="dashboard: where the generated archive is kept (default DATA_DIR/bench).")
@click.option("--store", type=click.Choice(["memory", "rocksdb"]), default=None,
              help="recovery: the table store of the recovering worker (default rocksdb). "
                   "memory: only this store (default both).")
@click.option("--profile", type=click.Path(file_okay=False), default=None,
              help="memory: run the worker under memray, its capture files kept here.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="scale: rounds of one worker, then two (the medians are compared).")
def bench(target: str, events: int, rate: float, seconds: float, kind: str, export: str | None,
          mapping: str | None, attributes: bool, leads: int | None, cache: str | None,
          store: str | None, profile: str | None, rounds: int) -> None:
    """Measure leadflow: the pipeline (default), the scoring model, the dashboard's
    queries, scale-out or recovery.

    pipeline: starts its own embedded broker on a free port, fills a backlog, and measures
    the worker against a bare decode agent, HTTP-to-trace and captured-to-routed latency.
    model: retrains on simulated dispositions (500, 2,000, 10,000 labels) and compares the
    AUC with the oracle (the simulator's hidden probabilities); times 100,000 examples.
    With --attributes the simulated leads carry custom attributes with real signal. With
    --export and --mapping: leadflow's model on that export beside the textbook
    scikit-learn pipeline on the mapping's columns and the points model, same holdout.
    dashboard: generates (once) an archive of --leads leads and times every page's queries,
    cold and warm (target: under 1 s each).
    scale: events/s over one backlog with one worker and with two (target: >= 1.6x), --rounds
    times alternately; medians, and each run's CPU per event (workers) and broker CPU.
    recovery: a fresh worker (empty data dir, --store) rebuilds the tables of a backlog of
    --events from the changelogs: time to ready and changelog records replayed/s.
    memory: one worker per store drains --leads simulated leads (a year per million) and
    reports its resident memory at 10k, 100k and --leads (target with RocksDB: < 1.5 GiB at
    1,000,000 leads, < 2 KiB per lead beyond the empty worker).

    \b
    Example:
      leadflow bench --events 50000 --rate 200
      leadflow bench model
      leadflow bench model --attributes
      leadflow bench model --export crm.csv --mapping crm-mapping.toml
      leadflow bench dashboard --leads 1000000
      leadflow bench scale --events 50000
      leadflow bench recovery --events 50000 --store rocksdb
      leadflow bench memory --leads 1000000 --store rocksdb
    """
    if target == "memory":
        from pathlib import Path

        from streams import bench_memory

        result = bench_memory.run_memory_bench(
            Settings.load(), leads or 100_000, [store] if store else ["rocksdb", "memory"],
            Path(profile) if profile else None)
        click.echo(result.table())
        return
    if target in ("scale", "recovery"):
        from streams import bench_scale

        if target == "scale":
            click.echo(bench_scale.run_scale_bench(Settings.load(), events, rounds).table())
        else:
            click.echo(bench_scale.run_recovery_bench(Settings.load(), events,
                                                      store or "rocksdb").table())
        return
    if target == "dashboard":
        from pathlib import Path

        from dashboard.bench import run as run_dashboard_bench

        settings = Settings.load()
        where = Path(cache) if cache else settings.data_path / "bench"
        reps = (settings.extra.get("routing") or {}).get("reps") or []
        teams = {str(r["id"]): str(r.get("team", "")) for r in reps if "id" in r}
        report = run_dashboard_bench(where, leads=leads or 1_000_000, teams=teams,
                                     progress=lambda m: click.echo(f"bench: {m}", err=True))
        click.echo(report.table())
        return
    if target == "model":
        from streams.bench_model import run_model_bench

        def progress(step: str) -> None:
            click.echo(f"bench: {step}", err=True)

        if export or mapping:
            if not (export and mapping):
                raise click.UsageError("--export and --mapping go together")
            from pathlib import Path

            from streams.bench_export import run_export_bench

            click.echo(run_export_bench(Path(export), Path(mapping), Settings.load(),
                                        progress=progress).table())
            return
        click.echo(run_model_bench(kind=kind, attributes=attributes,
                                   progress=progress).table())
        return
    from streams.bench import run_bench

    click.echo(run_bench(Settings.load(), events, rate, seconds).table())


@main.command()
@click.option("--leads", type=int, default=1000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=float, default=7.0, show_default=True, help="Simulated span.")
@click.option("--wall-seconds", type=float, default=60.0, show_default=True,
              help="Real time the replay takes (0: as fast as possible).")
@click.option("--bad-share", type=float, default=0.05, show_default=True)
@click.option("--delays", type=click.Choice(["none", "realistic", "heavy"]), default="realistic",
              show_default=True,
              help="How late sources deliver: realistic has CRM webhooks seconds, some minutes"
                   " and a few hours late; heavy 20% minutes and 2% hours late.")
@click.option("--via", type=click.Choice(["http", "kafka"]), default="http", show_default=True)
@click.option("--url", default=None, help="API base URL for --via http.")
@click.option("--rate", type=float, default=None, help="Cap on events/s.")
@click.option("--truth", type=click.Path(dir_okay=False), default=None,
              help="Where to write the hidden truth (default DATA_DIR/truth.jsonl).")
def simulate(
    leads: int, seed: int, days: float, wall_seconds: float, bad_share: float, delays: str,
    via: str, url: str | None, rate: float | None, truth: str | None,
) -> None:
    """Replay a realistic synthetic funnel (seeded) into a running leadflow.

    \b
    Examples:
      leadflow simulate --leads 500 --wall-seconds 30
      leadflow simulate --via kafka --wall-seconds 0 --leads 5000
      leadflow simulate --delays heavy
    """
    from streams.app import make_registry
    from streams.codec import Codec
    from streams.simulate import generate, send_http, send_kafka, write_truth

    settings = Settings.load()
    scenario = generate(seed, leads=leads, days=days, bad_share=bad_share,
                        wall_seconds=wall_seconds, delays=delays)
    truth_path = truth or str(settings.data_path / "truth.jsonl")
    settings.data_path.mkdir(parents=True, exist_ok=True)
    write_truth(scenario, truth_path)
    if via == "http":
        if not settings.webhook_secrets:
            raise click.ClickException("set LEADFLOW_WEBHOOK_SECRETS to sign CRM webhooks")
        base = url or f"http://{settings.web_host}:{settings.web_port}"
        from streams.access.client import client_key

        report = run_async(send_http(scenario, base, settings.webhook_secrets[0], rate=rate,
                                     api_key=client_key(settings)))
    else:
        codec = Codec(make_registry(settings), settings.max_record_bytes)
        report = run_async(send_kafka(scenario, settings.bootstrap, codec, rate=rate))
    click.echo(f"{report}\nhidden truth: {truth_path}")


@main.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]), default=None,
              help="Only events at or after this UTC time (rebuilds those leads from there).")
@click.option("--archive", "archive_dir", type=click.Path(file_okay=False), default=None,
              help="Archive directory (default LEADFLOW_ARCHIVE_DIR or DATA_DIR/archive).")
def replay(since: Any, archive_dir: str | None) -> None:
    """Publish the archived inputs into the broker, so a fresh worker rebuilds its state.

    The broker must be running (`leadflow broker` or `leadflow up`).

    \b
    Examples:
      leadflow replay
      leadflow replay --since 2026-11-01 --archive /srv/leadflow/archive
    """
    from datetime import UTC

    from streams.archive.layout import archive_root
    from streams.archive.replay import replay as run_replay
    from streams.errors import LeadflowError

    settings = Settings.load()
    root = archive_root(settings.replace(archive_dir=archive_dir or settings.archive_dir))
    try:
        report = run_async(run_replay(settings, root, since=since and since.replace(tzinfo=UTC)))
    except LeadflowError as err:
        raise click.ClickException(str(err)) from err
    click.echo(report.table())


@main.command()
@click.argument("subject", metavar="LEAD_ID|EMAIL")
@click.option("--by", "by", default=None,
              help="Who asks (recorded in the erasure log; default: your login name).")
@click.option("--wait", "wait_s", type=float, default=120.0, show_default=True,
              help="Seconds to wait for the workers to finish it (0: do not wait).")
def erase(subject: str, by: str | None, wait_s: float) -> None:
    """Erase a person's personal data everywhere leadflow keeps it (GDPR Art. 17).

    A lead id erases that lead and every lead of the same person; an e-mail erases every
    lead captured with it. Tables, changelogs (rewritten values, identity tombstone), the
    archive (files rewritten), the dashboard's read cache. Repeating it changes nothing.
    What stays and what erasure cannot reach: README, Operations, Erasure.

    
    Examples:
      leadflow erase 3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53 --by dpo@example.com
      leadflow erase dana.whitfield@northwind-analytics.io
    """
    import getpass

    from streams import erase as erasing
    from streams.errors import LeadflowError

    settings = Settings.load()
    who = by or getpass.getuser()
    try:
        done = erasing.run(settings, subject, by=who, timeout_s=wait_s or None)
    except LeadflowError as err:
        raise click.ClickException(str(err)) from err
    click.echo(json.dumps(done, indent=2))


@main.group()
def schemas() -> None:
    """The Avro contracts under avro/."""


@schemas.command("check")
def schemas_check() -> None:
    """Check every contract: docs, enum defaults, FULL_TRANSITIVE compatibility.

    \b
    Example:
      leadflow schemas check
    """
    from streams.schemas import check_all

    problems = check_all()
    for p in problems:
        click.echo(f"FAIL {p}", err=True)
    if problems:
        sys.exit(1)
    click.echo("all contracts OK (docs, enum defaults, FULL_TRANSITIVE between versions)")


@main.command()
@click.option("--port", type=int, default=None, help="Port (default LEADFLOW_DASHBOARD_PORT).")
@click.option("--host", default=None, help="Address (default LEADFLOW_DASHBOARD_HOST).")
def dashboard(port: int | None, host: str | None) -> None:
    """Serve the Streamlit dashboard over the archive (Marketing, RevOps, Data team,
    Pipeline health).

    \b
    Example:
      leadflow dashboard --port 8501
    """
    from dashboard.server import serve

    settings = Settings.load()
    sys.exit(serve(settings, port=port, host=host))


@main.command()
def config() -> None:
    """Print every setting, its environment variable and its current value.

    \b
    Example:
      LEADFLOW_WEB_PORT=9000 leadflow config
    """
    settings = Settings.load()
    for name, env, _default in Settings.documented():
        value = getattr(settings, name)
        if name == "webhook_secrets":
            value = f"<{len(value)} secret(s)>"
        elif name in ("notify_secret", "api_key") and value:
            value = "<set>"
        elif name == "api_keys":
            value = f"<{len(value)} key(s): {', '.join(v.split(':', 1)[0] for v in value)}>"
        click.echo(f"{env:34} {value!r}")


@main.command()
@click.option("--write", is_flag=True, help="Rewrite docs/asyncapi.yaml in the repository.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON with the Avro contracts inlined (as GET /v1/asyncapi.json).")
def asyncapi(write: bool, as_json: bool) -> None:
    """Print the AsyncAPI 3.0 document of every Kafka topic leadflow reads or writes.

    \b
    Examples:
      leadflow asyncapi                 YAML, payloads referencing avro/*.avsc
      leadflow asyncapi --json          self-contained JSON
      leadflow asyncapi --write         regenerate docs/asyncapi.yaml (after a topic or
                                        contract change; a test checks it is current)
    """
    from streams import asyncapi as doc

    if as_json:
        click.echo(json.dumps(doc.document(inline=True), indent=2))
        return
    text = doc.dump_yaml(doc.document())
    if write:
        doc.repo_file().write_text(text, encoding="utf-8")
        click.echo(f"wrote {doc.repo_file()}")
    else:
        click.echo(text, nl=False)


main.add_command(import_command)
main.add_command(keys_group)
main.add_command(model_group)
main.add_command(threshold_group)

if __name__ == "__main__":
    main()
