"""Logout across every protocol pairing: school SAML or OIDC, times publisher SAML or OIDC.

One browser logs in through one school at a SAML publisher (the demo's pysaml2 Leesplank) and at
an OIDC publisher (the demo's authlib relying party, registered for end_session and back-channel
logout): one SSO session with a service of each protocol, so every pairing is in it. The logout
starts at one of the two publishers (SAML SLO or OIDC end_session) or with the student's button.
Each other service hears of it in its own protocol (a SAML LogoutRequest through the propagation
page's frame, an OIDC logout token server to server), the school is told in its own (SAML
LogoutRequest, OIDC end_session), and afterwards the SSO session answers nothing: the next login
goes to the school again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from broker.core.model import Declaration
from broker.web.browser import SSO_COOKIE
from tests.flows.test_oidc_school import op_url
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo, OidcPublisher
from tests.support.logout import (
    LogoutOutcome,
    answer_initiator,
    carry_saml_posts,
    finish_logout,
    peer_logouts,
)

SAML_PUBLISHER = "leesplank"
SAML_NAME = "Leesplank (demo publisher)"
STUDENT = "sanne.jansen"


@pytest.fixture(scope="module")
def kompas(demo: LiveDemo) -> OidcPublisher:
    return demo.add_oidc_publisher(
        "kompas",
        "leermiddelen",
        (Declaration("given_name", "To greet the student by name."),),
        released=frozenset({"given_name"}),
        scope="openid profile",
        logout=True,
    )


@dataclass(frozen=True)
class School:
    protocol: str
    school_id: str
    login_url: str  # the school's login page the browser is sent to
    logouts_url: str  # where the demo school lists the logouts it heard of


def school_of(demo: LiveDemo, protocol: str) -> School:
    if protocol == "saml":
        return School("saml", DEMO_SCHOOL_ID, f"{demo.school_url}/sso", demo.school_url)
    return School("oidc", DEMO_OIDC_SCHOOL_ID, f"{op_url(demo)}/authorize", op_url(demo))


def log_in(demo: LiveDemo, browser: Browser, school: School, publisher: str) -> Page:
    """A login at `publisher` through `school` (named in the request: no discovery page)."""
    base = demo.publishers[publisher].base_url
    saml = publisher == SAML_PUBLISHER
    if school.protocol == "saml":
        hint = demo.school_entity_id if saml else school.school_id
    else:
        hint = op_url(demo) if saml else school.school_id
    page = browser.get(f"{base}/login?school={hint}")
    if page.url.startswith(school.login_url):
        assert page.status == 200, page.text
        uid_form = next(f for f in page.forms if ("uid", STUDENT) in f.buttons)
        page = browser.post(uid_form.action, {**uid_form.fields, "uid": STUDENT})
        if school.protocol == "saml":
            page = carry_saml_posts(browser, page)
    if saml:
        page = carry_saml_posts(browser, page)
    assert page.status == 200 and page.url.startswith(base), (page.url, page.text[:500])
    return page


def login_goes_to_school(demo: LiveDemo, browser: Browser, school: School) -> bool:
    base = demo.publishers[SAML_PUBLISHER].base_url
    hint = demo.school_entity_id if school.protocol == "saml" else op_url(demo)
    page = browser.get(f"{base}/login?school={hint}")
    return page.url.startswith(school.login_url)


def school_heard(browser: Browser, school: School) -> int:
    return len([e for e in peer_logouts(browser, school.logouts_url) if e["kind"] != "response"])


def saml_requests(demo: LiveDemo, browser: Browser) -> int:
    events = peer_logouts(browser, demo.publishers[SAML_PUBLISHER].base_url)
    return len([e for e in events if e["kind"] == "request"])


def back_channel_calls(browser: Browser, publisher: OidcPublisher) -> list[dict[str, str]]:
    calls: list[dict[str, str]] = browser.get(
        f"{publisher.base_url}/backchannel.json"
    ).response.json()["calls"]
    return calls


def start(demo: LiveDemo, browser: Browser, initiator: str, kompas: OidcPublisher) -> Page:
    if initiator == "oidc":
        return browser.get(f"{kompas.base_url}/logout")
    if initiator == "saml":
        return carry_saml_posts(
            browser, browser.get(f"{demo.publishers[SAML_PUBLISHER].base_url}/logout")
        )
    my_data = browser.get(f"{demo.broker_url}/my-data/sign-in")
    assert my_data.status == 200, my_data.text
    return browser.submit(my_data, f"{demo.broker_url}/my-data/close")


@pytest.mark.parametrize("initiator", ["oidc", "saml", "student"])
@pytest.mark.parametrize("school_protocol", ["saml", "oidc"])
def test_logout_in_every_pairing(
    demo: LiveDemo, kompas: OidcPublisher, school_protocol: str, initiator: str
) -> None:
    school = school_of(demo, school_protocol)
    browser = Browser()
    log_in(demo, browser, school, SAML_PUBLISHER)
    log_in(demo, browser, school, "kompas")
    received = demo.received(browser, "kompas")
    assert not received["ended_by_back_channel"]
    school_before = school_heard(browser, school)
    saml_before = saml_requests(demo, browser)
    oidc_before = len(back_channel_calls(browser, kompas))

    started = start(demo, browser, initiator, kompas)
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    outcome: LogoutOutcome = finish_logout(browser, started)

    kompas_name = f"{kompas.id} (test OIDC publisher)"
    expected = {SAML_NAME: "confirmed", kompas_name: "confirmed"}
    if initiator == "saml":
        expected.pop(SAML_NAME)
    if initiator == "oidc":
        expected.pop(kompas_name)
    assert outcome.services == expected
    # Each other service heard it in its own protocol.
    if initiator != "saml":
        assert saml_requests(demo, browser) == saml_before + 1
    if initiator != "oidc":
        calls = back_channel_calls(browser, kompas)
        assert len(calls) == oidc_before + 1
        assert calls[-1]["sid"] == received["session_index"]
        assert calls[-1]["sub"] == received["sub"]
        assert demo.received(browser, "kompas")["ended_by_back_channel"] is True
    # The school was told, in its protocol, and confirmed.
    assert outcome.school == "confirmed"
    assert school_heard(browser, school) == school_before + 1
    # The initiator gets its answer.
    if initiator == "oidc":
        back = answer_initiator(browser, outcome.page)
        assert back.status == 200 and 'id="logged-out"' in back.text, back.text
    elif initiator == "saml":
        back = carry_saml_posts(browser, answer_initiator(browser, outcome.page))
        assert 'data-logout-status="success"' in back.text, back.text
    # The SSO session is gone: a new login goes to the school again.
    assert login_goes_to_school(demo, browser, school)


def test_a_forced_fresh_login_hands_the_earlier_services_on_to_the_new_session(
    demo: LiveDemo, kompas: OidcPublisher
) -> None:
    """A service that demands a new school login (OIDC prompt=login) gets a new SSO session;
    the services of the one it replaces must still hear of the logout, and the replaced
    session must answer nothing any more."""
    school = school_of(demo, "saml")
    browser = Browser()
    log_in(demo, browser, school, SAML_PUBLISHER)
    first_token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    page = browser.get(f"{kompas.base_url}/login?school={school.school_id}&prompt=login")
    assert page.url.startswith(school.login_url), page.url  # prompt=login: to the school again
    uid_form = next(f for f in page.forms if ("uid", STUDENT) in f.buttons)
    page = carry_saml_posts(
        browser, browser.post(uid_form.action, {**uid_form.fields, "uid": STUDENT})
    )
    assert page.status == 200 and page.url.startswith(kompas.base_url), page.url
    assert browser.cookies(demo.broker_url)[SSO_COOKIE] != first_token
    assert demo.broker.flow.session(first_token) is None  # the replaced session is over
    saml_before = saml_requests(demo, browser)

    outcome = finish_logout(browser, start(demo, browser, "oidc", kompas))
    # Leesplank logged in under the replaced session and still hears of the logout.
    assert outcome.services == {SAML_NAME: "confirmed"}
    assert saml_requests(demo, browser) == saml_before + 1
    assert login_goes_to_school(demo, browser, school)
