"""`response_mode=form_post` (OAuth 2.0 Form Post Response Mode), end to end: the broker posts
its answer to the client's redirect URI with an auto-post page (a visible button, no JavaScript
needed) on every path that answers a client, and RFC 8414's metadata document.

Two relying parties: the demo's authlib one (broker/demo/publisher_rp.py), asking for
form_post as ASP.NET Core's handler does, which takes the POST at its redirect URI, redeems the
code and checks the ID token; and the requests-based client of test_oidc_provider_checks.py,
whose redirect URI nobody listens on, for the paths a real platform seldom walks.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from broker.core.model import Declaration
from tests.flows.test_oidc_provider_checks import (
    NOWHERE,
    UID,
    Client,
    id_token_claims,
    register,
)
from tests.support.client import Browser, Form, Page
from tests.support.live import LiveDemo, OidcPublisher

CHAIN = "leermiddelen"
FORM_POST = {"response_mode": "form_post"}


@pytest.fixture(scope="module")
def platform(demo: LiveDemo) -> OidcPublisher:
    """A platform that asks for form_post, as ASP.NET Core's OpenID Connect handler does."""
    return demo.add_oidc_publisher(
        "formpost-platform",
        CHAIN,
        (Declaration("given_name", "To greet the student by name."),),
        released=frozenset({"given_name"}),
        scope="openid profile",
        response_mode="form_post",
    )


@pytest.fixture(scope="module")
def rp(demo: LiveDemo) -> Client:
    return register(demo, "formpost-rp")


def posted_answer(page: Page, redirect_uri: str) -> Form:
    """The one form to `redirect_uri` on the auto-post page (or the error page's button back),
    checked as the page a student gets: no redirect, a button to press without JavaScript,
    its form allowed to leave by the page's Content-Security-Policy, kept from caches."""
    assert page.status in (200, 403) and page.location is None, (page.status, page.location)
    form = page.form(redirect_uri)
    assert form.action == redirect_uri
    assert '<button class="button' in page.text and 'type="submit"' in page.text
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(redirect_uri))
    policy = page.response.headers["Content-Security-Policy"]
    assert f"form-action 'self' {origin}" in policy, policy
    if page.status == 200:  # the auto-post page (a 403 error page is not cached by default)
        assert page.response.headers["Cache-Control"] == "no-store"
    return form


def page_address(page: Page) -> str:
    """The address the auto-post page puts in its own place in the history (autopost.js)."""
    found = re.search(r'data-page-address="([^"]+)"', page.text)
    assert found is not None, page.text[:300]
    return html.unescape(found.group(1))


def redeem(client: Client, params: dict[str, str], fields: dict[str, str]) -> dict[str, Any]:
    assert fields["state"] == params["state"] and fields["iss"] == client.demo.broker_url
    response = client.redeem(fields["code"], params["_verifier"])
    assert response.status_code == 200, response.text
    return id_token_claims(client.demo, response.json()["id_token"], client.client_id)


# -- a platform's login --------------------------------------------------------------------------
def test_a_form_post_platform_gets_the_code_posted_redeems_it_and_checks_the_id_token(
    demo: LiveDemo, platform: OidcPublisher
) -> None:
    browser = Browser("nl")
    login = demo.login(browser, platform.id, UID, deliver=False)
    page = login.final
    form = posted_answer(page, platform.redirect_uri)
    assert set(form.fields) == {"code", "state", "iss"}
    assert form.fields["iss"] == demo.broker_url
    # The code travels in the POST body only: in no address the browser asked for.
    assert not any(form.fields["code"] in url for url in browser.history)
    # In the student's language; Back from the platform lands on the notice's address.
    assert "Verder naar formpost-platform" in page.text
    assert browser.notices_seen and 'data-page-address="/notice/' in page.text

    answered = browser.submit(page, platform.redirect_uri)
    assert answered.status == 200, answered.text[:300]
    received = demo.received(browser, platform.id)
    assert received["sub"] == demo.expected_pseudonym(UID, CHAIN)
    claims = id_token_claims(demo, received["raw_id_token"], platform.id)
    assert claims["sub"] == received["sub"] and claims["given_name"] == "Sanne"

    # The SSO session answers the next login in the same mode, without the school or a notice;
    # Back from the platform then lands on "already signed in", with the way to its site.
    again = demo.login(browser, platform.id, UID, deliver=False).final
    assert not any(url.startswith(demo.school_url) for url in again.visited)
    posted_answer(again, platform.redirect_uri)
    address = f"/sent-on/{platform.id}?{urlencode({'to': platform.redirect_uri}, safe=':/')}"
    assert page_address(again) == address
    back = browser.get(f"{demo.broker_url}{address}")
    assert back.status == 200 and f'href="{platform.base_url}/"' in back.text
    answered = browser.submit(again, platform.redirect_uri)
    assert answered.status == 200, answered.text[:300]
    assert demo.received(browser, platform.id)["sub"] == received["sub"]


# -- the requests-based client: each path that answers a client ---------------------------------
def test_first_login_and_the_sso_session_answer_by_form_post(rp: Client) -> None:
    browser = Browser()
    params = rp.params(**FORM_POST)
    form = posted_answer(rp.front(browser, params), NOWHERE)
    first = redeem(rp, params, form.fields)
    # A second login in the same browser: answered from the SSO session, at once.
    params = rp.params(**FORM_POST)
    query = urlencode({k: v for k, v in params.items() if k[0] != "_"})
    page = browser.get(f"{rp.authorize_url}?{query}", stop=rp._at_client)
    assert page.url.startswith(rp.authorize_url)
    assert redeem(rp, params, posted_answer(page, NOWHERE).fields)["sub"] == first["sub"]


def test_back_links_the_site_the_login_was_answered_at(demo: LiveDemo) -> None:
    """A client with redirect URIs on two sites, answered at the second: Back from it lands on
    "already signed in" with the way to that second site, the one this login used (it was the
    first registered one's). An address the client did not register is never linked: the
    first registered one's site stands in for it."""
    second = "http://127.0.0.1:9/cb"
    client = replace(
        register(demo, "formpost-two-sites", redirect_uris=(NOWHERE, second)), redirect_uri=second
    )
    browser = Browser()
    for _ in range(2):  # the school's answer, then the SSO session's
        page = client.front(browser, client.params(**FORM_POST))
        posted_answer(page, second)
        back = browser.get(f"{demo.broker_url}{page_address(page)}")
        assert back.status == 200 and 'href="http://127.0.0.1:9/"' in back.text, back.text
        assert 'href="http://localhost:9/"' not in back.text
    for forged in ("https://elsewhere.example/cb", f"{second}/more"):
        query = urlencode({"to": forged})
        back = browser.get(f"{demo.broker_url}/sent-on/formpost-two-sites?{query}")
        assert back.status == 200 and 'href="http://localhost:9/"' in back.text
        assert 'href="https://elsewhere' not in back.text


def test_prompt_none_without_a_session_posts_login_required(rp: Client) -> None:
    params = rp.params(prompt="none", **FORM_POST)
    page = rp.front(Browser(), params)
    fields = posted_answer(page, NOWHERE).fields
    assert fields["error"] == "login_required"
    assert fields["state"] == params["state"] and fields["iss"] == rp.demo.broker_url
    assert fields["error_description"].endswith(".")


def test_a_refused_request_is_posted_too(rp: Client) -> None:
    """A refusal when the request arrives (here: no openid scope) goes in the mode asked for."""
    params = rp.params(scope="profile", **FORM_POST)
    fields = posted_answer(rp.front(Browser(), params), NOWHERE).fields
    assert fields["error"] == "invalid_scope" and fields["state"] == params["state"]


def test_the_notice_step_answers_by_form_post(rp: Client) -> None:
    """prompt=consent: the notice's "Continue" is answered with the auto-post page, and Back
    from the platform fetches the notice's own address."""
    browser = Browser()
    params = rp.params(prompt="consent", **FORM_POST)
    page = rp.front(browser, params)
    assert browser.notices_seen, "the notice was not shown"
    form = posted_answer(page, NOWHERE)
    assert 'data-page-address="/notice/' in page.text
    redeem(rp, params, form.fields)


def test_an_error_after_the_school_login_is_posted_by_the_students_button(rp: Client) -> None:
    """The student reads why on the broker's page; its button (not a link) posts the error."""
    mfa = json.dumps(
        {"id_token": {"acr": {"essential": True, "values": ["https://refeds.org/profile/mfa"]}}}
    )
    params = rp.params(claims=mfa, **FORM_POST)
    page = rp.front(Browser(), params)
    assert page.status == 403, page.text[:300]
    assert f'href="{NOWHERE}' not in page.text  # no link with the error in its query
    fields = posted_answer(page, NOWHERE).fields
    assert fields["error"] == "unmet_authentication_requirements"
    assert fields["state"] == params["state"] and fields["iss"] == rp.demo.broker_url


@pytest.mark.parametrize("mode", ["fragment", "query.jwt", "form_post.jwt", "FORM_POST"])
def test_other_response_modes_are_refused_in_the_query(rp: Client, mode: str) -> None:
    page = rp.front(Browser(), rp.params(response_mode=mode))
    assert page.status == 303 and page.location and page.location.startswith(NOWHERE)
    answer = {k: v[0] for k, v in parse_qs(urlsplit(page.location).query).items()}
    assert answer["error"] == "invalid_request"
    assert answer["error_description"] == (
        "The response_mode parameter must be query or form_post: this provider has the "
        "authorization code flow only."
    )


# -- published metadata --------------------------------------------------------------------------
def test_discovery_lists_both_modes_and_rfc_8414_serves_the_same_document(
    demo: LiveDemo,
) -> None:
    discovery = requests.get(f"{demo.broker_url}/.well-known/openid-configuration", timeout=5)
    metadata = requests.get(f"{demo.broker_url}/.well-known/oauth-authorization-server", timeout=5)
    assert metadata.status_code == 200 and metadata.headers["Content-Type"].startswith(
        "application/json"
    )
    assert discovery.json()["response_modes_supported"] == ["query", "form_post"]
    assert metadata.json() == discovery.json()
    # RFC 8414 3: the issuer has no path, so the document is at the root; 3.3: it names it.
    assert metadata.json()["issuer"] == demo.broker_url
    # Read by browser-based clients too, as discovery is: CORS, and a preflight answered.
    assert metadata.headers["Access-Control-Allow-Origin"] == "*"
    assert metadata.headers["Cache-Control"] == discovery.headers["Cache-Control"]
    preflight = requests.options(
        f"{demo.broker_url}/.well-known/oauth-authorization-server",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET"},
        timeout=5,
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET"
    # A wrong method is answered in JSON, as at every endpoint programs call.
    wrong = requests.post(f"{demo.broker_url}/.well-known/oauth-authorization-server", timeout=5)
    assert wrong.status_code == 405 and wrong.json()["error"]
