"""A refused end_session request, end to end with the demo's OIDC platform (an authlib client):
the page is the logout's own, as for a refused SAML LogoutRequest (web/logout_refusal.py). It
says logging out did not work and the student may still be logged in, offers "log out
everywhere" (the student's own POST with this browser's form token), never redirects to the
post_logout_redirect_uri the unverified request names, and ends nothing."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

from broker.web.browser import SSO_COOKIE
from tests.flows.test_oidc_logout import end_session, hint_of, sso_stands
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo, OidcPublisher


@pytest.fixture(scope="module")
def taalkaart(demo: LiveDemo) -> OidcPublisher:
    """An OIDC platform registered for end_session."""
    return demo.add_oidc_publisher("taalkaart", "leermiddelen", scope="openid", logout=True)


def _forged_hint(demo: LiveDemo, browser: Browser) -> str:
    real = demo.received(browser, "taalkaart")
    other = RSAKey.generate_key(2048, parameters={"kid": "not-the-broker"})
    now = int(time.time())
    claims = {
        "iss": demo.broker_url,
        "aud": ["taalkaart"],
        "sub": real["sub"],
        "sid": real["session_index"],
        "iat": now,
        "exp": now + 300,
    }
    return jose_jwt.encode({"alg": "RS256", "kid": "not-the-broker"}, claims, other)


def _assert_logout_page(demo: LiveDemo, page: Page, *, dutch: bool = False) -> None:
    assert page.status == 400, page.text[:300]
    assert page.location is None, "a refused logout redirects nowhere"
    main = page.text.split("<main", 1)[-1]
    if dutch:
        assert "Uitloggen is niet gelukt" in main, main[:600]
        assert "Je bent misschien nog ingelogd" in main
        assert "Sluit dan alle vensters van je browser" in main
        assert "Inloggen lukt zo niet" not in main
        for jargon in ("SAML", "broker", "pseudoniem", "sessie", " u ", " uw "):
            assert jargon not in main, jargon
    else:
        assert "Logging out did not work" in main, main[:600]
        assert "You may still be logged in" in main
        assert "This sign-in cannot continue" not in page.text
    assert page.form(f"{demo.broker_url}/logout").fields.get("csrf_token")
    assert page.response.headers.get("Cache-Control") == "no-store"


def test_a_refused_end_session_gets_the_logout_page_and_ends_nothing(
    demo: LiveDemo, taalkaart: OidcPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser()
    demo.login(browser, "taalkaart", "sanne.jansen")
    hint = hint_of(demo, browser, "taalkaart")
    target = f"{taalkaart.base_url}/logged-out"
    refused = {
        "logout_unregistered_redirect": {
            "id_token_hint": hint,
            "post_logout_redirect_uri": "https://evil.example/logged-out",
        },
        "logout_unknown_client": {"post_logout_redirect_uri": target},
        "logout_bad_hint": {
            "id_token_hint": _forged_hint(demo, browser),
            "post_logout_redirect_uri": target,
        },
        "logout_client_mismatch": {"id_token_hint": hint, "client_id": "leesplank"},
        "logout_parameter_size": {"id_token_hint": hint, "state": "s" * 1025},
    }
    for code, params in refused.items():
        page = browser.get(end_session(demo, **params), follow=False)
        _assert_logout_page(demo, page)
        assert f"refused code={code} " in caplog.text, code
    assert SSO_COOKIE in browser.cookies(demo.broker_url)
    assert sso_stands(demo, browser), "a refused end_session ended the session"


def test_the_refused_pages_button_logs_out_in_the_students_language(
    demo: LiveDemo, taalkaart: OidcPublisher
) -> None:
    """In the browser's language (here Dutch); "log out everywhere" ends what the refused
    request left standing, and nothing goes to the target the refused request named."""
    browser = Browser(language="nl")
    demo.login(browser, "taalkaart", "sanne.jansen")
    target = f"{taalkaart.base_url}/logged-out"
    page = browser.get(
        end_session(
            demo, id_token_hint=_forged_hint(demo, browser), post_logout_redirect_uri=target
        )
    )
    _assert_logout_page(demo, page, dutch=True)
    assert not any(url.startswith(target) for url in page.visited)
    done = browser.submit(page, f"{demo.broker_url}/logout")
    assert done.status == 200, done.text[:300]
    assert not any(url.startswith(target) for url in done.visited)
    assert SSO_COOKIE not in browser.cookies(demo.broker_url)
