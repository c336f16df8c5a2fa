"""Metadata an administrator gives: an uploaded file (read as UTF-8 text, refused with a message
when it is not), or the address of a school's identity provider's or a service's metadata,
fetched (and kept, so `metadata refresh` fetches it again)."""

from __future__ import annotations

from werkzeug.datastructures import FileStorage
from wtforms import Field

from broker.saml.metadata_check import (
    MAX_METADATA_BYTES,
    NOT_UTF8,
    MetadataInvalid,
    single_idp_entity,
    too_large,
)
from broker.saml.metadata_fetch import fetch_metadata
from broker.saml.metadata_report import idp_metadata_problems
from broker.web.labels import localised_detail
from broker.web.wiring import broker


def uploaded_text(upload: object) -> str | None:
    """The upload's text, None when nothing was uploaded."""
    if not isinstance(upload, FileStorage) or not upload.filename:
        return None
    raw = upload.stream.read(MAX_METADATA_BYTES + 1)
    if len(raw) > MAX_METADATA_BYTES:
        raise too_large(MAX_METADATA_BYTES)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MetadataInvalid(NOT_UTF8) from None


def idp_metadata(upload: Field, address: Field) -> tuple[str | None, str, Field]:
    """(entity id, metadata, the field it came from) of a school's identity provider: the
    uploaded file, else what its address serves. Every problem found, in the page's language,
    goes next to that field (the upload's, or the address's when it was fetched), and the
    entity id is None. The operator's onboarding and the school's own page check alike."""
    field = upload
    try:
        xml = uploaded_text(upload.data)
        if xml is None:
            field = address
            xml = fetched_text(address)
    except MetadataInvalid as error:
        field.errors = [localised_detail(error)]
        return None, "", field
    xml = single_idp_entity(xml)
    entity_id, problems = idp_metadata_problems(xml)
    field.errors = [localised_detail(problem) for problem in problems]
    return entity_id, xml, field


def fetched_text(address: Field) -> str:
    """What the address field's URL serves, fetched by saml/metadata_fetch.py's rules (https,
    plain http only on loopback where the broker allows it): `MetadataInvalid` when it cannot."""
    allow_loopback = broker().settings.peers_on_loopback
    return fetch_metadata(address.data or "", allow_loopback=allow_loopback)


def fetched_url(given: Field, address: Field) -> str | None:
    """The address the metadata read came from (`given` is its address field), kept with the
    school or service so `metadata refresh` fetches it again; None for an upload."""
    return (address.data or "") if given is address else None


def metadata_source(role: str, entry_id: str, entity_id: str) -> tuple[str, str] | None:
    """Where a SAML school's (`role` "idp") or service's ("sp") metadata in force comes from:
    ("url", the address `metadata refresh` fetches again), ("file", "": nothing fetches it
    again), or None (a metadata source's copy: nothing for the school or publisher to do)."""
    registry = broker().registry
    if registry.federation.entity(entity_id, role):
        return None
    url = registry.metadata_url(role, entry_id)
    return ("url", url) if url else ("file", "")
