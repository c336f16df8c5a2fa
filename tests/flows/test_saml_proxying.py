"""The broker as a proxying IdP (SAML core 3.4.1.5.1), end to end against the live demo.

Real pysaml2 SPs sign their requests and parse the broker's answers; the school's answers are
signed with the demo school's key (forge.py). What is checked is the signed XML itself: the
AuthenticatingAuthority the broker names (only where the school's release policy releases its
identity to the service) and the school's SessionNotOnOrAfter passed on. The request to the
school (IDPList, ProxyCount) is in test_saml_idp_conformance.py.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from lxml import etree

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import Declaration
from tests.flows.test_authn_requests import (
    ServiceSp,
    _answer_form,
    _decoded,
    registered_sp,
    school_answers,
)
from tests.support.client import Browser, Page
from tests.support.forge import (
    NS,
    saml_time,
    verify_signature,
)
from tests.support.live import SSO_COOKIE, LiveDemo

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pysaml2 touches a deprecated cryptography mode at import
    from saml2 import saml, samlp
    from saml2.samlp import IDPEntry, IDPList, Scoping

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SAML = saml.NAMESPACE
# An authority the school's own assertion lists: its IdP proxied the login further.
UPSTREAM_OF_SCHOOL = "https://idp.bestuur.example/entra"
Tamper = Callable[[samlp.Response], None]


@dataclass(frozen=True)
class Services:
    demo: LiveDemo
    named: ServiceSp  # the school releases its identity (school_id) to it
    kept_back: ServiceSp  # the school releases nothing to it

    @property
    def sso_url(self) -> str:
        return f"{self.demo.broker_url}/saml/idp/sso"


@pytest.fixture(scope="module")
def services(demo: LiveDemo) -> Services:
    named = registered_sp(
        demo,
        "proxying-school-named",
        "Proxying tests, school named (test publisher)",
        declarations=(Declaration("school_id", "Om de klas bij de school te vinden."),),
    )
    demo.registry.set_policy(
        DEMO_SCHOOL_ID, "proxying-school-named", frozenset({"school_id"}), "test"
    )
    kept_back = registered_sp(
        demo,
        "proxying-school-kept-back",
        "Proxying tests, school kept back (test publisher)",
        declarations=(Declaration("school_id", "Om de klas bij de school te vinden."),),
    )
    return Services(demo, named, kept_back)


def _to_school(
    services: Services, sp: ServiceSp, browser: Browser, **extra: Any
) -> tuple[Any, str]:
    """The service's signed request naming the demo school; the URL to the school."""
    demo = services.demo
    scoping = extra.pop(
        "scoping",
        Scoping(idp_list=IDPList(idp_entry=[IDPEntry(provider_id=demo.school_entity_id)])),
    )
    request = sp.authn_request(services.sso_url, scoping=scoping, **extra)
    first = browser.get(sp.redirect_url(services.sso_url, request, sign=True), follow=False)
    to_school = first.location or ""
    assert to_school.startswith(f"{demo.school_url}/sso"), to_school
    return request, to_school


def _lists_and_ends(ends: datetime | None) -> Tamper:
    """The school's assertion lists `UPSTREAM_OF_SCHOOL` and, with `ends`, its session end."""

    def tamper(response: samlp.Response) -> None:
        statement = response.assertion.authn_statement[0]
        statement.authn_context.authenticating_authority = [
            saml.AuthenticatingAuthority(text=UPSTREAM_OF_SCHOOL)
        ]
        if ends is not None:
            statement.session_not_on_or_after = saml_time(ends)

    return tamper


def _statement(services: Services, sp: ServiceSp, page: Page, request_id: str) -> etree._Element:
    """The AuthnStatement of the broker's answer, after pysaml2 accepted the answer and both
    signatures verified against the broker's certificate."""
    fields = _answer_form(page, sp.acs[1])
    sp.accept(fields["SAMLResponse"], request_id)
    xml = base64.b64decode(fields["SAMLResponse"])
    doc = _decoded(fields["SAMLResponse"])
    cert = services.demo.settings.saml.signing_cert
    verify_signature(xml, cert, doc.get("ID") or "")
    assertion = doc.find("saml:Assertion", NS)
    assert assertion is not None
    verify_signature(xml, cert, assertion.get("ID") or "")
    statement = assertion.find("saml:AuthnStatement", NS)
    assert statement is not None
    return statement


def _authorities(statement: etree._Element) -> list[str | None]:
    return [
        a.text for a in statement.iterfind("saml:AuthnContext/saml:AuthenticatingAuthority", NS)
    ]


def test_the_school_is_named_after_its_own_authorities_where_its_identity_is_released(
    services: Services,
) -> None:
    browser = Browser()
    request, to_school = _to_school(services, services.named, browser)
    page = school_answers(services.demo, browser, to_school, _lists_and_ends(None))
    statement = _statement(services, services.named, page, request.id)
    # Core 3.4.1.5.1: the school's listed ones first, the school's IdP after them.
    assert _authorities(statement) == [UPSTREAM_OF_SCHOOL, services.demo.school_entity_id]
    context = statement.find("saml:AuthnContext", NS)
    assert context is not None and etree.QName(context[0]).localname == "AuthnContextClassRef"


def test_no_authority_is_named_where_the_school_keeps_its_identity_back(
    services: Services,
) -> None:
    """The service declared school_id, but the school's policy does not release it: naming
    the school's IdP (or its own authorities) would tell the publisher the student's school."""
    browser = Browser()
    request, to_school = _to_school(services, services.kept_back, browser)
    page = school_answers(services.demo, browser, to_school, _lists_and_ends(None))
    statement = _statement(services, services.kept_back, page, request.id)
    assert _authorities(statement) == []
    text = etree.tostring(statement).decode()
    assert services.demo.school_entity_id not in text and UPSTREAM_OF_SCHOOL not in text


def test_the_school_session_end_is_passed_on_and_kept_by_the_sso_session(
    services: Services,
) -> None:
    """The school's SessionNotOnOrAfter (ten minutes, well within the broker's own session)
    is the publisher's; a later login answered from the broker's SSO session carries the same
    end: the platform's session does not outlive what the school vouches for."""
    browser = Browser()
    ends = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
    request, to_school = _to_school(services, services.kept_back, browser)
    page = school_answers(services.demo, browser, to_school, _lists_and_ends(ends))
    statement = _statement(services, services.kept_back, page, request.id)
    assert statement.get("SessionNotOnOrAfter") == saml_time(ends)
    assert SSO_COOKIE in browser.cookies(services.demo.broker_url)

    again = services.named.authn_request(services.sso_url)
    page = browser.get(services.named.redirect_url(services.sso_url, again, sign=True))
    school = services.demo.school_url
    assert not any(url.startswith(school) for url in page.visited), "answered by the session"
    later = _statement(services, services.named, page, again.id)
    assert later.get("SessionNotOnOrAfter") == saml_time(ends)


def test_without_a_school_session_end_none_is_claimed(services: Services) -> None:
    browser = Browser()
    request, to_school = _to_school(services, services.kept_back, browser)
    page = school_answers(services.demo, browser, to_school, lambda response: None)
    statement = _statement(services, services.kept_back, page, request.id)
    assert statement.get("SessionNotOnOrAfter") is None
