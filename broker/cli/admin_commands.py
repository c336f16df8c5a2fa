"""`ketenbroker admin create|list|remove`: portal administrators: the first operator, who has
an account, and removing one (a colleague who left) without removing their whole school or
publisher (broker/registry/admin_removal.py).

A removal without `--yes` says who would go and what stays, changes nothing and exits with code
3, as `school remove` does (entry_commands.py). Only these commands print staff e-mail
addresses: the operator needs them here, and they never reach a log line."""

from __future__ import annotations

from pathlib import Path

import click

from broker.cli.counts import counted
from broker.cli.entry_commands import (
    CONFIRMATION_NEEDED,
    NONE,
    json_option,
    print_table,
    yes_option,
)
from broker.cli.options import config_option, open_registry, reports_errors, who
from broker.core.admins import AdminRole


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


@admin_group.command("list")
@config_option
@json_option
@reports_errors
def admin_list(config_path: Path, as_json: bool) -> None:
    """Every portal administrator: id, e-mail address, role and the school or publisher they
    act for (none for an operator)."""
    _, registry = open_registry(config_path)
    lines: list[dict[str, str | int]] = [
        {"id": a.id, "e-mail": a.email, "role": a.role.value, "tenant": a.tenant_id or NONE}
        for a in registry.accounts.admins()
    ]
    print_table(lines, "administrator", as_json)


@admin_group.command("remove")
@config_option
@click.argument("email")
@yes_option
@reports_errors
def admin_remove(config_path: Path, email: str, confirmed: bool) -> None:
    """Remove one administrator (a colleague who left): their password and authenticator stop
    working and their portal sessions end; what they changed stays in the history. The last
    operator account is kept."""
    _, registry = open_registry(config_path)
    accounts = registry.accounts
    found = accounts.admin_with_email(email)
    if found is None:
        raise click.ClickException(f"no administrator with the e-mail address {email.strip()!r}")
    if confirmed:
        removal = accounts.remove_admin(found.id, removed_by=who())
    else:
        removal = accounts.admin_removal(found.id)
    admin = removal.admin
    tenant = f", {admin.role.value} {admin.tenant_id}" if admin.tenant_id else ""
    kind = "Operator" if admin.role is AdminRole.OPERATOR else f"{admin.role.value} administrator"
    title = f"{kind.capitalize()} {admin.id} ({admin.email}{tenant})"
    click.echo(f"{title} {'removed' if removal.applied else 'would be removed'}.")
    click.echo("Went with it:" if removal.applied else "Goes with it:")
    click.echo(
        "  the account: password and authenticator stop working, portal sessions end at once"
    )
    if removal.invitations:
        invitations = counted(removal.invitations, "open invitation")
        click.echo(f"  {invitations} to this address: closed, its link stops working")
    click.echo("Kept:" if removal.applied else "Stays:")
    click.echo('  what they changed, in the history as "removed administrator"')
    click.echo("  receipts, unaffected")
    if admin.role is AdminRole.OPERATOR:
        click.echo("  invitations they sent to others (withdraw one on the Administrators page)")
    if removal.applied:
        return
    click.echo(f"Nothing was changed: run again with --yes to remove {admin.email}.")
    raise SystemExit(CONFIRMATION_NEEDED)
