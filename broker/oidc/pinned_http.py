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
The same variable carries the call's deadline, which the connection and every wait keep by the
rule of `broker/deadline_socket.py`; the sockets ask it at each wait, as a pooled connection
outlives its call (the TLS one is the shared context's `sslsocket_class`, provider_tls.py).
urllib3 reports the TimeoutError of a wait past the deadline as a read timeout.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.timeout import Timeout

from broker.deadline_socket import DeadlineTLSSocket, connect
from broker.name_lookup import Destination
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


class _CallDeadline:
    """The deadline of the pinned call in progress (None outside one: as urllib3 set it)."""

    def ends(self) -> float | None:
        pinned = _PINNED.get()
        return None if pinned is None else pinned[2]


_CALL_DEADLINE = _CallDeadline()


class _CallTLSSocket(DeadlineTLSSocket):
    deadline = _CALL_DEADLINE


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
        destinations: list[Destination] = [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, (address, self.port))
            for address in pinned[1]
        ]
        step = Timeout.resolve_default_timeout(self.timeout)
        try:  # with urllib3's socket options and source address, as its own connect
            sock = connect(
                destinations, step, _CALL_DEADLINE, self.socket_options or (), self.source_address
            )
        except TimeoutError as err:
            message = f"connection to {self.host} timed out"
            raise ConnectTimeoutError(connection, message) from err
        except OSError as err:
            message = f"failed to establish a new connection: {type(err).__name__}"
            raise NewConnectionError(connection, message) from err
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class _PinnedHTTPConnection(_PinnedConnect, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnect, HTTPSConnection):
    """TLS through the process's shared context (provider_tls.py): chain and host name verified
    against requests' default CA bundle, loaded once, and sockets whose reads keep the call's
    deadline. The context is taken when the connection is made, not when the pools are."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("ssl_context") is None:
            kwargs["ssl_context"] = provider_context(_CallTLSSocket)
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
