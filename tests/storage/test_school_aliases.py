"""A school's other names in the registry (revision 0012), on SQLite and PostgreSQL: stored,
changed with the name and town in one write, cleared, imported, and kept or dropped by the
migration both ways."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker.core.errors import UnknownSchool
from broker.core.model import School
from broker.registry import SqlRegistry, migrate
from broker.registry.database import open_engine
from broker.registry.migration import model_drift
from broker.registry.snapshot import SchoolEntry, Snapshot
from tests.storage.test_school_town import _move, _school_columns

BAKEN = School("10BL", "Baken Lyceum", "https://idp.bl/saml", town="Zwolle", aliases=("Het Baken",))
LIUDGER = School("12CL", "Christelijke Scholengemeenschap Liudger", "https://idp.cl/saml")


def _school(registry: SqlRegistry, school_id: str) -> School:
    school = registry.school(school_id)
    assert school is not None
    return school


def test_aliases_are_stored_changed_and_cleared(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(BAKEN, "<idp/>")
    sql_registry.add_school(LIUDGER, "<idp/>")
    assert _school(sql_registry, BAKEN.id) == BAKEN
    assert _school(sql_registry, LIUDGER.id).aliases == ()
    assert [s.aliases for s in sql_registry.schools()] == [("Het Baken",), ()]
    before = sql_registry.generation()
    sql_registry.set_school_details(LIUDGER.id, aliases=["CSG Liudger", "Liudger Drachten"])
    # Every worker's discovery page and school directory are made again.
    assert sql_registry.generation() > before
    liudger = _school(sql_registry, LIUDGER.id)
    assert liudger.aliases == ("CSG Liudger", "Liudger Drachten")
    assert (liudger.name, liudger.town) == (LIUDGER.name, "")  # not given: kept
    sql_registry.set_school_details(BAKEN.id, aliases=[])
    assert _school(sql_registry, BAKEN.id).aliases == ()


def test_name_town_and_aliases_change_in_one_write(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(LIUDGER, "<idp/>")
    before = sql_registry.generation()
    sql_registry.set_school_details(
        LIUDGER.id, "Liudger", "Drachten", ["Christelijke Scholengemeenschap Liudger"]
    )
    assert sql_registry.generation() == before + 1
    school = _school(sql_registry, LIUDGER.id)
    assert (school.name, school.town, school.aliases) == (
        "Liudger",
        "Drachten",
        ("Christelijke Scholengemeenschap Liudger",),
    )
    # The name alone: the town and the aliases stay.
    sql_registry.set_school_details(LIUDGER.id, name="CSG Liudger")
    school = _school(sql_registry, LIUDGER.id)
    assert (school.name, school.town, school.aliases) == (
        "CSG Liudger",
        "Drachten",
        ("Christelijke Scholengemeenschap Liudger",),
    )


def test_the_aliases_of_an_unknown_school_are_refused(sql_registry: SqlRegistry) -> None:
    before = sql_registry.generation()
    with pytest.raises(UnknownSchool):
        sql_registry.set_school_details("NOPE00", aliases=["Het Baken"])
    assert sql_registry.generation() == before


def test_an_import_sets_changes_and_clears_the_aliases(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(LIUDGER, "<idp/>")
    sql_registry.add_school(replace(BAKEN, aliases=("Het Baken", "Locatie Zuid")), "<idp/>")
    snapshot = Snapshot(
        schools=(
            SchoolEntry(BAKEN, "<idp/>"),
            SchoolEntry(replace(LIUDGER, aliases=("CSG Liudger",)), "<idp/>"),
        )
    )
    report = sql_registry.import_snapshot(snapshot, "cli:test")
    assert sorted(report.changed) == [f"school {BAKEN.id}", f"school {LIUDGER.id}"]
    assert _school(sql_registry, BAKEN.id).aliases == ("Het Baken",)
    assert _school(sql_registry, LIUDGER.id).aliases == ("CSG Liudger",)
    assert sql_registry.import_snapshot(snapshot, "cli:test").unchanged == 2
    assert sql_registry.snapshot().schools == snapshot.schools


def test_upgrade_to_0012_gives_existing_schools_no_aliases_and_downgrade_drops_them(
    registry_url: str,
) -> None:
    _move(registry_url, "0011")
    engine = open_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO schools (id, name, idp_entity_id, subject_attribute, use_eck_id, "
                "scopes, town, idp_metadata) VALUES ('10BL', 'Baken Lyceum', 'https://idp', "
                "'name_id', false, '[]', 'Zwolle', '<idp/>')"
            )
    finally:
        engine.dispose()
    assert "aliases" not in _school_columns(registry_url)
    migrate(registry_url)
    assert model_drift(registry_url) == []
    registry = SqlRegistry(registry_url)
    try:
        assert _school(registry, "10BL").aliases == ()
        registry.set_school_details("10BL", aliases=["Het Baken"])
        assert _school(registry, "10BL").aliases == ("Het Baken",)
    finally:
        registry.close()
    _move(registry_url, "0011", down=True)
    assert "aliases" not in _school_columns(registry_url)
    # The school itself stays, with its town; up again, it has no aliases (the downgrade
    # dropped them).
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        school = _school(registry, "10BL")
        assert (school.name, school.town, school.aliases) == ("Baken Lyceum", "Zwolle", ())
    finally:
        registry.close()
