"""Outbound HTTP to schools' OpenID providers, under the fetch rules of security.md.

Every call (discovery, JWKS, token, userinfo; publishers' JWKS and back-channel logout too)
goes through `SchoolSession.request`: only https, or plain http to a loopback address; a
timeout; no redirects (a 3xx would let a provider's answer come from a URL nobody configured);
and a size cap, enforced while streaming so a provider cannot make a worker buffer a gigabyte
(nor inflate one: a gzip body is decoded within the cap, content_coding.py).
Failures of the network become the called peer's own errors (`Peer`): a school's provider
`SchoolUnreachable` (`school_unreachable`), or `SchoolTimeout` when it does not answer in time; a
publisher's platform (its JWKS, its logout endpoints) `PlatformUnreachable` and `PlatformTimeout`
(`platform_unreachable`, `platform_timeout`), so a log line or metric names the party to check.

Each call is bounded by the timeout (its name lookup included, which runs in a thread of its
own, since getaddrinfo has no timeout, and is the only lookup: broker/name_lookup.py; the
connection goes to the addresses that were checked, pinned_http.py), but a login's callback
makes several calls (token, keys, userinfo): `call_budget` bounds them together, so a provider
that answers each one just before its timeout cannot hold a worker past gunicorn's own timeout
(operations.md, failure behaviour).

The calls go straight to urllib3, over one pool manager per process: `requests` and authlib's
client session cost about 0.7 ms of CPU per call (a session and its adapters built per call,
requests' preparation of every request and response), more than the call's own HTTP work, on
the way of every OIDC login (docs/performance.md, "OpenID Connect logins"). The pools keep
connections to providers alive between logins, so a token call usually needs no new TCP
connection nor TLS handshake. The trust store is requests' (certifi's), as before.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import urllib3

from broker.core.endpoints import is_acceptable_endpoint
from broker.core.errors import (
    N_,
    Phrase,
    PlatformTimeout,
    PlatformUnreachable,
    SchoolTimeout,
    SchoolUnreachable,
    UpstreamFailure,
)
from broker.core.whole_numbers import CONTENT_LENGTH_DIGITS, whole_number
from broker.deadline_socket import wait_for
from broker.name_lookup import DestinationRefused, LookupTimedOut, checked_destinations
from broker.oidc.content_coding import ContentDecoder
from broker.oidc.pinned_http import PinnedPoolManager, pinned_to

# Discovery documents, key sets and token responses are a few KiB; 256 KiB leaves room for big
# key sets and long group lists while keeping a hostile provider from filling memory.
MAX_RESPONSE_BYTES = 256 * 1024
_CHUNK = 16 * 1024
# When the calls of the current request to schools' providers must have ended (monotonic).
_BUDGET_ENDS: ContextVar[float | None] = ContextVar("school_call_budget_ends", default=None)


@contextmanager
def call_budget(seconds: float) -> Iterator[None]:
    """Every call to a school's provider inside the block ends within `seconds`, together; a
    call that would start after that raises its peer's timeout (`SchoolTimeout` for a school's
    provider) at once."""
    ends = time.monotonic() + seconds
    outer = _BUDGET_ENDS.get()
    token = _BUDGET_ENDS.set(ends if outer is None else min(outer, ends))
    try:
        yield
    finally:
        _BUDGET_ENDS.reset(token)


FORM = "application/x-www-form-urlencoded"
UNREACHABLE = N_("provider unreachable: %(reason)s")
TOO_LARGE = N_("provider response too large")
# The documents `get_json` and `json_object` read, as their errors name them.
DISCOVERY_DOCUMENT = Phrase(N_("discovery document"))
PROVIDER_KEY_SET = Phrase(N_("provider key set"))
CLIENT_JWKS = Phrase(N_("client JWKS"))
TOKEN_RESPONSE = Phrase(N_("token response"))
USERINFO = Phrase(N_("userinfo"))


def _new_pools() -> PinnedPoolManager:
    # requests' defaults: 10 hosts, 10 connections each, certificates verified against certifi.
    # The CA bundle is in the shared TLS context (provider_tls.py, loaded once per process);
    # named here as well, urllib3 would load it into that context again for every connection.
    return PinnedPoolManager(num_pools=10, maxsize=10, cert_reqs="CERT_REQUIRED")


class _ProcessPools:
    """One pool manager per process, shared by every call: urllib3's pools are safe to share
    between threads. A kept-alive connection keeps every check: each call still looks the name
    up and checks the addresses before it sends anything, the connection was opened to a
    checked address of that very name (pinned_http.py), and TLS was verified for the name when
    it was made."""

    def __init__(self) -> None:
        self.manager = _new_pools()
        # A forked child must not share sockets with its parent (gunicorn does not preload the
        # app, but nothing here should depend on that). A new manager, not a clear() of the
        # old one, whose lock another thread of the parent may have held at the fork.
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self.manager = _new_pools()


_POOLS = _ProcessPools()


@dataclass(frozen=True)
class SchoolResponse:
    """A provider's answer, read whole (within the cap) before anyone looks at it."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    content: bytes


@dataclass(frozen=True)
class Peer:
    """The role of the party a session calls, as its failures name it."""

    unreachable: type[UpstreamFailure]
    timeout: type[UpstreamFailure]


SCHOOL = Peer(SchoolUnreachable, SchoolTimeout)
PLATFORM = Peer(PlatformUnreachable, PlatformTimeout)


class PeerSession:
    """Calls to one party, each under the broker's fetch rules; `timeout` bounds each step of a
    call; `peer`: whose failures they are (a school's provider or a publisher's platform)."""

    def __init__(self, timeout: float, peer: Peer, *, allow_loopback: bool = False) -> None:
        self.timeout = timeout
        self.peer = peer
        self.allow_loopback = allow_loopback

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | str | None = None,
    ) -> SchoolResponse:
        """`form`: sent as the body, application/x-www-form-urlencoded (a string: encoded
        already, or another body, such as a SOAP envelope, under the Content-Type that
        `headers` give)."""
        if not is_acceptable_endpoint(url):
            raise UpstreamFailure(
                N_("provider endpoint is not https (or loopback http)"), code="endpoint_refused"
            )
        # The timeout bounds each step (the name lookup, each socket read); the deadline bounds
        # the whole call, so a provider that sends a byte a second, or a resolver that hangs,
        # cannot hold a worker for hours.
        deadline = time.monotonic() + 2 * self.timeout
        budget_ends = _BUDGET_ENDS.get()
        if budget_ends is not None:
            if budget_ends <= time.monotonic():
                spent = N_("the time for this login's calls to the provider has run out")
                raise self.peer.timeout(spent)
            deadline = min(deadline, budget_ends)
        # The host as it is sent (an international name in its ASCII form): the name looked
        # up, checked and pinned must be that very name.
        sent = _as_sent(url)
        peer = self.peer
        addresses = _checked_addresses(
            sent, self.allow_loopback, _left(self.timeout, deadline, peer), peer
        )
        all_headers = dict(headers or {})
        body = None
        if form is not None:
            body = form if isinstance(form, str) else urlencode(form)
            all_headers.setdefault("Content-Type", FORM)
        step = _left(self.timeout, deadline, peer)
        try:
            with pinned_to(urlsplit(sent).hostname or "", addresses, deadline):
                response = _POOLS.manager.urlopen(
                    method,
                    sent,
                    body=body,
                    headers=all_headers,
                    redirect=False,
                    retries=False,
                    timeout=urllib3.Timeout(connect=step, read=step),
                    preload_content=False,
                )
                content = _read_capped(response, deadline, peer)
        except urllib3.exceptions.NewConnectionError as err:
            # Refused or unreachable (urllib3 files this under its timeouts, for history).
            raise peer.unreachable(UNREACHABLE, reason=type(err).__name__) from None
        except (urllib3.exceptions.TimeoutError, TimeoutError) as err:
            # Connect or read timeout: a provider that hangs ends this login, not the worker.
            raise peer.timeout(
                N_("provider did not answer in time: %(reason)s"), reason=type(err).__name__
            ) from None
        except urllib3.exceptions.SSLError as err:
            # Its certificate, mostly (expired, another name, an unknown issuer): said in words
            # for the school's administrator, the exception's name kept as with the others.
            raise peer.unreachable(
                N_("provider unreachable: its TLS certificate was not accepted (%(reason)s)"),
                reason=type(err).__name__,
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise peer.unreachable(UNREACHABLE, reason=type(err).__name__) from None
        if 300 <= response.status < 400:
            raise peer.unreachable(N_("provider answered with a redirect"))
        return SchoolResponse(response.status, response.headers, content)


class SchoolSession(PeerSession):
    """Calls to a school's OpenID provider."""

    def __init__(self, timeout: float, *, allow_loopback: bool = False) -> None:
        super().__init__(timeout, SCHOOL, allow_loopback=allow_loopback)


class PlatformSession(PeerSession):
    """Calls to a publisher's platform: its JWKS, its back-channel or SOAP logout endpoint."""

    def __init__(self, timeout: float, *, allow_loopback: bool = False) -> None:
        super().__init__(timeout, PLATFORM, allow_loopback=allow_loopback)


def _left(step: float, deadline: float, peer: Peer) -> float:
    """What one step may take: its own timeout, or less when the call's deadline is nearer."""
    try:
        return wait_for(step, deadline)
    except TimeoutError:
        raise peer.timeout(N_("the time for this call to the provider has run out")) from None


def _as_sent(url: str) -> str:
    """`url` as it goes on the wire: an international host name becomes its IDNA form (by
    requests' rules, which the broker has always used for that)."""
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except requests.RequestException:
        raise UpstreamFailure(
            N_("provider endpoint is not a valid URL"), code="endpoint_refused"
        ) from None
    return str(prepared.url)


def _checked_addresses(url: str, allow_loopback: bool, seconds: float, peer: Peer) -> list[str]:
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
            raise peer.timeout(N_("too many lookups of providers' names are hanging")) from None
        raise peer.timeout(N_("the provider's name did not resolve in time")) from None
    except DestinationRefused:
        raise UpstreamFailure(
            N_("provider endpoint is not a public address"), code="endpoint_refused"
        ) from None
    except socket.gaierror:
        # In words, as a metadata URL's failure says it: "gaierror" tells an operator who
        # mistyped the issuer, or whose resolver is down, nothing.
        raise peer.unreachable(N_("provider unreachable: its host name did not resolve")) from None
    except (OSError, UnicodeError) as err:
        raise peer.unreachable(UNREACHABLE, reason=type(err).__name__) from None
    return [str(sockaddr[0]) for _, sockaddr in found]


def _read_capped(response: urllib3.BaseHTTPResponse, deadline: float, peer: Peer) -> bytes:
    # Not ASCII digits ("²"), or longer than any cap: the cap below, checked as the body comes
    # in, decides.
    declared = whole_number(response.headers.get("Content-Length", ""), CONTENT_LENGTH_DIGITS)
    if declared is not None and declared > MAX_RESPONSE_BYTES:
        response.close()
        raise UpstreamFailure(TOO_LARGE, code="response_too_large")
    collected = bytearray()
    try:
        # Decoded here, not by urllib3: within the cap, however far a gzip body would inflate.
        decoder = ContentDecoder(response.headers.get("Content-Encoding", ""))
        while True:
            if time.monotonic() > deadline:
                raise peer.timeout(N_("provider answered too slowly"))
            # read1: what one socket read brings, so the deadline is checked between trickles.
            chunk = response.read1(_CHUNK, decode_content=False)
            if not chunk:
                break
            # At most one byte over the room left: enough to know the cap is passed.
            collected += decoder.decode(chunk, MAX_RESPONSE_BYTES - len(collected) + 1)
            if len(collected) > MAX_RESPONSE_BYTES:
                raise UpstreamFailure(TOO_LARGE, code="response_too_large")
    except (UpstreamFailure, urllib3.exceptions.DecodeError):
        response.close()
        raise
    # Read to the end: the connection goes back to its pool for the next call.
    response.release_conn()
    return bytes(collected)


def get_json(session: PeerSession, url: str, what: Phrase) -> dict[str, Any]:
    """GET a JSON object (discovery document, key set); anything else is the provider's fault.
    `what` names the document in the errors (and is translated with them in the portals)."""
    response = session.request("GET", url, headers={"Accept": "application/json"})
    if response.status_code != 200:
        raise session.peer.unreachable(
            N_("%(what)s answered HTTP %(status)s"), what=what, status=response.status_code
        )
    return json_object(response.content, what)


def json_object(body: bytes, what: Phrase) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: arrays or objects nested deeper than the stack ("[" * 100000 fits in
        # the size cap); Python's parser raises it instead of ValueError.
        raise UpstreamFailure(
            N_("%(what)s is not JSON"), code="provider_invalid", what=what
        ) from None
    if not isinstance(value, dict):
        raise UpstreamFailure(
            N_("%(what)s is not a JSON object"), code="provider_invalid", what=what
        )
    return value
