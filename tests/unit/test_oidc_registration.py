"""Registering a publisher's OIDC client: redirect URIs, secrets, algorithms."""

from __future__ import annotations

from hashlib import sha256

import pytest

from broker.core.endpoints import Refusal, redirect_uri_problem, redirect_uri_refusal
from broker.core.model import ClientAuthMethod
from broker.oidc.registration import InvalidRegistration, new_client


@pytest.mark.parametrize(
    "uri",
    [
        "https://platform.example/callback",
        "https://platform.example/cb?tenant=3",
        "http://localhost:8080/cb",
        "http://127.0.0.1/cb",
        "http://[::1]:9000/cb",
    ],
)
def test_acceptable_redirect_uris(uri: str) -> None:
    assert redirect_uri_problem(uri) is None


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("http://platform.example/cb", "https"),
        ("http://127.evil.example/cb", "https"),
        ("https://platform.example/cb#frag", "fragment"),
        ("https://*.platform.example/cb", "wildcard"),
        ("https://platform.example/*", "wildcard"),
        ("https://user:pw@platform.example/cb", "password"),
        ("javascript:alert(1)", "https"),
        ("/relative/cb", "https"),
        ("", "characters"),
        ("https://platform.example/a b", "spaces"),
        ("https://platform.example/" + "a" * 1100, "characters"),
    ],
)
def test_refused_redirect_uris(uri: str, why: str) -> None:
    problem = redirect_uri_problem(uri)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("", Refusal.LENGTH),
        ("https://platform.example/a b", Refusal.SPACES),
        ("https://[::1/cb", Refusal.NOT_A_URL),
        ("https://platform.example/cb#frag", Refusal.FRAGMENT),
        ("https://*.platform.example/cb", Refusal.WILDCARD),
        ("https://user:pw@platform.example/cb", Refusal.CREDENTIALS),
        ("https://☃.net/cb", Refusal.NOT_A_DOMAIN_NAME),
        ("http://platform.example/cb", Refusal.NOT_HTTPS),
    ],
)
def test_each_refusal_names_its_kind(uri: str, kind: Refusal) -> None:
    refused = redirect_uri_refusal(uri)
    assert refused is not None and refused.kind is kind and refused.ascii_form is None
    assert redirect_uri_problem(uri) == refused.words


def test_a_secret_client_gets_a_secret_shown_once_and_stored_as_a_hash() -> None:
    client, secret = new_client(("https://p.example/cb",), ClientAuthMethod.SECRET_BASIC)
    assert secret is not None and len(secret) >= 43
    assert client.secret_hash == sha256(secret.encode()).hexdigest()
    assert secret not in repr(client)


def test_public_and_key_clients_get_no_secret() -> None:
    public, secret = new_client(("https://p.example/cb",), ClientAuthMethod.NONE)
    assert secret is None and public.secret_hash is None and public.is_public
    keyed, secret = new_client(
        ("https://p.example/cb",),
        ClientAuthMethod.PRIVATE_KEY_JWT,
        jwks_uri="https://p.example/jwks",
    )
    assert secret is None and keyed.jwks_uri == "https://p.example/jwks"


@pytest.mark.parametrize(
    ("uris", "method", "options", "message"),
    [
        ((), ClientAuthMethod.SECRET_BASIC, {}, "at least one"),
        (("https://p.example/cb",) * 2, ClientAuthMethod.SECRET_BASIC, {}, "twice"),
        (("https://p.example/cb",), ClientAuthMethod.PRIVATE_KEY_JWT, {}, "JWKS"),
        (
            ("https://p.example/cb",),
            ClientAuthMethod.PRIVATE_KEY_JWT,
            {"jwks_uri": "http://p.example/jwks"},
            "JWKS",
        ),
        (
            ("https://p.example/cb",),
            ClientAuthMethod.SECRET_BASIC,
            {"jwks_uri": "https://p.example/jwks"},
            "only used",
        ),
        (
            ("https://p.example/cb",),
            ClientAuthMethod.SECRET_BASIC,
            {"id_token_alg": "HS256"},
            "RS256",
        ),
        (
            ("https://p.example/cb",),
            ClientAuthMethod.SECRET_BASIC,
            {"id_token_alg": "none"},
            "RS256",
        ),
    ],
)
def test_bad_registrations_say_what_is_wrong(
    uris: tuple[str, ...], method: ClientAuthMethod, options: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidRegistration) as refused:
        new_client(uris, method, **options)  # type: ignore[arg-type]
    assert message in refused.value.detail
