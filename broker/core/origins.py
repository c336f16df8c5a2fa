"""The origin of a URL (scheme://host[:port]), in the two forms the broker needs.

`written_origin` keeps the host and port as the address spells them: it names a site in a
Content-Security-Policy (`form-action`), whose matching a browser does itself (host case-blind,
an explicit default port equal to none), so the header carries the registered address's own
text. `origin_of_address` is for comparing two addresses in Python, where no browser does
that: lower case, the default port left out. Pure functions on the URL text.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"https": 443, "http": 80}


def written_origin(url: str) -> str | None:
    """scheme://host[:port] of an absolute http(s) `url`, as it spells them; None for anything
    else: a path on the broker itself (which 'self' covers), another scheme, no host, a user
    name or password (no origin has one, and a CSP source with one is void), a host not in
    ASCII (no browser reads it in a CSP, and gunicorn fails a header beyond latin-1; intake
    refuses such endpoints and use refuses one stored before: core/endpoints.py) or a URL that
    does not parse."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc or "@" in parts.netloc:
        return None
    if not parts.netloc.isascii() or "%" in parts.netloc:  # decoded by a browser: as above
        return None
    return f"{parts.scheme}://{parts.netloc}"


def origin_of_address(uri: str) -> str:
    """scheme://host[:port] as a browser compares sites: lower case, the default port left
    out (`https://App.example:443/cb` is `https://app.example`)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a port: never equal to a known origin
        return f"{scheme}://{parts.netloc.lower()}"
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"
