"""`school add --oidc-issuer`: a school whose identity provider speaks OpenID Connect.

Everything is checked before anything is written: the subject claim, the secret file, and the
provider itself (discovery document, algorithms, key set), fetched under the same outbound rules
as at login (broker/oidc/rp_http.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from broker.core.catalogue import CATALOGUE
from broker.core.model import OidcUpstream, School
from broker.oidc.rp_discovery import ProviderDirectory, check_school_provider
from broker.oidc.rp_http import SchoolSession

# A claim name the school's provider uses for a stable per-student identifier (`sub`, Entra ID's
# `oid`, …). Catalogue attributes other than these two are the same for many students.
IDENTIFYING_ATTRIBUTES = ("username", "student_number")
_CLAIM_NAME = re.compile(r"\A[A-Za-z][A-Za-z0-9_.:-]{0,63}\Z")
MAX_SECRET_BYTES = 4096


def _subject(subject: str) -> str:
    if subject == "name_id":
        return "sub"  # the SAML default, meaning "the provider's own identifier"
    if subject in CATALOGUE and subject not in IDENTIFYING_ATTRIBUTES:
        raise click.BadParameter(
            f"{subject!r} cannot identify a student; use sub, a provider claim such as oid, "
            f"or one of {', '.join(IDENTIFYING_ATTRIBUTES)} (or --eck-id)",
            param_hint="--subject",
        )
    if not _CLAIM_NAME.match(subject):
        raise click.BadParameter(f"{subject!r} is not a claim name", param_hint="--subject")
    return subject


def _secret(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise click.BadParameter(
            f"cannot read {path}: {err.strerror}", param_hint="--client-secret-file"
        ) from None
    if len(raw) > MAX_SECRET_BYTES:
        raise click.BadParameter("file too large for a secret", param_hint="--client-secret-file")
    try:
        secret = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise click.BadParameter("not UTF-8 text", param_hint="--client-secret-file") from None
    if not secret or "\n" in secret:
        raise click.BadParameter(
            "must hold the secret on one line", param_hint="--client-secret-file"
        )
    return secret


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
    timeout: float,
) -> School:
    """The school to register, after every check (raises before anything is written)."""
    if not client_id.strip():
        raise click.BadParameter("must not be empty", param_hint="--client-id")
    upstream = OidcUpstream(issuer, client_id, _secret(secret_file), algorithms)
    claim = _subject(subject)
    directory = ProviderDirectory(lambda: SchoolSession(timeout))
    check_school_provider(directory, issuer, algorithms)
    # The issuer is the school's idp_entity_id: one lookup finds a school in either protocol.
    return School(school_id, name, issuer, claim, eck_id, scopes, oidc=upstream)
