"""A platform's tokens end with the SSO session they came from (Back-Channel Logout 1.0 2.7):
after end_session, a school's back-channel logout or a SAML-initiated logout of the session,
the access token is refused at userinfo (401 invalid_token), the refresh token at the token
endpoint (invalid_grant), and a code issued before the logout gets no tokens. The session's
end writes its OIDC services' token families' revocation marks in the batch that ends it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from broker.login.participants import FAMILIES
from broker.registry.tables import SchoolRow
from broker.web.browser import SSO_COOKIE
from tests.flows.test_oidc_provider_checks import (
    UID,
    Client,
    refresh_with,
    register,
    store_calls,
)
from tests.flows.test_oidc_school import op_url
from tests.flows.test_school_backchannel_logout import logout_token, post
from tests.support.client import Browser
from tests.support.live import LiveDemo
from tests.support.logout import carry_saml_posts, finish_logout


def refresh_client(demo: LiveDemo, client_id: str) -> Client:
    client = register(demo, client_id, refresh_tokens=True)
    # Released at the OIDC school too, for the back-channel case.
    demo.registry.set_policy(DEMO_OIDC_SCHOOL_ID, client_id, frozenset({"given_name"}), "test")
    return client


def userinfo(demo: LiveDemo, access: str) -> requests.Response:
    return requests.get(
        f"{demo.broker_url}/oidc/userinfo",
        headers={"Authorization": f"Bearer {access}"},
        timeout=5,
    )


def works(client: Client, token: dict[str, Any]) -> bool:
    """Whether the token response's access token opens userinfo (the refresh token is left
    unused: a refresh would rotate it)."""
    return userinfo(client.demo, token["access_token"]).status_code == 200


def assert_ended(client: Client, token: dict[str, Any]) -> None:
    answer = userinfo(client.demo, token["access_token"])
    assert answer.status_code == 401 and answer.json() == {"error": "invalid_token"}
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    refreshed = refresh_with(client, token["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    assert refreshed.headers["Cache-Control"] == "no-store"


def families_of(demo: LiveDemo, browser: Browser, service_id: str) -> list[str]:
    services = demo.broker.session_services.read(browser.cookies(demo.broker_url)[SSO_COOKIE])
    participant = services.get(service_id)
    assert participant is not None
    return participant.handles.get(FAMILIES, "").split()


def test_end_session_ends_every_login_of_the_sessions_tokens_and_codes(demo: LiveDemo) -> None:
    client = refresh_client(demo, "tokens-end-session")
    browser = Browser()
    first, _ = client.login(browser)
    second, _ = client.login(browser)  # the SSO session answers: a second family
    params = client.params()
    code = client.redirect(browser, params)["code"]  # issued, not redeemed before the logout
    assert works(client, first) and works(client, second)
    assert len(families_of(demo, browser, client.client_id)) == 3
    hint = urlencode({"id_token_hint": second["id_token"]})
    with store_calls(demo) as calls:
        page = browser.get(f"{demo.broker_url}/oidc/end_session?{hint}")
    assert page.status in (200, 303), page.text[:300]
    # The revocation marks go in the batch that ends the session: no round trip of their own.
    ending = [keys for name, keys in calls if any(k.startswith("delete sso:") for k in keys)]
    assert len(ending) == 1
    assert sum(k.startswith("put oidc:revoked:") for k in ending[0]) == 3
    assert client.redirect(browser, client.params(prompt="none"))["error"] == "login_required"
    assert_ended(client, first)
    assert_ended(client, second)
    late = client.redeem(code, params["_verifier"])
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    assert "id_token" not in late.json()


def test_a_logout_of_another_session_leaves_this_sessions_tokens(demo: LiveDemo) -> None:
    client = refresh_client(demo, "tokens-other-session")
    kept, _ = client.login(Browser())
    other = Browser()
    ended, _ = client.login(other)
    hint = urlencode({"id_token_hint": ended["id_token"]})
    other.get(f"{demo.broker_url}/oidc/end_session?{hint}")
    assert_ended(client, ended)
    assert works(client, kept)
    assert refresh_with(client, kept["refresh_token"]).status_code == 200


def oidc_school_login(client: Client, browser: Browser) -> dict[str, Any]:
    """A login at `client` through the demo's OIDC school (its id as login_hint)."""
    params = client.params(login_hint=DEMO_OIDC_SCHOOL_ID)
    page = client.front(browser, params)
    if page.url.startswith(f"{op_url(client.demo)}/authorize"):
        form = next(f for f in page.forms if ("uid", UID) in f.buttons)
        page = browser.post(form.action, {"uid": UID}, stop=client._at_client)
    assert page.location and client._at_client(page.location), (page.status, page.text[:300])
    answer = {k: v[0] for k, v in parse_qs(urlsplit(page.location).query).items()}
    response = client.redeem(answer["code"], params["_verifier"])
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return token


def test_a_schools_back_channel_logout_ends_the_tokens(demo: LiveDemo) -> None:
    client = refresh_client(demo, "tokens-school-bcl")
    browser = Browser()
    token = oidc_school_login(client, browser)
    assert works(client, token)
    session = demo.broker.flow.session(browser.cookies(demo.broker_url)[SSO_COOKIE])
    assert session is not None
    answer = post(demo, logout_token(demo, session[0].upstream_session["sid"]))
    assert answer.status_code == 200, answer.text
    assert_ended(client, token)


def test_a_saml_schools_logout_ends_the_tokens(demo: LiveDemo) -> None:
    client = refresh_client(demo, "tokens-saml-school")
    browser = Browser()
    token, _ = client.login(browser)
    assert works(client, token)
    started = carry_saml_posts(browser, browser.get(f"{demo.school_url}/logout?uid={UID}"))
    assert started.url.startswith(f"{demo.broker_url}/logout/"), started.url
    finish_logout(browser, started)
    assert_ended(client, token)


def login_as(client: Client, browser: Browser, uid: str, **extra: str) -> dict[str, Any]:
    """A login at `client` in which `uid` picks themselves at the demo's SAML school."""
    params = client.params(**extra)
    query = urlencode({k: v for k, v in params.items() if not k.startswith("_")})
    page = browser.get(f"{client.authorize_url}?{query}", stop=client._at_client)
    if client.demo.shows_discovery(page):
        form = next(f for f in page.forms if ("school", DEMO_SCHOOL_ID) in f.buttons)
        page = browser.post(form.action, {**form.fields, "school": DEMO_SCHOOL_ID})
    assert page.url.startswith(f"{client.demo.school_url}/sso"), page.url
    answer = browser.submit(page, f"{client.demo.school_url}/sso/pick", {"uid": uid})
    form = answer.form(client.demo.acs_url)
    page = browser.post(form.action, form.fields, stop=client._at_client)
    assert page.location and client._at_client(page.location), (page.status, page.text[:300])
    code = parse_qs(urlsplit(page.location).query)["code"][0]
    response = client.redeem(code, params["_verifier"])
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return token


def test_the_next_student_at_a_shared_laptop_ends_the_previous_ones_tokens(
    demo: LiveDemo,
) -> None:
    """A platform asks for a fresh login (prompt=login) and another student signs in at the
    same browser: the session that is replaced was the previous student's, and its end
    revokes their tokens as a logout would. The same student signing in again keeps theirs."""
    client = refresh_client(demo, "tokens-next-student")
    browser = Browser()
    first = login_as(client, browser, UID)
    again = login_as(client, browser, UID, prompt="login")  # the same student: tokens stay
    assert works(client, first) and works(client, again)
    nxt = login_as(client, browser, "daan.devries", prompt="login")
    assert_ended(client, first)
    assert_ended(client, again)
    assert works(client, nxt)
    assert refresh_with(client, nxt["refresh_token"]).status_code == 200


@pytest.fixture
def eck_id_school(demo: LiveDemo) -> Iterator[None]:
    """The demo's SAML school deriving pseudonyms from the ECK iD (its IdP sends one for every
    student) for one test: the school's subject is then "" for every student."""
    demo.registry._set_school(DEMO_SCHOOL_ID, {SchoolRow.use_eck_id: True})
    try:
        yield
    finally:
        demo.registry._set_school(DEMO_SCHOOL_ID, {SchoolRow.use_eck_id: False})


@pytest.mark.usefixtures("eck_id_school")
def test_the_next_student_at_an_eck_id_schools_shared_laptop_is_another_student(
    demo: LiveDemo,
) -> None:
    """At an ECK iD school the back adapters leave the school's subject empty for every
    student, so the next student is told apart by the ECK iD (the pseudonym's input): the
    previous student's tokens end, and the next student is shown the information notice the
    previous one read (their marks do not carry over). The same student again keeps both."""
    client = refresh_client(demo, "tokens-next-eck-student")
    browser = Browser()
    first = login_as(client, browser, UID)
    session = demo.broker.flow.session(browser.cookies(demo.broker_url)[SSO_COOKIE])
    assert session is not None and session[0].subject == ""
    read = len(browser.notices_seen)
    assert read == 1
    again = login_as(client, browser, UID, prompt="login")  # the same ECK iD
    assert works(client, first) and works(client, again)
    assert len(browser.notices_seen) == read  # the same student's marks carried over
    nxt = login_as(client, browser, "daan.devries", prompt="login")
    assert len(browser.notices_seen) == read + 1  # another student: the notice again
    assert_ended(client, first)
    assert_ended(client, again)
    assert works(client, nxt)
