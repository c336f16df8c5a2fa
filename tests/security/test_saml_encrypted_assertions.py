"""Encrypted assertions from a school, with `[saml] accept_encrypted_assertions = true`, against
the live demo.

The broker opens the one EncryptedAssertion itself and reads it as a plain assertion; pysaml2's
decryption, which let an unsigned assertion in through its second loop for `Advice` (the
security review's proof of concept, `test_the_unsigned_assertion_of_the_review_is_refused`),
never sees it. Every refusal is checked for its whole outcome (test_saml_refusals.assert_refused)
and its reason code; the controls first show that a school's signed, encrypted answer logs in.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest
from lxml import etree

from broker.core.errors import InvalidMessage
from broker.saml import assertion_reader, firewall
from tests.security.test_saml_attacks import accepted_for, answer, pseudonym_of
from tests.security.test_saml_refusals import (
    PendingLogin,
    _key_pair,
    assert_refused,
    deliver,
    start_login,
)
from tests.support.forge import NS, SAML, SchoolForger
from tests.support.hostile import (
    DS,
    Signer,
    assertion_of,
    encode,
    encrypt_assertion,
    encrypted_data_for,
    name_id_of,
)
from tests.support.live import LiveDemo, running_demo
from tests.support.saml_workers import demo_school_forger, demo_school_signer

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
XENC = "http://www.w3.org/2001/04/xmlenc#"
VICTIM = "daan.devries"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    directory = tmp_path_factory.mktemp("encrypted-demo")
    with running_demo(directory, accept_encrypted_assertions=True) as live:
        yield live


@pytest.fixture(scope="module")
def cert(demo: LiveDemo) -> str:
    """The broker's encryption certificate, as anyone reads it from its SP metadata."""
    metadata = etree.fromstring(demo.broker.saml_entities.sp_metadata().encode())
    path = f".//{{{MD}}}KeyDescriptor[@use='encryption']//{{{DS}}}X509Certificate"
    found = metadata.findall(path)
    assert len(found) == 1, "the setting publishes one encryption key"
    body = "\n".join(textwrap.wrap("".join((found[0].text or "").split()), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


@pytest.fixture
def no_pysaml2(demo: LiveDemo, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker's pysaml2 client may not parse: an encrypted answer is the broker's to read.
    (The demo publishers' own pysaml2 clients go on parsing the broker's answers.)"""

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("pysaml2 parsed an encrypted school response")

    client = demo.broker.saml_entities.client
    monkeypatch.setattr(client, "parse_authn_request_response", refused)


@dataclass(frozen=True)
class SchoolSide:
    """What a case builds its answer with: the demo, the school's forger and key, the
    broker's encryption certificate, and the login being answered."""

    demo: LiveDemo
    forger: SchoolForger
    signer: Signer
    cert: str
    login: PendingLogin

    def answer(self, uid: str = "sanne.jansen") -> etree._Element:
        return answer(self.demo, self.forger, self.login, subject=self.demo.school_subject(uid))

    def signed_and_encrypted(self, change: Callable[[etree._Element], None]) -> etree._Element:
        """The school's answer with `change` made to its assertion, which the school then
        signs and encrypts: only the change can be the reason for a refusal."""
        doc = self.answer()
        change(assertion_of(doc))
        self.signer.sign(assertion_of(doc))
        return encrypt_assertion(doc, self.cert)


@pytest.fixture(scope="module")
def answering(demo: LiveDemo, cert: str) -> Callable[[PendingLogin], SchoolSide]:
    """The demo school's side of a login the broker sent there."""
    forger, signer = demo_school_forger(demo), demo_school_signer(demo)
    return lambda login: SchoolSide(demo, forger, signer, cert, login)


# -- the controls: a school's encrypted answer logs in --------------------------------------------


@pytest.mark.parametrize(
    ("sign_assertion", "sign_response"),
    [(True, False), (False, True), (True, True)],
    ids=[
        "assertion signed, then encrypted",
        "encrypted, response signed over it",
        "both",
    ],
)
@pytest.mark.usefixtures("no_pysaml2")
def test_an_encrypted_assertion_the_school_signed_logs_in(
    demo: LiveDemo,
    answering: Callable[[PendingLogin], SchoolSide],
    sign_assertion: bool,
    sign_response: bool,
) -> None:
    side = answering(start_login(demo))
    doc = side.answer()
    if sign_assertion:
        side.signer.sign(assertion_of(doc))
    encrypt_assertion(doc, side.cert)
    if sign_response:
        side.signer.sign(doc)  # over the EncryptedAssertion, as sent
    assert doc.find(".//saml:Assertion", NS) is None
    received = accepted_for(demo, side.login, deliver(demo, side.login, encode(doc)))
    assert received["name_id"]["value"] == pseudonym_of(demo, demo.school_subject("sanne.jansen"))


@pytest.mark.usefixtures("no_pysaml2")
def test_an_encrypted_assertion_without_a_type_logs_in(
    demo: LiveDemo, answering: Callable[[PendingLogin], SchoolSide]
) -> None:
    """SAML core 6.1: the EncryptedData's Type SHOULD be present (xenc's Element); without it
    the plaintext is read as that one element."""
    side = answering(start_login(demo))
    doc = side.signed_and_encrypted(lambda assertion: None)
    del _encrypted_data(doc).attrib["Type"]
    received = accepted_for(demo, side.login, deliver(demo, side.login, encode(doc)))
    assert received["name_id"]["value"] == pseudonym_of(demo, demo.school_subject("sanne.jansen"))


# -- refusals -----------------------------------------------------------------------------------


def _poc_assertion(s: SchoolSide, *, advice: bool) -> etree._Element:
    """The security review's answer: an unsigned Response whose assertion, unsigned, names
    the victim, with a direct child EncryptedData whose plaintext is a made-up ds:Signature
    and (`advice`) an Advice whose EncryptedAssertion made pysaml2 decrypt a second time,
    trusting the result; all of it encrypted for the broker."""
    doc = s.answer()
    cert = s.cert
    demo = s.demo
    assertion = assertion_of(doc)
    name_id_of(assertion).text = demo.school_subject(VICTIM)
    bogus_signature = (
        f'<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo>'
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
        '<ds:Reference URI="#x">'
        '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
        "<ds:DigestValue>AA==</ds:DigestValue></ds:Reference></ds:SignedInfo>"
        "<ds:SignatureValue>AA==</ds:SignatureValue></ds:Signature>"
    )
    issuer = assertion.find("saml:Issuer", NS)
    assert issuer is not None
    issuer.addnext(encrypted_data_for(bogus_signature, cert))
    if advice:
        dummy = (
            f'<saml:Assertion xmlns:saml="{SAML}" ID="_advice" Version="2.0" '
            'IssueInstant="2020-01-01T00:00:00Z"><saml:Issuer>x</saml:Issuer></saml:Assertion>'
        )
        _add_advice(assertion, _encrypted_assertion(encrypted_data_for(dummy, cert)))
    return encrypt_assertion(doc, cert)


def _encrypted_assertion(data: etree._Element) -> etree._Element:
    wrapper = etree.Element(f"{{{SAML}}}EncryptedAssertion")
    wrapper.append(data)
    return wrapper


def _add_advice(assertion: etree._Element, content: etree._Element) -> None:
    advice = etree.Element(f"{{{SAML}}}Advice")
    advice.append(content)
    conditions = assertion.find("saml:Conditions", NS)
    assert conditions is not None
    conditions.addnext(advice)


@pytest.mark.parametrize("advice", [True, False], ids=["as reviewed", "without the advice"])
@pytest.mark.usefixtures("no_pysaml2")
def test_the_unsigned_assertion_of_the_review_is_refused(
    demo: LiveDemo,
    answering: Callable[[PendingLogin], SchoolSide],
    advice: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The attacker starts a login of their own (so knows the request id) and answers it
    in another student's name: refused, and the other student's pseudonym goes nowhere."""
    side = answering(start_login(demo))
    page = deliver(demo, side.login, encode(_poc_assertion(side, advice=advice)))
    assert_refused(demo, side.login.browser, page, caplog, ("nested_encryption",))
    assert pseudonym_of(demo, demo.school_subject(VICTIM)) not in page.text


def _advice_with_encrypted_assertion(s: SchoolSide) -> etree._Element:
    dummy = f'<saml:Assertion xmlns:saml="{SAML}" ID="_inner" Version="2.0"/>'
    inner = _encrypted_assertion(encrypted_data_for(dummy, s.cert))
    return s.signed_and_encrypted(lambda assertion: _add_advice(assertion, inner))


def _advice_with_a_reference(s: SchoolSide) -> etree._Element:
    reference = etree.Element(f"{{{SAML}}}AssertionIDRef")
    reference.text = "_elsewhere"
    return s.signed_and_encrypted(lambda assertion: _add_advice(assertion, reference))


def _encrypted_name_id(assertion: etree._Element, cert: str) -> None:
    name_id = name_id_of(assertion)
    encrypted_id = etree.Element(f"{{{SAML}}}EncryptedID")
    encrypted_id.append(encrypted_data_for(name_id, cert))
    parent = name_id.getparent()
    assert parent is not None
    parent.replace(name_id, encrypted_id)


def _encrypted_name_id_inside(s: SchoolSide) -> etree._Element:
    return s.signed_and_encrypted(lambda assertion: _encrypted_name_id(assertion, s.cert))


def _encrypted_name_id_in_a_plain_assertion(s: SchoolSide) -> etree._Element:
    """Nothing encrypted is read but the one EncryptedAssertion: an EncryptedID (or an
    EncryptedAttribute) in a plain assertion would only have pysaml2 to decrypt it."""
    doc = s.answer()
    _encrypted_name_id(assertion_of(doc), s.cert)
    s.signer.sign(assertion_of(doc))
    return doc


def _unsigned(s: SchoolSide) -> etree._Element:
    return encrypt_assertion(s.answer(), s.cert)


def _two_encrypted_assertions(s: SchoolSide) -> etree._Element:
    doc = s.signed_and_encrypted(lambda assertion: None)
    victim = assertion_of(s.answer(VICTIM))
    doc.append(_encrypted_assertion(encrypted_data_for(victim, s.cert)))
    return doc


def _swapped_under_the_responses_signature(s: SchoolSide) -> etree._Element:
    """The Response's signature covers the ciphertext as sent: another ciphertext in its place
    (the victim's unsigned assertion) breaks it, checked before anything is decrypted."""
    doc = s.signer.sign(encrypt_assertion(s.answer(), s.cert))
    wrapper = doc.find("saml:EncryptedAssertion", NS)
    assert wrapper is not None
    wrapper.replace(wrapper[0], encrypted_data_for(assertion_of(s.answer(VICTIM)), s.cert))
    return doc


def _plaintext_not_an_assertion(s: SchoolSide) -> etree._Element:
    doc = s.answer()
    issuer = f'<saml:Issuer xmlns:saml="{SAML}">{s.demo.school_entity_id}</saml:Issuer>'
    doc.replace(assertion_of(doc), _encrypted_assertion(encrypted_data_for(issuer, s.cert)))
    return s.signer.sign(doc)


def _encrypted_for_another_key(s: SchoolSide) -> etree._Element:
    _, stranger = _key_pair(s.demo.directory / "peers", "stranger")
    doc = s.answer()
    s.signer.sign(assertion_of(doc))
    return encrypt_assertion(doc, stranger.read_text())


def _encrypted_data(doc: etree._Element) -> etree._Element:
    found = doc.find(f"saml:EncryptedAssertion/{{{XENC}}}EncryptedData", NS)
    assert found is not None
    return found


def _of_type(kind: str) -> Callable[[SchoolSide], etree._Element]:
    """The school's signed, encrypted answer, its EncryptedData claiming another Type (nothing
    covers that attribute: the Response is unsigned)."""

    def build(s: SchoolSide) -> etree._Element:
        doc = s.signed_and_encrypted(lambda assertion: None)
        _encrypted_data(doc).set("Type", kind)
        return doc

    return build


def _two_recipients(s: SchoolSide) -> etree._Element:
    """The content key wrapped twice, for the broker and for another holder: a second
    EncryptedKey is not a message the broker decrypts."""
    _, stranger = _key_pair(s.demo.directory / "peers", "stranger")
    doc = s.signed_and_encrypted(lambda assertion: None)
    key_info = _encrypted_data(doc).find(f"{{{DS}}}KeyInfo")
    assert key_info is not None
    other = encrypted_data_for(
        f'<saml:Issuer xmlns:saml="{SAML}">x</saml:Issuer>', stranger.read_text()
    )
    other_key = other.find(f"{{{DS}}}KeyInfo/{{{XENC}}}EncryptedKey")
    assert other_key is not None
    key_info.append(other_key)
    return doc


def _ciphertext_beside_the_key(s: SchoolSide) -> etree._Element:
    """A second EncryptedData (the victim's assertion) in the EncryptedAssertion's KeyInfo:
    never decrypted, never checked, so refused (decrypting the first would drop it unseen)."""
    doc = s.signed_and_encrypted(lambda assertion: None)
    key_info = _encrypted_data(doc).find(f"{{{DS}}}KeyInfo")
    assert key_info is not None
    key_info.append(encrypted_data_for(assertion_of(s.answer(VICTIM)), s.cert))
    return doc


def _response_issuer(
    change: Callable[[etree._Element], None], *, sign: bool
) -> Callable[[SchoolSide], etree._Element]:
    """The school's signed, encrypted answer with `change` made to the Response (its Issuer),
    the Response then signed over the ciphertext when `sign`."""

    def build(s: SchoolSide) -> etree._Element:
        doc = s.signed_and_encrypted(lambda assertion: None)
        change(doc)
        return s.signer.sign(doc) if sign else doc

    return build


def _issuer_removed(doc: etree._Element) -> None:
    issuer = doc.find("saml:Issuer", NS)
    assert issuer is not None
    doc.remove(issuer)


def _issuer_persistent(doc: etree._Element) -> None:
    issuer = doc.find("saml:Issuer", NS)
    assert issuer is not None
    issuer.set("Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")


REFUSALS: dict[str, tuple[Callable[[SchoolSide], etree._Element], str]] = {
    "unsigned": (_unsigned, "bad_signature"),
    "two EncryptedAssertions": (_two_encrypted_assertions, "assertion_count"),
    "swapped under the Response's signature": (
        _swapped_under_the_responses_signature,
        "bad_signature",
    ),
    "signed, Advice with an EncryptedAssertion": (
        _advice_with_encrypted_assertion,
        "nested_encryption",
    ),
    "signed, Advice with a reference only": (_advice_with_a_reference, "assertion_advice"),
    "signed, EncryptedID inside": (_encrypted_name_id_inside, "nested_encryption"),
    "plaintext not an assertion": (_plaintext_not_an_assertion, "encrypted_assertion_content"),
    "encrypted for another key": (_encrypted_for_another_key, "decryption_failed"),
    "EncryptedID in a plain assertion": (
        _encrypted_name_id_in_a_plain_assertion,
        "encrypted_element_refused",
    ),
    "EncryptedData in the KeyInfo": (_ciphertext_beside_the_key, "encrypted_element_refused"),
    "Type Content": (_of_type(f"{XENC}Content"), "encrypted_assertion_type"),
    "Type unknown": (_of_type("urn:example:assertion"), "encrypted_assertion_type"),
    "two EncryptedKeys (two recipients)": (_two_recipients, "decryption_failed"),
    # SAML profiles 4.1.4.2: a Response with an encrypted assertion names its Issuer, signed or
    # not (the assertion inside is signed either way), of Format entity.
    "no Response Issuer, assertion signed": (
        _response_issuer(_issuer_removed, sign=False),
        "issuer_missing",
    ),
    "no Response Issuer, Response signed": (
        _response_issuer(_issuer_removed, sign=True),
        "issuer_missing",
    ),
    "Response Issuer of Format persistent": (
        _response_issuer(_issuer_persistent, sign=False),
        "issuer_format",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
@pytest.mark.usefixtures("no_pysaml2")
def test_an_encrypted_answer_is_refused(
    demo: LiveDemo,
    answering: Callable[[PendingLogin], SchoolSide],
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    build, code = REFUSALS[case]
    side = answering(start_login(demo))
    page = deliver(demo, side.login, encode(build(side)))
    assert_refused(demo, side.login.browser, page, caplog, (code,))


@pytest.mark.usefixtures("no_pysaml2")
def test_an_encrypted_assertion_is_refused_when_the_setting_is_off(
    demo: LiveDemo,
    answering: Callable[[PendingLogin], SchoolSide],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entities = demo.broker.saml_entities
    saml = replace(entities.settings.saml, accept_encrypted_assertions=False)
    monkeypatch.setattr(entities, "settings", replace(entities.settings, saml=saml))
    side = answering(start_login(demo))
    doc = side.signer.sign(side.signed_and_encrypted(lambda assertion: None))
    page = deliver(demo, side.login, encode(doc))
    assert_refused(demo, side.login.browser, page, caplog, ("encrypted_assertion_not_accepted",))


def test_a_signature_verified_on_another_tree_counts_for_nothing(
    demo: LiveDemo, answering: Callable[[PendingLogin], SchoolSide]
) -> None:
    """`SignedAsSent` vouches for the very tree it was made on. Called directly, since the ACS
    always hands the reader the tree it verified: a record of another message's verified
    signature does not make an unsigned Response signed."""
    side = answering(start_login(demo))
    back = demo.broker.saml_back
    metadata = demo.broker.saml_entities.client.metadata

    def received(doc: etree._Element) -> etree._Element:
        xml = firewall.decode_post(encode(doc))
        return firewall.inspect(xml, root="Response", assertions=None)

    signed_elsewhere = received(side.signer.sign(encrypt_assertion(side.answer(), side.cert)))
    record = assertion_reader.verify_before_decryption(
        signed_elsewhere, metadata, demo.school_entity_id
    )
    assert record is not None
    unsigned = received(side.answer(VICTIM))
    with pytest.raises(InvalidMessage) as refused:
        assertion_reader.read_response(
            unsigned,
            metadata,
            demo.school_entity_id,
            back._expectations(side.login.request_id),
            record,
        )
    assert refused.value.code == "bad_signature"
