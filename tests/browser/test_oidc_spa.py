"""A browser-based public client (a single-page app, as oidc-client-ts builds one) logs in
through the broker in headless Chromium: PKCE made with WebCrypto, then discovery, the token
request, the JWKS and userinfo by `fetch` from the app's own origin (localhost, the broker on
127.0.0.1: cross-origin). Only a real browser enforces CORS, and the bearer token on userinfo
makes it send a real preflight first; the broker notes the preflights it answered.

Without Chromium this module is skipped (failed on CI) by test_demo_login, which it imports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from flask import Flask, request
from playwright.sync_api import Page, expect
from werkzeug.serving import BaseWSGIServer

from broker.core.model import ClientAuthMethod
from tests.browser.conftest import Demo, demo_on_free_ports, register_oidc_client
from tests.browser.test_demo_login import choose_school_by_search, pick_person
from tests.support.live import free_ports, serve_app
from tests.support.notice import continue_past_notice

CLIENT_ID = "spa-woordenboek"

# The app: `/` makes the PKCE pair and state and goes to the authorization endpoint it found in
# discovery; `/callback` redeems the code and calls JWKS and userinfo, writing what it got.
_SCRIPT = """
const BROKER = %(broker)s, CLIENT_ID = %(client_id)s, REDIRECT = location.origin + '/callback';
const b64url = bytes => btoa(String.fromCharCode(...bytes))
  .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '');
// A cross-origin answer without Access-Control-Allow-Origin makes fetch fail: that every call
// below resolves is the proof. WWW-Authenticate is readable only where the broker exposes it.
const json = async response => ({status: response.status, body: await response.json(),
  challenge: response.headers.get('WWW-Authenticate')});
async function discovery() {
  return (await fetch(BROKER + '/.well-known/openid-configuration')).json();
}
async function start() {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem('pkce', JSON.stringify({verifier, state}));
  const config = await discovery();
  location.assign(config.authorization_endpoint + '?' + new URLSearchParams({
    response_type: 'code', client_id: CLIENT_ID, redirect_uri: REDIRECT,
    scope: 'openid profile', state, code_challenge: b64url(new Uint8Array(digest)),
    code_challenge_method: 'S256'}));
}
async function callback() {
  const out = document.getElementById('result');
  try {
    const {verifier, state} = JSON.parse(sessionStorage.getItem('pkce'));
    const query = new URLSearchParams(location.search);
    if (query.get('state') !== state) throw new Error('state');
    const config = await discovery();
    const token = await json(await fetch(config.token_endpoint, {method: 'POST',
      headers: {'Content-Type': 'application/x-www-form-urlencoded'},
      body: new URLSearchParams({grant_type: 'authorization_code', code: query.get('code'),
        redirect_uri: REDIRECT, client_id: CLIENT_ID, code_verifier: verifier})}));
    const keys = await (await fetch(config.jwks_uri)).json();
    const bearer = {Authorization: 'Bearer ' + token.body.access_token};
    const userinfo = await json(await fetch(config.userinfo_endpoint, {headers: bearer}));
    const refused = await json(await fetch(config.userinfo_endpoint,
      {headers: {Authorization: 'Bearer not-a-token'}}));
    out.textContent = JSON.stringify({token, keys, userinfo, refused});
  } catch (error) {
    out.textContent = JSON.stringify({error: String(error)});
  }
}
(location.pathname === '/callback' ? callback : start)();
"""


def _spa(broker: str) -> Flask:
    app = Flask("spa")
    script = _SCRIPT % {"broker": json.dumps(broker), "client_id": json.dumps(CLIENT_ID)}
    page = f'<!doctype html><title>SPA</title><pre id="result"></pre><script>{script}</script>'
    app.add_url_rule("/", "start", lambda: page)
    app.add_url_rule("/callback", "callback", lambda: page)
    return app


@dataclass
class Setup:
    demo: Demo
    spa: str
    preflights: list[dict[str, str]]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    spa = f"http://localhost:{free_ports(1)}"
    preflights: list[dict[str, str]] = []

    def register(app: Flask) -> None:
        secret = register_oidc_client(
            app, CLIENT_ID, "Woordenboek (SPA)", f"{spa}/callback", ClientAuthMethod.NONE
        )
        assert secret is None

        @app.before_request
        def note_preflight() -> None:
            if request.method == "OPTIONS":
                preflights.append(
                    {
                        "path": request.path,
                        "origin": request.headers.get("Origin", ""),
                        "headers": request.headers.get("Access-Control-Request-Headers", ""),
                    }
                )

    with demo_on_free_ports(tmp_path_factory, register) as demo:
        server: BaseWSGIServer = serve_app(spa, _spa(demo.broker))
        try:
            yield Setup(demo, spa, preflights)
        finally:
            server.shutdown()
            server.server_close()


def test_a_single_page_app_logs_in_and_reads_every_answer_cross_origin(
    setup: Setup, page: Page
) -> None:
    demo = setup.demo
    page.goto(setup.spa + "/")
    choose_school_by_search(page, demo)
    pick_person(page, demo)
    continue_past_notice(page, setup.spa + "/callback")
    result = page.locator("#result")
    expect(result).not_to_be_empty()
    got: dict[str, Any] = json.loads(result.inner_text())
    assert "error" not in got, got
    token = got["token"]
    assert token["status"] == 200, token
    # The ID token as the app would check it: signature by a key of the JWKS it fetched.
    id_token = token["body"]["id_token"]
    kid = jwt.get_unverified_header(id_token)["kid"]
    jwk = next(k for k in got["keys"]["keys"] if k["kid"] == kid)
    claims = jwt.decode(
        id_token,
        jwt.PyJWK(jwk).key,
        algorithms=["RS256"],
        audience=CLIENT_ID,
        issuer=demo.broker,
    )
    userinfo = got["userinfo"]
    assert userinfo["status"] == 200 and userinfo["body"]["sub"] == claims["sub"]
    assert userinfo["body"]["given_name"] == "Sanne"
    refused = got["refused"]
    assert refused["status"] == 401 and refused["body"]["error"] == "invalid_token"
    assert refused["challenge"] == 'Bearer error="invalid_token"'  # exposed to the script
    # The bearer token made Chromium ask first: a real preflight from the app's origin.
    asked = [p for p in setup.preflights if p["path"] == "/oidc/userinfo"]
    assert asked and all(p["origin"] == setup.spa for p in asked), setup.preflights
    assert "authorization" in asked[0]["headers"].lower()
