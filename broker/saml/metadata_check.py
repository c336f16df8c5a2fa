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


def N_(message: str) -> str:
    """Mark a message for the translation catalogue without translating it (no Flask here)."""
    return message


# Messages more than one check gives (metadata_report.py lists every problem at once).
TOO_LARGE = N_("metadata is larger than 1 MiB")
NOT_UTF8 = N_("the file is not UTF-8 text")
NOT_AN_IDP = N_(
    "metadata of %(entity_id)s does not describe an identity provider (IDPSSODescriptor)"
)
NOT_AN_SP = N_("metadata of %(entity_id)s does not describe a service provider (SPSSODescriptor)")
NO_SIGNING_KEY = N_("metadata of %(entity_id)s has no signing key (KeyDescriptor)")
ACS_NOT_HTTPS = N_("ACS URL '%(url)s' must be https (plain http only on loopback)")


class MetadataInvalid(BadRequest):
    """What is wrong with a metadata document. `message` is an English sentence with
    %(name)s placeholders, marked `N_` for the catalogue, and `params` fill them: the CLI and
    the log read `detail` (English), the portal translates `message` into the page's language
    (broker/web/labels.py, `metadata_problem`)."""

    code = "metadata_invalid"
    public_message = "The SAML metadata is not usable."

    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message % params if params else message)
        self.message = message
        self.params = params


def _parse(xml: str) -> etree._Element:
    raw = xml.encode()
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataInvalid(TOO_LARGE)
    if b"<!DOCTYPE" in raw:
        raise MetadataInvalid(N_("metadata contains a DOCTYPE"))
    try:
        root = parse_untrusted(raw)
    except etree.XMLSyntaxError as err:
        raise MetadataInvalid(
            N_("metadata is not well-formed XML (line %(line)s)"), line=err.lineno
        ) from None
    if root.tag != f"{{{MD}}}EntityDescriptor":
        raise MetadataInvalid(N_("metadata must be one md:EntityDescriptor (not an aggregate)"))
    return root


def _descriptor(root: etree._Element, role: str) -> tuple[str, etree._Element]:
    entity_id = root.get("entityID", "")
    if not entity_id:
        raise MetadataInvalid(N_("EntityDescriptor has no entityID"))
    tag = "IDPSSODescriptor" if role == "idp" else "SPSSODescriptor"
    descriptor = root.find(f"{{{MD}}}{tag}")
    if descriptor is None:
        if role == "idp":
            raise MetadataInvalid(NOT_AN_IDP, entity_id=entity_id)
        raise MetadataInvalid(NOT_AN_SP, entity_id=entity_id)
    keys = descriptor.findall(f"{{{MD}}}KeyDescriptor")
    # An IdP's assertions are checked with its signing keys only (a KeyDescriptor without `use`
    # serves both, SAML metadata 2.4.1.1): a copy whose keys are all for encryption would make
    # every login of the school fail.
    if role == "idp":
        keys = [key for key in keys if key.get("use") in (None, "signing")]
    if not keys:
        raise MetadataInvalid(NO_SIGNING_KEY, entity_id=entity_id)
    return entity_id, descriptor


def idp_entity_id(xml: str) -> str:
    """The entity id of a school IdP's metadata, after checking it can serve the broker."""
    return checked_idp(_parse(xml))


def checked_idp(root: etree._Element) -> str:
    """`idp_entity_id` on an EntityDescriptor already parsed (one entity of an aggregate)."""
    entity_id, descriptor = _descriptor(root, "idp")
    bindings = {e.get("Binding") for e in descriptor.findall(f"{{{MD}}}SingleSignOnService")}
    if REDIRECT not in bindings:
        raise MetadataInvalid(
            N_("metadata of %(entity_id)s has no HTTP-Redirect SingleSignOnService"),
            entity_id=entity_id,
        )
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
        raise MetadataInvalid(
            N_("metadata of %(entity_id)s has no HTTP-POST AssertionConsumerService"),
            entity_id=entity_id,
        )
    for location in endpoints:
        if not is_acceptable_endpoint(location):
            raise MetadataInvalid(ACS_NOT_HTTPS, url=location)
    return entity_id
