"""`ketenbroker chain`: chains, the services that see the same pseudonym.

`list` shows each chain's pseudonym key version and migration window as the registry keeps
them (never key material); `remove` follows the other removals (entry_commands.py): without
`--yes` it says what would go and exits with code 3.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import click

from broker.cli.entry_commands import (
    NONE,
    Cell,
    json_option,
    print_table,
    report_removal,
    yes_option,
)
from broker.cli.options import checked_name, config_option, open_registry, reports_errors, who
from broker.cli.pseudonym_key_commands import key_set_now, window_state
from broker.core.model import Chain
from broker.core.pseudonym_rotation import chain_current_version


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
    version it derives with and its migration window."""
    settings, registry = open_registry(config_path)
    keys = key_set_now(settings)
    records = {record.chain: record for record in registry.pseudonym_keys.all()}
    services = Counter(s.chain_id for s in registry.all_services() if s.chain_id)
    now = datetime.now(UTC)
    lines: list[dict[str, Cell]] = [
        {
            "id": chain.id,
            "name": chain.name,
            "services": services[chain.id],
            "key version": chain_current_version(keys, records.get(chain.id)),
            "window": window_state(records.get(chain.id), now) or NONE,
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
