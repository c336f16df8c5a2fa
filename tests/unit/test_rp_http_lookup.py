"""The name lookup of a call to a school's provider counts against the call's deadline and the
login's budget (oidc/rp_http.py): a resolver that hangs ends the call in time, never the worker.
No network: the resolver is replaced."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from broker import name_lookup
from broker.core.errors import SchoolTimeout
from broker.oidc.rp_http import DISCOVERY_DOCUMENT, SchoolSession, call_budget, get_json

URL = "https://op.school.example/.well-known/openid-configuration"


@pytest.fixture
def hanging_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """getaddrinfo that never answers for a name (until the test ends); literals still work."""
    released = threading.Event()
    asked: list[str] = []
    real = socket.getaddrinfo

    def hang(host: str, *args: Any, **kwargs: Any) -> Any:
        if host in ("127.0.0.1", "::1"):
            return real(host, *args, **kwargs)
        asked.append(host)
        released.wait(30)
        raise socket.gaierror("resolver gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    yield asked
    released.set()


def test_a_hanging_lookup_ends_within_the_calls_timeout(hanging_resolver: list[str]) -> None:
    started = time.monotonic()
    with pytest.raises(SchoolTimeout, match="did not resolve"):
        get_json(SchoolSession(0.3), URL, DISCOVERY_DOCUMENT)
    assert time.monotonic() - started < 1.5
    assert hanging_resolver == ["op.school.example"]


def test_a_hanging_lookup_ends_with_the_logins_budget(hanging_resolver: list[str]) -> None:
    # The call alone could wait 5 s for its lookup; the login's budget has 0.3 s left.
    started = time.monotonic()
    with call_budget(0.3), pytest.raises(SchoolTimeout):
        get_json(SchoolSession(5.0), URL, DISCOVERY_DOCUMENT)
    assert time.monotonic() - started < 1.5


def test_the_lookup_uses_up_the_budget_of_the_calls_after_it(
    hanging_resolver: list[str],
) -> None:
    session = SchoolSession(0.2)
    with call_budget(0.5):
        with pytest.raises(SchoolTimeout):
            get_json(session, URL, DISCOVERY_DOCUMENT)
        with pytest.raises(SchoolTimeout):
            get_json(session, URL, DISCOVERY_DOCUMENT)
        # The budget is spent now: the next call refuses at once, without another lookup.
        asked = len(hanging_resolver)
        time.sleep(0.15)
        with pytest.raises(SchoolTimeout, match="has run out"):
            get_json(session, URL, DISCOVERY_DOCUMENT)
        assert len(hanging_resolver) == asked


def test_hanging_lookups_hold_a_bounded_number_of_threads(
    hanging_resolver: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(name_lookup, "_PENDING_LOOKUPS", threading.BoundedSemaphore(2))
    for _ in range(4):
        with pytest.raises(SchoolTimeout):
            get_json(SchoolSession(0.1), URL, DISCOVERY_DOCUMENT)
    # Two lookups hang; the others were refused without starting a third thread.
    assert len(hanging_resolver) == 2


def test_lookups_one_after_another_reuse_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def answer(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(socket, "getaddrinfo", answer)

    def lookup_threads() -> int:
        return sum(t.name == "name-lookup" for t in threading.enumerate())

    before = lookup_threads()
    for _ in range(20):
        assert name_lookup._lookup("op.school.example", 443, 2.0)[0][4][0] == "93.184.215.14"
    # At most one more than before (none when an idle one was left by an earlier test).
    assert lookup_threads() <= before + 1
