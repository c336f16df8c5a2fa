"""OpenID provider endpoints towards publishers: discovery, JWKS, authorize, token, userinfo."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, redirect, request
from werkzeug.wrappers import Response

from broker.oidc.provider import (
    AUTHORIZE_PATH,
    DISCOVERY_PATH,
    JWKS_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
    OidcRedirect,
)
from broker.web.browser import SSO_COOKIE, browser_secret
from broker.web.login_steps import broker, continue_login, oidc_front, session_and_services

oidc_op = Blueprint("oidc_op", __name__)


def _json(body: Any, status: int = 200, *, public: bool = False) -> Response:
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    if public:
        # Published documents: publishers' single-page apps may read them from the browser.
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Cache-Control"] = "public, max-age=3600"
    else:
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


@oidc_op.route(DISCOVERY_PATH)
def discovery_document() -> Response:
    return _json(oidc_front().discovery(), public=True)


@oidc_op.route(JWKS_PATH)
def jwks() -> Response:
    return _json(oidc_front().jwks(), public=True)


@oidc_op.route(AUTHORIZE_PATH, methods=["GET", "POST"])
def authorize() -> Response:
    source = request.args if request.method == "GET" else request.form
    params = {key: source.getlist(key) for key in source}
    sso_token = request.cookies.get(SSO_COOKIE)
    b = broker()
    # The session and its services record in one round trip, read once for this request.
    known = session_and_services(sso_token)
    try:
        login_request = oidc_front().authorize(params, has_session=known[0] is not None)
    except OidcRedirect as refusal:
        return redirect(refusal.location, 303)
    secret = browser_secret(request)
    # Saved by continue_login only if the login goes on (an SSO session may answer at once).
    record = b.flow.start(secret, login_request, save=False)
    return continue_login(secret, record, sso_token, saved=False, known=known)


@oidc_op.route(TOKEN_PATH, methods=["GET", "POST"])
def token() -> Response:
    if request.method != "POST":
        # An OAuth client reads JSON errors, never the students' HTML pages.
        response = _json({"error": "invalid_request", "error_description": "use POST"}, 405)
        response.headers["Allow"] = "POST"
        return response
    form = {key: request.form.getlist(key) for key in request.form}
    status, body, out = oidc_front().token(request.headers.get("Authorization"), form)
    response = _json(body, status)
    for name, value in out:
        if name.lower() not in ("content-type", "cache-control", "pragma"):
            response.headers[name] = value
    return response


@oidc_op.route(USERINFO_PATH, methods=["GET", "POST"])
def userinfo() -> Response:
    form_token = request.form.get("access_token") if request.method == "POST" else None
    status, body = oidc_front().userinfo(request.headers.get("Authorization"), form_token)
    response = _json(body, status)
    if status == 401:
        error = body.get("error")
        response.headers["WWW-Authenticate"] = f'Bearer error="{error}"' if error else "Bearer"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
