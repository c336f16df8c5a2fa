"""Fetching SAML metadata from a URL an administrator typed: https (plain http only on loopback),
no redirects, a timeout and a size cap. The caller checks the XML with `metadata_check`."""

from __future__ import annotations

import urllib.error
import urllib.request

from broker.core.endpoints import is_acceptable_endpoint
from broker.saml.metadata_check import MAX_METADATA_BYTES, MetadataInvalid

FETCH_TIMEOUT_SECONDS = 10


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The URL checked must be the URL fetched: metadata carries the keys the broker will trust.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def fetch_metadata(url: str) -> str:
    if not is_acceptable_endpoint(url):
        raise MetadataInvalid("metadata URLs must be https (plain http only on loopback)")
    try:
        with _OPENER.open(url, timeout=FETCH_TIMEOUT_SECONDS) as response:
            body: bytes = response.read(MAX_METADATA_BYTES + 1)
    except urllib.error.HTTPError as err:
        err.close()
        raise MetadataInvalid(f"cannot fetch the metadata: HTTP {err.code}") from None
    except OSError as err:
        raise MetadataInvalid(f"cannot fetch the metadata: {type(err).__name__}") from None
    if len(body) > MAX_METADATA_BYTES:
        raise MetadataInvalid("metadata is larger than 1 MiB")
    return body.decode("utf-8", errors="replace")
