"""The AuthnRequest to a school's IdP, built directly and sent over the Redirect binding.

pysaml2's `create_authn_request` builds its classes, serialises them through ElementTree, and
its `apply_binding` URL-encodes the deflated message character by character in Python: together
about half of the broker's CPU for this step, besides the one RSA signature. The message is
small and fixed in shape, so it is built here as an lxml tree with the same elements, attributes
and values as pysaml2's (tests/unit/test_upstream_request.py compares the two canonically), and
the query is signed with the broker's key object (redirect_signature.py), loaded once per key.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass
from datetime import datetime

from lxml import etree
from saml2 import BINDING_HTTP_POST, saml, samlp
from saml2.saml import NAMEID_FORMAT_PERSISTENT

from broker.core.assurance import EXACT
from broker.login.login_model import IdpEntry
from broker.saml.message_ids import new_message_id
from broker.saml.response_builder import saml_time

SAMLP_NS = samlp.NAMESPACE
SAML_NS = saml.NAMESPACE
_NSMAP = {"samlp": SAMLP_NS, "saml": SAML_NS}
# The binding the school is to answer by (SAML core 3.4.1: ProtocolBinding names the Response's
# binding, and the Web Browser SSO profile forbids HTTP-Redirect for it): the broker's ACS takes
# HTTP-POST only.
PROTOCOL_BINDING = BINDING_HTTP_POST
# AllowCreate "true": with "false" (also the default when it is absent) the broker would allow the
# school to answer only if it already holds an identifier of the student for the broker (core
# 3.4.1.1, as widened by errata E14). A school that makes its persistent identifier for an SP on
# first use (a stored-ID table, an account-link store) may then refuse a student's very first
# login with InvalidNameIDPolicy. The broker wants exactly that first identifier made: it is how
# it knows the student again. saml2int (SDP-SP04) also wants "true" in any NameIDPolicy (and no
# Format there; the broker still asks for persistent, the NameID its `name_id` subject reads).
ALLOW_CREATE = "true"
_WINDOW_BITS = 12
_MEM_LEVEL = 3


@dataclass(frozen=True)
class AuthnRequestContent:
    issuer: str  # the broker's SP entity id
    destination: str  # the school's Redirect SSO endpoint, from its metadata
    acs_url: str  # the broker's HTTP-POST AssertionConsumerService, as in its SP metadata
    force_authn: bool = False
    # Class references the school is asked for, and how its answer is to compare with them
    # (core 3.3.2.2.1); assurance.py's `school_request` chooses both.
    authn_contexts: tuple[str, ...] = ()
    comparison: str = EXACT
    # How many more proxies the service allows after the school (its own ProxyCount less one,
    # core 3.4.1.5.1); None: the service set no limit, and the broker sets none either
    # (docs/saml-profile.md, "Deviations", says why).
    proxy_count: int | None = None
    # The service's IDPList, passed on unchanged (core 3.4.1.5.1: the new request "MUST also
    # contain an <IDPList>", removing none), and its GetComplete.
    idp_list: tuple[IdpEntry, ...] = ()
    idp_list_get_complete: str | None = None


def new_request_id() -> str:
    """The AuthnRequest's ID: an xs:ID with 160 random bits (message_ids.py)."""
    return new_message_id()


def authn_request_xml(content: AuthnRequestContent, request_id: str, now: datetime) -> bytes:
    """The unsigned AuthnRequest as UTF-8 XML, no declaration (the Redirect binding signs the
    query, and the message carries no XML signature: SAML bindings 3.4.4.1)."""
    attributes = {
        "ID": request_id,
        "Version": "2.0",
        "IssueInstant": saml_time(now),
        "Destination": content.destination,
    }
    if content.force_authn:
        attributes["ForceAuthn"] = "true"
    attributes["ProtocolBinding"] = PROTOCOL_BINDING
    attributes["AssertionConsumerServiceURL"] = content.acs_url
    root = etree.Element(f"{{{SAMLP_NS}}}AuthnRequest", attributes, nsmap=_NSMAP)
    issuer = etree.SubElement(root, f"{{{SAML_NS}}}Issuer", Format=saml.NAMEID_FORMAT_ENTITY)
    issuer.text = content.issuer
    etree.SubElement(
        root,
        f"{{{SAMLP_NS}}}NameIDPolicy",
        Format=NAMEID_FORMAT_PERSISTENT,
        AllowCreate=ALLOW_CREATE,
    )
    if content.authn_contexts:
        requested = etree.SubElement(
            root, f"{{{SAMLP_NS}}}RequestedAuthnContext", Comparison=content.comparison
        )
        for reference in content.authn_contexts:
            etree.SubElement(requested, f"{{{SAML_NS}}}AuthnContextClassRef").text = reference
    if content.proxy_count is not None or content.idp_list:
        # After RequestedAuthnContext, as the schema orders them. No RequesterID: the school's
        # IdP would learn which platform each student signs in to (docs/saml-profile.md).
        scoping = etree.SubElement(root, f"{{{SAMLP_NS}}}Scoping")
        if content.proxy_count is not None:
            scoping.set("ProxyCount", str(content.proxy_count))
        if content.idp_list:
            _idp_list(scoping, content.idp_list, content.idp_list_get_complete)
    return bytes(etree.tostring(root, encoding="UTF-8", xml_declaration=False))


def _idp_list(scoping: etree._Element, entries: tuple[IdpEntry, ...], complete: str | None) -> None:
    listed = etree.SubElement(scoping, f"{{{SAMLP_NS}}}IDPList")
    for entry in entries:
        attributes = {"ProviderID": entry.provider_id}
        if entry.name is not None:
            attributes["Name"] = entry.name
        if entry.loc is not None:
            attributes["Loc"] = entry.loc
        etree.SubElement(listed, f"{{{SAMLP_NS}}}IDPEntry", attributes)
    if complete:
        etree.SubElement(listed, f"{{{SAMLP_NS}}}GetComplete").text = complete


def deflate_and_encode(xml: bytes) -> str:
    """The Redirect binding's DEFLATE encoding (SAML bindings 3.4.4.1): raw deflate, base64.

    A 4 KiB window and a small hash table (`memLevel` 3) instead of zlib's defaults (32 KiB,
    8): setting up the defaults' 256 KiB of state (its 64 KiB hash table cleared) cost ~50 µs
    of the ~65 µs a deflate took in a login. An AuthnRequest is well under 4 KiB, so the
    smaller window finds the same matches (tests/unit/test_upstream_request.py: the same bytes
    as the defaults); any longer message is still plain DEFLATE, only less compressed."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -_WINDOW_BITS, _MEM_LEVEL)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode("ascii")
