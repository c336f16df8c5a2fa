"""Registering a publisher's OIDC client: checked redirect URIs, a generated secret shown once.

The registry keeps only the secret's SHA-256: a leak of the registry gives no client secrets.
(A hash without salt or stretching is right here: the secret is 256 random bits, not a
password a person chose.)
"""

from __future__ import annotations

import secrets
from hashlib import sha256

from broker.core.endpoints import is_acceptable_endpoint, redirect_uri_problem
from broker.core.errors import BadRequest
from broker.core.model import ClientAuthMethod, OidcClient

ID_TOKEN_ALGORITHMS = ("RS256", "ES256")


class InvalidRegistration(BadRequest):
    code = "invalid_client_registration"
    public_message = "The OpenID Connect client registration is not usable."


def new_client(
    redirect_uris: tuple[str, ...],
    auth_method: ClientAuthMethod,
    *,
    jwks_uri: str | None = None,
    id_token_alg: str = "RS256",  # noqa: S107 - an algorithm name
    refresh_tokens: bool = False,
) -> tuple[OidcClient, str | None]:
    """A checked registration and, for the secret methods, the secret to hand over once."""
    problems = [
        f"redirect URI {uri!r} {problem}"
        for uri in redirect_uris
        if (problem := redirect_uri_problem(uri)) is not None
    ]
    if not redirect_uris:
        problems.append("at least one redirect URI is needed")
    if len(set(redirect_uris)) != len(redirect_uris):
        problems.append("a redirect URI is listed twice")
    if id_token_alg not in ID_TOKEN_ALGORITHMS:
        problems.append(f"ID token algorithm must be one of {', '.join(ID_TOKEN_ALGORITHMS)}")
    if auth_method is ClientAuthMethod.PRIVATE_KEY_JWT:
        if not jwks_uri or not is_acceptable_endpoint(jwks_uri):
            problems.append("private_key_jwt needs a JWKS URL (https; http only on loopback)")
    elif jwks_uri:
        problems.append("a JWKS URL is only used with private_key_jwt")
    if problems:
        raise InvalidRegistration("; ".join(problems))
    secret = None
    if auth_method in (ClientAuthMethod.SECRET_BASIC, ClientAuthMethod.SECRET_POST):
        secret = secrets.token_urlsafe(32)
    client = OidcClient(
        redirect_uris=redirect_uris,
        auth_method=auth_method,
        secret_hash=sha256(secret.encode()).hexdigest() if secret else None,
        jwks_uri=jwks_uri,
        id_token_alg=id_token_alg,
        refresh_tokens=refresh_tokens,
    )
    return client, secret
