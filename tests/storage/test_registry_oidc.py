"""OIDC entries in the SQL registry, on SQLite and PostgreSQL (fixtures in conftest.py): schools
whose provider speaks OpenID Connect (the broker as client) and services that are OIDC clients."""

from __future__ import annotations

from dataclasses import replace

import pytest
from alembic import command
from sqlalchemy import text

from broker.core.client_hosts import addresses_fingerprint
from broker.core.model import (
    ClientAuthMethod,
    OidcClient,
    OidcUpstream,
    Protocol,
    School,
    Service,
)
from broker.registry import SqlRegistry, migrate
from broker.registry.database import open_engine, writer
from broker.registry.errors import ClientChanged
from broker.registry.migration import alembic_config

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
    assert sql_registry.schools_by_idp(ENTRA) == (OIDC_SCHOOL,)
    assert sql_registry.school("33DD00") == DEFAULT_ALGORITHMS
    assert sql_registry.schools() == [OIDC_SCHOOL, DEFAULT_ALGORITHMS]
    # No SAML metadata for an OIDC school: the SAML side never sees it.
    assert sql_registry.school_metadata() == {}


def test_an_issuer_is_shared_like_an_idp_entity_id(sql_registry: SqlRegistry) -> None:
    # A school board's tenant (2026-11-30): a second school on the issuer joins it, and from
    # then on the issuer's logins must name their school (registry/shared_idps.py).
    sql_registry.add_school(OIDC_SCHOOL, "")
    assert not sql_registry.idp_names_school(ENTRA)
    twin = School("44EE00", "Twin", ENTRA, oidc=OidcUpstream(ENTRA, "other", "y"))
    sql_registry.add_school(twin, "")
    assert sql_registry.schools_by_idp(ENTRA) == (OIDC_SCHOOL, twin)
    assert sql_registry.idp_names_school(ENTRA)
    # Never a SAML school on the issuer's URL: test_shared_school_idp.py.


def test_oidc_service_round_trip(sql_registry: SqlRegistry) -> None:
    sql_registry.add_service(CONFIDENTIAL, None)
    sql_registry.add_service(PUBLIC_WITH_KEYS, None)
    assert sql_registry.service("lesapp") == CONFIDENTIAL
    assert sql_registry.service_by_entity_id("toetsapp") == PUBLIC_WITH_KEYS
    assert sql_registry.services() == [CONFIDENTIAL, PUBLIC_WITH_KEYS]
    assert sql_registry.service_metadata() == {}


def test_logout_registration_round_trip_and_update(sql_registry: SqlRegistry) -> None:
    assert CONFIDENTIAL.oidc is not None
    with_logout = replace(
        CONFIDENTIAL,
        oidc=replace(
            CONFIDENTIAL.oidc,
            post_logout_redirect_uris=("https://lesapp.nl/bye", "https://lesapp.nl/tot-ziens"),
            backchannel_logout_uri="https://lesapp.nl/backchannel",
            backchannel_logout_session_required=True,
        ),
    )
    sql_registry.add_service(with_logout, None)
    sql_registry.add_service(PUBLIC_WITH_KEYS, None)
    assert sql_registry.service("lesapp") == with_logout
    # A client registered without logout has none (the defaults of revision 0007).
    stored = sql_registry.service("toetsapp")
    assert stored is not None and stored.oidc is not None
    assert stored.oidc.post_logout_redirect_uris == ()
    assert stored.oidc.backchannel_logout_uri is None
    assert not stored.oidc.backchannel_logout_session_required
    generation = sql_registry.generation()
    changed = replace(stored.oidc, backchannel_logout_uri="https://toetsapp.nl/bcl")
    sql_registry.update_oidc_client("toetsapp", changed)
    assert sql_registry.service("toetsapp") == replace(PUBLIC_WITH_KEYS, oidc=changed)
    assert sql_registry.generation() > generation


def test_an_approval_approves_the_addresses_shown_under_the_lock(
    sql_registry: SqlRegistry,
) -> None:
    """The operator's page gives the fingerprint of the addresses it showed; one changed since
    (a publisher's save) approves nothing. The CLI gives none."""
    assert CONFIDENTIAL.oidc is not None
    sql_registry.add_service(replace(CONFIDENTIAL, approved=False), None)
    shown = addresses_fingerprint(CONFIDENTIAL.oidc)
    moved = replace(CONFIDENTIAL.oidc, redirect_uris=("https://elders.example/cb",))
    sql_registry.update_oidc_client("lesapp", moved)
    generation = sql_registry.generation()
    with pytest.raises(ClientChanged):
        sql_registry.approve_service("lesapp", addresses=shown)
    stored = sql_registry.any_service("lesapp")
    assert stored is not None and not stored.approved
    assert sql_registry.generation() == generation
    sql_registry.approve_service("lesapp", addresses=addresses_fingerprint(moved))
    assert sql_registry.service("lesapp") is not None
    sql_registry.add_service(replace(PUBLIC_WITH_KEYS, approved=False), None)
    sql_registry.approve_service("toetsapp")
    assert sql_registry.service("toetsapp") is not None


def test_a_uri_save_on_a_stale_reading_changes_nothing(sql_registry: SqlRegistry) -> None:
    """The portal's URI save names the client as its page read it: a secret renewed since is
    never put back (the old, maybe leaked, secret would work again), and an approval since is
    refused (the new-host rule was checked for a client in review)."""
    assert CONFIDENTIAL.oidc is not None
    sql_registry.add_service(replace(CONFIDENTIAL, approved=False), None)
    read = CONFIDENTIAL.oidc
    renewed = replace(read, secret_hash="cd" * 32)
    sql_registry.update_oidc_client("lesapp", renewed, seen=read)
    saved = replace(read, redirect_uris=("https://elders.example/cb",))
    with pytest.raises(ClientChanged):
        sql_registry.update_oidc_client("lesapp", saved, seen=read, approved=False)
    stored = sql_registry.any_service("lesapp")
    assert stored is not None and stored.oidc == renewed
    sql_registry.approve_service("lesapp")
    saved = replace(renewed, redirect_uris=("https://elders.example/cb",))
    with pytest.raises(ClientChanged):
        sql_registry.update_oidc_client("lesapp", saved, seen=renewed, approved=False)
    assert sql_registry.service("lesapp") == replace(CONFIDENTIAL, oidc=renewed)
    # Read as it is: saved, the addresses only.
    sql_registry.update_oidc_client("lesapp", saved, seen=renewed, approved=True)
    assert sql_registry.service("lesapp") == replace(CONFIDENTIAL, oidc=saved)


def test_clients_registered_before_revision_0007_keep_working(registry_url: str) -> None:
    """Upgrading a registry that holds a client: no logout URIs, back-channel off."""
    engine = open_engine(registry_url)
    try:
        with writer(engine).begin() as connection:
            command.upgrade(alembic_config(connection), "0005")
            connection.execute(
                text(
                    "INSERT INTO services (id, name, entity_id, naming, protocol, approved,"
                    " declaration_version) VALUES ('oud', 'Oud', 'oud', 'oid', 'oidc', true, 1)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO oidc_clients (service_id, redirect_uris, auth_method,"
                    " id_token_alg, refresh_tokens) VALUES"
                    " ('oud', '[\"https://oud.nl/cb\"]', 'none', 'RS256', false)"
                )
            )
    finally:
        engine.dispose()
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        service = registry.service("oud")
        assert service is not None and service.oidc is not None
        assert service.oidc.redirect_uris == ("https://oud.nl/cb",)
        assert service.oidc.post_logout_redirect_uris == ()
        assert service.oidc.backchannel_logout_uri is None
        assert not service.oidc.backchannel_logout_session_required
    finally:
        registry.close()
