"""`ketenbroker chain`: chains, the services that see the same pseudonym."""

from __future__ import annotations

from pathlib import Path

import click

from broker.cli.options import checked_name, config_option, open_registry, reports_errors
from broker.core.model import Chain


@click.group("chain")
def chain_group() -> None:
    """Chains: services that see the same pseudonym."""


@chain_group.command("add")
@config_option
@click.option("--id", "chain_id", required=True)
@click.option("--name", required=True, callback=checked_name)
@reports_errors
def chain_add(config_path: Path, chain_id: str, name: str) -> None:
    _, registry = open_registry(config_path)
    registry.add_chain(Chain(chain_id, name))
    click.echo(f"Chain {chain_id} added.")
