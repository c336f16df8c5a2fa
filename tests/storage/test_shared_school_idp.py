"""Several schools on one SAML IdP (a school board's, revision 0014) on SQLite and PostgreSQL:
the registry admits the shared entity id, keeps one metadata per IdP, keeps an OpenID issuer
one school's, and the migration goes down (refused while an IdP is shared) and up again."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from broker.core.errors import ConfigurationError
from broker.core.model import OidcUpstream, School
from broker.registry import DuplicateEntry, SqlRegistry, migrate
from broker.registry.cached import CachedRegistryReader
from broker.registry.errors import MetadataChanged, SharedIdpMetadataDiffers
from broker.registry.migration import migration_connection, model_drift
from tests.storage.test_publisher_integrity import HEAD, _move, _revision

BOARD_IDP = "https://sts.bestuur.example/adfs/services/trust"
BOARD_XML = "<board-idp/>"
NOORD = School("10AA", "Lyceum Noord", BOARD_IDP)
ZUID = School("10AA01", "Lyceum Zuid", BOARD_IDP)
ELSEWHERE = School("20BB", "Ander College", "https://idp.ander.example")


def test_two_schools_share_one_idp_with_its_metadata(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(ZUID, BOARD_XML)
    sql_registry.add_school(NOORD, BOARD_XML)
    sql_registry.add_school(ELSEWHERE, "<other/>")
    # By id, both: no reader picks one of them.
    assert sql_registry.schools_by_idp(BOARD_IDP) == (NOORD, ZUID)
    assert CachedRegistryReader(sql_registry).schools_by_idp(BOARD_IDP) == (NOORD, ZUID)
    assert sql_registry.schools_by_idp(ELSEWHERE.idp_entity_id) == (ELSEWHERE,)
    assert sql_registry.schools_by_idp("https://idp.unknown.example") == ()
    assert sql_registry.school_metadata()[BOARD_IDP] == BOARD_XML


def test_a_school_joining_with_other_metadata_is_refused(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(NOORD, BOARD_XML)
    generation = sql_registry.generation()
    with pytest.raises(SharedIdpMetadataDiffers) as refused:
        sql_registry.add_school(ZUID, "<older-board-idp/>")
    assert refused.value.school_ids == ("10AA",)
    assert "school update --id 10AA --saml-metadata" in refused.value.detail
    assert sql_registry.school(ZUID.id) is None
    assert sql_registry.generation() == generation


def test_an_update_of_one_schools_metadata_is_the_idps(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(NOORD, BOARD_XML)
    sql_registry.add_school(ZUID, BOARD_XML)
    sql_registry.add_school(ELSEWHERE, "<other/>")
    also = sql_registry.update_school_metadata(ZUID.id, "<new-board-idp/>", BOARD_XML)
    assert also == (NOORD.id,)
    for school in (NOORD, ZUID):
        assert sql_registry.registered_metadata("idp", school.id) == "<new-board-idp/>"
    assert sql_registry.registered_metadata("idp", ELSEWHERE.id) == "<other/>"
    # Compare-and-set over every school on the IdP: a stale copy changes none of them.
    with pytest.raises(MetadataChanged):
        sql_registry.update_school_metadata(NOORD.id, "<stale/>", BOARD_XML)
    assert sql_registry.registered_metadata("idp", ZUID.id) == "<new-board-idp/>"
    # An IdP of one school: nothing else to say.
    assert sql_registry.update_school_metadata(ELSEWHERE.id, "<other-2/>") == ()


def test_an_openid_issuer_stays_one_schools(sql_registry: SqlRegistry) -> None:
    issuer = "https://login.bestuur.example"
    oidc = School("30CC", "OIDC", issuer, "sub", oidc=OidcUpstream(issuer, "a", "s"))
    sql_registry.add_school(oidc, "")
    with pytest.raises(DuplicateEntry):
        sql_registry.add_school(School("30CC01", "SAML on the issuer", issuer), "<x/>")
    sql_registry.add_school(NOORD, BOARD_XML)
    with pytest.raises(DuplicateEntry):
        twin = School("30CC02", "OIDC", BOARD_IDP, "sub", oidc=OidcUpstream(BOARD_IDP, "b", "s"))
        sql_registry.add_school(twin, "")
    assert sql_registry.schools_by_idp(issuer) == (oidc,)


def test_a_schools_portal_cannot_move_it_onto_a_shared_idp(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(NOORD, BOARD_XML)
    sql_registry.add_school(ELSEWHERE, "<other/>")
    moved = School(ELSEWHERE.id, ELSEWHERE.name, BOARD_IDP)
    with pytest.raises(DuplicateEntry):
        sql_registry.update_school_idp(moved, BOARD_XML)
    assert sql_registry.school(ELSEWHERE.id) == ELSEWHERE


def test_revision_0014_goes_down_only_without_a_shared_idp(registry_url: str) -> None:
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        registry.add_school(NOORD, BOARD_XML)
        registry.add_school(ZUID, BOARD_XML)
    finally:
        registry.close()
    with pytest.raises(ConfigurationError, match="1 identity provider"):
        _move(registry_url, "0013", down=True)
    assert _revision(registry_url) == HEAD
    registry = SqlRegistry(registry_url)
    try:
        registry.remove_school(ZUID.id, apply=True, removed_by="cli:ops")
    finally:
        registry.close()
    _move(registry_url, "0013", down=True)
    with migration_connection(registry_url) as connection:
        unique = inspect(connection).get_unique_constraints("schools")
        assert [u["column_names"] for u in unique] == [["idp_entity_id"]]
    migrate(registry_url)
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == []
    with migration_connection(registry_url) as connection:
        assert inspect(connection).get_unique_constraints("schools") == []
        indexes = inspect(connection).get_indexes("schools")
        assert [(i["column_names"], i["unique"]) for i in indexes] == [(["idp_entity_id"], False)]
    registry = SqlRegistry(registry_url)
    try:
        registry.add_school(ZUID, BOARD_XML)
        assert registry.schools_by_idp(BOARD_IDP) == (NOORD, ZUID)
    finally:
        registry.close()
