"""Outbound HTTP to schools' OpenID providers, under the fetch rules of security.md.

Every call (discovery, JWKS, token, userinfo) goes through `SchoolSession`: only https, or plain
http to a loopback address; a timeout; no redirects (a 3xx would let a provider's answer come
from a URL nobody configured); and a size cap, enforced while streaming so a provider cannot make
a worker buffer a gigabyte. Failures of the network become `UpstreamFailure("school_unreachable")`,
a provider that does not answer in time `SchoolTimeout`.

Each call is bounded by the timeout (its name lookup included, which runs in a thread of its
own, since getaddrinfo has no timeout, and is the only lookup: broker/name_lookup.py; the
connection goes to the addresses that were checked, pinned_http.py), but a login's callback
makes several calls (token, keys, userinfo): `call_budget` bounds them together, so a provider
that answers each one just before its timeout cannot hold a worker past gunicorn's own timeout
(operations.md, failure behaviour).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from urllib3.exceptions import HTTPError, ReadTimeoutError

from broker.core.endpoints import is_acceptable_endpoint
from broker.core.errors import SchoolTimeout, UpstreamFailure
from broker.name_lookup import DestinationRefused, LookupTimedOut, checked_destinations
from broker.oidc.pinned_http import PinnedAdapter, pinned_to

# Discovery documents, key sets and token responses are a few KiB; 256 KiB leaves room for big
# key sets and long group lists while keeping a hostile provider from filling memory.
MAX_RESPONSE_BYTES = 256 * 1024
_CHUNK = 16 * 1024
# When the calls of the current request to schools' providers must have ended (monotonic).
_BUDGET_ENDS: ContextVar[float | None] = ContextVar("school_call_budget_ends", default=None)


@contextmanager
def call_budget(seconds: float) -> Iterator[None]:
    """Every call to a school's provider inside the block ends within `seconds`, together; a
    call that would start after that raises `SchoolTimeout` at once."""
    ends = time.monotonic() + seconds
    outer = _BUDGET_ENDS.get()
    token = _BUDGET_ENDS.set(ends if outer is None else min(outer, ends))
    try:
        yield
    finally:
        _BUDGET_ENDS.reset(token)


def is_acceptable_url(url: str) -> bool:
    """The endpoint rule of security.md, and no credentials in the URL (they would be sent)."""
    parts = urlsplit(url)
    return not parts.username and not parts.password and is_acceptable_endpoint(url)


class SchoolSession(OAuth2Session):  # type: ignore[misc]  # authlib ships no type hints
    """authlib's OAuth 2 client session with the broker's fetch rules on every request."""

    def __init__(self, timeout: float, *, allow_loopback: bool = False, **client: Any) -> None:
        super().__init__(default_timeout=timeout, **client)
        self.timeout = timeout
        self.allow_loopback = allow_loopback
        self.trust_env = False  # no proxies or netrc credentials from the environment
        # Connections go to the addresses the destination check approved (pinned_http.py).
        self.mount("https://", PinnedAdapter())
        self.mount("http://", PinnedAdapter())

    def request(
        self, method: str, url: str, withhold_token: bool = False, auth: Any = None, **kwargs: Any
    ) -> requests.Response:
        if not is_acceptable_url(url):
            raise UpstreamFailure(
                "provider endpoint is not https (or loopback http)", code="endpoint_refused"
            )
        # The timeout bounds each step (the name lookup, each socket read); the deadline bounds
        # the whole call, so a provider that sends a byte a second, or a resolver that hangs,
        # cannot hold a worker for hours.
        deadline = time.monotonic() + 2 * self.timeout
        budget_ends = _BUDGET_ENDS.get()
        if budget_ends is not None:
            if budget_ends <= time.monotonic():
                raise SchoolTimeout("the time for this login's calls to the provider is spent")
            deadline = min(deadline, budget_ends)
        # The host as requests will connect to it (an international name in its ASCII form):
        # the name looked up, checked and pinned must be that very name.
        connected = _as_requests_sends(url)
        addresses = _checked_addresses(
            connected, self.allow_loopback, _left(self.timeout, deadline)
        )
        kwargs["allow_redirects"] = False
        kwargs["stream"] = True
        kwargs["timeout"] = _left(self.timeout, deadline)
        try:
            with pinned_to(urlsplit(connected).hostname or "", addresses, deadline):
                response: requests.Response = super().request(
                    method, url, withhold_token=withhold_token, auth=auth, **kwargs
                )
                body = _read_capped(response, deadline)
        except requests.Timeout as err:
            # Connect or read timeout: a provider that hangs ends this login, not the worker.
            raise SchoolTimeout(f"provider did not answer in time: {type(err).__name__}") from None
        except requests.RequestException as err:
            raise UpstreamFailure(
                f"provider unreachable: {type(err).__name__}", code="school_unreachable"
            ) from None
        # The body is read (and capped) now; later readers (authlib's token parsing) see it.
        response._content = body
        response._content_consumed = True  # type: ignore[attr-defined]
        if 300 <= response.status_code < 400:
            raise UpstreamFailure("provider answered with a redirect", code="school_unreachable")
        return response


def _left(step: float, deadline: float) -> float:
    """What one step may take: its own timeout, or less when the call's deadline is nearer."""
    left = min(step, deadline - time.monotonic())
    if left <= 0:
        raise SchoolTimeout("the time for this call to the provider is spent")
    return left


def _as_requests_sends(url: str) -> str:
    """`url` as requests prepares it: an international host name becomes its IDNA form."""
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except requests.RequestException:
        raise UpstreamFailure(
            "provider endpoint is not a valid URL", code="endpoint_refused"
        ) from None
    return str(prepared.url)


def _checked_addresses(url: str, allow_loopback: bool, seconds: float) -> list[str]:
    """The host's addresses, looked up within `seconds`, all public (or the loopback host).
    The connection then goes to these and is never looked up again (pinned_http.py), so an
    answer that changes between check and connection (DNS rebinding) cannot redirect it."""
    parts = urlsplit(url)
    try:
        found = checked_destinations(
            parts.hostname or "", parts.port or 443, allow_loopback=allow_loopback, seconds=seconds
        )
    except LookupTimedOut as err:
        if err.busy:
            raise SchoolTimeout("too many lookups of providers' names are hanging") from None
        raise SchoolTimeout("the provider's name did not resolve in time") from None
    except DestinationRefused:
        raise UpstreamFailure(
            "provider endpoint is not a public address", code="endpoint_refused"
        ) from None
    except (OSError, UnicodeError) as err:
        raise UpstreamFailure(
            f"provider unreachable: {type(err).__name__}", code="school_unreachable"
        ) from None
    return [str(sockaddr[0]) for _, sockaddr in found]


def _read_capped(response: requests.Response, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        response.close()
        raise UpstreamFailure("provider response too large", code="response_too_large")
    collected = bytearray()
    while True:
        if time.monotonic() > deadline:
            response.close()
            raise SchoolTimeout("provider answered too slowly")
        # read1: what one socket read brings, so the deadline is checked between trickles (and
        # each read waits at most until the deadline, pinned_http.py).
        try:
            chunk = response.raw.read1(_CHUNK, decode_content=True)
        except ReadTimeoutError:
            response.close()
            raise SchoolTimeout("provider answered too slowly") from None
        except HTTPError as err:
            # The connection broke, or the body does not decode: urllib3's errors, which
            # requests only translates for the reads it makes itself.
            response.close()
            raise UpstreamFailure(
                f"provider unreachable: {type(err).__name__}", code="school_unreachable"
            ) from None
        if not chunk:
            break
        collected.extend(chunk)
        if len(collected) > MAX_RESPONSE_BYTES:
            response.close()
            raise UpstreamFailure("provider response too large", code="response_too_large")
    return bytes(collected)


def get_json(session: SchoolSession, url: str, what: str) -> dict[str, Any]:
    """GET a JSON object (discovery document, key set); anything else is the provider's fault."""
    response = session.request("GET", url, withhold_token=True)
    if response.status_code != 200:
        raise UpstreamFailure(
            f"{what} answered HTTP {response.status_code}", code="school_unreachable"
        )
    return json_object(response.content, what)


def json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UpstreamFailure(f"{what} is not JSON", code="provider_invalid") from None
    if not isinstance(value, dict):
        raise UpstreamFailure(f"{what} is not a JSON object", code="provider_invalid")
    return value
