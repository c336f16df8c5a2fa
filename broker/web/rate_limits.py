"""Rate limits on the endpoints anyone can call without an account (security.md, Web).

Flask-Limiter, counting per client address in the broker's own store: Redis when the store is
Redis (so every worker counts together), process memory otherwise. The limits come from
`[rate_limits]` in the configuration (broker/config.py). The portal sign-in keeps its own,
per-account throttle (broker/web/portal/guard.py).

When the store cannot be reached the limiter lets requests through (Flask-Limiter's
`swallow_errors`): the login itself then stops with a 503, because no check of the login may be
skipped; refusing everyone for a counter would add nothing to that.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from hashlib import sha256
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from broker.config import Settings
from broker.web.errors import new_error_id
from broker.web.labels import error_title, http_error_message

log = logging.getLogger("broker.web")

# Endpoint (blueprint.view) → the RateLimits field that limits it.
LIMITED_ENDPOINTS = {
    "saml.sso": "sso",
    "oidc_op.authorize": "sso",
    "saml.acs": "acs",
    "oidc_rp.callback": "acs",
    "oidc_op.token": "token",
    # A logout calls platforms' back-channel endpoints: limited like the login that opened it.
    "oidc_logout.end_session": "sso",
    "oidc_logout.school_logged_out": "acs",
    # A school's logout token: signature work and platforms' back-channel calls, like an answer.
    "school_backchannel.school_backchannel_logout": "acs",
    # Logout messages: signature checks and replay-store writes on unauthenticated input.
    "saml_logout.idp_slo": "acs",
    "saml_logout.sp_slo": "acs",
    "discovery.choose": "discovery",
    "discovery.chosen": "discovery",
}
JSON_ENDPOINTS = frozenset({"oidc_op.token", "school_backchannel.school_backchannel_logout"})


def storage_uri(store_url: str) -> str:
    """Where the counters live: the store's Redis, or this process's memory."""
    if store_url.startswith(("redis://", "rediss://")):
        return store_url
    if store_url.startswith("unix://"):
        return "redis+unix://" + store_url.removeprefix("unix://")  # the limits library's name
    return "memory://"


def client_key(secret: bytes) -> Callable[[], str]:
    """What the counters are keyed by: a keyed hash of the client's address, never the address
    itself (an IP address is personal data, and the store must hold none: security.md)."""
    key = hmac.new(secret, b"ketenbroker/rate-limit-client", sha256).digest()

    def current_client() -> str:
        address = get_remote_address() or ""
        return hmac.new(key, address.encode(), sha256).hexdigest()[:32]

    return current_client


def install_rate_limits(app: Flask, settings: Settings) -> Limiter:
    """Wrap the limited endpoints' views; call after every blueprint is registered."""
    limiter = Limiter(
        client_key(settings.secret_key),
        storage_uri=storage_uri(settings.store_url),
        key_prefix="kb-limits",
        # No X-RateLimit-* headers on every answer: they cost two store round trips per limited
        # request (the window's count and expiry), on top of the one that counts it. The 429
        # carries Retry-After all the same (below).
        headers_enabled=False,
        swallow_errors=True,
    )
    # Flask-Limiter adds three app-wide hooks (before, after, teardown) that run on every
    # request, /healthz and static files included; ~7 % of a bare request's CPU. With no default,
    # application or meta limits (the broker sets none: every limit is on a view, below) and no
    # headers they do nothing: the decorated views check their own limits. Registering the
    # limiter as already installed makes init_app set up storage and configuration only.
    # tests/security/test_web_hardening.py checks both: no hooks, and every limit still bites.
    app.extensions.setdefault("limiter", set()).add(limiter)
    limiter.init_app(app)
    limits = settings.rate_limits
    for endpoint, field in LIMITED_ENDPOINTS.items():
        value = getattr(limits, field)
        view = app.view_functions.get(endpoint)
        if value and view is not None:
            # scope: one counter per kind of endpoint, so SAML and OIDC SSO share the "sso" budget
            wrapped: Any = limiter.shared_limit(value, scope=field)(view)
            app.view_functions[endpoint] = wrapped

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(error: RateLimitExceeded) -> tuple[Response | str, int, dict[str, str]]:
        error_id = new_error_id()
        log.warning(
            "refused code=rate_limited status=429 error_id=%s endpoint=%s",
            error_id,
            request.endpoint,
        )
        # So well-behaved clients back off: a fixed window resets at most its length from now.
        retry_after = {"Retry-After": str(max(1, int(error.limit.limit.get_expiry())))}
        if request.endpoint in JSON_ENDPOINTS:
            # OAuth clients read JSON; RFC 6749 has no rate-limit error, this is the nearest.
            body = {"error": "temporarily_unavailable", "error_description": "too many requests"}
            return jsonify(body), 429, retry_after
        page = render_template(
            "error.html",
            status=429,
            title=error_title(429),
            message=http_error_message(429),
            error_id=error_id,
        )
        return page, 429, retry_after

    return limiter
