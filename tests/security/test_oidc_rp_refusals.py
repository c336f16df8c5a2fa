"""Answers of a school's OpenID provider the broker must refuse (security.md, "As RP").

The school here is a forge (tests/support/oidc_forge.py) whose answers the test controls. A
correct answer is accepted first (the control), so each refusal is caused by the one thing the
test changed. Every refusal is checked for its outcome: a 4xx page with an error id and no stack
trace, the reason code in the audit line, no SSO cookie, and nothing received by any publisher.
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID
from broker.core.model import OidcUpstream, School
from broker.core.pseudonym import derive_chain_pseudonym
from tests.support.client import Browser, Page
from tests.support.hostile import loopback_listener
from tests.support.live import (
    PERSISTENT,
    SSO_COOKIE,
    LiveDemo,
    OidcPublisher,
    free_ports,
    running_demo,
    serve_app,
)
from tests.support.oidc_forge import DELETE, FORGE_SUBJECT, OMIT, ForgeProvider, Forgery

FORGE_SCHOOL_ID = "99QQ00"
CLIENT_ID = "ketenbroker-at-forge"
CLIENT_SECRET = "forge-client-secret-for-tests"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("oidc-refusals-demo")) as live:
        yield live


@pytest.fixture(scope="module")
def forge(demo: LiveDemo) -> ForgeProvider:
    base_url = f"http://localhost:{free_ports(1)}"
    provider = ForgeProvider(
        base_url, CLIENT_ID, CLIENT_SECRET, demo.settings.oidc_callback_url(FORGE_SCHOOL_ID)
    )
    demo.servers.append(serve_app(base_url, provider.app()))
    school = School(
        FORGE_SCHOOL_ID,
        "Forge school",
        base_url,
        subject_attribute="sub",
        oidc=OidcUpstream(base_url, CLIENT_ID, CLIENT_SECRET),
    )
    demo.registry.add_school(school, "")
    demo.registry.set_policy(FORGE_SCHOOL_ID, "leesplank", frozenset({"given_name"}), "test")
    return provider


@pytest.fixture
def forgery(forge: ForgeProvider) -> Iterator[Forgery]:
    forge.forgery = Forgery()
    yield forge.forgery
    forge.forgery = Forgery()


@dataclass
class Attempt:
    browser: Browser
    page: Page
    visited: list[str] = field(default_factory=list)


def login(demo: LiveDemo, forge: ForgeProvider, browser: Browser | None = None) -> Attempt:
    """Start at leesplank naming the forge school; the forge answers at once (no pick page)."""
    browser = browser or Browser()
    start = len(browser.history)
    page = browser.get(f"{demo.publishers['leesplank'].base_url}/login?school={forge.issuer}")
    return Attempt(browser, page, browser.history[start:])


def assert_refused(
    demo: LiveDemo,
    attempt: Attempt,
    caplog: pytest.LogCaptureFixture,
    code: str,
    status: int = 400,
) -> None:
    page = attempt.page
    assert page.status == status, (page.status, page.text[:500])
    assert page.url.startswith(f"{demo.broker_url}/oidc/rp/callback")
    assert page.location is None, "a refusal redirects nowhere"
    assert SSO_COOKIE not in page.cookies_set
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert not demo.answers_publisher(page)
    assert "SAMLResponse" not in page.text
    assert "Error code:" in page.text
    assert "Traceback" not in page.text
    assert f"oidc login refused school={FORGE_SCHOOL_ID} code={code}" in caplog.text
    assert f"refused code={code} " in caplog.text
    for publisher in demo.publishers.values():
        received = attempt.browser.get(f"{publisher.base_url}/received.json")
        assert received.status == 404, f"{publisher.id} received a login"


# -- the control ------------------------------------------------------------------------------


def test_a_correct_answer_is_accepted(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery
) -> None:
    attempt = login(demo, forge)
    assert attempt.page.status == 200, attempt.page.text[:500]
    assert demo.answers_publisher(attempt.page)
    # The code was redeemed with the PKCE verifier and our redirect URI (the forge checks both).
    assert forge.token_requests[-1]["grant_type"] == "authorization_code"
    assert "code_verifier" in forge.token_requests[-1]
    page = attempt.browser.submit(attempt.page, demo.publishers["leesplank"].acs_url)
    assert page.status == 200, page.text[:500]
    received = demo.received(attempt.browser, "leesplank")
    assert received["name_id"]["format"] == PERSISTENT
    assert received["name_id"]["value"] == derive_chain_pseudonym(
        demo.pseudonym_key, "leermiddelen", f"school:{FORGE_SCHOOL_ID}", FORGE_SUBJECT
    )


# -- forged or broken answers -----------------------------------------------------------------

FORGERIES: list[tuple[str, dict[str, Any], str]] = [
    ("issuer_mismatch", {"claims": {"iss": "https://evil.example"}}, "issuer_mismatch"),
    ("wrong_aud", {"claims": {"aud": "another-client"}}, "wrong_audience"),
    (
        "foreign_azp",
        {"claims": {"aud": [CLIENT_ID, "another-client"], "azp": "another-client"}},
        "wrong_audience",
    ),
    ("missing_nonce", {"claims": {"nonce": DELETE}}, "nonce_mismatch"),
    ("foreign_nonce", {"claims": {"nonce": "nonce-of-another-login"}}, "nonce_mismatch"),
    ("bad_signature", {"signing": "stranger"}, "bad_signature"),
    ("alg_none", {"signing": "none"}, "alg_not_allowed"),
    ("hs256_with_public_key", {"signing": "hs256_public"}, "alg_not_allowed"),
    ("unknown_kid", {"signing": "stranger", "header": {"kid": "forge-2"}}, "unknown_kid"),
    ("expired", {"claims": {"exp": 1_000_000_000, "iat": 999_999_000}}, "expired"),
    ("userinfo_sub_mismatch", {"userinfo": {"sub": "someone-else"}}, "userinfo_sub_mismatch"),
    ("missing_sub", {"claims": {"sub": DELETE}}, "malformed_id_token"),
    # OIDC Core 2: at most 255 ASCII characters (review-oidc: any text passed before).
    ("long_sub", {"claims": {"sub": "s" * 256}}, "malformed_id_token"),
    ("non_ascii_sub", {"claims": {"sub": "\u00e9l\u00e8ve-1"}}, "malformed_id_token"),
    ("nul_in_sub", {"claims": {"sub": "forge\u0000subject"}}, "malformed_id_token"),
    ("iss_parameter_missing", {"iss_parameter": OMIT}, "issuer_missing"),
]


@pytest.mark.parametrize(
    ("changes", "code"), [(c, code) for _, c, code in FORGERIES], ids=[n for n, _, _ in FORGERIES]
)
def test_forged_answers_are_refused(
    demo: LiveDemo,
    forge: ForgeProvider,
    forgery: Forgery,
    caplog: pytest.LogCaptureFixture,
    changes: dict[str, Any],
    code: str,
) -> None:
    for name, value in changes.items():
        setattr(forgery, name, value)
    assert_refused(demo, login(demo, forge), caplog, code)


def test_mix_up_callback_naming_another_provider_is_refused(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, caplog: pytest.LogCaptureFixture
) -> None:
    # RFC 9207: the answer says it comes from another registered school's provider.
    other = f"http://localhost:{demo.port + 5}"
    assert demo.registry.schools_by_idp(other)
    forgery.iss_parameter = other
    assert_refused(demo, login(demo, forge), caplog, "issuer_mismatch")


def test_an_answer_on_another_schools_callback_is_never_redeemed(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, caplog: pytest.LogCaptureFixture
) -> None:
    """The mix-up attack (RFC 9700 4.4): the student was sent to one school's provider, and an
    answer arrives on another school's callback, without `iss` (as from a provider that does not
    send one). Its code must not be redeemed anywhere, and the login ends."""
    forgery.answer_at = demo.settings.oidc_callback_url(DEMO_OIDC_SCHOOL_ID)
    forgery.iss_parameter = OMIT
    requests_before = len(forge.token_requests)
    attempt = login(demo, forge)
    page = attempt.page
    assert page.status == 400, page.text[:500]
    assert page.url.startswith(demo.settings.oidc_callback_url(DEMO_OIDC_SCHOOL_ID))
    assert "refused code=callback_mismatch " in caplog.text
    assert len(forge.token_requests) == requests_before  # the code went nowhere
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert not demo.answers_publisher(page)
    # The state was spent: the same answer on the right callback finds no login any more.
    right = page.url.replace(
        demo.settings.oidc_callback_url(DEMO_OIDC_SCHOOL_ID),
        demo.settings.oidc_callback_url(FORGE_SCHOOL_ID),
    )
    assert attempt.browser.get(right).status == 400


def test_unknown_kid_refetches_the_key_set_at_most_once_a_minute(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, caplog: pytest.LogCaptureFixture
) -> None:
    forgery.signing, forgery.header = "stranger", {"kid": "forge-rotated"}
    before = forge.jwks_fetches
    for _ in range(3):
        assert_refused(demo, login(demo, forge), caplog, "unknown_kid")
    assert forge.jwks_fetches - before <= 1


def test_a_replayed_callback_is_refused(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, caplog: pytest.LogCaptureFixture
) -> None:
    attempt = login(demo, forge)
    assert attempt.page.status == 200 and demo.answers_publisher(attempt.page)
    # The school's answer arrived at the callback (the notice came after it, on its own URL).
    callback = next(
        url
        for url in reversed(attempt.browser.history)
        if url.startswith(f"{demo.broker_url}/oidc/rp/callback")
    )
    # The same browser sends the callback again (Back into the school's page, which answers
    # once more): the login record (state) was used up, and nothing of the answer is used, nor
    # its code redeemed; the page says the student is signed in already, with the way there.
    token_requests = len(forge.token_requests)
    again = attempt.browser.get(callback)
    assert again.status == 200, again.text[:500]
    assert "<h1>You are already signed in to Leesplank (demo publisher)</h1>" in again.text
    assert f'href="{demo.publishers["leesplank"].base_url}/"' in again.text
    assert SSO_COOKIE not in again.cookies_set
    assert not demo.answers_publisher(again)
    assert "Traceback" not in again.text
    assert len(forge.token_requests) == token_requests
    # Another browser (an attacker who saw the URL) has no login record for that state at all.
    stranger = Browser()
    stolen = stranger.get(callback)
    assert stolen.status == 400, stolen.text[:500]
    assert SSO_COOKIE not in stranger.cookies(demo.broker_url)
    assert not demo.answers_publisher(stolen)


def test_a_callback_without_the_browsers_cookie_leaves_the_login_to_the_browser(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone who learnt the callback URL (state and code) cannot spend the student's login:
    without the browser's cookie the record does not open, and nothing of it is used up."""
    browser = Browser()
    start = f"{demo.publishers['leesplank'].base_url}/login?school={forge.issuer}"
    callbacks = demo.settings.oidc_callback_url(FORGE_SCHOOL_ID)
    callback = browser.get(start, stop=lambda url: url.startswith(callbacks)).location
    assert callback and "state=" in callback and "code=" in callback
    other_login = Browser()  # a browser with a broker cookie of its own
    login(demo, forge, other_login)
    requests_before = len(forge.token_requests)
    for stranger in (Browser(), other_login):
        refused = stranger.get(callback)
        assert refused.status == 400, refused.text[:500]
        assert "Error code:" in refused.text and "Traceback" not in refused.text
        assert not demo.answers_publisher(refused)
    # A browser without any broker cookie hears that cookies are blocked; one with a cookie of
    # its own, that this login is not (or no longer) its.
    assert caplog.text.count("refused code=cookies_blocked ") == 1
    assert caplog.text.count("refused code=state_expired ") == 1
    assert len(forge.token_requests) == requests_before  # the code went nowhere
    # The student's own browser completes the login with the same answer.
    page = browser.get(callback)
    assert page.status == 200, page.text[:500]
    assert demo.answers_publisher(page)
    assert SSO_COOKIE in browser.cookies(demo.broker_url)


def test_a_school_error_ends_the_login_without_a_session(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, caplog: pytest.LogCaptureFixture
) -> None:
    forgery.error = "access_denied"
    attempt = login(demo, forge)
    page = attempt.page
    assert page.status == 502, page.text[:500]
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert "Traceback" not in page.text
    assert f"oidc login refused school={FORGE_SCHOOL_ID} code=upstream_status" in caplog.text
    # The student may carry the (signed) refusal to the service; nothing is sent by itself.
    assert not any(f.css_class == "autopost" for f in page.forms)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        # Entra ID's "user not assigned to the application".
        ("access_denied", "answered that it does not allow this sign-in."),
        ("temporarily_unavailable", "answered that it is not available right now."),
    ],
)
def test_a_school_error_says_what_the_school_answered_and_offers_to_try_again(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, error: str, said: str
) -> None:
    """The page an unsigned SAML "no" gets: what the school answered, "Try again" and the
    school choice for the same login; the platform can still be told, by the page's button
    through the broker (this SAML platform hears AuthnFailed; an OIDC one access_denied). A
    reload of the refused answer shows the ways on again. "Try again" asks the provider which
    account (a student signed in with the wrong one), and its answer completes the login."""
    forgery.error = error
    attempt = login(demo, forge)
    page = attempt.page
    assert page.status == 502, page.text[:500]
    assert "<h1>Your school did not sign you in</h1>" in page.text
    assert f"Your school&#39;s sign-in service {said}" in page.text
    assert "in a few minutes" not in page.text
    # Leesplank (SAML) can be told by the page's button, which ends the login at the broker.
    retry = page.form(f"{demo.broker_url}/discovery")
    login_id = retry.fields["login"]
    assert page.form(f"{demo.broker_url}/back-to-platform").fields == {"login": login_id}
    assert ">Back to Leesplank (demo publisher)</button>" in page.text
    assert retry.fields["school"] == FORGE_SCHOOL_ID
    assert f'href="/discovery?login={login_id}">Choose your school again.</a>' in page.text
    assert forge.issuer in page.response.headers["Content-Security-Policy"]
    # The callback reloaded: stale, and the same ways on (not a dead end).
    reloaded = attempt.browser.get(page.url)
    assert reloaded.status == 400, reloaded.text[:500]
    assert "<h1>This sign-in attempt is over</h1>" in reloaded.text
    assert reloaded.form(f"{demo.broker_url}/discovery").fields == retry.fields
    assert reloaded.form(f"{demo.broker_url}/back-to-platform").fields == {"login": login_id}

    forgery.error = None
    again = attempt.browser.submit(page, f"{demo.broker_url}/discovery")
    assert forge.last_authorize.get("prompt") == "select_account"
    assert again.status == 200, again.text[:500]
    assert demo.answers_publisher(again)
    assert SSO_COOKIE in attempt.browser.cookies(demo.broker_url)


def test_unmet_authentication_requirements_is_an_assurance_refusal(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, caplog: pytest.LogCaptureFixture
) -> None:
    forgery.error = "unmet_authentication_requirements"
    attempt = login(demo, forge)
    assert attempt.page.status == 403, attempt.page.text[:500]
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert f"oidc login refused school={FORGE_SCHOOL_ID} code=assurance_not_met" in caplog.text


# -- when the school says the student logged in (auth_time) -------------------------------------


@pytest.fixture(scope="module")
def forcing(demo: LiveDemo, forge: ForgeProvider) -> OidcPublisher:
    """An OIDC publisher that passes prompt=login on (and asks for no attributes)."""
    return demo.add_oidc_publisher("forcing-rp", "leermiddelen", scope="openid")


def forced_login(demo: LiveDemo, forge: ForgeProvider, publisher: OidcPublisher) -> Attempt:
    """prompt=login at `publisher` naming the forge school: the school is asked to log the
    student in afresh, in both ways OIDC has (prompt=login, max_age=0)."""
    browser = Browser()
    page = browser.get(f"{publisher.base_url}/login?school={FORGE_SCHOOL_ID}&prompt=login")
    asked = forge.last_authorize
    assert (asked.get("prompt"), asked.get("max_age")) == ("login", "0"), asked
    return Attempt(browser, page)


def test_a_fresh_login_after_prompt_login_is_accepted(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, forcing: OidcPublisher
) -> None:
    # The student spent 20 s at the school: a login after they left (the control).
    forgery.claims = {"auth_time": int(time.time()) - 20}
    attempt = forced_login(demo, forge, forcing)
    assert attempt.page.status == 200 and attempt.page.url.startswith(forcing.base_url)
    assert SSO_COOKIE in attempt.browser.cookies(demo.broker_url)


def test_a_school_that_ignores_prompt_login_is_refused_and_the_service_hears_login_required(
    demo: LiveDemo,
    forge: ForgeProvider,
    forgery: Forgery,
    forcing: OidcPublisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The school answers from its own session of ten minutes ago."""
    forgery.claims = {"auth_time": int(time.time()) - 600}
    attempt = forced_login(demo, forge, forcing)
    page = attempt.page
    assert page.status == 403, page.text[:500]
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert "refused code=fresh_login_ignored " in caplog.text
    hrefs = (a.split('"')[0] for a in page.text.split('href="')[1:])
    back = next(a for a in hrefs if a.startswith(f"{forcing.base_url}/callback"))
    query = parse_qs(urlsplit(html.unescape(back)).query)
    assert query["error"] == ["login_required"]
    assert "fresh one prompt=login asks for" in query["error_description"][0]


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"auth_time": DELETE}, "no_auth_time"),  # max_age=0 obliges the provider to send it
        ({"auth_time": 4_102_444_800}, "authn_instant_in_future"),  # 2100-01-01
    ],
    ids=["no_auth_time", "in_the_future"],
)
def test_a_forced_login_without_a_usable_auth_time_is_refused(
    demo: LiveDemo,
    forge: ForgeProvider,
    forgery: Forgery,
    forcing: OidcPublisher,
    caplog: pytest.LogCaptureFixture,
    claims: dict[str, Any],
    code: str,
) -> None:
    forgery.claims = claims
    attempt = forced_login(demo, forge, forcing)
    assert attempt.page.status == 400, attempt.page.text[:500]
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert f"refused code={code} " in caplog.text


def test_an_auth_time_in_the_future_is_refused_without_prompt_login(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, caplog: pytest.LogCaptureFixture
) -> None:
    """Refused by the flow (login/authn_instant.py) for either protocol, after the school's
    answer was verified: so no `oidc login refused` line, the page's refusal line only."""
    forgery.claims = {"auth_time": int(time.time()) + 3600}
    attempt = login(demo, forge)
    assert attempt.page.status == 400, attempt.page.text[:500]
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert not demo.answers_publisher(attempt.page)
    assert "refused code=authn_instant_in_future " in caplog.text


# -- JOSE header tricks (issue 8) ---------------------------------------------------------------


def _stranger_jwk(forge: ForgeProvider) -> dict[str, Any]:
    return dict(forge.stranger.as_dict(private=False))


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u"])
def test_keys_named_in_the_token_header_are_never_used_or_fetched(
    demo: LiveDemo,
    forge: ForgeProvider,
    forgery: Forgery,
    caplog: pytest.LogCaptureFixture,
    header: str,
) -> None:
    """Signed by a stranger's key that the header embeds (`jwk`) or points at (`jku`, `x5u`,
    here a loopback listener): only the provider's JWKS counts, and nothing is fetched."""
    with loopback_listener() as listener:
        forgery.signing = "stranger"
        forgery.header = (
            {"jwk": _stranger_jwk(forge)} if header == "jwk" else {header: listener.url}
        )
        # An embedded key is refused as a malformed token before any key is looked at.
        code = "malformed_id_token" if header == "jwk" else "bad_signature"
        assert_refused(demo, login(demo, forge), caplog, code)
    assert listener.hits == []


@pytest.mark.parametrize(
    "kid", ["../../../../dev/null", "forge-1' OR '1'='1", "", "x" * 5000, "forge-1\u0000"]
)
def test_a_crafted_kid_finds_no_key(
    demo: LiveDemo,
    forge: ForgeProvider,
    forgery: Forgery,
    caplog: pytest.LogCaptureFixture,
    kid: str,
) -> None:
    """A kid is a name looked up among the provider's keys, never a path or a query."""
    forgery.signing, forgery.header = "stranger", {"kid": kid}
    attempt = login(demo, forge)
    assert attempt.page.status == 400, attempt.page.text[:300]
    # Refused by the length or shape check of the token, or by the key lookup.
    assert any(
        f"refused code={code} " in caplog.text
        for code in ("unknown_kid", "bad_signature", "malformed_id_token")
    )
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert not demo.answers_publisher(attempt.page)


def test_an_oversized_id_token_is_refused(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, caplog: pytest.LogCaptureFixture
) -> None:
    """Two megabytes of claims: cut off by the outbound size cap while streaming, never parsed.
    The school failed, so the service may be told so (a signed error without an assertion)."""
    forgery.claims = {"padding": "x" * 2_000_000}
    attempt = login(demo, forge)
    page = attempt.page
    assert page.status == 502, page.status
    assert page.location is None
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert "Error code:" in page.text
    for form in page.forms:
        if "SAMLResponse" in form.fields:
            answer = base64.b64decode(form.fields["SAMLResponse"])
            assert b"Assertion" not in answer and b"status:Success" not in answer
    assert f"oidc login refused school={FORGE_SCHOOL_ID} code=response_too_large" in caplog.text


# -- the token endpoint's answer (review-oidc) ---------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,  # 100 kB, within the size cap, nested past Python's parser's stack
        '{"a":' * 40_000 + "1" + "}" * 40_000,
        "[]",
        '"a token"',
        "NaN",
    ],
    ids=["nested_arrays", "nested_objects", "array", "string", "nan"],
)
def test_a_token_response_that_is_no_json_object_is_token_refused(
    demo: LiveDemo,
    forge: ForgeProvider,
    forgery: Forgery,
    caplog: pytest.LogCaptureFixture,
    body: str,
) -> None:
    """RFC 6749 5.1: a JSON object. A provider (or whoever answers in its name) that nests
    arrays deeper than the parser's stack made the callback fail with a 500 (RecursionError)
    before review-oidc; now it is the school's failure like any other unusable answer."""
    forgery.token_body = body
    attempt = login(demo, forge)
    page = attempt.page
    assert page.status == 502, page.status
    assert page.location is None
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert "Error code:" in page.text and "Traceback" not in page.text
    # The school failed: the service may be told so, never given an assertion.
    for form in page.forms:
        if "SAMLResponse" in form.fields:
            answer = base64.b64decode(form.fields["SAMLResponse"])
            assert b"Assertion" not in answer and b"status:Success" not in answer
    assert f"oidc login refused school={FORGE_SCHOOL_ID} code=token_refused" in caplog.text
    assert "RecursionError" not in caplog.text


def test_userinfo_cannot_name_the_school_the_signed_id_token_did_not(
    demo: LiveDemo, forge: ForgeProvider, forgery: Forgery, caplog: pytest.LogCaptureFixture
) -> None:
    """Through a board's issuer (its logins must name their school), the signed ID token names
    another school under one name of the attribute (nlEduPersonHomeOrganizationId), userinfo the
    chosen one under another (`school_id`). One attribute: the ID token's word stands, so the
    login is refused (`other_school`), never taken as the chosen school's."""
    demo.registry.set_idp_names_school(FORGE_SCHOOL_ID, True)
    try:
        forgery.claims = {"nlEduPersonHomeOrganizationId": "99YY00", "given_name": "Sanne"}
        forgery.userinfo = {"school_id": FORGE_SCHOOL_ID}
        attempt = login(demo, forge)
    finally:
        demo.registry.set_idp_names_school(FORGE_SCHOOL_ID, False)
    page = attempt.page
    assert page.status == 403, page.text[:500]
    assert page.url.startswith(f"{demo.broker_url}/oidc/rp/callback")
    assert f"oidc login refused school={FORGE_SCHOOL_ID} code=other_school" in caplog.text
    assert SSO_COOKIE not in attempt.browser.cookies(demo.broker_url)
    assert not demo.answers_publisher(page)
