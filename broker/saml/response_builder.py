"""The broker's signed Response towards a publisher.

pysaml2's `create_authn_response` maps attributes through one NameFormat per service and keeps
every issued assertion in process memory; the broker needs exact names per naming profile and
keeps nothing, so it assembles the message itself and signs it in process.

With the in-process signer (every deployment) the Response is built directly as an lxml tree and
signed in that tree: no pysaml2 objects, no serialise-and-parse before signing (that cycle was
~7 % of the broker's time per login, docs/performance.md). The same elements, attributes and
order as pysaml2's classes write, which is what the SAML schema prescribes. The route through
pysaml2's classes stays for its `xmlsec1` backend, which the benchmark compares against.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lxml import etree
from saml2 import class_name, saml, samlp
from saml2.sigver import SecurityContext, pre_signature_part, signed_instance_factory

from broker.core.assurance import UNSPECIFIED as UNSPECIFIED_CONTEXT
from broker.core.errors import ConfigurationError
from broker.saml.message_ids import new_message_id
from broker.saml.publisher_encryption import Encryption
from broker.saml.xmlsig import InProcessCryptoBackend, signing_key
from broker.saml.xmlsig_enc import encrypt_assertion_in_place
from broker.saml.xmlsig_policy import DS_NS, ENVELOPED, EXC_C14N

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"


@dataclass(frozen=True)
class SamlAttribute:
    name: str
    name_format: str
    friendly_name: str | None
    values: tuple[str, ...]


@dataclass(frozen=True)
class AssertionContent:
    issuer: str
    audience: str
    destination: str
    in_response_to: str
    name_id: str
    name_id_format: str
    sp_name_qualifier: str
    attributes: tuple[SamlAttribute, ...]
    authn_instant: datetime
    # The AuthnContextClassRef; None: `unspecified`, never a guessed PasswordProtectedTransport.
    authn_context: str | None
    session_index: str
    # AuthenticatingAuthority values after the class reference (core 3.4.1.5.1), in order;
    # empty where the school's identity is kept back (core/authenticating_authority.py).
    authorities: tuple[str, ...] = ()
    # The AuthnStatement's SessionNotOnOrAfter: the school's session end (flow.py); None: none.
    session_not_on_or_after: datetime | None = None


def saml_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _session_end(content: AssertionContent) -> str | None:
    end = content.session_not_on_or_after
    return None if end is None else saml_time(end)


def _attribute(item: SamlAttribute) -> saml.Attribute:
    attribute = saml.Attribute(
        name=item.name, name_format=item.name_format, friendly_name=item.friendly_name
    )
    for value in item.values:
        attribute_value = saml.AttributeValue()
        attribute_value.set_text(value)
        attribute.attribute_value.append(attribute_value)
    return attribute


def build_assertion(
    content: AssertionContent, now: datetime, lifetime: int, skew: int
) -> saml.Assertion:
    not_on_or_after = saml_time(now + timedelta(seconds=lifetime))
    subject = saml.Subject(
        name_id=saml.NameID(
            format=content.name_id_format,
            name_qualifier=content.issuer,
            sp_name_qualifier=content.sp_name_qualifier,
            text=content.name_id,
        ),
        subject_confirmation=[
            saml.SubjectConfirmation(
                method=BEARER,
                subject_confirmation_data=saml.SubjectConfirmationData(
                    in_response_to=content.in_response_to,
                    not_on_or_after=not_on_or_after,
                    recipient=content.destination,
                ),
            )
        ],
    )
    assertion = saml.Assertion(
        id=new_message_id(),
        version="2.0",
        issue_instant=saml_time(now),
        issuer=saml.Issuer(text=content.issuer, format=saml.NAMEID_FORMAT_ENTITY),
        subject=subject,
        conditions=saml.Conditions(
            not_before=saml_time(now - timedelta(seconds=skew)),
            not_on_or_after=not_on_or_after,
            audience_restriction=[
                saml.AudienceRestriction(audience=[saml.Audience(text=content.audience)])
            ],
        ),
        authn_statement=[
            saml.AuthnStatement(
                authn_instant=saml_time(content.authn_instant),
                session_index=content.session_index,
                session_not_on_or_after=_session_end(content),
                authn_context=saml.AuthnContext(
                    authn_context_class_ref=saml.AuthnContextClassRef(
                        text=content.authn_context or UNSPECIFIED_CONTEXT
                    ),
                    authenticating_authority=[
                        saml.AuthenticatingAuthority(text=a) for a in content.authorities
                    ],
                ),
            )
        ],
    )
    if content.attributes:
        assertion.attribute_statement = [
            saml.AttributeStatement(attribute=[_attribute(a) for a in content.attributes])
        ]
    return assertion


def signed_response(
    security: SecurityContext,
    content: AssertionContent,
    now: datetime,
    lifetime: int,
    skew: int,
    encryption: Encryption | None = None,
) -> str:
    """A Response with a signed Assertion, itself signed (RSA-SHA256), as an XML string.

    With `encryption` (the service published an encryption key: publisher_encryption.py) the
    signed Assertion is encrypted for the service, and the Response's signature covers the
    EncryptedAssertion: sign, encrypt, sign."""
    crypto = security.crypto
    if isinstance(crypto, InProcessCryptoBackend):
        tree, to_sign = response_tree(content, now, lifetime, skew, security.my_cert)
        key = signing_key(security.key_file)
        if encryption is None:
            # Inner first: the response's signature then covers the signed assertion.
            return crypto.sign_tree(tree, key, to_sign)
        assertion, response = to_sign
        crypto.sign_in_place(tree, key, [assertion])
        encrypt_assertion_in_place(tree.getroot(), encryption.key, encryption.data_algorithm)
        return crypto.sign_tree(tree, key, [response])
    if encryption is not None:
        # Only the benchmark builds the broker on pysaml2's xmlsec1 backend, for services
        # without an encryption key; a readable assertion is never the way out.
        raise ConfigurationError("encrypted assertions need the in-process signer")
    assertion = build_assertion(content, now, lifetime, skew)
    response = samlp.Response(
        id=new_message_id(),
        version="2.0",
        issue_instant=saml_time(now),
        destination=content.destination,
        in_response_to=content.in_response_to,
        issuer=saml.Issuer(text=content.issuer, format=saml.NAMEID_FORMAT_ENTITY),
        status=samlp.Status(status_code=samlp.StatusCode(value=STATUS_SUCCESS)),
        assertion=assertion,
    )
    assertion.signature = pre_signature_part(
        assertion.id, security.my_cert, 1, sign_alg=RSA_SHA256, digest_alg=SHA256
    )
    # Signature Ids must differ: pysaml2 validates the document against the schema (xs:ID).
    response.signature = pre_signature_part(
        response.id, security.my_cert, 2, sign_alg=RSA_SHA256, digest_alg=SHA256
    )
    # Inner first: the response's signature then covers the signed assertion.
    to_sign = [(class_name(assertion), assertion.id), (class_name(response), response.id)]
    return str(signed_instance_factory(response, security, to_sign))


def signed_error_response(
    security: SecurityContext,
    *,
    issuer: str,
    destination: str,
    in_response_to: str,
    top_status: str,
    status: str,
    message: str,
    now: datetime,
) -> str:
    """A signed Response without assertion: `top_status` with the specific `status` nested."""
    response = samlp.Response(
        id=new_message_id(),
        version="2.0",
        issue_instant=saml_time(now),
        destination=destination,
        in_response_to=in_response_to,
        issuer=saml.Issuer(text=issuer, format=saml.NAMEID_FORMAT_ENTITY),
        status=samlp.Status(
            status_code=samlp.StatusCode(
                value=top_status, status_code=samlp.StatusCode(value=status)
            ),
            status_message=samlp.StatusMessage(text=message),
        ),
    )
    response.signature = pre_signature_part(
        response.id, security.my_cert, 1, sign_alg=RSA_SHA256, digest_alg=SHA256
    )
    return str(signed_instance_factory(response, security, [(class_name(response), response.id)]))


# -- the same Response as an lxml tree (the in-process signer) ----------------------------------

SAMLP_NS = samlp.NAMESPACE
SAML_NS = saml.NAMESPACE
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XS_NS = "http://www.w3.org/2001/XMLSchema"
_ROOT_NSMAP = {"samlp": SAMLP_NS, "saml": SAML_NS, "ds": DS_NS, "xsi": XSI_NS}
_XSI_TYPE = f"{{{XSI_NS}}}type"


def _saml(
    parent: etree._Element, local: str, text: str | None = None, **attrs: str
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{SAML_NS}}}{local}", attrs)
    if text is not None:
        element.text = text
    return element


@functools.lru_cache(maxsize=4)
def _signature_template(certificate: str) -> etree._Element:
    """pysaml2's `pre_signature_part` as RSA-SHA256 / SHA-256, exclusive c14n, our certificate."""

    def ds(parent: etree._Element | None, local: str, **attrs: str) -> etree._Element:
        tag = f"{{{DS_NS}}}{local}"
        if parent is None:
            return etree.Element(tag, attrs, nsmap={"ds": DS_NS})
        return etree.SubElement(parent, tag, attrs)

    signature = ds(None, "Signature")
    signed_info = ds(signature, "SignedInfo")
    ds(signed_info, "CanonicalizationMethod", Algorithm=EXC_C14N)
    ds(signed_info, "SignatureMethod", Algorithm=RSA_SHA256)
    reference = ds(signed_info, "Reference", URI="")
    transforms = ds(reference, "Transforms")
    ds(transforms, "Transform", Algorithm=ENVELOPED)
    ds(transforms, "Transform", Algorithm=EXC_C14N)
    ds(reference, "DigestMethod", Algorithm=SHA256)
    ds(reference, "DigestValue")
    ds(signature, "SignatureValue")
    ds(ds(ds(signature, "KeyInfo"), "X509Data"), "X509Certificate").text = certificate
    return signature


def _signature(certificate: str, number: int, element_id: str) -> etree._Element:
    # Signature Ids must differ (xs:ID), as pysaml2's do: Signature1 inner, Signature2 outer.
    signature = copy.deepcopy(_signature_template(certificate))
    signature.set("Id", f"Signature{number}")
    signature[0][2].set("URI", f"#{element_id}")  # SignedInfo / Reference
    return signature


def response_tree(
    content: AssertionContent, now: datetime, lifetime: int, skew: int, certificate: str
) -> tuple[etree._ElementTree, list[tuple[str, str | None]]]:
    """The unsigned Response with both signature templates, and what to sign, inner first."""
    issued = saml_time(now)
    not_on_or_after = saml_time(now + timedelta(seconds=lifetime))
    response_id, assertion_id = new_message_id(), new_message_id()
    response = etree.Element(
        f"{{{SAMLP_NS}}}Response",
        {
            "ID": response_id,
            "InResponseTo": content.in_response_to,
            "Version": "2.0",
            "IssueInstant": issued,
            "Destination": content.destination,
        },
        nsmap=_ROOT_NSMAP,
    )
    _saml(response, "Issuer", content.issuer, Format=saml.NAMEID_FORMAT_ENTITY)
    response.append(_signature(certificate, 2, response_id))
    status = etree.SubElement(response, f"{{{SAMLP_NS}}}Status")
    etree.SubElement(status, f"{{{SAMLP_NS}}}StatusCode", Value=STATUS_SUCCESS)

    assertion = _saml(response, "Assertion", Version="2.0", ID=assertion_id, IssueInstant=issued)
    _saml(assertion, "Issuer", content.issuer, Format=saml.NAMEID_FORMAT_ENTITY)
    assertion.append(_signature(certificate, 1, assertion_id))
    subject = _saml(assertion, "Subject")
    _saml(
        subject,
        "NameID",
        content.name_id,
        NameQualifier=content.issuer,
        SPNameQualifier=content.sp_name_qualifier,
        Format=content.name_id_format,
    )
    confirmation = _saml(subject, "SubjectConfirmation", Method=BEARER)
    _saml(
        confirmation,
        "SubjectConfirmationData",
        NotOnOrAfter=not_on_or_after,
        Recipient=content.destination,
        InResponseTo=content.in_response_to,
    )
    conditions = _saml(
        assertion,
        "Conditions",
        NotBefore=saml_time(now - timedelta(seconds=skew)),
        NotOnOrAfter=not_on_or_after,
    )
    _saml(_saml(conditions, "AudienceRestriction"), "Audience", content.audience)
    statement = _saml(
        assertion,
        "AuthnStatement",
        AuthnInstant=saml_time(content.authn_instant),
        SessionIndex=content.session_index,
    )
    session_end = _session_end(content)
    if session_end is not None:
        statement.set("SessionNotOnOrAfter", session_end)
    context = _saml(statement, "AuthnContext")
    _saml(context, "AuthnContextClassRef", content.authn_context or UNSPECIFIED_CONTEXT)
    for authority in content.authorities:
        _saml(context, "AuthenticatingAuthority", authority)
    if content.attributes:
        attribute_statement = _saml(assertion, "AttributeStatement")
        for item in content.attributes:
            attrs = {"Name": item.name, "NameFormat": item.name_format}
            if item.friendly_name is not None:
                attrs["FriendlyName"] = item.friendly_name
            attribute = _saml(attribute_statement, "Attribute", **attrs)
            for value in item.values:
                element = etree.SubElement(
                    attribute, f"{{{SAML_NS}}}AttributeValue", nsmap={"xs": XS_NS}
                )
                element.set(_XSI_TYPE, "xs:string")
                element.text = value
    to_sign: list[tuple[str, str | None]] = [
        (f"{SAML_NS}:Assertion", assertion_id),
        (f"{SAMLP_NS}:Response", response_id),
    ]
    return response.getroottree(), to_sign
