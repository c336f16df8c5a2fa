"""A metadata fetch connects to the addresses its destination check approved and never looks
the name up a second time (name_lookup.py, saml/pinned_connection.py): a resolver that answers
differently for the connection (DNS rebinding) cannot send an administrator's URL into the
broker's own network; every read ends by the fetch's deadline. No network: the resolver is
replaced, and the "metadata server" is a server on 127.0.0.1 (plain http, or TLS with a
certificate of a test CA)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from broker import deadline_socket, name_lookup
from broker.saml.metadata_check import MetadataInvalid
from broker.saml.metadata_fetch import fetch_bytes
from tests.support.pki import make_pki

METADATA = b"<md:EntityDescriptor entityID='https://idp.school.example'/>"


@dataclass
class Seen:
    """What the test server received: request targets and Host headers."""

    paths: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


def _handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.paths.append(self.path)
            seen.hosts.append(self.headers.get("Host", ""))
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/metadata")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b"x" * 2048 if self.path == "/big" else METADATA
            self.send_response(200)
            # "²": a digit to str.isdigit, a ValueError to int() (HTTP/1.0: the body ends at
            # the close, as without a Content-Length).
            self.send_header("Content-Length", "\u00b2" if self.path == "/odd" else str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@dataclass
class Server:
    port: int
    seen: Seen


@contextmanager
def _serve(tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    seen = Seen()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(seen))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Server(server.server_address[1], seen)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with _serve() as served:
        yield served


@pytest.fixture
def connected(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address a fetch connects to, in order (the real connection is still made)."""
    tried: list[str] = []
    real = deadline_socket.DeadlineSocket.connect

    def connect(sock: socket.socket, address: tuple[Any, ...]) -> None:
        tried.append(str(address[0]))
        real(sock, address)

    monkeypatch.setattr(deadline_socket.DeadlineSocket, "connect", connect)
    return tried


def _answers(monkeypatch: pytest.MonkeyPatch, table: dict[str, list[Any]]) -> list[str]:
    """Replace the resolver: `table[name]` is its answer at each ask (an address list, or an
    exception to raise); the last entry repeats. Every name asked is recorded, literals too."""
    asked: list[str] = []

    def answer(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        answers = table.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, "no such name")
        found = answers[min(asked.count(host), len(answers)) - 1]
        if isinstance(found, BaseException):
            raise found
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in found
        ]

    monkeypatch.setattr(socket, "getaddrinfo", answer)
    return asked


# -- one lookup, and the connection goes where it said -----------------------------------------
@pytest.mark.parametrize(
    "later",
    [["10.0.0.7"], socket.gaierror(socket.EAI_NONAME, "gone")],
    ids=["rebound to a private address", "no longer resolves"],
)
def test_the_fetch_goes_to_the_checked_address_with_one_lookup(
    server: Server, connected: list[str], monkeypatch: pytest.MonkeyPatch, later: Any
) -> None:
    # Plain http is allowed to the loopback name only: the test server is called `localhost`.
    asked = _answers(monkeypatch, {"localhost": [["127.0.0.1"], later]})
    url = f"http://localhost:{server.port}/metadata"
    body = fetch_bytes(url, allow_loopback=True, max_bytes=4096)
    assert body == METADATA
    # One lookup, of the name; the connection went to the address it gave, nothing was asked
    # for the connection (not even the address literal).
    assert asked == ["localhost"]
    assert connected == ["127.0.0.1"]
    # The Host header still names the host of the URL.
    assert server.seen.hosts == [f"localhost:{server.port}"]


def test_a_rebinding_answer_is_checked_before_anything_is_sent(
    server: Server, connected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _answers(monkeypatch, {"localhost": [["127.0.0.1"], ["10.0.0.7"]]})
    url = f"http://localhost:{server.port}/metadata"
    fetch_bytes(url, allow_loopback=True, max_bytes=4096)
    # The next fetch's one lookup sees the private address: refused, no connection made.
    with pytest.raises(MetadataInvalid, match="public address"):
        fetch_bytes(url, allow_loopback=True, max_bytes=4096)
    assert connected == ["127.0.0.1"]
    assert server.seen.paths == ["/metadata"]


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.7"],
        ["192.168.1.1"],
        ["169.254.169.254"],  # a cloud's metadata service
        ["93.184.216.34", "172.16.0.1"],  # one private address among public ones is enough
        ["fd00::1"],
        ["64:ff9b::a00:1"],  # NAT64 of 10.0.0.1
        ["127.0.0.1"],  # a public name pointing at the broker itself
    ],
)
def test_a_name_that_resolves_into_a_private_network_is_refused_before_connecting(
    connected: list[str], monkeypatch: pytest.MonkeyPatch, addresses: list[str]
) -> None:
    asked = _answers(monkeypatch, {"metadata.school.test": [addresses]})
    with pytest.raises(MetadataInvalid, match="public address"):
        # Even a broker that may call loopback does not call it under a public name.
        fetch_bytes("https://metadata.school.test/idp.xml", allow_loopback=True, max_bytes=4096)
    assert asked == ["metadata.school.test"]
    assert connected == []


def test_a_name_that_does_not_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    _answers(monkeypatch, {})
    with pytest.raises(MetadataInvalid, match="host not found"):
        fetch_bytes("https://nowhere.school.test/idp.xml", allow_loopback=False, max_bytes=4096)


def test_an_international_name_is_refused_before_any_lookup_naming_its_xn_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host is registered in its xn-- form (core/endpoints.py says why): a Unicode one is
    refused before any name is looked up or any connection made, naming the form to give."""
    asked = _answers(monkeypatch, {"xn--bcher-kva.test": [["93.184.215.14"]]})
    with pytest.raises(MetadataInvalid, match=r"xn-- form.*https://xn--bcher-kva\.test/idp\.xml"):
        fetch_bytes("https://bücher.test/idp.xml", allow_loopback=False, max_bytes=4096)
    assert asked == []


# -- several addresses ---------------------------------------------------------------------------
def test_the_next_checked_address_is_tried_when_one_refuses(
    server: Server, connected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on 127.0.0.2 (the server is bound to 127.0.0.1): that one refuses.
    _answers(monkeypatch, {"localhost": [["127.0.0.2", "127.0.0.1"]]})
    url = f"http://localhost:{server.port}/metadata"
    assert fetch_bytes(url, allow_loopback=True, max_bytes=4096) == METADATA
    assert connected == ["127.0.0.2", "127.0.0.1"]


def test_an_address_that_times_out_leaves_the_time_left_to_the_next(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A black-holed first address (IPv6 without a route, say) must not fail the fetch while
    # the second one answers.
    real = deadline_socket.DeadlineSocket.connect
    tried: list[str] = []

    def connect(sock: socket.socket, address: tuple[Any, ...]) -> None:
        tried.append(str(address[0]))
        if address[0] == "127.0.0.3":
            raise TimeoutError("timed out")
        real(sock, address)

    monkeypatch.setattr(deadline_socket.DeadlineSocket, "connect", connect)
    _answers(monkeypatch, {"localhost": [["127.0.0.3", "127.0.0.1"]]})
    url = f"http://localhost:{server.port}/metadata"
    assert fetch_bytes(url, allow_loopback=True, max_bytes=4096) == METADATA
    assert tried == ["127.0.0.3", "127.0.0.1"]


def test_no_address_is_tried_after_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[tuple[str, float]] = []

    def silent(sock: socket.socket, address: tuple[Any, ...]) -> None:
        wait = sock.gettimeout() or 0
        tried.append((str(address[0]), wait))
        time.sleep(wait)
        raise TimeoutError("timed out")

    monkeypatch.setattr(deadline_socket.DeadlineSocket, "connect", silent)
    _answers(monkeypatch, {"localhost": [["127.0.0.3", "127.0.0.1"]]})
    started = time.monotonic()
    with pytest.raises(MetadataInvalid, match="too slowly"):
        fetch_bytes(
            "http://localhost:9/metadata",
            allow_loopback=True,
            max_bytes=4096,
            timeout=5,
            total_seconds=0.4,
        )
    # The first address got the time up to the deadline, not its own 5 s; none was left over.
    assert [address for address, _ in tried] == ["127.0.0.3"]
    assert tried[0][1] <= 0.4
    assert time.monotonic() - started < 1.5


@pytest.fixture(params=["http", "https"])
def trickling_headers(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The URL of a server (plain or TLS) that sends a status line, then one byte of a header
    every 0.2 s (for a minute)."""
    tls = None
    if request.param == "https":
        pki = make_pki(tmp_path, "localhost")
        monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
        tls = pki.server
    _answers(monkeypatch, {"localhost": [["127.0.0.1"]]})
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn, conn if tls is None else tls.wrap_socket(conn, server_side=True) as peer:
                peer.recv(4096)
                peer.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                for _ in range(300):
                    if stop.wait(0.2):
                        return
                    peer.sendall(b"a")
        except OSError:
            return

    threading.Thread(target=serve, daemon=True).start()
    yield f"{request.param}://localhost:{listener.getsockname()[1]}/metadata"
    stop.set()
    listener.close()


def test_a_server_that_trickles_its_headers_is_cut_off_at_the_deadline(
    trickling_headers: str,
) -> None:
    # Each byte comes well within the per-read timeout; the deadline of the whole fetch ends it.
    started = time.monotonic()
    with pytest.raises(MetadataInvalid, match="too slowly"):
        fetch_bytes(
            trickling_headers, allow_loopback=True, max_bytes=4096, timeout=1, total_seconds=0.8
        )
    assert 0.7 < time.monotonic() - started < 1.5


def test_a_server_that_never_completes_the_tls_handshake_is_cut_off_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _answers(monkeypatch, {"localhost": [["127.0.0.1"]]})
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (the kernel does), silent
        url = f"https://localhost:{silent.getsockname()[1]}/metadata"
        started = time.monotonic()
        with pytest.raises(MetadataInvalid, match="too slowly"):
            fetch_bytes(url, allow_loopback=True, max_bytes=4096, timeout=1, total_seconds=0.8)
        assert 0.7 < time.monotonic() - started < 1.5


def test_a_hanging_lookup_ends_within_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    released = threading.Event()

    def hang(*args: Any, **kwargs: Any) -> Any:
        released.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "resolver gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    started = time.monotonic()
    try:
        with pytest.raises(MetadataInvalid, match="did not resolve in time"):
            fetch_bytes(
                "https://metadata.school.test/", allow_loopback=False, max_bytes=4096, timeout=0.3
            )
        assert time.monotonic() - started < 1.5
    finally:
        released.set()


def test_hanging_lookups_hold_a_bounded_number_of_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    released = threading.Event()
    asked: list[str] = []

    def hang(host: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(host)
        released.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "resolver gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    monkeypatch.setattr(name_lookup, "_PENDING_LOOKUPS", threading.BoundedSemaphore(2))
    try:
        for _ in range(4):
            with pytest.raises(MetadataInvalid, match="did not resolve in time"):
                fetch_bytes(
                    "https://metadata.school.test/", allow_loopback=False, max_bytes=9, timeout=0.1
                )
        assert len(asked) == 2
    finally:
        released.set()


# -- the rules that stay -------------------------------------------------------------------------
def test_a_redirect_is_refused_not_followed(server: Server) -> None:
    with pytest.raises(MetadataInvalid, match="HTTP 302"):
        fetch_bytes(f"http://127.0.0.1:{server.port}/moved", allow_loopback=True, max_bytes=4096)
    assert server.seen.paths == ["/moved"]


def test_the_size_cap_holds(server: Server) -> None:
    url = f"http://127.0.0.1:{server.port}/big"
    assert len(fetch_bytes(url, allow_loopback=True, max_bytes=2048)) == 2048
    with pytest.raises(MetadataInvalid, match="larger than"):
        fetch_bytes(url, allow_loopback=True, max_bytes=2047)


def test_no_proxy_is_taken_from_the_environment(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "")
    url = f"http://127.0.0.1:{server.port}/metadata?x=1"
    assert fetch_bytes(url, allow_loopback=True, max_bytes=4096) == METADATA
    # Sent straight to the server, in origin form (a proxy gets the absolute URL).
    assert server.seen.paths == ["/metadata?x=1"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://metadata.school.test/idp.xml", "must be https"),
        ("ftp://metadata.school.test/idp.xml", "must be https"),
        ("https://user:secret@metadata.school.test/idp.xml", "user name or password"),
        ("https://metadata.school.test:https/idp.xml", "not a valid URL"),
        ("https://[::1/idp.xml", "not a valid URL"),
        ("https://" + "a" * 64 + ".bücher.test/", "host name is not valid"),
        ("https://b%C3%BCcher.test/", "xn-- form"),
    ],
)
def test_urls_that_are_refused_before_any_lookup(
    url: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _answers(monkeypatch, {})
    with pytest.raises(MetadataInvalid, match=message):
        fetch_bytes(url, allow_loopback=True, max_bytes=4096)
    assert asked == []


# -- TLS: verified against the URL's host name, not the address connected to ---------------------
@pytest.mark.parametrize(("certified", "fetched"), [("localhost", True), ("elsewhere.test", False)])
def test_tls_is_verified_against_the_urls_host_name(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    connected: list[str],
    certified: str,
    fetched: bool,
) -> None:
    pki = make_pki(tmp_path, certified)
    # The test CA is the only one trusted (the default context reads SSL_CERT_FILE).
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    asked = _answers(monkeypatch, {"localhost": [["127.0.0.1"], ["10.0.0.7"]]})
    with _serve(pki.server) as served:
        url = f"https://localhost:{served.port}/metadata"
        if fetched:
            # The certificate names `localhost` only, not 127.0.0.1: the connection went to
            # the address, the verification was against the name.
            assert fetch_bytes(url, allow_loopback=True, max_bytes=4096) == METADATA
            assert served.seen.hosts == [f"localhost:{served.port}"]
        else:
            with pytest.raises(MetadataInvalid, match="SSLCertVerificationError"):
                fetch_bytes(url, allow_loopback=True, max_bytes=4096)
            assert served.seen.paths == []
    assert asked == ["localhost"]
    assert connected == ["127.0.0.1"]


def test_a_content_length_that_is_no_ascii_number_is_not_believed(server: Server) -> None:
    """The body as it came (the cap and the close decide), not a ValueError."""
    url = f"http://127.0.0.1:{server.port}/odd"
    assert fetch_bytes(url, allow_loopback=True, max_bytes=4096) == METADATA
