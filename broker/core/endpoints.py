"""Which URLs the broker talks to or sends browsers to (security.md): https everywhere, plain
http only to loopback, which demos and tests use. Pure checks on the URL text."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

MAX_REDIRECT_URI = 1024


def is_acceptable_endpoint(url: str) -> bool:
    """https anywhere; plain http only to a loopback *address* or the name `localhost`
    (`http://127.evil.example` is a public name that merely starts with 127).

    The URL must also mean the same host to a browser (WHATWG URL) as to Python's `urlsplit`,
    which judges it here: a browser reads `\\` as `/`, so `http://evil.example\\@localhost/`
    is `localhost` to `urlsplit` and `evil.example` to the browser that follows it; browsers
    also drop tabs and newlines anywhere. So no backslash, no white space or control character,
    and no user name or password (an endpoint never needs one) anywhere in it."""
    if "\\" in url or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # an unbalanced IPv6 bracket
        return False
    if "@" in parts.netloc:
        return False
    if parts.scheme == "https" and host:
        return True
    if parts.scheme != "http":
        return False
    return is_loopback_host(host)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


NAT64 = ipaddress.ip_network("64:ff9b::/96")


def acceptable_destination(host: str, addresses: list[str], *, allow_loopback: bool) -> bool:
    """Where the broker may connect, given what `host` resolved to: public addresses only
    (no 10/8, 192.168/16, 169.254/16 cloud metadata, fc00::/7, NAT64 …). Loopback only where
    `allow_loopback`: a broker that itself runs on loopback (the demo, the tests). Keeps an
    administrator's issuer or metadata URL from turning the broker into a scanner of its own
    host and network."""
    if not addresses:
        return False
    if is_loopback_host(host):
        return allow_loopback and all(ipaddress.ip_address(a).is_loopback for a in addresses)
    parsed = [ipaddress.ip_address(a) for a in addresses]
    return all(a.is_global and a not in NAT64 for a in parsed)


def redirect_uri_problem(uri: str) -> str | None:
    """Why `uri` cannot be a registered OIDC redirect URI, or None when it can.

    Redirect URIs are compared exactly (never by prefix), so a pattern could never match anyway;
    refusing wildcards says so at registration instead of at the first login.
    """
    if not uri or len(uri) > MAX_REDIRECT_URI:
        return f"must be 1-{MAX_REDIRECT_URI} characters"
    if any(ch.isspace() for ch in uri):
        return "must not contain spaces"
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "is not a URL"
    if parts.fragment or "#" in uri:
        return "must not have a fragment (#…)"
    if "*" in uri:
        return "must not contain wildcards"
    if parts.username or parts.password:
        return "must not carry a user name or password"
    if not is_acceptable_endpoint(uri):
        return "must be https (plain http only to a loopback address or localhost)"
    return None


MAX_PRIVACY_CONTACT = 1024


def privacy_contact_link(value: str) -> str:
    """What a school typed as its privacy contact, as the link students follow: a bare e-mail
    address (`privacy@school.nl`, what a privacy officer types) becomes a `mailto:` link;
    anything else is kept as typed for `privacy_contact_problem` to judge."""
    text = value.strip()
    if "@" in text and ":" not in text and "/" not in text:
        return f"mailto:{text}"
    return text


def privacy_contact_problem(value: str) -> str | None:
    """Why `value` cannot be a school's privacy contact (shown to students as a link)."""
    if len(value) > MAX_PRIVACY_CONTACT:
        return "the privacy contact is too long"
    if value.startswith("mailto:"):
        address = value.removeprefix("mailto:")
        if address.count("@") == 1 and all(address.split("@")) and not _unsafe(address):
            return None
        return "a mailto: contact needs one e-mail address"
    if is_acceptable_endpoint(value) and not _unsafe(value):
        return None
    return "the privacy contact must be an https:// web page or a mailto: address"


def _unsafe(text: str) -> bool:
    return any(c.isspace() or c in "<>\"'" for c in text)
