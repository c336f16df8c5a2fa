"""`ketenbroker serve`: the broker under gunicorn with the project's configuration
(broker/cli/gunicorn_conf.py). The configuration and the registry's schema revision are checked
here first, so a mistake is one clear line instead of every worker failing to boot, or booting
into a registry it cannot read."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from broker.cli.options import config_option, logging_settings, reports_errors
from broker.config import ENV_CONFIG
from broker.core.errors import ConfigurationError
from broker.registry.migration import require_schema_at_head

GUNICORN_CONFIG = "python:broker.cli.gunicorn_conf"
APP = "broker.web:create_app()"


@click.command("serve")
@config_option
@click.option(
    "--bind", default=None, help="host:port [default: $KETENBROKER_BIND or 127.0.0.1:8000]"
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="worker processes [default: $KETENBROKER_WORKERS or the number of CPUs]",
)
@reports_errors
def serve_command(config_path: Path, bind: str | None, workers: int | None) -> None:
    """Serve the broker with gunicorn (production). Does not migrate: refuses a registry that
    `migrate` has not brought up to date, and one a newer version migrated unless that version
    declares this one able to run on it (a rolling upgrade)."""
    settings = logging_settings(config_path)
    environment = dict(os.environ)
    environment[ENV_CONFIG] = str(config_path.resolve())
    if bind:
        environment["KETENBROKER_BIND"] = bind
    if workers:
        environment["KETENBROKER_WORKERS"] = str(workers)
    count = environment.get("KETENBROKER_WORKERS") or str(os.cpu_count() or 1)
    if settings.store_url.startswith("memory:") and count != "1":
        # Each worker would have a store of its own: a login started on one fails on another.
        raise ConfigurationError(
            "store.url memory:// serves one process only: set a Redis URL or use --workers 1"
        )
    # Workers never migrate (several at once would race), and on a registry without this
    # version's tables they would boot and answer every login with an error. A newer registry
    # that declares this version able to run on it is served, with a warning.
    require_schema_at_head(
        settings.registry_url, f'run "ketenbroker migrate --config {config_path}"'
    )
    command = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONFIG, APP]
    # exec, not a child: gunicorn becomes this process, so a supervisor's signals reach it.
    os.execve(sys.executable, command, environment)  # noqa: S606 (fixed argv, no shell)
