"""Outbound HTTP to schools' providers: a whole-answer deadline and public destinations only."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from broker.core.endpoints import acceptable_destination
from broker.core.errors import SchoolTimeout, UpstreamFailure
from broker.oidc.rp_discovery import ProviderDirectory
from broker.oidc.rp_http import (
    DISCOVERY_DOCUMENT,
    PlatformSession,
    SchoolSession,
    call_budget,
    get_json,
)
from tests.support.processes import Mode, tcp_forwarder


def _serving(server: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    """Accept connections on `server` in a thread, each handled by `handle` in one of its own,
    until the server socket is closed."""

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


@pytest.fixture
def trickling_server() -> Iterator[int]:
    """Answers headers at once, then the body one byte every 0.3 s (for a minute)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
            try:
                for _ in range(200):
                    if stop.is_set():
                        return
                    conn.sendall(b" ")
                    time.sleep(0.3)
            except OSError:
                return

    _serving(server, handle)
    yield server.getsockname()[1]
    stop.set()
    server.close()


def test_a_provider_that_trickles_its_answer_is_cut_off(trickling_server: int) -> None:
    started = time.monotonic()
    with pytest.raises(UpstreamFailure) as refused:
        session = SchoolSession(0.5, allow_loopback=True)
        get_json(session, f"http://127.0.0.1:{trickling_server}/x", DISCOVERY_DOCUMENT)
    assert refused.value.code == "school_timeout"
    # Each byte arrives within the per-read timeout; the deadline (twice the timeout) ends it.
    assert time.monotonic() - started < 3


@pytest.fixture
def broken_body_server() -> Iterator[int]:
    """Answers headers and part of the body at once; then, by path, stays silent (/stalled)
    or closes the connection (/cut)."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            request = conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{")
            if b" /stalled " in request:
                stop.wait(30)

    _serving(server, handle)
    yield server.getsockname()[1]
    stop.set()
    server.close()


@pytest.mark.parametrize(
    ("path", "code"), [("/stalled", "school_timeout"), ("/cut", "school_unreachable")]
)
def test_a_body_that_stops_short_is_the_providers_failure(
    broken_body_server: int, path: str, code: str
) -> None:
    # urllib3 raises its own errors while the body is read (requests translates only the reads
    # it makes itself): they end the login as any other failure of the provider does, not as an
    # internal error.
    started = time.monotonic()
    with pytest.raises(UpstreamFailure) as refused:
        get_json(
            SchoolSession(0.5, allow_loopback=True),
            f"http://127.0.0.1:{broken_body_server}{path}",
            DISCOVERY_DOCUMENT,
        )
    assert refused.value.code == code
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("host", "addresses", "allowed"),
    [
        ("idp.school.example", ["93.184.216.34"], True),
        ("idp.school.example", ["10.0.0.5"], False),
        ("idp.school.example", ["192.168.1.1"], False),
        ("idp.school.example", ["169.254.169.254"], False),  # cloud metadata
        ("idp.school.example", ["93.184.216.34", "172.16.0.1"], False),  # any private one
        ("idp.school.example", ["fd00::1"], False),
        ("idp.school.example", ["64:ff9b::a00:1"], False),  # NAT64 of 10.0.0.1
        ("idp.school.example", ["127.0.0.1"], False),  # a public name pointing at us
        ("idp.school.example", [], False),
    ],
)
@pytest.mark.parametrize("allow_loopback", [False, True])
def test_destinations(host: str, addresses: list[str], allowed: bool, allow_loopback: bool) -> None:
    assert acceptable_destination(host, addresses, allow_loopback=allow_loopback) is allowed


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("session", "names"),
    [
        (SchoolSession, ("school_timeout", "school_unreachable")),
        (PlatformSession, ("platform_timeout", "platform_unreachable")),
    ],
)
def test_a_failure_names_the_party_called(
    trickling_server: int, session: type[SchoolSession | PlatformSession], names: tuple[str, str]
) -> None:
    """A school's provider that hangs or cannot be reached is the school's fault; a platform's
    endpoint (its JWKS, its logout URI) the platform's: the code sends the operator there."""
    peer = session(0.3, allow_loopback=True)
    for url, code in zip(
        (f"http://127.0.0.1:{trickling_server}/x", f"http://127.0.0.1:{_closed_port()}/x"),
        names,
        strict=True,
    ):
        with pytest.raises(UpstreamFailure) as refused:
            get_json(peer, url, DISCOVERY_DOCUMENT)
        assert refused.value.code == code


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_loopback_only_for_a_broker_on_loopback(host: str) -> None:
    addresses = ["::1"] if host == "::1" else ["127.0.0.1"]
    assert acceptable_destination(host, addresses, allow_loopback=True)
    assert not acceptable_destination(host, addresses, allow_loopback=False)


def test_a_public_broker_never_calls_its_own_host(trickling_server: int) -> None:
    with pytest.raises(UpstreamFailure) as refused:
        get_json(SchoolSession(0.5), f"http://127.0.0.1:{trickling_server}/x", DISCOVERY_DOCUMENT)
    assert refused.value.code == "endpoint_refused"


def test_metadata_fetch_refuses_loopback_on_a_public_broker_and_trickles(
    trickling_server: int,
) -> None:
    from broker.saml.metadata_check import MetadataInvalid
    from broker.saml.metadata_fetch import fetch_metadata

    url = f"http://127.0.0.1:{trickling_server}/metadata"
    with pytest.raises(MetadataInvalid, match="public address"):
        fetch_metadata(url, allow_loopback=False)


def test_an_issuer_with_a_query_is_refused() -> None:
    from broker.oidc.rp_discovery import ProviderInvalid

    directory = ProviderDirectory(lambda: SchoolSession(1.0, allow_loopback=True))
    with pytest.raises(ProviderInvalid, match="query"):
        directory.fetch_metadata("http://127.0.0.1:9/admin/flush?x=")


def test_an_issuer_on_a_unicode_host_is_refused_naming_its_xn_form() -> None:
    from broker.oidc.rp_discovery import ProviderInvalid

    directory = ProviderDirectory(lambda: SchoolSession(1.0, allow_loopback=True))
    with pytest.raises(ProviderInvalid) as caught:
        directory.fetch_metadata("https://bücher.example/tenant")
    assert caught.value.detail == (
        "issuer must write its host in ASCII (its xn-- form): use "
        "https://xn--bcher-kva.example/tenant"
    )
    with pytest.raises(ProviderInvalid, match="not a valid internationalised domain name"):
        directory.fetch_metadata("https://☃.net")


def test_the_discovery_page_never_waits_on_a_provider() -> None:
    calls: list[str] = []

    def session() -> SchoolSession:
        calls.append("fetch")
        raise AssertionError("no network from cached()")

    directory = ProviderDirectory(session)
    assert directory.cached("https://login.school.example") is None
    assert calls == []


def test_metadata_from_a_trickling_server_is_cut_off(
    trickling_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.saml import metadata_fetch
    from broker.saml.metadata_check import MetadataInvalid

    monkeypatch.setattr(metadata_fetch, "FETCH_TIMEOUT_SECONDS", 0.5)
    started = time.monotonic()
    with pytest.raises(MetadataInvalid, match="too slowly"):
        metadata_fetch.fetch_metadata(
            f"http://127.0.0.1:{trickling_server}/metadata", allow_loopback=True
        )
    assert time.monotonic() - started < 3


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and reads, never answers (a provider that hangs)."""
    with tcp_forwarder(target_port=9) as forwarder:
        forwarder.set_mode(Mode.HANG)
        yield forwarder.port


def test_a_provider_that_never_answers_is_a_school_timeout(silent_server: int) -> None:
    with pytest.raises(SchoolTimeout) as refused:
        get_json(
            SchoolSession(0.5, allow_loopback=True),
            f"http://127.0.0.1:{silent_server}/x",
            DISCOVERY_DOCUMENT,
        )
    assert refused.value.code == "school_timeout"
    assert refused.value.status == 504


def test_metadata_from_a_server_that_never_answers_is_cut_off(
    silent_server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker.saml import metadata_fetch
    from broker.saml.metadata_check import MetadataInvalid

    monkeypatch.setattr(metadata_fetch, "FETCH_TIMEOUT_SECONDS", 0.5)
    with pytest.raises(MetadataInvalid):
        metadata_fetch.fetch_metadata(
            f"http://127.0.0.1:{silent_server}/metadata", allow_loopback=True
        )


def test_calls_within_one_budget_end_together(trickling_server: int) -> None:
    # Each call alone would take its full deadline (twice the timeout); the budget ends the
    # first one early and refuses the next without touching the network.
    session = SchoolSession(1.0, allow_loopback=True)
    url = f"http://127.0.0.1:{trickling_server}/x"
    with call_budget(0.5):
        with pytest.raises(SchoolTimeout):
            get_json(session, url, DISCOVERY_DOCUMENT)
        with pytest.raises(SchoolTimeout, match="has run out"):
            get_json(session, url, DISCOVERY_DOCUMENT)
    # Outside the block the calls have their own bound again (a read that would wait past it
    # times out, or the body loop sees it pass).
    with pytest.raises(SchoolTimeout, match=r"too slowly|did not answer in time"):
        get_json(session, url, DISCOVERY_DOCUMENT)
