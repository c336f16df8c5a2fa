"""A provider's gzip or deflate answer is decoded within the response cap (content_coding.py):
a small body that would inflate far past it is refused as an oversized plain one is, and the
broker never holds more than the cap and one byte of what it inflates to. Served for real on
127.0.0.1, read through SchoolSession as every call to a provider is."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest

from broker.core.errors import UpstreamFailure
from broker.oidc import content_coding
from broker.oidc.rp_http import (
    DISCOVERY_DOCUMENT,
    MAX_RESPONSE_BYTES,
    TOO_LARGE,
    SchoolSession,
    get_json,
)

DOCUMENT = {"issuer": "https://login.school.example", "keys": ["k" * 40] * 50}
TEXT = json.dumps(DOCUMENT).encode()
# 64 MiB of spaces: about 64 KiB of gzip, 256 times the cap once inflated.
BOMB = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=9)
_raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
# path -> (Content-Encoding, body)
BODIES = {
    "/gzip": ("gzip", gzip.compress(TEXT)),
    "/x-gzip": ("X-Gzip", gzip.compress(TEXT)),
    "/deflate": ("deflate", zlib.compress(TEXT)),
    "/raw-deflate": ("deflate", _raw_deflate.compress(TEXT) + _raw_deflate.flush()),
    "/members": ("gzip", gzip.compress(TEXT[:100]) + gzip.compress(TEXT[100:])),
    "/trailing": ("gzip", gzip.compress(TEXT) + b"\0\0garbage"),
    "/identity": ("identity", TEXT),
    "/bomb": ("gzip", BOMB),
    "/cap": ("gzip", gzip.compress(b" " * MAX_RESPONSE_BYTES)),
    "/cap-and-one": ("gzip", gzip.compress(b" " * (MAX_RESPONSE_BYTES + 1))),
    "/plain-too-large": ("", b" " * (MAX_RESPONSE_BYTES + 1)),
    "/corrupt": ("gzip", gzip.compress(TEXT)[:10] + b"not deflate at all" * 10),
    "/brotli": ("br", TEXT),
    "/two-codings": ("gzip, gzip", gzip.compress(gzip.compress(TEXT))),
    "/superscript-length": ("", TEXT),
    "/long-length": ("", TEXT),
}
# A Content-Length that is no ASCII number: "²" is a digit to str.isdigit and a ValueError to
# int(); 5000 digits are more than int() takes. Sent with the connection closing after the body.
ODD_LENGTHS = {"/superscript-length": "\u00b2", "/long-length": "9" * 5000}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        coding, body = BODIES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if coding:
            self.send_header("Content-Encoding", coding)
        if self.path == "/plain-too-large":
            self.send_header("Connection", "close")  # no Content-Length: read to the end
        elif self.path in ODD_LENGTHS:
            self.send_header("Content-Length", ODD_LENGTHS[self.path])
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the broker stopped reading: that is the point

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection the broker closed early (a refused answer): expected


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _Recording:
    """A zlib decompressor that notes the size of everything it hands out."""

    def __init__(self, inner: Any, sizes: list[int]) -> None:
        self._inner, self._sizes = inner, sizes

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out: bytes = self._inner.decompress(data, max_length)
        self._sizes.append(len(out))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)  # unconsumed_tail, unused_data, eof


@pytest.fixture
def inflated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of every piece the broker's decompressors made during the test."""
    sizes: list[int] = []
    made = zlib.decompressobj
    monkeypatch.setattr(
        content_coding, "decompressobj", lambda wbits: _Recording(made(wbits), sizes)
    )
    return sizes


def _session() -> SchoolSession:
    return SchoolSession(5.0, allow_loopback=True)


@pytest.mark.parametrize(
    "path", ["/gzip", "/x-gzip", "/deflate", "/raw-deflate", "/members", "/trailing", "/identity"]
)
def test_an_encoded_answer_is_read_as_before(server: str, path: str) -> None:
    assert get_json(_session(), server + path, DISCOVERY_DOCUMENT) == DOCUMENT


def test_a_gzip_bomb_is_refused_without_being_inflated(server: str, inflated: list[int]) -> None:
    assert len(BOMB) < MAX_RESPONSE_BYTES  # the bytes received are well within the cap
    with pytest.raises(UpstreamFailure) as bomb:
        _session().request("GET", server + "/bomb")
    with pytest.raises(UpstreamFailure) as plain:
        _session().request("GET", server + "/plain-too-large")
    # The same refusal as a plain answer over the cap.
    assert bomb.value.code == plain.value.code == "response_too_large"
    assert str(bomb.value) == str(plain.value) == TOO_LARGE
    # Never more than the cap and the one byte that shows it passed, of 64 MiB.
    assert sum(inflated) == MAX_RESPONSE_BYTES + 1
    assert max(inflated) <= MAX_RESPONSE_BYTES + 1


def test_the_cap_holds_for_the_decoded_size_to_the_byte(server: str, inflated: list[int]) -> None:
    answer = _session().request("GET", server + "/cap")
    assert answer.content == b" " * MAX_RESPONSE_BYTES
    with pytest.raises(UpstreamFailure) as refused:
        _session().request("GET", server + "/cap-and-one")
    assert refused.value.code == "response_too_large"


@pytest.mark.parametrize("path", ["/corrupt", "/brotli", "/two-codings"])
def test_a_body_not_readable_in_its_coding_is_the_providers_failure(server: str, path: str) -> None:
    with pytest.raises(UpstreamFailure) as refused:
        _session().request("GET", server + path)
    assert refused.value.code == "school_unreachable"
    assert "DecodeError" in str(refused.value)


def test_federation_metadata_is_never_decoded(server: str) -> None:
    """The metadata fetch (http.client) asks for no coding and decodes none: a gzip body stays
    the bytes received, capped as sent, and is then refused as not XML (metadata_check.py)."""
    from broker.saml.metadata_check import MAX_METADATA_BYTES
    from broker.saml.metadata_fetch import fetch_bytes

    body = fetch_bytes(server + "/bomb", allow_loopback=True, max_bytes=MAX_METADATA_BYTES)
    assert body == BOMB


@pytest.mark.parametrize("path", sorted(ODD_LENGTHS))
def test_a_content_length_that_is_no_ascii_number_is_not_believed(server: str, path: str) -> None:
    """Read to the end within the cap, as without one (a ValueError, a 500 at the login's
    callback, before review-oidc-2)."""
    assert get_json(_session(), server + path, DISCOVERY_DOCUMENT) == DOCUMENT
