"""OpenID Connect towards publishers, end to end: the demo's authlib relying party logs in
through the broker (SAML towards the school), and every token is checked here again with an
independent JOSE library (PyJWT), against the keys the broker publishes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests

from broker.core.model import Declaration
from tests.support.client import Browser
from tests.support.live import LiveDemo, OidcPublisher

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def leesboek(demo: LiveDemo) -> Iterator[OidcPublisher]:
    """An OIDC publisher in the leermiddelen chain; the school releases given_name only."""
    yield demo.add_oidc_publisher(
        "leesboek",
        "leermiddelen",
        (
            Declaration("given_name", "To greet the student by name."),
            Declaration("groups", "To show the class's assignments."),
            Declaration("email", "To send a receipt."),
        ),
        released=frozenset({"given_name", "groups"}),
        scope="openid profile email groups",
    )


def discovery(demo: LiveDemo) -> dict[str, Any]:
    response = requests.get(f"{demo.broker_url}/.well-known/openid-configuration", timeout=5)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def verified_id_token(demo: LiveDemo, token: str, audience: str) -> dict[str, Any]:
    """The ID token checked by PyJWT with the key the broker's JWKS publishes under its kid."""
    keys = jwt.PyJWKClient(discovery(demo)["jwks_uri"])
    key = keys.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["RS256", "ES256"],
        audience=audience,
        issuer=demo.broker_url,
        options={"require": ["exp", "iat", "sub", "aud", "iss"]},
    )
    return claims


def test_oidc_publisher_gets_the_chain_pseudonym_and_only_released_claims(
    demo: LiveDemo, leesboek: OidcPublisher
) -> None:
    browser = Browser()
    login = demo.login(browser, "leesboek", "sanne.jansen")
    assert login.final.status == 200, login.final.text
    assert login.final.url.startswith(leesboek.redirect_uri)
    assert login.went_to(f"{demo.broker_url}/oidc/authorize")
    assert login.went_to(f"{demo.school_url}/sso")

    received = demo.received(browser, "leesboek")
    expected = demo.expected_pseudonym("sanne.jansen", "leermiddelen")
    assert HEX64.match(expected)
    assert received["sub"] == expected
    assert received["userinfo"] == {"sub": expected, "given_name": "Sanne", "groups": ["klas-3a"]}
    token = received["id_token"]
    assert token["iss"] == demo.broker_url
    assert token["aud"] == ["leesboek"]
    assert token["given_name"] == "Sanne"
    assert "email" not in token and "family_name" not in token


def test_a_publisher_that_does_not_ask_for_a_scope_does_not_get_its_claims(
    demo: LiveDemo,
) -> None:
    demo.add_oidc_publisher(
        "leesboek-smal",
        "leermiddelen",
        (Declaration("groups", "To show the class's assignments."),),
        released=frozenset({"groups"}),
        scope="openid",
    )
    browser = Browser()
    demo.login(browser, "leesboek-smal", "sanne.jansen")
    received = demo.received(browser, "leesboek-smal")
    # Released by the school, but not asked for by this login: the pseudonym alone.
    assert set(received["userinfo"]) == {"sub"}


def test_same_pseudonym_in_saml_name_id_and_oidc_sub_within_a_chain(
    demo: LiveDemo, leesboek: OidcPublisher
) -> None:
    browser = Browser()
    demo.login(browser, "leesplank", "daan.devries")
    saml = demo.received(browser, "leesplank")
    # The SSO session answers the OIDC publisher without a second school login.
    login = demo.login(browser, "leesboek", "daan.devries")
    assert not login.went_to(f"{demo.school_url}/sso")
    oidc = demo.received(browser, "leesboek")
    assert oidc["sub"] == saml["name_id"]["value"]
    assert oidc["sub"] == demo.expected_pseudonym("daan.devries", "leermiddelen")
    # Same SSO session, yet a session identifier of its own at each service: SessionIndex and
    # sid are nothing two services could compare (each logout names its own).
    assert oidc["session_index"] and oidc["session_index"] != saml["session_index"]
    # Another chain, another pseudonym.
    demo.login(browser, "toetsplein", "daan.devries")
    assert demo.received(browser, "toetsplein")["name_id"]["value"] != oidc["sub"]


def test_discovery_document_is_consistent(demo: LiveDemo) -> None:
    document = discovery(demo)
    issuer = demo.broker_url
    assert document["issuer"] == issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert document[endpoint].startswith(issuer + "/"), endpoint
        assert requests.options(document[endpoint], timeout=5).status_code < 500
    assert document["response_types_supported"] == ["code"]
    assert document["subject_types_supported"] == ["pairwise"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["id_token_signing_alg_values_supported"]) == {"RS256", "ES256"}
    assert "none" not in document["id_token_signing_alg_values_supported"]
    assert {"openid", "profile", "email", "school", "groups"} <= set(document["scopes_supported"])
    assert {"sub", "given_name", "eck_id", "school_id"} <= set(document["claims_supported"])
    assert document["authorization_response_iss_parameter_supported"] is True
    keys = requests.get(document["jwks_uri"], timeout=5).json()["keys"]
    assert {key["kty"] for key in keys} == {"RSA", "EC"}
    for key in keys:
        assert key["kid"] and key["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "private key material published"
        jwt.PyJWK(key)  # every published key loads in an independent JOSE library
