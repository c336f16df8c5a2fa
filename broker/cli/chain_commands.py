"""`ketenbroker chain`: chains, the services that see the same pseudonym.

`list` shows each chain's pseudonym key version and migration window as the registry keeps
them (never key material); `remove` follows the other removals (entry_commands.py): without
`--yes` it says what would go and exits with code 3. `move` puts a service in another chain (or
in none), the same confirmation: it changes every pseudonym the service receives.
"""

from __future__ import annotations

import shlex
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import click

from broker.cli.entry_commands import (
    CONFIRMATION_NEEDED,
    NONE,
    Cell,
    json_option,
    print_table,
    report_removal,
    yes_option,
)
from broker.cli.options import checked_name, config_option, open_registry, reports_errors, who
from broker.cli.pseudonym_key_commands import key_set_now, window_state
from broker.core.chain_move import ChainMove, open_moves, plan_move
from broker.core.errors import UnknownService
from broker.core.model import Chain
from broker.core.pseudonym_rotation import chain_current_version
from broker.registry.errors import UnknownChain


@click.group("chain")
def chain_group() -> None:
    """Chains: services that see the same pseudonym."""


@chain_group.command("add")
@config_option
@click.option("--id", "chain_id", required=True)
@click.option("--name", required=True, callback=checked_name)
@reports_errors
def chain_add(config_path: Path, chain_id: str, name: str) -> None:
    """Register a chain: the services in it see the same pseudonym for a student."""
    _, registry = open_registry(config_path)
    registry.add_chain(Chain(chain_id, name))
    click.echo(f"Chain {chain_id} added.")


@chain_group.command("list")
@config_option
@json_option
@reports_errors
def chain_list(config_path: Path, as_json: bool) -> None:
    """Every chain, by id: how many services are in it (approved or not), the pseudonym key
    version it derives with, its migration window, and the open migration windows of services
    that moved into it (`move --window`)."""
    settings, registry = open_registry(config_path)
    keys = key_set_now(settings)
    records = {record.chain: record for record in registry.pseudonym_keys.all()}
    services = Counter(s.chain_id for s in registry.all_services() if s.chain_id)
    now = datetime.now(UTC)
    moves = open_moves(registry.chain_moves(), now)
    lines: list[dict[str, Cell]] = [
        {
            "id": chain.id,
            "name": chain.name,
            "services": services[chain.id],
            "key version": chain_current_version(keys, records.get(chain.id)),
            "window": window_state(records.get(chain.id), now) or NONE,
            "move windows": "; ".join(
                f"{m.service_id} from {m.from_chain} until {m.window_ends:%Y-%m-%d %H:%M} UTC"
                for m in moves
                if m.to_chain == chain.id
            )
            or NONE,
        }
        for chain in registry.chains()
    ]
    print_table(lines, "chain", as_json)


@chain_group.command("remove")
@config_option
@click.argument("chain_id")
@yes_option
@reports_errors
def chain_remove(config_path: Path, chain_id: str, confirmed: bool) -> None:
    """Remove a chain no service is in, outside a pseudonym key migration window; its receipts
    and its key version record stay (refused while a service is in it: move or remove each
    first)."""
    _, registry = open_registry(config_path)
    removal = registry.remove_chain(chain_id, apply=confirmed, removed_by=who())
    report_removal(removal, registry)


@chain_group.command("move")
@config_option
@click.argument("service_id")
@click.option("--to", "chain_id", default=None, help="the chain the service goes into")
@click.option("--no-chain", is_flag=True, help="take the service out of every chain")
@click.option(
    "--window",
    "window_days",
    type=int,
    default=None,
    help="days in which the service receives its new and its previous pseudonym (1 to 366)",
)
@click.option("--finish", is_flag=True, help="end the service's open move window now")
@click.option(
    "--yes",
    "confirmed",
    is_flag=True,
    help="move it (without: say what would change; change nothing)",
)
@reports_errors
def chain_move(
    config_path: Path,
    service_id: str,
    chain_id: str | None,
    no_chain: bool,
    window_days: int | None,
    finish: bool,
    confirmed: bool,
) -> None:
    """Put a service in another chain (`--to CHAIN`) or in none (`--no-chain`). Its students
    then get other pseudonyms there: do it only with its publisher. With `--window DAYS` it
    receives the pseudonym it used to receive beside the new one for that long, so its platform
    can re-key its accounts; `--finish` ends that window early."""
    if finish:
        if chain_id is not None or no_chain or window_days is not None:
            raise click.UsageError("--finish takes the service alone")
        _finish_move(config_path, service_id)
        return
    if (chain_id is None) == (not no_chain):
        raise click.UsageError("give --to CHAIN or --no-chain, not both")
    settings, registry = open_registry(config_path)
    service = registry.service(service_id)
    if service is None:
        raise UnknownService(f"no service with id {service_id!r}")
    if chain_id is not None and registry.chain(chain_id) is None:
        raise UnknownChain(chain_id)
    named = f"Service {service.id} ({service.name})"
    was, to = _in_chain(service.chain_id), _in_chain(chain_id)
    if service.chain_id == chain_id:
        click.echo(f"{named} is already in {to}; nothing was changed.")
        return
    keys = key_set_now(settings)
    # Planned here too, so a dry run says a refusal as the move would (the write plans again).
    records = {
        r.chain: r
        for r in registry.pseudonym_keys.all()
        if r.chain in (service.pseudonym_chain, chain_id or f"service:{service.id}")
    }
    now = datetime.now(UTC)
    plan = plan_move(
        service, chain_id, keys, records, registry.chain_move(service.id), window_days, now
    )
    if not confirmed:
        click.echo(f"{named} would move from {was} to {to}.")
        click.echo(
            "  Its students would get other pseudonyms there (the chain is an input of the"
            " pseudonym)."
        )
        click.echo("  " + _window_text(plan, would=True))
        click.echo(f"Nothing was changed: run again with --yes to move {service.id}.")
        raise SystemExit(CONFIRMATION_NEEDED)
    move = registry.set_service_chain(
        service.id, chain_id, window_days=window_days, keys=keys, changed_by=who()
    )
    click.echo(f"{named} moved from {was} to {to}.")
    click.echo("  " + _window_text(move, would=False))
    if move is not None:
        click.echo(
            f"  End it earlier with: ketenbroker chain move --config "
            f"{shlex.quote(str(config_path))} {service.id} --finish"
        )
    click.echo("Running brokers use its new pseudonyms within a second.")


def _window_text(move: ChainMove | None, *, would: bool) -> str:
    """Whether the move has a migration window: the confirmation says which it is."""
    if move is None:
        sees = "would see" if would else "sees"
        return (
            f"Without a migration window (no --window): its platform {sees} its students as new"
            " students."
        )
    receives = "would receive" if would else "receives"
    return (
        f"With a migration window until {move.window_ends:%Y-%m-%d %H:%M} UTC: the service "
        f"{receives}, beside the new pseudonym, the one it used to receive ({move.from_chain}, "
        f"key version {move.from_version}) as urn:ketenbroker:previous-pseudonym (SAML) and "
        "previous_sub (OIDC)."
    )


def _finish_move(config_path: Path, service_id: str) -> None:
    _, registry = open_registry(config_path)
    move = registry.finish_chain_move(service_id)
    click.echo(
        f"Service {service_id}: migration window of its move from {move.from_chain} finished; "
        "its new pseudonym alone from now on."
    )


def _in_chain(chain_id: str | None) -> str:
    return f"chain {chain_id}" if chain_id else "no chain"
