"""A school's metadata certificate becomes the bare public key the direct ACS route verifies
with (assertion_reader._key): it must verify exactly what the key loaded with its certificate
verified, for RSA and EC schools, and nothing else."""

from __future__ import annotations

import base64
import datetime

import pytest
import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from broker.saml.assertion_reader import _key, _verifies

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"


def pair(kind: str, *, expired: bool = False) -> tuple[bytes, str]:
    """(private key PEM, the certificate as metadata carries it: base64 DER, line-wrapped)."""
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.school.example")])
    now = datetime.datetime.now(datetime.UTC)
    start = now - datetime.timedelta(days=400 if expired else 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=30 if expired else 365))
        .sign(key, hashes.SHA256())
    )
    der = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    wrapped = "\n".join(der[i : i + 64] for i in range(0, len(der), 64))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, wrapped


def signed_assertion(key_pem: bytes, kind: str) -> tuple[etree._Element, etree._Element]:
    root = etree.fromstring(
        f'<saml:Assertion xmlns:saml="{SAML}" ID="_a1" Version="2.0">'
        "<saml:Issuer>https://idp.school.example</saml:Issuer></saml:Assertion>"
    )
    method = (
        xmlsec.constants.TransformRsaSha256
        if kind == "rsa"
        else xmlsec.constants.TransformEcdsaSha256
    )
    signature = xmlsec.template.create(root, xmlsec.constants.TransformExclC14N, method)
    root.insert(1, signature)
    reference = xmlsec.template.add_reference(
        signature, xmlsec.constants.TransformSha256, uri="#_a1"
    )
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformEnveloped)
    xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
    context.register_id(root, "ID")
    context.sign(signature)
    return root, signature


def with_certificate(cert: str) -> xmlsec.Key:
    """How the key was loaded before: from the certificate itself."""
    der = base64.b64decode("".join(cert.split()))
    return xmlsec.Key.from_memory(der, xmlsec.constants.KeyDataFormatCertDer)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_the_bare_key_verifies_what_the_certificate_key_verified(kind: str) -> None:
    key_pem, cert = pair(kind)
    _, stranger = pair(kind)
    element, signature = signed_assertion(key_pem, kind)
    assert _verifies(element, signature, [_key(cert)])
    assert _verifies(element, signature, [with_certificate(cert)])
    assert not _verifies(element, signature, [_key(stranger)])
    assert not _verifies(element, signature, [with_certificate(stranger)])
    issuer = element.find(f"{{{SAML}}}Issuer")
    assert issuer is not None
    issuer.text = "https://idp.other.example"
    assert not _verifies(element, signature, [_key(cert)])
    assert not _verifies(element, signature, [with_certificate(cert)])


def test_a_certificates_validity_dates_count_as_little_as_before() -> None:
    # The key is set on the context, so libxmlsec never judged the certificate: metadata (its
    # signature and validUntil) is what vouches for a school's key, as before.
    key_pem, cert = pair("rsa", expired=True)
    element, signature = signed_assertion(key_pem, "rsa")
    assert _verifies(element, signature, [with_certificate(cert)])
    assert _verifies(element, signature, [_key(cert)])


@pytest.mark.parametrize("text", ["not base64!", base64.b64encode(b"not a certificate").decode()])
def test_an_unreadable_certificate_gives_no_key(text: str) -> None:
    assert _key(text) is None
