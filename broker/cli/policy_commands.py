"""`ketenbroker policy`: what each school releases to each service (versioned in the
registry)."""

from __future__ import annotations

from pathlib import Path

import click

from broker.cli.options import (
    catalogue_attribute,
    config_option,
    open_registry,
    reports_errors,
    who,
)


@click.group("policy")
def policy_group() -> None:
    """What each school releases to each service."""


@policy_group.command("set")
@config_option
@click.option("--school", "school_id", required=True)
@click.option("--publisher", "service_id", required=True)
@click.option("--release", default="", help="ATTR[,ATTR…]; empty: the pseudonym alone")
@reports_errors
def policy_set(config_path: Path, school_id: str, service_id: str, release: str) -> None:
    names = frozenset(catalogue_attribute(a.strip()) for a in release.split(",") if a.strip())
    _, registry = open_registry(config_path)
    result = registry.set_policy(school_id, service_id, names, who())
    shown = ", ".join(sorted(result.attributes)) or "the pseudonym alone"
    click.echo(f"Policy version {result.version}: {school_id} releases {shown} to {service_id}.")


@policy_group.command("show")
@config_option
@click.option("--school", "school_id", required=True)
@click.option("--publisher", "service_id", default=None)
@reports_errors
def policy_show(config_path: Path, school_id: str, service_id: str | None) -> None:
    _, registry = open_registry(config_path)
    if registry.school(school_id) is None:
        raise click.ClickException(f"unknown school {school_id!r}")
    services = registry.services()
    if service_id is not None:
        services = [s for s in services if s.id == service_id]
        if not services:
            raise click.ClickException(f"unknown publisher {service_id!r}")
    for service in services:
        current = registry.policy(school_id, service.id)
        shown = ", ".join(sorted(current.attributes)) or "(pseudonym only)"
        declared = (
            ", ".join(f"{d.attribute}{'*' if d.required else ''}" for d in service.declarations)
            or "-"
        )
        click.echo(f"{service.id}: v{current.version} releases {shown}; declared: {declared}")
