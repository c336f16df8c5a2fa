"""Which URLs the broker talks to or sends browsers to (security.md): https everywhere, plain
http only to loopback, which demos and tests use. Pure checks on the URL text."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum
from urllib.parse import unquote, urlsplit, urlunsplit

import idna

MAX_REDIRECT_URI = 1024


def is_acceptable_endpoint(url: str) -> bool:
    """https anywhere; plain http only to a loopback *address* or the name `localhost`
    (`http://127.evil.example` is a public name that merely starts with 127).

    The URL must also mean the same host to a browser (WHATWG URL) as to Python's `urlsplit`,
    which judges it here: a browser reads `\\` as `/`, so `http://evil.example\\@localhost/`
    is `localhost` to `urlsplit` and `evil.example` to the browser that follows it; browsers
    also drop tabs and newlines anywhere. So no backslash, no white space or control character,
    and no user name or password (an endpoint never needs one) anywhere in it. Its host is
    ASCII, and not percent-encoded (a browser decodes it first, WHATWG URL: `b%C3%BCcher` is
    `bücher`; `ascii_host_form`)."""
    if "\\" in url or any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return False
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # an unbalanced IPv6 bracket
        return False
    if "@" in parts.netloc or not host.isascii() or "%" in host:
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


# An endpoint's host is written in ASCII: an internationalised name (`https://bücher.example`)
# only in its IDNA form (`https://xn--bcher-kva.example`), which intake names in its refusal.
# Refused rather than converted at intake: (1) a browser sends and shows the xn-- form (Origin,
# Referer, the address bar), and a CSP source or a response header cannot carry the Unicode one
# (browsers ignore a non-ASCII `form-action` source, so the answer's auto-POST would be
# blocked; gunicorn answers 500 for a header beyond latin-1); (2) an OIDC redirect URI and a
# SAML ACS URL are compared as exact strings (RFC 6749 3.1.2, the OAuth 2.0 Security BCP):
# storing a converted form would make the client's own, Unicode, redirect_uri no longer match,
# unless the broker converted what clients send too, which is not an exact comparison. With
# the ASCII form registered, the client sends that form, and every comparison stays exact.
# `is_acceptable_endpoint` holds the same rule at use, for an endpoint stored before it.


def ascii_host_form(url: str) -> str | None:
    """`url` with its host in its IDNA form (UTS #46, non-transitional, as browsers convert:
    `https://Bücher.example:8443/cb` → `https://xn--bcher-kva.example:8443/cb`); the rest is
    kept as written. None when the host is not a valid internationalised domain name (`☃.net`)
    or the URL does not parse."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    before, at, hostport = parts.netloc.rpartition("@")
    host, colon, port = hostport.partition(":")
    try:
        # A percent-encoded host is decoded first, as a browser decodes it (WHATWG URL).
        written = idna.encode(unquote(host), uts46=True).decode("ascii")
    except idna.IDNAError:
        return None
    return urlunsplit(parts._replace(netloc=f"{before}{at}{written}{colon}{port}"))


class Refusal(Enum):
    """Why an endpoint URL is refused at intake: the kind each intake translates into its own
    words (`UrlRefusal.words` is the English the CLI, the registry import and the log read)."""

    LENGTH = "length"
    SPACES = "spaces"
    NOT_A_URL = "not_a_url"
    FRAGMENT = "fragment"
    WILDCARD = "wildcard"
    CREDENTIALS = "credentials"
    NON_ASCII_HOST = "non_ascii_host"
    NOT_A_DOMAIN_NAME = "not_a_domain_name"
    NOT_HTTPS = "not_https"


@dataclass(frozen=True, slots=True)
class UrlRefusal:
    """A refused endpoint URL: the kind, and for `NON_ASCII_HOST` the URL with its host in its
    xn-- form (`ascii_host_form`), which every intake names as the one to register instead."""

    kind: Refusal
    ascii_form: str | None = None

    @property
    def words(self) -> str:
        if self.kind is Refusal.NON_ASCII_HOST:
            return f"must write its host in ASCII (its xn-- form): use {self.ascii_form}"
        return _WORDS[self.kind]


_WORDS = {
    Refusal.LENGTH: f"must be 1-{MAX_REDIRECT_URI} characters",
    Refusal.SPACES: "must not contain spaces",
    Refusal.NOT_A_URL: "is not a URL",
    Refusal.FRAGMENT: "must not have a fragment (#…)",
    Refusal.WILDCARD: "must not contain wildcards",
    Refusal.CREDENTIALS: "must not carry a user name or password",
    Refusal.NOT_A_DOMAIN_NAME: "has a host that is not a valid internationalised domain name",
    Refusal.NOT_HTTPS: "must be https (plain http only to a loopback address or localhost)",
}


def host_refusal(url: str) -> UrlRefusal | None:
    """Why `url`'s host cannot be registered as written (`NON_ASCII_HOST`, naming the xn-- form
    to register instead, or `NOT_A_DOMAIN_NAME`); None when the host is ASCII (or the URL has
    none: other checks judge that)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return None
    if host.isascii() and "%" not in host:
        return None
    written = ascii_host_form(url)
    if written is None:
        return UrlRefusal(Refusal.NOT_A_DOMAIN_NAME)
    return UrlRefusal(Refusal.NON_ASCII_HOST, written)


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


def redirect_uri_refusal(uri: str) -> UrlRefusal | None:
    """Why `uri` cannot be a registered OIDC redirect URI (or any endpoint registered by the
    same rule), or None when it can.

    Redirect URIs are compared exactly (never by prefix), so a pattern could never match anyway;
    refusing wildcards says so at registration instead of at the first login.
    """
    if not uri or len(uri) > MAX_REDIRECT_URI:
        return UrlRefusal(Refusal.LENGTH)
    if any(ch.isspace() for ch in uri):
        return UrlRefusal(Refusal.SPACES)
    try:
        parts = urlsplit(uri)
    except ValueError:
        return UrlRefusal(Refusal.NOT_A_URL)
    if parts.fragment or "#" in uri:
        return UrlRefusal(Refusal.FRAGMENT)
    if "*" in uri:
        return UrlRefusal(Refusal.WILDCARD)
    if parts.username or parts.password:
        return UrlRefusal(Refusal.CREDENTIALS)
    if (refused := host_refusal(uri)) is not None:
        return refused
    if not is_acceptable_endpoint(uri):
        return UrlRefusal(Refusal.NOT_HTTPS)
    return None


def redirect_uri_problem(uri: str) -> str | None:
    """`redirect_uri_refusal` in English words (the CLI's, the registry import's, the log's)."""
    refused = redirect_uri_refusal(uri)
    return None if refused is None else refused.words


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
