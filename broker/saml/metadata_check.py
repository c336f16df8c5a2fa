"""Checking a school's or publisher's SAML metadata before it enters the registry."""

from __future__ import annotations

from typing import Any, Literal

from lxml import etree

from broker.core.endpoints import host_refusal, is_acceptable_endpoint
from broker.core.errors import N_, BadRequest
from broker.saml.firewall import MAX_BODY_BYTES
from broker.saml.publisher_encryption import (
    EncryptionUnusable,
    encryption_for,
    offers_in_descriptor,
)
from broker.saml.xml_parsing import parse_untrusted

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
SOAP = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
MAX_METADATA_BYTES = 4 * MAX_BODY_BYTES


# Messages more than one check gives (metadata_report.py lists every problem at once).
TOO_LARGE = N_("metadata is larger than %(mib)s MiB")
NOT_UTF8 = N_("the file is not UTF-8 text")
NOT_AN_IDP = N_(
    "metadata of %(entity_id)s does not describe an identity provider (IDPSSODescriptor)"
)
NOT_AN_SP = N_("metadata of %(entity_id)s does not describe a service provider (SPSSODescriptor)")
NO_SIGNING_KEY = N_("metadata of %(entity_id)s has no signing key (KeyDescriptor)")
NO_REDIRECT_SSO = N_("metadata of %(entity_id)s has no HTTP-Redirect SingleSignOnService")
ACS_NOT_HTTPS = N_("ACS URL '%(url)s' of %(entity_id)s must be https (plain http only on loopback)")
SSO_NOT_HTTPS = N_("SSO URL '%(url)s' of %(entity_id)s must be https (plain http only on loopback)")
SLO_NOT_HTTPS = N_("SLO URL '%(url)s' of %(entity_id)s must be https (plain http only on loopback)")
SLO_RESPONSE_NOT_HTTPS = N_(
    "SLO response URL '%(url)s' of %(entity_id)s must be https (plain http only on loopback)"
)
# An endpoint whose host is not ASCII (core/endpoints.py `host_refusal`), of any kind.
NON_ASCII_HOST = N_(
    "URL '%(url)s' of %(entity_id)s must write its host in ASCII (its xn-- form): "
    "use '%(ascii_url)s'"
)
NOT_A_DOMAIN_NAME = N_(
    "URL '%(url)s' of %(entity_id)s has a host that is not a valid internationalised domain name"
)
# The SingleLogoutService bindings the broker sends logout messages with, in the order it
# prefers them (logout_messages.slo_endpoint): those are the SLO URLs the rule below checks.
LOGOUT_BINDINGS = (REDIRECT, POST)


class MetadataInvalid(BadRequest):
    """What is wrong with a metadata document (or with fetching it): an English sentence marked
    `N_` with its placeholders' values, as every BrokerError's detail can be (core/errors.py):
    the CLI and the log read `detail`, the portals translate `message` (web/labels.py,
    `localised_problem`)."""

    code = "metadata_invalid"
    public_message = "The SAML metadata is not usable."


# An endpoint kind the broker sends nothing to when its URL in the metadata in force is not
# https: an IdP's SSO URL (the login is refused, saml/back.py), an SP's ACS URL (the
# AuthnRequest is refused, authn_request.py), either's SLO URL (counted as none,
# logout_messages.py).
RefusedEndpoint = Literal["sso", "acs", "slo"]


class InsecureEndpoint(MetadataInvalid):
    """An endpoint URL that is not https (or whose host is not ASCII), with the kind of
    endpoint it is: the listings and the feed read the kind, never the wording (a reworded or
    new message must not break them)."""

    def __init__(self, kind: RefusedEndpoint, detail: str, *, url: str, entity_id: str) -> None:
        message, params = endpoint_refusal(detail, url, entity_id)
        super().__init__(message, **params)
        self.kind: RefusedEndpoint = kind


def endpoint_refusal(detail: str, url: str, entity_id: str) -> tuple[str, dict[str, str]]:
    """The words (message and its values) for an endpoint URL the rule refuses: `detail` (not
    https), unless its host is not ASCII: then that, naming the xn-- form to use."""
    refused = host_refusal(url)
    if refused is None:
        return detail, {"url": url, "entity_id": entity_id}
    if refused.ascii_form is None:  # not a domain name
        return NOT_A_DOMAIN_NAME, {"url": url, "entity_id": entity_id}
    return NON_ASCII_HOST, {"url": url, "entity_id": entity_id, "ascii_url": refused.ascii_form}


def too_large(max_bytes: int) -> MetadataInvalid:
    """A document over `max_bytes`, said in MiB ("1", "0.5")."""
    return MetadataInvalid(TOO_LARGE, mib=f"{max_bytes / 2**20:g}")


def single_idp_entity(xml: str) -> str:
    """`xml` with a wrapper taken off: an md:EntitiesDescriptor that holds exactly one
    md:EntityDescriptor, an identity provider's, and no signature of its own, becomes that
    EntityDescriptor (older Keycloak versions serve a realm's IdP descriptor wrapped in
    `<EntitiesDescriptor Name="urn:keycloak">`). Anything else is returned as it is, for
    `parse_entity` to judge: an aggregate of several entities stays refused, and so does a
    signed wrapper, whose signature the inner entity alone would no longer carry. The inner
    element keeps the namespace declarations it inherited (lxml writes them on it)."""
    raw = xml.encode()
    if len(raw) > MAX_METADATA_BYTES or b"<!DOCTYPE" in raw or b"EntitiesDescriptor" not in raw:
        return xml
    try:
        root = parse_untrusted(raw)
    except etree.XMLSyntaxError:
        return xml
    if root.tag != f"{{{MD}}}EntitiesDescriptor":
        return xml
    children = [child for child in root if isinstance(child.tag, str)]
    entities = [child for child in children if child.tag == f"{{{MD}}}EntityDescriptor"]
    others = {child.tag for child in children} - {
        f"{{{MD}}}EntityDescriptor",
        f"{{{MD}}}Extensions",
    }
    if len(entities) != 1 or others or entities[0].find(f"{{{MD}}}IDPSSODescriptor") is None:
        return xml
    inner: bytes = etree.tostring(entities[0], encoding="utf-8")
    return inner.decode()


def parse_entity(xml: str) -> etree._Element:
    """One entity's metadata document, read under the size cap, without a DOCTYPE, its root an
    md:EntityDescriptor; `MetadataInvalid` otherwise."""
    raw = xml.encode()
    if len(raw) > MAX_METADATA_BYTES:
        raise too_large(MAX_METADATA_BYTES)
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
    if not has_signing_key(descriptor, role):
        raise MetadataInvalid(NO_SIGNING_KEY, entity_id=entity_id)
    return entity_id, descriptor


def has_signing_key(descriptor: etree._Element, role: str) -> bool:
    keys = descriptor.findall(f"{{{MD}}}KeyDescriptor")
    # An IdP's assertions are checked with its signing keys only (a KeyDescriptor without `use`
    # serves both, SAML metadata 2.4.1.1): a copy whose keys are all for encryption would make
    # every login of the school fail.
    if role == "idp":
        keys = [key for key in keys if key.get("use") in (None, "signing")]
    return bool(keys)


def has_redirect_sso(descriptor: etree._Element) -> bool:
    """The broker sends its AuthnRequests to a school with the HTTP-Redirect binding."""
    bindings = {e.get("Binding") for e in descriptor.findall(f"{{{MD}}}SingleSignOnService")}
    return REDIRECT in bindings


# Per role, the endpoints the broker sends browsers or messages to: (element, the bindings it
# uses, the kind of endpoint, what a Location that fails the rule is called, and a
# ResponseLocation, where the SLO endpoint's answers go; None where the broker never sends to
# one).
_Endpoint = tuple[str, tuple[str, ...], RefusedEndpoint, str, str | None]
_LOGOUT: _Endpoint = (
    "SingleLogoutService",
    LOGOUT_BINDINGS,
    "slo",
    SLO_NOT_HTTPS,
    SLO_RESPONSE_NOT_HTTPS,
)
# A publisher's SOAP SingleLogoutService takes LogoutRequests server to server (logout_soap.py);
# its answer comes back on the same connection, so there is no ResponseLocation to judge.
# Schools get none over SOAP: theirs is not judged.
_SOAP_LOGOUT: _Endpoint = ("SingleLogoutService", (SOAP,), "slo", SLO_NOT_HTTPS, None)
_SENT_TO: dict[str, tuple[_Endpoint, ...]] = {
    "idp": (("SingleSignOnService", (REDIRECT,), "sso", SSO_NOT_HTTPS, None), _LOGOUT),
    "sp": (
        ("AssertionConsumerService", (POST,), "acs", ACS_NOT_HTTPS, None),
        _LOGOUT,
        _SOAP_LOGOUT,
    ),
}


def insecure_endpoints(
    entity_id: str, descriptor: etree._Element, role: str
) -> list[InsecureEndpoint]:
    """The locations in `role`'s descriptor the broker would send browsers or messages to that
    are not https (plain http only to loopback, as every URL the broker sends browsers to,
    core/endpoints.py) or whose host is not ASCII (refused naming its xn-- form): an IdP's
    HTTP-Redirect SSO (the AuthnRequest, then the student's
    password), an SP's HTTP-POST ACS (the assertion), and either's SingleLogoutService in the
    bindings the broker logs out with, Location and ResponseLocation (the logout messages, with
    the student's NameID). Plain http or `javascript:` there is refused, naming the entity;
    each problem carries its endpoint's kind."""
    problems = []
    for tag, bindings, kind, location_refused, response_refused in _SENT_TO[role]:
        for endpoint in descriptor.findall(f"{{{MD}}}{tag}"):
            if endpoint.get("Binding") not in bindings:
                continue
            urls = [(location_refused, endpoint.get("Location", ""))]
            if response_refused is not None and endpoint.get("ResponseLocation") is not None:
                urls.append((response_refused, endpoint.get("ResponseLocation", "")))
            problems += [
                InsecureEndpoint(kind, refused, url=url, entity_id=entity_id)
                for refused, url in urls
                if not is_acceptable_endpoint(url)
            ]
    return problems


def idp_entity_id(xml: str) -> str:
    """The entity id of a school IdP's metadata, after checking it can serve the broker."""
    return checked_idp(parse_entity(xml))


def checked_idp(root: etree._Element) -> str:
    """`idp_entity_id` on an EntityDescriptor already parsed: intake, every problem fatal."""
    return _checked(root, "idp", slo_fatal=True)[0]


def checked_member(root: etree._Element, role: str) -> tuple[str, list[InsecureEndpoint]]:
    """One entity of a federation feed in `role`: the checks of intake, except that a plain-http
    SLO URL does not leave the entity out but is returned (entity id, those problems). A login
    needs no SLO endpoint, and the login and logout paths already skip such a URL in the copy in
    force (logout_messages.slo_endpoint): leaving the entity out would put the school or service
    back on its stale registration copy, or on none. At intake (CLI, portal, registry import)
    the operator can fix the file, so there it stays fatal (`checked_idp`, `checked_sp`)."""
    return _checked(root, role, slo_fatal=False)


def _checked(
    root: etree._Element, role: str, *, slo_fatal: bool
) -> tuple[str, list[InsecureEndpoint]]:
    """The entity id after the role's checks (raising the first fatal problem), and the SLO
    problems let through when not `slo_fatal`."""
    entity_id, descriptor = _descriptor(root, role)
    if role == "idp" and not has_redirect_sso(descriptor):
        raise MetadataInvalid(NO_REDIRECT_SSO, entity_id=entity_id)
    if role == "sp" and all(
        e.get("Binding") != POST for e in descriptor.findall(f"{{{MD}}}AssertionConsumerService")
    ):
        raise MetadataInvalid(
            N_("metadata of %(entity_id)s has no HTTP-POST AssertionConsumerService"),
            entity_id=entity_id,
        )
    problems = insecure_endpoints(entity_id, descriptor, role)
    if fatal := [p for p in problems if slo_fatal or p.kind != "slo"]:
        raise fatal[0]
    return entity_id, problems


def sp_entity_id(xml: str, *, encrypting: bool = True) -> str:
    """The entity id of a publisher SP's metadata, after checking its ACS and SLO endpoints and
    that the broker can encrypt for the encryption key it publishes, if any. (An aggregate's
    entities get the latter check at their AuthnRequests: one entity must not be dropped for
    it, see publisher_encryption.py.) `encrypting=False`: for a service whose assertion
    encryption the operator set `off`, which is sent signed assertions unencrypted: a key the
    broker could not encrypt for is no reason to refuse metadata it will not encrypt for."""
    root = parse_entity(xml)
    entity_id = checked_sp(root)
    descriptor = root.find(f"{{{MD}}}SPSSODescriptor")
    if descriptor is not None and encrypting:
        problem = encryption_problem(entity_id, descriptor)
        if problem is not None:
            raise problem
    return entity_id


def encryption_problem(entity_id: str, descriptor: etree._Element) -> MetadataInvalid | None:
    """Why the broker cannot encrypt for the SP's published encryption key, or None."""
    try:
        encryption_for(entity_id, offers_in_descriptor(descriptor))
    except EncryptionUnusable as err:
        params: dict[str, Any] = err.params  # the same words, for the same readers
        return MetadataInvalid(err.message, **params)
    return None


def checked_sp(root: etree._Element) -> str:
    """`sp_entity_id` on an EntityDescriptor already parsed: intake, every problem fatal."""
    return _checked(root, "sp", slo_fatal=True)[0]
