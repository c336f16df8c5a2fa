"""OpenID Connect logout, end to end against the running demo: RP-Initiated Logout at the
broker's end_session endpoint (good and bad id_token_hint, unregistered post_logout_redirect_uri,
state, the student's confirmation), and Back-Channel Logout towards platforms that registered
for it (the logout token checked here again with PyJWT; a platform that never answers is
reported as timed out and holds up no one)."""

from __future__ import annotations

import html
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID
from broker.core.model import Declaration
from broker.login.session_index import shared_session_index
from broker.web.browser import SSO_COOKIE
from tests.flows.test_oidc_front import discovery
from tests.flows.test_oidc_school import op_url
from tests.support.client import Browser, Page
from tests.support.live import LiveDemo, Login, OidcPublisher
from tests.support.logout import (
    LOGOUT_EVENT,
    broker_logout_claims,
    finish_logout,
    peer_logouts,
    sends_on_by_itself,
    warns,
)

ANSWER_LINK = re.compile(r'<a [^>]*href="([^"]+)"[^>]*data-logout-answer')


@pytest.fixture(scope="module")
def lexicon(demo: LiveDemo) -> OidcPublisher:
    """An OIDC publisher registered for end_session and back-channel logout."""
    return demo.add_oidc_publisher(
        "lexicon",
        "leermiddelen",
        (Declaration("given_name", "To greet the student by name."),),
        released=frozenset({"given_name"}),
        scope="openid profile",
        logout=True,
    )


@pytest.fixture(scope="module")
def atlas(demo: LiveDemo) -> OidcPublisher:
    """A second one, so a logout from one is heard by the other through the back channel."""
    return demo.add_oidc_publisher("atlas", "leermiddelen", scope="openid", logout=True)


def sso_stands(demo: LiveDemo, browser: Browser) -> bool:
    """Whether a login at a SAML publisher is answered without going to the school."""
    login = demo.login(browser, "leesplank", "sanne.jansen")
    return not login.went_to(f"{demo.school_url}/sso")


def answer_link(page: Page) -> str:
    found = ANSWER_LINK.search(page.text)
    assert found, page.text
    return html.unescape(found.group(1))


def school_op_login(demo: LiveDemo, browser: Browser, publisher: str, uid: str) -> Login:
    """Log in at an OIDC publisher through the OIDC school (its id as login_hint)."""
    start = len(browser.history)
    base = demo.publishers[publisher].base_url
    page = browser.get(f"{base}/login?school={DEMO_OIDC_SCHOOL_ID}")
    if page.url.startswith(f"{op_url(demo)}/authorize"):
        assert page.status == 200, page.text
        form = next(f for f in page.forms if ("uid", uid) in f.buttons)
        page = browser.post(form.action, {"uid": uid})
    return Login(page, browser.history[start:])


def statuses(page: Page) -> dict[str, str]:
    """Service name → status, as the final page lists them."""
    found = re.findall(
        r'data-status="(\w+)">\s*<span class="logout-list__name">([^<]+)<', page.text
    )
    return {html.unescape(name): status for status, name in found}


def end_session(demo: LiveDemo, **params: str) -> str:
    return f"{demo.broker_url}/oidc/end_session?{urlencode(params)}"


def hint_of(demo: LiveDemo, browser: Browser, publisher: str) -> str:
    """A fresh ID token of `publisher` for this browser, from the session the demo RP keeps."""
    return str(demo.received(browser, publisher)["raw_id_token"])


def signed_by_broker(demo: LiveDemo, claims: dict[str, Any]) -> str:
    provider = demo.broker.oidc_front
    assert provider is not None
    key = provider.keys.key_for("RS256")
    return jose_jwt.encode({"alg": "RS256", "kid": str(key.kid)}, claims, key)


def test_discovery_names_the_logout_endpoints(demo: LiveDemo) -> None:
    document = discovery(demo)
    assert document["end_session_endpoint"] == f"{demo.broker_url}/oidc/end_session"
    assert document["backchannel_logout_supported"] is True
    assert document["backchannel_logout_session_supported"] is True
    assert document["frontchannel_logout_supported"] is False


def test_logout_from_a_platform_ends_the_session_tells_the_other_and_returns_with_state(
    demo: LiveDemo, lexicon: OidcPublisher, atlas: OidcPublisher
) -> None:
    browser = Browser()
    demo.login(browser, "lexicon", "sanne.jansen")
    demo.login(browser, "atlas", "sanne.jansen")
    sid = demo.received(browser, "atlas")["session_index"]
    # One session, a sid of its own at each platform.
    assert sid != demo.received(browser, "lexicon")["session_index"]
    calls_before = len(browser.get(f"{atlas.base_url}/backchannel.json").response.json()["calls"])

    # The platform's own logout button: to end_session with id_token_hint, state and its URI.
    done = browser.get(f"{lexicon.base_url}/logout")
    assert done.url.startswith(f"{demo.broker_url}/logout/"), done.url
    assert done.status == 200, done.text
    assert 'data-status="confirmed"' in done.text  # atlas, by back channel
    # All confirmed: the page follows the way back by itself (the link stays for no JavaScript).
    assert sends_on_by_itself(done) and not warns(done)
    back = answer_link(done)
    assert back.startswith(f"{lexicon.base_url}/logged-out?state=")
    returned = browser.get(back)
    assert returned.status == 200, returned.text  # the state came back unchanged
    assert 'id="logged-out"' in returned.text

    calls = browser.get(f"{atlas.base_url}/backchannel.json").response.json()["calls"]
    assert len(calls) == calls_before + 1
    assert calls[-1]["sid"] == sid
    assert calls[-1]["sub"] == demo.received(browser, "atlas")["sub"]
    assert demo.received(browser, "atlas")["ended_by_back_channel"] is True
    # The SSO session is gone: the next login goes to the school again.
    assert not sso_stands(demo, browser)


def test_state_is_echoed_exactly(demo: LiveDemo, lexicon: OidcPublisher) -> None:
    browser = Browser()
    demo.login(browser, "lexicon", "daan.devries")
    state = "a b&c=d/é~"
    page = browser.get(
        end_session(
            demo,
            id_token_hint=hint_of(demo, browser, "lexicon"),
            post_logout_redirect_uri=f"{lexicon.base_url}/logged-out",
            state=state,
        )
    )
    assert page.status == 200, page.text
    query = parse_qs(urlsplit(answer_link(page)).query)
    assert query == {"state": [state]}


def test_a_hint_the_broker_did_not_sign_is_refused_and_ends_nothing(
    demo: LiveDemo, lexicon: OidcPublisher
) -> None:
    browser = Browser()
    demo.login(browser, "lexicon", "sanne.jansen")
    real = demo.received(browser, "lexicon")
    other = RSAKey.generate_key(2048, parameters={"kid": "not-the-broker"})
    forged = jose_jwt.encode(
        {"alg": "RS256", "kid": "not-the-broker"},
        {
            "iss": demo.broker_url,
            "aud": ["lexicon"],
            "sub": real["sub"],
            "sid": real["session_index"],
            "iat": int(time.time()),
            "exp": int(time.time()) + 300,
        },
        other,
    )
    target = f"{lexicon.base_url}/logged-out"
    page = browser.get(end_session(demo, id_token_hint=forged, post_logout_redirect_uri=target))
    assert page.status == 400
    assert page.url.startswith(f"{demo.broker_url}/oidc/end_session")
    assert not any(url.startswith(target) for url in page.visited)
    assert sso_stands(demo, browser)


def test_a_logout_token_is_no_id_token_hint(demo: LiveDemo, lexicon: OidcPublisher) -> None:
    browser = Browser()
    demo.login(browser, "lexicon", "sanne.jansen")
    real = demo.received(browser, "lexicon")
    now = int(time.time())
    token = signed_by_broker(
        demo,
        {
            "iss": demo.broker_url,
            "aud": "lexicon",
            "sub": real["sub"],
            "sid": real["session_index"],
            "iat": now,
            "exp": now + 60,
            "jti": "x",
            "events": {LOGOUT_EVENT: {}},
        },
    )
    page = browser.get(end_session(demo, id_token_hint=token))
    assert page.status == 400
    assert sso_stands(demo, browser)


def test_an_expired_hint_of_this_session_still_logs_out(
    demo: LiveDemo, lexicon: OidcPublisher
) -> None:
    browser = Browser()
    demo.login(browser, "lexicon", "sanne.jansen")
    real = demo.received(browser, "lexicon")
    token = signed_by_broker(
        demo,
        {
            "iss": demo.broker_url,
            "aud": ["lexicon"],
            "azp": "lexicon",
            "sub": real["sub"],
            "sid": real["session_index"],
            "iat": int(time.time()) - 7200,
            "exp": int(time.time()) - 3600,
        },
    )
    page = browser.get(end_session(demo, id_token_hint=token))
    assert page.status == 200, page.text
    assert page.url.startswith(f"{demo.broker_url}/logout/")
    assert not sso_stands(demo, browser)


def _hint(demo: LiveDemo, audience: str, sub: str, sid: str) -> str:
    now = int(time.time())
    claims = {"iss": demo.broker_url, "aud": [audience], "azp": audience, "sub": sub, "sid": sid}
    return signed_by_broker(demo, {**claims, "iat": now, "exp": now + 300})


def test_a_hint_naming_another_platforms_sid_of_this_session_asks_first(
    demo: LiveDemo, lexicon: OidcPublisher, atlas: OidcPublisher
) -> None:
    """The hint's `sid` must be the one *its* client was given: atlas's sid in a token for
    lexicon is no proof that this browser's session is lexicon's. Asked, nothing ends."""
    browser = Browser()
    demo.login(browser, "lexicon", "sanne.jansen")
    demo.login(browser, "atlas", "sanne.jansen")
    lexicon_sub = demo.received(browser, "lexicon")["sub"]
    atlas_sid = demo.received(browser, "atlas")["session_index"]
    page = browser.get(
        end_session(demo, id_token_hint=_hint(demo, "lexicon", lexicon_sub, atlas_sid))
    )
    assert page.status == 200, page.text
    assert page.url.startswith(f"{demo.broker_url}/oidc/end_session")
    assert page.form(f"{demo.broker_url}/oidc/end_session")  # "Log out?"
    assert sso_stands(demo, browser)


def test_compat_a_hint_with_the_shared_sid_of_a_session_from_before_the_upgrade_logs_out(
    demo: LiveDemo, lexicon: OidcPublisher
) -> None:
    """COMPAT(session-index-per-service): an ID token issued before the upgrade carries the
    session's one shared sid; for the session it belongs to it still ends it at once."""
    browser = Browser()
    demo.login(browser, "lexicon", "sanne.jansen")
    sub = demo.received(browser, "lexicon")["sub"]
    token = browser.cookies(demo.broker_url)[SSO_COOKIE]
    old = _hint(demo, "lexicon", sub, shared_session_index(token))
    # Another browser's session: the same old-style hint names nothing of it.
    other = Browser()
    demo.login(other, "lexicon", "sanne.jansen")
    asked = other.get(end_session(demo, id_token_hint=old))
    assert asked.url.startswith(f"{demo.broker_url}/oidc/end_session"), asked.url
    assert sso_stands(demo, other)
    page = browser.get(end_session(demo, id_token_hint=old))
    assert page.status == 200, page.text
    assert page.url.startswith(f"{demo.broker_url}/logout/"), page.url
    assert not sso_stands(demo, browser)


def test_an_unregistered_post_logout_redirect_uri_is_refused_without_a_redirect(
    demo: LiveDemo, lexicon: OidcPublisher
) -> None:
    browser = Browser()
    demo.login(browser, "lexicon", "sanne.jansen")
    hint = hint_of(demo, browser, "lexicon")
    for target in (
        "https://evil.example/logged-out",
        f"{lexicon.base_url}/logged-out/other",
        f"{lexicon.base_url}/callback",  # a redirect URI, not a post-logout one
    ):
        page = browser.get(
            end_session(demo, id_token_hint=hint, post_logout_redirect_uri=target), follow=False
        )
        assert page.status == 400, target
        assert page.location is None
    # Without a hint or client_id the broker cannot know whose list to look in: refused too.
    page = browser.get(
        end_session(demo, post_logout_redirect_uri=f"{lexicon.base_url}/logged-out"),
        follow=False,
    )
    assert page.status == 400
    # client_id that is not the hint's audience
    page = browser.get(end_session(demo, id_token_hint=hint, client_id="atlas"), follow=False)
    assert page.status == 400
    assert sso_stands(demo, browser)


def test_without_a_hint_the_student_confirms_first(demo: LiveDemo, lexicon: OidcPublisher) -> None:
    browser = Browser()
    demo.login(browser, "lexicon", "sanne.jansen")
    target = f"{lexicon.base_url}/logged-out"
    page = browser.get(end_session(demo, client_id="lexicon", post_logout_redirect_uri=target))
    assert page.status == 200
    form = page.form(f"{demo.broker_url}/oidc/end_session")
    assert sso_stands(demo, browser)  # asking ended nothing
    # Another site's form cannot carry the student's token: refused, nothing ends.
    forged = browser.post(form.action, {**form.fields, "csrf_token": "x", "confirm": "yes"})
    assert forged.status == 400
    assert sso_stands(demo, browser)
    started = browser.post(form.action, {**form.fields, "confirm": "yes"})
    outcome = finish_logout(browser, started)
    assert outcome.services["Leesplank (demo publisher)"] == "confirmed"  # by SAML, in a frame
    assert answer_link(outcome.page) == target
    assert not sso_stands(demo, browser)


def test_with_no_session_the_platform_gets_its_answer_at_once(
    demo: LiveDemo, lexicon: OidcPublisher
) -> None:
    """Nothing to end, nobody to tell: no warning, and the page sends the student straight back
    with the state (the link stays for browsers without JavaScript)."""
    browser = Browser()
    target = f"{lexicon.base_url}/logged-out"
    page = browser.get(
        end_session(demo, client_id="lexicon", post_logout_redirect_uri=target, state="s1")
    )
    assert page.status == 200, page.text
    assert page.url.startswith(f"{demo.broker_url}/logout/") and page.url.endswith("/done")
    assert "data-logout-service" not in page.text and "data-school-status" not in page.text
    assert not warns(page) and sends_on_by_itself(page)
    assert answer_link(page) == f"{target}?state=s1"


def test_ui_locales_picks_the_language_of_the_logout_pages(
    demo: LiveDemo, lexicon: OidcPublisher
) -> None:
    browser = Browser(language="en")
    demo.login(browser, "lexicon", "sanne.jansen")
    page = browser.get(
        end_session(demo, id_token_hint=hint_of(demo, browser, "lexicon"), ui_locales="nl-NL en")
    )
    assert page.status == 200
    assert '<html lang="nl"' in page.text


# -- back channel ----------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[bytes]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.bodies.append(self.rfile.read(length))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[bytes]]]:
    """A platform's back-channel endpoint on loopback that answers 204 and keeps the bodies."""
    bodies: list[bytes] = []
    handler = type("Recorder", (_Recorder,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/bcl", bodies
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent() -> Iterator[str]:
    """A back-channel endpoint that accepts the connection and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/bcl"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_back_channel_token_checked_with_pyjwt_and_a_silent_platform_times_out(
    demo: LiveDemo,
    lexicon: OidcPublisher,
    recorder: tuple[str, list[bytes]],
    silent: str,
) -> None:
    uri, bodies = recorder
    heard = demo.add_oidc_publisher(
        f"heard-{len(demo.publishers)}",
        "leermiddelen",
        scope="openid",
        backchannel_logout_uri=uri,
    )
    mute = demo.add_oidc_publisher(
        f"mute-{len(demo.publishers)}",
        "leermiddelen",
        scope="openid",
        backchannel_logout_uri=silent,
    )
    browser = Browser()
    demo.login(browser, heard.id, "sanne.jansen")
    demo.login(browser, mute.id, "sanne.jansen")
    demo.login(browser, "lexicon", "sanne.jansen")
    received = demo.received(browser, heard.id)

    done = browser.get(f"{lexicon.base_url}/logout")
    assert done.status == 200, done.text
    names = statuses(done)
    assert names[f"{heard.id} (test OIDC publisher)"] == "confirmed"
    assert names[f"{mute.id} (test OIDC publisher)"] == "timed_out"
    assert answer_link(done).startswith(f"{lexicon.base_url}/logged-out?state=")
    # One platform may still have the student logged in: the page stays and says so.
    assert warns(done) and not sends_on_by_itself(done)

    assert len(bodies) == 1
    form = parse_qs(bodies[0].decode())
    assert set(form) == {"logout_token"}
    token = form["logout_token"][0]
    claims = broker_logout_claims(demo, token, heard.id)
    assert claims["sid"] == received["session_index"]
    assert claims["sub"] == received["sub"]
    assert claims["exp"] > claims["iat"]


# -- the school's OpenID provider ---------------------------------------------------------------


def test_logout_reaches_the_oidc_school_through_its_end_session_endpoint(
    demo: LiveDemo, lexicon: OidcPublisher
) -> None:
    op = op_url(demo)
    browser = Browser()
    before = len(peer_logouts(browser, op))
    login = school_op_login(demo, browser, "lexicon", "sanne.jansen")
    assert login.went_to(f"{op}/authorize")

    done = browser.get(f"{lexicon.base_url}/logout")
    assert done.status == 200, done.text
    # Sent to the school's end_session with its ID token, back on the broker's callback.
    assert any(url.startswith(f"{op}/end_session?") for url in done.visited)
    school_call = next(url for url in done.visited if url.startswith(f"{op}/end_session?"))
    query = parse_qs(urlsplit(school_call).query)
    assert query["post_logout_redirect_uri"] == [
        f"{demo.broker_url}/oidc/rp/logout/{DEMO_OIDC_SCHOOL_ID}"
    ]
    assert query["client_id"] and query["id_token_hint"] and query["state"]
    assert any(url.startswith(f"{demo.broker_url}/oidc/rp/logout/") for url in done.visited)
    assert 'data-school-status="confirmed"' in done.text
    assert len(peer_logouts(browser, op)) == before + 1
    # The next login at an OIDC-school service goes to the school again.
    again = school_op_login(demo, browser, "lexicon", "sanne.jansen")
    assert again.went_to(f"{op}/authorize")


def test_a_school_logout_callback_for_another_run_is_refused(demo: LiveDemo) -> None:
    browser = Browser()
    page = browser.get(
        f"{demo.broker_url}/oidc/rp/logout/{DEMO_OIDC_SCHOOL_ID}?state=made-up", follow=False
    )
    assert page.status == 400
    assert page.location is None
