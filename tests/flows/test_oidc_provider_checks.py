"""The OpenID Foundation's Basic and Config OP checks that apply to a code-flow provider,
written as tests against the running broker, with authlib's client as the relying party and
PyJWT (an independent JOSE library) checking what comes back.

Each test client registers a redirect URI nobody listens on: the browser stops at the redirect
and the test reads the code or error from its query, as a relying party would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import ClientAuthMethod, Declaration, Protocol, Service
from broker.oidc.registration import new_client
from tests.support.client import Browser, Page
from tests.support.hostile import loopback_listener
from tests.support.live import LiveDemo, serve_app

NOWHERE = "http://localhost:9/cb"  # never requested: the browser stops before it
UID = "sanne.jansen"


@dataclass
class Client:
    demo: LiveDemo
    client_id: str
    secret: str | None
    redirect_uri: str = NOWHERE

    @property
    def authorize_url(self) -> str:
        return f"{self.demo.broker_url}/oidc/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.demo.broker_url}/oidc/token"

    def params(self, **extra: str) -> dict[str, str]:
        verifier = secrets.token_urlsafe(48)
        base = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": "openid profile",
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            "_verifier": verifier,
        }
        base.update(extra)
        return {k: v for k, v in base.items() if v != ""}

    def front(self, browser: Browser, params: dict[str, str]) -> Page:
        """Walk the front channel (discovery, school) until the broker redirects to the RP."""
        query = urlencode({k: v for k, v in params.items() if not k.startswith("_")})
        stop = self._at_client
        page = browser.get(f"{self.authorize_url}?{query}", stop=stop)
        if self.demo.shows_discovery(page):
            form = next(f for f in page.forms if ("school", DEMO_SCHOOL_ID) in f.buttons)
            page = browser.post(form.action, {**form.fields, "school": DEMO_SCHOOL_ID}, stop=stop)
        if page.url.startswith(f"{self.demo.school_url}/sso"):
            answer = browser.submit(page, f"{self.demo.school_url}/sso/pick", {"uid": UID})
            form = answer.form(self.demo.acs_url)
            page = browser.post(form.action, form.fields, stop=stop)
        return page

    def _at_client(self, url: str) -> bool:
        return url.startswith(self.redirect_uri.split("?")[0])

    def redirect(self, browser: Browser, params: dict[str, str]) -> dict[str, str]:
        page = self.front(browser, params)
        assert page.location and self._at_client(page.location), (page.status, page.text[:300])
        return {k: v[0] for k, v in parse_qs(urlsplit(page.location).query).items()}

    def session(self) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.secret, redirect_uri=self.redirect_uri)

    def redeem(
        self,
        code: str,
        verifier: str | None,
        headers: dict[str, str] | None = None,
        by: str = "basic",
        **extra: Any,
    ) -> requests.Response:
        """`by`: how a client with a secret sends it: `basic`, `post` (in the body), or
        `header` (only what `headers` holds)."""
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            **extra,
        }
        if verifier is not None:  # None: no verifier at all
            data["code_verifier"] = verifier
        auth = (self.client_id, self.secret) if self.secret and by == "basic" else None
        if self.secret is None:
            data["client_id"] = self.client_id
        elif by == "post":
            data.update({"client_id": self.client_id, "client_secret": self.secret})
        return requests.post(self.token_url, data=data, auth=auth, headers=headers, timeout=5)

    def login(self, browser: Browser, **extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A full login: (token response, ID token claims verified with PyJWT)."""
        params = self.params(**extra)
        answer = self.redirect(browser, params)
        assert "code" in answer, answer
        assert answer["state"] == params["state"]
        assert answer["iss"] == self.demo.broker_url  # RFC 9207
        response = self.redeem(answer["code"], params["_verifier"])
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == "no-store"
        token: dict[str, Any] = response.json()
        return token, id_token_claims(self.demo, token["id_token"], self.client_id)


def id_token_claims(demo: LiveDemo, token: str, audience: str) -> dict[str, Any]:
    keys = jwt.PyJWKClient(f"{demo.broker_url}/oidc/jwks")
    claims: dict[str, Any] = jwt.decode(
        token,
        keys.get_signing_key_from_jwt(token).key,
        algorithms=["RS256", "ES256"],
        audience=audience,
        issuer=demo.broker_url,
    )
    return claims


class _CallLog:
    """Stands in for the store inside the broker's CountingStore and notes every call (one
    call is one round trip on Redis) with the keys it touches, then passes it on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, list[str]]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if not callable(method):  # atomic_batches
            return method

        def noted(*args: Any, **kwargs: Any) -> Any:
            if name == "batch":
                keys = [f"{op.operation} {op.key}" for op in args[0]]
            else:
                keys = [f"{name} {args[0]}"] if args else []
            self.calls.append((name, keys))
            return method(*args, **kwargs)

        return noted


@contextmanager
def store_calls(demo: LiveDemo) -> Iterator[list[tuple[str, list[str]]]]:
    counting: Any = demo.broker.store
    log = _CallLog(counting.inner)
    counting.inner = log
    try:
        yield log.calls
    finally:
        counting.inner = log.inner


def _hs256(claims: dict[str, Any], secret: bytes) -> str:
    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rp-1"}).encode())
    body = part(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{part(mac)}"


def _unsigned(claims: dict[str, Any]) -> str:
    """A JWT with `alg: none` and an empty signature."""

    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{part(json.dumps(claims).encode())}."


def register(demo: LiveDemo, client_id: str, **options: Any) -> Client:
    method = options.pop("auth_method", ClientAuthMethod.SECRET_BASIC)
    redirect_uris = options.pop("redirect_uris", (NOWHERE,))
    declarations = options.pop(
        "declarations", (Declaration("given_name", "To greet the student."),)
    )
    chain = options.pop("chain", "leermiddelen")
    registration, secret = new_client(redirect_uris, method, **options)
    demo.registry.add_service(
        Service(
            client_id,
            client_id,
            client_id,
            chain,
            declarations=declarations,
            protocol=Protocol.OIDC,
            oidc=registration,
        ),
        None,
    )
    released = frozenset(d.attribute for d in declarations)
    demo.registry.set_policy(DEMO_SCHOOL_ID, client_id, released, "test")
    return Client(demo, client_id, secret, redirect_uris[0])


@pytest.fixture(scope="module")
def rp(demo: LiveDemo) -> Client:
    return register(demo, "checks-rp", refresh_tokens=True)


# -- codes ---------------------------------------------------------------------------------------
def test_a_code_is_single_use_and_its_reuse_revokes_the_tokens(rp: Client) -> None:
    browser = Browser()
    params = rp.params()
    code = rp.redirect(browser, params)["code"]
    first = rp.redeem(code, params["_verifier"])
    assert first.status_code == 200
    access = first.json()["access_token"]
    userinfo = f"{rp.demo.broker_url}/oidc/userinfo"
    headers = {"Authorization": f"Bearer {access}"}
    assert requests.get(userinfo, headers=headers, timeout=5).status_code == 200
    again = rp.redeem(code, params["_verifier"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert requests.get(userinfo, headers=headers, timeout=5).status_code == 401


def test_a_code_is_bound_to_its_client(rp: Client, demo: LiveDemo) -> None:
    other = register(demo, "checks-other")
    browser = Browser()
    params = rp.params()
    code = rp.redirect(browser, params)["code"]
    stolen = other.redeem(code, params["_verifier"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


def test_a_code_presented_by_another_client_is_neither_used_up_nor_revoked(
    rp: Client, demo: LiveDemo
) -> None:
    """RFC 6749 4.1.3, 10.5; RFC 9700 4.5: another client's redemption, and its replay, change
    nothing (before review-bcp they used the code up and then revoked its family); the code's
    own client redeems it afterwards, and its own replay still revokes the tokens."""
    other = register(demo, "checks-burner")
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    for _ in range(2):
        refused = other.redeem(code, params["_verifier"])
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    redeemed = rp.redeem(code, params["_verifier"])
    assert redeemed.status_code == 200, redeemed.text
    access = redeemed.json()["access_token"]
    assert _userinfo(rp, access)["sub"]
    assert other.redeem(code, params["_verifier"]).status_code == 400
    assert _userinfo(rp, access)["sub"]  # still: another client's try revokes nothing
    again = rp.redeem(code, params["_verifier"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    userinfo = f"{rp.demo.broker_url}/oidc/userinfo"
    headers = {"Authorization": f"Bearer {access}"}
    assert requests.get(userinfo, headers=headers, timeout=5).status_code == 401


def test_the_token_request_must_repeat_the_redirect_uri(rp: Client) -> None:
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    wrong = rp.redeem(code, params["_verifier"], redirect_uri=NOWHERE + "/other")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


# -- redirect URIs -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "redirect_uri",
    [NOWHERE + "/other", NOWHERE + "?extra=1", "http://localhost:9/", "https://evil.example/cb"],
)
def test_an_unregistered_redirect_uri_gets_a_page_never_a_redirect(
    rp: Client, redirect_uri: str
) -> None:
    page = Browser().get(f"{rp.authorize_url}?{urlencode(rp.params(redirect_uri=redirect_uri))}")
    assert page.status == 400
    assert page.location is None
    assert 'href="https://evil.example' not in page.text


def test_a_registered_redirect_uri_that_fails_intake_gets_a_page_never_a_redirect(
    demo: LiveDemo,
) -> None:
    """A plain-http URI off loopback written into the registry past intake (a direct database
    write; intake, `new_client`, refuses it) is never a redirect target: the same 400 page as
    an unregistered one, while the client's other URIs still work."""
    planted = "http://planted.example/cb"
    client = register(demo, "checks-planted")
    service = demo.registry.any_service(client.client_id)
    assert service is not None and service.oidc is not None
    written = replace(service.oidc, redirect_uris=(NOWHERE, planted))
    demo.registry.update_oidc_client(client.client_id, written)
    page = Browser().get(f"{client.authorize_url}?{urlencode(client.params(redirect_uri=planted))}")
    assert page.status == 400 and page.location is None
    assert 'href="http://planted.example' not in page.text
    assert "code" in client.redirect(Browser(), client.params())


def test_a_missing_redirect_uri_is_refused_with_a_page(rp: Client) -> None:
    params = rp.params()
    del params["redirect_uri"]
    page = Browser().get(f"{rp.authorize_url}?{urlencode(params)}", follow=False)
    assert page.status == 400 and page.location is None


def test_an_unknown_client_gets_a_page(rp: Client) -> None:
    page = Browser().get(f"{rp.authorize_url}?{urlencode(rp.params(client_id='nobody'))}")
    assert page.status == 400 and page.location is None


# -- request parameters --------------------------------------------------------------------------
def test_nonce_is_optional_in_the_code_flow_and_echoed_when_sent(rp: Client) -> None:
    _, without = rp.login(Browser(), nonce="")
    assert "nonce" not in without
    _, with_nonce = rp.login(Browser(), nonce="n-0S6_WzA2Mj")
    assert with_nonce["nonce"] == "n-0S6_WzA2Mj"


def test_id_token_has_the_required_claims(rp: Client, demo: LiveDemo) -> None:
    token, claims = rp.login(Browser())
    now = time.time()
    assert claims["sub"] == demo.expected_pseudonym(UID, "leermiddelen")
    assert claims["aud"] == [rp.client_id] and claims["azp"] == rp.client_id
    assert claims["iat"] <= now + 5 < claims["exp"]
    assert claims["auth_time"] <= now + 5
    assert "at_hash" in claims
    assert token["token_type"].lower() == "bearer"


def test_each_client_has_a_sid_of_its_own_the_same_on_each_of_its_answers(
    rp: Client, demo: LiveDemo
) -> None:
    """One SSO session: another client (same chain or another) gets another `sid` (nothing to
    join pseudonyms by); this client gets the same one on every answer within the session (a
    second login, prompt=none), which its logout names."""
    same_chain = register(demo, "checks-sid-lees")
    other_chain = register(demo, "checks-sid-toets", chain="toetsen")
    browser = Browser()
    token, first = rp.login(browser)
    _, again = rp.login(browser)  # answered from the SSO session
    params = rp.params(prompt="none")
    passive = rp.redirect(browser, params)
    redeemed = rp.redeem(passive["code"], params["_verifier"]).json()
    silent = id_token_claims(demo, redeemed["id_token"], rp.client_id)
    assert first["sid"] and first["sid"] == again["sid"] == silent["sid"]
    assert first["auth_time"] == silent["auth_time"]  # the same login, not a new one
    _, lees = same_chain.login(browser)
    _, toets = other_chain.login(browser)
    assert lees["sub"] == first["sub"] != toets["sub"]
    assert len({first["sid"], lees["sid"], toets["sid"]}) == 3
    refreshed = requests.post(
        rp.token_url,
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        auth=(rp.client_id, rp.secret or ""),
        timeout=5,
    )
    # A refresh issues no new ID token (so no other `sid`); the grant keeps the login's sid.
    assert refreshed.status_code == 200, refreshed.text
    assert "id_token" not in refreshed.json()


def test_openid_scope_is_required(rp: Client) -> None:
    answer = rp.redirect(Browser(), rp.params(scope="profile"))
    assert answer["error"] == "invalid_scope"
    assert answer["iss"] == rp.demo.broker_url


def test_request_objects_are_refused_as_unsupported(rp: Client) -> None:
    answer = rp.redirect(Browser(), rp.params(request="eyJhbGciOiJub25lIn0.e30."))
    assert answer["error"] == "request_not_supported"


def test_unsupported_response_type_is_refused(rp: Client) -> None:
    answer = rp.redirect(Browser(), rp.params(response_type="id_token"))
    assert answer["error"] == "unsupported_response_type"


# -- prompt and max_age --------------------------------------------------------------------------
def test_prompt_none_without_session_answers_login_required(rp: Client) -> None:
    params = rp.params(prompt="none")
    answer = rp.redirect(Browser(), params)
    assert answer["error"] == "login_required"
    assert answer["state"] == params["state"]


def test_prompt_none_with_a_session_answers_without_showing_anything(rp: Client) -> None:
    browser = Browser()
    rp.login(browser)
    params = rp.params(prompt="none")
    page = browser.get(f"{rp.authorize_url}?{urlencode(params)}", stop=rp._at_client)
    assert page.location and "code=" in page.location
    assert len(page.visited) == 1  # straight back: no discovery, no school


def test_prompt_login_sends_the_student_to_the_school_again(rp: Client, demo: LiveDemo) -> None:
    browser = Browser()
    rp.login(browser)
    time.sleep(1.1)
    page = browser.get(f"{rp.authorize_url}?{urlencode(rp.params(prompt='login'))}")
    assert page.url.startswith(f"{demo.school_url}/sso"), page.url


def test_max_age_older_than_the_session_means_a_fresh_school_login(
    rp: Client, demo: LiveDemo
) -> None:
    browser = Browser()
    _, first = rp.login(browser)
    # Within max_age the session answers; auth_time stays that of the first login.
    _, within = rp.login(browser, max_age="3600")
    assert within["auth_time"] == first["auth_time"]
    time.sleep(1.1)
    page = browser.get(f"{rp.authorize_url}?{urlencode(rp.params(max_age='1'))}")
    assert page.url.startswith(f"{demo.school_url}/sso"), page.url


@pytest.mark.parametrize(
    "max_age",
    ["soon", "\u00b2", "\u0661\u0662", "\uff11\uff10", "1" * 10, "-5", "+5", " 5", "5 "],
    ids=[
        "word",
        "superscript",
        "arabic-indic",
        "full-width",
        "ten-digits",
        "minus",
        "plus",
        "space-before",
        "space-after",
    ],
)
def test_invalid_max_age_is_refused(rp: Client, max_age: str) -> None:
    """Only ASCII digits, nine at most: "²" is a digit to str.isdigit that int() refuses (it
    was a 500 before review-oidc-2), and Arabic-Indic or full-width digits int() would read."""
    answer = rp.redirect(Browser(), rp.params(max_age=max_age))
    assert answer["error"] == "invalid_request"
    assert answer["error_description"] == "The max_age parameter must be a whole number of seconds."


# -- userinfo ------------------------------------------------------------------------------------
def test_userinfo_with_the_bearer_header(rp: Client) -> None:
    token, claims = rp.login(Browser())
    url = f"{rp.demo.broker_url}/oidc/userinfo"
    ok = requests.get(url, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=5)
    assert ok.status_code == 200
    assert ok.json() == {"sub": claims["sub"], "given_name": "Sanne"}
    missing = requests.get(url, timeout=5)
    assert missing.status_code == 401 and "Bearer" in missing.headers["WWW-Authenticate"]
    wrong = requests.get(url, headers={"Authorization": "Bearer not-a-token"}, timeout=5)
    assert wrong.status_code == 401


def test_userinfo_is_one_store_round_trip(rp: Client) -> None:
    """The access token names its login's family: its record, the family's revocation mark and
    the store's history mark come in one batch (grants.TokenVault.access)."""
    token, claims = rp.login(Browser())
    access = token["access_token"]
    family, _, secret_part = access.partition(".")
    assert len(family) == 22 and len(secret_part) == 43 and secret_part.isalnum()
    url = f"{rp.demo.broker_url}/oidc/userinfo"
    with store_calls(rp.demo) as calls:
        ok = requests.get(url, headers={"Authorization": f"Bearer {access}"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["sub"] == claims["sub"]
    assert len(calls) == 1, calls
    kind, keys = calls[0]
    assert kind == "batch" and len(keys) == 3
    assert keys[0].startswith("get oidc-access:")
    # The family's revocation mark, and the store's history mark (a rollback: grants.py).
    assert keys[1:] == [f"get oidc:revoked:{family}", "get oidc:history-since"]


def test_the_code_and_the_sso_session_go_out_in_one_batch(rp: Client) -> None:
    """The login's last step writes the code (its family mark first) and the new SSO session's
    records in one round trip, the code's writes first, before the redirect leaves."""
    with store_calls(rp.demo) as calls:
        answer = rp.redirect(Browser(), rp.params())
    assert "code" in answer
    filed = json.dumps([rp.client_id, answer["code"]])  # filed under its client (grants.py)
    code_key = "oidc-code:" + hashlib.sha256(filed.encode()).hexdigest()
    writing = [keys for _, keys in calls if f"put {code_key}" in keys]
    assert len(writing) == 1, calls
    keys = writing[0]
    assert keys[0].startswith("put oidc:family-of:oidc-code:")
    assert keys[1] == f"put {code_key}"
    assert any(key.startswith("put sso:") for key in keys[2:]), keys
    assert all(not key.startswith("put sso:") for key in keys[:2])


def test_claims_parameter_asks_for_a_released_claim_without_its_scope(rp: Client) -> None:
    claims = json.dumps({"userinfo": {"given_name": {"essential": True}}})
    token, _ = rp.login(Browser(), scope="openid", claims=claims)
    url = f"{rp.demo.broker_url}/oidc/userinfo"
    info = requests.get(
        url, headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=5
    )
    assert info.json()["given_name"] == "Sanne"
    # Only what was asked for: the profile scope's other claims are not there.
    _, bare = rp.login(Browser(), scope="openid")
    assert "given_name" not in bare


def test_a_malformed_claims_parameter_is_refused(rp: Client) -> None:
    answer = rp.redirect(Browser(), rp.params(claims="{not json"))
    assert answer["error"] == "invalid_request"


# -- PKCE ----------------------------------------------------------------------------------------
def test_pkce_plain_is_refused(rp: Client) -> None:
    params = rp.params(code_challenge="a" * 43, code_challenge_method="plain")
    assert rp.redirect(Browser(), params)["error"] == "invalid_request"
    params = rp.params(code_challenge="a" * 43, code_challenge_method="")
    assert rp.redirect(Browser(), params)["error"] == "invalid_request"


def test_pkce_wrong_verifier_is_refused(rp: Client) -> None:
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    response = rp.redeem(code, secrets.token_urlsafe(48))
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_a_confidential_client_may_leave_pkce_out(rp: Client) -> None:
    params = rp.params(code_challenge="", code_challenge_method="")
    code = rp.redirect(Browser(), params)["code"]
    response = rp.redeem(code, None)
    assert response.status_code == 200, response.text


def test_a_public_client_must_use_pkce(demo: LiveDemo) -> None:
    public = register(demo, "checks-public", auth_method=ClientAuthMethod.NONE)
    assert public.secret is None
    params = public.params(code_challenge="", code_challenge_method="")
    assert public.redirect(Browser(), params)["error"] == "invalid_request"
    _, claims = public.login(Browser())
    assert claims["aud"] == ["checks-public"]


# -- client authentication -----------------------------------------------------------------------
def test_client_secret_post(demo: LiveDemo) -> None:
    client = register(demo, "checks-post", auth_method=ClientAuthMethod.SECRET_POST)
    params = client.params()
    code = client.redirect(Browser(), params)["code"]
    assert client.redeem(code, params["_verifier"], by="post").status_code == 200
    # The registered method only: the same secret by Basic is refused.
    code = client.redirect(Browser(), params := client.params())["code"]
    basic = client.redeem(code, params["_verifier"])
    assert basic.status_code == 401 and basic.json()["error"] == "invalid_client"


def test_a_wrong_secret_is_refused(rp: Client) -> None:
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    response = requests.post(
        rp.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": NOWHERE,
            "code_verifier": params["_verifier"],
        },
        auth=(rp.client_id, "not-the-secret"),
        timeout=5,
    )
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_private_key_jwt(demo: LiveDemo) -> None:
    from flask import Flask, jsonify
    from joserfc.jwk import RSAKey

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = RSAKey.import_key(pem, {"kid": "rp-1"})
    keys_app = Flask("client-keys")
    keys_app.add_url_rule("/jwks", "jwks", lambda: jsonify({"keys": [key.as_dict(private=False)]}))
    from tests.support.live import free_ports

    keys_url = f"http://localhost:{free_ports(1)}"
    demo.servers.append(serve_app(keys_url, keys_app))
    client = register(
        demo,
        "checks-pkjwt",
        auth_method=ClientAuthMethod.PRIVATE_KEY_JWT,
        jwks_uri=f"{keys_url}/jwks",
    )

    def assertion(audience: str | list[str], jti: str, alg: str = "RS256") -> str:
        now = int(time.time())
        claims = {
            "iss": "checks-pkjwt",
            "sub": "checks-pkjwt",
            "aud": audience,
            "jti": jti,
            "iat": now,
            "exp": now + 60,
        }
        if alg == "HS256":
            # Key confusion: an HMAC "signed" with the client's public key as the secret.
            public = private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return _hs256(claims, public)
        return jwt.encode(claims, pem, algorithm=alg, headers={"kid": "rp-1"})

    def redeem(signed: str, auth: tuple[str, str] | None = None, **extra: str) -> requests.Response:
        params = client.params()
        code = client.redirect(Browser(), params)["code"]
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": NOWHERE,
            "code_verifier": params["_verifier"],
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
            **extra,
        }
        return requests.post(client.token_url, data=data, auth=auth, timeout=5)

    signed = assertion(client.token_url, "jti-1")
    assert redeem(signed).status_code == 200
    # Refusals are invalid_client (400, as no Authorization header was sent; RFC 6749 5.2).
    # The issuer as audience, and PS256 (advertised in discovery), are accepted too.
    assert redeem(assertion(demo.broker_url, "jti-3", "PS256")).status_code == 200
    # Header tricks: a stranger's key embedded (jwk) or named by URL (jku, x5u: a loopback
    # listener that must never be called), a kid that is a path, and no signature at all.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger_pem = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    stranger_jwk = RSAKey.import_key(stranger_pem, {"kid": "rp-1"}).as_dict(private=False)
    now = int(time.time())

    def by_stranger(jti: str, **header: Any) -> str:
        claims = {
            "iss": "checks-pkjwt",
            "sub": "checks-pkjwt",
            "aud": client.token_url,
            "jti": jti,
            "iat": now,
            "exp": now + 60,
        }
        return jwt.encode(claims, stranger_pem, algorithm="RS256", headers=header)

    with loopback_listener() as listener:
        refused = (
            signed,  # the same jti twice
            assertion("https://elsewhere.example/token", "jti-2"),  # another server
            assertion(["https://elsewhere.example", client.token_url], "jti-4"),  # aud injection
            assertion(client.token_url, "jti-5", "HS256"),  # HMAC: no shared secret here
            by_stranger("jti-6", kid="rp-1", jwk=stranger_jwk),
            by_stranger("jti-7", kid="rp-9", jku=listener.url),
            by_stranger("jti-8", kid="rp-1", x5u=listener.url),
            by_stranger("jti-9", kid="../../../../etc/passwd"),
            assertion(client.token_url, "jti-\udc80"),  # no text: UTF-8 cannot spell it
            assertion(client.token_url, 11),  # type: ignore[arg-type]  # not a string
            _unsigned(
                {
                    "iss": "checks-pkjwt",
                    "sub": "checks-pkjwt",
                    "aud": client.token_url,
                    "jti": "jti-10",
                    "iat": now,
                    "exp": now + 60,
                }
            ),
        )
        for attempt in refused:
            response = redeem(attempt)
            assert response.status_code == 400 and response.json()["error"] == "invalid_client"
    assert listener.hits == []
    # client_id beside the assertion: the same client is fine (RFC 7521 4.2), another is not.
    same = redeem(assertion(client.token_url, "jti-11"), client_id=client.client_id)
    assert same.status_code == 200, same.text
    _refused_as_mixed(
        redeem(assertion(client.token_url, "jti-12"), client_id="checks-rp"),
        "names another client than the client assertion's sub",
    )
    # A secret beside the assertion, in the body or by Basic: two methods (RFC 6749 2.3).
    _refused_as_mixed(
        redeem(assertion(client.token_url, "jti-13"), client_secret="guessed"),
        "private_key_jwt and client_secret_post",
    )
    _refused_as_mixed(
        redeem(assertion(client.token_url, "jti-14"), auth=(client.client_id, "guessed")),
        "client_secret_basic and private_key_jwt",
    )
    # The refusals used nothing up: their jti values are still unused.
    assert redeem(assertion(client.token_url, "jti-13")).status_code == 200
    # A secret alone, for a client registered for private_key_jwt: not its method.
    params = client.params()
    code = client.redirect(Browser(), params)["code"]
    by_post = client.redeem(code, params["_verifier"], client_secret="x")
    assert by_post.status_code == 401 and by_post.json()["error"] == "invalid_client"
    assert "not the method this client registered" in by_post.json()["error_description"]
    basic = base64.b64encode(f"{client.client_id}:x".encode()).decode()
    by_basic = client.redeem(code, params["_verifier"], {"Authorization": f"Basic {basic}"})
    assert by_basic.status_code == 401 and by_basic.json()["error"] == "invalid_client"
    assert "not the method this client registered" in by_basic.json()["error_description"]


# -- refresh tokens ------------------------------------------------------------------------------
def test_refresh_tokens_rotate_and_reuse_revokes_the_family(rp: Client) -> None:
    token, _ = rp.login(Browser())
    first = token["refresh_token"]

    def refresh(value: str) -> requests.Response:
        return requests.post(
            rp.token_url,
            data={"grant_type": "refresh_token", "refresh_token": value},
            auth=(rp.client_id, rp.secret or ""),
            timeout=5,
        )

    rotated = refresh(first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    assert refresh(first).status_code == 400  # reuse of a rotated token …
    assert refresh(second).status_code == 400  # … revokes the whole family
    url = f"{rp.demo.broker_url}/oidc/userinfo"
    headers = {"Authorization": f"Bearer {rotated.json()['access_token']}"}
    assert requests.get(url, headers=headers, timeout=5).status_code == 401


def refresh_with(rp: Client, value: str, **extra: str) -> requests.Response:
    return requests.post(
        rp.token_url,
        data={"grant_type": "refresh_token", "refresh_token": value, **extra},
        auth=(rp.client_id, rp.secret or ""),
        timeout=5,
    )


def _userinfo(rp: Client, access: str) -> dict[str, Any]:
    answer = requests.get(
        f"{rp.demo.broker_url}/oidc/userinfo",
        headers={"Authorization": f"Bearer {access}"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_refresh_with_a_narrower_scope_narrows_userinfo_for_good(rp: Client) -> None:
    """RFC 6749 6: the new tokens have the scope asked for, and userinfo answers with its
    claims only (it answered with every claim of the login before review-oidc-2)."""
    token, claims = rp.login(Browser())  # openid profile
    assert _userinfo(rp, token["access_token"]) == {"sub": claims["sub"], "given_name": "Sanne"}
    narrowed = refresh_with(rp, token["refresh_token"], scope="openid")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "openid"
    assert _userinfo(rp, narrowed.json()["access_token"]) == {"sub": claims["sub"]}
    # The next refresh, without a scope, keeps the narrowed one; a wider one is refused.
    later = refresh_with(rp, narrowed.json()["refresh_token"])
    assert later.status_code == 200 and later.json()["scope"] == "openid"
    assert _userinfo(rp, later.json()["access_token"]) == {"sub": claims["sub"]}
    wider = refresh_with(rp, later.json()["refresh_token"], scope="openid profile")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    # The login's first access token keeps what it was given.
    assert _userinfo(rp, token["access_token"])["given_name"] == "Sanne"


def test_a_refresh_with_the_same_scope_keeps_a_claim_asked_for_by_name(rp: Client) -> None:
    claims = json.dumps({"userinfo": {"given_name": None}})
    token, _ = rp.login(Browser(), scope="openid", claims=claims)
    same = refresh_with(rp, token["refresh_token"], scope="openid")
    assert same.status_code == 200
    assert _userinfo(rp, same.json()["access_token"])["given_name"] == "Sanne"
    # A narrowing drops it unless a scope kept covers it (oidc-profile.md).
    token, _ = rp.login(Browser(), scope="openid email", claims=claims)
    assert _userinfo(rp, token["access_token"])["given_name"] == "Sanne"
    narrowed = refresh_with(rp, token["refresh_token"], scope="openid")
    assert narrowed.status_code == 200
    assert "given_name" not in _userinfo(rp, narrowed.json()["access_token"])


def test_a_client_without_refresh_tokens_gets_none(demo: LiveDemo) -> None:
    client = register(demo, "checks-norefresh")
    token, _ = client.login(Browser())
    assert "refresh_token" not in token


# -- ES256 and acr -------------------------------------------------------------------------------
def test_a_client_registered_for_es256_gets_es256_id_tokens(demo: LiveDemo) -> None:
    client = register(demo, "checks-es256", id_token_alg="ES256")
    token, claims = client.login(Browser())
    assert jwt.get_unverified_header(token["id_token"])["alg"] == "ES256"
    assert claims["aud"] == ["checks-es256"]


def test_an_essential_acr_the_school_cannot_meet_ends_in_unmet_authentication_requirements(
    rp: Client,
) -> None:
    mfa = json.dumps(
        {"id_token": {"acr": {"essential": True, "values": ["https://refeds.org/profile/mfa"]}}}
    )
    browser = Browser()
    page = rp.front(browser, rp.params(claims=mfa))
    # The student reads why on the broker's page; its link carries the error to the publisher.
    assert page.status == 403, page.text[:300]
    link = next(a for a in page.text.split('href="')[1:] if a.startswith(NOWHERE))
    query = parse_qs(urlsplit(link.split('"')[0].replace("&amp;", "&")).query)
    assert query["error"] == ["unmet_authentication_requirements"]


def test_a_voluntary_acr_is_answered_with_what_the_school_did(rp: Client) -> None:
    _, claims = rp.login(Browser(), acr_values="https://refeds.org/profile/mfa")
    assert claims["acr"] == "https://refeds.org/profile/sfa"


def test_ui_locales_sets_the_language_of_the_students_pages(rp: Client) -> None:
    browser = Browser(language="nl")
    query = urlencode({k: v for k, v in rp.params(ui_locales="en-GB nl").items() if k[0] != "_"})
    page = browser.get(f"{rp.authorize_url}?{query}")
    assert rp.demo.shows_discovery(page), page.url
    assert '<html lang="en"' in page.text


def test_an_authorize_request_by_post_is_redirected_to_discovery(rp: Client) -> None:
    """By POST: 303 to `GET /discovery` (Post/Redirect/Get), the language carried along; by
    GET the page comes in the response itself (test_discovery_inline.py)."""
    params = {k: v for k, v in rp.params(ui_locales="en").items() if k[0] != "_"}
    browser = Browser(language="nl")
    posted = browser.post(rp.authorize_url, params, follow=False)
    assert posted.status == 303, posted.text[:300]
    assert posted.location and posted.location.startswith(f"{rp.demo.broker_url}/discovery?")
    query = parse_qs(urlsplit(posted.location).query)
    assert set(query) == {"login", "lang"} and query["lang"] == ["en"]
    page = browser.get(posted.location)
    assert rp.demo.shows_discovery(page) and '<html lang="en"' in page.text


# -- findings of the protocol review --------------------------------------------------------------
def test_max_age_makes_a_saml_school_log_in_afresh_and_an_old_login_is_refused(
    rp: Client, demo: LiveDemo
) -> None:
    from datetime import UTC, datetime, timedelta

    from lxml import etree

    from tests.support.forge import SchoolForger, authn_request_id, redirect_message, saml_time

    peers = demo.directory / "peers"
    forger = SchoolForger(
        demo.school_entity_id,
        peers / "school.key",
        peers / "school.crt",
        demo.broker.saml_entities.sp_metadata(),
    )
    browser = Browser()
    params = rp.params(max_age="3600", login_hint=DEMO_SCHOOL_ID)
    query = urlencode({k: v for k, v in params.items() if k[0] != "_"})
    page = browser.get(f"{rp.authorize_url}?{query}", stop=lambda u: u.startswith(demo.school_url))
    to_school = page.location or ""
    upstream, relay = redirect_message(to_school)
    assert etree.fromstring(upstream).get("ForceAuthn") == "true"

    # A school that answers with a login of two hours ago anyway: no code, login_required.
    two_hours_ago = saml_time(datetime.now(UTC) - timedelta(hours=2))

    def old_login(response: Any) -> None:
        response.assertion.authn_statement[0].authn_instant = two_hours_ago

    saml = forger.response(
        in_response_to=authn_request_id(to_school),
        destination=demo.acs_url,
        audience=demo.sp_entity_id,
        subject=demo.school_subject(UID),
        tamper=old_login,
    )
    page = browser.post(
        demo.acs_url, {"SAMLResponse": saml, "RelayState": relay["RelayState"]}, stop=rp._at_client
    )
    assert page.status == 403
    link = next(a for a in page.text.split('href="')[1:] if a.startswith(NOWHERE))
    query_back = parse_qs(urlsplit(link.split('"')[0].replace("&amp;", "&")).query)
    assert query_back["error"] == ["login_required"]


def test_an_essential_acr_the_broker_does_not_know_is_unmet_at_once(rp: Client) -> None:
    claims = json.dumps({"id_token": {"acr": {"essential": True, "values": ["urn:example:loa:4"]}}})
    answer = rp.redirect(Browser(), rp.params(claims=claims))
    assert answer["error"] == "unmet_authentication_requirements"


def test_a_bad_refresh_request_does_not_burn_the_token(rp: Client) -> None:
    token, _ = rp.login(Browser())

    def refresh(**extra: str) -> requests.Response:
        return requests.post(
            rp.token_url,
            data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"], **extra},
            auth=(rp.client_id, rp.secret or ""),
            timeout=5,
        )

    assert refresh(scope="openid email").json()["error"] == "invalid_scope"
    retried = refresh()
    assert retried.status_code == 200, retried.text


def test_the_token_endpoint_answers_json_whatever_comes_in(rp: Client) -> None:
    garbage = base64.b64encode(b"\xff\xfe:\xff").decode()
    bad_basic = requests.post(
        rp.token_url,
        data={"grant_type": "authorization_code", "code": "x"},
        headers={"Authorization": f"Basic {garbage}"},
        timeout=5,
    )
    assert bad_basic.status_code == 401 and bad_basic.json()["error"] == "invalid_client"
    get = requests.get(rp.token_url, timeout=5)
    assert get.status_code == 405 and get.json()["error"] == "invalid_request"
    unknown = requests.post(rp.token_url, data={"grant_type": "password"}, timeout=5)
    assert unknown.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("body", [{"code": "x"}, {}], ids=["code only", "empty"])
def test_a_token_request_without_grant_type_is_invalid_request(
    rp: Client, body: dict[str, str]
) -> None:
    """RFC 6749 5.2: a required parameter missing is invalid_request; unsupported_grant_type
    is for a grant type the provider does not offer (authlib answered it for both)."""
    answer = requests.post(rp.token_url, data=body, timeout=5)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert "grant_type parameter is missing" in answer.json()["error_description"]
    unknown = requests.post(rp.token_url, data={"grant_type": "password"}, timeout=5)
    assert unknown.status_code == 400 and unknown.json()["error"] == "unsupported_grant_type"


def test_the_token_endpoint_takes_its_address_from_the_configuration(rp: Client) -> None:
    """Behind a proxy that does not pass the scheme on, the request's own URL says plain http
    for a public host name, which authlib refuses (insecure transport): the endpoint's address
    is the configured one, so the request is judged on its merits, in JSON (it was a 500)."""
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    answer = rp.redeem(code, params["_verifier"], headers={"Host": "broker.example.org"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"] and answer.json()["id_token"]


def test_unknown_scopes_are_ignored(rp: Client) -> None:
    token, _ = rp.login(Browser(), scope="openid offline_access phone profile")
    assert set(token["scope"].split()) == {"openid", "profile"}


def test_prompt_none_shows_nothing_even_when_the_login_is_refused(
    rp: Client, demo: LiveDemo
) -> None:
    registration, secret = new_client((NOWHERE,), ClientAuthMethod.SECRET_BASIC)
    demo.registry.add_service(
        Service(
            "checks-requires-email",
            "checks-requires-email",
            "checks-requires-email",
            "leermiddelen",
            declarations=(Declaration("email", "To send receipts.", required=True),),
            protocol=Protocol.OIDC,
            oidc=registration,
        ),
        None,
    )
    strict = Client(demo, "checks-requires-email", secret)
    browser = Browser()
    rp.login(browser)  # an SSO session, so prompt=none gets as far as the release
    params = strict.params(prompt="none", scope="openid email")
    query = urlencode({k: v for k, v in params.items() if k[0] != "_"})
    page = browser.get(f"{strict.authorize_url}?{query}", stop=strict._at_client)
    # The school released no e-mail address: refused, straight back, no page for the student.
    assert page.location is not None and page.location.startswith(NOWHERE), page.status
    assert parse_qs(urlsplit(page.location).query)["error"] == ["access_denied"]


def test_a_confidential_client_without_pkce_must_send_a_nonce(rp: Client) -> None:
    params = rp.params(code_challenge="", code_challenge_method="", nonce="")
    assert rp.redirect(Browser(), params)["error"] == "invalid_request"


def test_repeated_parameters_are_refused(rp: Client) -> None:
    params = rp.params()
    query = urlencode({k: v for k, v in params.items() if k[0] != "_"}) + "&max_age=5&max_age=6"
    page = Browser().get(f"{rp.authorize_url}?{query}", stop=rp._at_client)
    assert page.location is not None
    assert parse_qs(urlsplit(page.location).query)["error"] == ["invalid_request"]


@pytest.mark.parametrize("session", [False, True])
@pytest.mark.parametrize(
    "repeated",
    [
        "prompt=none&prompt=login",
        "prompt=login&prompt=none",
        "code_challenge_method=S256&code_challenge_method=plain",
    ],
)
def test_a_repeated_parameter_is_refused_before_prompt_none_is_answered(
    rp: Client, repeated: str, session: bool
) -> None:
    """RFC 6749 3.1: invalid_request at the redirect URI, checked before authlib's prompt=none
    answer (before review-bcp `prompt=none&prompt=login` without a session was
    login_required, from the first value) and before any other check reads a first value."""
    browser = Browser()
    if session:
        rp.login(browser)
    params = {k: v for k, v in rp.params().items() if k[0] != "_"}
    query = urlencode(params) + "&" + repeated
    page = browser.get(f"{rp.authorize_url}?{query}", stop=rp._at_client)
    assert page.location is not None, (page.status, page.text[:300])
    answer = parse_qs(urlsplit(page.location).query)
    assert answer["error"] == ["invalid_request"], answer
    assert answer["error_description"] == ["A parameter is given more than once."]
    assert answer["state"] == [params["state"]]


@pytest.mark.parametrize(
    "name", ["grant_type", "code", "redirect_uri", "code_verifier", "client_id", "scope"]
)
def test_a_repeated_token_parameter_is_refused_and_uses_nothing_up(rp: Client, name: str) -> None:
    """RFC 6749 3.2: refused before authlib, which read the first value (before review-oidc-2
    a second `code` was simply ignored); the code is still good afterwards."""
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    body = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", rp.redirect_uri),
        ("code_verifier", params["_verifier"]),
    ]
    body += [(name, dict(body).get(name, rp.client_id if name == "client_id" else "openid"))] * 2
    auth = (rp.client_id, rp.secret or "")
    refused = requests.post(rp.token_url, data=body, auth=auth, timeout=5)
    assert refused.status_code == 400
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.headers["Cache-Control"] == "no-store"
    assert refused.json() == {
        "error": "invalid_request",
        "error_description": "A parameter is given more than once.",
    }
    assert rp.redeem(code, params["_verifier"]).status_code == 200


def test_a_repeated_refresh_token_is_refused_without_using_it_up(rp: Client) -> None:
    token, _ = rp.login(Browser())
    value = token["refresh_token"]
    body = [("grant_type", "refresh_token"), ("refresh_token", value), ("refresh_token", value)]
    refused = requests.post(
        rp.token_url, data=body, auth=(rp.client_id, rp.secret or ""), timeout=5
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert refresh_with(rp, value).status_code == 200


def test_two_access_tokens_in_a_userinfo_body_are_refused(rp: Client) -> None:
    token, _ = rp.login(Browser())
    access = token["access_token"]
    body = [("access_token", access), ("access_token", access)]
    refused = requests.post(f"{rp.demo.broker_url}/oidc/userinfo", data=body, timeout=5)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'


@pytest.mark.parametrize("name", ["response_type", "client_id", "redirect_uri", "scope", "state"])
def test_a_repeated_core_parameter_gets_a_page_never_a_redirect(rp: Client, name: str) -> None:
    """authlib checks these five before the redirect URI is trusted (oidc-profile.md)."""
    params = {k: v for k, v in rp.params().items() if k[0] != "_"}
    query = urlencode(params) + "&" + urlencode({name: params[name]})
    page = Browser().get(f"{rp.authorize_url}?{query}", follow=False)
    assert page.status == 400 and page.location is None


def test_userinfo_follows_rfc_6750(rp: Client) -> None:
    token, claims = rp.login(Browser())
    url = f"{rp.demo.broker_url}/oidc/userinfo"
    bare = requests.get(url, timeout=5)
    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"] == "Bearer"
    body = requests.post(url, data={"access_token": token["access_token"]}, timeout=5)
    assert body.status_code == 200 and body.json()["sub"] == claims["sub"]


# -- attacks (issue 8) ---------------------------------------------------------------------------


def test_a_code_redeemed_by_twenty_racing_requests_gives_tokens_once(rp: Client) -> None:
    """A stolen code raced against the client's own redemption: one answer carries tokens, the
    others invalid_grant, and then the winner's tokens are revoked (the code was used twice)."""
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    start = threading.Barrier(20)
    answers: list[requests.Response] = []

    def redeem() -> None:
        start.wait()
        answers.append(rp.redeem(code, params["_verifier"]))

    racers = [threading.Thread(target=redeem) for _ in range(20)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    winners = [a for a in answers if a.status_code == 200]
    assert len(winners) == 1, sorted(a.status_code for a in answers)
    assert all(
        a.status_code == 400 and a.json()["error"] == "invalid_grant"
        for a in answers
        if a.status_code != 200
    )
    access = winners[0].json()["access_token"]
    userinfo = requests.get(
        f"{rp.demo.broker_url}/oidc/userinfo",
        headers={"Authorization": f"Bearer {access}"},
        timeout=5,
    )
    assert userinfo.status_code == 401


def test_pkce_cannot_be_downgraded_at_the_token_endpoint(rp: Client) -> None:
    """The code was issued for an S256 challenge: leaving the verifier out (as an attacker who
    injected a stolen code would) is refused, and so is the challenge itself as verifier."""
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    response = rp.redeem(code, None)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_request", "invalid_grant")
    assert "access_token" not in response.json()
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    response = rp.redeem(code, params["code_challenge"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://LOCALHOST:9/cb",  # case
        "http://localhost:9/cb/",  # trailing slash
        "http://localhost:9/cb#x",  # fragment
        "http://localhost:9/cb/../cb",  # dot segments
        "http://localhost:9/%63b",  # percent-encoded path
        "http://localhost:9@evil.example/cb",  # credentials before another host
        "http://localhost:9.evil.example/cb",  # suffix host
        "http://localhost:90/cb",  # another port
        "https://localhost:9/cb",  # another scheme
        "javascript:alert(1)//http://localhost:9/cb",
        " http://localhost:9/cb",  # leading space
    ],
)
def test_redirect_uri_look_alikes_get_a_page_never_a_redirect(
    rp: Client, redirect_uri: str
) -> None:
    params = rp.params(redirect_uri=redirect_uri)
    page = Browser().get(f"{rp.authorize_url}?{urlencode(params)}", follow=False)
    assert page.status == 400, page.status
    assert page.location is None
    # The page links back to itself (the language switch), never to the URI it was handed.
    target = html.escape(redirect_uri.strip())
    assert f'href="{target}' not in page.text and f'action="{target}' not in page.text
    assert 'href="javascript:' not in page.text
    assert "Traceback" not in page.text


@pytest.mark.parametrize(
    "field", ["code", "code_verifier", "redirect_uri", "client_assertion", "refresh_token"]
)
def test_oversized_token_requests_are_refused_in_json(rp: Client, field: str) -> None:
    data = {"grant_type": "authorization_code", "code": "c", "redirect_uri": NOWHERE}
    if field == "refresh_token":
        data["grant_type"] = "refresh_token"
    data[field] = "A" * 300_000
    response = requests.post(
        rp.token_url, data=data, auth=(rp.client_id, rp.secret or ""), timeout=10
    )
    assert 400 <= response.status_code < 500, response.status_code
    assert response.headers["Content-Type"].startswith("application/json")
    assert "error" in response.json()


def test_an_oversized_authorization_request_is_refused_with_a_page(rp: Client) -> None:
    params = rp.params(state="s" * 60_000)
    page = Browser().get(f"{rp.authorize_url}?{urlencode(params)}", follow=False)
    assert 400 <= page.status < 500, page.status
    assert page.location is None


# -- review-oidc ---------------------------------------------------------------------------------


def test_userinfo_with_two_tokens_answers_the_bearer_challenge_with_invalid_request(
    rp: Client,
) -> None:
    """RFC 6750 3 and 3.1: a request without one usable access token gets the challenge, its
    error code in it; a token in the header and the body both is invalid_request (400). The 400
    came without WWW-Authenticate before review-oidc."""
    token, _ = rp.login(Browser())
    access = token["access_token"]
    response = requests.post(
        f"{rp.demo.broker_url}/oidc/userinfo",
        data={"access_token": access},
        headers={"Authorization": f"Bearer {access}"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "challenge",
    [
        "a" * 42,
        "a" * 44,
        "a" * 128,  # a plain challenge's length, sent as S256
        create_s256_code_challenge("v" * 43) + "=",  # padded base64url
    ],
    ids=["42", "44", "128", "padded"],
)
def test_an_s256_challenge_that_is_no_sha256_is_refused_at_once(rp: Client, challenge: str) -> None:
    """RFC 7636 4.2: an S256 challenge is BASE64URL(SHA-256), 43 characters. authlib takes 43 to
    128 (the plain method's range), so before review-oidc such a request got a code that no
    verifier could ever redeem."""
    answer = rp.redirect(Browser(), rp.params(code_challenge=challenge))
    assert answer["error"] == "invalid_request"
    assert "43-character" in answer["error_description"]
    assert "code" not in answer


def _refused_as_mixed(response: requests.Response, *words: str) -> None:
    """RFC 6749 5.2: two authentication methods, or credentials naming two clients, are
    invalid_request (400, no challenge), described in words a publisher's engineer can act on."""
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert "WWW-Authenticate" not in response.headers
    description = response.json()["error_description"]
    assert all(word in description for word in words), description


def test_a_token_request_with_two_client_authentication_methods_is_refused(
    rp: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 6749 2.3: "The client MUST NOT use more than one authentication method in each
    request". Until 2026-12-01 Basic with client_secret in the body as well was accepted (the
    Basic one counted). The refusal uses nothing up: the code is redeemed after it."""
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    with caplog.at_level(logging.WARNING, logger="broker.oidc"):
        response = rp.redeem(code, params["_verifier"], client_secret=rp.secret)
    _refused_as_mixed(response, "one client authentication method", "client_secret_basic and")
    assert "client_secret_post" in response.json()["error_description"]
    line = "refused code=oauth_invalid_request status=400 endpoint=token"
    assert f"{line} reason=client_auth_methods_mixed" in caplog.text
    assert (rp.secret or "-") not in caplog.text and code not in caplog.text
    assert rp.redeem(code, params["_verifier"]).status_code == 200


def test_a_client_id_in_the_body_that_contradicts_basic_is_refused(
    rp: Client, demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    """Basic credentials of one client and a body client_id naming another: refused (RFC 7521
    4.2, RFC 6749 5.2 "multiple credentials"), where until 2026-12-01 it was answered for the
    Basic client. The code stays redeemable by the client it was issued to."""
    other = register(demo, "checks-review-other")
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    with caplog.at_level(logging.WARNING, logger="broker.oidc"):
        response = rp.redeem(code, params["_verifier"], client_id=other.client_id)
    _refused_as_mixed(response, "client_id parameter names another client", "Basic credentials")
    assert other.client_id not in response.json()["error_description"]
    assert "reason=client_id_contradicts_credentials" in caplog.text
    assert other.client_id not in caplog.text
    assert rp.redeem(code, params["_verifier"]).status_code == 200


def test_a_client_id_in_the_body_equal_to_basic_is_accepted(rp: Client) -> None:
    """RFC 6749 2.3.1 and RFC 7521 4.2 allow client_id beside the credentials of the same
    client; several client libraries send it. Also percent-encoded in Basic (RFC 6749 2.3.1)."""
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    response = rp.redeem(code, params["_verifier"], client_id=rp.client_id)
    assert response.status_code == 200, response.text
    params = rp.params()
    code = rp.redirect(Browser(), params)["code"]
    encoded = rp.client_id.replace("-", "%2D")
    basic = base64.b64encode(f"{encoded}:{rp.secret}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}"}
    response = rp.redeem(code, params["_verifier"], headers, by="header", client_id=rp.client_id)
    assert response.status_code == 200, response.text


def test_a_client_secret_post_client_that_also_sends_basic_is_refused(demo: LiveDemo) -> None:
    """Before, authlib tried Basic, found the method not registered, went on to the body and
    accepted it. Now two methods are refused whichever one the client registered; the code
    stays redeemable by the registered method."""
    client = register(demo, "checks-post-and-basic", auth_method=ClientAuthMethod.SECRET_POST)
    params = client.params()
    code = client.redirect(Browser(), params)["code"]
    both = client.redeem(
        code, params["_verifier"], client_id=client.client_id, client_secret=client.secret
    )
    _refused_as_mixed(both, "client_secret_basic and client_secret_post")
    assert client.redeem(code, params["_verifier"], by="post").status_code == 200


def test_a_refresh_with_two_client_authentication_methods_is_refused(rp: Client) -> None:
    """The same rule for every grant at the token endpoint (the broker's only endpoint that
    authenticates clients: it has no revocation or introspection endpoint); the refresh token
    is not used up by the refusal."""
    token, _ = rp.login(Browser())
    refresh = token["refresh_token"]
    _refused_as_mixed(refresh_with(rp, refresh, client_secret=rp.secret or ""), "RFC 6749 2.3")
    other = refresh_with(rp, refresh, client_id="checks-review-nobody")
    _refused_as_mixed(other, "names another client")
    assert refresh_with(rp, refresh).status_code == 200


def test_no_token_reaches_the_logs_at_debug_level(
    rp: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """authlib writes every token it issues (`Issue token %r`) at debug level; an access or
    refresh token is the only key to its sealed record in the store. An operator who sets the
    root logger to DEBUG still gets none (broker/oidc/__init__.py)."""
    with caplog.at_level(logging.DEBUG):
        token, _claims = rp.login(Browser())
        refreshed = rp.session().refresh_token(rp.token_url, refresh_token=token["refresh_token"])
    secrets_issued = [token["access_token"], token["refresh_token"], refreshed["access_token"]]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged, "the capture saw the login"
    assert not [value for value in secrets_issued if value in logged]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_request_without_scope_is_answered_invalid_scope_at_the_redirect_uri(
    rp: Client, method: str
) -> None:
    """OIDC Core 3.1.2.6: as a scope without openid (before review-bcp a 500)."""
    params = {k: v for k, v in rp.params(scope="").items() if k[0] != "_"}
    if method == "GET":
        page = Browser().get(f"{rp.authorize_url}?{urlencode(params)}", stop=rp._at_client)
    else:
        page = Browser().post(rp.authorize_url, params, stop=rp._at_client)
    assert page.location is not None, (page.status, page.text[:300])
    answer = parse_qs(urlsplit(page.location).query)
    assert answer["error"] == ["invalid_scope"]
    assert answer["state"] == [params["state"]]
    assert answer["iss"] == [rp.demo.broker_url]


def test_an_error_is_not_sent_to_a_redirect_uri_removed_during_the_login(
    demo: LiveDemo, caplog: pytest.LogCaptureFixture
) -> None:
    """The error answer re-checks the kept redirect URI against the registration in force, as
    the code's answer does (before review-bcp it went to the removed URI): the student gets
    the page, nothing goes to the URI. prompt=none's at-once answer likewise."""
    removed = "http://localhost:9/removed"
    client = register(demo, "checks-removed-uri", redirect_uris=(NOWHERE, removed))
    browser = Browser()
    query = urlencode({k: v for k, v in client.params(redirect_uri=removed).items() if k[0] != "_"})
    discovery = browser.get(f"{client.authorize_url}?{query}", stop=client._at_client)
    assert demo.shows_discovery(discovery), discovery.text[:300]
    service = demo.registry.any_service(client.client_id)
    assert service is not None and service.oidc is not None
    demo.registry.update_oidc_client(
        client.client_id, replace(service.oidc, redirect_uris=(NOWHERE,))
    )
    back = next(f for f in discovery.forms if "back-to-platform" in f.action)
    page = browser.post(back.action, back.fields, follow=False)
    assert page.status == 400 and page.location is None, (page.status, page.location)
    assert removed not in page.text
    assert "oidc_redirect_uri_removed" in caplog.text
    assert "code" in client.redirect(Browser(), client.params())  # the URI kept still works
