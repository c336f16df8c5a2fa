"""Reading a metadata file or URL for the CLI: loopback-or-https only, time- and size-capped."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import click

from broker.core.endpoints import is_acceptable_endpoint
from broker.saml.metadata_check import MAX_METADATA_BYTES

FETCH_TIMEOUT_SECONDS = 10


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Metadata carries the keys the broker will trust: a redirect (https to plain http, or
    anywhere else) is refused rather than followed, so the URL checked is the URL fetched."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def read_source(value: str) -> str:
    if value.startswith(("http://", "https://")):
        if not is_acceptable_endpoint(value):
            raise click.BadParameter("metadata URLs must be https (plain http only on loopback)")
        try:
            with _OPENER.open(value, timeout=FETCH_TIMEOUT_SECONDS) as response:
                body: bytes = response.read(MAX_METADATA_BYTES + 1)
        except urllib.error.HTTPError as err:
            err.close()  # it holds the open connection
            raise click.BadParameter(f"cannot fetch {value}: HTTP {err.code}") from None
        except OSError as err:
            raise click.BadParameter(f"cannot fetch {value}: {err}") from None
        if len(body) > MAX_METADATA_BYTES:
            raise click.BadParameter(f"{value} returned more than {MAX_METADATA_BYTES} bytes")
        return body.decode("utf-8", errors="replace")
    path = Path(value)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as err:
        raise click.BadParameter(f"cannot read {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text") from None
