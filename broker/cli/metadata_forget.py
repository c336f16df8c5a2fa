"""`ketenbroker metadata forget NAME`: drop the copy held of a source the configuration no
longer names, on the operator's word (docs/operations.md, "Renaming or removing a source").

A refresh never drops a copy (metadata_refresh.py): a misspelled or renamed source would take
its schools' metadata with it, every login through them refused, before the new name had a good
copy. Without `--yes` the command changes nothing and says what would lose its metadata: the
schools whose students could then not sign in and the services that would get no logins (no
other source holds them and no copy was given at registration), and how many would take
another copy instead (another source's, or the one given at registration). A configured source
is refused: the next refresh would fetch it again; remove it from the configuration first.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click

from broker.cli.counts import counted, listed
from broker.cli.entry_commands import CONFIRMATION_NEEDED
from broker.cli.options import config_option, open_registry, reports_errors
from broker.core.model import Protocol
from broker.registry import SqlRegistry


def _losses(before: dict[str, str], after: dict[str, str]) -> tuple[set[str], set[str]]:
    """Entity ids with no metadata left, and those that would take another copy."""
    lost = set(before) - set(after)
    other = {entity_id for entity_id, xml in after.items() if before.get(entity_id) != xml}
    return lost, other


def _listed(title: str, ids: Iterable[str]) -> None:
    found = sorted(ids)
    if found:
        click.echo(f"{title}: {len(found)} ({listed(found)})")


def _what_goes(registry: SqlRegistry, name: str) -> None:
    """Say what loses its metadata without `name`'s copy, as the login path would find it."""
    idp_lost, idp_other = _losses(
        registry.school_metadata(), registry.school_metadata(without_source=name)
    )
    sp_lost, sp_other = _losses(
        registry.service_metadata(approved_only=False),
        registry.service_metadata(approved_only=False, without_source=name),
    )
    schools = [s for s in registry.schools() if s.oidc is None]
    services = [s for s in registry.all_services() if s.protocol is Protocol.SAML]
    _listed(
        "Schools whose students could then not sign in (no metadata left)",
        (s.id for s in schools if s.idp_entity_id in idp_lost),
    )
    _listed(
        "Services that could then get no logins (no metadata left)",
        (s.id for s in services if s.entity_id in sp_lost),
    )
    other = sum(1 for s in schools if s.idp_entity_id in idp_other) + sum(
        1 for s in services if s.entity_id in sp_other
    )
    if other:
        click.echo(
            f"{counted(other, 'school or service', 'schools and services')} would take another "
            "copy instead (another source's, or the one given at registration)"
        )
    if not (idp_lost or sp_lost or other):
        click.echo("No registered school or service takes its metadata from this copy.")


@click.command("forget")
@config_option
@click.argument("name")
@click.option(
    "--yes",
    "confirmed",
    is_flag=True,
    help="drop the copy (without: say what would lose its metadata; change nothing)",
)
@reports_errors
def forget_command(config_path: Path, name: str, confirmed: bool) -> None:
    """Drop the copy held of a source no longer in [[metadata.sources]]; a refresh never does.

    Without --yes: what would lose its metadata, nothing changed (exit status 3)."""
    settings, registry = open_registry(config_path)
    if any(source.name == name for source in settings.metadata.sources):
        raise click.BadParameter(
            f"{name} is in [[metadata.sources]]: the next refresh would fetch it again; "
            "remove it from the configuration (on every machine) first",
            param_hint="NAME",
        )
    record = registry.federation.records().get(name)
    if record is None:
        raise click.BadParameter(f"the registry holds no copy of a source named {name}")
    until = record.valid_until.isoformat(timespec="seconds") if record.valid_until else "-"
    click.echo(
        f"{name}: not in [[metadata.sources]]; {record.entity_count} entities, valid until {until}"
    )
    _what_goes(registry, name)
    if not confirmed:
        click.echo(f"Nothing was changed: run again with --yes to forget {name}.")
        raise SystemExit(CONFIRMATION_NEEDED)
    registry.federation.forget(name)
    click.echo(f"{name} forgotten: running brokers stop using its copy within a second.")
