"""The `ketenbroker` command line, run in process for the CLI tests."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from broker.cli.main import main


def run(*args: str | Path) -> Result:
    """`ketenbroker ARGS`; an exception the command did not turn into a message fails the test."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
