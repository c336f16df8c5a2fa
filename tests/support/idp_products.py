"""Schools' identity-provider products as they answer: ADFS, Entra ID, Google Workspace and
Keycloak metadata in the shapes the products publish, and their Responses as they lay them out
(which element they sign, their AuthnContext classes, their status codes), each with a key of
its own generated here. The tests push them through the running demo's ACS and SLO
(tests/flows/test_idp_products.py); the shapes follow each product's public documentation and
samples."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import xmlsec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from tests.support.client import Browser, Page
from tests.support.forge import authn_request_id, redirect_message
from tests.support.live import LiveDemo
from tests.support.pki import self_signed_builder

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
STATUS = "urn:oasis:names:tc:SAML:2.0:status:"
REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
FED = "http://docs.oasis-open.org/wsfed/federation/200706"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ENTRA_TENANT = "0a1b2c3d-1111-2222-3333-444455556666"


@dataclass(frozen=True)
class Signer:
    """A product's signing key: the key and certificate as PEM, the certificate as metadata
    carries it (base64 DER)."""

    key: bytes
    cert: bytes
    cert_b64: str


def signer(common_name: str) -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = self_signed_builder(key.public_key(), common_name).sign(key, hashes.SHA256())
    return Signer(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
        base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
    )


def sign(element: Any, by: Signer) -> None:
    """An enveloped RSA-SHA256 signature (exclusive c14n) over `element`, after its Issuer."""
    constants = xmlsec.constants
    signature = xmlsec.template.create(
        element, constants.TransformExclC14N, constants.TransformRsaSha256, ns="ds"
    )
    issuer = element.find(f"{{{SAML}}}Issuer")
    if issuer is not None:
        issuer.addnext(signature)
    else:
        element.insert(0, signature)
    reference = xmlsec.template.add_reference(
        signature, constants.TransformSha256, uri="#" + element.get("ID")
    )
    xmlsec.template.add_transform(reference, constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, constants.TransformExclC14N)
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    context = xmlsec.SignatureContext()
    key = xmlsec.Key.from_memory(by.key, constants.KeyDataFormatPem)
    key.load_cert_from_memory(by.cert, constants.KeyDataFormatPem)
    context.key = key
    context.register_id(element, "ID")
    context.sign(signature)


def _key(use: str, by: Signer, prefix: str = "") -> str:
    return (
        f'<{prefix}KeyDescriptor use="{use}"><KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">'
        f"<X509Data><X509Certificate>{by.cert_b64}</X509Certificate></X509Data></KeyInfo>"
        f"</{prefix}KeyDescriptor>"
    )


def _idp(by: Signer, sso: str, slo: str | None, extra: str = "", prefix: str = "") -> str:
    logout = f'<{prefix}SingleLogoutService Binding="{REDIRECT}" Location="{slo}"/>' if slo else ""
    return (
        f'<{prefix}IDPSSODescriptor protocolSupportEnumeration="{SAMLP}">'
        f"{_key('signing', by, prefix)}"
        f"{logout}{extra}"
        f'<{prefix}SingleSignOnService Binding="{REDIRECT}" Location="{sso}"/>'
        f'<{prefix}SingleSignOnService Binding="{POST}" Location="{sso}"/>'
        f"</{prefix}IDPSSODescriptor>"
    )


def _sts_role(by: Signer) -> str:
    """The WS-Federation role both Microsoft products put before their IDPSSODescriptor."""
    return (
        f'<RoleDescriptor xsi:type="fed:SecurityTokenServiceType" xmlns:xsi="{XSI}" '
        f'xmlns:fed="{FED}" protocolSupportEnumeration="{FED}">{_key("signing", by)}'
        "</RoleDescriptor>"
    )


def adfs_entity_id(host: str) -> str:
    return f"http://{host}/adfs/services/trust"


def adfs_metadata(host: str, by: Signer) -> str:
    """ADFS's FederationMetadata.xml: an http entity id, WS-Fed roles, an SP role beside the
    IdP role, NameIDFormats listed; signed as a whole."""
    formats = "".join(
        f"<NameIDFormat>{f}</NameIDFormat>"
        for f in (
            "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
            PERSISTENT,
            "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
        )
    )
    endpoint = f"https://{host}/adfs/ls/"
    xml = (
        f'<EntityDescriptor ID="_{uuid.uuid4()}" entityID="{adfs_entity_id(host)}" '
        f'xmlns="urn:oasis:names:tc:SAML:2.0:metadata">{_sts_role(by)}'
        f'<SPSSODescriptor WantAssertionsSigned="true" protocolSupportEnumeration="{SAMLP}">'
        f'{_key("signing", by)}{formats}<AssertionConsumerService Binding="{POST}" '
        f'Location="{endpoint}" index="0" isDefault="true"/></SPSSODescriptor>'
        f"{_idp(by, endpoint, endpoint, formats)}</EntityDescriptor>"
    )
    root = etree.fromstring(xml.encode())
    sign(root, by)
    signed: bytes = etree.tostring(root)
    return signed.decode()


def entra_entity_id(tenant: str = ENTRA_TENANT) -> str:
    return f"https://sts.windows.net/{tenant}/"


def entra_endpoint(tenant: str = ENTRA_TENANT) -> str:
    """Entra ID's one SAML address, for sign-in and logout alike."""
    return f"https://login.microsoftonline.com/{tenant}/saml2"


def entra_metadata(by: Signer, tenant: str = ENTRA_TENANT) -> str:
    """The App Federation Metadata of an enterprise application."""
    endpoint = entra_endpoint(tenant)
    return (
        f'<EntityDescriptor ID="_{uuid.uuid4()}" entityID="{entra_entity_id(tenant)}" '
        f'xmlns="urn:oasis:names:tc:SAML:2.0:metadata">{_sts_role(by)}'
        f"{_idp(by, endpoint, endpoint)}</EntityDescriptor>"
    )


def google_entity_id(idpid: str) -> str:
    return f"https://accounts.google.com/o/saml2?idpid={idpid}"


def google_metadata(idpid: str, by: Signer) -> str:
    """A Workspace SAML app's IdP metadata (prefixed md:, emailAddress listed, no SLO)."""
    sso = f"https://accounts.google.com/o/saml2/idp?idpid={idpid}"
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'entityID="{google_entity_id(idpid)}">'
        + _idp(
            by,
            sso,
            None,
            "<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
            "</md:NameIDFormat>",
            prefix="md:",
        )
        + "</md:EntityDescriptor>"
    )


def keycloak_entity_id(base: str, realm: str) -> str:
    return f"{base}/realms/{realm}"


def keycloak_metadata(base: str, realm: str, by: Signer) -> str:
    """A realm's IdP descriptor as older Keycloak versions served it: one EntityDescriptor
    wrapped in `<EntitiesDescriptor Name="urn:keycloak">`."""
    endpoint = f"{base}/realms/{realm}/protocol/saml"
    inner = (
        f'<md:EntityDescriptor entityID="{keycloak_entity_id(base, realm)}">'
        + _idp(by, endpoint, endpoint, prefix="md:")
        + "</md:EntityDescriptor>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><md:EntitiesDescriptor '
        'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        f'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" Name="urn:keycloak">{inner}'
        "</md:EntitiesDescriptor>"
    )


def saml_now(seconds: int = 0, fraction: str = ".123") -> str:
    """A SAML time `seconds` from now, with the fraction a product writes (Entra: 7 digits)."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


@dataclass(frozen=True)
class Answer:
    """What a product's Response says, in the product's layout."""

    name_id: str | None = "Kx9V2p0m1Q=="
    name_id_format: str | None = PERSISTENT
    authn_context: str = PASSWORD_PROTECTED
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = (("givenName", ("Sanne",)),)
    fraction: str = ".123"


def response(demo: LiveDemo, issuer: str, request_id: str, answer: Answer) -> Any:
    """A Success Response to `request_id` (unsigned: the caller signs as the product does)."""
    fraction = answer.fraction
    kind = f' Format="{answer.name_id_format}"' if answer.name_id_format else ""
    name_id = f"<NameID{kind}>{answer.name_id}</NameID>" if answer.name_id is not None else ""
    statements = "".join(
        f'<Attribute Name="{name}">'
        + "".join(f"<AttributeValue>{v}</AttributeValue>" for v in values)
        + "</Attribute>"
        for name, values in answer.attributes
    )
    xml = (
        f'<samlp:Response ID="_{uuid.uuid4().hex}" Version="2.0" '
        f'IssueInstant="{saml_now(0, fraction)}" Destination="{demo.acs_url}" '
        f'InResponseTo="{request_id}" xmlns:samlp="{SAMLP}"><Issuer xmlns="{SAML}">{issuer}'
        f'</Issuer><samlp:Status><samlp:StatusCode Value="{STATUS}Success"/></samlp:Status>'
        f'<Assertion ID="_{uuid.uuid4().hex}" IssueInstant="{saml_now(0, fraction)}" '
        f'Version="2.0" xmlns="{SAML}"><Issuer>{issuer}</Issuer><Subject>{name_id}'
        '<SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<SubjectConfirmationData InResponseTo="{request_id}" '
        f'NotOnOrAfter="{saml_now(300, fraction)}" Recipient="{demo.acs_url}"/>'
        f'</SubjectConfirmation></Subject><Conditions NotBefore="{saml_now(-5, fraction)}" '
        f'NotOnOrAfter="{saml_now(3600, fraction)}"><AudienceRestriction>'
        f"<Audience>{demo.sp_entity_id}</Audience></AudienceRestriction></Conditions>"
        + (f"<AttributeStatement>{statements}</AttributeStatement>" if statements else "")
        + f'<AuthnStatement AuthnInstant="{saml_now(-2, fraction)}" SessionIndex="_idx1">'
        f"<AuthnContext><AuthnContextClassRef>{answer.authn_context}</AuthnContextClassRef>"
        "</AuthnContext></AuthnStatement></Assertion></samlp:Response>"
    )
    return etree.fromstring(xml.encode())


def signed_assertion_only(doc: Any, by: Signer) -> str:
    """ADFS's and Entra ID's default: the assertion signed, the Response not."""
    sign(doc.find(f"{{{SAML}}}Assertion"), by)
    return encoded(doc)


def signed_response(doc: Any, by: Signer) -> str:
    sign(doc, by)
    return encoded(doc)


def encoded(doc: Any) -> str:
    xml: bytes = etree.tostring(doc)
    return base64.b64encode(xml).decode()


def error_response(
    demo: LiveDemo, issuer: str, request_id: str, top: str, second: str, by: Signer | None
) -> str:
    """An error Response (status `top` with `second` under it, both short names), signed as a
    whole by `by` (ADFS with `SamlResponseSignature MessageAndAssertion`) or unsigned."""
    xml = (
        f'<samlp:Response ID="_{uuid.uuid4().hex}" Version="2.0" IssueInstant="{saml_now()}" '
        f'Destination="{demo.acs_url}" InResponseTo="{request_id}" xmlns:samlp="{SAMLP}">'
        f'<Issuer xmlns="{SAML}">{issuer}</Issuer><samlp:Status>'
        f'<samlp:StatusCode Value="{STATUS}{top}"><samlp:StatusCode Value="{STATUS}{second}"/>'
        "</samlp:StatusCode></samlp:Status></samlp:Response>"
    )
    doc = etree.fromstring(xml.encode())
    return signed_response(doc, by) if by is not None else encoded(doc)


@dataclass
class ProductLogin:
    """A login the broker sent to a product school's SSO address; not answered yet."""

    browser: Browser
    request_id: str
    relay_state: str
    request: Any  # the AuthnRequest as the school received it


def start_login(
    demo: LiveDemo, entity_id: str, sso: str, publisher: str = "leesplank"
) -> ProductLogin:
    browser = Browser()
    page = browser.get(
        f"{demo.publishers[publisher].base_url}/login?school={entity_id}",
        stop=lambda url: url.startswith(sso),
    )
    location = page.location or ""
    assert location.startswith(sso), (page.status, page.url, page.text[:300])
    xml, params = redirect_message(location)
    return ProductLogin(
        browser, authn_request_id(location), params["RelayState"], etree.fromstring(xml)
    )


def deliver(demo: LiveDemo, login: ProductLogin, saml_response: str) -> Page:
    return login.browser.post(
        demo.acs_url, {"SAMLResponse": saml_response, "RelayState": login.relay_state}
    )


def entra_logout_response(demo: LiveDemo, in_response_to: str, status: str = "Success") -> str:
    """Entra ID's LogoutResponse to the broker's LogoutRequest: unsigned (Entra ID signs no
    logout response), to the Logout URL registered, 7-digit fractions; the XML."""
    return (
        f'<samlp:LogoutResponse ID="_{uuid.uuid4().hex}" Version="2.0" '
        f'IssueInstant="{saml_now(0, ".1234567")}" Destination="{demo.broker_url}/saml/sp/slo" '
        f'InResponseTo="{in_response_to}" xmlns:samlp="{SAMLP}"><Issuer xmlns="{SAML}">'
        f'{entra_entity_id()}</Issuer><samlp:Status><samlp:StatusCode Value="{STATUS}{status}"/>'
        "</samlp:Status></samlp:LogoutResponse>"
    )
