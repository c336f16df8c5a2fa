"""A school's town in the registry (revision 0011), on SQLite and PostgreSQL: stored, changed,
imported, and kept or dropped by the migration both ways."""

from __future__ import annotations

from dataclasses import replace

import pytest
from alembic import command
from sqlalchemy import inspect

from broker.core.errors import UnknownSchool
from broker.core.model import School
from broker.registry import SqlRegistry, migrate
from broker.registry.database import open_engine
from broker.registry.migration import alembic_config, migration_connection, model_drift
from broker.registry.snapshot import SchoolEntry, Snapshot

LEIDEN = School("00AA", "Stedelijk Gymnasium", "https://idp.sgl.nl/saml", town="Leiden")
UTRECHT = School("00BB", "Stedelijk Gymnasium", "https://idp.sgu.nl/saml")


def _move(url: str, revision: str, *, down: bool = False) -> None:
    with migration_connection(url) as connection:
        (command.downgrade if down else command.upgrade)(alembic_config(connection), revision)


def _school_columns(url: str) -> set[str]:
    engine = open_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns("schools")}
    finally:
        engine.dispose()


def test_a_town_is_stored_changed_and_cleared(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(LEIDEN, "<idp/>")
    sql_registry.add_school(UTRECHT, "<idp/>")
    assert sql_registry.school(LEIDEN.id) == LEIDEN
    assert sql_registry.school(UTRECHT.id).town == ""  # type: ignore[union-attr]
    before = sql_registry.generation()
    sql_registry.set_school_town(UTRECHT.id, "Utrecht")
    # Every worker's discovery page is made again from the next generation.
    assert sql_registry.generation() > before
    assert sql_registry.school(UTRECHT.id).town == "Utrecht"  # type: ignore[union-attr]
    sql_registry.set_school_town(LEIDEN.id, "")
    assert sql_registry.school(LEIDEN.id).town == ""  # type: ignore[union-attr]


def test_the_town_of_an_unknown_school_is_refused(sql_registry: SqlRegistry) -> None:
    before = sql_registry.generation()
    with pytest.raises(UnknownSchool):
        sql_registry.set_school_town("NOPE00", "Leiden")
    assert sql_registry.generation() == before


def test_an_import_sets_and_changes_the_town(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(UTRECHT, "<idp/>")
    snapshot = Snapshot(
        schools=(
            SchoolEntry(replace(UTRECHT, town="Utrecht"), "<idp/>"),
            SchoolEntry(LEIDEN, "<idp/>"),
        )
    )
    report = sql_registry.import_snapshot(snapshot, "cli:test")
    assert report.changed == [f"school {UTRECHT.id}"]
    assert report.added == [f"school {LEIDEN.id}"]
    assert sql_registry.school(UTRECHT.id).town == "Utrecht"  # type: ignore[union-attr]
    assert sql_registry.school(LEIDEN.id).town == "Leiden"  # type: ignore[union-attr]
    # The same file again changes nothing.
    assert sql_registry.import_snapshot(snapshot, "cli:test").unchanged == 2


def test_upgrade_to_0011_gives_existing_schools_no_town_and_downgrade_drops_it(
    registry_url: str,
) -> None:
    _move(registry_url, "0010")
    engine = open_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO schools (id, name, idp_entity_id, subject_attribute, use_eck_id, "
                "scopes, idp_metadata) VALUES ('00AA', 'Stedelijk Gymnasium', 'https://idp', "
                "'name_id', false, '[]', '<idp/>')"
            )
    finally:
        engine.dispose()
    assert "town" not in _school_columns(registry_url)
    migrate(registry_url)
    assert model_drift(registry_url) == []
    registry = SqlRegistry(registry_url)
    try:
        assert registry.school("00AA").town == ""  # type: ignore[union-attr]
        registry.set_school_town("00AA", "Leiden")
    finally:
        registry.close()
    _move(registry_url, "0010", down=True)
    assert "town" not in _school_columns(registry_url)
    # The school itself stays; up again, it has no town (the downgrade dropped it).
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        school = registry.school("00AA")
        assert school is not None and school.name == "Stedelijk Gymnasium" and school.town == ""
    finally:
        registry.close()
