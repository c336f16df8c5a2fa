"""A call to a school's provider connects to the addresses its destination check approved, and
never looks the name up a second time (oidc/pinned_http.py): a resolver that answers differently
for the connection (DNS rebinding) cannot send the call elsewhere, and a resolver that hangs
after the check cannot hold the worker. No network: the resolver is replaced, and the
"provider" is a server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import urllib3

from broker import deadline_socket
from broker.core.errors import UpstreamFailure
from broker.oidc import pinned_http
from broker.oidc.rp_http import DISCOVERY_DOCUMENT, PROVIDER_KEY_SET, SchoolSession, get_json


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"host": self.headers.get("Host", "")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def provider() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`localhost` is 127.0.0.1 the first time it is asked and 10.0.0.7 after that (an
    attacker's rebinding; plain http is allowed to the loopback name only, so the test's
    provider is called by that name); every name asked is recorded."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def answer(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        if host == "localhost":
            address = "127.0.0.1" if asked.count(host) == 1 else "10.0.0.7"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    # Both the broker's own lookup and any lookup urllib3 might make go through here.
    monkeypatch.setattr(socket, "getaddrinfo", answer)
    return asked


def test_the_call_goes_to_the_checked_address_with_one_lookup(
    provider: int, resolver: list[str]
) -> None:
    url = f"http://localhost:{provider}/.well-known/openid-configuration"
    document = get_json(SchoolSession(2.0, allow_loopback=True), url, DISCOVERY_DOCUMENT)
    # The Host header still names the provider (TLS would verify this name too).
    assert document == {"host": f"localhost:{provider}"}
    # One lookup, of the name; the connection goes to the address it gave and asks nothing.
    assert resolver == ["localhost"]


def test_a_rebinding_answer_cannot_redirect_the_connection(
    provider: int, resolver: list[str]
) -> None:
    session = SchoolSession(2.0, allow_loopback=True)
    url = f"http://localhost:{provider}/keys"
    get_json(session, url, PROVIDER_KEY_SET)
    # The second call's check sees the rebinding answer (a private address) and refuses:
    # nothing is sent to it.
    with pytest.raises(UpstreamFailure) as refused:
        get_json(session, url, PROVIDER_KEY_SET)
    assert refused.value.code == "endpoint_refused"


def test_a_name_that_does_not_resolve_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror("no such name")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(UpstreamFailure) as failed:
        get_json(SchoolSession(1.0), "https://op.nowhere.test/keys", PROVIDER_KEY_SET)
    assert failed.value.code == "school_unreachable"
    # Said in words for the operator (`school add --oidc-issuer`), not as "gaierror".
    assert str(failed.value) == "provider unreachable: its host name did not resolve"


def _get(url: str) -> Any:
    """One GET through a fresh pinned transport (no kept connection from another test)."""
    pools = pinned_http.PinnedPoolManager()
    return pools.request("GET", url, timeout=2, retries=False, redirect=False)


def test_a_connection_without_a_checked_address_is_refused(provider: int) -> None:
    # Outside SchoolSession.request (nothing pinned), the transport never resolves by itself.
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        _get(f"http://127.0.0.1:{provider}/")


def test_the_next_checked_address_is_tried_when_one_refuses(provider: int) -> None:
    # One pinned host, two addresses: nothing serves the first (the provider listens on IPv4).
    with pinned_http.pinned_to("op.school.test", ["::1", "127.0.0.1"]):
        answer = _get(f"http://op.school.test:{provider}/")
    assert answer.json() == {"host": f"op.school.test:{provider}"}


def test_an_address_that_times_out_leaves_the_time_left_to_the_next(
    provider: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A black-holed first address (say IPv6 without a route to the provider) must not fail
    # every login to that school while the second address answers.
    real = deadline_socket.DeadlineSocket.connect
    tried: list[str] = []

    def connect(sock: socket.socket, address: tuple[Any, ...]) -> None:
        tried.append(address[0])
        if address[0] == "2001:db8::1":
            raise TimeoutError("timed out")
        real(sock, address)

    monkeypatch.setattr(deadline_socket.DeadlineSocket, "connect", connect)
    with pinned_http.pinned_to(
        "op.school.test", ["2001:db8::1", "127.0.0.1"], time.monotonic() + 5
    ):
        answer = _get(f"http://op.school.test:{provider}/")
    assert answer.json() == {"host": f"op.school.test:{provider}"}
    assert tried == ["2001:db8::1", "127.0.0.1"]


def test_no_address_is_tried_after_the_calls_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []

    def connect(sock: socket.socket, address: tuple[Any, ...]) -> None:
        tried.append(address[0])
        raise TimeoutError("timed out")

    monkeypatch.setattr(deadline_socket.DeadlineSocket, "connect", connect)
    with (
        pinned_http.pinned_to("op.school.test", ["192.0.2.1", "192.0.2.2"], time.monotonic()),
        pytest.raises(urllib3.exceptions.ConnectTimeoutError),
    ):
        _get("http://op.school.test:9/")
    assert tried == []


def test_a_refusal_after_which_no_time_is_left_ends_the_call_as_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried: list[str] = []

    def connect(sock: socket.socket, address: tuple[Any, ...]) -> None:
        tried.append(address[0])
        time.sleep(0.3)  # past the deadline
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(deadline_socket.DeadlineSocket, "connect", connect)
    with (
        pinned_http.pinned_to("op.school.test", ["192.0.2.1", "192.0.2.2"], time.monotonic() + 0.2),
        pytest.raises(urllib3.exceptions.ConnectTimeoutError),
    ):
        _get("http://op.school.test:9/")
    assert tried == ["192.0.2.1"]


def test_the_connection_has_urllib3s_socket_options(
    provider: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TCP_NODELAY above all: without it a request and its answer wait on delayed ACKs.
    no_delay: list[int] = []
    real = deadline_socket.DeadlineSocket.connect

    def connect(sock: socket.socket, address: tuple[Any, ...]) -> None:
        no_delay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        real(sock, address)

    monkeypatch.setattr(deadline_socket.DeadlineSocket, "connect", connect)
    with pinned_http.pinned_to("op.school.test", ["127.0.0.1"]):
        assert _get(f"http://op.school.test:{provider}/").status == 200
    assert no_delay == [1]


def test_an_international_name_is_refused_before_any_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host is registered in its xn-- form (core/endpoints.py says why): a Unicode one that
    reached a call anyway is refused before any name is looked up or any connection made."""
    asked: list[str] = []

    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(UpstreamFailure) as failed:
        get_json(SchoolSession(1.0), "https://bücher.test/keys", PROVIDER_KEY_SET)
    assert failed.value.code == "endpoint_refused"
    assert asked == []


def test_the_transport_takes_no_proxy_from_the_environment(
    provider: int, resolver: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy would resolve the name itself: the call goes direct, to the checked address.
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = f"http://localhost:{provider}/keys"
    assert get_json(SchoolSession(2.0, allow_loopback=True), url, PROVIDER_KEY_SET) == {
        "host": f"localhost:{provider}"
    }
    assert "proxy.invalid" not in resolver


def test_a_kept_connection_serves_the_next_call_only_after_its_check(
    resolver: list[str],
) -> None:
    # A provider that keeps connections alive: the second call reuses the connection, but its
    # check runs first and sees the rebinding answer, so nothing is sent on the kept one.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeptAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://localhost:{server.server_address[1]}/keys"
        session = SchoolSession(2.0, allow_loopback=True)
        get_json(session, url, PROVIDER_KEY_SET)
        with pytest.raises(UpstreamFailure) as refused:
            get_json(session, url, PROVIDER_KEY_SET)
        assert refused.value.code == "endpoint_refused"
        assert _KeptAlive.served == 1
    finally:
        server.shutdown()
        server.server_close()


def test_calls_to_a_provider_that_keeps_connections_alive_share_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[str] = []
    real = deadline_socket.DeadlineSocket.connect

    def connect(sock: socket.socket, address: tuple[Any, ...]) -> None:
        opened.append(address[0])
        real(sock, address)

    monkeypatch.setattr(deadline_socket.DeadlineSocket, "connect", connect)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeptAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/keys"
        for _ in range(3):
            # A new session per call, as the broker makes them: the process's pools are shared.
            assert get_json(SchoolSession(2.0, allow_loopback=True), url, PROVIDER_KEY_SET)["host"]
        assert opened == ["127.0.0.1"]
    finally:
        server.shutdown()
        server.server_close()


class _KeptAlive(_Answer):
    protocol_version = "HTTP/1.1"  # keeps the connection open after each answer
    served = 0

    def do_GET(self) -> None:
        type(self).served += 1
        super().do_GET()
