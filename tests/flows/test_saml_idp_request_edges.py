"""The broker as identity provider, at the edges of SAML core and the Web Browser SSO profile:
what an AuthnRequest may ask that the broker cannot honour, requests that are not what they
claim, and the shape of the Response it issues.

A real pysaml2 SP (its own key, metadata in the registry, AuthnRequestsSigned) asks through the
broker's routes, as in test_authn_requests.py; hostile variants are made from its own signed
messages. Each refusal is checked for its outcome: a signed SAML status to the ACS from the
metadata when the request was trusted, else a 4xx page and nothing sent to the service.
"""

from __future__ import annotations

import base64
import copy
import logging
import time
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

# pysaml2 was imported (its CFB warning caught) by test_authn_requests, imported first.
from saml2 import samlp
from saml2.saml import AuthnContextDeclRef
from saml2.samlp import RequestedAuthnContext

from broker.core.model import Service
from broker.core.ports import StoreOp, StoreReply
from broker.saml.firewall import SAMLP
from broker.saml.response_checks import BEARER
from broker.saml.response_checks import ENTITY_FORMAT as ENTITY
from broker.saml.xmlsig_policy import ECDSA_SHA256, RSA_SHA256, RSA_SHA512
from tests.flows.test_authn_requests import (
    CHAIN,
    DS,
    INVALID_NAMEID_POLICY,
    MD,
    NO_AUTHN_CONTEXT,
    NO_PASSIVE,
    REQUESTER,
    RESPONDER,
    SUCCESS,
    UID,
    ServiceSp,
    Setup,
    _answer_form,
    _assert_signed_error,
    _collect_pysaml2_temp_files,  # noqa: F401 (an autouse fixture: imported, it runs here too)
    _decoded,
    _forced,
    _key_pair,
    _school_answers,
    _status,
    _through_school,
    _with_session,
    assert_refused,
    registered_sp,
)
from tests.support.client import Browser, Page
from tests.support.forge import NS
from tests.support.live import PERSISTENT, SSO_COOKIE, LiveDemo, free_ports

SERVICE_ID = "saml-idp-edge-tests"

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def setup(demo: LiveDemo) -> Iterator[Setup]:
    sp = registered_sp(demo, SERVICE_ID, "IdP edge tests (test publisher)")
    yield Setup(demo, sp, sp)


@pytest.fixture(scope="module")
def session_browser(setup: Setup) -> Browser:
    return _with_session(setup)


def _send(
    setup: Setup, sp: ServiceSp, request: samlp.AuthnRequest, binding: str, *, sign: bool
) -> Page:
    """`request` by `binding` ("redirect" or "post") in a fresh browser."""
    if binding == "redirect":
        return Browser().get(sp.redirect_url(setup.sso_url, request, sign=sign))
    return Browser().post(setup.sso_url, sp.post_fields(request, sign=sign))


def _ask(setup: Setup, browser: Browser, request: samlp.AuthnRequest, relay: str = "") -> Page:
    return browser.get(setup.sp.redirect_url(setup.sso_url, request, relay, sign=True))


# -- 1. RequestedAuthnContext by declaration (core 3.3.2.2.1, 3.4.1) ---------------------------


def test_a_requested_context_by_declaration_is_answered_no_authn_context(
    setup: Setup, session_browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """`RequestedAuthnContext` with `AuthnContextDeclRef`s only: the broker has no
    declarations, so it cannot satisfy the request, and core 3.3.2.2.1 asks NoAuthnContext
    then. Until 2026-11-30 the declaration was ignored and an assertion issued (from the SSO
    session here) as if nothing had been asked."""
    requested = RequestedAuthnContext(
        authn_context_decl_ref=[AuthnContextDeclRef(text="urn:example:decl:smartcard")],
        comparison="exact",
    )
    request = setup.sp.authn_request(setup.sso_url, requested_authn_context=requested)
    page = _ask(setup, session_browser, request, "decl")
    assert page.status == 403, page.status
    assert "refused code=assurance_not_met " in caplog.text
    fields = _answer_form(page, setup.sp.acs[1])
    assert fields["RelayState"] == "decl"
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_AUTHN_CONTEXT))


# -- 2. NameIDPolicy SPNameQualifier (core 3.4.1.1) --------------------------------------------


def _with_policy(setup: Setup, sp_name_qualifier: str) -> samlp.AuthnRequest:
    request = setup.sp.authn_request(setup.sso_url)
    request.name_id_policy = samlp.NameIDPolicy(
        format=PERSISTENT, sp_name_qualifier=sp_name_qualifier, allow_create="true"
    )
    return request


def test_a_name_id_in_another_services_namespace_is_answered_invalid_name_id_policy(
    setup: Setup, session_browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """`SPNameQualifier` asks for the identifier in another service provider's (or an
    affiliation's) namespace. The broker makes identifiers for the requester only, so it
    cannot satisfy the policy: InvalidNameIDPolicy. Until 2026-11-30 the qualifier was not
    read and the requester's own NameID came back, qualified otherwise than asked."""
    request = _with_policy(setup, "https://other-publisher.example/metadata")
    page = _ask(setup, session_browser, request, "other-ns")
    assert page.status == 400, page.status
    assert "refused code=invalid_nameid_policy " in caplog.text
    fields = page.form(setup.sp.acs[1]).fields
    _assert_signed_error(
        setup, fields, request.id, setup.sp.acs[1], (REQUESTER, INVALID_NAMEID_POLICY)
    )


def test_a_name_id_policy_naming_the_requester_itself_is_answered(
    setup: Setup, session_browser: Browser
) -> None:
    request = _with_policy(setup, setup.sp.entity_id)
    page = _ask(setup, session_browser, request)
    accepted = setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], request.id)
    name_id = accepted.assertion.subject.name_id
    assert name_id.format == PERSISTENT
    assert name_id.sp_name_qualifier == setup.sp.entity_id


# -- 3. Issuer Format (profiles 4.1.4.1) -------------------------------------------------------


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_an_issuer_of_another_format_than_entity_is_refused(
    setup: Setup, binding: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Profiles 4.1.4.1: the request's Issuer Format "MUST be omitted or have a value of
    ...:entity". A persistent name that happens to equal a service's entity id is not that
    service (the same rule the broker holds the schools' Issuers to). Until 2026-11-30 the
    Format was not read."""
    request = setup.sp.authn_request(setup.sso_url)
    request.issuer.format = PERSISTENT
    page = _send(setup, setup.sp, request, binding, sign=True)
    assert_refused(setup, page, caplog, "issuer_format")


def test_an_issuer_with_the_entity_format_is_accepted(
    setup: Setup, session_browser: Browser
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    request.issuer.format = ENTITY
    page = _ask(setup, session_browser, request)
    setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], request.id)


# -- 4. IsPassive and ForceAuthn together (core 3.4.1) -----------------------------------------


def test_passive_and_forced_together_is_answered_no_passive_even_with_a_session(
    setup: Setup, session_browser: Browser
) -> None:
    """Core 3.4.1: with both true the IdP must not authenticate freshly unless IsPassive can
    be met; the broker cannot authenticate without the school's pages, so NoPassive at once."""
    request = setup.sp.authn_request(setup.sso_url, is_passive="true", force_authn="true")
    page = _ask(setup, session_browser, request, "both")
    assert len(page.visited) == 1 and "data-autosubmit" in page.text
    fields = _answer_form(page, setup.sp.acs[1])
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_PASSIVE))


# -- 5. Signature wrapping on a POST-binding AuthnRequest -------------------------------------


def _signed_post_xml(setup: Setup, request: samlp.AuthnRequest) -> etree._Element:
    fields = setup.sp.post_fields(request, sign=True)
    return etree.fromstring(base64.b64decode(fields["SAMLRequest"]))


def _wrapped(original: etree._Element, variant: str) -> etree._Element:
    """An evil request (here only ForceAuthn, which would pass every other check) around or
    beside the signed original; the signature itself is the original's, unchanged."""
    evil = copy.deepcopy(original)
    evil.set("ForceAuthn", "true")
    signature = original.find(f"{{{DS}}}Signature")
    assert signature is not None
    extensions = etree.Element(f"{{{SAMLP}}}Extensions")
    if variant == "signature_moved":
        # The evil root has its own ID and the original's signature; the original sits in
        # Extensions, unsigned now, so only the moved signature names its ID.
        evil.set("ID", "_evil")
        kept = copy.deepcopy(original)
        kept.remove(kept.find(f"{{{DS}}}Signature"))
        extensions.append(kept)
    elif variant == "same_id":
        # The evil root keeps the original's ID and signature; the signed original rides along.
        extensions.append(copy.deepcopy(original))
    elif variant == "fresh_id_inside":
        # The evil root keeps ID and signature, the original moves in with an ID of its own.
        kept = copy.deepcopy(original)
        kept.set("ID", "_kept")
        kept.remove(kept.find(f"{{{DS}}}Signature"))
        extensions.append(kept)
    # Extensions come after the Issuer and the Signature (core 3.2.1).
    anchor = evil.find(f"{{{DS}}}Signature")
    assert anchor is not None
    anchor.addnext(extensions)
    return evil


# The firewall names each: a signature whose reference is not its parent's ID; an ID twice;
# and a signature over the changed root fails its digest.
REFUSED_AS = {
    "signature_moved": "reference_not_parent",
    "same_id": "duplicate_id",
    "fresh_id_inside": "bad_signature",
}


@pytest.mark.parametrize("variant", list(REFUSED_AS))
def test_a_wrapped_post_request_is_refused(
    setup: Setup, variant: str, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    original = _signed_post_xml(setup, request)
    # Control: the signed original itself is taken.
    control = Browser().post(
        setup.sso_url, {"SAMLRequest": base64.b64encode(etree.tostring(original)).decode()}
    )
    assert control.status == 200 and setup.demo.shows_discovery(control), control.text[:300]
    evil = _wrapped(original, variant)
    page = Browser().post(
        setup.sso_url, {"SAMLRequest": base64.b64encode(etree.tostring(evil)).decode()}
    )
    assert 400 <= page.status < 500, (page.status, page.text[:300])
    assert "SAMLResponse" not in page.text
    assert SSO_COOKIE not in page.cookies_set
    assert f"refused code={REFUSED_AS[variant]} " in caplog.text


# -- 6. Redirect SigAlg that is not the algorithm of the signature -----------------------------


@pytest.mark.parametrize("claimed", [RSA_SHA512, ECDSA_SHA256])
def test_a_redirect_sigalg_other_than_the_signatures_is_refused(
    setup: Setup, claimed: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Signed RSA-SHA256 over octets that name another (allowed) SigAlg: the claimed
    algorithm decides the verification, which then fails."""
    request = setup.sp.authn_request(setup.sso_url)
    deflated = zlib.compress(str(request).encode())[2:-4]
    args = {"SAMLRequest": base64.b64encode(deflated).decode(), "SigAlg": claimed}
    octets = "&".join(urlencode({k: v}) for k, v in args.items()).encode()
    key = serialization.load_pem_private_key(setup.sp.key_file.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    args["Signature"] = base64.b64encode(
        key.sign(octets, padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    page = Browser().get(f"{setup.sso_url}?{urlencode(args)}")
    assert_refused(setup, page, caplog, "bad_signature")


# -- 7. xs:boolean "1" in the service's metadata (metadata 2.4.4, 2.2.3) ----------------------


def _sp_with_metadata_booleans(demo: LiveDemo, service_id: str) -> ServiceSp:
    """A service whose metadata writes its booleans as "1", the other lexical form of
    xs:boolean true: AuthnRequestsSigned="1", and isDefault="1" on the second ACS."""
    base_url = f"http://localhost:{free_ports(1)}"
    key, cert = _key_pair(demo.directory / "peers", service_id)
    sp = ServiceSp(base_url, key, cert, demo.broker.saml_entities.idp_metadata(), signs=True)
    metadata = (
        sp.metadata()
        .replace('AuthnRequestsSigned="true"', 'AuthnRequestsSigned="1"')
        .replace('isDefault="true"', 'isDefault="1"')
    )
    assert 'AuthnRequestsSigned="1"' in metadata and 'isDefault="1"' in metadata
    if demo.registry.service(service_id) is None:
        demo.registry.add_service(Service(service_id, service_id, sp.entity_id, CHAIN), metadata)
    return sp


@pytest.fixture(scope="module")
def one_for_true(demo: LiveDemo) -> ServiceSp:
    return _sp_with_metadata_booleans(demo, "saml-idp-edge-tests-booleans")


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_authn_requests_signed_one_requires_a_signature(
    setup: Setup, one_for_true: ServiceSp, binding: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Until 2026-11-30 only "true" was read as true: a service whose metadata said
    AuthnRequestsSigned="1" had its unsigned requests taken, anyone's included."""
    sp = one_for_true
    request = sp.authn_request(setup.sso_url)
    page = _send(setup, sp, request, binding, sign=False)
    assert_refused(setup, page, caplog, "request_unsigned")
    # Control: signed, it is taken.
    page = Browser().get(sp.redirect_url(setup.sso_url, request, sign=True))
    assert page.status == 200 and setup.demo.shows_discovery(page), page.text[:300]


def test_an_acs_marked_is_default_one_is_the_default(setup: Setup, one_for_true: ServiceSp) -> None:
    sp = one_for_true
    browser = Browser()
    request = sp.authn_request(setup.sso_url, acs="none")
    page = browser.get(sp.redirect_url(setup.sso_url, request, sign=True))
    fields = _answer_form(_through_school(setup, browser, page), sp.default_acs)
    sp.accept(fields["SAMLResponse"], request.id)


# -- 8. The Response and Assertion the broker issues (profiles 4.1.4.2) ------------------------


def _epoch(value: str | None) -> float:
    assert value is not None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def test_the_issued_response_has_the_shape_the_profile_asks(
    setup: Setup, session_browser: Browser
) -> None:
    request = setup.sp.authn_request(setup.sso_url)
    before = time.time()
    page = _ask(setup, session_browser, request)
    acs = setup.sp.acs[1]
    response = _decoded(_answer_form(page, acs)["SAMLResponse"])
    idp = setup.demo.idp_entity_id
    assert _status(response) == (SUCCESS, None)
    assert response.get("Destination") == acs
    assert response.get("InResponseTo") == request.id
    issuers = response.findall("saml:Issuer", NS) + response.findall(
        "saml:Assertion/saml:Issuer", NS
    )
    assert [(i.text, i.get("Format")) for i in issuers] == [(idp, ENTITY), (idp, ENTITY)]
    assertions = response.findall(".//saml:Assertion", NS)
    assert len(assertions) == 1
    assertion = assertions[0]
    # Issued now, by the broker's clock, Response and Assertion alike: a service that holds
    # IssueInstant to a few minutes (Shibboleth SP: its clock skew plus 60 s) takes it.
    issued = _epoch(response.get("IssueInstant"))
    assert int(before) <= issued <= time.time()
    assert assertion.get("IssueInstant") == response.get("IssueInstant")
    assert response.find(f"{{{DS}}}Signature") is not None
    assert assertion.find(f"{{{DS}}}Signature") is not None
    name_id = assertion.find("saml:Subject/saml:NameID", NS)
    assert name_id is not None
    assert name_id.get("NameQualifier") == idp
    assert name_id.get("SPNameQualifier") == setup.sp.entity_id
    confirmations = assertion.findall("saml:Subject/saml:SubjectConfirmation", NS)
    assert [c.get("Method") for c in confirmations] == [BEARER]
    data = confirmations[0].find("saml:SubjectConfirmationData", NS)
    assert data is not None
    assert data.get("Recipient") == acs
    assert data.get("InResponseTo") == request.id
    # Profiles 4.1.4.2: a bearer confirmation has a NotOnOrAfter and no NotBefore.
    assert data.get("NotBefore") is None
    lifetime = setup.demo.settings.saml.assertion_lifetime_seconds
    assert before < _epoch(data.get("NotOnOrAfter")) <= time.time() + lifetime + 1
    conditions = assertion.find("saml:Conditions", NS)
    assert conditions is not None
    assert _epoch(conditions.get("NotBefore")) <= time.time()
    assert before < _epoch(conditions.get("NotOnOrAfter")) <= time.time() + lifetime + 1
    audiences = conditions.findall("saml:AudienceRestriction/saml:Audience", NS)
    assert [a.text for a in audiences] == [setup.sp.entity_id]
    statements = assertion.findall("saml:AuthnStatement", NS)
    assert len(statements) == 1
    statement = statements[0]
    assert _epoch(statement.get("AuthnInstant")) <= time.time()
    assert statement.get("SessionIndex")
    assert statement.findtext("saml:AuthnContext/saml:AuthnContextClassRef", None, NS)


# -- 9. The ACS URL checked again at the answer (profiles 4.1.4.1, 4.1.4.5) --------------------


def _drop_acs(demo: LiveDemo, service_id: str, sp: ServiceSp, acs_url: str) -> None:
    """The publisher removes `acs_url` from its metadata (registered as the operator would)."""
    doc = etree.fromstring(sp.metadata().encode())
    for acs in doc.iter(f"{{{MD}}}AssertionConsumerService"):
        if acs.get("Location") == acs_url:
            parent = acs.getparent()
            assert parent is not None
            parent.remove(acs)
    changed = etree.tostring(doc).decode()
    assert acs_url not in changed
    demo.registry.update_service_metadata(service_id, changed)


def _assert_nothing_sent_to(page: Page, sp: ServiceSp) -> None:
    assert page.status == 400, (page.status, page.text[:500])
    assert not any(form.action.startswith(sp.base_url) for form in page.forms)
    assert "SAMLResponse" not in page.text
    assert sp.acs[1] not in page.text


def test_an_acs_removed_from_the_metadata_during_the_login_gets_no_assertion(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    """The request named acs-one, then the publisher removed it while the student was at the
    school: the answer is not sent there (nor anywhere else), the student's page says so in
    their language, no SSO session stays; the log says the URL left during the login."""
    service_id = "idp-edge-acs-dropped"
    sp = registered_sp(demo, service_id, "ACS dropped (test publisher)")
    setup = Setup(demo, sp, sp)
    browser = Browser("nl")
    request = sp.authn_request(setup.sso_url)  # names acs-one by URL
    page = browser.get(sp.redirect_url(setup.sso_url, request, "r", sign=True))
    if demo.shows_discovery(page):
        page = demo.choose_school(browser, page)
    _drop_acs(demo, service_id, sp, sp.acs[1])
    with caplog.at_level(logging.INFO, logger="broker"):
        page = demo.pick(browser, page, UID)
    _assert_nothing_sent_to(page, sp)
    assert "Het inlogbericht kon niet worden gecontroleerd." in page.text
    assert "refused code=acs_not_in_metadata " in caplog.text
    assert "left the metadata during the login" in caplog.text
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
    # The ACS the metadata still lists is answered as before.
    request = sp.authn_request(setup.sso_url, acs="2")
    other = Browser()
    page = _through_school(setup, other, _ask(setup, other, request))
    sp.accept(_answer_form(page, sp.acs[2])["SAMLResponse"], request.id)


def test_an_error_answer_is_not_sent_to_an_acs_removed_during_the_login(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    """A refusal at the end of the login (a school that ignored ForceAuthn: Responder/
    AuthnFailed, carried by the student's page) would send a signed error Response to the
    ACS: not to one that left the metadata meanwhile. The page says why, with no form."""
    service_id = "idp-edge-acs-dropped-error"
    sp = registered_sp(demo, service_id, "ACS dropped, error (test publisher)")
    setup = Setup(demo, sp, sp)
    browser = _with_session(setup)
    _, to_school = _forced(setup, browser)
    _drop_acs(demo, service_id, sp, sp.acs[1])
    with caplog.at_level(logging.INFO, logger="broker"):
        page = _school_answers(setup, browser, to_school, datetime.now(UTC) - timedelta(hours=1))
    _assert_nothing_sent_to(page, sp)
    assert "refused code=acs_not_in_metadata " in caplog.text
    assert "refused code=fresh_login_ignored " not in caplog.text


# -- 10. A RelayState that is not UTF-8 (bindings 3.4.3, 3.5.3) --------------------------------

NOT_UTF8 = b"%FF%FEab"  # form-encoded octets FF FE 61 62: not UTF-8
RELAY_STATE_INVALID_NL = "Er ging iets mis met dit verzoek. Vertel het aan de ICT-contactpersoon"


def _signed_redirect_with_raw_relay_state(setup: Setup, raw_relay: bytes) -> str:
    """A Redirect request signed over the RelayState octets as given (SAML bindings 3.4.4.1)."""
    request = setup.sp.authn_request(setup.sso_url)
    deflated = zlib.compress(str(request).encode())[2:-4]
    octets = b"&".join(
        (
            urlencode({"SAMLRequest": base64.b64encode(deflated).decode()}).encode(),
            b"RelayState=" + raw_relay,
            urlencode({"SigAlg": RSA_SHA256}).encode(),
        )
    )
    key = serialization.load_pem_private_key(setup.sp.key_file.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signature = key.sign(octets, padding.PKCS1v15(), hashes.SHA256())
    query = octets + b"&" + urlencode({"Signature": base64.b64encode(signature)}).encode()
    return f"{setup.sso_url}?{query.decode()}"


def _send_not_utf8(setup: Setup, binding: str) -> requests.Response:
    if binding == "redirect":
        url = _signed_redirect_with_raw_relay_state(setup, NOT_UTF8)
        page = Browser("nl").get(url, verbatim=True, follow=False)
        return page.response
    request = setup.sp.authn_request(setup.sso_url)
    saml_request = setup.sp.post_fields(request, sign=True)["SAMLRequest"]
    headers = {"Accept-Language": "nl"}
    if binding == "post":
        body = urlencode({"SAMLRequest": saml_request}).encode() + b"&RelayState=" + NOT_UTF8
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return requests.post(setup.sso_url, data=body, headers=headers, timeout=10)
    parts: dict[str, tuple[None, bytes]] = {
        "SAMLRequest": (None, saml_request.encode()),
        "RelayState": (None, b"\xff\xfeab"),
    }
    return requests.post(setup.sso_url, files=parts, headers=headers, timeout=10)


@pytest.mark.parametrize("binding", ["redirect", "post", "post-multipart"])
def test_a_relay_state_that_is_not_utf8_is_refused_and_nothing_stored(
    setup: Setup, binding: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service must get its RelayState back octet for octet; one that is not UTF-8 text
    would come back changed (U+FFFD, or `%FF` as text), so the request is refused with a page
    in the student's language: nothing stored, nothing sent, no school asked."""
    store = setup.demo.broker.flow.store
    written: list[str] = []
    real_put, real_add, real_batch = store.put, store.add_if_absent, store.batch

    def put(key: str, value: bytes, ttl_seconds: int) -> None:
        written.append(key)
        real_put(key, value, ttl_seconds)

    def add_if_absent(key: str, value: bytes, ttl_seconds: int) -> bool:
        written.append(key)
        return real_add(key, value, ttl_seconds)

    def batch(operations: Sequence[StoreOp]) -> list[StoreReply]:
        written.extend(op.key for op in operations)
        return real_batch(operations)

    monkeypatch.setattr(store, "put", put)
    monkeypatch.setattr(store, "add_if_absent", add_if_absent)
    monkeypatch.setattr(store, "batch", batch)
    with caplog.at_level(logging.INFO, logger="broker"):
        response = _send_not_utf8(setup, binding)
    assert response.status_code == 400, response.text[:500]
    assert "Location" not in response.headers
    assert RELAY_STATE_INVALID_NL in response.text
    assert "SAMLResponse" not in response.text
    assert "refused code=relay_state_invalid " in caplog.text
    assert written == []


@pytest.mark.parametrize("binding", ["redirect", "post"])
def test_a_relay_state_with_percent_text_is_echoed_as_that_text(
    setup: Setup, session_browser: Browser, binding: str
) -> None:
    """The control: `%FF%FEab` sent as text (its `%` encoded) is UTF-8 and comes back as sent."""
    text = NOT_UTF8.decode()
    request = setup.sp.authn_request(setup.sso_url)
    if binding == "redirect":
        page = _ask(setup, session_browser, request, text)
    else:
        page = session_browser.post(setup.sso_url, setup.sp.post_fields(request, text, sign=True))
    fields = _answer_form(page, setup.sp.acs[1])
    assert fields["RelayState"] == text
    setup.sp.accept(fields["SAMLResponse"], request.id)
