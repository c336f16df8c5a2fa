"""The sockets of outbound calls: connected to checked addresses only, every wait within a deadline.

Metadata fetches (`broker/saml/pinned_connection.py`, http.client) and calls to schools' OpenID
providers (`broker/oidc/pinned_http.py`, urllib3) connect here to the addresses `name_lookup`
checked, in the resolver's order (the next when one refuses, is unreachable or stays silent,
while time is left), never by name: no second lookup, so no second answer (DNS rebinding). The
callers wrap these sockets in TLS with the URL's host name: the certificate is verified against
the name, which is also the SNI, never against the address.

Every wait (a connection attempt, the TLS handshake, each read: the status line and headers as
much as the body) takes at most its step and ends by the deadline, then TimeoutError: a server
that trickles a byte at a time is cut off. A read's step is the socket's timeout, lowered to
the time left. A socket asks its `deadline` at each wait: a metadata fetch's is fixed
(`Limits`), a provider call's is the call's in progress (urllib3's pools keep a connection past
the call that opened it).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from broker.name_lookup import Destination

_Step = TypeVar("_Step", bound=float | None)


class Deadline(Protocol):
    def ends(self) -> float | None:
        """When the wait about to start must have ended (monotonic); None: no deadline."""


def wait_for(step: _Step, ends: float | None) -> _Step | float:
    """What the next wait may take: `step` (None: unbounded), or less when `ends` is nearer.
    TimeoutError when the deadline has passed."""
    if ends is None:
        return step
    left = ends - time.monotonic()
    if left <= 0:
        raise TimeoutError("the deadline has passed")
    return left if step is None or left < step else step


@dataclass(frozen=True)
class Limits:
    step: float  # what one wait may take
    deadline: float  # when all must have ended (monotonic)

    def ends(self) -> float:
        return self.deadline

    def left(self) -> float:
        return wait_for(self.step, self.deadline)


def keep_deadline(sock: socket.socket, ends: float | None) -> None:
    """Before a wait on `sock`: its timeout lowered to the time left to `ends`. Not touched while
    the deadline is further off (no system call; urllib3 sets it again for a kept-alive
    connection's next request, which has its own deadline)."""
    step = sock.gettimeout()
    wait = wait_for(step, ends)
    if wait != step:
        sock.settimeout(wait)


class DeadlineSocket(socket.socket):
    """A plain socket: http.client reads through `makefile`, that is `recv_into`."""

    deadline: Deadline

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        keep_deadline(self, self.deadline.ends())
        return super().recv_into(*args, **kwargs)

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        keep_deadline(self, self.deadline.ends())
        return super().recv(*args, **kwargs)


class DeadlineTLSSocket(ssl.SSLSocket):
    """A TLS socket (a context's `sslsocket_class`): its reads are `read`s of the TLS layer; the
    handshake, which CPython bounds as a whole by the timeout, keeps the deadline too, so the
    `deadline` must be there before it (a class attribute, or `do_handshake_on_connect=False`)."""

    deadline: Deadline

    def read(self, *args: Any, **kwargs: Any) -> Any:
        keep_deadline(self, self.deadline.ends())
        return super().read(*args, **kwargs)

    def do_handshake(self, *args: Any, **kwargs: Any) -> None:
        keep_deadline(self, self.deadline.ends())
        super().do_handshake(*args, **kwargs)


def connect(
    destinations: Sequence[Destination],
    step: float | None,
    deadline: Deadline,
    options: Sequence[tuple[Any, ...]] = (),
    source_address: tuple[str, int] | None = None,
) -> DeadlineSocket:
    """A socket connected to the first of `destinations` that answers, each attempt within
    `step` and the deadline, with `options` set. Raises the last attempt's OSError, or
    TimeoutError when the deadline leaves no time for the next address."""
    failure: OSError | None = None
    for family, address in destinations:
        wait = wait_for(step, deadline.ends())
        sock = DeadlineSocket(family, socket.SOCK_STREAM)
        sock.deadline = deadline
        try:
            for option in options:
                sock.setsockopt(*option)
            sock.settimeout(wait)
            if source_address:
                sock.bind(source_address)
            sock.connect(address)
            return sock
        except OSError as err:  # refused, unreachable or silent: the next may answer
            sock.close()
            failure = err
        except BaseException:
            sock.close()
            raise
    raise failure or OSError("no address to connect to")
