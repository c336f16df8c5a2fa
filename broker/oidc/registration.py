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


def registration_problems(
    redirect_uris: tuple[str, ...],
    auth_method: ClientAuthMethod,
    jwks_uri: str | None,
    id_token_alg: str,
) -> list[tuple[str, str]]:
    """Everything wrong with a registration, as (field, problem): `redirect_uris`, `jwks_uri`,
    `id_token_alg`. The portal shows each next to its field; the CLI and import list them."""
    problems = [
        ("redirect_uris", f"redirect URI {uri!r} {problem}")
        for uri in redirect_uris
        if (problem := redirect_uri_problem(uri)) is not None
    ]
    if not redirect_uris:
        problems.append(("redirect_uris", "at least one redirect URI is needed"))
    if len(set(redirect_uris)) != len(redirect_uris):
        problems.append(("redirect_uris", "a redirect URI is listed twice"))
    if id_token_alg not in ID_TOKEN_ALGORITHMS:
        problems.append(
            ("id_token_alg", f"ID token algorithm must be one of {', '.join(ID_TOKEN_ALGORITHMS)}")
        )
    if auth_method is ClientAuthMethod.PRIVATE_KEY_JWT:
        if not jwks_uri or not is_acceptable_endpoint(jwks_uri):
            problems.append(
                ("jwks_uri", "private_key_jwt needs a JWKS URL (https; http only on loopback)")
            )
    elif jwks_uri:
        problems.append(("jwks_uri", "a JWKS URL is only used with private_key_jwt"))
    return problems


def new_secret(auth_method: ClientAuthMethod) -> tuple[str | None, str | None]:
    """(secret, its SHA-256) for the secret methods; (None, None) for the others."""
    if auth_method not in (ClientAuthMethod.SECRET_BASIC, ClientAuthMethod.SECRET_POST):
        return None, None
    secret = secrets.token_urlsafe(32)
    return secret, sha256(secret.encode()).hexdigest()


def new_client(
    redirect_uris: tuple[str, ...],
    auth_method: ClientAuthMethod,
    *,
    jwks_uri: str | None = None,
    id_token_alg: str = "RS256",  # noqa: S107 - an algorithm name
    refresh_tokens: bool = False,
) -> tuple[OidcClient, str | None]:
    """A checked registration and, for the secret methods, the secret to hand over once."""
    problems = registration_problems(redirect_uris, auth_method, jwks_uri, id_token_alg)
    if problems:
        raise InvalidRegistration("; ".join(problem for _, problem in problems))
    secret, secret_hash = new_secret(auth_method)
    client = OidcClient(
        redirect_uris=redirect_uris,
        auth_method=auth_method,
        secret_hash=secret_hash,
        jwks_uri=jwks_uri,
        id_token_alg=id_token_alg,
        refresh_tokens=refresh_tokens,
    )
    return client, secret
