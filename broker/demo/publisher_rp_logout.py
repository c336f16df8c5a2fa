"""Logout at the demo OIDC publisher: a "log out" button that goes through the broker's
end_session endpoint (RP-Initiated Logout 1.0), and a back-channel endpoint (Back-Channel Logout
1.0) that checks each logout token as a careful platform does and shows that it was called.

Standing in for an outside party, it uses no broker code: joserfc and the broker's published
discovery document and JWKS only.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Flask, jsonify, redirect, render_template, request, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# Logins the back channel ended, and calls it answered: enough for a demo and its tests.
_MAX_KEPT = 200


class LogoutTokenRefused(ValueError):
    pass


def check_logout_token(
    token: str, keys: KeySet, issuer: str, client_id: str, now: float
) -> dict[str, Any]:
    """Back-Channel Logout 1.0 section 2.6: signature, typ, iss, aud, iat/exp, jti, the event,
    sub or sid, and no nonce (so an ID token can never pass as a logout token)."""
    try:
        decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    except (JoseError, ValueError) as error:
        raise LogoutTokenRefused(f"signature: {error}") from None
    claims = dict(decoded.claims)
    if decoded.header.get("typ") != "logout+jwt":
        raise LogoutTokenRefused("typ is not logout+jwt")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud or []
    if claims.get("iss") != issuer or client_id not in audiences:
        raise LogoutTokenRefused("not from the broker for this client")
    if not isinstance(claims.get("iat"), int) or not isinstance(claims.get("exp"), int):
        raise LogoutTokenRefused("iat or exp missing")
    if claims["exp"] < now - 60 or claims["iat"] > now + 60:
        raise LogoutTokenRefused("expired or from the future")
    if not isinstance(claims.get("jti"), str):
        raise LogoutTokenRefused("jti missing")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise LogoutTokenRefused("no back-channel logout event")
    if not isinstance(claims.get("sid"), str) and not isinstance(claims.get("sub"), str):
        raise LogoutTokenRefused("neither sub nor sid")
    if "nonce" in claims:
        raise LogoutTokenRefused("a logout token has no nonce")
    return claims


class BackChannelCalls:
    """Verified logout tokens, in arrival order; a `jti` seen before is a replay."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self._seen: set[str] = set()

    def add(self, claims: dict[str, Any]) -> bool:
        with self._lock:
            if claims["jti"] in self._seen:
                return False
            self._seen.add(claims["jti"])
            self.calls.append(
                {
                    "sid": claims.get("sid"),
                    "sub": claims.get("sub"),
                    "jti": claims["jti"],
                    "received_at": int(time.time()),
                }
            )
            del self.calls[:-_MAX_KEPT]
            return True

    def ended(self, sid: str | None) -> bool:
        with self._lock:
            return any(call["sid"] == sid for call in self.calls)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.calls)


def add_logout_routes(
    app: Flask,
    *,
    name: str,
    base_url: str,
    issuer: str,
    client_id: str,
    provider: Callable[[], dict[str, Any]],
    fetch: Callable[[str], Any],
    id_token: Callable[[], str | None],
) -> BackChannelCalls:
    """/logout, /logged-out, /backchannel-logout (POST) and /backchannel.json on `app`."""
    calls = BackChannelCalls()

    @app.get("/logout")
    def logout() -> Any:
        state = secrets.token_urlsafe(16)
        session["logout_state"] = state
        params = {
            "client_id": client_id,
            "post_logout_redirect_uri": f"{base_url}/logged-out",
            "state": state,
        }
        hint = id_token()
        if hint:
            params["id_token_hint"] = hint
        if request.args.get("ui_locales"):
            params["ui_locales"] = request.args["ui_locales"]
        return redirect(f"{provider()['end_session_endpoint']}?{urlencode(params)}", code=303)

    @app.get("/logged-out")
    def logged_out() -> Any:
        expected = session.pop("logout_state", None)
        matched = expected is not None and request.args.get("state") == expected
        session.clear()
        page = render_template(
            "publisher_rp_logged_out.html",
            name=name,
            state_matched=matched,
            home=url_for("home"),
        )
        return page, 200 if matched else 400

    @app.post("/backchannel-logout")
    def backchannel_logout() -> Any:
        token = request.form.get("logout_token", "")
        keys = KeySet.import_key_set(fetch(provider()["jwks_uri"]))
        try:
            claims = check_logout_token(token, keys, issuer, client_id, time.time())
        except LogoutTokenRefused as refused:
            response = jsonify({"error": "invalid_request", "error_description": str(refused)})
            response.status_code = 400
        else:
            if calls.add(claims):
                response = jsonify({})
            else:
                response = jsonify({"error": "invalid_request", "error_description": "replay"})
                response.status_code = 400
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/backchannel.json")
    def backchannel_json() -> Any:
        return jsonify({"calls": calls.snapshot()})

    return calls
