"""A school's LogoutRequest that reaches the broker without the browser's cookies.

An identity provider that tells its service providers of a logout through iframes on its own
page (Shibboleth IdP's logout propagation does) makes the broker's SP SLO endpoint a third party:
Safari blocks the broker's cookies there, Firefox gives the frame a partitioned cookie jar
without them. The broker then cannot find the session by its cookie; it must not answer
Success while the session stands in that very browser (the school would show the student
"logged out" and the next student at the shared laptop would be signed in as them).
"""

from __future__ import annotations

from typing import Any

import pytest

from broker.core.errors import StoreUnavailable
from broker.web import saml_logout_routes
from broker.web.browser import SSO_COOKIE
from tests.support.client import Browser
from tests.support.live import LiveDemo
from tests.support.logout import carry_saml_posts

STUDENT = "fatima.elamrani"


def _schools_request(demo: LiveDemo, browser: Browser, uid: str) -> tuple[str, dict[str, str]]:
    """The school's LogoutRequest to the broker, taken before the browser brings it."""
    sp_slo = f"{demo.broker_url}/saml/sp/slo"
    page = browser.get(f"{demo.school_url}/logout?uid={uid}", stop=lambda u: u.startswith(sp_slo))
    assert page.location is not None and page.location.startswith(sp_slo), page.url
    return page.location, {}


def _login_goes_to_school(demo: LiveDemo, browser: Browser, publisher: str) -> bool:
    page = browser.get(f"{demo.publishers[publisher].base_url}/login")
    return demo.shows_discovery(page) or page.url.startswith(f"{demo.school_url}/sso")


def test_a_schools_logout_request_without_cookies_ends_the_session(demo: LiveDemo) -> None:
    browser = Browser()
    for publisher in ("leesplank", "rekenroute"):
        assert demo.login(browser, publisher, STUDENT).final.status == 200
    url, _ = _schools_request(demo, browser, STUDENT)
    # The school's frame: the same request, without any of the broker's cookies.
    frame = Browser()
    answer = carry_saml_posts(frame, frame.get(url))
    assert answer.status == 200, answer.text[:500]
    # The school hears the truth: the session ended, but its SAML publishers (reachable only
    # through the browser's top window) were not told: Success/PartialLogout, not Success.
    assert 'data-logout-status="partial"' in answer.text, answer.text[:500]
    # The session this browser still holds is gone: its next login goes to the school.
    assert _login_goes_to_school(demo, browser, "leesplank")


def test_the_same_request_without_cookies_again_is_a_replay(demo: LiveDemo) -> None:
    browser = Browser()
    assert demo.login(browser, "leesplank", STUDENT).final.status == 200
    url, _ = _schools_request(demo, browser, STUDENT)
    frame = Browser()
    assert carry_saml_posts(frame, frame.get(url)).status == 200
    assert Browser().get(url).status == 400


def test_a_request_without_session_index_or_cookies_is_not_answered_success(
    demo: LiveDemo,
) -> None:
    # A request that names the NameID alone cannot be looked up without the cookie: the broker
    # cannot know whether a session stands in that browser, so the school must not hear Success.
    browser = Browser()
    assert demo.login(browser, "leesplank", STUDENT).final.status == 200
    sp_slo = f"{demo.broker_url}/saml/sp/slo"
    page = browser.get(
        f"{demo.school_url}/logout?uid={STUDENT}&session_index=omit",
        stop=lambda u: u.startswith(sp_slo),
    )
    assert page.location is not None and page.location.startswith(sp_slo), page.url
    frame = Browser()
    answer = carry_saml_posts(frame, frame.get(page.location))
    assert 'data-logout-status="failed"' in answer.text, answer.text[:500]
    # The same request with the broker's cookies finds the session by them and ends it.
    page = browser.get(
        f"{demo.school_url}/logout?uid={STUDENT}&session_index=omit",
        stop=lambda u: u.startswith(sp_slo),
    )
    assert page.location is not None
    done = carry_saml_posts(browser, browser.get(page.location))
    assert done.status == 200, done.text[:500]
    assert _login_goes_to_school(demo, browser, "leesplank")


def test_a_request_the_store_failed_after_taking_is_taken_again_when_retried(
    demo: LiveDemo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replay check took the request's id, then the store failed while ending the session:
    # the frame got the store-down page, and the school's retry of the same message must not
    # be refused as a replay (until the 2026-11-30 review it was: the id was not given back).
    browser = Browser()
    assert demo.login(browser, "leesplank", STUDENT).final.status == 200
    token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    url, _ = _schools_request(demo, browser, STUDENT)

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("redis: ConnectionError")

    with monkeypatch.context() as patch:
        patch.setattr(saml_logout_routes, "_end_without_the_cookie", fails)
        assert Browser().get(url).status == 503
    assert demo.broker.flow.session(token) is not None
    frame = Browser()
    answer = carry_saml_posts(frame, frame.get(url))
    assert answer.status == 200, answer.text[:500]
    assert 'data-logout-status="partial"' in answer.text, answer.text[:500]
    assert demo.broker.flow.session(token) is None
