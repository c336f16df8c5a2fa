"""`ketenbroker pseudonym-key …`: rotate one chain's pseudonym key with a migration window.

A rotation changes every pseudonym of one chain, so it is planned with the chain's publishers:
`rotate` points the chain at a newer key version and opens a window in which its services get
the new pseudonym and the previous one; `finish` (or the window's end) releases the new one
alone. The plan is made in the core (pseudonym_rotation.py); this module reads and writes the
key set file and the registry, and never prints key material.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path

import click

from broker.cli.options import config_option, open_registry, reports_errors, who
from broker.config import Settings
from broker.core.chain_move import move_state, refuse_rotation_during_moves
from broker.core.pseudonym import PseudonymKeys
from broker.core.pseudonym_rotation import (
    ChainKeyVersion,
    RotationRefused,
    chain_current_version,
    finished,
    plan_rotation,
)
from broker.pseudonym_key_file import add_key_version, read_key_set
from broker.registry import SqlRegistry

ENV_NAME = "KETENBROKER_PSEUDONYM_KEYS"


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def key_set_now(settings: Settings) -> PseudonymKeys:
    """The key set as it is now: read again from its file (another command may have added a
    version since this process loaded the configuration)."""
    path = settings.pseudonym_keys_file
    return read_key_set(path) if path is not None else settings.pseudonym_keys


def _pseudonym_chain(registry: SqlRegistry, chain_id: str | None, service_id: str | None) -> str:
    """The pseudonym chain input for --chain or --service (a service in no chain)."""
    if (chain_id is None) == (service_id is None):
        raise click.UsageError("give --chain (a chain) or --service (a service in no chain)")
    if chain_id is not None:
        if registry.chain(chain_id) is None:
            raise click.ClickException(f"unknown chain {chain_id!r}")
        return chain_id
    assert service_id is not None
    service = registry.any_service(service_id)
    if service is None:
        raise click.ClickException(f"unknown service {service_id!r}")
    if service.chain_id:
        raise click.ClickException(
            f"service {service_id} is in chain {service.chain_id}: rotate that chain "
            f"(--chain {service.chain_id})"
        )
    return service.pseudonym_chain


def _add_version(settings: Settings, version: int) -> None:
    path = settings.pseudonym_keys_file
    if path is None:
        raise RotationRefused(
            f"the key set comes from {ENV_NAME}: add version {version} (64 random hex "
            "characters) to it in every worker's environment, restart the workers, then run "
            "this command again"
        )
    add_key_version(path, version)


def _named(chain_id: str | None, service_id: str | None) -> str:
    """How to name the same chain again on the command line."""
    return f"--chain {chain_id}" if chain_id is not None else f"--service {service_id}"


chain_option = click.option("--chain", "chain_id", default=None, help="the chain's id")
service_option = click.option(
    "--service", "service_id", default=None, help="a service in no chain (a chain of its own)"
)


@click.group("pseudonym-key")
def pseudonym_key_group() -> None:
    """Rotate a chain's pseudonym key, with a migration window (docs/operations.md)."""


@pseudonym_key_group.command("rotate")
@config_option
@chain_option
@service_option
@click.option(
    "--window",
    "window_days",
    type=int,
    required=True,
    help="days in which services receive the new and the previous pseudonym",
)
@reports_errors
def rotate(
    config_path: Path, chain_id: str | None, service_id: str | None, window_days: int
) -> None:
    """Give a chain a new pseudonym key version and open its migration window."""
    settings, registry = open_registry(config_path)
    # Known before the key set file is written: nothing between that write and the registry's
    # record of it may fail on its own.
    changed_by = who()
    chain = _pseudonym_chain(registry, chain_id, service_id)
    record = registry.pseudonym_keys.of(chain)
    keys = key_set_now(settings)
    now = datetime.now(UTC)
    plan = plan_rotation(keys, record, chain, window_days, now)
    # Before a version is added to the key set: a refused rotation changes nothing (the write
    # checks again in its transaction).
    refuse_rotation_during_moves(chain, registry.chain_moves(), now)
    if plan.add_version:
        _add_version(settings, plan.new_version)
        click.echo(f"Key set: version {plan.new_version} added (key material not shown).")
    registry.pseudonym_keys.replace(record, plan.record, changed_by)
    assert plan.record.window_ends is not None
    click.echo(
        f"Chain {chain}: key version {plan.new_version} (was {plan.record.previous_version}); "
        f"migration window until {_when(plan.record.window_ends)}."
    )
    click.echo(
        "  Its services now receive the new pseudonym, and the previous one as "
        "urn:ketenbroker:previous-pseudonym (SAML) and previous_sub (OIDC)."
    )
    # The whole command, --config included, so the operator can paste it as it stands.
    click.echo(
        f"  End it earlier with: ketenbroker pseudonym-key finish --config "
        f"{shlex.quote(str(config_path))} {_named(chain_id, service_id)}"
    )


@pseudonym_key_group.command("finish")
@config_option
@chain_option
@service_option
@reports_errors
def finish(config_path: Path, chain_id: str | None, service_id: str | None) -> None:
    """End a chain's migration window: only the new pseudonym is released from now on."""
    _, registry = open_registry(config_path)
    chain = _pseudonym_chain(registry, chain_id, service_id)
    record = registry.pseudonym_keys.of(chain)
    done = finished(record, chain)
    registry.pseudonym_keys.replace(record, done, who())
    click.echo(
        f"Chain {chain}: migration window finished; key version {done.current_version} alone."
    )


@pseudonym_key_group.command("add")
@config_option
@reports_errors
def add(config_path: Path) -> None:
    """Add a new key version without giving it to any chain (to copy the key set to every
    host first; the next `rotate` then uses it)."""
    settings, _ = open_registry(config_path)
    version = max(key_set_now(settings).keys) + 1
    _add_version(settings, version)
    click.echo(f"Key set: version {version} added (key material not shown).")


@pseudonym_key_group.command("status")
@config_option
@reports_errors
def status(config_path: Path) -> None:
    """Each chain's key version and migration window."""
    settings, registry = open_registry(config_path)
    keys = key_set_now(settings)
    versions = ", ".join(str(v) for v in sorted(keys.keys))
    click.echo(f"Key set: versions {versions}; chains never rotated use {keys.current_version}.")
    if keys.previous_version is not None:
        # An operator who relied on the file's `previous` must learn it no longer releases.
        click.echo(
            f"Key set: `previous = {keys.previous_version}` releases nothing; a previous"
            " pseudonym goes only to a chain inside its own window (`rotate`)."
        )
    records = {r.chain: r for r in registry.pseudonym_keys.all()}
    chains = {c.id for c in registry.chains()}
    chains |= {s.pseudonym_chain for s in registry.all_services() if not s.chain_id}
    now = datetime.now(UTC)
    for chain in sorted(chains | set(records)):
        # A removed chain's (or service's) record stays, so the id registered again derives
        # the same pseudonyms (`chain remove`); say so, or it reads as a live chain.
        gone = "" if chain in chains else " (removed; record kept)"
        click.echo(f"{chain}{gone}: {_status_line(keys, records.get(chain), now)}")
    for move in registry.chain_moves():
        # A moved service's window (`chain move --window`): its previous pseudonym is another
        # chain's, so it is said per service, after the chains.
        click.echo(f"service {move.service_id} (in {move.to_chain}): {move_state(move, now)}")


def _status_line(keys: PseudonymKeys, record: ChainKeyVersion | None, now: datetime) -> str:
    line = f"version {chain_current_version(keys, record)}"
    window = window_state(record, now)
    return f"{line}; window {window}" if window else line


def window_state(record: ChainKeyVersion | None, now: datetime) -> str:
    """A chain's migration window as `status` and `chain list` say it; "" when it has none."""
    if record is None or record.previous_version is None or record.window_ends is None:
        return ""
    if record.window_open(now):
        return (
            f"open until {_when(record.window_ends)} "
            f"(previous version {record.previous_version} released too)"
        )
    return (
        f"ended {_when(record.window_ends)} (version {record.previous_version} no longer released)"
    )
