"""A school's hosted domain in the registry (revision 0013), on SQLite and PostgreSQL: stored
with its OpenID provider, changed and cleared with it, imported, and kept or dropped by the
migration both ways."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import inspect

from broker.core.model import OidcUpstream, School
from broker.registry import SqlRegistry, migrate
from broker.registry.database import open_engine
from broker.registry.migration import model_drift
from broker.registry.snapshot import SchoolEntry, Snapshot
from tests.storage.test_school_town import _move

GOOGLE = "https://accounts.google.com"
SCHOOL = School(
    "77GG00",
    "Google-school",
    GOOGLE,
    "sub",
    oidc=OidcUpstream(GOOGLE, "broker", "secret", hosted_domain="school.nl"),
)


def _domain(registry: SqlRegistry) -> str:
    school = registry.school(SCHOOL.id)
    assert school is not None and school.oidc is not None
    return school.oidc.hosted_domain


def _provider_columns(url: str) -> set[str]:
    engine = open_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("school_oidc_providers")}
    finally:
        engine.dispose()


def test_a_hosted_domain_is_stored_changed_and_cleared(sql_registry: SqlRegistry) -> None:
    sql_registry.add_school(SCHOOL, "")
    assert sql_registry.school(SCHOOL.id) == SCHOOL
    assert sql_registry.schools_by_idp(GOOGLE) == (SCHOOL,)
    before = sql_registry.generation()
    moved = replace(SCHOOL, oidc=replace(SCHOOL.oidc, hosted_domain="other.nl"))
    sql_registry.update_school_idp(moved, "")
    assert sql_registry.generation() > before  # every worker's next login checks the new one
    assert _domain(sql_registry) == "other.nl"
    sql_registry.update_school_idp(replace(SCHOOL, oidc=replace(SCHOOL.oidc, hosted_domain="")), "")
    assert _domain(sql_registry) == ""


def test_an_import_sets_and_keeps_the_hosted_domain(sql_registry: SqlRegistry) -> None:
    snapshot = Snapshot(schools=(SchoolEntry(SCHOOL, ""),))
    assert sql_registry.import_snapshot(snapshot, "cli:test").added == [f"school {SCHOOL.id}"]
    assert _domain(sql_registry) == "school.nl"
    assert sql_registry.import_snapshot(snapshot, "cli:test").unchanged == 1
    other = replace(SCHOOL, oidc=replace(SCHOOL.oidc, hosted_domain="other.nl"))
    changed = Snapshot(schools=(SchoolEntry(other, ""),))
    assert sql_registry.import_snapshot(changed, "cli:test").changed == [f"school {SCHOOL.id}"]
    assert _domain(sql_registry) == "other.nl"
    assert sql_registry.snapshot().schools == changed.schools


def test_upgrade_to_0013_gives_existing_schools_none_and_downgrade_drops_it(
    registry_url: str,
) -> None:
    _move(registry_url, "0012")
    engine = open_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO schools (id, name, idp_entity_id, subject_attribute, use_eck_id, "
                "scopes, town, aliases, idp_metadata) VALUES ('77GG00', 'Google-school', "
                f"'{GOOGLE}', 'sub', false, '[]', '', '[]', '')"
            )
            connection.exec_driver_sql(
                "INSERT INTO school_oidc_providers (school_id, issuer, client_id, "
                f"client_secret, algorithms) VALUES ('77GG00', '{GOOGLE}', 'broker', 'secret', "
                "'[\"RS256\"]')"
            )
    finally:
        engine.dispose()
    assert "hosted_domain" not in _provider_columns(registry_url)
    migrate(registry_url)
    assert model_drift(registry_url) == []
    registry = SqlRegistry(registry_url)
    try:
        # None: the login refuses this Google school until it has one (hosted_domain_missing).
        assert _domain(registry) == ""
        registry.update_school_idp(SCHOOL, "")
        assert _domain(registry) == "school.nl"
    finally:
        registry.close()
    _move(registry_url, "0012", down=True)
    assert "hosted_domain" not in _provider_columns(registry_url)
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        assert _domain(registry) == ""  # the downgrade dropped it: refused again, not let in
    finally:
        registry.close()
