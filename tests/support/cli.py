"""The `ketenbroker` command line, run in process for the CLI tests."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from broker.cli.main import main
from broker.config import load_settings
from broker.registry import SqlRegistry


def run(*args: str | Path) -> Result:
    """`ketenbroker ARGS`; an exception the command did not turn into a message fails the test."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def succeeds(*args: str | Path) -> str:
    """`ketenbroker ARGS`, which must succeed; its output."""
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


def registry_of(config: Path) -> SqlRegistry:
    """The registry of the broker configured at `config`, with its key to the sealed secrets
    (as every command opens it); close it."""
    settings = load_settings(config)
    return SqlRegistry(settings.registry_url, seal=settings.secret_seal())
