"""Encrypted assertions towards publishers, through the live demo.

A publisher whose SP metadata publishes an encryption key gets its assertion signed, encrypted
for that key and wrapped in a Response signed over the ciphertext. The test opens what the
browser carried on its own: the key unwrapped with the SP's private key by `cryptography`
(RSA-OAEP-MGF1P), the data by AES-GCM, both signatures verified with the broker's certificate;
and the publisher's pysaml2 SP, the demo publisher's library, reads it too. A publisher
without an encryption key still gets a plain signed assertion; one that lists algorithms gets
the GCM one it listed; one that lists only CBC, or publishes a key too small, is refused with
a signed status and sent nothing readable.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import xmlsec
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from broker.cli.demo import DEMO_PUBLISHERS
from broker.core.model import AssertionEncryption, Declaration, Protocol
from broker.demo.school_idp import DEMO_USERS
from broker.saml.xmlsig import verification_context
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo, Publisher, attributes_by_name
from tests.support.pki import metadata_certificate

pytestmark = pytest.mark.usefixtures("collect_pysaml2_temp_files")

UID = "sanne.jansen"
STUDENT = next(user for user in DEMO_USERS if user.uid == UID)
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
NS = {"samlp": SAMLP, "saml": SAML, "ds": DS, "xenc": XENC}
AES128_GCM = "http://www.w3.org/2009/xmlenc11#aes128-gcm"
AES256_GCM = "http://www.w3.org/2009/xmlenc11#aes256-gcm"
AES256_CBC = XENC + "aes256-cbc"
AES128_CBC = XENC + "aes128-cbc"
RSA_OAEP_MGF1P = XENC + "rsa-oaep-mgf1p"
PERSONAL = ("given_name", "family_name", "email")
DECLARATIONS = tuple(Declaration(name, "To greet the student.") for name in PERSONAL)
STATUS_REQUEST_UNSUPPORTED = "urn:oasis:names:tc:SAML:2.0:status:RequestUnsupported"


def add(
    demo: LiveDemo,
    service_id: str,
    methods: tuple[str, ...] | None,
    edit_metadata: Callable[[str], str] | None = None,
) -> Publisher:
    """A pysaml2 publisher that declared and was released the student's name and e-mail
    address; with `methods`, it publishes an encryption key listing them."""
    return demo.add_publisher(
        service_id,
        "leermiddelen",
        DECLARATIONS,
        released=frozenset(PERSONAL),
        encryption_methods=methods,
        edit_metadata=edit_metadata,
    )


def sent_response(demo: LiveDemo, browser: Browser, service_id: str) -> tuple[Page, etree._Element]:
    """A login at `service_id` up to the broker's answer page, and the Response it carries."""
    login = demo.login(browser, service_id, UID, deliver=False)
    page = login.final
    assert page.status == 200, page.text
    fields = page.form(demo.publishers[service_id].acs_url).fields
    return page, etree.fromstring(base64.b64decode(fields["SAMLResponse"]))


def broker_certificate(demo: LiveDemo) -> xmlsec.Key:
    return xmlsec.Key.from_file(
        str(demo.settings.saml.signing_cert), xmlsec.constants.KeyDataFormatCertPem
    )


def verify(element: etree._Element, key: xmlsec.Key) -> None:
    """The element's own enveloped signature verifies with `key` (raises otherwise)."""
    signature = element.find("ds:Signature", NS)
    assert signature is not None, f"{element.tag} is not signed"
    context = verification_context(key)
    context.register_id(element, "ID")
    context.verify(signature)


def sp_private_key(demo: LiveDemo, service_id: str) -> rsa.RSAPrivateKey:
    path = demo.directory / "peers" / f"{service_id}-encryption.key"
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def plain_assertion(demo: LiveDemo, response: etree._Element) -> etree._Element:
    """The Response's assertion, sent readable and signed, in a signed Response."""
    assert response.find("saml:EncryptedAssertion", NS) is None
    assertion = response.find("saml:Assertion", NS)
    assert assertion is not None
    certificate = broker_certificate(demo)
    verify(response, certificate)
    verify(assertion, certificate)
    return assertion


@dataclass(frozen=True)
class Opened:
    data_algorithm: str
    key_transport: str
    assertion: etree._Element


def open_by_hand(response: etree._Element, private_key: rsa.RSAPrivateKey) -> Opened:
    """The EncryptedAssertion decrypted without libxmlsec: the wire format as XML Encryption
    1.1 defines it (GCM: 96-bit IV, ciphertext, 128-bit tag), the plaintext parsed on its own."""
    wrappers = response.findall("saml:EncryptedAssertion", NS)
    assert len(wrappers) == 1 and response.find("saml:Assertion", NS) is None
    data = wrappers[0].find("xenc:EncryptedData", NS)
    assert data is not None and data.get("Type") == XENC + "Element"
    method = data.find("xenc:EncryptionMethod", NS)
    enc_key = data.find("ds:KeyInfo/xenc:EncryptedKey", NS)
    assert method is not None and enc_key is not None
    key_method = enc_key.find("xenc:EncryptionMethod", NS)
    assert key_method is not None
    wrapped = base64.b64decode(enc_key.findtext("xenc:CipherData/xenc:CipherValue", "", NS))
    session = private_key.decrypt(
        wrapped,
        padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    )
    cipher = base64.b64decode(data.findtext("xenc:CipherData/xenc:CipherValue", "", NS))
    plaintext = AESGCM(session).decrypt(cipher[:12], cipher[12:], None)
    # On its own: every namespace it uses is declared inside it.
    assertion = etree.fromstring(plaintext)
    assert assertion.tag == f"{{{SAML}}}Assertion"
    return Opened(method.get("Algorithm", ""), key_method.get("Algorithm", ""), assertion)


def attribute_values(assertion: etree._Element) -> dict[str, list[str]]:
    return {
        a.get("FriendlyName") or a.get("Name", ""): [v.text or "" for v in a]
        for a in assertion.iterfind(".//saml:Attribute", NS)
    }


# -- an SP with an encryption key ----------------------------------------------------------------


def test_a_service_with_an_encryption_key_gets_its_assertion_encrypted(demo: LiveDemo) -> None:
    publisher = add(demo, "encrypted-sp", ())
    browser = Browser()
    page, response = sent_response(demo, browser, "encrypted-sp")

    # What the browser carries shows nothing of the student.
    raw = etree.tostring(response).decode()
    for shown in (STUDENT.given_name, STUDENT.family_name, STUDENT.email):
        assert shown not in raw
    assert demo.expected_pseudonym(UID, "leermiddelen") not in raw
    # The Response is signed over the ciphertext, with the broker's key.
    certificate = broker_certificate(demo)
    verify(response, certificate)

    opened = open_by_hand(response, sp_private_key(demo, "encrypted-sp"))
    assert opened.data_algorithm == AES256_GCM  # no EncryptionMethod listed: the default
    assert opened.key_transport == RSA_OAEP_MGF1P
    verify(opened.assertion, certificate)  # signed before it was encrypted
    name_id = opened.assertion.find("saml:Subject/saml:NameID", NS)
    assert name_id is not None
    assert name_id.text == demo.expected_pseudonym(UID, "leermiddelen")
    assert name_id.get("SPNameQualifier") == publisher.entity_id
    audience = opened.assertion.findtext(".//saml:Audience", "", NS)
    assert audience == publisher.entity_id
    values = attribute_values(opened.assertion)
    assert values["givenName"] == [STUDENT.given_name]
    assert values["sn"] == [STUDENT.family_name]
    assert values["mail"] == [STUDENT.email]

    # The publisher's pysaml2 SP decrypts it and checks both signatures itself.
    delivered = browser.submit(page, publisher.acs_url)
    assert delivered.status == 200, delivered.text
    received = demo.received(browser, "encrypted-sp")
    assert received["name_id"]["value"] == demo.expected_pseudonym(UID, "leermiddelen")
    by_name = attributes_by_name(received)
    assert by_name["urn:oid:0.9.2342.19200300.100.1.3"]["values"] == [STUDENT.email]


def test_a_service_without_an_encryption_key_gets_a_plain_signed_assertion(
    demo: LiveDemo,
) -> None:
    add(demo, "plain-sp", None)
    _, response = sent_response(demo, Browser(), "plain-sp")
    assertion = plain_assertion(demo, response)
    assert attribute_values(assertion)["mail"] == [STUDENT.email]


def test_the_gcm_algorithm_the_service_lists_first_is_used(demo: LiveDemo) -> None:
    # CBC listed first: GCM is preferred; of the GCM ones, the first listed.
    methods = (AES256_CBC, AES128_GCM, AES256_GCM, RSA_OAEP_MGF1P)
    publisher = add(demo, "listing-sp", methods)
    browser = Browser()
    page, response = sent_response(demo, browser, "listing-sp")
    opened = open_by_hand(response, sp_private_key(demo, "listing-sp"))
    assert opened.data_algorithm == AES128_GCM
    assert opened.key_transport == RSA_OAEP_MGF1P
    delivered = browser.submit(page, publisher.acs_url)
    assert delivered.status == 200, delivered.text
    assert demo.received(browser, "listing-sp")["name_id"]["value"] == (
        demo.expected_pseudonym(UID, "leermiddelen")
    )


def test_a_key_without_use_counts_as_an_encryption_key(demo: LiveDemo) -> None:
    def without_use(xml: str) -> str:
        return xml.replace('use="encryption"', "")

    add(demo, "no-use-sp", (), edit_metadata=without_use)
    _, response = sent_response(demo, Browser(), "no-use-sp")
    opened = open_by_hand(response, sp_private_key(demo, "no-use-sp"))
    assert opened.data_algorithm == AES256_GCM


# -- what the broker cannot meet: refused, never sent readable -----------------------------------


def only_cbc(xml: str) -> str:
    return re.sub(
        r"(<ns\d:KeyDescriptor use=\"encryption\">.*?</ns\d:KeyInfo>)",
        rf'\1<md:EncryptionMethod xmlns:md="{MD}" Algorithm="{AES256_CBC}"/>'
        rf'<md:EncryptionMethod xmlns:md="{MD}" Algorithm="{AES128_CBC}"/>',
        xml,
        flags=re.S,
    )


def small_key(xml: str) -> str:
    body = metadata_certificate(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    return re.sub(
        r"(<ns\d:KeyDescriptor use=\"encryption\">.*?<ns\d:X509Certificate>).*?(</)",
        rf"\g<1>{body}\2",
        xml,
        flags=re.S,
    )


@pytest.mark.parametrize("case", ["only CBC listed", "1024-bit key"])
def test_a_service_whose_encryption_the_broker_cannot_meet_is_refused(
    demo: LiveDemo, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    service_id = "cbc-only-sp" if case == "only CBC listed" else "small-key-sp"
    edit = only_cbc if case == "only CBC listed" else small_key
    publisher = add(demo, service_id, (), edit_metadata=edit)
    browser = Browser()
    with caplog.at_level(logging.INFO):
        page = browser.get(f"{publisher.base_url}/login")
    # Refused at the request, before any school is asked: a page for the student, whose
    # button carries a signed RequestUnsupported to the service, and no assertion at all.
    assert page.status == 400, page.text
    assert "asked for a way of signing in that is not offered here" in page.text
    assert not any(url.startswith(demo.school_url) for url in page.visited)
    fields = page.form(publisher.acs_url).fields
    response = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    verify(response, broker_certificate(demo))
    assert response.find(".//saml:Assertion", NS) is None
    assert response.find(".//saml:EncryptedAssertion", NS) is None
    codes = [e.get("Value") for e in response.iterfind(".//samlp:StatusCode", NS)]
    assert codes[-1] == STATUS_REQUEST_UNSUPPORTED
    lines = [r.getMessage() for r in caplog.records if "encryption_unusable" in r.getMessage()]
    assert any(f"service={publisher.entity_id}" in line for line in lines), lines
    reason = "only data encryption algorithms" if case == "only CBC listed" else "1024 bits"
    assert any(reason in line for line in lines), lines


# -- the demo and the benchmark publish no encryption key ----------------------------------------


def test_the_demo_and_bench_publishers_publish_no_encryption_key(demo: LiveDemo) -> None:
    """The benchmark logs in at the demo's publishers (bench/peers.py, bench/login.py): their
    assertions stay unencrypted, so its numbers stay comparable with earlier runs."""
    checked = 0
    for entry in DEMO_PUBLISHERS:
        service = demo.registry.service(entry.id)
        if service is None or service.protocol is not Protocol.SAML:
            continue
        metadata = etree.fromstring(demo.registry.service_metadata()[service.entity_id].encode())
        uses = [k.get("use") for k in metadata.iter(f"{{{MD}}}KeyDescriptor")]
        assert uses == ["signing"], (entry.id, uses)
        assert (
            demo.broker.saml_entities.publisher_encryption(
                service.entity_id, service.assertion_encryption
            )
            is None
        )
        checked += 1
    assert checked >= 1


# -- the operator's switch: assertion encryption off (revision 0019) ------------------------------


def set_encryption(demo: LiveDemo, service_id: str, setting: AssertionEncryption) -> None:
    """As `publisher update --assertion-encryption` sets it; the worker's view of the registry
    reloads at once in the process that wrote (registry/cached.py)."""
    assert demo.registry.set_assertion_encryption(service_id, setting, "test")


def test_a_service_set_off_gets_a_signed_assertion_unencrypted_and_back_to_auto_encrypted(
    demo: LiveDemo,
) -> None:
    # A key without `use`, as SimpleSAMLphp and Shibboleth SPs publish theirs.
    publisher = add(
        demo, "switched-sp", (), edit_metadata=lambda x: x.replace('use="encryption"', "")
    )
    set_encryption(demo, "switched-sp", AssertionEncryption.OFF)
    browser = Browser()
    page, response = sent_response(demo, browser, "switched-sp")
    assertion = plain_assertion(demo, response)
    assert attribute_values(assertion)["mail"] == [STUDENT.email]
    name_id = assertion.find("saml:Subject/saml:NameID", NS)
    assert name_id is not None
    assert name_id.text == demo.expected_pseudonym(UID, "leermiddelen")
    # The publisher's pysaml2 SP, which holds the key, takes the plain assertion too.
    delivered = browser.submit(page, publisher.acs_url)
    assert delivered.status == 200, delivered.text
    assert demo.received(browser, "switched-sp")["name_id"]["value"] == name_id.text

    set_encryption(demo, "switched-sp", AssertionEncryption.AUTO)
    browser = Browser()
    page, response = sent_response(demo, browser, "switched-sp")
    assert response.find("saml:Assertion", NS) is None
    opened = open_by_hand(response, sp_private_key(demo, "switched-sp"))
    assert opened.data_algorithm == AES256_GCM
    verify(opened.assertion, broker_certificate(demo))
    delivered = browser.submit(page, publisher.acs_url)
    assert delivered.status == 200, delivered.text


@pytest.mark.parametrize("case", ["only CBC listed", "1024-bit key"])
def test_a_service_the_broker_cannot_encrypt_for_set_off_signs_in_signed_only(
    demo: LiveDemo, case: str
) -> None:
    """The operator accepted it: signed assertions, its key never used, no refusal."""
    service_id = "cbc-off-sp" if case == "only CBC listed" else "small-key-off-sp"
    edit = only_cbc if case == "only CBC listed" else small_key
    publisher = add(demo, service_id, (), edit_metadata=edit)
    set_encryption(demo, service_id, AssertionEncryption.OFF)
    browser = Browser()
    page, response = sent_response(demo, browser, service_id)
    assertion = plain_assertion(demo, response)
    assert attribute_values(assertion)["givenName"] == [STUDENT.given_name]
    delivered = browser.submit(page, publisher.acs_url)
    assert delivered.status == 200, delivered.text
    assert demo.received(browser, service_id)["name_id"]["value"] == (
        demo.expected_pseudonym(UID, "leermiddelen")
    )
