"""`--reuse-removed-id` and `--pseudonyms-carry-over`: the operator taking a service id used
before (registry/id_reuse.py), for `publisher add` and `registry import` alike. Without them an
id a removed service had is refused; the portals never take one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from broker.registry.id_reuse import IdReuse

F = TypeVar("F", bound=Callable[..., Any])


def reuse_options(command: F) -> F:
    """The two flags, as the parameters `reuse_removed_id` and `pseudonyms_carry_over`."""
    carry_over = click.option(
        "--pseudonyms-carry-over",
        is_flag=True,
        help="with --reuse-removed-id: also when the id was another publisher's, or the "
        "registry did not record whose; the new service gets the same pseudonyms",
    )
    reuse = click.option(
        "--reuse-removed-id",
        is_flag=True,
        help="register a removed service's id again, for the same publisher organisation: "
        "its pseudonyms and declaration history carry over",
    )
    return reuse(carry_over(command))


def id_reuse(reuse_removed_id: bool, pseudonyms_carry_over: bool) -> IdReuse:
    """What the flags allow; `--pseudonyms-carry-over` alone is refused, so that no one takes
    another's id by a flag whose name does not say it reuses one."""
    if pseudonyms_carry_over and not reuse_removed_id:
        raise click.UsageError("--pseudonyms-carry-over goes with --reuse-removed-id")
    if pseudonyms_carry_over:
        return IdReuse.CARRIED_OVER
    return IdReuse.SAME_PUBLISHER if reuse_removed_id else IdReuse.REFUSED
