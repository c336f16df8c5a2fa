"""Registering a publisher's OIDC client: checked redirect URIs, a generated secret shown once.

The registry keeps only the secret's SHA-256: a leak of the registry gives no client secrets.
(A hash without salt or stretching is right here: the secret is 256 random bits, not a
password a person chose.)
"""

from __future__ import annotations

import hmac
import secrets
from hashlib import sha256

from broker.core.endpoints import (
    host_refusal,
    is_acceptable_endpoint,
    redirect_uri_problem,
)
from broker.core.errors import BadRequest
from broker.core.model import ClientAuthMethod, OidcClient

ID_TOKEN_ALGORITHMS = ("RS256", "ES256")
MAX_POST_LOGOUT_URIS = 20


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
    if jwks_uri and (refused := host_refusal(jwks_uri)) is not None:
        problems.append(("jwks_uri", f"JWKS URL {jwks_uri!r} {refused.words}"))
    elif auth_method is ClientAuthMethod.PRIVATE_KEY_JWT:
        if not jwks_uri or not is_acceptable_endpoint(jwks_uri):
            problems.append(
                ("jwks_uri", "private_key_jwt needs a JWKS URL (https; http only on loopback)")
            )
    elif jwks_uri:
        problems.append(("jwks_uri", "a JWKS URL is only used with private_key_jwt"))
    return problems


def logout_problems(
    post_logout_redirect_uris: tuple[str, ...], backchannel_logout_uri: str | None
) -> list[tuple[str, str]]:
    """Everything wrong with a client's logout registration, as (field, problem):
    `post_logout_redirect_uris` (compared exactly, like redirect URIs: RP-Initiated Logout 1.0
    section 3) and `backchannel_logout_uri` (Back-Channel Logout 1.0 section 2.2: no fragment;
    the broker POSTs to it). Both follow the redirect URI rule: https, plain http only to a
    loopback address (which the broker calls only when it runs on loopback itself)."""
    problems = [
        ("post_logout_redirect_uris", f"post-logout redirect URI {uri!r} {problem}")
        for uri in post_logout_redirect_uris
        if (problem := redirect_uri_problem(uri)) is not None
    ]
    if len(set(post_logout_redirect_uris)) != len(post_logout_redirect_uris):
        problems.append(("post_logout_redirect_uris", "a post-logout redirect URI is listed twice"))
    if len(post_logout_redirect_uris) > MAX_POST_LOGOUT_URIS:
        problems.append(
            ("post_logout_redirect_uris", f"at most {MAX_POST_LOGOUT_URIS} post-logout URIs")
        )
    if backchannel_logout_uri is not None:
        problem = redirect_uri_problem(backchannel_logout_uri)
        if problem is not None:
            problems.append(("backchannel_logout_uri", f"back-channel logout URI {problem}"))
    return problems


def new_secret(auth_method: ClientAuthMethod) -> tuple[str | None, str | None]:
    """(secret, its SHA-256) for the secret methods; (None, None) for the others."""
    if auth_method not in (ClientAuthMethod.SECRET_BASIC, ClientAuthMethod.SECRET_POST):
        return None, None
    secret = secrets.token_urlsafe(32)
    return secret, _secret_hash(secret)


def secret_matches(secret: str, client: OidcClient) -> bool:
    """Whether `secret` is the client's (compared in constant time)."""
    expected = client.secret_hash
    return expected is not None and hmac.compare_digest(_secret_hash(secret), expected)


def _secret_hash(secret: str) -> str:
    """What the registry keeps of a client secret."""
    return sha256(secret.encode()).hexdigest()


def new_client(
    redirect_uris: tuple[str, ...],
    auth_method: ClientAuthMethod,
    *,
    jwks_uri: str | None = None,
    id_token_alg: str = "RS256",  # noqa: S107 - an algorithm name
    refresh_tokens: bool = False,
    post_logout_redirect_uris: tuple[str, ...] = (),
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = False,
) -> tuple[OidcClient, str | None]:
    """A checked registration and, for the secret methods, the secret to hand over once."""
    problems = registration_problems(redirect_uris, auth_method, jwks_uri, id_token_alg)
    problems += logout_problems(post_logout_redirect_uris, backchannel_logout_uri)
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
        post_logout_redirect_uris=post_logout_redirect_uris,
        backchannel_logout_uri=backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_logout_session_required,
    )
    return client, secret
