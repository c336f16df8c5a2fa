"""`metadata_changes`: the lines `school update` / `publisher update --saml-metadata` print, for
the cases the CLI tests do not reach: a certificate's use, an expired or unreadable one, and two
endpoints of one kind and binding."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from broker.saml.metadata_changes import metadata_changes

NOW = datetime(2026, 11, 29, tzinfo=UTC)


def cert(days: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=400))
        .not_valid_after(NOW + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(built.public_bytes(Encoding.DER)).decode()


def sp(keys: str, endpoints: str) -> str:
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://sp.example">'
        f"<md:SPSSODescriptor>{keys}{endpoints}</md:SPSSODescriptor></md:EntityDescriptor>"
    )


def key(body: str, use: str = "") -> str:
    attribute = f' use="{use}"' if use else ""
    return (
        f"<md:KeyDescriptor{attribute}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{body}"
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
    )


def acs(location: str, index: str) -> str:
    return (
        '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
        f'Location="{location}" index="{index}"/>'
    )


def test_uses_expiry_and_an_unreadable_certificate() -> None:
    expired, both = cert(-1), cert(30)
    old = sp(key(expired, "encryption"), acs("https://sp.example/acs", "0"))
    new = sp(key(both) + key("bm90IGEgY2VydA==", "signing"), acs("https://sp.example/acs", "0"))
    lines = metadata_changes(old, new, "sp", NOW)
    assert len(lines) == 3, lines
    assert any(
        x.startswith("signing and encryption certificate added: SHA-256 ")
        and x.endswith(", valid until 2026-12-29")
        for x in lines
    )
    assert any(
        x.startswith("signing certificate added: ")
        and x.endswith("not a readable X.509 certificate")
        for x in lines
    )
    assert any(
        x.startswith("encryption certificate removed: ") and x.endswith("(EXPIRED)") for x in lines
    )


def test_one_endpoint_moved_and_others_added_or_removed() -> None:
    body = key(cert(30), "signing")
    old = sp(body, acs("https://a.example/acs", "0") + acs("https://b.example/acs", "1"))
    new = sp(body, acs("https://c.example/acs", "0") + acs("https://d.example/acs", "2"))
    assert metadata_changes(old, new, "sp", NOW) == [
        "endpoint moved: AssertionConsumerService (HTTP-POST index 0) "
        "https://a.example/acs -> https://c.example/acs",
        "endpoint removed: AssertionConsumerService (HTTP-POST index 1) https://b.example/acs",
        "endpoint added: AssertionConsumerService (HTTP-POST index 2) https://d.example/acs",
    ]


def test_the_same_metadata_has_no_changes() -> None:
    same = sp(key(cert(30)), acs("https://a.example/acs", "0"))
    assert metadata_changes(same, same, "sp", NOW) == []


def test_an_unreadable_registered_copy_counts_as_empty() -> None:
    new = sp(key(cert(30), "signing"), acs("https://a.example/acs", "0"))
    lines = metadata_changes("<not xml", new, "sp", NOW)
    assert [x.split(":")[0] for x in lines] == ["signing certificate added", "endpoint added"]
