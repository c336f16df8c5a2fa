"""broker/saml/schema.py on its own: the SAML schema in C, and when pysaml2 may skip its copy."""

from __future__ import annotations

import logging

import pytest
import saml2.sigver
from lxml import etree
from saml2.xml.schema import XMLSchemaError

from broker.core.errors import InvalidMessage
from broker.saml import schema

SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
XENC = "http://www.w3.org/2001/04/xmlenc#"
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"


def _response(inner: str, instant: str = "2026-01-01T00:00:00Z") -> str:
    return (
        f'<samlp:Response xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" xmlns:xenc="{XENC}" '
        f'ID="_r1" Version="2.0" IssueInstant="{instant}">'
        f'<samlp:Status><samlp:StatusCode Value="{SUCCESS}"/></samlp:Status>{inner}'
        "</samlp:Response>"
    )


ASSERTION = (
    '<saml:Assertion ID="_a1" Version="2.0" IssueInstant="2026-01-01T00:00:00Z">'
    "<saml:Issuer>https://idp.example/metadata</saml:Issuer></saml:Assertion>"
)
ENCRYPTED = (
    "<saml:EncryptedAssertion><xenc:EncryptedData><xenc:CipherData>"
    "<xenc:CipherValue>AAAA</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData>"
    "</saml:EncryptedAssertion>"
)


def test_a_plain_valid_response_is_seen_whole() -> None:
    assert schema.validate_message(etree.fromstring(_response(ASSERTION))) is True


def test_an_encrypted_assertion_is_not_seen_whole() -> None:
    """The plaintext is only visible after decryption (the broker validates the message again
    then, encrypted_assertion.py)."""
    doc = etree.fromstring(_response(ENCRYPTED))
    assert schema.validate_message(doc) is False


@pytest.mark.parametrize(
    "xml",
    [
        _response(ASSERTION, instant="yesterday"),
        _response(ASSERTION.replace(' Version="2.0"', "")),
        _response(ASSERTION.replace("<saml:Issuer>https://idp.example/metadata</saml:Issuer>", "")),
        _response(ASSERTION + f'<saml:Smuggled xmlns:saml="{SAML}"/>'),
    ],
    ids=["instant not a dateTime", "no Version", "Assertion without Issuer", "unknown element"],
)
def test_schema_invalid_messages_are_refused(xml: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="broker.saml.schema")
    with pytest.raises(InvalidMessage) as refused:
        schema.validate_message(etree.fromstring(xml))
    assert refused.value.code == "schema_invalid"
    assert "rule=" in caplog.text and "path=" in caplog.text
    assert "yesterday" not in caplog.text  # the value never reaches the log


def test_the_skip_is_scoped_to_the_block() -> None:
    schema.install()
    invalid = f'<samlp:Response xmlns:samlp="{SAMLP}" ID="_x"/>'
    with schema.prevalidated():
        saml2.sigver.validate_doc_with_schema(invalid)
    with pytest.raises(XMLSchemaError):
        saml2.sigver.validate_doc_with_schema(invalid)
