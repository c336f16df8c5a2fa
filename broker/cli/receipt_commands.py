"""`ketenbroker receipts …`: check the receipts' hash chains, remove old receipts, export them,
and create the receipts key for an instance made before receipts existed."""

from __future__ import annotations

import sys
import time
import tomllib
from pathlib import Path

import click

from broker.cli.instance import write_receipt_key
from broker.cli.options import config_option, open_registry, reports_errors
from broker.core.receipt_export import csv_lines, json_lines
from broker.registry.receipts import ReceiptQuery

DAY = 24 * 3600


@click.group("receipts")
def receipts_group() -> None:
    """Receipts: what was released about students, to whom, when (docs/receipts.md)."""


@receipts_group.command("verify")
@config_option
@reports_errors
def verify_command(config_path: Path) -> None:
    """Check every school's receipt chain; exit code 1 and the first break when one fails."""
    settings, registry = open_registry(config_path)
    book = registry.receipt_book(settings.receipts.keys)
    broken = 0
    for school_id in book.school_ids():
        report = book.verify(school_id)
        head = f" (newest: {report.head.seq} {report.head.hash[:16]})" if report.head else ""
        if report.problem is None:
            click.echo(f"{school_id}: {report.receipts} receipts, chain intact{head}")
            continue
        broken += 1
        problem = report.problem
        click.echo(
            f"{school_id}: BROKEN at receipt {problem.seq}: {problem.reason} "
            f"({report.receipts} receipts verified before it)"
        )
    if broken:
        raise click.ClickException(f"{broken} school chain(s) broken")
    click.echo("All receipt chains intact.")


@receipts_group.command("prune")
@config_option
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=None,
    help="keep this many days (default: receipts.retention_days)",
)
@reports_errors
def prune_command(config_path: Path, days: int | None) -> None:
    """Remove receipts older than the retention period; run it daily (cron, a timer)."""
    settings, registry = open_registry(config_path)
    keep = days or settings.receipts.retention_days
    before = int(time.time()) - keep * DAY
    deleted = registry.receipt_book(settings.receipts.keys).prune(before)
    total = sum(deleted.values())
    click.echo(f"Removed {total} receipts older than {keep} days from {len(deleted)} schools.")


@receipts_group.command("export")
@config_option
@click.option("--school", "school_id", required=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv")
@click.option("--service", "service_id", default=None)
@click.option("--attribute", default=None)
@reports_errors
def export_command(
    config_path: Path, school_id: str, fmt: str, service_id: str | None, attribute: str | None
) -> None:
    """Write one school's receipts (oldest first) to standard output."""
    settings, registry = open_registry(config_path)
    book = registry.receipt_book(settings.receipts.keys)
    rows = book.each(ReceiptQuery(school_id, service_id=service_id, attribute=attribute))
    for chunk in (csv_lines if fmt == "csv" else json_lines)(rows):
        sys.stdout.write(chunk)


@receipts_group.command("init-key")
@config_option
def init_key_command(config_path: Path) -> None:
    """Create the file `keys.receipt_key` names, for an instance made before receipts."""
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise click.ClickException(f"cannot read {config_path}: {err}") from None
    name = data.get("keys", {}).get("receipt_key")
    if not isinstance(name, str) or not name:
        raise click.ClickException(
            'add receipt_key = "keys/receipt-key" to [keys] in the configuration first'
        )
    path = (config_path.parent / name).resolve()
    if path.exists():
        raise click.ClickException(f"{path} exists already; nothing was changed")
    write_receipt_key(path)
    click.echo(f"Receipts key written to {path} (mode 0600). Back it up with the other keys.")
