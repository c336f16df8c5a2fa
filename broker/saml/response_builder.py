"""The broker's signed Response towards a publisher, built with pysaml2's message classes.

pysaml2's `create_authn_response` maps attributes through one NameFormat per service and keeps
every issued assertion in process memory; the broker needs exact names per naming profile and
keeps nothing, so it assembles the same pysaml2 objects itself and signs them in process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from saml2 import class_name, saml, samlp
from saml2.s_utils import sid
from saml2.sigver import SecurityContext, pre_signature_part, signed_instance_factory

from broker.saml.xmlsig import InProcessCryptoBackend

RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105


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
    authn_context: str | None
    session_index: str


def saml_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        id=sid(),
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
                authn_context=saml.AuthnContext(
                    authn_context_class_ref=saml.AuthnContextClassRef(
                        text=content.authn_context or PASSWORD_PROTECTED
                    )
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
) -> str:
    """A Response with a signed Assertion, itself signed (RSA-SHA256), as an XML string."""
    assertion = build_assertion(content, now, lifetime, skew)
    response = samlp.Response(
        id=sid(),
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
    crypto = security.crypto
    if isinstance(crypto, InProcessCryptoBackend):
        # Both signatures in one pass over one parsed document (see sign_elements).
        return crypto.sign_elements(response.to_string(), security.key_file, to_sign)
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
        id=sid(),
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
