"""Fetching SAML metadata from a URL an administrator typed: https (plain http only on loopback),
no redirects, a timeout and a size cap. The caller checks the XML with `metadata_check`.

The host name is looked up once, within the timeout (`broker/name_lookup.py`), every address it
resolves to must pass the destination check, and the connection goes to those addresses, the
next one tried when one fails: never to a second answer of the resolver, so a name that is
public for the check and points into the broker's own network for the connection (DNS
rebinding) cannot turn an administrator's URL into a request inside that network. TLS is still
verified against the host name in the URL (and sends it as SNI), not against the address.

http.client is used directly, not urllib: it follows no redirects and reads no proxy settings
from the environment (a proxy would resolve the name itself).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from broker.core.endpoints import is_acceptable_endpoint
from broker.name_lookup import (
    Destination,
    DestinationRefused,
    LookupTimedOut,
    checked_destinations,
)
from broker.saml.metadata_check import MAX_METADATA_BYTES, MetadataInvalid

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
    deadline = time.monotonic() + total_seconds
    target = _target(url)
    destinations = _destinations(target, allow_loopback, _left(timeout, deadline))
    connection = _connection(target, destinations, deadline, timeout)
    response: http.client.HTTPResponse | None = None
    try:
        connection.request(
            "GET",
            target.path,
            headers={"Accept": "application/samlmetadata+xml, application/xml, */*"},
        )
        _bound(connection, timeout, deadline)
        response = connection.getresponse()
        if response.status != 200:
            # A 3xx too: the URL checked must be the URL fetched (metadata carries the keys the
            # broker will trust), so a redirect is refused, never followed.
            raise MetadataInvalid(f"cannot fetch the metadata: HTTP {response.status}")
        body = _read_until(response, connection, timeout, deadline, max_bytes)
        promised = response.headers.get("Content-Length", "")
        if promised.isdigit() and int(promised) > len(body) and len(body) <= max_bytes:
            # The connection closed early: a truncated file must never pass as complete.
            raise MetadataInvalid("cannot fetch the metadata: the download was cut short")
    except TimeoutError:
        raise MetadataInvalid("cannot fetch the metadata: the server answered too slowly") from None
    except (OSError, http.client.HTTPException) as err:
        # IncompleteRead (a chunked body cut short) is an HTTPException; a certificate that
        # does not match the host name an ssl.SSLCertVerificationError (an OSError).
        raise MetadataInvalid(f"cannot fetch the metadata: {type(err).__name__}") from None
    finally:
        # A response that reads until the server closes holds the socket, not the connection.
        if response is not None:
            response.close()
        connection.close()
    if len(body) > max_bytes:
        raise MetadataInvalid(f"metadata is larger than {max_bytes / 2**20:g} MiB")
    return body


def _target(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, an unclosed [IPv6] bracket
        raise MetadataInvalid("the metadata URL is not a valid URL") from None
    if not is_acceptable_endpoint(url):
        raise MetadataInvalid("metadata URLs must be https (plain http only on loopback)")
    if parts.username is not None or parts.password is not None:
        raise MetadataInvalid("metadata URLs must not carry a user name or password")
    host = parts.hostname or ""
    if not host.isascii():
        try:
            # The stdlib's IDNA, as socket and ssl would apply it to the name on their own:
            # the name looked up, checked and verified in the certificate is this one.
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise MetadataInvalid("the metadata URL's host name is not valid") from None
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
            "cannot fetch the metadata: the host name did not resolve in time"
        ) from None
    except DestinationRefused:
        # An administrator's URL must not reach the broker's own network.
        raise MetadataInvalid("metadata URLs must point to a public address") from None
    except (OSError, UnicodeError):
        raise MetadataInvalid("cannot fetch the metadata: host not found") from None


def _left(step: float, deadline: float) -> float:
    """What one step may take: its own timeout, or less when the deadline is nearer."""
    left = min(step, deadline - time.monotonic())
    if left <= 0:
        raise MetadataInvalid("cannot fetch the metadata: the server answered too slowly")
    return left


def _bound(connection: _PinnedConnection, timeout: float, deadline: float) -> None:
    """The next socket read waits its timeout, or until the deadline when that is nearer (the
    deadline passed: MetadataInvalid)."""
    left = _left(timeout, deadline)
    # The socket connect() opened: http.client lets go of `connection.sock` once a response
    # that reads until the server closes has it.
    if connection.opened is not None:
        connection.opened.settimeout(left)


def _read_until(
    response: http.client.HTTPResponse,
    connection: _PinnedConnection,
    timeout: float,
    deadline: float,
    max_bytes: int,
) -> bytes:
    """The body, at most one byte over the cap, within the deadline: the timeout bounds each
    read, so a server sending a byte every few seconds would otherwise hold a worker for hours."""
    collected = bytearray()
    while len(collected) <= max_bytes:
        _bound(connection, timeout, deadline)
        chunk = response.read1(64 * 1024)
        if not chunk:
            break
        collected.extend(chunk)
    return bytes(collected)


def _connection(
    target: _Target, destinations: list[Destination], deadline: float, timeout: float
) -> _PinnedConnection:
    if target.tls:
        return _PinnedTLSConnection(target.host, target.port, destinations, deadline, timeout)
    return _PinnedConnection(target.host, target.port, destinations, deadline, timeout)


class _PinnedConnection(http.client.HTTPConnection):
    """http.client's connection, opened to the checked addresses instead of the name."""

    def __init__(
        self,
        host: str,
        port: int,
        destinations: list[Destination],
        deadline: float,
        timeout: float,
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._destinations = destinations
        self._deadline = deadline
        self._step = timeout  # http.client's own `timeout` may be None; this one never is
        self.opened: socket.socket | None = None

    def connect(self) -> None:
        # The event http.client's own connect raises, for audit hooks that watch connections.
        sys.audit("http.client.connect", self, self.host, self.port)
        sock = _open(self._destinations, self._step, self._deadline)
        try:
            self.sock = self.opened = self._secured(sock)
        except BaseException:
            sock.close()
            raise

    def _secured(self, sock: socket.socket) -> socket.socket:
        return sock


class _PinnedTLSConnection(_PinnedConnection):
    default_port = http.client.HTTPS_PORT

    def _secured(self, sock: socket.socket) -> socket.socket:
        # Made per fetch, so the system's trust store (SSL_CERT_FILE included) is read as it is
        # now; verification of the chain and of the host name is on by default.
        context = ssl.create_default_context()
        context.set_alpn_protocols(["http/1.1"])
        sock.settimeout(_left(self._step, self._deadline))
        return context.wrap_socket(sock, server_hostname=self.host)


def _open(destinations: list[Destination], timeout: float, deadline: float) -> socket.socket:
    """A socket connected to the first checked address that answers before the deadline."""
    failure: OSError | None = None
    for family, address in destinations:
        left = min(timeout, deadline - time.monotonic())
        if left <= 0:
            break
        try:
            return _connect(family, address, left)
        except OSError as err:
            # Refused, unreachable or silent (a black-holed IPv6 route): the next address may
            # answer.
            failure = err
    if failure is None or isinstance(failure, TimeoutError):
        raise TimeoutError("no address of the host answered in time")
    raise failure


def _connect(
    family: socket.AddressFamily, address: tuple[object, ...], seconds: float
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(seconds)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock
