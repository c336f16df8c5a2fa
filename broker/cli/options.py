"""What every `ketenbroker` command shares: the --config option, the registry, error reporting,
who made a change, and the check of a catalogue attribute's name."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from broker.config import Settings, load_settings
from broker.core.catalogue import CATALOGUE, is_known_attribute
from broker.core.display_text import name_problem
from broker.core.errors import BrokerError
from broker.registry import SqlRegistry, migrate_first

F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound=Exception)

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="KETENBROKER_CONFIG",
    required=True,
    help="The broker's ketenbroker.toml.",
)


def raising_instead(caught: type[E], instead: Callable[[E], BaseException]) -> Callable[[F], F]:
    """A command decorator: an error of type `caught` the command raises becomes
    `instead(error)`, its traceback dropped (the new one says all)."""

    def decorate(command: F) -> F:
        @wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except caught as error:
                raise instead(error) from None

        return wrapper  # type: ignore[return-value]

    return decorate


def _one_line(err: BrokerError) -> click.ClickException:
    return click.ClickException(err.detail or err.public_message)


# Turn the broker's own errors into a one-line message and exit code 1, no traceback.
reports_errors = raising_instead(BrokerError, _one_line)


def logging_settings(config_path: Path) -> Settings:
    """The settings, with the broker's log handler installed in their `logging.format`: what a
    command logs as it opens the registry (a newer registry's warning) reads as the workers'
    lines do, not as Python's bare last-resort message."""
    from broker.web.logs import install_log_handler  # the web edge: only where it may log

    settings = load_settings(config_path)
    install_log_handler(settings.log_format)
    return settings


def open_registry(config_path: Path) -> tuple[Settings, SqlRegistry]:
    settings = logging_settings(config_path)
    migrate_first(settings.registry_url)
    return settings, SqlRegistry(settings.registry_url, seal=settings.secret_seal())


def user_name() -> str:
    """The login name of who runs the command, or `uid:N` for a user /etc/passwd does not list
    (a container run under an arbitrary uid: OpenShift, `docker run --user`), where getuser()
    raises (KeyError; OSError from Python 3.13) and would stop a command half-way."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def who() -> str:
    """Who made a registry change, as its history records it."""
    return f"cli:{user_name()}"


def catalogue_attribute(name: str) -> str:
    if not is_known_attribute(name):
        known = ", ".join(sorted(CATALOGUE))
        raise click.BadParameter(f"unknown attribute {name!r}; known attributes: {known}")
    return name


def checked_name(
    _context: click.Context, _parameter: click.Parameter, value: str | None
) -> str | None:
    """`--name` of a school, service, chain or publisher, refused before anything is written
    when students or staff could be misled by it (core/display_text.py); an optional one not
    given stays None."""
    if value is not None and (problem := name_problem(value)):
        raise click.BadParameter(f"the name {problem}")
    return value
