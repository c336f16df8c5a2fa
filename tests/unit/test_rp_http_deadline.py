"""Every read of a call to a school's provider ends by the call's deadline (oidc/pinned_http.py,
deadline_socket.py): the status line and the headers as much as the body, over http and https,
so a provider that trickles bytes, each just within the per-read timeout, cannot hold a
worker's thread past it.
The "provider" is a server on 127.0.0.1 (plain, or TLS with a certificate of a test CA); the
resolver answers `localhost` with 127.0.0.1 only."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3.util import ssl_ as urllib3_ssl

from broker import deadline_socket
from broker.core.errors import SchoolTimeout, UpstreamFailure
from broker.oidc import pinned_http, provider_tls
from broker.oidc.rp_http import DISCOVERY_DOCUMENT, SchoolSession, get_json
from tests.support.pki import make_pki

STEP = 0.5  # the per-read timeout of the calls below; a call's deadline is twice that
GAP = 0.1  # between two trickled bytes: well within the per-read timeout
LIMIT = 2 * STEP + 1.0  # what a cut-off call may take at most, with room for a slow machine


@dataclass
class Provider:
    """A provider that misbehaves by path. `connections` counts the TCP connections served."""

    port: int
    scheme: str
    connections: int = 0
    paths: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"{self.scheme}://localhost:{self.port}{path}"


OK_BODY = json.dumps({"ok": True}).encode()
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
    len(OK_BODY)
)


def _trickle(conn: socket.socket, provider: Provider, data: bytes) -> None:
    for byte in data:
        if provider.stop.wait(GAP):
            return
        conn.sendall(bytes([byte]))


def _answer(conn: socket.socket, provider: Provider, path: str) -> None:
    if path == "/ok":
        conn.sendall(OK_HEAD + OK_BODY)
    elif path == "/trickled-status":
        # The status line never ends: a long reason phrase, a byte at a time (a minute's worth).
        conn.sendall(b"HTTP/1.1 200 ")
        _trickle(conn, provider, b"O" * 600)
    elif path == "/trickled-headers":
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        _trickle(conn, provider, b"a" * 600)
    elif path == "/trickled-body":
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        _trickle(conn, provider, b" " * 600)
    elif path == "/slow-ok":
        # A whole answer whose headers take 0.7 s to arrive (within one call's deadline).
        _trickle(conn, provider, OK_HEAD[:7])
        conn.sendall(OK_HEAD[7:] + OK_BODY)
    elif path == "/late-ok":
        # Silent for 0.4 s (within the per-read timeout), then the whole answer.
        provider.stop.wait(0.4)
        conn.sendall(OK_HEAD + OK_BODY)


def _serve_connection(raw: socket.socket, provider: Provider, tls: ssl.SSLContext | None) -> None:
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(raw)
        try:
            if tls is not None:
                conn = stack.enter_context(tls.wrap_socket(raw, server_side=True))
            reader = conn.makefile("rb")
            while not provider.stop.is_set():  # requests on a kept-alive connection
                request_line = reader.readline()
                if not request_line:
                    return
                while reader.readline() not in (b"\r\n", b""):
                    pass
                path = request_line.split()[1].decode()
                provider.paths.append(path)
                _answer(conn, provider, path)
        except (OSError, ssl.SSLError):
            return


@contextlib.contextmanager
def _provider(tls: ssl.SSLContext | None = None) -> Iterator[Provider]:
    listener = socket.create_server(("127.0.0.1", 0))
    provider = Provider(listener.getsockname()[1], "http" if tls is None else "https")

    def accept() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            provider.connections += 1
            threading.Thread(
                target=_serve_connection, args=(raw, provider, tls), daemon=True
            ).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield provider
    finally:
        provider.stop.set()
        listener.close()


@pytest.fixture(autouse=True)
def localhost_is_127_0_0_1(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def answer(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", answer)


@pytest.fixture
def trusted_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """The test CA as the bundle a session verifies against by default (`verify=True`, the
    production path), and a server context with its certificate for `localhost`."""
    pki = make_pki(tmp_path, "localhost")
    monkeypatch.setattr(provider_tls, "DEFAULT_CA_BUNDLE_PATH", str(pki.ca_file))
    monkeypatch.setattr(provider_tls, "_CONTEXTS", {})
    return pki.server


@pytest.fixture(params=["http", "https"])
def provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    tls = request.getfixturevalue("trusted_ca") if request.param == "https" else None
    with _provider(tls) as served:
        yield served


def _session() -> SchoolSession:
    return SchoolSession(STEP, allow_loopback=True)


# -- a trickle is cut off at the deadline, wherever it is ----------------------------------------
@pytest.mark.parametrize("path", ["/trickled-status", "/trickled-headers", "/trickled-body"])
def test_a_trickling_provider_is_cut_off_at_the_calls_deadline(
    provider: Provider, path: str
) -> None:
    started = time.monotonic()
    with pytest.raises(SchoolTimeout) as refused:
        get_json(_session(), provider.url(path), DISCOVERY_DOCUMENT)
    elapsed = time.monotonic() - started
    assert refused.value.code == "school_timeout"
    # Each byte came within the per-read timeout; the deadline (twice the timeout) ended it.
    assert 2 * STEP - 0.1 < elapsed < LIMIT


def test_a_provider_that_never_completes_the_tls_handshake_is_a_timeout() -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (the kernel does), never speaks
    with silent:
        started = time.monotonic()
        with pytest.raises(SchoolTimeout):
            get_json(
                _session(), f"https://localhost:{silent.getsockname()[1]}/", DISCOVERY_DOCUMENT
            )
        assert time.monotonic() - started < LIMIT


# -- normal calls are unchanged ------------------------------------------------------------------
def test_a_normal_call_succeeds(provider: Provider) -> None:
    assert get_json(_session(), provider.url("/ok"), DISCOVERY_DOCUMENT) == {"ok": True}


def test_each_call_on_a_kept_alive_connection_has_its_own_deadline(provider: Provider) -> None:
    session = _session()
    # The first call takes most of its deadline: its socket's timeout went down to the time
    # left. The second starts after the first call's deadline has passed, on the same
    # connection, and waits longer than that lowered timeout for its first byte.
    assert get_json(session, provider.url("/slow-ok"), DISCOVERY_DOCUMENT) == {"ok": True}
    time.sleep(2 * STEP - 0.6)
    assert get_json(session, provider.url("/late-ok"), DISCOVERY_DOCUMENT) == {"ok": True}
    assert provider.paths == ["/slow-ok", "/late-ok"]
    assert provider.connections == 1


# -- TLS: still verified against the URL's host name, by default ---------------------------------
def test_a_certificate_for_another_host_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path, "elsewhere.test")
    monkeypatch.setattr(provider_tls, "DEFAULT_CA_BUNDLE_PATH", str(pki.ca_file))
    monkeypatch.setattr(provider_tls, "_CONTEXTS", {})
    with _provider(pki.server) as served:
        with pytest.raises(UpstreamFailure) as refused:
            get_json(_session(), served.url("/ok"), DISCOVERY_DOCUMENT)
        assert refused.value.code == "school_unreachable"
        assert served.paths == []


def test_a_certificate_of_a_ca_outside_the_default_bundle_is_refused(tmp_path: Path) -> None:
    # No bundle swapped in: the test CA is not among those requests trusts by default.
    with _provider(make_pki(tmp_path, "localhost").server) as served:
        with pytest.raises(UpstreamFailure) as refused:
            get_json(_session(), served.url("/ok"), DISCOVERY_DOCUMENT)
        assert refused.value.code == "school_unreachable"
        assert served.paths == []


def test_the_default_context_is_urllib3s_with_requests_ca_bundle() -> None:
    context = provider_tls.provider_context(pinned_http._CallTLSSocket)
    # One context for every session and call: nothing is built or loaded per call.
    assert context is provider_tls.provider_context(pinned_http._CallTLSSocket)
    assert context.sslsocket_class is pinned_http._CallTLSSocket
    # What urllib3 builds for requests' `verify=True`, with the CA bundle requests loads.
    expected = urllib3_ssl.create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    expected.load_verify_locations(requests.utils.DEFAULT_CA_BUNDLE_PATH)
    for setting in (
        "verify_mode",
        "check_hostname",
        "hostname_checks_common_name",
        "options",
        "verify_flags",
        "minimum_version",
        "maximum_version",
        "post_handshake_auth",
        "keylog_filename",
    ):
        assert getattr(context, setting) == getattr(expected, setting), setting
    assert context.get_ciphers() == expected.get_ciphers()
    assert context.cert_store_stats() == expected.cert_store_stats()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


# -- the read bound itself -----------------------------------------------------------------------
def test_a_read_waits_at_most_until_the_pinned_calls_deadline() -> None:
    def keep(sock: socket.socket) -> None:
        deadline_socket.keep_deadline(sock, pinned_http._CALL_DEADLINE.ends())

    with socket.socket() as sock:
        sock.settimeout(STEP)
        keep(sock)  # outside a pinned call: as urllib3 set it
        assert sock.gettimeout() == STEP
        with pinned_http.pinned_to("op.school.test", ["192.0.2.1"]):  # no deadline
            keep(sock)
        assert sock.gettimeout() == STEP
        with pinned_http.pinned_to("op.school.test", ["192.0.2.1"], time.monotonic() + 0.2):
            keep(sock)
            assert 0 < (sock.gettimeout() or 0) <= 0.2
        with (
            pinned_http.pinned_to("op.school.test", ["192.0.2.1"], time.monotonic()),
            pytest.raises(TimeoutError),
        ):
            keep(sock)
