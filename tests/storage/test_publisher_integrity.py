"""A service's publisher organisation on SQLite and PostgreSQL (revision 0009): the foreign key
under the registry's own checks, the writers that lock the organisation first and refuse
clearly, the migration there and back with data, and the list of organisations."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.migration import MigrationContext
from sqlalchemy import delete, func, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from broker.core.admins import AdminRole, Publisher
from broker.core.errors import ConfigurationError
from broker.core.model import Chain
from broker.registry import SqlRegistry, migrate
from broker.registry.admin_accounts import PublisherOrganisation
from broker.registry.admin_tables import PublisherRow
from broker.registry.database import session_on, writer
from broker.registry.errors import UnknownPublisher
from broker.registry.migration import alembic_config, migration_connection, model_drift
from broker.registry.removal import Stamp, remove_publisher
from broker.registry.snapshot import ServiceEntry, Snapshot
from broker.registry.tables import RemovalRow, ServiceRow
from tests.storage.test_registry_removal import (
    OIDC_SERVICE,
    SAML_SCHOOL,
    SAML_SERVICE,
    _racing_the_removal,
    counts,
    rows_naming,
)

PUBLISHER = Publisher("uitgever-a", "Uitgever A")
HEAD = "0029"  # the latest revision: these tests migrate to it, and back from it


def _move(url: str, revision: str, *, down: bool = False) -> None:
    with migration_connection(url) as connection:
        (command.downgrade if down else command.upgrade)(alembic_config(connection), revision)


def _revision(url: str) -> str | None:
    with migration_connection(url) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _services_naming(registry: SqlRegistry, publisher_id: str) -> None:
    """Point `lesmethode` at `publisher_id` below the registry's checks, as a raced write
    could before revision 0009."""
    with session_on(writer(registry._engine)) as session:
        session.execute(
            update(ServiceRow)
            .where(ServiceRow.id == "lesmethode")
            .values(publisher_id=publisher_id)
        )


def _register_two_services(registry: SqlRegistry) -> SqlRegistry:
    """`toets` names the organisation uitgever-a; `lesmethode` names none."""
    registry.add_chain(Chain("uitgever-a", "Uitgever A"))
    registry.accounts.add_publisher(PUBLISHER)
    registry.add_service(SAML_SERVICE, "<sp/>")
    registry.add_service(OIDC_SERVICE, None)
    return registry


@pytest.fixture
def two_services(sql_registry: SqlRegistry) -> SqlRegistry:
    return _register_two_services(sql_registry)


def test_the_database_itself_refuses_a_service_naming_no_organisation(
    two_services: SqlRegistry,
) -> None:
    """Under the registry's own checks: the key refuses the write and the organisation's delete."""
    with pytest.raises(IntegrityError):
        _services_naming(two_services, "nope")
    with pytest.raises(IntegrityError), session_on(writer(two_services._engine)) as session:
        session.execute(delete(PublisherRow).where(PublisherRow.id == PUBLISHER.id))
    assert rows_naming(two_services, ServiceRow, "publisher_id", "nope") == 0
    assert two_services.accounts.publisher(PUBLISHER.id) == PUBLISHER


def test_an_import_naming_an_organisation_removed_since_the_check_is_refused_clearly(
    sql_registry: SqlRegistry,
) -> None:
    """The file was checked while the organisation existed; it went before the write."""
    sql_registry.accounts.add_publisher(PUBLISHER)
    checked = Snapshot(services=(ServiceEntry(OIDC_SERVICE, None),))
    sql_registry.remove_publisher(PUBLISHER.id, apply=True)
    before, generation = counts(sql_registry), sql_registry.generation()
    with pytest.raises(UnknownPublisher) as refused:
        sql_registry.import_snapshot(checked, "import:test")
    assert str(refused.value) == (
        "no publisher with id 'uitgever-a': service toets names it, and it was removed after "
        "the file was checked; nothing was imported"
    )
    assert counts(sql_registry) == before and sql_registry.generation() == generation


@pytest.mark.postgres
def test_an_import_racing_the_organisations_removal_is_refused_clearly(
    postgres_registry_url: str,
) -> None:
    """PostgreSQL: an import that attaches a service to an organisation while it is being
    removed waits for the removal, then refuses as for an unknown publisher (not on the foreign
    key, not a service naming an organisation that is gone), whether the file lists the
    organisation itself or only names it."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url)
    stamp = Stamp("cli:test", datetime.now(UTC))
    files = (
        Snapshot(services=(ServiceEntry(OIDC_SERVICE, None),)),
        Snapshot(publishers=(PUBLISHER,), services=(ServiceEntry(OIDC_SERVICE, None),)),
    )
    try:
        for checked in files:
            registry.accounts.add_publisher(PUBLISHER)
            outcome = _racing_the_removal(
                postgres_registry_url,
                lambda s: remove_publisher(s, PUBLISHER.id, stamp),
                lambda: registry.import_snapshot(checked, "import:test"),
            )
            assert len(outcome) == 1 and isinstance(outcome[0], UnknownPublisher), outcome
            assert "nothing was imported" in str(outcome[0])
            assert rows_naming(registry, ServiceRow, "id", OIDC_SERVICE.id) == 0
            assert rows_naming(registry, PublisherRow, "id", PUBLISHER.id) == 0
        assert rows_naming(registry, RemovalRow, "kind", "publisher") == len(files)
    finally:
        registry.close()


def test_the_organisations_are_listed_with_their_services_and_administrators(
    two_services: SqlRegistry,
) -> None:
    accounts = two_services.accounts
    accounts.add_publisher(Publisher("uitgever-b", "Uitgever B"))
    two_services.add_service(
        replace(OIDC_SERVICE, id="toets2", entity_id="toets2", publisher_id="uitgever-b"), None
    )
    two_services.add_service(
        replace(OIDC_SERVICE, id="toets3", entity_id="toets3", publisher_id="uitgever-b"), None
    )
    accounts.add_publisher(Publisher("uitgever-c", "Uitgever C"))
    two_services.add_school(replace(SAML_SCHOOL, id="uitgever-b"), "<idp/>")
    accounts.add_admin("dev@b.nl", "h", "S", AdminRole.PUBLISHER, "uitgever-b")
    accounts.add_admin("ops@b.nl", "h", "S", AdminRole.PUBLISHER, "uitgever-b")
    accounts.add_admin("dev@a.nl", "h", "S", AdminRole.PUBLISHER, "uitgever-a")
    # A school administrator of a school with the same id is no publisher administrator;
    # an invitation is no administrator yet.
    accounts.add_admin("ict@b.nl", "h", "S", AdminRole.SCHOOL, "uitgever-b")
    expires = datetime.now(UTC) + timedelta(days=1)
    accounts.add_invitation("f" * 64, "new@c.nl", AdminRole.PUBLISHER, "uitgever-c", expires, 1)
    assert accounts.publisher_organisations() == [
        PublisherOrganisation(PUBLISHER, services=1, admins=1),
        PublisherOrganisation(Publisher("uitgever-b", "Uitgever B"), services=2, admins=2),
        PublisherOrganisation(Publisher("uitgever-c", "Uitgever C"), services=0, admins=0),
    ]


def test_revision_0009_registers_missing_organisations_again_and_adds_the_key(
    registry_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A registry at 0008 where a service names an organisation that is gone (a raced write):
    the upgrade deletes nothing and refuses nothing, it registers the organisation again under
    its id, says so, and from then on the key holds."""
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        _register_two_services(registry)
    finally:
        registry.close()
    _move(registry_url, "0008", down=True)
    registry = SqlRegistry(registry_url)
    try:
        _services_naming(registry, "verdwenen")  # no key yet: accepted
    finally:
        registry.close()
    migrate(registry_url)
    assert "services named 1 publisher organisation(s) that did not exist: verdwenen" in (
        caplog.text
    )
    assert model_drift(registry_url) == []
    registry = SqlRegistry(registry_url)
    try:
        assert registry.accounts.publisher_organisations() == [
            PublisherOrganisation(PUBLISHER, services=1, admins=0),
            PublisherOrganisation(Publisher("verdwenen", "verdwenen"), services=1, admins=0),
        ]
        assert registry.any_service("lesmethode").publisher_id == "verdwenen"  # type: ignore[union-attr]
        with pytest.raises(IntegrityError):
            _services_naming(registry, "nope")
    finally:
        registry.close()


def test_revision_0009_goes_down_and_up_again_with_data(registry_url: str) -> None:
    """With services naming organisations and a school's removal record: down to 0008 (no key,
    the narrower kinds) and up again, every row kept."""
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        _register_two_services(registry)
        registry.add_school(SAML_SCHOOL, "<idp/>")
        registry.remove_school(SAML_SCHOOL.id, apply=True, removed_by="cli:ops")
        before = counts(registry)
    finally:
        registry.close()
    _move(registry_url, "0008", down=True)
    with migration_connection(registry_url) as connection:
        keys = inspect(connection).get_foreign_keys("services")
        assert [k["referred_table"] for k in keys] == ["chains"]
    with pytest.raises(IntegrityError), migration_connection(registry_url) as connection:
        connection.execute(
            text(
                "INSERT INTO removals (kind, entry_id, name, removed_at, removed_by) "
                "VALUES ('publisher', 'x', 'X', CURRENT_TIMESTAMP, 'cli:ops')"
            )
        )
    migrate(registry_url)
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == []
    registry = SqlRegistry(registry_url)
    try:
        assert counts(registry) == before
        assert registry.any_service(OIDC_SERVICE.id).publisher_id == PUBLISHER.id  # type: ignore[union-attr]
    finally:
        registry.close()


def test_a_downgrade_that_would_drop_an_organisations_removal_record_is_refused(
    registry_url: str,
) -> None:
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        registry.accounts.add_publisher(PUBLISHER)
        registry.remove_publisher(PUBLISHER.id, apply=True, removed_by="cli:ops")
    finally:
        registry.close()
    with pytest.raises(ConfigurationError, match="holds 1 publisher organisation removal record"):
        _move(registry_url, "0008", down=True)
    # Nothing changed, on PostgreSQL too: 0025's downgrade drops its index in the migration's
    # transaction (not concurrently), so the refusal further down keeps it.
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == []
    registry = SqlRegistry(registry_url)
    try:
        assert rows_naming(registry, RemovalRow, "kind", "publisher") == 1
    finally:
        registry.close()


def test_every_revision_goes_down_and_up_again_on_a_fresh_registry(registry_url: str) -> None:
    migrate(registry_url)
    _move(registry_url, "base", down=True)
    assert _revision(registry_url) is None
    migrate(registry_url)
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == []


def test_sqlite_schema_changes_may_not_leave_a_reference_dangling(tmp_path: object) -> None:
    """SQLite migrates with foreign key enforcement off (a table rebuild needs it off); what the
    revisions applied leave is checked before the commit instead, and refused whole."""
    url = f"sqlite:///{tmp_path}/registry.sqlite3"
    _move(url, "0008")
    with (
        pytest.raises(ConfigurationError, match=r"1 row\(s\) of declarations referring to rows"),
        migration_connection(url) as connection,
    ):
        connection.execute(
            text(
                "INSERT INTO declarations (service_id, attribute, position, purpose, required) "
                "VALUES ('nope', 'email', 0, 'x', false)"
            )
        )
        command.upgrade(alembic_config(connection), "head")
    assert _revision(url) == "0008"
    with migration_connection(url) as connection:
        assert connection.scalar(select(func.count()).select_from(text("declarations"))) == 0
