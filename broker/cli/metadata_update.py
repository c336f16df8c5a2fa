"""`ketenbroker school update --saml-metadata` and `publisher update --saml-metadata`: load a
registered school's IdP or publisher's SP metadata again, typically after a certificate roll-over
or a move of endpoints (docs/operations.md, "A school's or publisher's certificate roll-over").

The new copy is read and checked exactly as `add` reads and checks it (`read_source`,
`idp_entity_id` / `sp_entity_id`). Refused, with nothing changed: an entry whose metadata a
metadata source holds (logins use the source's copy; `metadata refresh` updates it), and
metadata for another entity id. A new entity id is another identity provider or service (the
login path finds the school or service by it; the replay cache, logout and the assertions'
audience are keyed by it), so it is a new registration, not a metadata update: remove the entry
and add it again (a school's own administrators may also move it to another IdP on the portal).

The write is conditional on the registered copy still being the one compared against (a
compare-and-set in the registry's UPDATE): of two operators updating at once, the second is
refused with "the metadata changed meanwhile; run the command again" and sees the first one's
copy as the starting point when it does, instead of silently overwriting it.

The write bumps the registry generation, so running brokers use the new copy within a second,
without a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import click

from broker.cli.sources import given_url, read_source
from broker.config import Settings
from broker.registry import SqlRegistry
from broker.registry.errors import MetadataChanged
from broker.saml.metadata_changes import metadata_changes
from broker.saml.metadata_check import idp_entity_id, single_idp_entity, sp_entity_id


@dataclass(frozen=True)
class Registered:
    """The entry whose metadata is updated: "School 12AB" / "Service lesmethode"."""

    title: str
    entry_id: str
    entity_id: str
    role: str  # "idp" (a school) or "sp" (a service)
    # False for a service whose assertion encryption is `off`: an encryption key the broker
    # could not encrypt for does not refuse its metadata (it is never encrypted for).
    encrypting: bool = True


class UpdateRefused(Exception):
    """A new copy `school|publisher update` refuses, with nothing written: `code` for the log
    and the refresh's outcome, `message` what the command says."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CheckedCopy:
    """A new copy that passed the checks, and the registered one it was compared against."""

    entity_id: str
    xml: str
    current: str

    @property
    def unchanged(self) -> bool:
        return self.xml == self.current


def refuse_if_held(registry: SqlRegistry, entry: Registered) -> None:
    """Refused: an entry whose metadata a metadata source holds (logins use the source's copy;
    `metadata refresh` updates it from the source)."""
    held = registry.federation.sources_of(entry.role).get(entry.entity_id)
    if held:
        raise UpdateRefused(
            "held_by_source",
            f"{entry.title}: its metadata comes from metadata source {', '.join(held)}; "
            "`ketenbroker metadata refresh` updates it",
        )


def checked_copy(registry: SqlRegistry, entry: Registered, xml: str) -> CheckedCopy:
    """`xml` checked as `add` checks it (one entity of the right role, a KeyDescriptor, the
    endpoints the broker needs: `MetadataInvalid` when not), for the registered entity id, with
    the registered copy it replaces. `school update`, `publisher update` and `metadata refresh`
    (a school's or service's URL, url_refresh.py) check a new copy with this, and nothing
    else."""
    refuse_if_held(registry, entry)
    if entry.role == "idp":
        # An IdP's one entity in a wrapper of its own (older Keycloak) is taken out of it.
        xml = single_idp_entity(xml)
        entity_id = idp_entity_id(xml)
    else:
        entity_id = sp_entity_id(xml, encrypting=entry.encrypting)
    if entity_id != entry.entity_id:
        raise UpdateRefused(
            "other_entity_id",
            f"{entry.title}: the metadata is for {entity_id}, not for the registered "
            f"{entry.entity_id}; another entity id is a new registration (remove and add)",
        )
    return CheckedCopy(entity_id, xml, registry.registered_metadata(entry.role, entry.entry_id))


def write_copy(
    entry: Registered, copy: CheckedCopy, write: Callable[[str, str, str], Sequence[str] | None]
) -> Sequence[str]:
    """Write a checked copy, refused unless the registered one is still `copy.current`; the
    other schools that got it too (those on a school board's IdP)."""
    try:
        return write(entry.entry_id, copy.xml, copy.current) or ()
    except MetadataChanged:
        raise UpdateRefused(
            "changed_meanwhile",
            f"{entry.title}: the metadata changed meanwhile; run the command again",
        ) from None


def update_metadata(
    settings: Settings,
    registry: SqlRegistry,
    entry: Registered,
    source: str,
    write: Callable[[str, str, str], Sequence[str] | None],
) -> CheckedCopy:
    """Check the metadata at `source` for `entry`, write it with `write(entry_id, xml, read)`
    (refused unless `read` is still the registered copy) and say what changed; a refusal raises
    `click.ClickException` (exit 1) with nothing written. `write` returns the other schools
    that got the same metadata (those sharing a school board's IdP, registry/shared_idps.py).
    Returns the copy checked (unchanged: not written)."""
    try:
        refuse_if_held(registry, entry)
        xml = read_source(source, allow_loopback=settings.peers_on_loopback)
        copy = checked_copy(registry, entry, xml)
        if copy.unchanged:
            click.echo(f"{entry.title}: no change (the metadata is the registered copy).")
            return copy
        also = write_copy(entry, copy, write)
    except UpdateRefused as refused:
        raise click.ClickException(refused.message) from None
    current, entity_id = copy.current, copy.entity_id
    click.echo(f"{entry.title}: metadata of {entity_id} updated.")
    if also:
        # One IdP, one metadata: the schools sharing it sign in with the new copy too.
        click.echo(f"  Also updated for school(s) {', '.join(also)}: they share this IdP.")
    if not current:
        click.echo("  It had no metadata of its own (registered by --saml-entity-id).")
    changes = metadata_changes(current, copy.xml, entry.role)
    for line in changes or ["no certificate or endpoint changed (other content did)"]:
        click.echo(f"  {line}")
    click.echo("Running brokers use it within a second; no restart is needed.")
    return copy


def metadata_writer(
    registry: SqlRegistry, role: str, url: str | None
) -> Callable[..., Sequence[str] | None]:
    """The registry's update of an entry of `role` (a school's IdP, a service's SP), writing
    `url` as where the copy came from (None: a file)."""
    update = registry.update_school_metadata if role == "idp" else registry.update_service_metadata
    return partial(update, url=url)


def update_given(
    settings: Settings, registry: SqlRegistry, entry: Registered, metadata: str
) -> CheckedCopy:
    """`school update` / `publisher update --saml-metadata`: the new copy, and where it came
    from (a URL kept for `metadata refresh`, a file clearing it), as `update_metadata` says."""
    url = given_url(metadata)
    write = metadata_writer(registry, entry.role, url)
    copy = update_metadata(settings, registry, entry, metadata, write)
    if copy.unchanged and registry.metadata_url(entry.role, entry.entry_id) != url:
        # The same copy, given otherwise now (a URL for a file, or a file for a URL): where
        # the next roll-over comes from is what changes.
        try:
            write_copy(entry, copy, write)
        except UpdateRefused as refused:
            raise click.ClickException(refused.message) from None
    say_refreshed(url, entry.role)
    return copy


def say_refreshed(url: str | None, role: str) -> None:
    """Whether `metadata refresh` follows the entity from now on (a certificate roll-over:
    docs/schools.md, ADFS; docs/publishers.md, key roll-over)."""
    if url is not None:
        click.echo(f"  `ketenbroker metadata refresh` fetches {url} again on every run.")
    else:
        whose, page = ("IdP", "schools") if role == "idp" else ("SP", "publishers")
        click.echo(
            f"  Given as a file: nothing fetches it again; give the {whose}'s metadata URL to "
            f"have `ketenbroker metadata refresh` follow its key roll-overs (docs/{page}.md)."
        )
