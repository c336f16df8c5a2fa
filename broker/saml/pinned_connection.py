"""http.client connections that go to checked addresses only, and read within a deadline.

`metadata_fetch` looks a host name up once and checks every address (`broker/name_lookup.py`);
a connection made here goes to those addresses, the next one tried when one refuses or stays
silent, and never resolves the name again: an answer that changes between the check and the
connection (DNS rebinding) cannot send it elsewhere. For https the socket is wrapped with the
host name of the URL, so the certificate is verified against that name (and it is the SNI),
not against the address.

Every read of the socket, the status line and headers as much as the body, waits at most the
step's timeout and never past the deadline of the whole fetch: a server that trickles a byte at
a time is cut off (TimeoutError) when the deadline comes. http.client reads through the socket's
`makefile`, that is `recv_into`; the TLS handshake is bounded by the socket's timeout as a whole.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from typing import Any, cast

from broker.name_lookup import Destination


@dataclass(frozen=True)
class Limits:
    step: float  # what one wait (a connection attempt, a read) may take
    deadline: float  # when the whole fetch must have ended (monotonic)

    def left(self) -> float:
        """What the next wait may take: its step, or less when the deadline is nearer."""
        left = min(self.step, self.deadline - time.monotonic())
        if left <= 0:
            raise TimeoutError("the deadline has passed")
        return left


class _ReadsWithin:
    """Mixed into the connection's socket classes: each read waits at most `limits.left()`."""

    limits: Limits

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        wait = self.limits.left()
        self.settimeout(wait)  # type: ignore[attr-defined]  # the socket's own method
        return super().recv_into(*args, **kwargs)  # type: ignore[misc, no-any-return]


class _PlainSocket(_ReadsWithin, socket.socket):
    def __init__(self, family: socket.AddressFamily, limits: Limits) -> None:
        super().__init__(family, socket.SOCK_STREAM)
        self.limits = limits


class _TLSSocket(_ReadsWithin, ssl.SSLSocket):
    pass


class PinnedConnection(http.client.HTTPConnection):
    """http.client's connection, opened to the checked addresses instead of the name. No proxy
    settings are read (http.client reads none), so nothing resolves the name on its behalf."""

    def __init__(
        self, host: str, port: int, destinations: list[Destination], limits: Limits
    ) -> None:
        super().__init__(host, port, timeout=limits.step)
        self._destinations = destinations
        self._limits = limits

    def connect(self) -> None:
        # The event http.client's own connect raises, for audit hooks that watch connections.
        sys.audit("http.client.connect", self, self.host, self.port)
        sock = _open(self._destinations, self._limits)
        try:
            self.sock = self._secured(sock)
        except BaseException:
            sock.close()
            raise

    def _secured(self, sock: _PlainSocket) -> socket.socket:
        return sock


class PinnedTLSConnection(PinnedConnection):
    default_port = http.client.HTTPS_PORT

    def _secured(self, sock: _PlainSocket) -> socket.socket:
        # Made per connection, so the system's trust store (SSL_CERT_FILE included) is read as
        # it is now; the chain and the host name are verified by default.
        context = ssl.create_default_context()
        context.set_alpn_protocols(["http/1.1"])
        context.sslsocket_class = _TLSSocket
        sock.settimeout(self._limits.left())  # the whole handshake, not each of its reads
        secured = cast(_TLSSocket, context.wrap_socket(sock, server_hostname=self.host))
        secured.limits = self._limits
        return secured


def _open(destinations: list[Destination], limits: Limits) -> _PlainSocket:
    """A socket connected to the first checked address that answers before the deadline."""
    failure: OSError | None = None
    for family, address in destinations:
        try:
            return _connect(family, address, limits)
        except TimeoutError as err:
            failure = err
            if limits.deadline <= time.monotonic():
                break
        except OSError as err:
            # Refused or unreachable (an IPv6 address without a route): the next may answer.
            failure = err
    if failure is None:
        raise TimeoutError("the deadline has passed")
    raise failure


def _connect(
    family: socket.AddressFamily, address: tuple[Any, ...], limits: Limits
) -> _PlainSocket:
    sock = _PlainSocket(family, limits)
    try:
        sock.settimeout(limits.left())
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock
