"""`--reuse-removed-id` and `--pseudonyms-carry-over`: the operator taking a service id used
before (registry/id_reuse.py), for `publisher add` and `registry import` alike. Without them an
id a removed service had is refused; the portals never take one.

`--reuse-removed-id` alone takes an id only when the records show it was the same
organisation's: every removal of the id was of a service of the publisher organisation the new
one is registered for (`publisher add` registers a service for none, so there it takes only the
id of a service no organisation managed; `registry import` for the `publisher` its file names),
and that organisation's id was not removed and given out again since."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from broker.cli.options import raising_instead
from broker.registry.errors import ServiceIdUsedBefore
from broker.registry.id_reuse import CARRY_OVER_FLAG, REUSE_FLAG, IdReuse

F = TypeVar("F", bound=Callable[..., Any])


def reuse_options(command_name: str) -> Callable[[F], F]:
    """The two flags, as the parameters `reuse_removed_id` and `pseudonyms_carry_over`, for
    the command `command_name` ("publisher add"): a refusal names that command with the flags
    that would take the id. Goes below `reports_errors`, which reports the refusal."""

    naming_itself = raising_instead(
        ServiceIdUsedBefore, lambda refused: refused.named_by(command_name)
    )

    def decorate(command: F) -> F:
        carry_over = click.option(
            CARRY_OVER_FLAG,
            is_flag=True,
            help=f"with {REUSE_FLAG}: also when the id was another publisher organisation's, "
            "one removed since, or the registry did not record whose; the new service gets "
            "the same pseudonyms",
        )
        reuse = click.option(
            REUSE_FLAG,
            is_flag=True,
            help="register a removed service's id again, its pseudonyms and declaration history "
            "carried over; alone, only when every removal of the id was of a service of the "
            "organisation this one is registered for (none, for `publisher add`), not removed "
            f"since; else with {CARRY_OVER_FLAG}",
        )
        return reuse(carry_over(naming_itself(command)))

    return decorate


def id_reuse(reuse_removed_id: bool, pseudonyms_carry_over: bool) -> IdReuse:
    """What the flags allow; `--pseudonyms-carry-over` alone is refused, so that no one takes
    another's id by a flag whose name does not say it reuses one."""
    if pseudonyms_carry_over and not reuse_removed_id:
        raise click.UsageError(f"{CARRY_OVER_FLAG} goes with {REUSE_FLAG}")
    if pseudonyms_carry_over:
        return IdReuse.CARRIED_OVER
    return IdReuse.SAME_PUBLISHER if reuse_removed_id else IdReuse.REFUSED
