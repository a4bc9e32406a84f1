"""The `leadflow import` command: check every row, report, then produce (unless told not to)."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from streams.settings import Settings

if TYPE_CHECKING:
    from streams.importing.export import Summary

EXAMPLES = Path(__file__).resolve().parent
# Enough to see the pattern on a terminal; all of them are in the rejected file.
_SHOWN = 50

HELP = f"""Load a CRM export (CSV) of past leads and their outcomes onto the lead, activity and
status topics, so a team trains its first model on its own past.

A mapping file (TOML) says which column holds which field (lead id, email, names, company,
size, region, created time, consent, status, status time, ...), which columns count
activities (N page views: N events) and how CRM statuses translate ("Closed - Won" =
"CLOSED_WON"). Each row becomes a LeadCaptured, its activities, and its status history
along the lifecycle (MQL at the handover, then on to the final status).

An export without personal data (no email column) needs only an id and an outcome: it is
history to learn from, never routed, judged or identity-merged. Its other columns become
custom attributes ([attributes] "name" = "column"), and its rows are dated by a created_at
column, by row order ([formats] row_spacing = "15m") or not at all (training then holds out
a stratified random split). Only the columns the mapping names are read.

Every record is checked by the contract intake applies before anything is produced. A row
that fails is reported as "line N: CODE column: reason", written to EXPORT.rejected.csv
(line, error, then the row as it was) and skipped; never dropped silently. Ids are
deterministic: importing the same file again changes nothing.

Exit status: 0 when at least one row was imported (rejected rows are counted and listed);
1 when no row could be imported, or the broker failed (re-running is safe); 2 when the
mapping or the export is unusable, or with --strict when any row was rejected (then nothing
is produced).

\b
Example mapping and export (commented; copy and adapt):
  {EXAMPLES / "example-mapping.toml"}
  {EXAMPLES / "example-export.csv"}
\b
Examples:
  leadflow import {EXAMPLES / "example-export.csv"} \\
      --mapping {EXAMPLES / "example-mapping.toml"} --dry-run
  leadflow import crm-leads.csv -m crm-mapping.toml --strict
  leadflow import history.csv -m history-mapping.toml   # id, outcome, attributes only
"""


@click.command("import", help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("export", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-m", "--mapping", "mapping_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Column-mapping file (TOML).")
@click.option("--dry-run", is_flag=True, help="Check and report every row; produce nothing.")
@click.option("--strict", is_flag=True, help="If any row is rejected, import nothing (exit 2).")
@click.option("--rejected", "rejected_out", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write rejected rows (default: EXPORT.rejected.csv beside it).")
def import_command(
    export: Path, mapping_path: Path, dry_run: bool, strict: bool, rejected_out: Path | None
) -> None:
    sys.exit(run_import(export, mapping_path, Settings.load(), dry_run=dry_run, strict=strict,
                        rejected_out=rejected_out))


def run_import(
    export: Path,
    mapping_path: Path,
    settings: Settings,
    *,
    dry_run: bool = False,
    strict: bool = False,
    rejected_out: Path | None = None,
) -> int:
    """The command's work; returns the exit status (see the help)."""
    from tqdm import tqdm

    from streams.codec import Codec
    from streams.errors import LeadflowError
    from streams.importing.exceptions import ImportSetupError
    from streams.importing.export import (
        Export,
        OfflineRegistry,
        RejectedWriter,
        Summary,
        rejected_path,
    )
    from streams.importing.mapping import load_mapping
    from streams.importing.rows import MappedRow, RowError

    # One observation time for both passes, so the second maps every row exactly as checked.
    observed_at = datetime.now(UTC)
    skew = timedelta(seconds=settings.max_clock_skew_s)
    out = rejected_out or rejected_path(export)
    summary = Summary()
    try:
        source = Export(export, load_mapping(mapping_path))
        writer = RejectedWriter(out, source.header())
        total = source.count()
        checker = Codec(OfflineRegistry(), settings.max_record_bytes)
        shown = 0
        with tqdm(total=total, unit="row", desc="checking", disable=None) as bar:
            try:
                plan = source.plan(observed_at=observed_at, max_skew=skew, codec=checker,
                                   summary=summary)
                for cells, result in plan:
                    bar.update()
                    if isinstance(result, RowError):
                        writer.write(result, cells)
                        if shown < _SHOWN:
                            tqdm.write(str(result), file=sys.stderr)
                            shown += 1
            finally:
                writer.close()
    except ImportSetupError as exc:
        click.secho(f"error: {exc}", err=True, fg="red")
        return 2
    if summary.rejected_rows > shown:
        click.echo(f"... and {summary.rejected_rows - shown} more rejected rows in {out}", err=True)
    if writer.rows == 0 and rejected_out is None and out.exists():
        out.unlink()  # an earlier run's rejects would read as this run's

    if strict and summary.rejected_rows:
        _report(summary, export, out, produced=None)
        click.secho("--strict: rows were rejected, nothing imported", err=True, fg="red")
        return 2
    if summary.imported == 0:
        _report(summary, export, out, produced=None)
        click.secho("no row could be imported", err=True, fg="red")
        return 1
    if dry_run:
        _report(summary, export, out, produced=None)
        click.echo("dry run: nothing produced")
        return 0

    from streams.cli import run_async
    from streams.importing.publish import publish

    published = 0

    def done(_: MappedRow) -> None:
        nonlocal published
        published += 1
        bar.update()

    with tqdm(total=summary.imported, unit="row", desc="importing", disable=None) as bar:
        rows = (
            result
            for _, result in source.plan(observed_at=observed_at, max_skew=skew)
            if isinstance(result, MappedRow)
        )
        try:
            produced = run_async(publish(settings, rows, on_row=done))
        except (LeadflowError, ImportSetupError) as exc:
            click.secho(f"error: {exc} (re-running the import is safe)", err=True, fg="red")
            return 1
    _report(summary, export, out, produced=produced)
    if published != summary.imported:
        # Both passes map the same bytes the same way; a difference means the file changed.
        click.secho(f"warning: {summary.imported} rows checked but {published} produced: did "
                    f"{export} change during the import?", err=True, fg="yellow")
        return 1
    return 0


def _report(summary: Summary, export: Path, out: Path, *, produced: Counter[str] | None) -> None:
    empty = f" ({summary.empty} empty skipped)" if summary.empty else ""
    click.echo(f"export      {export}")
    click.echo(f"rows read   {summary.rows}{empty}")
    click.echo(f"imported    {summary.imported}")
    if summary.rejected_rows:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(summary.rejected.items()))
        click.secho(f"REJECTED    {summary.rejected_rows} ({codes}) -> {out}", fg="red", bold=True)
    else:
        click.echo("rejected    0")
    events = produced if produced is not None else summary.events
    label = "produced" if produced is not None else "to produce"
    parts = ", ".join(f"{topic} {n}" for topic, n in sorted(events.items()))
    click.echo(f"{label:11} {parts or 'nothing'}")
