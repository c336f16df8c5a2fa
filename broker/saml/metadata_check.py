"""Checking a school's or publisher's SAML metadata before it enters the registry."""

from __future__ import annotations

from lxml import etree

from broker.core.endpoints import is_acceptable_endpoint
from broker.core.errors import BadRequest
from broker.saml.firewall import MAX_BODY_BYTES
from broker.saml.xml_parsing import parse_untrusted

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
MAX_METADATA_BYTES = 4 * MAX_BODY_BYTES


class MetadataInvalid(BadRequest):
    code = "metadata_invalid"
    public_message = "The SAML metadata is not usable."


def _parse(xml: str) -> etree._Element:
    raw = xml.encode()
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataInvalid("metadata is larger than 1 MiB")
    if b"<!DOCTYPE" in raw:
        raise MetadataInvalid("metadata contains a DOCTYPE")
    try:
        root = parse_untrusted(raw)
    except etree.XMLSyntaxError as err:
        raise MetadataInvalid(f"metadata is not well-formed XML (line {err.lineno})") from None
    if root.tag != f"{{{MD}}}EntityDescriptor":
        raise MetadataInvalid("metadata must be one md:EntityDescriptor (not an aggregate)")
    return root


def _descriptor(root: etree._Element, role: str) -> tuple[str, etree._Element]:
    entity_id = root.get("entityID", "")
    if not entity_id:
        raise MetadataInvalid("EntityDescriptor has no entityID")
    tag = "IDPSSODescriptor" if role == "idp" else "SPSSODescriptor"
    descriptor = root.find(f"{{{MD}}}{tag}")
    if descriptor is None:
        kind = (
            "an identity provider (IDPSSODescriptor)"
            if role == "idp"
            else "a service provider (SPSSODescriptor)"
        )
        raise MetadataInvalid(f"metadata of {entity_id} does not describe {kind}")
    keys = descriptor.findall(f"{{{MD}}}KeyDescriptor")
    # An IdP's assertions are checked with its signing keys only (a KeyDescriptor without `use`
    # serves both, SAML metadata 2.4.1.1): a copy whose keys are all for encryption would make
    # every login of the school fail.
    if role == "idp":
        keys = [key for key in keys if key.get("use") in (None, "signing")]
    if not keys:
        raise MetadataInvalid(f"metadata of {entity_id} has no signing key (KeyDescriptor)")
    return entity_id, descriptor


def idp_entity_id(xml: str) -> str:
    """The entity id of a school IdP's metadata, after checking it can serve the broker."""
    return checked_idp(_parse(xml))


def checked_idp(root: etree._Element) -> str:
    """`idp_entity_id` on an EntityDescriptor already parsed (one entity of an aggregate)."""
    entity_id, descriptor = _descriptor(root, "idp")
    bindings = {e.get("Binding") for e in descriptor.findall(f"{{{MD}}}SingleSignOnService")}
    if REDIRECT not in bindings:
        raise MetadataInvalid(f"metadata of {entity_id} has no HTTP-Redirect SingleSignOnService")
    return entity_id


def sp_entity_id(xml: str) -> str:
    """The entity id of a publisher SP's metadata, after checking its ACS endpoints."""
    return checked_sp(_parse(xml))


def checked_sp(root: etree._Element) -> str:
    """`sp_entity_id` on an EntityDescriptor already parsed (one entity of an aggregate)."""
    entity_id, descriptor = _descriptor(root, "sp")
    endpoints = [
        e.get("Location", "")
        for e in descriptor.findall(f"{{{MD}}}AssertionConsumerService")
        if e.get("Binding") == POST
    ]
    if not endpoints:
        raise MetadataInvalid(f"metadata of {entity_id} has no HTTP-POST AssertionConsumerService")
    for location in endpoints:
        if not is_acceptable_endpoint(location):
            raise MetadataInvalid(
                f"ACS URL {location!r} must be https (plain http only on loopback)"
            )
    return entity_id
