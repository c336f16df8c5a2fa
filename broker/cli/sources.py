"""Reading a metadata file or URL for the CLI: a URL goes through the same fetch rules as the
portals' (broker/saml/metadata_fetch.py: loopback-or-https only, no redirects, time- and
size-capped)."""

from __future__ import annotations

from pathlib import Path

import click

from broker.saml.metadata_check import MetadataInvalid
from broker.saml.metadata_fetch import fetch_metadata


def read_source(value: str, *, allow_loopback: bool) -> str:
    if value.startswith(("http://", "https://")):
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
