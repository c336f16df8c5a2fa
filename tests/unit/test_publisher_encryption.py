"""Which key and algorithms the broker encrypts a publisher's assertion with, read from the
service's SP metadata (broker/saml/publisher_encryption.py), and the registration checks that
refuse what it cannot meet. The whole login is in tests/flows/test_encrypted_to_publishers.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import cache

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from saml2 import attribute_converter
from saml2.mdstore import InMemoryMetaData

from broker.saml.metadata_check import MetadataInvalid, sp_entity_id
from broker.saml.metadata_report import sp_metadata_problems
from broker.saml.publisher_encryption import (
    DEFAULT_DATA_ALGORITHM,
    KEY_TRANSPORT,
    Encryption,
    EncryptionUnusable,
    encryption_for,
    offers_in_descriptor,
    offers_in_metadata,
)
from broker.saml.response_builder import AssertionContent, SamlAttribute, response_tree
from broker.saml.xmlsig_enc import AES192_GCM, encrypt_assertion_in_place
from tests.support.pki import metadata_certificate

ENTITY = "https://uitgever.example/sp"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
XENC = "http://www.w3.org/2001/04/xmlenc#"
AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
AES256_CBC = XENC + "aes256-cbc"
TRIPLEDES = XENC + "tripledes-cbc"
RSA_1_5 = XENC + "rsa-1_5"
RSA_OAEP_11 = "http://www.w3.org/2009/xmlenc11#rsa-oaep"


@cache
def rsa_certificate(bits: int) -> str:
    return metadata_certificate(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def key_descriptor(use: str | None, certificate: str, methods: tuple[str, ...] = ()) -> str:
    use_attribute = f' use="{use}"' if use else ""
    listed = "".join(f'<md:EncryptionMethod Algorithm="{m}"/>' for m in methods)
    return (
        f"<md:KeyDescriptor{use_attribute}><ds:KeyInfo><ds:X509Data><ds:X509Certificate>"
        f"{certificate}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>{listed}"
        "</md:KeyDescriptor>"
    )


def metadata(*keys: str) -> str:
    return (
        f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
        f'entityID="{ENTITY}"><md:SPSSODescriptor '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        + "".join(keys)
        + '<md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" '
        'Location="https://uitgever.example/acs" index="0"/></md:SPSSODescriptor>'
        "</md:EntityDescriptor>"
    )


def choice(*keys: str) -> Encryption | None:
    """The choice as a login makes it (pysaml2's parsed metadata), checked against the choice
    from the document as registration reads it."""
    xml = metadata(*keys)
    parsed = InMemoryMetaData(attribute_converter.ac_factory(), xml)
    parsed.load()
    from_store = offers_in_metadata(parsed[ENTITY])
    descriptor = etree.fromstring(xml.encode()).find(f"{{{MD}}}SPSSODescriptor")
    assert descriptor is not None
    assert offers_in_descriptor(descriptor) == from_store
    return encryption_for(ENTITY, from_store)


SIGNING = key_descriptor("signing", rsa_certificate(2048))


def test_a_service_with_signing_keys_only_is_not_encrypted_for() -> None:
    assert choice(SIGNING) is None


@pytest.mark.parametrize("use", ["encryption", None], ids=["use encryption", "no use"])
def test_an_rsa_key_for_encryption_gets_aes256_gcm_and_rsa_oaep(use: str | None) -> None:
    chosen = choice(SIGNING, key_descriptor(use, rsa_certificate(2048)))
    assert chosen is not None
    assert (chosen.data_algorithm, chosen.key_transport, chosen.bits) == (
        DEFAULT_DATA_ALGORITHM,
        KEY_TRANSPORT,
        2048,
    )
    assert DEFAULT_DATA_ALGORITHM == "http://www.w3.org/2009/xmlenc11#aes256-gcm"
    assert KEY_TRANSPORT == XENC + "rsa-oaep-mgf1p"


@pytest.mark.parametrize(
    ("methods", "expected"),
    [
        ((AES128_GCM,), AES128_GCM),
        ((AES256_CBC, AES192_GCM, AES128_GCM), AES192_GCM),
        ((XENC + "rsa-oaep-mgf1p",), DEFAULT_DATA_ALGORITHM),
        (("urn:example:not-an-algorithm",), DEFAULT_DATA_ALGORITHM),
        ((RSA_1_5, XENC + "rsa-oaep-mgf1p", AES128_GCM), AES128_GCM),
    ],
    ids=["GCM listed", "GCM after CBC", "key transport only", "unknown only", "1_5 besides"],
)
def test_the_first_listed_gcm_algorithm_is_used(methods: tuple[str, ...], expected: str) -> None:
    chosen = choice(key_descriptor("encryption", rsa_certificate(2048), methods))
    assert chosen is not None and chosen.data_algorithm == expected


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (key_descriptor("encryption", rsa_certificate(2048), (AES256_CBC,)), "only data"),
        (key_descriptor("encryption", rsa_certificate(2048), (TRIPLEDES,)), "only data"),
        (key_descriptor("encryption", rsa_certificate(2048), (RSA_1_5,)), "only key transport"),
        (key_descriptor("encryption", rsa_certificate(2048), (RSA_OAEP_11,)), "only key transport"),
        (key_descriptor("encryption", rsa_certificate(1024)), "RSA of 1024 bits"),
        (key_descriptor(None, rsa_certificate(1024)), "RSA of 1024 bits"),
        (
            key_descriptor(None, metadata_certificate(ec.generate_private_key(ec.SECP256R1()))),
            "is not an RSA key",
        ),
        (key_descriptor("encryption", "bm90IGEgY2VydGlmaWNhdGU="), "not an X509Certificate"),
    ],
    ids=[
        "only CBC",
        "only 3DES",
        "only RSA 1.5",
        "only xmlenc11 rsa-oaep",
        "1024 bits",
        "1024 bits without use",
        "EC key without use",
        "not a certificate",
    ],
)
def test_what_the_broker_cannot_meet_is_refused(key: str, reason: str) -> None:
    with pytest.raises(EncryptionUnusable, match=reason) as refused:
        choice(SIGNING, key)
    assert refused.value.code == "encryption_unusable"
    assert ENTITY in refused.value.detail
    # At registration: the same words, with every other problem of the document.
    with pytest.raises(MetadataInvalid, match=reason):
        sp_entity_id(metadata(SIGNING, key))
    entity_id, problems = sp_metadata_problems(metadata(SIGNING, key))
    assert entity_id is None and [p.detail for p in problems] == [refused.value.detail]


def test_the_first_usable_key_is_used_when_another_is_not() -> None:
    small = key_descriptor(None, rsa_certificate(1024))
    usable = key_descriptor("encryption", rsa_certificate(3072))
    chosen = choice(small, usable)
    assert chosen is not None and chosen.bits == 3072
    assert sp_entity_id(metadata(small, usable)) == ENTITY


def test_the_choice_is_kept_per_metadata_content() -> None:
    """A login after the first costs a lookup: the parsed key is not read again."""
    key = key_descriptor("encryption", rsa_certificate(2048))
    first, second = choice(key), choice(key)
    assert first is not None and first is second
    other = choice(key_descriptor("encryption", rsa_certificate(2048), (AES128_GCM,)))
    assert other is not first


def encryption_cpu_seconds(chosen: Encryption, rounds: int) -> float:
    """CPU time (this thread) of one `encrypt_assertion_in_place` of a login's Response with
    a few attributes, on average: the call alone, no parse, no signature."""
    content = AssertionContent(
        issuer="https://broker.example/saml/idp/metadata",
        audience=ENTITY,
        destination="https://uitgever.example/acs",
        in_response_to="_request",
        name_id="a" * 64,
        name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        sp_name_qualifier=ENTITY,
        attributes=tuple(
            SamlAttribute(f"urn:oid:2.5.4.{n}", "uri", None, ("Sanne Jansen",)) for n in range(6)
        ),
        authn_instant=datetime.now(UTC),
        authn_context=None,
        session_index="_session",
    )
    trees = [response_tree(content, datetime.now(UTC), 300, 60, "MIIB")[0] for _ in range(rounds)]
    started = time.thread_time()
    for tree in trees:
        encrypt_assertion_in_place(tree.getroot(), chosen.key, chosen.data_algorithm)
    return (time.thread_time() - started) / rounds


def test_encrypting_an_assertion_costs_little() -> None:
    """Not a benchmark: a guard that the encryption stays far below what one signature by the
    xmlsec1 program costs (~55 ms, pitfalls.md). docs/performance.md has the figure."""
    chosen = choice(key_descriptor("encryption", rsa_certificate(2048)))
    assert chosen is not None
    assert encryption_cpu_seconds(chosen, rounds=50) < 0.005
