"""A logout asked while Redis is unreachable (its forwarder drops every connection; Redis keeps
what it holds, as after a network cut or a failover, so the session is still there once the
store is back).

A platform's or the school's signed LogoutRequest, or the OpenID Connect end_session with a
hint of this session or the student's "yes", is checked without the store. It gets the page
that says the student may not be logged out (not the generic "try again"), and the browser
forgets the SSO cookie: before 2026-11-30 the cookie stayed, and once Redis was back the next
login in that browser (the next student at a shared laptop) went through as the previous
student. A SAML peer is answered `Responder`/`PartialLogout` from a button on that page. A
request not checked to be this browser's (another student's LogoutRequest, a forged form)
changes nothing: the cookie stays.
"""

from __future__ import annotations

import re
from html import unescape

import pytest

from broker.cli.demo import DEMO_SCHOOL_ID
from tests.support.client import Browser, Page
from tests.support.federation import OIDC_PUBLISHER, SAML_PUBLISHER, Federation
from tests.support.live import SSO_COOKIE
from tests.support.logout import carry_saml_posts
from tests.support.processes import Mode

pytestmark = [pytest.mark.drills, pytest.mark.postgres, pytest.mark.redis]
FEDERATION = {"brokers": 1, "store_link": True}

UID = "sanne.jansen"
OTHER_UID = "daan.devries"
# The page's title and what it tells the student to do, in each language.
NOT_LOGGED_OUT = {
    "nl": ("Je bent misschien niet uitgelogd", "Sluit je browser"),
    "en": ("You may not be logged out", "Close your browser"),
}


def _logged_in(
    fed: Federation, language: str, uid: str = UID, publisher: str = SAML_PUBLISHER
) -> Browser:
    browser = fed.browser(language)
    page = fed.login(browser, publisher, DEMO_SCHOOL_ID, uid)
    assert page.status == 200, page.text[:300]
    assert SSO_COOKIE in browser.cookies(fed.broker_url)
    return browser


def _store_down(fed: Federation) -> None:
    fed.link("store").set_mode(Mode.REFUSE)


def _store_back(fed: Federation) -> None:
    fed.link("store").set_mode(Mode.FORWARD)


def _assert_not_logged_out_page(fed: Federation, page: Page, language: str) -> None:
    assert page.status == 503, (page.url, page.text[:300])
    assert page.url.startswith(fed.broker_url)
    assert f'lang="{language}"' in page.text
    assert all(part in page.text for part in NOT_LOGGED_OUT[language]), page.text
    assert "Traceback" not in page.text


def _signs_in_again(fed: Federation, browser: Browser) -> bool:
    """Whether a login in this browser goes through without the school (an SSO session)."""
    return not fed.at_school(fed.start(browser, SAML_PUBLISHER, DEMO_SCHOOL_ID), DEMO_SCHOOL_ID)


def _answer_back(browser: Browser, page: Page) -> Page:
    """The button that carries the peer's LogoutResponse: a link (Redirect) or a form (POST)."""
    forms = [f for f in page.forms if "SAMLResponse" in f.fields]
    if forms:
        return browser.post(forms[0].action, dict(forms[0].fields))
    # The link's class says whether it is the main button; only its address matters here.
    link = re.search(r'<p class="return"><a class="[^"]*" href="([^"]*)"', page.text)
    assert link, page.text
    return browser.get(unescape(link.group(1)))


@pytest.mark.parametrize(
    ("peer", "start", "language"),
    [
        ("platform", "/logout", "nl"),  # Redirect binding
        ("platform", "/logout?binding=post", "en"),
        ("school", f"/logout?uid={UID}", "en"),
        ("school", f"/logout?uid={UID}&binding=post", "nl"),
    ],
)
def test_a_signed_logout_request_drops_the_cookie_and_the_peer_hears_responder(
    fed: Federation, peer: str, start: str, language: str
) -> None:
    """A platform's LogoutRequest (naming this browser's SessionIndex) or the school's."""
    browser = _logged_in(fed, language)
    base = fed.publisher_url(SAML_PUBLISHER) if peer == "platform" else fed.school_url
    _store_down(fed)
    page = carry_saml_posts(browser, browser.get(f"{base}{start}"))

    _assert_not_logged_out_page(fed, page, language)
    assert SSO_COOKIE not in browser.cookies(fed.broker_url)
    # The peer hears that the logout failed (never Success), from the page's button.
    answered = _answer_back(browser, page)
    assert answered.url.startswith(base), answered.url
    assert 'data-logout-status="failed"' in answered.text, answered.text[:500]

    _store_back(fed)
    assert not _signs_in_again(fed, browser)


@pytest.mark.parametrize("language", ["nl", "en"])
def test_end_session_with_this_sessions_hint_drops_the_cookie(
    fed: Federation, language: str
) -> None:
    browser = _logged_in(fed, language, publisher=OIDC_PUBLISHER)
    _store_down(fed)
    # The platform's logout button: end_session with its ID token as id_token_hint.
    page = browser.get(f"{fed.publisher_url(OIDC_PUBLISHER)}/logout")

    _assert_not_logged_out_page(fed, page, language)
    assert "/oidc/end_session" in page.url
    assert SSO_COOKIE not in browser.cookies(fed.broker_url)
    # Not sent back to the platform: it would say the student is logged out.
    assert not any(url.startswith(fed.publisher_url(OIDC_PUBLISHER)) for url in page.visited[1:])

    _store_back(fed)
    assert not _signs_in_again(fed, browser)


@pytest.mark.parametrize("language", ["en", "nl"])
def test_end_session_without_a_hint_asks_and_the_yes_drops_the_cookie(
    fed: Federation, language: str
) -> None:
    browser = _logged_in(fed, language)
    _store_down(fed)
    asked = browser.get(f"{fed.broker_url}/oidc/end_session")
    # Asked first (the form needs no store), nothing changed yet.
    assert asked.status == 200, asked.text[:300]
    assert SSO_COOKIE in browser.cookies(fed.broker_url)
    form = asked.form(f"{fed.broker_url}/oidc/end_session")
    page = browser.post(form.action, {**form.fields, "confirm": "yes"})

    _assert_not_logged_out_page(fed, page, language)
    assert SSO_COOKIE not in browser.cookies(fed.broker_url)
    _store_back(fed)
    assert not _signs_in_again(fed, browser)


def test_requests_not_checked_to_be_this_browsers_change_nothing(fed: Federation) -> None:
    """Another student's signed LogoutRequest (its SessionIndex names their session), a form
    with a token not made for this browser, a tampered LogoutRequest: the cookie stays, and
    the session works once the store is back."""
    browser = _logged_in(fed, "nl")
    other = _logged_in(fed, "nl", OTHER_UID)
    publisher = fed.publisher_url(SAML_PUBLISHER)
    theirs = other.get(f"{publisher}/logout", stop=lambda url: url.startswith(fed.broker_url))
    assert theirs.location is not None and "SAMLRequest=" in theirs.location
    _store_down(fed)

    replayed = browser.get(theirs.location)
    # A 503 worded for the logout (web/errors.logout_not_done_page), not for signing in.
    assert replayed.status == 503, replayed.text[:300]
    assert 'lang="nl"' in replayed.text and "Traceback" not in replayed.text
    assert "Uitloggen is niet gelukt" in replayed.text, replayed.text[:600]
    assert "Je bent misschien nog ingelogd" in replayed.text
    assert "Inloggen lukt even niet" not in replayed.text
    forged = browser.post(f"{fed.broker_url}/logout", {"csrf_token": "1.forged"})
    assert forged.status == 400, forged.text[:300]
    yes = browser.post(f"{fed.broker_url}/oidc/end_session", {"confirm": "yes", "csrf_token": ""})
    assert yes.status == 400, yes.text[:300]
    tampered = browser.get(theirs.location.replace("Signature=", "Signature=AA", 1))
    assert tampered.status == 400, tampered.text[:300]
    for page in (replayed, forged, yes, tampered):
        assert SSO_COOKIE not in page.cookies_set
    assert SSO_COOKIE in browser.cookies(fed.broker_url)

    _store_back(fed)
    assert _signs_in_again(fed, browser)
