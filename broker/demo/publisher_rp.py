"""A demo publisher's OpenID Connect relying party: a real authlib client that shows what it got.

It stands in for an outside party, so it trusts the broker only through the broker's discovery
document and JWKS and checks the ID token as a careful client does (signature, iss, aud, nonce,
expiry), with PKCE S256 and the RFC 9207 `iss` parameter against mix-up.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2 import OAuth2Error
from flask import Flask, jsonify, redirect, render_template, request, session, url_for
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from broker.demo.publisher_rp_logout import add_logout_routes
from broker.demo.publisher_sp import ReceivedLogins

_TEMPLATES = Path(__file__).parent / "templates"
_BANNER = "This is a demo publisher. It only shows what it received; it sells nothing."
_TIMEOUT = 5
# Passed through from /login to the broker, so the demo (and tests) can try each of them.
_PASSED_ON = ("prompt", "max_age", "acr_values", "claims", "ui_locales")


@dataclass(frozen=True)
class PublisherRpSettings:
    base_url: str
    name: str
    issuer: str  # the broker
    client_id: str
    client_secret: str
    scope: str = "openid profile email school"
    # How long the discovery document and JWKS may be reused. 0 (the demo's default) fetches
    # them for every login, so a key rollover shows at once; the benchmark caches them, as a
    # production client does, so its logins cost the broker what they cost in production.
    provider_cache_seconds: int = 0
    # What a careful client does when an ID token names a key id its cached JWKS lacks (the
    # broker's signing key rolled over, docs/operations.md): fetch the JWKS again, once, and
    # verify against that. False plays a client that never looks again until its cache expires.
    refresh_keys_on_unknown_kid: bool = True
    # `form_post` asks the broker to post its answer to /callback (as ASP.NET Core's OpenID
    # Connect handler does by default) instead of redirecting with it in the query.
    response_mode: str = "query"

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"


class _JsonCache:
    """GETs JSON documents, keeping each for `seconds` (0: fetched every time)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self._documents: dict[str, tuple[float, Any]] = {}

    def __call__(self, url: str, *, again: bool = False) -> Any:
        """The document at `url`, from the cache unless `again` (fetched anew and kept)."""
        hit = self._documents.get(url)
        if hit is not None and not again and time.monotonic() < hit[0]:
            return hit[1]
        value = requests.get(url, timeout=_TIMEOUT).json()
        if self.seconds:
            self._documents[url] = (time.monotonic() + self.seconds, value)
        return value


def _verified(id_token: str, jwks_uri: str, fetched: _JsonCache, refresh: bool) -> jwt.Token:
    """The ID token's signature checked against the (cached) JWKS; an unknown key id fetches
    the JWKS once more when `refresh`, as a signing key rollover needs."""
    try:
        keys = KeySet.import_key_set(fetched(jwks_uri))
        return jwt.decode(id_token, keys, algorithms=["RS256", "ES256"])
    except InvalidKeyIdError:
        if not refresh:
            raise
    keys = KeySet.import_key_set(fetched(jwks_uri, again=True))
    return jwt.decode(id_token, keys, algorithms=["RS256", "ES256"])


def _session_cookie(response_mode: str) -> dict[str, Any]:
    """The Flask session cookie's settings: it must come back with the broker's answer."""
    if response_mode == "form_post":
        # The callback is a POST from the broker's site: a cross-site request, which carries
        # only a SameSite=None cookie (and that only with Secure; loopback counts as secure).
        return {"SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": True}
    return {"SESSION_COOKIE_SAMESITE": "Lax"}  # the callback is a top-level GET


def _authorization_extras(args: Mapping[str, str], response_mode: str) -> dict[str, str]:
    """What /login passes on to the broker besides the code flow's own parameters."""
    extra = {k: args[k] for k in _PASSED_ON if args.get(k)}
    if args.get("school"):
        extra["login_hint"] = args["school"]
    if response_mode != "query":
        extra["response_mode"] = response_mode
    return extra


def _answer_in(response_mode: str) -> Mapping[str, str] | None:
    """The broker's answer at /callback, in the mode this client asked for and only in that
    one (None: it came otherwise)."""
    form_post = response_mode == "form_post"
    if request.method != ("POST" if form_post else "GET"):
        return None
    return request.form if form_post else request.args


def create_publisher_rp_app(settings: PublisherRpSettings) -> Flask:
    """The demo OIDC publisher as a Flask app: /, /login, /callback, /received.json, and the
    logout routes of publisher_rp_logout.py."""
    received_logins = ReceivedLogins()
    app = Flask(__name__, template_folder=str(_TEMPLATES))
    app.secret_key = secrets.token_bytes(32)
    digest = hashlib.sha256(settings.base_url.encode()).hexdigest()[:10]
    app.config["SESSION_COOKIE_NAME"] = f"demo_rp_{digest}"
    app.config.update(_session_cookie(settings.response_mode))

    fetched = _JsonCache(settings.provider_cache_seconds)

    def provider() -> dict[str, Any]:
        document: dict[str, Any] = fetched(f"{settings.issuer}/.well-known/openid-configuration")
        if document.get("issuer") != settings.issuer:
            raise ValueError("discovery document names another issuer")
        return document

    def client() -> OAuth2Session:
        return OAuth2Session(
            settings.client_id,
            settings.client_secret,
            scope=settings.scope,
            redirect_uri=settings.redirect_uri,
            code_challenge_method="S256",
        )

    def refused(message: str, status: int = 403, **fields: str | None) -> tuple[str, int]:
        session["received"] = received_logins.put({"error": fields.get("error") or message})
        page = render_template(
            "demo_error.html",
            heading="The login did not succeed",
            banner=_BANNER,
            message=message,
            home=url_for("home"),
            status_code=fields.get("error"),
            status_message=fields.get("error_description"),
        )
        return page, status

    back_channel = add_logout_routes(
        app,
        name=settings.name,
        base_url=settings.base_url,
        issuer=settings.issuer,
        client_id=settings.client_id,
        provider=provider,
        fetch=fetched,
        id_token=lambda: (received_logins.get(session.get("received", "")) or {}).get(
            "raw_id_token"
        ),
    )

    @app.get("/")
    def home() -> str:
        return render_template(
            "publisher_home.html",
            name=settings.name,
            school=request.args.get("school", ""),
            protocol="OpenID Connect",
        )

    @app.get("/login")
    def login() -> Any:
        verifier = secrets.token_urlsafe(48)
        nonce = secrets.token_urlsafe(16)
        extra = _authorization_extras(request.args, settings.response_mode)
        url, state = client().create_authorization_url(
            provider()["authorization_endpoint"], nonce=nonce, code_verifier=verifier, **extra
        )
        session["pending"] = {"state": state, "nonce": nonce, "verifier": verifier}
        return redirect(url, code=303)

    @app.route("/callback", methods=["GET", "POST"])
    def callback() -> Any:
        answer = _answer_in(settings.response_mode)
        if answer is None:
            return refused("This answer came in another response mode than asked for.", 400)
        pending = session.pop("pending", None)
        if not pending or answer.get("state") != pending["state"]:
            return refused("This answer does not belong to a login started here.", 400)
        if answer.get("iss") != settings.issuer:
            return refused("The answer names another issuer (mix-up defence, RFC 9207).", 400)
        if answer.get("error"):
            return refused(
                "The broker answered with an error.",
                error=answer["error"],
                error_description=answer.get("error_description"),
            )
        document = provider()
        try:
            # Closed at once: left to the garbage collector, the session's connection to the
            # broker would close at some later moment, in the middle of another request.
            with client() as oauth:
                token = oauth.fetch_token(
                    document["token_endpoint"],
                    code=answer.get("code", ""),
                    code_verifier=pending["verifier"],
                )
        except OAuth2Error as error:
            return refused("The token request failed.", error=error.error)
        try:
            id_token = _verified(
                token["id_token"],
                document["jwks_uri"],
                fetched,
                settings.refresh_keys_on_unknown_kid,
            )
            claims = dict(id_token.claims)
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": settings.issuer},
                aud={"essential": True, "value": settings.client_id},
                nonce={"essential": True, "value": pending["nonce"]},
                exp={"essential": True},
            ).validate(claims)
        except JoseError as error:
            return refused(f"The ID token was refused: {error.error}.")
        userinfo = requests.get(
            document["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {token['access_token']}"},
            timeout=_TIMEOUT,
        ).json()
        if userinfo.get("sub") != claims["sub"]:
            return refused("userinfo names another subject than the ID token.")
        received = {
            "issuer": claims["iss"],
            "sub": claims["sub"],
            "id_token": claims,
            "userinfo": userinfo,
            "session_index": claims.get("sid"),
            # As received, for the logout button (id_token_hint) and tests that need the token.
            "raw_id_token": token["id_token"],
            "received_at": int(time.time()),
            "id_token_kid": id_token.header.get("kid"),
        }
        session["received"] = received_logins.put(received)
        return render_template("publisher_rp_received.html", name=settings.name, received=received)

    @app.get("/received.json")
    def received_json() -> Any:
        received = received_logins.get(session.get("received", ""))
        if received is None:
            return jsonify({"error": "nothing received in this browser session"}), 404
        # Whether the broker has since told this platform, server to server, that it ended.
        ended = back_channel.ended(received.get("session_index"))
        return jsonify({**received, "ended_by_back_channel": ended})

    return app
