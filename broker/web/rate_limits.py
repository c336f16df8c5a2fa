"""Rate limits on the endpoints anyone can call without an account (security.md, Web).

Fixed windows per client address, counted in the broker's own store (`KeyValueStore.count`):
in Redis every worker of every machine counts together, whatever the store's topology (one
server, Sentinel, Cluster), with the store's timeouts and retries; with `memory://` each process
counts alone. The limits come from `[rate_limits]` in the configuration (broker/config.py), in
the notation of the `limits` library, which parses them. The portal sign-in keeps its own,
per-account throttle (broker/web/portal/guard.py). The portal's student lookup is limited per
account with these counters too (`RateLimiter.spent_until`, windows aligned to the clock so the
page can say when the account may look up again: portal/student_lookup.py).

Only the limited views check anything: each is wrapped, and a check is one counter increment
per limit (one store round trip), nothing per request elsewhere. The broker used Flask-Limiter
before; what it added per limited request (exemption scopes, request-local lookups, limit
filtering) cost more than the counting, and its Redis client was one of its own, without the
store's timeouts or its Sentinel and Cluster support (docs/performance.md).

When the store cannot be reached the check lets the request through and logs it: the login
itself then stops with a 503 at its own store calls, because no check of the login may be
skipped; refusing everyone for a counter would add nothing to that.
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Callable
from hashlib import sha256
from typing import Any

from flask import Flask, jsonify, request
from limits import RateLimitItem, parse_many
from werkzeug.wrappers import Response

from broker.config import RateLimits, Settings
from broker.core.errors import StoreUnavailable
from broker.core.ports import KeyValueStore
from broker.web.errors import http_error_page, new_error_id

log = logging.getLogger("broker.web")

# Endpoint (blueprint.view) → the RateLimits field that limits it.
LIMITED_ENDPOINTS = {
    "saml.sso": "sso",
    "oidc_op.authorize": "sso",
    # The data page's sign-in starts a login (a login record in the store) as SSO does.
    "my_data.sign_in": "sso",
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
    "saml_soap_logout.sp_slo_soap": "acs",
    "discovery.choose": "discovery",
    "discovery.chosen": "discovery",
}
JSON_ENDPOINTS = frozenset({"oidc_op.token", "school_backchannel.school_backchannel_logout"})
# Counter keys in the store: "limits:LIMITER/<scope>/<client hash>/600/1/minute" and the like.
KEY_PREFIX = "limits"


class RateLimited(Exception):
    """A limited endpoint's budget for this client is spent until `retry_after` seconds pass."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after


def client_key(secret: bytes) -> Callable[[], str]:
    """What the counters are keyed by: a keyed hash of the client's address, never the address
    itself (an IP address is personal data, and the store must hold none: security.md)."""
    key = hmac.new(secret, b"ketenbroker/rate-limit-client", sha256).digest()

    def current_client() -> str:
        address = request.remote_addr or ""
        return hmac.new(key, address.encode(), sha256).hexdigest()[:32]

    return current_client


@functools.cache
def limit_items(value: str) -> tuple[RateLimitItem, ...]:
    """The limits of a configured value ("30/minute;300/day"), shortest window first: a request
    refused by "10/second" spends nothing of "1000/hour". Parsed once per value."""
    return tuple(sorted(parse_many(value))) if value else ()


class RateLimiter:
    """Fixed-window counters per (kind of endpoint, client, limit), in the broker's store;
    `limits`: the app's configured ones, for the views that count by themselves."""

    def __init__(
        self, store: KeyValueStore, client: Callable[[], str], limits: RateLimits | None = None
    ) -> None:
        self.store = store
        self.client = client
        self.limits = limits or RateLimits()

    def check(self, scope: str, items: tuple[RateLimitItem, ...]) -> None:
        """Count this request against each of the scope's limits, shortest window first;
        RateLimited when one is spent (the longer ones are not counted then)."""
        client = self.client()
        for item in items:
            window = item.get_expiry()
            try:
                used = self.store.count(self._key(scope, client, item), window)
            except StoreUnavailable as error:
                log.warning("rate limit not counted: %s scope=%s", error, scope)
                return
            if used > item.amount:
                raise RateLimited(window)

    def spent_until(
        self, scope: str, items: tuple[RateLimitItem, ...], who: str
    ) -> tuple[RateLimitItem, int] | None:
        """Count one request of `who` against each limit, shortest window first, in windows
        aligned to the clock (a minute from :00, a day from 00:00 UTC), so that the end of a
        spent one is known exactly: (the spent limit, the epoch second its window ends), or
        None while every limit has room. `StoreUnavailable` is the caller's to answer: a
        limit that protects students is not skipped because its counter cannot be reached."""
        now = int(time.time())
        for item in items:
            window = item.get_expiry()
            start = now - now % window
            key = f"{self._key(scope, who, item)}/{start}"
            if self.store.count(key, window) > item.amount:
                return item, start + window
        return None

    @staticmethod
    def _key(scope: str, who: str, item: RateLimitItem) -> str:
        return f"{KEY_PREFIX}:{item.key_for(scope, who)}"

    def limited(self, scope: str, value: str, view: Callable[..., Any]) -> Callable[..., Any]:
        """`view`, checked against `value` ("600/minute", several joined by ";") first.
        scope: one counter per kind of endpoint, so SAML and OIDC SSO share the "sso" budget."""
        items = limit_items(value)

        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            self.check(scope, items)
            return view(*args, **kwargs)

        return checked


def install_rate_limits(app: Flask, settings: Settings) -> RateLimiter:
    """Wrap the limited endpoints' views; call after every blueprint is registered."""
    store: KeyValueStore = app.extensions["ketenbroker"].store
    limiter = RateLimiter(store, client_key(settings.secret_key), settings.rate_limits)
    app.extensions["ketenbroker_rate_limiter"] = limiter
    limits = settings.rate_limits
    for endpoint, field in LIMITED_ENDPOINTS.items():
        value = getattr(limits, field)
        view = app.view_functions.get(endpoint)
        if value and view is not None:
            app.view_functions[endpoint] = limiter.limited(field, value, view)

    @app.errorhandler(RateLimited)
    def rate_limited(error: RateLimited) -> Response | tuple[Response, int, dict[str, str]]:
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
        # "Try again" (after the wait the page asks for): this address again, or the same form.
        return http_error_page(429, error_id, retry_after.items())

    return limiter
