"""The one name lookup of an outbound call: bounded in time, every address checked.

Used by the calls to schools' OpenID providers (`broker/oidc/rp_http.py`) and by metadata
fetches (`broker/saml/metadata_fetch.py`). Both then connect to the addresses returned here and
never look the name up again, so an answer that changes between the check and the connection
(DNS rebinding: public for the check, the broker's own network for the connection) cannot send
the call elsewhere. The callers turn the exceptions below into their own errors.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from broker.core.endpoints import acceptable_destination

# (address family, socket address) as getaddrinfo gave it: what `socket.connect` takes as is.
Destination = tuple[socket.AddressFamily, tuple[Any, ...]]

# getaddrinfo has no timeout and cannot be interrupted: a lookup runs on a thread of its own (a
# kept one, `_LookupThreads`) and the caller waits at most its share of the deadline. A resolver
# that hangs keeps at most this many such threads busy (each until the system resolver gives
# up), never a worker.
MAX_PENDING_LOOKUPS = 16
_PENDING_LOOKUPS = threading.BoundedSemaphore(MAX_PENDING_LOOKUPS)


class LookupTimedOut(Exception):
    """The name did not resolve in time, or too many lookups hang already (`busy`).
    Not an OSError, so a caller's handler for network failures does not swallow it."""

    def __init__(self, *, busy: bool) -> None:
        super().__init__("too many lookups are hanging" if busy else "did not resolve in time")
        self.busy = busy


class DestinationRefused(Exception):
    """The name resolved to no address, or to one the broker must not connect to."""


def checked_destinations(
    host: str, port: int, *, allow_loopback: bool, seconds: float
) -> list[Destination]:
    """Where `host` may be reached: its addresses, looked up within `seconds`, in the resolver's
    order, one entry an address, all passing `acceptable_destination`. `host` must be the name
    as it is sent (ASCII). Raises LookupTimedOut, DestinationRefused, or the resolver's own
    OSError/UnicodeError for a name that does not resolve."""
    found: dict[str, Destination] = {}
    for family, _, _, _, sockaddr in _lookup(host, port, seconds):
        found.setdefault(str(sockaddr[0]), (family, tuple(sockaddr)))
    if not acceptable_destination(host, list(found), allow_loopback=allow_loopback):
        raise DestinationRefused(host)
    return list(found.values())


@dataclass
class _Lookup:
    host: str
    port: int
    pending: threading.BoundedSemaphore  # released by the thread that ran the lookup
    outcome: list[list[tuple[Any, ...]] | BaseException]
    finished: threading.Event


class _LookupThreads:
    """The threads that run lookups, kept for the next one: starting a thread per call cost
    ~0.15 ms of CPU, ten times the lookup of a cached name (a call to a school's provider is on
    the login path). A thread is started only when none is idle; every thread is idle or runs a
    lookup counted in `_PENDING_LOOKUPS`, so there are never more threads than lookups that may
    be pending at once."""

    def __init__(self) -> None:
        self._reset()
        # A forked child has none of its parent's threads: it starts afresh.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Lookup] = queue.SimpleQueue()
        self._idle = 0

    def run(self, job: _Lookup) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1  # one idle thread is taken for this job
            else:
                threading.Thread(target=self._serve, name="name-lookup", daemon=True).start()
        self._jobs.put(job)

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                job.outcome.append(socket.getaddrinfo(job.host, job.port, type=socket.SOCK_STREAM))
            except BaseException as err:  # handed to the caller, who decides
                job.outcome.append(err)
            with self._lock:
                self._idle += 1  # idle before the release, so threads never outnumber it
            job.pending.release()
            job.finished.set()


_LOOKUP_THREADS = _LookupThreads()


def _lookup(host: str, port: int, seconds: float) -> list[tuple[Any, ...]]:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # an address literal: nothing to look up, no thread needed
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ends = time.monotonic() + seconds
    pending = _PENDING_LOOKUPS  # the thread releases the very semaphore it was counted in
    if not pending.acquire(timeout=max(seconds, 0)):
        raise LookupTimedOut(busy=True)
    job = _Lookup(host, port, pending, [], threading.Event())
    _LOOKUP_THREADS.run(job)
    if not job.finished.wait(max(ends - time.monotonic(), 0)):
        raise LookupTimedOut(busy=False)
    result = job.outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result
