"""Where the CLI's registration metadata comes from: a file or URL (a URL goes through the same
fetch rules as the portals': broker/saml/metadata_fetch.py, loopback-or-https only, public
addresses only and connected to those checked, no redirects, time- and size-capped), or a
metadata source's copy in the registry."""

from __future__ import annotations

from pathlib import Path

import click

from broker.registry import SqlRegistry
from broker.saml.metadata_check import MetadataInvalid
from broker.saml.metadata_fetch import fetch_metadata


def given_url(value: str) -> str | None:
    """`value` when it is a URL (`read_source` fetches it; a school's is kept and fetched again
    by `metadata refresh`), None for a file."""
    return value if value.startswith(("http://", "https://")) else None


def read_source(value: str, *, allow_loopback: bool) -> str:
    if given_url(value) is not None:
        try:
            return fetch_metadata(value, allow_loopback=allow_loopback)
        except MetadataInvalid as err:
            raise click.BadParameter(f"{value}: {err.detail}") from None
    path = Path(value)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise click.BadParameter(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text") from None


def warn_unless_federated(registry: SqlRegistry, entity_id: str, role: str) -> None:
    """Say so when no metadata source holds the entity a registration by entity id names yet.
    Such a registration stores no metadata of its own, as `registry import` stores none for
    `saml_entity_id` (and `export` writes it back as such): while a source holds the entity
    its copy is the one logins use (reading.py), and a copy of that moment kept in the row
    would only be compared later against the source's next one (a school board's IdP:
    registry/shared_idps.py)."""
    if registry.federation.entity(entity_id, role) is None:
        click.echo(
            f"No metadata source holds {entity_id} yet: logins start working once "
            "`ketenbroker metadata refresh` brings its metadata."
        )
