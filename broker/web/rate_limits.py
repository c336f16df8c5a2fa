"""Rate limits on the endpoints anyone can call without an account (security.md, Web).

Counted per client address with the `limits` library (fixed windows), in the broker's own store:
Redis when the store is Redis (so every worker counts together), process memory otherwise. The
limits come from `[rate_limits]` in the configuration (broker/config.py). The portal sign-in
keeps its own, per-account throttle (broker/web/portal/guard.py).

Only the limited views check anything: each is wrapped, and a check is one counter increment
per limit (one Redis round trip), nothing per request elsewhere. The broker used Flask-Limiter
on top of `limits` before; what it added per limited request (exemption scopes, request-local
lookups, limit filtering) cost more than the counting itself, for features the broker does not
use (docs/performance.md, "Rate limits without Flask-Limiter").

When the store cannot be reached (or answers slower than the store's one-second timeout) the
check lets the request through and logs it: the login itself then stops with a 503, because no
check of the login may be skipped; refusing everyone for a counter would add nothing to that.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable
from hashlib import sha256
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Flask, Response, jsonify, render_template, request
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

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
KEY_PREFIX = "kb-limits"
# The store's own timeouts (broker/store/redis_clients.py): a Redis that hangs must not hold
# a request here either.
STORE_TIMEOUT_SECONDS = 1.0


class RateLimited(Exception):
    """A limited endpoint's budget for this client is spent until `retry_after` seconds pass."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after


def storage_uri(store_url: str) -> str:
    """Where the counters live: the store's Redis, or this process's memory."""
    if store_url.startswith(("redis://", "rediss://")):
        return store_url
    if store_url.startswith("unix://"):
        return "redis+unix://" + store_url.removeprefix("unix://")  # the limits library's name
    return "memory://"


def open_counters(store_url: str) -> Storage:
    """The counters' storage. Its errors come wrapped as `limits.errors.StorageError` (the only
    failure `RateLimiter.check` lets through); Redis gets the store's one-second timeouts, which
    a timeout in the URL's query (redis-py lets the query win) cannot lengthen."""
    uri = storage_uri(store_url)
    if uri == "memory://":
        if store_url.startswith(("redis+sentinel://", "redis+cluster://")):
            log.warning(
                "rate limits counted per worker process: the store's Sentinel or Cluster URL "
                "is not shared with the limiter (docs/security.md, Rate limits)"
            )
        return cast(Storage, storage_from_string(uri, wrap_exceptions=True))
    return cast(
        Storage,
        storage_from_string(
            _without_timeouts(uri),
            wrap_exceptions=True,
            socket_timeout=STORE_TIMEOUT_SECONDS,
            socket_connect_timeout=STORE_TIMEOUT_SECONDS,
        ),
    )


def _without_timeouts(uri: str) -> str:
    parts = urlsplit(uri)
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k not in _TIMEOUT_OPTIONS]
    return urlunsplit(parts._replace(query=urlencode(kept)))


_TIMEOUT_OPTIONS = frozenset({"socket_timeout", "socket_connect_timeout"})


def client_key(secret: bytes) -> Callable[[], str]:
    """What the counters are keyed by: a keyed hash of the client's address, never the address
    itself (an IP address is personal data, and the store must hold none: security.md)."""
    key = hmac.new(secret, b"ketenbroker/rate-limit-client", sha256).digest()

    def current_client() -> str:
        address = request.remote_addr or ""
        return hmac.new(key, address.encode(), sha256).hexdigest()[:32]

    return current_client


class RateLimiter:
    """Fixed-window counters per (kind of endpoint, client), in `storage`."""

    def __init__(self, storage: Storage, client: Callable[[], str]) -> None:
        self.storage = storage
        self.strategy = FixedWindowRateLimiter(storage)
        self.client = client

    def check(self, scope: str, items: list[RateLimitItem]) -> None:
        """Count this request against each of the scope's limits; RateLimited when one is
        spent (the others are not counted then, as a refused request did no work)."""
        client = self.client()
        for item in items:
            try:
                allowed = self.strategy.hit(item, KEY_PREFIX, scope, client)
            except StorageError as error:  # the store's failures only, never a bug here
                log.warning(
                    "rate limit not counted: store unreachable (%s) scope=%s",
                    type(error.storage_error).__name__,
                    scope,
                )
                return
            if not allowed:
                raise RateLimited(max(1, int(item.get_expiry())))

    def limited(self, scope: str, value: str, view: Callable[..., Any]) -> Callable[..., Any]:
        """`view`, checked against `value` ("600/minute", several joined by ";") first.
        scope: one counter per kind of endpoint, so SAML and OIDC SSO share the "sso" budget."""
        # Shortest window first: a request refused by "10/second" spends nothing of "1000/hour".
        items = sorted(parse_many(value))

        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            self.check(scope, items)
            return view(*args, **kwargs)

        return checked


def install_rate_limits(app: Flask, settings: Settings) -> RateLimiter:
    """Wrap the limited endpoints' views; call after every blueprint is registered."""
    limiter = RateLimiter(open_counters(settings.store_url), client_key(settings.secret_key))
    app.extensions["ketenbroker_rate_limiter"] = limiter
    limits = settings.rate_limits
    for endpoint, field in LIMITED_ENDPOINTS.items():
        value = getattr(limits, field)
        view = app.view_functions.get(endpoint)
        if value and view is not None:
            app.view_functions[endpoint] = limiter.limited(field, value, view)

    @app.errorhandler(RateLimited)
    def rate_limited(error: RateLimited) -> tuple[Response | str, int, dict[str, str]]:
        error_id = new_error_id()
        log.warning(
            "refused code=rate_limited status=429 error_id=%s endpoint=%s",
            error_id,
            request.endpoint,
        )
        # So well-behaved clients back off: a fixed window resets at most its length from now.
        retry_after = {"Retry-After": str(error.retry_after)}
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
