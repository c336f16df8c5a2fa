"""OpenID provider endpoints towards publishers: discovery, JWKS, authorize, token, userinfo."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, request
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.wrappers import Response

from broker.oidc.provider import (
    AUTHORIZE_PATH,
    DISCOVERY_PATH,
    JWKS_PATH,
    OAUTH_METADATA_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
    ClientRefusal,
)
from broker.web.browser import SSO_COOKIE, browser_secret
from broker.web.json_errors import json_response
from broker.web.login_finish import session_and_services
from broker.web.login_upstream import continue_login
from broker.web.service_answers import to_client
from broker.web.wiring import broker, oidc_front

oidc_op = Blueprint("oidc_op", __name__)
log = logging.getLogger("broker.oidc")

# CORS: what a publisher's single-page app (a public client with PKCE: oidc-client-ts,
# angular-oauth2-oidc) calls from the browser, by path, with the methods it may use. Any origin
# (`*`, never with credentials): these endpoints take no cookie, so a page of any origin gains
# nothing a script outside a browser could not do; the code with its PKCE verifier, the client's
# secret or the bearer token is what protects them. The registered redirect URIs' origins would
# add a registry lookup to every call and nothing else (userinfo does not even know its client
# before the token is read). Authorize and end_session are navigations: no CORS there.
CROSS_ORIGIN = {
    DISCOVERY_PATH: "GET",
    OAUTH_METADATA_PATH: "GET",
    JWKS_PATH: "GET",
    TOKEN_PATH: "POST",
    USERINFO_PATH: "GET, POST",
}
# A bearer token (userinfo) and a JSON or form body make the browser ask first (a preflight).
ALLOWED_HEADERS = "Authorization, Content-Type"
# Chromium keeps a preflight's answer for at most 2 hours, Firefox for 24.
PREFLIGHT_MAX_AGE = "86400"


@oidc_op.after_request
def _cross_origin(response: Response) -> Response:
    """Every answer of a CORS endpoint carries the header, errors and rate limits included: a
    single-page app must be able to read why it was refused."""
    if request.path in CROSS_ORIGIN:
        response.headers["Access-Control-Allow-Origin"] = "*"
        # A script reads the Bearer or Basic challenge of a 401 only when it is exposed.
        response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"
    return response


def _preflight() -> Response:
    """A CORS preflight: no store, no rate limit, the same answer for every origin."""
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = CROSS_ORIGIN[request.path]
    response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    return response


for _name, _path in [
    ("discovery_preflight", DISCOVERY_PATH),
    ("oauth_metadata_preflight", OAUTH_METADATA_PATH),
    ("jwks_preflight", JWKS_PATH),
    ("token_preflight", TOKEN_PATH),
    ("userinfo_preflight", USERINFO_PATH),
]:
    # Views of their own: the token endpoint's rate limit and metrics do not count preflights.
    oidc_op.add_url_rule(_path, _name, _preflight, methods=["OPTIONS"])


@oidc_op.route(DISCOVERY_PATH, provide_automatic_options=False)
# RFC 8414 authorization server metadata: the same document (OIDC Discovery's fields are RFC
# 8414's plus its own), so an OAuth-only library finds the same endpoints.
@oidc_op.route(OAUTH_METADATA_PATH, provide_automatic_options=False)
def discovery_document() -> Response:
    return json_response(oidc_front().discovery(), public=True)


@oidc_op.route(JWKS_PATH, provide_automatic_options=False)
def jwks() -> Response:
    return json_response(oidc_front().jwks(), public=True)


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
    except ClientRefusal as refusal:
        # Its name heads the auto-post page of a form_post client.
        client = b.view.service_by_entity_id(refusal.client_id)
        return to_client(refusal.response, client.name if client else "")
    secret = browser_secret(request)
    # Saved by continue_login only if the login goes on (an SSO session may answer at once).
    record = b.flow.start(secret, login_request, save=False)
    return continue_login(secret, record, sso_token, known=known)


def _refused(endpoint: str, status: int, body: dict[str, Any], reason: str | None = None) -> None:
    """The one line of a refused token or userinfo request: the OAuth error code and, where the
    provider refused before authlib, its own reason code; never the description (authlib's may
    name what the client sent) nor any credential."""
    if status >= 400:
        log.warning(
            "refused code=oauth_%s status=%s endpoint=%s%s",
            body.get("error") or "no_credentials",
            status,
            endpoint,
            f" reason={reason}" if reason else "",
        )


@oidc_op.route(TOKEN_PATH, methods=["GET", "POST"], provide_automatic_options=False)
def token() -> Response:
    if request.method != "POST":
        # Routed here (not refused by the router) so the answer carries the CORS header; the
        # error handler answers it in JSON (json_errors.py), an OAuth client's format.
        raise MethodNotAllowed(valid_methods=["POST"])
    form = {key: request.form.getlist(key) for key in request.form}
    authorization = request.headers.get("Authorization")
    status, body, out, reason = oidc_front().tokens.token(authorization, form)
    _refused("token", status, body, reason)
    response = json_response(body, status)
    for name, value in out:
        if name.lower() not in ("content-type", "cache-control", "pragma"):
            response.headers[name] = value
    return response


@oidc_op.route(USERINFO_PATH, methods=["GET", "POST"], provide_automatic_options=False)
def userinfo() -> Response:
    form_tokens = request.form.getlist("access_token") if request.method == "POST" else []
    status, body = oidc_front().tokens.userinfo(request.headers.get("Authorization"), form_tokens)
    _refused("userinfo", status, body)
    response = json_response(body, status)
    if status in (400, 401):
        # RFC 6750 3: a request without an access token that enables access (none, a bad one,
        # or two: 400 invalid_request) is answered with the challenge, its error code in it.
        error = body.get("error")
        response.headers["WWW-Authenticate"] = f'Bearer error="{error}"' if error else "Bearer"
    return response
