"""A school's hosted domain: which of its OpenID provider's accounts are the school's.

Most providers a school signs in with are the school's own (its Entra ID tenant, its Keycloak):
every account their issuer vouches for is the school's. Google is not: `https://accounts.google.com`
is one issuer for every Google account in the world, a school's Workspace and anyone's Gmail
alike. Only the ID token's `hd` claim (the Workspace domain of the account; absent for a personal
account) says the account is the school's. So a school on a shared issuer must name its domain,
and a login from it must carry exactly that `hd`; without the domain, any Google account whose
owner reaches the school's client (an "External" Google OAuth client) would be a student of the
school, with a pseudonym of its own and the school's licences at every publisher.

Pure checks shared by the CLI, the registry file import, the portal and the login (rp_claims.py).
A domain is stored as typed, lower-cased: ASCII only, an internationalised domain in its xn--
form (see `hosted_domain_matches` for why).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from broker.core.errors import N_
from broker.core.model import OidcUpstream

# Issuers whose accounts are not all one organisation's: the provider tells the organisation in
# `hd`. Matched by host, so that a trailing slash or capitals do not slip past the rule.
SHARED_ISSUER_HOSTS = frozenset({"accounts.google.com"})
# Google's consumer domains: their accounts carry no `hd` at all, so as a hosted domain they
# would let nobody in (and say the school means its own Workspace domain).
CONSUMER_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
MAX_DOMAIN = 253  # RFC 1035: a name's text form without the root's dot
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def needs_hosted_domain(issuer: str) -> bool:
    """Whether a school on `issuer` must name its hosted domain (a shared issuer)."""
    try:
        host = urlsplit(issuer.strip()).hostname
    except ValueError:
        return False  # not a URL at all: the issuer's own check says so
    return host in SHARED_ISSUER_HOSTS


def lacks_hosted_domain(upstream: OidcUpstream | None) -> bool:
    """Whether a school's provider is on a shared issuer and names no hosted domain: every login
    of it is refused (rp_claims.py) until it does, and the CLI and the portal say so."""
    return (
        upstream is not None and not upstream.hosted_domain and needs_hosted_domain(upstream.issuer)
    )


def clean_hosted_domain(value: str) -> str:
    """What an administrator typed, as stored: spaces trimmed, ASCII letters lower-cased (a
    domain name's case means nothing, RFC 4343)."""
    text = value.strip()
    return text.lower() if text.isascii() else text


def hosted_domain_problem(domain: str) -> str | None:
    """Why `domain` (as `clean_hosted_domain` left it) cannot be a hosted domain, or None when it
    can; an English sentence marked for translation (the portal shows it translated)."""
    if "@" in domain:
        return N_("give the domain only (school.example), not an e-mail address")
    if "/" in domain or ":" in domain:
        return N_("give the domain only (school.example), not a URL")
    if not domain.isascii():
        return N_("give an internationalised domain in its xn-- form")
    if len(domain) > MAX_DOMAIN:
        return N_("a domain name is at most 253 characters")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return N_("not a domain name such as school.example (letters, digits, hyphens, dots)")
    if labels[-1].isdigit():
        return N_("an IP address is not a domain name")
    if domain in CONSUMER_DOMAINS:
        return N_(
            "personal Google accounts carry no hosted domain: give your school's Google "
            "Workspace domain"
        )
    return None


def provider_domain_problem(issuer: str, domain: str) -> str | None:
    """`hosted_domain_problem`, and a shared issuer without a domain refused: the fail-closed
    rule every way a school is registered or changed goes through."""
    if domain:
        return hosted_domain_problem(domain)
    if needs_hosted_domain(issuer):
        return N_(
            "this issuer signs in every Google account: give the school's Google Workspace "
            "domain as its hosted domain, so that only the school's own accounts sign in"
        )
    return None


def checked_hosted_domain(issuer: str, typed: str) -> tuple[str, str | None]:
    """What an administrator typed as the hosted domain of a school on `issuer`, as stored
    (`clean_hosted_domain`), and why it cannot be (`provider_domain_problem`; None when it
    can): the one check of the CLI, the registry file import and the portal."""
    domain = clean_hosted_domain(typed)
    return domain, provider_domain_problem(issuer, domain)


def hosted_domain_matches(claimed: object, domain: str) -> bool:
    """Whether a provider's `hd` value is `domain`. Case does not count (RFC 4343: DNS names
    compare case-insensitively, and an operator may have typed capitals that Google never sends)
    but only in ASCII: `str.lower` also folds look-alikes such as the Kelvin sign into `k`, so a
    non-ASCII value never matches, whatever it lower-cases to."""
    return isinstance(claimed, str) and claimed.isascii() and claimed.lower() == domain
