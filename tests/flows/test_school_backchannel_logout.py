"""A school's OpenID provider ends the student's session at the broker server to server
(OpenID Connect Back-Channel Logout 1.0, the broker as the school's relying party).

One browser logs in through the demo OIDC school at an OIDC publisher registered for
back-channel logout and at a SAML publisher (the demo's Leesplank). The school then POSTs a
logout token to the broker's back-channel logout URI (the demo school's "log out (back-channel)"
button, `/logout-everywhere`): the broker's SSO session is gone (the next login goes to the
school again), the OIDC publisher receives a logout token that PyJWT accepts, and the SAML
publisher, which only a browser could carry a LogoutRequest to, is counted as not told.
Tokens that do not hold are refused with 400 and end nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from joserfc import jws
from joserfc.jwk import OctKey, RSAKey

from broker.cli.demo import DEMO_OIDC_CLIENT_ID, DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from broker.core.errors import StoreUnavailable
from broker.oidc.rp_discovery import JWKS_REFETCH_INTERVAL, ProviderDirectory
from broker.web import metrics
from broker.web.browser import SSO_COOKIE
from tests.flows.test_oidc_logout import recorder, school_op_login
from tests.flows.test_oidc_school import op_url
from tests.flows.test_operations_endpoints import sample
from tests.support.client import Browser
from tests.support.live import LiveDemo, OidcPublisher
from tests.support.logout import LOGOUT_EVENT, broker_logout_claims, carry_saml_posts, peer_logouts

__all__ = ["recorder"]  # the fixture, imported for this module's tests

SAML_PUBLISHER = "leesplank"
# A student no other logout test uses: the school's button ends all of its sessions.
STUDENT = "fatima.elamrani"


@pytest.fixture(scope="module")
def vlinder(demo: LiveDemo) -> OidcPublisher:
    """An OIDC publisher registered for back-channel logout (the demo relying party)."""
    return demo.add_oidc_publisher("vlinder", "leermiddelen", scope="openid", logout=True)


def backchannel_url(demo: LiveDemo, school: str = DEMO_OIDC_SCHOOL_ID) -> str:
    return f"{demo.broker_url}/oidc/rp/backchannel-logout/{school}"


def school_key(demo: LiveDemo) -> RSAKey:
    key = RSAKey.import_key((demo.directory / "peers" / "school-op.key").read_bytes())
    key.ensure_kid()
    return key


def logout_token(
    demo: LiveDemo,
    sid: str | None,
    *,
    key: RSAKey | OctKey | None = None,
    header: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    **changes: Any,
) -> str:
    """A logout token as the demo school would sign it, with `changes` and without `drop`."""
    key = key or school_key(demo)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": op_url(demo),
        "aud": DEMO_OIDC_CLIENT_ID,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(12),
        "events": {LOGOUT_EVENT: {}},
        "sub": "someone",
        **({"sid": sid} if sid is not None else {}),
        **changes,
    }
    claims = {k: v for k, v in claims.items() if k not in drop}
    head = {"alg": "RS256", "kid": str(school_key(demo).kid), "typ": "logout+jwt"}
    head.update(header or {})
    if head["typ"] is None:
        del head["typ"]  # untyped (joserfc's jwt.encode would add `typ: JWT`)
    # The claims as JSON in ASCII, \u escapes and all (jwt.encode writes UTF-8, which cannot
    # carry the lone surrogate one refusal sends).
    payload = json.dumps(claims).encode()
    return jws.serialize_compact(head, payload, key, algorithms=[head["alg"]])


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'logout+jwt'})}.{part(claims)}."


def post(demo: LiveDemo, token: str, school: str = DEMO_OIDC_SCHOOL_ID) -> requests.Response:
    response = requests.post(
        backchannel_url(demo, school), data={"logout_token": token}, timeout=30
    )
    assert response.headers["Cache-Control"] == "no-store"
    return response


def log_in_both(demo: LiveDemo, publisher: str) -> tuple[Browser, str, str]:
    """A session through the OIDC school at `publisher` and at the SAML publisher; the
    browser, its SSO token and the school's sid for it."""
    browser = Browser()
    login = school_op_login(demo, browser, publisher, STUDENT)
    assert login.went_to(f"{op_url(demo)}/authorize")
    base = demo.publishers[SAML_PUBLISHER].base_url
    page = carry_saml_posts(browser, browser.get(f"{base}/login?school={op_url(demo)}"))
    assert page.status == 200 and page.url.startswith(base), (page.url, page.text[:300])
    token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    session = demo.broker.flow.session(token)
    assert session is not None
    sid = session[0].upstream_session["sid"]
    assert demo.broker.school_logout.index.find(DEMO_OIDC_SCHOOL_ID, sid) == token
    return browser, token, sid


def logs_out_everywhere(issuer: str, uid: str) -> list[int]:
    """The school's "log out (back-channel)" button for `uid` (the demo provider at `issuer`):
    the broker's answer to each logout token it sent."""
    answer = requests.post(
        f"{issuer}/logout-everywhere",
        data={"uid": uid},
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    statuses: list[int] = answer.json()["statuses"]
    return statuses


def goes_to_school(demo: LiveDemo, browser: Browser) -> bool:
    base = demo.publishers[SAML_PUBLISHER].base_url
    page = browser.get(f"{base}/login?school={op_url(demo)}")
    return page.url.startswith(f"{op_url(demo)}/authorize")


def not_told() -> float:
    return sample(
        metrics.render()[0].decode(), "ketenbroker_school_logout_services_total", status="not_told"
    )


def test_the_school_ends_the_session_and_the_oidc_publisher_hears_of_it(
    demo: LiveDemo, recorder: tuple[str, list[bytes]]
) -> None:
    uri, bodies = recorder
    heard = demo.add_oidc_publisher(
        f"heard-bcl-{len(demo.publishers)}",
        "leermiddelen",
        scope="openid",
        backchannel_logout_uri=uri,
    )
    browser, sso_token, sid = log_in_both(demo, heard.id)
    received = demo.received(browser, heard.id)
    saml_before = len(peer_logouts(browser, demo.publishers[SAML_PUBLISHER].base_url))
    not_told_before = not_told()

    statuses = logs_out_everywhere(op_url(demo), STUDENT)
    assert statuses and set(statuses) == {200}, statuses

    # The SSO session and its filing under the sid are gone.
    assert demo.broker.flow.session(sso_token) is None
    assert demo.broker.session_services.read(sso_token).participants == ()
    assert demo.broker.school_logout.index.find(DEMO_OIDC_SCHOOL_ID, sid) is None
    # The OIDC publisher received a logout token of the broker's, as PyJWT reads it.
    assert len(bodies) == 1
    token = bodies[0].decode().removeprefix("logout_token=")
    claims = broker_logout_claims(demo, token, heard.id)
    assert claims["sid"] == received["session_index"]
    assert claims["sub"] == received["sub"]
    # The SAML publisher could only be told through the browser: it was not, and is counted.
    assert len(peer_logouts(browser, demo.publishers[SAML_PUBLISHER].base_url)) == saml_before
    # (At least: the demo school ends every session it holds for this student, and other tests
    # sharing the demo may have left some with SAML services of their own.)
    assert not_told() >= not_told_before + 1
    # The next login goes to the school again.
    assert goes_to_school(demo, browser)


def test_the_demo_publisher_ends_its_own_session(demo: LiveDemo, vlinder: OidcPublisher) -> None:
    browser, sso_token, sid = log_in_both(demo, vlinder.id)
    response = post(demo, logout_token(demo, sid))
    assert response.status_code == 200, response.text
    assert demo.broker.flow.session(sso_token) is None
    assert demo.received(browser, vlinder.id)["ended_by_back_channel"] is True


@pytest.mark.parametrize("typ", ["JWT", None])
def test_a_token_typed_jwt_or_untyped_ends_the_session(
    demo: LiveDemo, vlinder: OidcPublisher, typ: str | None
) -> None:
    """Keycloak up to 24 types its logout tokens `JWT`; the claims, not the type, keep an ID
    token from passing (rp_logout_token.py)."""
    _, sso_token, sid = log_in_both(demo, vlinder.id)
    token = logout_token(demo, sid, header={"typ": typ})
    if typ is None:
        head = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
        assert "typ" not in head, head
    response = post(demo, token)
    assert response.status_code == 200, response.text
    assert demo.broker.flow.session(sso_token) is None


def test_a_replayed_token_is_refused(demo: LiveDemo, vlinder: OidcPublisher) -> None:
    _, sso_token, sid = log_in_both(demo, vlinder.id)
    token = logout_token(demo, sid)
    assert post(demo, token).status_code == 200
    assert demo.broker.flow.session(sso_token) is None
    again = post(demo, token)
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_request", "error_description": "replay"}


def test_a_store_failure_while_ending_leaves_the_jti_for_the_schools_retry(
    demo: LiveDemo, vlinder: OidcPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails after the jti was taken and before the session ended: the school hears
    503 and sends the token again, which ends the session instead of meeting its own jti as a
    replay (before 2026-11-30: 400 `replay`, and the session stood on)."""
    _, sso_token, sid = log_in_both(demo, vlinder.id)
    token = logout_token(demo, sid)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("redis: ConnectionError")

    with monkeypatch.context() as patch:
        patch.setattr(type(demo.broker.school_logout), "end_any", down)
        failed = post(demo, token)
    assert failed.status_code == 503
    assert failed.json() == {"error": "temporarily_unavailable"}
    assert demo.broker.flow.session(sso_token) is not None

    retry = post(demo, token)
    assert retry.status_code == 200, retry.text
    assert demo.broker.flow.session(sso_token) is None
    # Once it did its work the jti is used up: a further copy is a replay.
    assert post(demo, token).json()["error_description"] == "replay"


def test_a_valid_token_for_no_session_is_answered_200(demo: LiveDemo) -> None:
    """Nothing to end (never known, ended, expired): the token holds, so the logout did what
    it asks; the spec's 400 is for a logout that failed."""
    response = post(demo, logout_token(demo, "a-sid-the-broker-never-saw"))
    assert response.status_code == 200
    assert response.text == ""


@pytest.fixture(scope="module")
def standing(demo: LiveDemo, vlinder: OidcPublisher) -> Iterator[tuple[str, str]]:
    """One session that every refused token names (and none may end)."""
    _, sso_token, sid = log_in_both(demo, vlinder.id)
    yield sso_token, sid
    assert demo.broker.flow.session(sso_token) is not None, "a refused token ended the session"


OTHER_KEY = RSAKey.generate_key(2048)

REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "another key": ({"key": OTHER_KEY}, "bad_signature"),
    "another key and kid": ({"key": OTHER_KEY, "header": {"kid": "k2"}}, "unknown_kid"),
    "wrong aud": ({"aud": "someone-else"}, "wrong_audience"),
    "wrong iss": ({"iss": "https://other.example"}, "issuer_mismatch"),
    "nonce present": ({"nonce": "n"}, "nonce_present"),
    "no events": ({"drop": ("events",)}, "no_event"),
    "other event": ({"events": {"urn:other": {}}}, "no_event"),
    "expired iat": ({"iat": int(time.time()) - 3600, "drop": ("exp",)}, "expired"),
    # Past exp by more than the clock skew (180 s) while iat is still within its age (300 s +
    # skew): the exp check alone refuses it.
    "expired exp": ({"iat": int(time.time()) - 400, "exp": int(time.time()) - 250}, "expired"),
    "future iat": ({"iat": int(time.time()) + 3600}, "issued_in_future"),
    "no jti": ({"drop": ("jti",)}, "malformed_logout_token"),
    # JSON can hold a lone surrogate, which no UTF-8 spells: the Redis store's client raised on
    # such a jti (a 500), the memory store took it (`test_a_sid_that_is_no_text_is_refused`).
    "jti no text": ({"jti": json.loads('"\\udc80x"')}, "malformed_logout_token"),
    "typed as an access token": ({"header": {"typ": "at+jwt"}}, "wrong_token_type"),
    # Signed with a shared secret (the client secret, say): not an algorithm the school has.
    "HS256": ({"key": OctKey.import_key(b"k" * 32), "header": {"alg": "HS256"}}, "alg_not_allowed"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_tokens_end_nothing(demo: LiveDemo, standing: tuple[str, str], case: str) -> None:
    sso_token, sid = standing
    options, code = REFUSALS[case]
    token = logout_token(demo, sid, **options)
    response = post(demo, token)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "invalid_request", "error_description": code}
    assert demo.broker.flow.session(sso_token) is not None


@pytest.mark.parametrize("case", ["another key", "wrong aud", "replay"])
def test_a_refusal_is_logged_once_with_its_reason(
    demo: LiveDemo, standing: tuple[str, str], caplog: pytest.LogCaptureFixture, case: str
) -> None:
    _, sid = standing
    if case == "replay":
        token = logout_token(demo, "a-sid-the-broker-never-saw")
        assert post(demo, token).status_code == 200
        code = "replay"
    else:
        options, code = REFUSALS[case]
        token = logout_token(demo, sid, **options)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="broker"):
        response = post(demo, token)
    assert response.status_code == 400
    refused = [r.getMessage() for r in caplog.records if "logout token refused" in r.getMessage()]
    assert refused == [f"school logout token refused school={DEMO_OIDC_SCHOOL_ID} code={code}"]


def test_unsigned_and_sub_only_tokens_are_refused(
    demo: LiveDemo, standing: tuple[str, str]
) -> None:
    sso_token, sid = standing
    now = int(time.time())
    claims = {
        "iss": op_url(demo),
        "aud": DEMO_OIDC_CLIENT_ID,
        "iat": now,
        "jti": "x",
        "events": {LOGOUT_EVENT: {}},
        "sid": sid,
    }
    response = post(demo, unsigned(claims))
    assert response.status_code == 400
    assert response.json()["error_description"] == "alg_not_allowed"
    sub_only = post(demo, logout_token(demo, None, sub="the-student"))
    assert sub_only.status_code == 400
    assert sub_only.json()["error_description"] == "sid_required"
    assert demo.broker.flow.session(sso_token) is not None


def test_a_sid_that_is_no_text_is_refused(demo: LiveDemo, standing: tuple[str, str]) -> None:
    """A lone surrogate in the sid (JSON can hold one): the filing's HMAC could not encode it
    (a 500); refused as malformed where the token is read."""
    response = post(demo, logout_token(demo, json.loads('"\\udc80x"')))
    assert response.status_code == 400, response.text
    assert response.json()["error_description"] == "malformed_logout_token"


def test_bad_requests_are_refused(demo: LiveDemo, standing: tuple[str, str]) -> None:
    _, sid = standing
    token = logout_token(demo, sid)
    # A SAML school has no logout tokens; an unknown school neither.
    for school in (DEMO_SCHOOL_ID, "no-such-school"):
        refused = post(demo, token, school)
        assert refused.status_code == 400
    assert refused.json()["error_description"] == "unknown_school"
    none = requests.post(backchannel_url(demo), data={"token": "x"}, timeout=30)
    assert none.status_code == 400
    assert none.json()["error_description"] == "no_logout_token"
    two = requests.post(backchannel_url(demo), data={"logout_token": [token, token]}, timeout=30)
    assert two.json()["error_description"] == "no_logout_token"
    as_json = requests.post(backchannel_url(demo), json={"logout_token": token}, timeout=30)
    assert as_json.status_code == 400
    assert as_json.json()["error_description"] == "not_a_form"


def test_forged_logout_tokens_do_not_multiply_key_set_calls(
    demo: LiveDemo, standing: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone may POST to the back-channel URI, and a token naming a key id the broker does not
    hold asks for a refetch of the school's key set. The school's provider still hears at most
    one key-set request a minute: while its endpoint fails, and while a fetch is slow."""
    sso_token, sid = standing
    calls: list[str] = []
    status, delay = ["200 OK"], [0.0]  # the key-set endpoint's answer, and after how long
    provider = demo.apps[op_url(demo)]
    served = provider.wsgi_app

    def key_set_endpoint(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == "/jwks":
            calls.append(environ["PATH_INFO"])
            time.sleep(delay[0])
            if status[0] != "200 OK":
                start_response(status[0], [("Content-Type", "text/plain")])
                return [b"down"]
        return served(environ, start_response)

    monkeypatch.setattr(provider, "wsgi_app", key_set_endpoint)
    # A directory of its own on a clock the test moves: the demo's keeps its state for others.
    shift = [0.0]
    back = demo.broker.oidc_back
    assert back is not None
    own = ProviderDirectory(back.directory.session, lambda: time.time() + shift[0])
    monkeypatch.setattr(back, "directory", own)

    def forged(i: int) -> requests.Response:
        return post(demo, logout_token(demo, sid, key=OTHER_KEY, header={"kid": f"made-up-{i}"}))

    assert post(demo, logout_token(demo, "a-sid-the-broker-never-saw")).status_code == 200
    assert len(calls) == 1  # the first token: the key set fetched
    # A minute on, the endpoint fails: 40 forged tokens make one try between them.
    shift[0] += JWKS_REFETCH_INTERVAL
    status[0] = "503 Service Unavailable"
    for i in range(40):
        refused = forged(i)
        assert refused.status_code == 400
        assert refused.json()["error_description"] == "unknown_kid"
    assert len(calls) == 2
    # The school's own tokens are still checked with the keys held.
    assert post(demo, logout_token(demo, "a-sid-the-broker-never-saw")).status_code == 200
    # Another minute on, the endpoint answers slowly: 20 forged tokens at once, one fetch.
    shift[0] += JWKS_REFETCH_INTERVAL
    status[0], delay[0] = "200 OK", 1.0
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(forged, range(40, 60)))
    assert {a.json()["error_description"] for a in answers} == {"unknown_kid"}
    assert len(calls) == 3
    assert demo.broker.flow.session(sso_token) is not None


def test_a_logout_at_the_broker_removes_the_filing(demo: LiveDemo, vlinder: OidcPublisher) -> None:
    browser, sso_token, sid = log_in_both(demo, vlinder.id)
    done = browser.get(f"{vlinder.base_url}/logout")
    assert done.status == 200, done.text
    assert demo.broker.flow.session(sso_token) is None
    assert demo.broker.school_logout.index.find(DEMO_OIDC_SCHOOL_ID, sid) is None
    # The school's token for that sid now finds nothing to end: still a valid token, 200.
    assert post(demo, logout_token(demo, sid)).status_code == 200


def test_a_replaced_session_is_filed_under_its_new_sid_only(
    demo: LiveDemo, vlinder: OidcPublisher
) -> None:
    browser, old_token, old_sid = log_in_both(demo, vlinder.id)
    page = browser.get(f"{vlinder.base_url}/login?school={DEMO_OIDC_SCHOOL_ID}&prompt=login")
    assert page.url.startswith(f"{op_url(demo)}/authorize"), page.url
    form = next(f for f in page.forms if ("uid", STUDENT) in f.buttons)
    page = browser.post(form.action, {"uid": STUDENT})
    assert page.status == 200 and page.url.startswith(vlinder.base_url), page.url
    new_token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    assert new_token != old_token
    session = demo.broker.flow.session(new_token)
    assert session is not None
    new_sid = session[0].upstream_session["sid"]
    index = demo.broker.school_logout.index
    assert index.find(DEMO_OIDC_SCHOOL_ID, old_sid) is None
    assert index.find(DEMO_OIDC_SCHOOL_ID, new_sid) == new_token
    # The school's logout of the new sid ends the new session, which holds both services.
    assert post(demo, logout_token(demo, new_sid)).status_code == 200
    assert demo.broker.flow.session(new_token) is None
    assert goes_to_school(demo, browser)


def test_the_demo_school_page_has_the_back_channel_button(demo: LiveDemo) -> None:
    browser = Browser()
    home = browser.get(f"{op_url(demo)}/")
    assert home.status == 200, home.text
    form = next(f for f in home.forms if f.action.endswith("/logout-everywhere"))
    # Someone without a session at this school: the page says there was nothing to end.
    sent = browser.post(form.action, {"uid": "nobody.here"})
    assert sent.status == 200, sent.text
    assert 'id="logout-results"' in sent.text
