"""OIDC entries in the SQL registry, on SQLite and PostgreSQL (fixtures in conftest.py): schools
whose provider speaks OpenID Connect (the broker as client) and services that are OIDC clients."""

from __future__ import annotations

import pytest

from broker.core.model import (
    ClientAuthMethod,
    OidcClient,
    OidcUpstream,
    Protocol,
    School,
    Service,
)
from broker.registry import DuplicateEntry, SqlRegistry

ENTRA = "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"
OIDC_SCHOOL = School(
    id="22CC00",
    name="Entra College",
    idp_entity_id=ENTRA,
    subject_attribute="oid",
    scopes=("entracollege.nl",),
    oidc=OidcUpstream(ENTRA, "ketenbroker-client", "s3cr3t value", ("RS256", "PS256")),
)
DEFAULT_ALGORITHMS = School(
    id="33DD00",
    name="Keycloak Lyceum",
    idp_entity_id="https://sso.keycloak-lyceum.nl/realms/school",
    subject_attribute="sub",
    oidc=OidcUpstream("https://sso.keycloak-lyceum.nl/realms/school", "broker", "x"),
)
CONFIDENTIAL = Service(
    id="lesapp",
    name="Les App",
    entity_id="lesapp",
    chain_id=None,
    protocol=Protocol.OIDC,
    oidc=OidcClient(
        redirect_uris=("https://lesapp.nl/callback", "https://lesapp.nl/callback2"),
        auth_method=ClientAuthMethod.SECRET_BASIC,
        secret_hash="ab" * 32,
        refresh_tokens=True,
    ),
)
PUBLIC_WITH_KEYS = Service(
    id="toetsapp",
    name="Toets App",
    entity_id="toetsapp",
    chain_id=None,
    protocol=Protocol.OIDC,
    oidc=OidcClient(
        redirect_uris=("http://127.0.0.1:9999/cb",),
        auth_method=ClientAuthMethod.PRIVATE_KEY_JWT,
        jwks_uri="https://toetsapp.nl/jwks.json",
        id_token_alg="ES256",
    ),
)


def test_oidc_school_round_trip(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(OIDC_SCHOOL, "")
    sql_registry.add_school(DEFAULT_ALGORITHMS, "")
    assert sql_registry.school("22CC00") == OIDC_SCHOOL
    assert sql_registry.school_by_idp(ENTRA) == OIDC_SCHOOL
    assert sql_registry.school("33DD00") == DEFAULT_ALGORITHMS
    assert sql_registry.schools() == [OIDC_SCHOOL, DEFAULT_ALGORITHMS]
    # No SAML metadata for an OIDC school: the SAML side never sees it.
    assert sql_registry.school_metadata() == {}


def test_the_issuer_is_unique_like_an_idp_entity_id(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(OIDC_SCHOOL, "")
    twin = School("44EE00", "Twin", ENTRA, oidc=OidcUpstream(ENTRA, "other", "y"))
    with pytest.raises(DuplicateEntry):
        sql_registry.add_school(twin, "")
    assert sql_registry.school("44EE00") is None


def test_oidc_service_round_trip(sql_registry: SqlRegistry) -> None:
    sql_registry.add_service(CONFIDENTIAL, None)
    sql_registry.add_service(PUBLIC_WITH_KEYS, None)
    assert sql_registry.service("lesapp") == CONFIDENTIAL
    assert sql_registry.service_by_entity_id("toetsapp") == PUBLIC_WITH_KEYS
    assert sql_registry.services() == [CONFIDENTIAL, PUBLIC_WITH_KEYS]
    assert sql_registry.service_metadata() == {}
