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
    from faust.worker import Worker

    from streams.app import build_app
    from streams.kafka import ensure_topics

    settings = Settings.load()
    run_async(ensure_topics(settings))
    app = build_app(settings)
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


@main.command()
@click.option("--demo", is_flag=True, help="Also run the simulator against the API.")
@click.option("--exit-after", type=float, default=None, help="Stop after SECONDS and summarise.")
@click.option("--leads", type=int, default=300, show_default=True, help="Simulated leads.")
@click.option("--seed", type=int, default=7, show_default=True)
def up(demo: bool, exit_after: float | None, leads: int, seed: int) -> None:
    """Start everything: embedded broker (unless LEADFLOW_BROKER_URL), worker, API.

    \b
    Examples:
      leadflow up --demo
      leadflow up --demo --exit-after 60
    """
    from streams.up import run_up

    sys.exit(run_up(Settings.load(), demo=demo, exit_after=exit_after, leads=leads, seed=seed))


@main.command()
@click.argument("lead_id")
@click.option("--url", default=None, help="API base URL (default http://WEB_HOST:WEB_PORT).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON.")
def trace(lead_id: str, url: str | None, as_json: bool) -> None:
    """Print a lead's timeline: every step with event and observation time.

    \b
    Example:
      leadflow trace 3f6c2a9e-8d1b-4c57-9a0e-2b7d4f1c8e53
    """
    from streams.views import fetch_trace, render_trace

    settings = Settings.load()
    base = url or f"http://{settings.web_host}:{settings.web_port}"
    status, body = fetch_trace(base, lead_id)
    if as_json:
        click.echo(json.dumps(body, indent=2))
    elif status != 200:
        raise click.ClickException(f"{body.get('code')}: {body.get('detail')}")
    else:
        click.echo(render_trace(body))
    if status != 200:
        sys.exit(1)


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
        click.echo(f"{env:34} {value!r}")


if __name__ == "__main__":
    main()
