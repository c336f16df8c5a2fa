"""`ketenbroker admin`: portal administrators (the first operator, typically)."""

from __future__ import annotations

from pathlib import Path

import click

from broker.cli.options import config_option, open_registry, reports_errors


@click.group("admin")
def admin_group() -> None:
    """Portal administrators."""


@admin_group.command("create")
@config_option
@click.option("--email", required=True, help="the operator's e-mail address (their login)")
@reports_errors
def admin_create(config_path: Path, email: str) -> None:
    """Create an operator (the first one, typically); prints the TOTP key once.

    The password is asked for twice, hidden: never an option, so it stays out of the shell's
    history and the process list."""
    from broker.accounts import totp
    from broker.accounts.passwords import hash_password
    from broker.core.admins import AdminRole

    password = click.prompt(
        "Password (at least 12 characters)", hide_input=True, confirmation_prompt=True
    )
    password_hash = hash_password(password)
    secret = totp.new_secret()
    settings, registry = open_registry(config_path)
    created = registry.accounts.add_admin(email, password_hash, secret, AdminRole.OPERATOR, None)
    issuer = settings.organization.name or "Ketenbroker"
    click.echo(f"Operator {created.id} created. Add this key to an authenticator app now;")
    click.echo("it is not shown again:")
    click.echo(
        f"\n    key: {secret}\n    uri: {totp.provisioning_uri(secret, created.email, issuer)}\n"
    )
    click.echo(f"Sign in at {settings.url('/portal/sign-in')}")
