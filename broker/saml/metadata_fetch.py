"""Fetching SAML metadata from a URL an administrator typed: https (plain http only on loopback),
no redirects, a timeout and a size cap. The caller checks the XML with `metadata_check`.

The host name is looked up once, within the timeout (`broker/name_lookup.py`), every address it
resolves to must pass the destination check, and the connection goes to those addresses
(`pinned_connection.py`): never to a second answer of the resolver, so a name that is public for
the check and points into the broker's own network for the connection (DNS rebinding) cannot
turn an administrator's URL into a request inside that network.

http.client is used directly, not urllib: it follows no redirects and reads no proxy settings
from the environment (a proxy would resolve the name itself).
"""

from __future__ import annotations

import http.client
import ssl
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from broker.core.endpoints import host_refusal, is_acceptable_endpoint
from broker.core.errors import N_
from broker.core.whole_numbers import CONTENT_LENGTH_DIGITS, whole_number
from broker.deadline_socket import Limits
from broker.name_lookup import (
    Destination,
    DestinationRefused,
    LookupTimedOut,
    checked_destinations,
)
from broker.saml.metadata_check import MAX_METADATA_BYTES, MetadataInvalid, too_large
from broker.saml.pinned_connection import PinnedConnection, PinnedTLSConnection

FETCH_TIMEOUT_SECONDS = 10
# What a request line may carry as is: printable ASCII (escapes already in the URL stay as they
# are). Anything else (a space, an accented letter) is percent-encoded, as a browser sends it.
_REQUEST_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))


@dataclass(frozen=True)
class _Target:
    tls: bool
    host: str  # ASCII: the name looked up, verified in the certificate and sent as Host
    port: int
    path: str  # the request target: path and query


def fetch_metadata(url: str, *, allow_loopback: bool) -> str:
    body = fetch_bytes(url, allow_loopback=allow_loopback, max_bytes=MAX_METADATA_BYTES)
    return body.decode("utf-8", errors="replace")


def fetch_bytes(
    url: str,
    *,
    allow_loopback: bool,
    max_bytes: int,
    timeout: float | None = None,
    total_seconds: float | None = None,
) -> bytes:
    """The body at `url`, refused (MetadataInvalid) when larger than `max_bytes`, slower than
    `total_seconds` (name lookup and connection included), cut short, redirected or not a 200.
    Defaults: FETCH_TIMEOUT_SECONDS per step (lookup, connection, each read), twice that in all
    (read at call time)."""
    timeout = FETCH_TIMEOUT_SECONDS if timeout is None else timeout
    total_seconds = 2 * timeout if total_seconds is None else total_seconds
    limits = Limits(step=timeout, deadline=time.monotonic() + total_seconds)
    target = _target(url)
    connection: PinnedConnection | None = None
    response: http.client.HTTPResponse | None = None
    try:
        destinations = _destinations(target, allow_loopback, limits.left())
        connection = _connection(target, destinations, limits)
        connection.request(
            "GET",
            target.path,
            headers={"Accept": "application/samlmetadata+xml, application/xml, */*"},
        )
        response = connection.getresponse()
        if response.status != 200:
            # A 3xx too: the URL checked must be the URL fetched (metadata carries the keys the
            # broker will trust), so a redirect is refused, never followed.
            message = N_("cannot fetch the metadata: HTTP %(status)s")
            if 300 <= response.status < 400:
                message = N_(
                    "cannot fetch the metadata: HTTP %(status)s, a redirect, which the broker "
                    "does not follow (give the address it points to)"
                )
            raise MetadataInvalid(message, status=response.status)
        body = _read_capped(response, max_bytes)
        promised = whole_number(response.headers.get("Content-Length", ""), CONTENT_LENGTH_DIGITS)
        if promised is not None and promised > len(body) and len(body) <= max_bytes:
            # The connection closed early: a truncated file must never pass as complete.
            raise MetadataInvalid(N_("cannot fetch the metadata: the download was cut short"))
    except TimeoutError:
        # A step's own timeout, or the deadline (each read waits at most until then, so a
        # server sending a byte every few seconds cannot hold a worker for hours).
        raise MetadataInvalid(
            N_("cannot fetch the metadata: the server answered too slowly")
        ) from None
    except (OSError, http.client.HTTPException) as err:
        # IncompleteRead (a chunked body cut short) is an HTTPException; a certificate that
        # does not match the host name an ssl.SSLCertVerificationError (an OSError).
        raise MetadataInvalid(_failure(err), reason=type(err).__name__) from None
    finally:
        # A response that reads until the server closes holds the socket, not the connection.
        if response is not None:
            response.close()
        if connection is not None:
            connection.close()
    if len(body) > max_bytes:
        raise too_large(max_bytes)
    return body


def metadata_url_problem(url: str) -> str | None:
    """What is wrong with `url` as a metadata address before anything is fetched (the rule
    `fetch_bytes` applies first), in English; None when nothing is."""
    try:
        _target(url)
    except MetadataInvalid as invalid:
        return invalid.detail
    return None


def _target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, an unclosed [IPv6] bracket
        raise MetadataInvalid(N_("the metadata URL is not a valid URL")) from None
    # Credentials first: the endpoint rule refuses them too, with the https message.
    if parts.username is not None or parts.password is not None:
        raise MetadataInvalid(N_("metadata URLs must not carry a user name or password"))
    if (refused := host_refusal(url)) is not None:  # why: core/endpoints.py
        if refused.ascii_form is None:  # not a domain name
            raise MetadataInvalid(N_("the metadata URL's host name is not valid"))
        raise MetadataInvalid(
            N_("metadata URLs must write their host in ASCII (its xn-- form): use %(url)s"),
            url=refused.ascii_form,
        )
    if not is_acceptable_endpoint(url):
        raise MetadataInvalid(N_("metadata URLs must be https (plain http only on loopback)"))
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    path = quote(parts.path or "/", safe=_REQUEST_TARGET_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_REQUEST_TARGET_SAFE)
    if port is None:
        port = 443 if tls else 80
    return _Target(tls, host, port, path)


def _destinations(target: _Target, allow_loopback: bool, seconds: float) -> list[Destination]:
    try:
        return checked_destinations(
            target.host, target.port, allow_loopback=allow_loopback, seconds=seconds
        )
    except LookupTimedOut:
        raise MetadataInvalid(
            N_("cannot fetch the metadata: the host name did not resolve in time")
        ) from None
    except DestinationRefused:
        # An administrator's URL must not reach the broker's own network.
        raise MetadataInvalid(N_("metadata URLs must point to a public address")) from None
    except (OSError, UnicodeError):
        raise MetadataInvalid(N_("cannot fetch the metadata: host not found")) from None


def _failure(err: OSError | http.client.HTTPException) -> str:
    """What a failed connection or download says, the exception's name kept (the log and the
    school's supplier know it): a certificate and a refused connection in words first, as an
    ICT officer needs them to know whom to ask."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return N_("cannot fetch the metadata: the server's certificate is not valid (%(reason)s)")
    if isinstance(err, ssl.SSLError):
        return N_("cannot fetch the metadata: no secure connection (%(reason)s)")
    if isinstance(err, ConnectionRefusedError):
        return N_("cannot fetch the metadata: the server refused the connection (%(reason)s)")
    return N_("cannot fetch the metadata: %(reason)s")


def _read_capped(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    """The body, at most one byte over the cap (what one socket read brings at a time)."""
    collected = bytearray()
    while len(collected) <= max_bytes:
        chunk = response.read1(64 * 1024)
        if not chunk:
            break
        collected.extend(chunk)
    return bytes(collected)


def _connection(
    target: _Target, destinations: list[Destination], limits: Limits
) -> PinnedConnection:
    if target.tls:
        return PinnedTLSConnection(target.host, target.port, destinations, limits)
    return PinnedConnection(target.host, target.port, destinations, limits)
