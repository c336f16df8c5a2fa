"""Connections that go to the addresses the destination check approved, and nowhere else.

`rp_http` resolves a provider's host name (bounded in time, in a thread of its own) and checks
that every address is public before it calls. Left to itself, urllib3 would then resolve the
name a second time to connect: unbounded in time (getaddrinfo has no timeout), and free to get a
different answer than the one checked (DNS rebinding: a name that is public for the check and
points into the broker's own network for the connection). Here the connection takes the checked
addresses instead: no second lookup, no second answer.

TLS is unchanged: the certificate is verified against the host name in the URL (SNI too), since
urllib3 wraps the socket with the connection's `host`, which stays the name. A kept-alive
connection in the pool was made to a checked address of that name when it was opened, and
every call checks the name's addresses again before it is sent (rp_http.py).

The approved addresses travel in a context variable set around one call (`pinned_to`); a
connection opened outside such a call, or for another host, is refused rather than resolved.

The same variable carries the call's deadline, and every read of the call keeps it: the status
line and headers (read by http.client, where urllib3 only sets a timeout per read) as much as
the body. The sockets are of this module's classes (the plain one made here, the TLS one by a
shared context whose `sslsocket_class` it is, provider_tls.py); before each read, and before
the TLS handshake, a socket lowers its timeout to the time left and, past the deadline, raises
TimeoutError, which urllib3 reports as a read timeout. A provider that trickles its headers a
byte at a time is cut off when the call's deadline comes, as when it trickles its body. A read
outside a pinned call (or in one without a deadline) waits as urllib3 set it.
"""

from __future__ import annotations

import socket
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.timeout import Timeout

from broker.oidc.provider_tls import provider_context

# (host name as the connection names it: ASCII, lower case; the addresses approved for it, in
# the resolver's order; when the call must have ended, its connection and every read, monotonic,
# or None)
_PINNED: ContextVar[tuple[str, tuple[str, ...], float | None] | None] = ContextVar(
    "pinned_destination", default=None
)


@contextmanager
def pinned_to(host: str, addresses: list[str], ends: float | None = None) -> Iterator[None]:
    """Connections to `host` opened inside the block go to `addresses`, tried in order until
    `ends` (an address that times out leaves the rest of the time to the next one)."""
    token = _PINNED.set((_normal(host), tuple(addresses), ends))
    try:
        yield
    finally:
        _PINNED.reset(token)


def _normal(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


def _keep_deadline(sock: socket.socket) -> None:
    """Before a wait on `sock`: lower its timeout to the time left to the pinned call, or raise
    TimeoutError when none is left. The timeout only ever goes down within a call (urllib3 sets
    it again for the next request on a kept-alive connection, which then has its own deadline);
    it is not touched while the deadline is further off than the timeout (no system call)."""
    pinned = _PINNED.get()
    if pinned is None or pinned[2] is None:
        return
    left = pinned[2] - time.monotonic()
    if left <= 0:
        raise TimeoutError("the call's deadline has passed")
    step = sock.gettimeout()
    if step is None or left < step:
        sock.settimeout(left)


class _DeadlineSocket(socket.socket):
    """A plain connection's socket. http.client reads through `makefile`, that is `recv_into`."""

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        _keep_deadline(self)
        return super().recv_into(*args, **kwargs)

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        _keep_deadline(self)
        return super().recv(*args, **kwargs)


class _DeadlineTLSSocket(ssl.SSLSocket):
    """A TLS connection's socket (the shared context's `sslsocket_class`). Every read of the
    socket (`recv_into`, `recv`) is a `read` of the TLS layer; the handshake, which CPython
    bounds as a whole by the socket's timeout, ends by the deadline too."""

    def read(self, *args: Any, **kwargs: Any) -> Any:
        _keep_deadline(self)
        return super().read(*args, **kwargs)

    def do_handshake(self, *args: Any, **kwargs: Any) -> None:
        _keep_deadline(self)
        super().do_handshake(*args, **kwargs)


def _connect(
    address: str, port: int, timeout: float | None, source_address: Any, socket_options: Any
) -> socket.socket:
    """What urllib3's `create_connection` does for one address literal (socket options, source
    address, timeout), with no lookup and a socket of the class that keeps the deadline."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = _DeadlineSocket(family, socket.SOCK_STREAM)
    try:
        for option in socket_options or ():
            sock.setsockopt(*option)
        sock.settimeout(timeout)
        if source_address:
            sock.bind(source_address)
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedConnect:
    """Mixed into urllib3's connection classes: `_new_conn` without a name lookup."""

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        connection = cast(HTTPConnection, self)  # what urllib3's errors name
        pinned = _PINNED.get()
        if pinned is None or pinned[0] != _normal(self.host) or not pinned[1]:
            # Never fall back to resolving the name: that is the lookup this module removes.
            raise NewConnectionError(connection, "no checked address for this host")
        _, addresses, ends = pinned
        failure: OSError | None = None
        for address in addresses:
            timeout = Timeout.resolve_default_timeout(self.timeout)
            if ends is not None:
                left = ends - time.monotonic()
                if left <= 0:
                    break
                timeout = left if timeout is None else min(timeout, left)
            try:
                sock = _connect(
                    address, self.port, timeout, self.source_address, self.socket_options
                )
            except OSError as err:
                # Refused, unreachable or silent (a black-holed IPv6 route): the next address
                # may answer, as urllib3's own connect would try it.
                failure = err
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if failure is None or isinstance(failure, TimeoutError):
            message = f"connection to {self.host} timed out"
            raise ConnectTimeoutError(connection, message) from failure
        raise NewConnectionError(
            connection, f"failed to establish a new connection: {type(failure).__name__}"
        ) from failure


class _PinnedHTTPConnection(_PinnedConnect, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnect, HTTPSConnection):
    """TLS through the process's shared context (provider_tls.py): chain and host name verified
    against requests' default CA bundle, loaded once, and sockets whose reads keep the call's
    deadline. The context is taken when the connection is made, not when the pools are."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("ssl_context") is None:
            kwargs["ssl_context"] = provider_context(_DeadlineTLSSocket)
        super().__init__(*args, **kwargs)


class _PinnedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class PinnedPoolManager(PoolManager):
    """urllib3's pool manager whose pools open only pinned connections. No proxies: a proxy
    would resolve the name itself (a plain PoolManager never reads proxy settings from the
    environment)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool_classes_by_scheme = {
            "http": _PinnedHTTPPool,
            "https": _PinnedHTTPSPool,
        }
