"""The `ketenbroker` command: the root group and the instance's own commands (init, run,
migrate, the demo); each group of registry and key commands lives in a `*_commands.py` module
of its own. Every command validates its input and says exactly what is wrong, changing nothing
when anything is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from broker.cli.admin_commands import admin_group
from broker.cli.chain_commands import chain_group
from broker.cli.counts import counted
from broker.cli.key_commands import keys_group
from broker.cli.metadata_commands import metadata_group
from broker.cli.options import config_option, logging_settings, reports_errors
from broker.cli.policy_commands import policy_group
from broker.cli.pseudonym_key_commands import pseudonym_key_group
from broker.cli.publisher_commands import publisher_group
from broker.cli.receipt_commands import receipts_group
from broker.cli.registry_commands import registry_group
from broker.cli.school_commands import school_group
from broker.cli.serve import serve_command
from broker.config import load_settings
from broker.registry import SqlRegistry, migrate, migrate_first
from broker.registry.migration import check_migration


def _show_version(context: click.Context, _parameter: click.Parameter, value: bool) -> None:
    if not value or context.resilient_parsing:
        return
    from importlib.metadata import version

    from broker.registry.migration import schema_head

    click.echo(f"ketenbroker {version('ketenbroker')} (registry schema {schema_head()})")
    context.exit()


@click.group()
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and the registry schema revision it is at, and exit.",
)
def main() -> None:
    """Ketenbroker: schools' logins in, chain pseudonyms out."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--scope", default="ketenbroker.example", show_default=True, help="pairwise-id scope")
@click.option("--organization", default="Ketenbroker", show_default=True)
def init(directory: Path, base_url: str, scope: str, organization: str) -> None:
    """Create a new broker in DIRECTORY: config, keys (mode 0600), empty registry."""
    from broker.cli.instance import init_instance

    try:
        config = init_instance(directory, base_url, scope, organization)
    except FileExistsError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Created {config}")
    click.echo(f"Next: ketenbroker school add --config {config} ...")


@main.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@reports_errors
def run(config_path: Path, host: str, port: int) -> None:
    """Serve the broker (development server; production: gunicorn, see docs/operations.md)."""
    from werkzeug.serving import run_simple

    from broker.cli.dev_server import PathOnlyRequestHandler
    from broker.web import create_app

    settings = logging_settings(config_path)
    migrate_first(settings.registry_url)
    run_simple(
        host, port, create_app(settings), threaded=True, request_handler=PathOnlyRequestHandler
    )


@main.command("migrate")
@config_option
@click.option(
    "--check",
    is_flag=True,
    help="Say what would be applied and whether the version running now could still run on "
    "the result, changing nothing: exit 0 when it could, 1 when it could not.",
)
@reports_errors
def migrate_command(config_path: Path, check: bool) -> None:
    """Bring the registry's schema up to date (run once before starting new workers). A
    registry a newer version migrated is left as it is: when it declares this version able to
    run on it, says so and exits 0 (an old image's one-shot migrate during a rolling upgrade);
    otherwise refuses. --check only says what it would do (docs/cli.md)."""
    settings = logging_settings(config_path)
    if check:
        found = check_migration(settings.registry_url)
        for line in (*found.lines, "nothing was changed (--check)"):
            click.echo(line)
        if found.breaks_running:
            click.get_current_context().exit(1)
        return
    click.echo(migrate(settings.registry_url) or "Registry schema is up to date.")
    _say_secrets_in_clear(settings.registry_url, config_path)


def _say_secrets_in_clear(url: str, config_path: Path) -> None:
    """The step after an upgrade to sealed secrets (revision 0020), when it is still to do. Not
    done here: workers of the version before cannot read a sealed value (docs/operations.md)."""
    registry = SqlRegistry(url)
    try:
        clear = registry.secrets_in_clear()
        marked = clear == 0 and registry.sealed_only_since() is not None
    finally:
        registry.close()
    if clear:
        click.echo(
            f"{counted(clear, 'secret')} (staff TOTP, school client) still in clear: once every "
            "worker runs this version, run "
            f"`ketenbroker registry seal-secrets --config {config_path}` (the registry then "
            "refuses secrets in clear)."
        )
    elif not marked:
        # Nothing in clear, yet not marked (revision 0021 counts expired invitations too).
        click.echo(
            "No secret in clear, but the registry does not refuse them yet: run "
            f"`ketenbroker registry seal-secrets --config {config_path}` to mark it."
        )


F = TypeVar("F", bound=Callable[..., object])


def _folder_option(default: str, help_text: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--dir",
        "directory",
        default=default,
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help=help_text,
    )


@main.command()
@click.option("--port", default=8000, show_default=True, type=int, help="the broker's port")
@_folder_option("ketenbroker-demo")
@reports_errors
def demo(port: int, directory: Path) -> None:
    """Start the broker with a demo school and demo publishers, all on this machine."""
    from broker.cli.demo import run_demo

    run_demo(directory, port)


@main.command("demo-peers")
@config_option
@_folder_option("ketenbroker-demo-peers", "where the peers keep their keys")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to listen on")
@click.option("--port", default=8001, show_default=True, type=int, help="the school's port")
@reports_errors
def demo_peers(config_path: Path, directory: Path, host: str, port: int) -> None:
    """The SAML demo school (PORT) and demo publishers (the ports after it) for a broker that
    runs elsewhere on this machine (docker/compose.yaml); registers them on first start."""
    from broker.cli.demo import run_saml_peers

    run_saml_peers(load_settings(config_path), directory, host, port)


# The command groups (`ketenbroker --help` lists them sorted by name).
for group in (
    school_group,
    chain_group,
    publisher_group,
    policy_group,
    admin_group,
    registry_group,
    receipts_group,
    serve_command,
    metadata_group,
    keys_group,
    pseudonym_key_group,
):
    main.add_command(group)


# `python -m broker.cli.main …` runs the same command as the `ketenbroker` script (without the
# guard it imported the module and exited silently, printing nothing, not even for --help).
if __name__ == "__main__":
    main()
