"""`school add --oidc-issuer`: a school whose identity provider speaks OpenID Connect.

Everything is checked before anything is written: the subject claim, the secret file, the hosted
domain (required for Google's shared issuer, core/hosted_domain.py), and the provider itself
(discovery document, algorithms, key set), fetched under the same outbound rules as at login
(broker/oidc/rp_http.py).
"""

from __future__ import annotations

from pathlib import Path

import click

from broker.core.hosted_domain import checked_hosted_domain
from broker.core.model import OidcUpstream, Protocol, School
from broker.core.subjects import subject_problem
from broker.oidc.rp_discovery import ProviderDirectory, check_school_provider
from broker.oidc.rp_http import SchoolSession

MAX_SECRET_BYTES = 4096


def _subject(subject: str) -> str:
    if subject == "name_id":
        return "sub"  # the SAML default, meaning "the provider's own identifier"
    problem = subject_problem(subject, Protocol.OIDC)
    if problem is not None:
        suffix = " (or --eck-id)" if "cannot identify" in problem else ""
        raise click.BadParameter(problem + suffix, param_hint="--subject")
    return subject


class SecretFileInvalid(ValueError):
    """A client secret file that cannot be used; the message says why (never the content)."""


def read_secret(path: Path) -> str:
    """The one-line secret in `path` (surrounding whitespace removed)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SecretFileInvalid(f"cannot read {path}: {err.strerror}") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretFileInvalid("file too large for a secret")
    try:
        secret = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileInvalid("not UTF-8 text") from None
    if not secret or "\n" in secret:
        raise SecretFileInvalid("must hold the secret on one line")
    return secret


def _secret(path: Path) -> str:
    try:
        return read_secret(path)
    except SecretFileInvalid as err:
        raise click.BadParameter(str(err), param_hint="--client-secret-file") from None


def hosted_domain(issuer: str, value: str) -> str:
    """`--hosted-domain` as stored ("" for none), or a clear refusal before anything is written:
    a domain that is not one, or none for a shared issuer such as Google's."""
    domain, problem = checked_hosted_domain(issuer, value)
    if problem:
        raise click.BadParameter(problem, param_hint="--hosted-domain")
    return domain


def oidc_school(
    school_id: str,
    name: str,
    *,
    issuer: str,
    client_id: str,
    secret_file: Path,
    subject: str,
    algorithms: tuple[str, ...],
    eck_id: bool,
    scopes: tuple[str, ...],
    domain: str,
    timeout: float,
    allow_loopback: bool,
) -> School:
    """The school to register, after every check (raises before anything is written)."""
    if not client_id.strip():
        raise click.BadParameter("must not be empty", param_hint="--client-id")
    domain = hosted_domain(issuer, domain)
    upstream = OidcUpstream(issuer, client_id, _secret(secret_file), algorithms, domain)
    claim = _subject(subject)
    directory = ProviderDirectory(lambda: SchoolSession(timeout, allow_loopback=allow_loopback))
    check_school_provider(directory, issuer, algorithms)
    # The issuer is the school's idp_entity_id: one lookup finds a school in either protocol.
    return School(school_id, name, issuer, claim, eck_id, scopes, oidc=upstream)
