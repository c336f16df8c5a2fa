"""The checks the broker took over from pysaml2 when it began reading a school's plain Response
straight from the verified lxml tree (broker/saml/assertion_reader.py), against the live demo.

Each message is the demo school's correct answer with one thing changed, signed afterwards with
the school's own key, so the refusal is caused by that one change. The existing refusal and
attack suites (test_saml_refusals.py, test_saml_attacks.py) hold the checks the broker made
on top of pysaml2's from the start; this file holds those that were pysaml2's alone, the Web
Browser SSO profile's rules for the Response (SAML profiles 4.1.4.2/4.1.4.3: Issuer, every bearer
confirmation) with the reader's other rules no test held before, how long the replay cache
keeps an assertion, and proves the broker's reader reads the same identity as pysaml2's own
parse of the message.
"""

from __future__ import annotations

import base64
import calendar
import copy
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from saml2 import BINDING_HTTP_POST
from saml2.time_util import str_to_time

from broker.core.errors import InvalidMessage
from broker.core.ports import StoreOp, StoreReply
from broker.saml import assertion_reader
from tests.security.test_saml_attacks import accepted_for, answer
from tests.security.test_saml_refusals import (
    OUT_OF_TIME,
    _key_pair,
    assert_refused,
    deliver,
    forged,
    start_login,
)
from tests.support.forge import NS, SAML, SAMLP, SchoolForger, saml_time
from tests.support.hostile import Signer, assertion_of, encode, signed
from tests.support.live import LiveDemo, running_demo
from tests.support.redirect_signer import make_signer, with_signing_certs
from tests.support.saml_workers import demo_school_forger, demo_school_signer

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
HOLDER_OF_KEY = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
SENDER_VOUCHES = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"
ENTITY = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"

Change = Callable[[etree._Element], None]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("direct-route-demo")) as live:
        yield live


@pytest.fixture(scope="module")
def school(demo: LiveDemo) -> SchoolForger:
    return demo_school_forger(demo)


@pytest.fixture(scope="module")
def signer(demo: LiveDemo) -> Signer:
    return demo_school_signer(demo)


def _when(**delta: float) -> str:
    return saml_time(datetime.now(UTC) + timedelta(**delta))


def _one(doc: etree._Element, path: str) -> etree._Element:
    found = doc.find(path, NS)
    assert found is not None, path
    return found


def _confirmation_data(doc: etree._Element) -> etree._Element:
    return _one(
        assertion_of(doc), "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData"
    )


def _conditions(doc: etree._Element) -> etree._Element:
    return _one(assertion_of(doc), "saml:Conditions")


def _two_authn_statements(doc: etree._Element) -> None:
    statement = _one(assertion_of(doc), "saml:AuthnStatement")
    statement.addnext(copy.deepcopy(statement))


def _generic_condition(doc: etree._Element) -> None:
    """A generic Condition whose type the schema knows (so it passes the schema check) but the
    broker does not evaluate as such."""
    condition = etree.SubElement(
        _conditions(doc), f"{{{SAML}}}Condition", nsmap={"kbsaml": SAML, "xsi": XSI}
    )
    condition.set(f"{{{XSI}}}type", "kbsaml:OneTimeUseType")


def _proxy_restriction(doc: etree._Element) -> None:
    restriction = etree.SubElement(_conditions(doc), f"{{{SAML}}}ProxyRestriction")
    restriction.set("Count", "0")


def _no_subject_confirmation(doc: etree._Element) -> None:
    subject = _one(assertion_of(doc), "saml:Subject")
    for confirmation in subject.findall("saml:SubjectConfirmation", NS):
        subject.remove(confirmation)


def _confirmation_not_yet_valid(doc: etree._Element) -> None:
    _confirmation_data(doc).set("NotBefore", _when(minutes=10))


def _confirmation_for_another_request(doc: etree._Element) -> None:
    _confirmation_data(doc).set("InResponseTo", "_another-request")


def _confirmation_bad_address(doc: etree._Element) -> None:
    _confirmation_data(doc).set("Address", "not-an-address")


def _response_issued_two_days_ago(doc: etree._Element) -> None:
    doc.set("IssueInstant", _when(days=-2))


def _response_version(doc: etree._Element) -> None:
    doc.set("Version", "2.1")


def _assertion_version(doc: etree._Element) -> None:
    assertion_of(doc).set("Version", "1.1")


def _audience_split_by_a_comment(doc: etree._Element) -> None:
    """Signed for another SP whose entity id starts with ours, split by a comment right after
    ours: exclusive c14n drops the comment, so the signature holds; a reader that takes only the
    first text node would see our entity id."""
    audience = _one(assertion_of(doc), "saml:Conditions/saml:AudienceRestriction/saml:Audience")
    ours = audience.text or ""
    audience.text = ours
    comment = etree.Comment("")
    comment.tail = ".evil.example"
    audience.append(comment)


def _not_before_after_expiry(doc: etree._Element) -> None:
    """Both within the skew of now, so only their order is wrong: an empty window."""
    conditions, moment = _conditions(doc), _when(seconds=30)
    conditions.set("NotBefore", moment)
    conditions.set("NotOnOrAfter", moment)


def _bearer_window_empty(doc: etree._Element) -> None:
    """The bearer data's NotBefore equal to its NotOnOrAfter, both within the skew of now:
    valid at no time (SAML core 2.4.1.2), whatever the clocks."""
    data, moment = _confirmation_data(doc), _when(seconds=30)
    data.set("NotBefore", moment)
    data.set("NotOnOrAfter", moment)


def _conditions_without_expiry(doc: etree._Element) -> None:
    del _conditions(doc).attrib["NotOnOrAfter"]


def _response_for_another_request(doc: etree._Element) -> None:
    """Only the Response's InResponseTo: the bearer confirmation still names this login."""
    doc.set("InResponseTo", "_another-request")


def _assertion_issued_in_the_future(doc: etree._Element) -> None:
    assertion_of(doc).set("IssueInstant", _when(minutes=10))


def _response_issuer_elsewhere(doc: etree._Element) -> None:
    _one(doc, "saml:Issuer").text = "https://idp.elders.example/metadata"


def _issuer_unknown(doc: etree._Element) -> None:
    _one(doc, "saml:Issuer").text = "https://idp.onbekend.example/metadata"
    _one(assertion_of(doc), "saml:Issuer").text = "https://idp.onbekend.example/metadata"


def _assertion_in_extensions(doc: etree._Element) -> None:
    """The (signed) assertion moved into the Response's Extensions: where no Response carries
    its assertion, and where a reader looking for a direct child finds nothing."""
    assertion = assertion_of(doc)
    doc.remove(assertion)
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    _one(doc, "saml:Issuer").addnext(extensions)
    extensions.append(assertion)


# -- the Web Browser SSO profile (SAML profiles 4.1.4.2/4.1.4.3), and rules no case held before --


def _issuer_removed(doc: etree._Element) -> None:
    doc.remove(_one(doc, "saml:Issuer"))


def _issuer_format(of_assertion: bool, value: str | None) -> Change:
    """The Response's (or the Assertion's) Issuer with Format `value` (None: no Format)."""

    def change(doc: etree._Element) -> None:
        issuer = _one(assertion_of(doc) if of_assertion else doc, "saml:Issuer")
        if value is None:
            issuer.attrib.pop("Format", None)
        else:
            issuer.set("Format", value)

    return change


def _both_issuers_of_format(value: str | None) -> Change:
    def change(doc: etree._Element) -> None:
        _issuer_format(False, value)(doc)
        _issuer_format(True, value)(doc)

    return change


def _without_destination(doc: etree._Element) -> None:
    del doc.attrib["Destination"]


def _empty_destination(doc: etree._Element) -> None:
    doc.set("Destination", "")


def _second_confirmation(change: Change, method: str | None = None) -> Change:
    """A copy of the school's valid bearer confirmation after it, changed by `change` (and of
    `method`): the valid one comes first, so a reader that stops at it lets the copy by."""

    def add(doc: etree._Element) -> None:
        confirmation = _one(assertion_of(doc), "saml:Subject/saml:SubjectConfirmation")
        second = copy.deepcopy(confirmation)
        if method is not None:
            second.set("Method", method)
        change(second)
        confirmation.addnext(second)

    return add


def _data_set(name: str, value: str | None) -> Change:
    """The confirmation data of `element` (a confirmation, or a whole Response) with attribute
    `name` set to `value` (None: removed)."""

    def change(element: etree._Element) -> None:
        if element.tag == f"{{{SAMLP}}}Response":
            data = _confirmation_data(element)
        else:
            data = _one(element, "saml:SubjectConfirmationData")
        if value is None:
            data.attrib.pop(name, None)
        else:
            data.set(name, value)

    return change


def _without_data(confirmation: etree._Element) -> None:
    confirmation.remove(_one(confirmation, "saml:SubjectConfirmationData"))


def _second_audience_restriction(doc: etree._Element) -> None:
    """A second AudienceRestriction, for another SP only: each restriction must name the
    broker (SAML core 2.5.1.4), not just one of them."""
    restriction = etree.SubElement(_conditions(doc), f"{{{SAML}}}AudienceRestriction")
    etree.SubElement(restriction, f"{{{SAML}}}Audience").text = "https://sp.elders.example"


def _no_conditions(doc: etree._Element) -> None:
    assertion_of(doc).remove(_conditions(doc))


def _response_without_in_response_to(doc: etree._Element) -> None:
    """Only the Response's InResponseTo is gone; the bearer confirmation still names this
    login. SAML core 3.2.2: a response to a request MUST carry the request's ID."""
    del doc.attrib["InResponseTo"]


def _signature_id(value: Callable[[etree._Element], str]) -> Change:
    """After signing: the Response's ds:Signature gets an `Id` (xs:ID in the xmldsig schema;
    outside what its own signature covers) of `value(doc)`."""

    def change(doc: etree._Element) -> None:
        _one(doc, "ds:Signature").set("Id", value(doc))

    return change


def _xml_id(value: Callable[[etree._Element], str]) -> Change:
    """After signing: an element in the (unsigned) Response's Extensions with an `xml:id` of
    `value(doc)`."""

    def change(doc: etree._Element) -> None:
        extensions = etree.Element(f"{{{SAMLP}}}Extensions")
        _one(doc, "saml:Issuer").addnext(extensions)
        etree.SubElement(extensions, "{urn:example:school}note").set(XML_ID, value(doc))

    return change


def _assertion_id(doc: etree._Element) -> str:
    return assertion_of(doc).get("ID") or ""


_signature_id_of_the_assertion = _signature_id(_assertion_id)
_xml_id_of_the_assertion = _xml_id(_assertion_id)
_signature_id_of_its_own = _signature_id(lambda doc: "_signature")
_xml_id_of_its_own = _xml_id(lambda doc: "_note")
# Made to a message already signed: the assertion moves where no Response carries it; a
# signature's own Id and an Extensions element are outside what the signatures cover, and the
# hostile signer registers only `ID`s.
AFTER_SIGNING: frozenset[Change] = frozenset(
    {
        _assertion_in_extensions,
        _signature_id_of_the_assertion,
        _xml_id_of_the_assertion,
        _signature_id_of_its_own,
        _xml_id_of_its_own,
    }
)


# name: (change, sign the Response, sign the Assertion, the refusal codes); the change is made
# before signing, except for the placement case, which moves an assertion already signed.
CASES: dict[str, tuple[Change, bool, bool, tuple[str, ...]]] = {
    "two AuthnStatements": (_two_authn_statements, True, True, ("response_refused",)),
    "a generic Condition": (_generic_condition, True, True, ("response_refused",)),
    "a ProxyRestriction": (_proxy_restriction, True, True, ("response_refused",)),
    "no SubjectConfirmation": (_no_subject_confirmation, True, True, ("wrong_recipient",)),
    "bearer NotBefore in the future": (_confirmation_not_yet_valid, True, True, OUT_OF_TIME),
    "bearer for another request": (_confirmation_for_another_request, True, True, ("unsolicited",)),
    "bearer Address not an address": (_confirmation_bad_address, True, True, ("wrong_recipient",)),
    "Response issued two days ago": (_response_issued_two_days_ago, True, True, OUT_OF_TIME),
    "Response Version 2.1": (_response_version, True, True, ("response_refused",)),
    "Assertion Version 1.1": (_assertion_version, True, True, ("response_refused",)),
    "Audience split by a comment": (_audience_split_by_a_comment, True, True, ("wrong_audience",)),
    "NotBefore not before NotOnOrAfter": (_not_before_after_expiry, True, True, ("time_window",)),
    "bearer NotBefore not before its NotOnOrAfter": (
        _bearer_window_empty,
        True,
        True,
        ("time_window",),
    ),
    "Conditions without NotOnOrAfter": (_conditions_without_expiry, True, True, ("time_window",)),
    "Response for another request": (_response_for_another_request, True, True, ("unsolicited",)),
    "Assertion issued in the future": (_assertion_issued_in_the_future, True, True, OUT_OF_TIME),
    "Response Issuer another IdP": (_response_issuer_elsewhere, True, True, ("issuer_mismatch",)),
    "issuer not in any metadata": (_issuer_unknown, True, True, ("unknown_issuer",)),
    "signed assertion in Extensions": (
        _assertion_in_extensions,
        False,
        True,
        ("no_assertion",),
    ),
    # SAML profiles 4.1.4.2: the Issuer.
    # SAML bindings 3.5.5.2: a signed Response names where it goes; "" names nowhere.
    "signed Response with an empty Destination": (
        _empty_destination,
        True,
        True,
        ("wrong_destination",),
    ),
    "signed Response without Issuer": (_issuer_removed, True, False, ("issuer_missing",)),
    "Response Issuer Format persistent": (
        _issuer_format(False, PERSISTENT),
        True,
        True,
        ("issuer_format",),
    ),
    "Assertion Issuer Format unspecified": (
        _issuer_format(True, UNSPECIFIED),
        True,
        True,
        ("issuer_format",),
    ),
    # Every bearer confirmation must hold, not just one of them.
    "second bearer for another Recipient": (
        _second_confirmation(_data_set("Recipient", "https://sp.elders.example/acs")),
        True,
        True,
        ("wrong_recipient",),
    ),
    "second bearer expired": (
        _second_confirmation(_data_set("NotOnOrAfter", _when(minutes=-10))),
        True,
        True,
        OUT_OF_TIME,
    ),
    "second bearer for another request": (
        _second_confirmation(_data_set("InResponseTo", "_another-request")),
        True,
        True,
        ("unsolicited",),
    ),
    "second bearer without data": (
        _second_confirmation(_without_data),
        True,
        True,
        ("wrong_recipient",),
    ),
    "bearer expired, Conditions live": (
        _data_set("NotOnOrAfter", _when(minutes=-10)),
        True,
        True,
        OUT_OF_TIME,
    ),
    "bearer without InResponseTo": (
        _data_set("InResponseTo", None),
        True,
        True,
        ("unsolicited",),
    ),
    "holder-of-key with data, without InResponseTo": (
        _second_confirmation(_data_set("InResponseTo", None), HOLDER_OF_KEY),
        True,
        True,
        ("unsolicited",),
    ),
    "Response without InResponseTo": (
        _response_without_in_response_to,
        True,
        True,
        ("unsolicited",),
    ),
    "two AudienceRestrictions, one not ours": (
        _second_audience_restriction,
        True,
        True,
        ("wrong_audience",),
    ),
    "no Conditions": (_no_conditions, True, True, ("wrong_audience",)),
    # IDs are unique across every ID attribute the schemas know, not only SAML's `ID`.
    "a signature's Id repeats the Assertion's ID": (
        _signature_id_of_the_assertion,
        True,
        True,
        ("schema_invalid",),
    ),
    "an xml:id repeats the Assertion's ID": (
        _xml_id_of_the_assertion,
        False,
        True,
        ("schema_invalid",),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_check_of_the_reader_refuses(
    demo: LiveDemo,
    school: SchoolForger,
    signer: Signer,
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    change, sign_response, sign_assertion, codes = CASES[case]
    login = start_login(demo)
    doc = answer(demo, school, login)
    _change_and_sign(doc, signer, change, response=sign_response, assertion=sign_assertion)
    page = deliver(demo, login, encode(doc))
    statuses = range(502, 503) if codes == OUT_OF_TIME else range(400, 500)
    assert_refused(demo, login.browser, page, caplog, codes, statuses=statuses)


def _change_and_sign(
    doc: etree._Element, signer: Signer, change: Change, *, response: bool, assertion: bool
) -> None:
    """Make `change` and sign where asked: after the change, or before it for a change in
    AFTER_SIGNING."""
    if change in AFTER_SIGNING:
        signed(doc, signer, response=response, assertion=assertion)
        change(doc)
    else:
        change(doc)
        signed(doc, signer, response=response, assertion=assertion)


# name: (change, sign the Response, sign the Assertion): each the counterpart of a refusal above.
ACCEPTED: dict[str, tuple[Change, bool, bool]] = {
    # SAML bindings 3.5.5.2 asks a Destination of signed messages only.
    "unsigned Response without Destination, signed Assertion": (
        _without_destination,
        False,
        True,
    ),
    "unsigned Response with an empty Destination, signed Assertion": (
        _empty_destination,
        False,
        True,
    ),
    # SAML profiles 4.1.4.2 asks an Issuer of a signed Response (or of one that carries an
    # encrypted assertion) only.
    "unsigned Response without Issuer, signed Assertion": (_issuer_removed, False, True),
    "Issuers without Format": (_both_issuers_of_format(None), True, True),
    "Issuers with Format entity": (_both_issuers_of_format(ENTITY), True, True),
    "two bearer confirmations, both valid": (_second_confirmation(lambda c: None), True, True),
    "a sender-vouches confirmation without data beside the bearer": (
        _second_confirmation(_without_data, SENDER_VOUCHES),
        True,
        True,
    ),
    # The duplicate-ID cases' controls: the same attributes, values of their own.
    "a signature's Id of its own": (_signature_id_of_its_own, True, True),
    "an xml:id of its own": (_xml_id_of_its_own, False, True),
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_a_response_the_profile_allows_is_accepted(
    demo: LiveDemo, school: SchoolForger, signer: Signer, case: str
) -> None:
    """What the profile leaves out of a message is not refused: each case is the refusals'
    counterpart (an Issuer or Destination the message need not carry, a second confirmation
    that holds, an ID attribute with a value of its own)."""
    change, sign_response, sign_assertion = ACCEPTED[case]
    login = start_login(demo)
    doc = answer(demo, school, login)
    _change_and_sign(doc, signer, change, response=sign_response, assertion=sign_assertion)
    received = accepted_for(demo, login, deliver(demo, login, encode(doc)))
    assert received["name_id"]["value"] == demo.expected_pseudonym("sanne.jansen", "leermiddelen")


def test_a_one_time_use_condition_is_accepted(
    demo: LiveDemo, school: SchoolForger, signer: Signer
) -> None:
    """OneTimeUse is the one extra condition the broker understands: the replay cache keeps
    every assertion to one use anyway."""
    login = start_login(demo)
    doc = answer(demo, school, login)
    etree.SubElement(_conditions(doc), f"{{{SAML}}}OneTimeUse")
    page = deliver(demo, login, encode(signed(doc, signer)))
    received = accepted_for(demo, login, page)
    assert received["name_id"]["value"] == demo.expected_pseudonym("sanne.jansen", "leermiddelen")


# -- how long the replay cache keeps an assertion -------------------------------------------------


def _valid_until(moment: str) -> Change:
    """The assertion valid until `moment`: its Conditions and its bearer confirmation alike."""

    def change(doc: etree._Element) -> None:
        _conditions(doc).set("NotOnOrAfter", moment)
        _confirmation_data(doc).set("NotOnOrAfter", moment)

    return change


@pytest.mark.parametrize(
    "lifetime", [timedelta(minutes=5), timedelta(days=3650)], ids=["five minutes", "ten years"]
)
def test_the_replay_cache_keeps_an_assertion_while_it_is_acceptable_and_no_longer(
    demo: LiveDemo,
    school: SchoolForger,
    signer: Signer,
    lifetime: timedelta,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The assertion's id is kept at least as long as the reader would still accept it (until
    NotOnOrAfter, or until it is the login lifetime old, each plus the skew), and no longer
    than its IssueInstant plus the login lifetime plus the skew (and the second the store's
    whole-second TTL rounds up): a ten-year NotOnOrAfter is not a ten-year entry."""
    guard = demo.broker.replay
    moments: list[float] = []
    kept: list[tuple[float, int]] = []
    batch = guard.store.batch

    def clock() -> float:
        moments.append(time.time())
        return moments[-1]

    def spy(operations: Sequence[StoreOp]) -> list[StoreReply]:
        # The replay key's write, with the guard's last reading of the clock (its TTL's start).
        kept.extend(
            (moments[-1], op.ttl_seconds) for op in operations if op.key.startswith("replay:")
        )
        return batch(operations)

    monkeypatch.setattr(guard, "clock", clock)
    monkeypatch.setattr(guard.store, "batch", spy)
    login = start_login(demo)
    doc = answer(demo, school, login)
    expires = _when(seconds=lifetime.total_seconds())
    _valid_until(expires)(doc)
    accepted_for(demo, login, deliver(demo, login, encode(signed(doc, signer))))
    [(at, ttl)] = kept
    issued = _instant(assertion_of(doc).get("IssueInstant"))
    skew = demo.settings.saml.clock_skew_seconds
    max_age = demo.settings.login_ttl_seconds
    # Accepted while now < NotOnOrAfter + skew and now <= IssueInstant + max_age + skew.
    assert at + ttl > min(_instant(expires), issued + max_age) + skew
    assert at + ttl <= issued + max_age + skew + 1


# -- the school rolls its signing key ---------------------------------------------------------------


def _with_second_signing_key(metadata: str, cert_file: Path, *, first: bool) -> str:
    """The school's metadata with a second signing certificate next to its own (before it when
    `first`), as a school publishes during a key rollover."""
    root = etree.fromstring(metadata.encode())
    descriptor = root.find(f".//{{{MD}}}IDPSSODescriptor")
    assert descriptor is not None
    own = [
        key
        for key in descriptor.findall(f"{{{MD}}}KeyDescriptor")
        if key.get("use") in (None, "signing")
    ]
    assert own, "the demo school publishes a signing key"
    extra = copy.deepcopy(own[0])
    cert = extra.find(f".//{{{NS['ds']}}}X509Certificate")
    assert cert is not None
    pem = cert_file.read_text(encoding="ascii")
    cert.text = "".join(line for line in pem.splitlines() if "-----" not in line)
    if first:
        own[0].addprevious(extra)
    else:
        own[-1].addnext(extra)
    text = etree.tostring(root, encoding="unicode")
    assert isinstance(text, str)
    return text


@pytest.mark.parametrize("new_key_first", [True, False], ids=["new key first", "new key second"])
def test_either_of_the_schools_published_signing_keys_is_accepted(
    demo: LiveDemo, school: SchoolForger, tmp_path: Path, new_key_first: bool
) -> None:
    """Both keys of a school in rollover verify, whichever the metadata lists first; a key it
    does not publish still does not."""
    registry = demo.registry
    (entry,) = registry.schools_by_idp(demo.school_entity_id)
    original = registry.school_metadata()[demo.school_entity_id]
    key, cert = _key_pair(tmp_path, "school-next")
    next_key = SchoolForger(
        demo.school_entity_id, key, cert, demo.broker.saml_entities.sp_metadata()
    )
    registry.update_school_metadata(
        entry.id, _with_second_signing_key(original, cert, first=new_key_first)
    )
    try:
        for forger in (school, next_key):
            login = start_login(demo)
            page = deliver(demo, login, forged(demo, forger, login))
            accepted_for(demo, login, page)
    finally:
        registry.update_school_metadata(entry.id, original)
    login = start_login(demo)
    page = deliver(demo, login, forged(demo, next_key, login))
    assert page.status == 400, "the rolled-back metadata no longer trusts the next key"


def test_a_key_of_another_type_listed_first_does_not_hide_the_schools_own(
    demo: LiveDemo, school: SchoolForger
) -> None:
    """A school moving from RSA to ECDSA lists an EC key before its RSA one: the RSA-signed
    Response still verifies (libxmlsec fails an EC key under an RSA signature with another
    error than a wrong RSA key, which once ended the search at the first key)."""
    registry = demo.registry
    (entry,) = registry.schools_by_idp(demo.school_entity_id)
    original = registry.school_metadata()[demo.school_entity_id]
    ec_cert = make_signer("p256").cert
    registry.update_school_metadata(
        entry.id, with_signing_certs(original, "IDPSSODescriptor", [ec_cert])
    )
    try:
        login = start_login(demo)
        page = deliver(demo, login, forged(demo, school, login))
        accepted_for(demo, login, page)
    finally:
        registry.update_school_metadata(entry.id, original)


# -- the same reads as pysaml2 ----------------------------------------------------------------------


def _instant(value: str | None) -> float:
    """pysaml2's own reading of a SAML instant, independent of the broker's `saml_epoch`."""
    assert value
    return float(calendar.timegm(str_to_time(value)))


def test_the_direct_route_reads_what_pysaml2s_route_read(
    demo: LiveDemo, school: SchoolForger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker's reader and pysaml2's own parse of the same signed message agree on all the
    identity is made of: NameID with its format and qualifiers, every attribute with its values,
    the authn context, session index, instants and assertion id. pysaml2 reads no successful
    Response in the broker any more; it is called here, in the test, as the reference."""
    login = start_login(demo)
    message = forged(
        demo,
        school,
        login,
        attributes={
            "givenName": ["Sanne"],
            "sn": ["Jansen"],
            "eduPersonAffiliation": ["student", "member"],
            "mail": ["  sanne@school.example  "],
        },
    )
    (entry,) = demo.registry.schools_by_idp(demo.school_entity_id)
    reads: list[assertion_reader.ReadResponse] = []
    original = assertion_reader.read_response

    def spy(*args: object, **kwargs: object) -> assertion_reader.ReadResponse:
        reads.append(original(*args, **kwargs))  # type: ignore[arg-type]
        return reads[-1]

    monkeypatch.setattr(assertion_reader, "read_response", spy)
    verified = demo.broker.saml_back.parse_response(message, entry, login.request_id)
    assert len(reads) == 1
    read = reads[0]

    client = demo.broker.saml_entities.client
    parsed = client.parse_authn_request_response(
        message, BINDING_HTTP_POST, outstanding={login.request_id: entry.id}
    )
    assertion = parsed.assertion
    name_id = assertion.subject.name_id
    assert read.name_id == assertion_reader.NameId(
        name_id.text, name_id.format, name_id.name_qualifier, name_id.sp_name_qualifier
    )
    assert read.attributes == tuple(
        assertion_reader.Attribute(
            attribute.name,
            attribute.friendly_name,
            tuple(value.text for value in attribute.attribute_value if value.text),
        )
        for statement in assertion.attribute_statement
        for attribute in statement.attribute
    )
    assert len(read.attributes) == 4, "the comparison covers attributes"
    [statement] = assertion.authn_statement
    assert read.authn_context == statement.authn_context.authn_context_class_ref.text.strip()
    assert read.session_index == statement.session_index
    assert read.authn_instant == _instant(statement.authn_instant)
    ends = statement.session_not_on_or_after
    assert read.session_not_on_or_after == (_instant(ends) if ends else None)
    assert read.assertion_id == assertion.id
    assert read.window.issued == _instant(assertion.issue_instant)
    # What the flow gets is made of those reads.
    handles = verified.identity.upstream_session
    assert handles["name_id"] == name_id.text
    assert handles["session_index"] == statement.session_index
    assert verified.identity.attributes["given_name"] == ("Sanne",)
    assert verified.identity.authn_context == read.authn_context
    assert verified.identity.session_ends == read.session_not_on_or_after
    assert verified.assertion_id == assertion.id


def test_pysaml2_parses_no_successful_response(
    demo: LiveDemo, school: SchoolForger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain Success logs in without the broker's pysaml2 client parsing anything (an
    encrypted one likewise: tests/security/test_saml_encrypted_assertions.py)."""

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("pysaml2 parsed a successful school response")

    monkeypatch.setattr(demo.broker.saml_entities.client, "parse_authn_request_response", refused)
    login = start_login(demo)
    page = deliver(demo, login, forged(demo, school, login))
    received = accepted_for(demo, login, page)
    assert received["name_id"]["value"] == demo.expected_pseudonym("sanne.jansen", "leermiddelen")


def test_a_refusal_on_the_direct_route_is_an_invalid_message(
    demo: LiveDemo, school: SchoolForger
) -> None:
    """Called directly, too: the reason code, and nothing about the message in the text."""
    login = start_login(demo)
    doc = etree.fromstring(base64.b64decode(forged(demo, school, login, sign=False)))
    (entry,) = demo.registry.schools_by_idp(demo.school_entity_id)
    with pytest.raises(InvalidMessage) as refused:
        demo.broker.saml_back.parse_response(encode(doc), entry, login.request_id)
    assert refused.value.code == "bad_signature"
