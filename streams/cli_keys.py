"""`leadflow keys …`: make API keys and the hash lines the workers are configured with."""

from __future__ import annotations

import sys

import click

from streams.access import keys
from streams.errors import LeadflowError
from streams.settings import Settings

SCOPE = click.Choice(keys.SCOPES)


@click.group("keys")
def keys_group() -> None:
    """API keys: a client sends one as `Authorization: Bearer KEY`; workers hold its hash.

    \b
    Rotating a key without downtime:
      1. leadflow keys new --id forms-2027 --scope ingest
      2. append the printed line to LEADFLOW_API_KEYS on every worker, restart them
      3. give the client the new key; once it uses it, remove the old line, restart
    """


@keys_group.command("new")
@click.option("--id", "key_id", required=True,
              help="A name for the key, shown in logs and refusals (letters, digits, . _ -).")
@click.option("--scope", "scopes", type=SCOPE, multiple=True, required=True,
              help="ingest (POST events), read (traces, SLA, stats, metrics), admin; repeat "
                   "for several.")
def keys_new(key_id: str, scopes: tuple[str, ...]) -> None:
    """Make a key: print it once, and the line that configures the workers with its hash.

    The key is shown only here: leadflow keeps its SHA-256, never the key.

    \b
    Example:
      leadflow keys new --id forms --scope ingest
      leadflow keys new --id ops --scope read --scope admin
    """
    key = keys.new_key()
    try:
        entry = keys.configured(key_id, scopes, key)
    except LeadflowError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"key (shown once; give it to the client):\n  {key}")
    click.echo("line for LEADFLOW_API_KEYS (comma-separated with the others) or api_keys "
               f"in leadflow.toml:\n  {entry.line()}")


@keys_group.command("hash")
@click.option("--id", "key_id", required=True, help="The key's name.")
@click.option("--scope", "scopes", type=SCOPE, multiple=True, required=True)
def keys_hash(key_id: str, scopes: tuple[str, ...]) -> None:
    """The LEADFLOW_API_KEYS line of a key made elsewhere, read from standard input.

    \b
    Example:
      vault read -field=key secret/leadflow/forms | leadflow keys hash --id forms --scope ingest
    """
    key = sys.stdin.readline().strip()
    if not key:
        raise click.ClickException("no key on standard input")
    try:
        click.echo(keys.configured(key_id, scopes, key).line())
    except LeadflowError as err:
        raise click.ClickException(str(err)) from err


@keys_group.command("list")
def keys_list() -> None:
    """The keys this configuration accepts: id and scopes (never a key; hashes shortened).

    \b
    Example:
      leadflow keys list
    """
    settings = Settings.load()
    try:
        ring = keys.KeyRing(settings.api_keys)
    except LeadflowError as err:
        raise click.ClickException(str(err)) from err
    if not len(ring):
        click.echo("no API key configured (LEADFLOW_API_KEYS): only health, the OpenAPI "
                   "document and public endpoints answer")
    for key in ring:
        click.echo(f"{key.id:24} {'+'.join(s for s in keys.SCOPES if s in key.scopes):20} "
                   f"sha256:{key.digest[:12]}…")
    if settings.public_endpoints:
        click.echo(f"public endpoints: {', '.join(settings.public_endpoints)}")
