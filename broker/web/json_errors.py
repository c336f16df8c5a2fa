"""HTTP errors of the endpoints that programs call, not people: the OpenID provider's token and
userinfo endpoints and documents, and a school's back-channel logout. Their clients parse JSON,
so a wrong method or an oversized body is answered in the OAuth error format (RFC 6749 5.2),
never with a student's HTML page.
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Response

from broker.oidc.oauth_errors import FALLBACK
from broker.oidc.provider import (
    DISCOVERY_PATH,
    JWKS_PATH,
    OAUTH_METADATA_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
)
from broker.web.no_store import no_store
from broker.web.school_backchannel_routes import SCHOOL_BACKCHANNEL_PATH

_PATHS = frozenset({TOKEN_PATH, USERINFO_PATH, JWKS_PATH, DISCOVERY_PATH, OAUTH_METADATA_PATH})
_PREFIXES = (SCHOOL_BACKCHANNEL_PATH.partition("<")[0],)


def answers_json(path: str) -> bool:
    return path in _PATHS or path.startswith(_PREFIXES)


def json_response(body: Any, status: int = 200, *, public: bool = False) -> Response:
    """A JSON answer: not stored by any cache (RFC 6749 5.1), unless `public` (the provider's
    documents, an hour)."""
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    if public:
        response.headers["Cache-Control"] = "public, max-age=3600"
    else:
        no_store(response)
        response.headers["Pragma"] = "no-cache"
    return response


def json_http_error(status: int, headers: list[tuple[str, str]]) -> Response:
    """`headers`: the error's own (the Allow of a 405), sent along."""
    error, description = _described(status, headers)
    response = json_response({"error": error, "error_description": description}, status)
    for name, value in headers:
        response.headers[name] = value
    return response


def _described(status: int, headers: list[tuple[str, str]]) -> tuple[str, str]:
    if status == 503:
        return "temporarily_unavailable", FALLBACK["temporarily_unavailable"]
    if status >= 500:
        return "server_error", "The broker failed to answer; try again later."
    if status == 413:
        return "invalid_request", "The request body is larger than this endpoint accepts."
    # HEAD and OPTIONS come with any GET and CORS endpoint; a client wants to know the others.
    allowed = [m for m in dict(headers).get("Allow", "").split(", ") if m in ("GET", "POST")]
    if status == 405 and allowed:
        return "invalid_request", f"Use {' or '.join(allowed)} at this endpoint."
    return "invalid_request", FALLBACK["invalid_request"]
