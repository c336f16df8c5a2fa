"""Fetching SAML metadata from a URL an administrator typed: https (plain http only on loopback),
no redirects, a timeout and a size cap. The caller checks the XML with `metadata_check`."""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from broker.core.endpoints import acceptable_destination, is_acceptable_endpoint
from broker.saml.metadata_check import MAX_METADATA_BYTES, MetadataInvalid

FETCH_TIMEOUT_SECONDS = 10


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The URL checked must be the URL fetched: metadata carries the keys the broker will trust.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _read_until(response: Any, deadline: float, max_bytes: int) -> bytes:
    """The body, at most one byte over the cap, within the deadline: the timeout bounds each
    read, so a server sending a byte every few seconds would otherwise hold a worker for hours."""
    collected = bytearray()
    while len(collected) <= max_bytes:
        if time.monotonic() > deadline:
            raise MetadataInvalid("cannot fetch the metadata: the server answered too slowly")
        chunk = response.read1(64 * 1024)
        if not chunk:
            break
        collected.extend(chunk)
    return bytes(collected)


def fetch_metadata(url: str, *, allow_loopback: bool) -> str:
    body = fetch_bytes(url, allow_loopback=allow_loopback, max_bytes=MAX_METADATA_BYTES)
    return body.decode("utf-8", errors="replace")


def fetch_bytes(
    url: str,
    *,
    allow_loopback: bool,
    max_bytes: int,
    timeout: float | None = None,
    total_seconds: float | None = None,
) -> bytes:
    """The body at `url`, refused (MetadataInvalid) when larger than `max_bytes`, slower than
    `total_seconds`, cut short, redirected or not a 200. Defaults: FETCH_TIMEOUT_SECONDS per
    read, twice that in all (read at call time)."""
    timeout = FETCH_TIMEOUT_SECONDS if timeout is None else timeout
    total_seconds = 2 * timeout if total_seconds is None else total_seconds
    if not is_acceptable_endpoint(url):
        raise MetadataInvalid("metadata URLs must be https (plain http only on loopback)")
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname or "", parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise MetadataInvalid("cannot fetch the metadata: host not found") from None
    addresses = [str(i[4][0]) for i in infos]
    if not acceptable_destination(parts.hostname or "", addresses, allow_loopback=allow_loopback):
        # An administrator's URL must not reach the broker's own network.
        raise MetadataInvalid("metadata URLs must point to a public address")
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            if response.status != 200:
                raise MetadataInvalid(f"cannot fetch the metadata: HTTP {response.status}")
            body = _read_until(response, time.monotonic() + total_seconds, max_bytes)
            promised = response.headers.get("Content-Length", "")
            if promised.isdigit() and int(promised) > len(body) and len(body) <= max_bytes:
                # The connection closed early: a truncated file must never pass as complete.
                raise MetadataInvalid("cannot fetch the metadata: the download was cut short")
    except urllib.error.HTTPError as err:
        err.close()
        raise MetadataInvalid(f"cannot fetch the metadata: HTTP {err.code}") from None
    except (OSError, http.client.HTTPException) as err:
        # IncompleteRead (a body shorter than its Content-Length) is an HTTPException.
        raise MetadataInvalid(f"cannot fetch the metadata: {type(err).__name__}") from None
    if len(body) > max_bytes:
        raise MetadataInvalid(f"metadata is larger than {max_bytes / 2**20:g} MiB")
    return body
