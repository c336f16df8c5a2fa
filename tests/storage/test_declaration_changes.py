"""Declaration changes on SQLite and PostgreSQL: which ones make schools confirm again, the
bilingual purposes, and the upgrade to revision 0010 of a registry whose services changed their
declarations before it."""

from __future__ import annotations

from dataclasses import replace

from alembic import command

from broker.core.admins import Publisher
from broker.core.model import Declaration, School, Service
from broker.registry import SqlRegistry, migrate
from broker.registry.database import open_engine, writer
from broker.registry.migration import alembic_config, model_drift

SCHOOL = School("00AA", "Het Voorbeeld College", "https://idp.voorbeeld.nl/saml")
OTHER = School("00BB", "Het Andere College", "https://idp.ander.nl/saml")
NAME = Declaration("given_name", "Om de leerling te begroeten", purpose_en="To greet the student")
GROUPS = Declaration("groups", "Om de klas te vinden", required=True)
SERVICE = Service(
    "lesweb", "Lesweb", "https://sp.lesweb.nl/saml", None, declarations=(NAME, GROUPS)
)
CHOSEN = frozenset({"given_name", "groups"})


def _registered(registry: SqlRegistry) -> SqlRegistry:
    registry.add_school(SCHOOL, "<idp/>")
    registry.add_school(OTHER, "<idp/>")
    registry.accounts.add_publisher(Publisher("uitgever-a", "Uitgever A"))
    registry.add_service(SERVICE, "<sp/>")
    registry.set_policy(SCHOOL.id, "lesweb", CHOSEN, "admin:1")
    registry.set_policy(OTHER.id, "lesweb", frozenset({"groups"}), "admin:1")
    return registry


def test_new_purpose_texts_keep_every_schools_choice(sql_registry: SqlRegistry) -> None:
    registry = _registered(sql_registry)
    retyped = (
        replace(NAME, purpose="Om de leerling te begroeten.", purpose_en=""),
        replace(GROUPS, purpose_en="To find the class."),
    )
    assert registry.set_declarations("lesweb", retyped, "admin:2").version == 2
    service = registry.service("lesweb")
    assert service is not None
    assert (service.declaration_version, service.reconfirm_version) == (2, 1)
    assert service.declarations == retyped
    assert registry.policy(SCHOOL.id, "lesweb").attributes == CHOSEN
    assert not any(c.needs_confirmation for c in registry.choices_for_service("lesweb"))
    # The history is honest: version 2 exists, with the texts it had.
    history = registry.declaration_history("lesweb")
    assert [(c.version, c.declarations) for c in history] == [(1, (NAME, GROUPS)), (2, retyped)]


def test_a_removed_attribute_narrows_at_once_without_confirming(
    sql_registry: SqlRegistry,
) -> None:
    registry = _registered(sql_registry)
    registry.set_declarations("lesweb", (GROUPS,), "admin:2")
    service = registry.service("lesweb")
    assert service is not None and service.reconfirm_version == 1
    # The stored choice still names given_name; the release rule only hands out what is declared.
    assert not registry.choices_of_school(SCHOOL.id)["lesweb"].needs_confirmation
    assert registry.policy(SCHOOL.id, "lesweb").attributes == CHOSEN
    assert [d.attribute for d in service.declarations] == ["groups"]


def test_an_attribute_declared_again_after_its_removal_needs_confirming(
    sql_registry: SqlRegistry,
) -> None:
    registry = _registered(sql_registry)
    registry.set_declarations("lesweb", (GROUPS,), "admin:2")
    registry.set_declarations("lesweb", (GROUPS, NAME), "admin:2")
    service = registry.service("lesweb")
    assert service is not None and service.reconfirm_version == 3
    assert registry.policy(SCHOOL.id, "lesweb").attributes == frozenset()
    assert registry.choices_of_school(SCHOOL.id)["lesweb"].needs_confirmation


def test_added_attributes_and_required_changes_need_confirming(
    sql_registry: SqlRegistry,
) -> None:
    registry = _registered(sql_registry)
    email = Declaration("email", "Om resultaten te mailen")
    for version, declarations in (
        (2, (NAME, GROUPS, email)),  # added
        (3, (replace(NAME, required=True), GROUPS, email)),  # optional → required
        (4, (NAME, GROUPS, email)),  # required → optional
    ):
        registry.set_policy(SCHOOL.id, "lesweb", CHOSEN, "admin:1")
        registry.set_declarations("lesweb", declarations, "admin:2")
        service = registry.service("lesweb")
        assert service is not None and service.reconfirm_version == version
        assert registry.policy(SCHOOL.id, "lesweb").attributes == frozenset()
    registry.set_policy(SCHOOL.id, "lesweb", CHOSEN, "admin:1")
    assert registry.policy(SCHOOL.id, "lesweb").attributes == CHOSEN


def test_upgrade_to_0010_keeps_waiting_choices_waiting(registry_url: str) -> None:
    """At 0008 every declaration change invalidated choices: a school that had not confirmed
    version 2 must still not release after the upgrade, and the old purpose becomes Dutch."""
    engine = open_engine(registry_url)
    try:
        with writer(engine).begin() as connection:
            command.upgrade(alembic_config(connection), "0008")
    finally:
        engine.dispose()
    engine = open_engine(registry_url)
    try:
        with writer(engine).begin() as connection:
            for statement in (
                "INSERT INTO schools (id, name, idp_entity_id, subject_attribute, use_eck_id, "
                "scopes, idp_metadata) VALUES ('00AA', 'School', 'https://idp', 'name_id', "
                "false, '[]', '<idp/>')",
                "INSERT INTO services (id, name, entity_id, naming, protocol, sp_metadata, "
                "declaration_version) VALUES ('oud', 'Oud', 'https://sp.oud', 'oid', 'saml', "
                "'<sp/>', 2)",
                "INSERT INTO declarations (service_id, attribute, position, purpose, required) "
                "VALUES ('oud', 'groups', 0, 'Om de klas te vinden', true)",
                "INSERT INTO release_policies (school_id, service_id, attributes, version, "
                "changed_at, changed_by, active, declaration_version) VALUES "
                "('00AA', 'oud', '[\"groups\"]', 1, '2026-01-01 00:00:00', 'cli', true, 1)",
            ):
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
    migrate(registry_url)
    assert model_drift(registry_url) == []
    registry = SqlRegistry(registry_url)
    try:
        service = registry.service("oud")
        assert service is not None and service.reconfirm_version == 2
        assert service.declarations == (GROUPS,)
        assert service.declarations[0].purpose_in("en") == GROUPS.purpose
        assert registry.policy("00AA", "oud").attributes == frozenset()
    finally:
        registry.close()
