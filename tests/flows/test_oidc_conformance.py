"""Findings of the OpenID provider's protocol review, as tests through the running broker:
CORS for browser-based public clients, `id_token_hint` and requested `sub` values, the `prompt`
values, and error answers a client's developer can read.

The relying party is the one of test_oidc_provider_checks.py (requests and the test browser;
ID tokens verified with PyJWT against the JWKS). Hints are made here with the broker's own
signing key, so the tests can name any student; a real platform hands back an ID token it got.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey
from lxml import etree

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import ClientAuthMethod
from broker.registry.receipts import ReceiptQuery
from tests.flows.test_oidc_provider_checks import (
    NOWHERE,
    UID,
    Client,
    id_token_claims,
    register,
    store_calls,
)
from tests.support.client import Browser, Form, Page
from tests.support.forge import redirect_message
from tests.support.live import LiveDemo

OTHER = "daan.devries"  # another student of the demo school
SPA_ORIGIN = "http://localhost:5173"
CHAIN = "leermiddelen"  # the chain register() puts its clients in


@pytest.fixture(scope="module")
def rp(demo: LiveDemo) -> Client:
    return register(demo, "conformance-rp")


@pytest.fixture(scope="module")
def spa(demo: LiveDemo) -> Client:
    """A browser-based public client: no secret, PKCE S256 (publishers.md)."""
    return register(demo, "conformance-spa", auth_method=ClientAuthMethod.NONE)


def pseudonym(demo: LiveDemo, uid: str) -> str:
    return demo.expected_pseudonym(uid, CHAIN)


def answer_of(page: Page) -> dict[str, str]:
    assert page.location, (page.status, page.text[:300])
    return {k: v[0] for k, v in parse_qs(urlsplit(page.location).query).items()}


def authorize(client: Client, browser: Browser, params: dict[str, str]) -> Page:
    """The authorization request only: where the broker sends the browser first."""
    query = urlencode({k: v for k, v in params.items() if not k.startswith("_")})
    demo = client.demo
    return browser.get(
        f"{client.authorize_url}?{query}",
        stop=lambda url: client._at_client(url) or url.startswith(demo.school_url),
    )


def choose_school(client: Client, browser: Browser, page: Page) -> Page:
    """On the discovery page, choose the demo school; stops before the school's address."""
    demo = client.demo
    assert demo.shows_discovery(page), page.url
    form = next(f for f in page.forms if ("school", DEMO_SCHOOL_ID) in f.buttons)
    return browser.post(
        form.action,
        {**form.fields, "school": DEMO_SCHOOL_ID},
        stop=lambda url: client._at_client(url) or url.startswith(demo.school_url),
    )


def through_school(client: Client, browser: Browser, page: Page, uid: str) -> Page:
    """From discovery or the school's address on: choose the school, sign in as `uid`."""
    demo = client.demo
    stop = client._at_client
    if demo.shows_discovery(page):
        page = choose_school(client, browser, page)
    if page.location and page.location.startswith(demo.school_url):
        page = browser.get(page.location, stop=stop)
    assert page.url.startswith(f"{demo.school_url}/sso"), page.url
    answer = browser.submit(page, f"{demo.school_url}/sso/pick", {"uid": uid})
    form = answer.form(demo.acs_url)
    return browser.post(form.action, form.fields, stop=stop)


def forces_login(to_school: str) -> bool:
    xml, _ = redirect_message(to_school)
    force: str | None = etree.fromstring(xml).get("ForceAuthn")
    return force == "true"


def redeem(client: Client, params: dict[str, str], code: str) -> dict[str, Any]:
    response = client.redeem(code, params["_verifier"])
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()
    return id_token_claims(client.demo, token["id_token"], client.client_id)


def signed_in(client: Client, uid: str = UID) -> tuple[Browser, dict[str, Any]]:
    """A browser with an SSO session of `uid`, and the ID token claims of that login."""
    browser = Browser()
    params = client.params()
    page = through_school(client, browser, authorize(client, browser, params), uid)
    return browser, redeem(client, params, answer_of(page)["code"])


def hint_for(demo: LiveDemo, sub: str, audience: str, **extra: Any) -> str:
    """An ID token as the broker signs one (its current RS256 key), naming `sub`."""
    key = demo.broker.oidc_front.keys.key_for("RS256")  # type: ignore[union-attr]
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": demo.broker_url,
        "sub": sub,
        "aud": [audience],
        "azp": audience,
    }
    claims.update({"iat": now, "exp": now + 300, "sid": "_s", **extra})
    return jose_jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key)


# -- A: CORS for browser-based public clients ----------------------------------------------------
PREFLIGHT = {
    "Origin": SPA_ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/oidc/token", {"POST"}),
        ("/oidc/userinfo", {"GET", "POST"}),
        ("/.well-known/openid-configuration", {"GET"}),
        ("/oidc/jwks", {"GET"}),
    ],
)
def test_preflights_are_answered_for_any_origin_without_credentials(
    demo: LiveDemo, path: str, methods: set[str]
) -> None:
    with store_calls(demo) as calls:
        answer = requests.options(demo.broker_url + path, headers=PREFLIGHT, timeout=5)
    assert answer.status_code == 204, answer.status_code
    headers = answer.headers
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")} == methods
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert int(headers["Access-Control-Max-Age"]) >= 600
    assert "Access-Control-Allow-Credentials" not in headers
    assert calls == []  # no store, no rate-limit counter


@pytest.mark.parametrize("path", ["/oidc/authorize", "/oidc/end_session"])
def test_navigation_endpoints_answer_no_cors(demo: LiveDemo, path: str) -> None:
    preflight = requests.options(demo.broker_url + path, headers=PREFLIGHT, timeout=5)
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Methods" not in preflight.headers


def test_a_public_client_in_the_browser_logs_in_with_pkce(spa: Client) -> None:
    """What oidc-client-ts does from its page's origin: discovery, the code flow with PKCE,
    the token request, the JWKS and userinfo with a bearer token, each readable cross-origin."""
    demo = spa.demo
    origin = {"Origin": SPA_ORIGIN}
    for path in ("/.well-known/openid-configuration", "/oidc/jwks"):
        document = requests.get(demo.broker_url + path, headers=origin, timeout=5)
        assert document.headers["Access-Control-Allow-Origin"] == "*"
    browser = Browser()
    params = spa.params()
    code = answer_of(through_school(spa, browser, authorize(spa, browser, params), UID))["code"]
    token = requests.post(
        spa.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": spa.redirect_uri,
            "code_verifier": params["_verifier"],
            "client_id": spa.client_id,
        },
        headers=origin,
        timeout=5,
    )
    assert token.status_code == 200, token.text
    assert token.headers["Access-Control-Allow-Origin"] == "*"
    claims = id_token_claims(demo, token.json()["id_token"], spa.client_id)
    assert claims["sub"] == pseudonym(demo, UID)
    bearer = {**origin, "Authorization": f"Bearer {token.json()['access_token']}"}
    info = requests.get(f"{demo.broker_url}/oidc/userinfo", headers=bearer, timeout=5)
    assert info.status_code == 200 and info.json()["sub"] == claims["sub"]
    assert info.headers["Access-Control-Allow-Origin"] == "*"
    # Refusals are readable cross-origin too, the 401's challenge included.
    again = requests.post(
        spa.token_url,
        data={"grant_type": "authorization_code", "code": code, "client_id": spa.client_id},
        headers=origin,
        timeout=5,
    )
    assert again.status_code == 400 and again.headers["Access-Control-Allow-Origin"] == "*"
    refused = requests.get(f"{demo.broker_url}/oidc/userinfo", headers=origin, timeout=5)
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == "*"
    assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"]


# -- B: id_token_hint and requested sub values ---------------------------------------------------
def test_prompt_none_with_the_hint_of_the_student_signed_in_answers(rp: Client) -> None:
    browser, first = signed_in(rp)
    params = rp.params(prompt="none", id_token_hint=hint_for(rp.demo, first["sub"], rp.client_id))
    page = authorize(rp, browser, params)
    assert len(page.visited) == 1  # straight back
    assert redeem(rp, params, answer_of(page)["code"])["sub"] == first["sub"]


def test_an_expired_hint_still_names_the_student(rp: Client) -> None:
    browser, first = signed_in(rp)
    old = hint_for(rp.demo, first["sub"], rp.client_id, iat=1_000_000, exp=1_000_300)
    params = rp.params(prompt="none", id_token_hint=old)
    assert "code" in answer_of(authorize(rp, browser, params))


def test_prompt_none_with_another_students_hint_is_login_required(rp: Client) -> None:
    browser, _ = signed_in(rp)
    params = rp.params(
        prompt="none", id_token_hint=hint_for(rp.demo, pseudonym(rp.demo, OTHER), rp.client_id)
    )
    answer = answer_of(authorize(rp, browser, params))
    assert answer["error"] == "login_required" and "code" not in answer
    assert answer["state"] == params["state"] and answer["iss"] == rp.demo.broker_url
    assert "id_token_hint" in answer["error_description"]


@pytest.mark.parametrize(
    "hint",
    [
        "not-a-token",
        "a.b.c",
        # another key under the broker's kid
        "stranger",
        # issued by the broker to another client
        "other-client",
        # another issuer
        "other-issuer",
    ],
)
def test_a_hint_that_is_no_id_token_of_this_provider_for_this_client_is_invalid_request(
    rp: Client, hint: str
) -> None:
    demo = rp.demo
    sub = pseudonym(demo, UID)
    if hint == "stranger":
        key = RSAKey.generate_key(2048)
        ours = demo.broker.oidc_front.keys.key_for("RS256")  # type: ignore[union-attr]
        claims = {"iss": demo.broker_url, "sub": sub, "aud": [rp.client_id]}
        hint = jose_jwt.encode({"alg": "RS256", "kid": ours.kid}, claims, key)
    elif hint == "other-client":
        hint = hint_for(demo, sub, "checks-other-platform")
    elif hint == "other-issuer":
        hint = hint_for(demo, sub, rp.client_id, iss="https://op.example")
    browser, _ = signed_in(rp)
    params = rp.params(prompt="none", id_token_hint=hint)
    answer = answer_of(authorize(rp, browser, params))
    assert answer["error"] == "invalid_request", answer
    assert answer["state"] == params["state"]
    assert answer["error_description"].startswith("The id_token_hint ")


def test_another_students_hint_means_a_forced_login_and_then_their_code(rp: Client) -> None:
    demo = rp.demo
    browser, first = signed_in(rp)
    wanted = pseudonym(demo, OTHER)
    assert first["sub"] != wanted
    params = rp.params(id_token_hint=hint_for(demo, wanted, rp.client_id))
    page = authorize(rp, browser, params)
    # Not the session's answer, and not its school guessed: the student chooses, and the school
    # is asked for a fresh login (its own session may be the other student's too).
    to_school = choose_school(rp, browser, page)
    assert to_school.location and forces_login(to_school.location)
    page = through_school(rp, browser, to_school, OTHER)
    assert redeem(rp, params, answer_of(page)["code"])["sub"] == wanted


def test_a_fresh_login_of_someone_else_than_the_hint_gets_no_code(rp: Client) -> None:
    demo = rp.demo
    browser, _ = signed_in(rp)
    hint = hint_for(demo, pseudonym(demo, OTHER), rp.client_id)
    params = rp.params(id_token_hint=hint, login_hint=DEMO_SCHOOL_ID)
    to_school = authorize(rp, browser, params)
    # The school hint is kept: straight to the school, with a forced login.
    assert to_school.location and forces_login(to_school.location)
    page = through_school(rp, browser, to_school, UID)  # the session's student again
    assert page.status == 403 and page.location is None
    assert "code=" not in page.text
    link = next(a for a in page.text.split('href="')[1:] if a.startswith(NOWHERE))
    back = parse_qs(urlsplit(link.split('"')[0].replace("&amp;", "&")).query)
    assert back["error"] == ["login_required"]


def test_a_requested_sub_value_is_honoured_like_a_hint(rp: Client) -> None:
    demo = rp.demo
    browser, first = signed_in(rp)
    for member in ("id_token", "userinfo"):
        other = json.dumps({member: {"sub": {"value": pseudonym(demo, OTHER)}}})
        answer = answer_of(authorize(rp, browser, rp.params(prompt="none", claims=other)))
        assert answer["error"] == "login_required"
    mine = json.dumps({"id_token": {"sub": {"value": first["sub"]}}})
    params = rp.params(prompt="none", claims=mine)
    assert (
        redeem(rp, params, answer_of(authorize(rp, browser, params))["code"])["sub"]
        == (first["sub"])
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"id_token": {"sub": {"value": 7}}},
        {"id_token": {"sub": {"values": "abc"}}},
        # two members that name different students: no one can satisfy both
        {"id_token": {"sub": {"value": "a" * 64}}, "userinfo": {"sub": {"value": "b" * 64}}},
    ],
)
def test_impossible_sub_requests_are_invalid_request(rp: Client, claims: dict[str, Any]) -> None:
    answer = answer_of(authorize(rp, Browser(), rp.params(claims=json.dumps(claims))))
    assert answer["error"] == "invalid_request", answer


def test_a_hint_and_a_sub_value_that_disagree_are_invalid_request(rp: Client) -> None:
    demo = rp.demo
    hint = hint_for(demo, pseudonym(demo, UID), rp.client_id)
    claims = json.dumps({"id_token": {"sub": {"value": pseudonym(demo, OTHER)}}})
    answer = answer_of(authorize(rp, Browser(), rp.params(id_token_hint=hint, claims=claims)))
    assert answer["error"] == "invalid_request"


def test_without_a_hint_the_session_answers_in_as_many_store_calls_as_before(rp: Client) -> None:
    """No hint, no sub value: the check costs nothing (is_expected_student answers at once);
    with a hint of the same student, no store round trip more either (the pseudonym is derived,
    not looked up)."""
    browser, first = signed_in(rp)
    with store_calls(rp.demo) as plain:
        authorize(rp, browser, rp.params(prompt="none"))
    hint = hint_for(rp.demo, first["sub"], rp.client_id)
    with store_calls(rp.demo) as hinted:
        authorize(rp, browser, rp.params(prompt="none", id_token_hint=hint))
    assert len(plain) == len(hinted), (plain, hinted)


# -- C: prompt values ----------------------------------------------------------------------------
def test_discovery_lists_the_prompt_values_honoured(demo: LiveDemo) -> None:
    document = requests.get(f"{demo.broker_url}/.well-known/openid-configuration", timeout=5)
    assert document.json()["prompt_values_supported"] == [
        "none",
        "login",
        "consent",
        "select_account",
    ]
    assert document.json()["claims_parameter_supported"] is True


def notice_of(page: Page) -> Form | None:
    """The information notice's "Continue" form, when `page` is the notice."""
    found = [f for f in page.forms if f.method == "post" and "/notice/" in f.action]
    return found[0] if page.status == 200 and found else None


def newest_seq(demo: LiveDemo) -> int:
    return demo.broker.receipts.find(ReceiptQuery(DEMO_SCHOOL_ID), limit=1)[0].seq


@pytest.mark.parametrize("prompt", ["consent", "login consent", "select_account consent"])
def test_prompt_consent_shows_the_notice_although_the_session_showed_it(
    rp: Client, prompt: str
) -> None:
    """Core 3.1.2.1 (prompt=consent) and 11 (offline access): the information notice is the
    broker's prompt before returning information. Shown in this login although the SSO session
    showed this release already; the student's "Continue" is the interaction, and its code's
    ID token verifies. With `consent` alone the session answers at once: the notice comes in
    the authorization request's own response, with no trip to the school."""
    demo = rp.demo
    browser, first = signed_in(rp)
    browser.read_notices = False  # the student looks at the page before continuing
    params = rp.params(prompt=prompt)
    page = authorize(rp, browser, params)
    if prompt == "consent":
        assert page.visited == [page.url] and page.url.startswith(rp.authorize_url)
    else:
        page = through_school(rp, browser, page, UID)
    form = notice_of(page)
    assert form is not None, (page.status, page.url, page.text[:300])
    assert "What " in page.text and "receives" in page.text  # the notice's wording, as ever
    before = newest_seq(demo)  # nothing released and no receipt before "Continue"
    answered = browser.post(form.action, dict(form.fields), stop=rp._at_client)
    answer = answer_of(answered)
    assert answer["state"] == params["state"] and answer["iss"] == demo.broker_url
    assert redeem(rp, params, answer["code"])["sub"] == first["sub"]
    assert newest_seq(demo) == before + 1
    # The platform's next request without prompt=consent: the session answers, no notice.
    plain = rp.params()
    code = answer_of(authorize(rp, browser, plain))["code"]
    assert redeem(rp, plain, code)["sub"] == first["sub"]


def test_prompt_consent_on_a_first_login_shows_the_notice_once(rp: Client) -> None:
    """A first login shows the notice anyway: prompt=consent does not show it a second time
    after "Continue" (the browser presses it whenever it is shown, and counts)."""
    browser = Browser()
    params = rp.params(prompt="consent")
    page = through_school(rp, browser, authorize(rp, browser, params), UID)
    assert len(browser.notices_seen) == 1, browser.notices_seen
    claims = redeem(rp, params, answer_of(page)["code"])
    assert claims["sub"] == pseudonym(rp.demo, UID) and claims["nonce"] == params["nonce"]


def test_prompt_consent_shows_the_notice_in_changes_mode_too(demo: LiveDemo) -> None:
    """A service whose school shows the notice on the first visit and changes only: a student
    whose last receipt shows the same release skips it, unless the platform sends
    prompt=consent."""
    client = register(demo, "conformance-consent-changes")
    demo.broker.receipts.set_notice_mode(DEMO_SCHOOL_ID, client.client_id, "changes")
    signed_in(client)  # the first visit: a receipt of this release
    quiet = Browser(read_notices=False)
    plain = client.params()
    page = through_school(client, quiet, authorize(client, quiet, plain), UID)
    assert notice_of(page) is None and "code" in answer_of(page)
    again = Browser(read_notices=False)
    params = client.params(prompt="consent")
    page = through_school(client, again, authorize(client, again, params), UID)
    form = notice_of(page)
    assert form is not None, (page.status, page.url)
    answered = again.post(form.action, dict(form.fields), stop=client._at_client)
    assert redeem(client, params, answer_of(answered)["code"])["sub"] == pseudonym(demo, UID)


def test_prompt_none_with_consent_is_invalid_request_without_a_session(rp: Client) -> None:
    answer = answer_of(authorize(rp, Browser(), rp.params(prompt="none consent")))
    assert answer["error"] == "invalid_request", answer


@pytest.mark.parametrize(
    "prompt", ["none consent", "none select_account", "none login", "create", "login banana"]
)
def test_prompt_none_with_others_and_unknown_values_are_invalid_request(
    rp: Client, prompt: str
) -> None:
    browser, _ = signed_in(rp)
    answer = answer_of(authorize(rp, browser, rp.params(prompt=prompt)))
    assert answer["error"] == "invalid_request", answer


def test_prompt_select_account_shows_the_schools_despite_the_session(rp: Client) -> None:
    demo = rp.demo
    browser, first = signed_in(rp)
    params = rp.params(prompt="select_account", login_hint=DEMO_SCHOOL_ID)
    page = authorize(rp, browser, params)
    to_school = choose_school(rp, browser, page)
    # The chosen school is asked as for any login: its own session may answer.
    assert to_school.location and not forces_login(to_school.location)
    page = through_school(rp, browser, to_school, OTHER)
    assert redeem(rp, params, answer_of(page)["code"])["sub"] == pseudonym(demo, OTHER)
    assert first["sub"] != pseudonym(demo, OTHER)


# -- D: errors a developer can read -------------------------------------------------------------
def test_a_missing_response_type_is_invalid_request(rp: Client) -> None:
    params = rp.params()
    del params["response_type"]
    answer = answer_of(authorize(rp, Browser(), params))
    assert answer["error"] == "invalid_request"
    assert answer["error_description"] == (
        "The response_type parameter is missing; use response_type=code."
    )


def test_an_unsupported_response_type_is_described_not_echoed(rp: Client) -> None:
    answer = answer_of(authorize(rp, Browser(), rp.params(response_type="token")))
    assert answer["error"] == "unsupported_response_type"
    assert answer["error_description"] == "This provider supports response_type=code only."


@pytest.mark.parametrize(
    "extra",
    [
        {"scope": "profile"},
        {"max_age": "soon"},
        {"response_mode": "fragment"},
        {"claims": "{not json"},
        {"code_challenge_method": "plain"},
        {"request": "e30.e30."},
        {"prompt": "none"},
        {"response_type": "id_token"},
    ],
)
def test_authorization_errors_are_described_in_sentences(rp: Client, extra: dict[str, str]) -> None:
    answer = answer_of(authorize(rp, Browser(), rp.params(**extra)))
    assert "error" in answer
    description = answer["error_description"]
    assert description[0].isupper() and description.endswith("."), description
    assert " " in description


def _token_error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["error_description"]


def test_invalid_client_names_the_method_used_not_the_one_registered(demo: LiveDemo) -> None:
    post = register(demo, "conformance-post", auth_method=ClientAuthMethod.SECRET_POST)
    basic = register(demo, "conformance-basic")
    token_url = post.token_url
    grant = {"grant_type": "authorization_code", "code": "x", "redirect_uri": NOWHERE}

    wrong_method = requests.post(token_url, data=grant, auth=(post.client_id, post.secret or ""))
    status, error, description = _token_error(wrong_method)
    assert (status, error) == (401, "invalid_client")
    # The method used, and that it is not the registered one; never which one that is.
    assert "client_secret_basic" in description and "not the method" in description
    assert "client_secret_post" not in description and "private_key_jwt" not in description
    challenge = wrong_method.headers["WWW-Authenticate"]
    assert challenge.startswith("Basic ") and "client_secret_basic" in challenge

    wrong_secret = requests.post(token_url, data=grant, auth=(basic.client_id, "not-it"))
    status, error, description = _token_error(wrong_secret)
    assert (status, error) == (401, "invalid_client")
    assert description == (
        "Client authentication failed: the client_secret_basic credentials do not hold."
    )

    by_form = requests.post(
        token_url, data={**grant, "client_id": post.client_id, "client_secret": "not-it"}
    )
    assert _token_error(by_form)[:2] == (401, "invalid_client")
    assert "client_secret_post" in _token_error(by_form)[2]

    nobody = requests.post(token_url, data=grant, auth=("nobody-at-all", "x"))
    assert _token_error(nobody)[:2] == (401, "invalid_client")

    garbage = base64.b64encode(b"\xff\xfe:\xff").decode()
    malformed = requests.post(token_url, data=grant, headers={"Authorization": f"Basic {garbage}"})
    assert _token_error(malformed)[:2] == (401, "invalid_client")
    assert malformed.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize("typed", [False, True])
def test_a_client_assertion_nested_past_the_stack_is_a_json_error(
    demo: LiveDemo, typed: bool
) -> None:
    """JSON nested deeper than the interpreter's stack, in a client assertion (read by the
    broker to explain invalid_client, and by authlib's RFC 7523 code when typed): an RFC 6749
    JSON error, never a 500 page."""
    basic = register(demo, f"conformance-deep-{int(typed)}")
    deep = base64.urlsafe_b64encode(b"[" * 1500 + b"]" * 1500).decode().rstrip("=")
    data = {"grant_type": "authorization_code", "code": "x", "client_assertion": f"e30.{deep}.x"}
    if typed:
        data["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    answer = requests.post(basic.token_url, data=data)
    assert 400 <= answer.status_code < 500, answer.status_code
    assert answer.json()["error"] in ("invalid_client", "invalid_request")


@pytest.mark.parametrize(
    "data",
    [
        {"grant_type": "password"},
        {"code": "x"},
        {"grant_type": "authorization_code", "code": "x", "redirect_uri": NOWHERE},
        {"grant_type": "refresh_token", "refresh_token": "x"},
    ],
)
def test_token_errors_are_described_in_sentences(rp: Client, data: dict[str, str]) -> None:
    response = requests.post(rp.token_url, data=data, auth=(rp.client_id, rp.secret or ""))
    assert 400 <= response.status_code < 500
    _, _, description = _token_error(response)
    assert description[0].isupper() and description.endswith("."), description
