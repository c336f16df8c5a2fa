"""SAML core conformance of the broker as identity provider, end to end against the live demo.

A real pysaml2 SP (its own key and metadata, an SLO endpoint) asks; the broker answers through its
routes; the SP's library reads the answer and checks its signatures. What is checked:

- `RequestedAuthnContext Comparison` (core 3.3.2.2.1) on the configured order of the levels;
- every refusal of a passive request goes back to the service at once (core 3.4.1);
- a `Subject` and `ProxyCount="0"` in the request are answered with a SAML status, at once;
- `AuthnContextClassRef` is `unspecified` when nobody said how the student logged in;
- a LogoutRequest names the NameID exactly as the assertion did, qualifiers included.

The school is the demo's SAML IdP, or (for another answer than a password login) a response
signed with its key (tests/support/forge.py), or a forged OpenID provider.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any
from urllib.parse import urljoin

import pytest
from cryptography.exceptions import InvalidSignature
from lxml import etree

from broker.core.model import Declaration, OidcUpstream, School
from broker.login.participants import Participant
from tests.flows.test_authn_requests import (
    CHAIN,
    INVALID_NAMEID_POLICY,
    REQUEST_UNSUPPORTED,
    REQUESTER,
    RESPONDER,
    SUCCESS,
    UID,
    Setup,
    _answer_form,
    _assert_signed_error,
    _collect_pysaml2_temp_files,  # noqa: F401 (an autouse fixture: imported, it runs here too)
    _decoded,
    _status,
    _through_school,
    registered_sp,
)
from tests.support.client import Browser, Page
from tests.support.forge import (
    NS,
    SchoolForger,
    authn_request_id,
    redirect_message,
    verify_redirect_signature,
)
from tests.support.live import SSO_COOKIE, LiveDemo, free_ports, serve_app
from tests.support.logout import frame_urls
from tests.support.oidc_forge import ForgeProvider, Forgery
from tests.support.saml_workers import demo_school_forger

with warnings.catch_warnings():
    # pysaml2 7.5.5 touches cryptography's deprecated CFB mode at import.
    warnings.simplefilter("ignore")
    from saml2 import BINDING_HTTP_REDIRECT, samlp
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, AuthnContextClassRef, NameID, Subject
    from saml2.samlp import GetComplete, IDPEntry, IDPList, RequestedAuthnContext, Scoping

SERVICE_ID = "saml-conformance-tests"
PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
REFEDS_SFA = "https://refeds.org/profile/sfa"
REFEDS_MFA = "https://refeds.org/profile/mfa"
UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
NO_AUTHN_CONTEXT = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
PROXY_COUNT_EXCEEDED = "urn:oasis:names:tc:SAML:2.0:status:ProxyCountExceeded"
FORGE_SCHOOL_ID = "99QS00"
FORGE_CLIENT_ID = "ketenbroker-at-conformance-forge"
FORGE_CLIENT_SECRET = "conformance-forge-secret-for-tests"

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def setup(demo: LiveDemo) -> Iterator[Setup]:
    """A pysaml2 SP of its own, with an SLO endpoint (HTTP-Redirect) in its metadata."""
    sp = registered_sp(demo, SERVICE_ID, "Conformance tests (test publisher)", slo=True)
    yield Setup(demo, sp, sp)


@pytest.fixture(scope="module")
def school(setup: Setup) -> SchoolForger:
    return demo_school_forger(setup.demo)


def _scoping(entity_id: str, **extra: Any) -> Scoping:
    return Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=entity_id)]), **extra)


def _asking(*references: str, comparison: str) -> RequestedAuthnContext:
    return RequestedAuthnContext(
        authn_context_class_ref=[AuthnContextClassRef(text=ref) for ref in references],
        comparison=comparison,
    )


def _class_ref(saml_response: str) -> str:
    found = _decoded(saml_response).findtext(
        "saml:Assertion/saml:AuthnStatement/saml:AuthnContext/saml:AuthnContextClassRef", None, NS
    )
    assert isinstance(found, str)
    return found


@dataclass
class AtTheSchool:
    """A login the broker sent on to the demo school: the school's turn to answer."""

    browser: Browser
    request: samlp.AuthnRequest
    location: str  # the AuthnRequest to the school, a Redirect-binding URL
    upstream_id: str
    login_id: str
    asked: list[str]  # the class references the school was asked for


def _to_the_school(setup: Setup, **extra: Any) -> AtTheSchool:
    demo = setup.demo
    scoping = extra.pop("scoping", None) or _scoping(demo.school_entity_id)
    request = setup.sp.authn_request(setup.sso_url, scoping=scoping, **extra)
    browser = Browser()
    first = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True), follow=False)
    location = first.location or ""
    assert location.startswith(f"{demo.school_url}/sso"), (first.status, first.text[:300])
    xml, params = redirect_message(location)
    asked = etree.fromstring(xml).findall(
        "samlp:RequestedAuthnContext/saml:AuthnContextClassRef", NS
    )
    return AtTheSchool(
        browser,
        request,
        location,
        authn_request_id(location),
        params["RelayState"],
        [ref.text or "" for ref in asked],
    )


def _school_answers(setup: Setup, school: SchoolForger, login: AtTheSchool, class_ref: str) -> Page:
    """The school's signed answer (a login of `class_ref`), carried to the broker's ACS."""
    demo = setup.demo

    def with_context(response: samlp.Response) -> None:
        statement = response.assertion.authn_statement[0]
        statement.authn_context.authn_context_class_ref.text = class_ref

    answer = school.response(
        in_response_to=login.upstream_id,
        destination=demo.acs_url,
        audience=demo.sp_entity_id,
        subject=demo.school_subject(UID),
        tamper=with_context,
    )
    return login.browser.post(demo.acs_url, {"SAMLResponse": answer, "RelayState": login.login_id})


# -- A. RequestedAuthnContext Comparison ----------------------------------------------------------


REFUSED = "NoAuthnContext"


@pytest.mark.parametrize(
    ("asking", "comparison", "school_asked", "school_did", "assertion_says"),
    [
        # At least a password login: MFA will do, and the assertion says MFA. Any level the
        # broker knows will do, so the school is asked for none (assurance.school_request).
        (PASSWORD_PROTECTED, "minimum", [], REFEDS_MFA, REFEDS_MFA),
        # What python3-saml asks by default: an MFA login is not that, and the broker does not
        # claim it was (the service should ask `minimum`).
        (PASSWORD_PROTECTED, "exact", [PASSWORD_PROTECTED], REFEDS_MFA, REFUSED),
        # One level, two names: asked exactly for REFEDS SFA, the assertion says REFEDS SFA
        # whichever of the two the school named.
        (REFEDS_SFA, "exact", [PASSWORD_PROTECTED], PASSWORD_PROTECTED, REFEDS_SFA),
        (PASSWORD_PROTECTED, "better", [REFEDS_MFA], PASSWORD_PROTECTED, REFUSED),
        (
            REFEDS_MFA,
            "maximum",
            [],
            PASSWORD_PROTECTED,
            PASSWORD_PROTECTED,
        ),
        # A login of no known level: the broker cannot tell it is at least a password login.
        (
            PASSWORD_PROTECTED,
            "minimum",
            [],
            "urn:example:ac:classes:retina-scan",
            REFUSED,
        ),
    ],
    ids=[
        "minimum_met_by_mfa",
        "exact_not_met_by_mfa",
        "exact_says_the_name_asked",
        "better_not_met",
        "maximum_met",
        "minimum_not_met_by_unknown",
    ],
)
def test_a_comparison_is_judged_on_the_order_of_the_levels(
    setup: Setup,
    school: SchoolForger,
    asking: str,
    comparison: str,
    school_asked: list[str],
    school_did: str,
    assertion_says: str,
) -> None:
    login = _to_the_school(setup, requested_authn_context=_asking(asking, comparison=comparison))
    assert login.asked == school_asked
    page = _school_answers(setup, school, login, school_did)
    fields = _answer_form(page, setup.sp.acs[1])
    if assertion_says == REFUSED:
        assert page.status == 403
        assert SSO_COOKIE not in login.browser.cookies(setup.demo.broker_url)
        _assert_signed_error(
            setup, fields, login.request.id, setup.sp.acs[1], (RESPONDER, NO_AUTHN_CONTEXT)
        )
        return
    accepted = setup.sp.accept(fields["SAMLResponse"], login.request.id)
    assert accepted.assertion.subject.name_id.text == setup.demo.expected_pseudonym(UID, CHAIN)
    assert _class_ref(fields["SAMLResponse"]) == assertion_says


def test_minimum_password_is_met_by_the_demo_schools_password_login(setup: Setup) -> None:
    login = _to_the_school(
        setup, requested_authn_context=_asking(PASSWORD_PROTECTED, comparison="minimum")
    )
    page = setup.demo.pick(login.browser, login.browser.get(login.location), UID)
    fields = _answer_form(page, setup.sp.acs[1])
    setup.sp.accept(fields["SAMLResponse"], login.request.id)
    assert _class_ref(fields["SAMLResponse"]) == PASSWORD_PROTECTED


def test_better_than_the_strongest_level_is_refused_at_the_request(setup: Setup) -> None:
    request = setup.sp.authn_request(
        setup.sso_url, requested_authn_context=_asking(REFEDS_MFA, comparison="better")
    )
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert page.status == 403 and len(page.visited) == 1
    fields = _answer_form(page, setup.sp.acs[1])
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], (RESPONDER, NO_AUTHN_CONTEXT))


# -- B. Every refusal of a passive request goes back at once -------------------------------------


def _assert_sent_at_once(page: Page, browser: Browser, setup: Setup) -> dict[str, str]:
    """Nothing shown to the student: one response, an auto-POST straight to the service."""
    assert page.status == 200, (page.status, page.text[:300])
    assert len(page.visited) == 1
    assert "data-autosubmit" in page.text
    assert "Error code:" not in page.text
    assert SSO_COOKIE not in browser.cookies(setup.demo.broker_url)
    return _answer_form(page, setup.sp.acs[1])


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        (
            {"name_id_format": NAMEID_FORMAT_EMAILADDRESS},
            (REQUESTER, INVALID_NAMEID_POLICY),
            "invalid_nameid_policy",
        ),
        (
            {"attribute_consuming_service_index": "9"},
            (REQUESTER, REQUEST_UNSUPPORTED),
            "attribute_service_unknown",
        ),
        (
            {"requested_authn_context": _asking("urn:example:ac:retina", comparison="exact")},
            (RESPONDER, NO_AUTHN_CONTEXT),
            "assurance_not_met",
        ),
    ],
    ids=["nameid_policy", "attribute_service", "authn_context"],
)
def test_a_refused_passive_request_is_answered_at_once_not_with_a_page(
    setup: Setup,
    extra: dict[str, Any],
    status: tuple[str, str],
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = setup.sp.authn_request(setup.sso_url, is_passive="true", **extra)
    browser = Browser()
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, "quiet", sign=True))
    fields = _assert_sent_at_once(page, browser, setup)
    assert fields["RelayState"] == "quiet"
    _assert_signed_error(setup, fields, request.id, setup.sp.acs[1], status)
    assert _decoded(fields["SAMLResponse"]).findtext("samlp:Status/samlp:StatusMessage", None, NS)
    assert f"refused code={code} " in caplog.text


def test_the_same_refusals_of_an_active_request_show_the_student_a_page(setup: Setup) -> None:
    # Control: only passive requests skip the page (an e-mail NameIDPolicy, actively).
    request = setup.sp.authn_request(setup.sso_url, name_id_format=NAMEID_FORMAT_EMAILADDRESS)
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert page.status == 400 and "data-autosubmit" not in page.text
    assert "Error code:" in page.text


# -- C. Subject and ProxyCount="0" -----------------------------------------------------------------

NAMED_SUBJECT = "someone.else@school.example"


def _with_subject() -> Subject:
    return Subject(name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=NAMED_SUBJECT))


@pytest.mark.parametrize("with_session", [False, True], ids=["fresh", "sso_session"])
def test_a_request_naming_a_subject_is_answered_request_unsupported_at_once(
    setup: Setup, with_session: bool, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser()
    if with_session:
        # An SSO session does not answer it either: the broker cannot say who it is about.
        first = setup.sp.authn_request(setup.sso_url)
        page = browser.get(setup.sp.redirect_url(setup.sso_url, first, sign=True))
        page = _through_school(setup, browser, page)
        setup.sp.accept(_answer_form(page, setup.sp.acs[1])["SAMLResponse"], first.id)
    request = setup.sp.authn_request(setup.sso_url, subject=_with_subject())
    assert etree.fromstring(str(request).encode()).find("saml:Subject", NS) is not None
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, "named", sign=True))
    assert page.status == 200 and len(page.visited) == 1 and "data-autosubmit" in page.text
    fields = _answer_form(page, setup.sp.acs[1])
    assert fields["RelayState"] == "named"
    _assert_signed_error(
        setup, fields, request.id, setup.sp.acs[1], (REQUESTER, REQUEST_UNSUPPORTED)
    )
    response = base64.b64decode(fields["SAMLResponse"]).decode()
    message = _decoded(fields["SAMLResponse"]).findtext(
        "samlp:Status/samlp:StatusMessage", None, NS
    )
    assert message == "subject_unsupported"
    # Nothing of the named subject comes back, nor goes into the log.
    assert NAMED_SUBJECT not in response
    assert NAMED_SUBJECT not in caplog.text
    assert "refused code=subject_unsupported " in caplog.text


def test_proxy_count_zero_is_answered_proxy_count_exceeded_at_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(
        setup.sso_url, scoping=_scoping(setup.demo.school_entity_id, proxy_count="0")
    )
    browser = Browser()
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    fields = _assert_sent_at_once(page, browser, setup)
    _assert_signed_error(
        setup, fields, request.id, setup.sp.acs[1], (RESPONDER, PROXY_COUNT_EXCEEDED)
    )
    assert "refused code=proxy_count_exceeded " in caplog.text


def _school_scoping(location: str) -> etree._Element | None:
    xml, _ = redirect_message(location)
    return etree.fromstring(xml).find("samlp:Scoping", NS)


@pytest.mark.parametrize(("allowed", "passed_on"), [("1", "0"), ("3", "2")])
def test_a_proxy_count_is_passed_on_to_the_school_less_one(
    setup: Setup, allowed: str, passed_on: str
) -> None:
    """Core 3.4.1.5.1: a proxying IdP's own request carries the ProxyCount less one, so a
    school that would proxy further (a hub behind it) keeps to the service's limit."""
    login = _to_the_school(
        setup, scoping=_scoping(setup.demo.school_entity_id, proxy_count=allowed)
    )
    scoping = _school_scoping(login.location)
    assert scoping is not None and scoping.get("ProxyCount") == passed_on
    # Beside it the service's IDPList, passed on (core 3.4.1.5.1).
    entries = scoping.findall("samlp:IDPList/samlp:IDPEntry", NS)
    assert [e.get("ProviderID") for e in entries] == [setup.demo.school_entity_id]


def test_the_service_idp_list_is_passed_on_to_the_school_unchanged(setup: Setup) -> None:
    """Core 3.4.1.5.1: "MUST also contain an <IDPList> ... MUST NOT remove any". Every entry
    as sent (names and locations too), in order, and its GetComplete; no ProxyCount where the
    service set none and no RequesterID (docs/saml-profile.md, "Deviations", says why)."""
    demo = setup.demo
    entries = [
        IDPEntry(provider_id="https://idp.elders.example/", name="Elders IdP"),
        IDPEntry(provider_id=demo.school_entity_id, name="Demo school", loc=demo.school_url),
    ]
    listed = IDPList(idp_entry=entries, get_complete=GetComplete(text="https://list.example/"))
    scoping = _school_scoping(_to_the_school(setup, scoping=Scoping(idp_list=listed)).location)
    assert scoping is not None
    assert scoping.get("ProxyCount") is None
    assert scoping.find("samlp:RequesterID", NS) is None
    sent = [dict(e.attrib) for e in scoping.iterfind("samlp:IDPList/samlp:IDPEntry", NS)]
    assert sent == [
        {"ProviderID": "https://idp.elders.example/", "Name": "Elders IdP"},
        {"ProviderID": demo.school_entity_id, "Name": "Demo school", "Loc": demo.school_url},
    ]
    complete = scoping.findtext("samlp:IDPList/samlp:GetComplete", namespaces=NS)
    assert complete == "https://list.example/"


@pytest.mark.parametrize(("count", "refused"), [(100, False), (101, True)])
def test_an_idp_list_over_100_entries_is_answered_request_unsupported_at_once(
    setup: Setup, caplog: pytest.LogCaptureFixture, count: int, refused: bool
) -> None:
    """All of it would go on to the school (none may be removed), in its Redirect URL."""
    demo = setup.demo
    entries = [IDPEntry(provider_id=demo.school_entity_id)] + [
        IDPEntry(provider_id=f"https://idp{n}.example/") for n in range(count - 1)
    ]
    request = setup.sp.authn_request(
        setup.sso_url, scoping=Scoping(idp_list=IDPList(idp_entry=entries))
    )
    browser = Browser()
    page = browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True), follow=False)
    if not refused:
        scoping = _school_scoping(page.location or "")
        assert scoping is not None
        assert len(scoping.findall("samlp:IDPList/samlp:IDPEntry", NS)) == 100
        return
    fields = _assert_sent_at_once(page, browser, setup)
    _assert_signed_error(
        setup, fields, request.id, setup.sp.acs[1], (REQUESTER, REQUEST_UNSUPPORTED)
    )
    assert "refused code=idp_list_too_long " in caplog.text


def test_a_malformed_proxy_count_is_refused_as_a_malformed_request(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    request = setup.sp.authn_request(
        setup.sso_url, scoping=_scoping(setup.demo.school_entity_id, proxy_count="none")
    )
    page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    assert page.status == 400, page.status
    assert "SAMLResponse" not in page.text
    assert "refused code=invalid_message " in caplog.text


# -- D. AuthnContextClassRef when no level is known ------------------------------------------------


@pytest.fixture(scope="module")
def forge(setup: Setup) -> Iterator[ForgeProvider]:
    """A school on OpenID Connect whose provider says nothing about how the student logged in
    (no `acr`), unless a test makes it."""
    demo = setup.demo
    base_url = f"http://localhost:{free_ports(1)}"
    provider = ForgeProvider(
        base_url,
        FORGE_CLIENT_ID,
        FORGE_CLIENT_SECRET,
        demo.settings.oidc_callback_url(FORGE_SCHOOL_ID),
    )
    demo.servers.append(serve_app(base_url, provider.app()))
    upstream = OidcUpstream(base_url, FORGE_CLIENT_ID, FORGE_CLIENT_SECRET)
    demo.registry.add_school(
        School(
            FORGE_SCHOOL_ID,
            "Conformance forge school",
            base_url,
            subject_attribute="sub",
            oidc=upstream,
        ),
        "",
    )
    yield provider
    provider.forgery = Forgery()


@pytest.mark.parametrize(
    ("acr", "assertion_says"),
    [
        (None, UNSPECIFIED),  # the provider said nothing about how the student logged in
        (REFEDS_MFA, REFEDS_MFA),  # a level the configuration maps: its SAML name
        # An acr the configuration does not know says nothing the broker can pass on in SAML.
        ("urn:example:acr:something-local", UNSPECIFIED),
    ],
    ids=["no_acr", "mapped_acr", "unmapped_acr"],
)
def test_an_oidc_schools_login_reaches_a_saml_service_with_what_is_known(
    setup: Setup, forge: ForgeProvider, acr: str | None, assertion_says: str
) -> None:
    forge.forgery = Forgery(claims={"acr": acr} if acr else {})
    try:
        request = setup.sp.authn_request(setup.sso_url, scoping=_scoping(forge.issuer))
        page = Browser().get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    finally:
        forge.forgery = Forgery()
    saml_response = _answer_form(page, setup.sp.acs[1])["SAMLResponse"]
    setup.sp.accept(saml_response, request.id)
    assert _status(_decoded(saml_response)) == (SUCCESS, None)
    assert _class_ref(saml_response) == assertion_says


def test_an_oidc_school_is_named_by_its_issuer_where_it_releases_its_identity(
    setup: Setup, forge: ForgeProvider
) -> None:
    """Core 3.4.1.5.1 for a non-SAML school: a stable identifier of it, its issuer, as the
    AuthenticatingAuthority, where the school's policy releases school_id to the service."""
    sp = registered_sp(
        setup.demo,
        "conformance-oidc-school-named",
        "Conformance, OIDC school named (test publisher)",
        declarations=(Declaration("school_id", "Om de klas bij de school te vinden."),),
    )
    setup.demo.registry.set_policy(
        FORGE_SCHOOL_ID, "conformance-oidc-school-named", frozenset({"school_id"}), "test"
    )
    request = sp.authn_request(setup.sso_url, scoping=_scoping(forge.issuer))
    page = Browser().get(sp.redirect_url(setup.sso_url, request, sign=True))
    saml_response = _answer_form(page, sp.acs[1])["SAMLResponse"]
    sp.accept(saml_response, request.id)
    named = _decoded(saml_response).findall(".//saml:AuthnContext/saml:AuthenticatingAuthority", NS)
    assert [e.text for e in named] == [forge.issuer]


def test_a_saml_school_keeps_its_own_class_reference(setup: Setup, school: SchoolForger) -> None:
    login = _to_the_school(setup)
    assert login.asked == []
    page = _school_answers(setup, school, login, "urn:example:ac:classes:smartcard")
    fields = _answer_form(page, setup.sp.acs[1])
    setup.sp.accept(fields["SAMLResponse"], login.request.id)
    assert _class_ref(fields["SAMLResponse"]) == "urn:example:ac:classes:smartcard"


# -- E. The LogoutRequest names the assertion's NameID exactly ----------------------------------


def _name_id(xml: bytes, path: str) -> tuple[dict[str, str], str]:
    element = etree.fromstring(xml).find(path, NS)
    assert element is not None, path
    return dict(element.attrib), element.text or ""


def test_the_logout_request_names_the_assertions_name_id_exactly(setup: Setup) -> None:
    demo = setup.demo
    browser = Browser()
    request = setup.sp.authn_request(setup.sso_url)
    page = _through_school(
        setup, browser, browser.get(setup.sp.redirect_url(setup.sso_url, request, sign=True))
    )
    saml_response = _answer_form(page, setup.sp.acs[1])["SAMLResponse"]
    accepted = setup.sp.accept(saml_response, request.id)
    given = _name_id(base64.b64decode(saml_response), "saml:Assertion/saml:Subject/saml:NameID")
    assert set(given[0]) == {"Format", "NameQualifier", "SPNameQualifier"}

    # The student logs out on the broker's own page; the service is told in an iframe.
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    started = browser.submit(my_data, f"{demo.broker_url}/my-data/close")
    frames = frame_urls(started)
    assert len(frames) == 1, started.text
    frame = browser.get(
        urljoin(started.url, unescape(frames[0])),
        stop=lambda url: url.startswith(setup.sp.base_url),
    )
    location = frame.location or ""
    assert location.startswith(setup.sp.slo_url), (frame.status, frame.text[:300])
    xml, params = redirect_message(location)

    # Signed by the broker over the query (pysaml2 as an SP checks no Redirect signature of a
    # LogoutRequest, so the test does, with the broker's certificate) …
    cert_file = demo.directory / "keys" / "saml-signing.crt"
    verify_redirect_signature(location, cert_file)
    forged = location.replace("Signature=", "Signature=AAAA", 1)
    with pytest.raises(InvalidSignature):
        verify_redirect_signature(forged, cert_file)
    parsed = setup.sp.client.parse_logout_request(
        params["SAMLRequest"], BINDING_HTTP_REDIRECT, relay_state=params.get("RelayState")
    )
    assert parsed is not None
    # … and the NameID is the assertion's, attribute for attribute, value for value.
    assert _name_id(xml, "saml:NameID") == given
    name_id = parsed.message.name_id
    assertion_name_id = accepted.assertion.subject.name_id
    for attribute in ("text", "format", "name_qualifier", "sp_name_qualifier"):
        assert getattr(name_id, attribute) == getattr(assertion_name_id, attribute), attribute


def test_a_session_recorded_before_the_qualifier_was_kept_still_names_it(setup: Setup) -> None:
    """Handles written before `name_qualifier` was kept (a session older than this change):
    the IdP entity id, which every assertion of the broker carried there."""
    demo = setup.demo
    handles = {
        "name_id": "a" * 64,
        "name_id_format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "sp_name_qualifier": setup.sp.entity_id,
        "session_index": "_" + "b" * 40,
        "sp_entity_id": setup.sp.entity_id,
    }
    outbound = demo.broker.saml_service_logout.front_channel(
        "conformance-run", 0, Participant(SERVICE_ID, "saml", handles)
    )
    xml, _ = redirect_message(outbound.url)
    attributes, text = _name_id(xml, "saml:NameID")
    assert text == "a" * 64
    assert attributes == {
        "Format": handles["name_id_format"],
        "NameQualifier": demo.idp_entity_id,
        "SPNameQualifier": setup.sp.entity_id,
    }
