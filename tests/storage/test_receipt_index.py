"""Revision 0025: the index the school portal's reads over a school's receipts use, built with
`CREATE INDEX CONCURRENTLY` on PostgreSQL (outside the migration's transaction, logins keep
writing), a plain CREATE INDEX on SQLite; a build that failed halfway rebuilt; the plan of the
portal's own statements; a second migration's wait that never deadlocks such a build."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, event, inspect
from sqlalchemy.engine import make_url

from broker.core.receipts import ReceiptKeys
from broker.registry import migrate
from broker.registry.database import open_engine
from broker.registry.migration import model_drift
from broker.registry.migration_guard import POSTGRES_MIGRATION_LOCK
from broker.registry.receipt_tables import SCHOOL_SERVICE_ATTRIBUTES
from broker.registry.receipts import ReceiptQuery, SqlReceiptBook
from tests.storage.test_migration_safety import WAITING, _waiting_on_the_lock
from tests.storage.test_publisher_integrity import HEAD, _move, _revision

KEYS = ReceiptKeys.from_key(bytes(range(32)))
_VALID = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%(name)s)"


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = open_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _receipt_indexes(url: str) -> dict[str, list[str | None]]:
    with _engine(url) as engine, engine.connect() as connection:
        return {
            str(index["name"]): list(index["column_names"])
            for index in inspect(connection).get_indexes("receipts")
        }


def _autocommit(url: str) -> psycopg.Connection[Any]:
    """A driver connection of its own to the registry's database, each statement committed."""
    database = make_url(url)
    return psycopg.connect(
        host=database.host,
        port=database.port,
        user=database.username,
        dbname=database.database,
        autocommit=True,
    )


def _valid(url: str) -> bool | None:
    with _engine(url) as engine, engine.connect() as connection:
        found = connection.exec_driver_sql(_VALID, {"name": SCHOOL_SERVICE_ATTRIBUTES}).scalar()
        return None if found is None else bool(found)


@contextmanager
def _receipt_reads(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements on the receipts table run inside, with their parameters (to EXPLAIN)."""
    statements: list[tuple[str, Any]] = []

    def executed(_c: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM receipts" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", executed)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", executed)


def _seed(connection: Connection, schools: int, per_school: int) -> None:
    """Receipts of `schools` schools, interleaved as concurrent logins write them."""
    connection.exec_driver_sql(
        "INSERT INTO receipts (school_id, seq, issued_at, service_id, chain_id, attributes, "
        "policy_version, school_protocol, service_protocol, subject, previous_hash, hash) "
        "SELECT 'S' || (n %% %(schools)s), n / %(schools)s + 1, 1800000000 + n, "
        "'service-' || (n %% 7), NULL, CASE n %% 3 WHEN 0 THEN ',given_name,' "
        "ELSE ',eck_id,given_name,' END, 1, 'saml', 'oidc', md5(n::text) || md5(n::text), "
        "md5(n::text), md5(n::text) FROM generate_series(0, %(rows)s - 1) AS n",
        {"schools": schools, "rows": schools * per_school},
    )


def test_the_index_is_built_at_head_and_dropped_by_the_downgrade(registry_url: str) -> None:
    columns = ["school_id", "service_id", "attributes"]
    migrate(registry_url)
    assert _receipt_indexes(registry_url)[SCHOOL_SERVICE_ATTRIBUTES] == columns
    assert model_drift(registry_url) == []
    _move(registry_url, "0024", down=True)
    assert SCHOOL_SERVICE_ATTRIBUTES not in _receipt_indexes(registry_url)
    assert _revision(registry_url) == "0024"
    migrate(registry_url)
    assert _receipt_indexes(registry_url)[SCHOOL_SERVICE_ATTRIBUTES] == columns
    assert _revision(registry_url) == HEAD
    if registry_url.startswith("postgresql"):
        assert _valid(registry_url) is True


@pytest.mark.postgres
def test_postgresql_builds_it_concurrently_outside_the_migrations_transaction(
    postgres_registry_url: str,
) -> None:
    _move(postgres_registry_url, "0024")
    seen: list[tuple[str, bool]] = []

    def executed(connection: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if "INDEX" in statement and SCHOOL_SERVICE_ATTRIBUTES in statement:
            driver = connection.connection.dbapi_connection
            assert isinstance(driver, psycopg.Connection)
            seen.append((" ".join(statement.split()), driver.autocommit))

    event.listen(Engine, "before_cursor_execute", executed)
    try:
        migrate(postgres_registry_url)
    finally:
        event.remove(Engine, "before_cursor_execute", executed)
    assert seen == [
        (
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {SCHOOL_SERVICE_ATTRIBUTES} ON receipts "
            "(school_id, service_id, attributes)",
            True,
        )
    ]


@pytest.mark.postgres
def test_an_invalid_index_a_failed_build_left_is_built_again(postgres_registry_url: str) -> None:
    # What a concurrent build cancelled halfway leaves: an INVALID index of that name, which
    # CREATE … IF NOT EXISTS alone would keep. Made here by a unique build that fails.
    _move(postgres_registry_url, "0024")
    with _autocommit(postgres_registry_url) as connection:
        _seed_driver(connection)
        with pytest.raises(psycopg.errors.UniqueViolation):
            connection.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY {SCHOOL_SERVICE_ATTRIBUTES} ON receipts "
                "(school_id)"
            )
    assert _valid(postgres_registry_url) is False
    assert migrate(postgres_registry_url) == f"migrated the registry from revision 0024 to {HEAD}"
    assert _valid(postgres_registry_url) is True
    assert _receipt_indexes(postgres_registry_url)[SCHOOL_SERVICE_ATTRIBUTES] == [
        "school_id",
        "service_id",
        "attributes",
    ]
    assert model_drift(postgres_registry_url) == []


def _seed_driver(connection: psycopg.Connection[Any]) -> None:
    for seq in (1, 2):
        connection.execute(
            "INSERT INTO receipts (school_id, seq, issued_at, service_id, attributes, "
            "policy_version, school_protocol, service_protocol, subject, previous_hash, hash) "
            "VALUES ('S1', %s, 1800000000, 'leesplank', ',given_name,', 1, 'saml', 'oidc', "
            "'s', 'p', 'h')",
            (seq,),
        )


@pytest.mark.postgres
def test_the_portals_passes_over_a_school_read_the_index_only(postgres_registry_url: str) -> None:
    migrate(postgres_registry_url)
    with _engine(postgres_registry_url) as engine:
        with engine.begin() as connection:
            _seed(connection, schools=8, per_school=1500)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # Sets the visibility map (index-only scans) and the statistics, as autovacuum does.
            connection.exec_driver_sql("VACUUM ANALYZE receipts")
        book = SqlReceiptBook(engine, KEYS)
        with _receipt_reads(engine) as statements:
            named = book.named("S3")
            totals = book.totals(ReceiptQuery("S3"))
            one_service = book.totals(
                ReceiptQuery("S3", service_id="service-2", attribute="eck_id")
            )
        assert named["service-3"] == frozenset({"given_name", "eck_id"})
        assert sum(totals.values()) == 1500 and len(one_service) == 1
        assert len(statements) == 3
        with engine.connect() as connection:
            connection.exec_driver_sql("SET enable_seqscan = off")
            for statement, parameters in statements:
                plan = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars()
                shown = "\n".join(plan)
                assert f"Index Only Scan using {SCHOOL_SERVICE_ATTRIBUTES}" in shown, shown


@pytest.mark.postgres
def test_a_migration_waiting_for_the_lock_never_holds_up_a_concurrent_build(
    postgres_registry_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Another migration holds the lock and builds an index concurrently; this one waits. A wait
    # in one statement (a snapshot held all along) would be a deadlock PostgreSQL ends by
    # failing the build, a second after it began waiting for that snapshot.
    _move(postgres_registry_url, "0024")
    outcome: dict[str, object] = {}
    with _autocommit(postgres_registry_url) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (POSTGRES_MIGRATION_LOCK,))

        def body() -> None:
            try:
                outcome["migrated"] = migrate(postgres_registry_url)
            except Exception as error:
                outcome["migrated"] = error

        with caplog.at_level(logging.INFO, logger="broker.registry.migration"):
            waiting = threading.Thread(target=body, daemon=True)
            waiting.start()
            deadline = time.monotonic() + 60
            while not _waiting_on_the_lock(postgres_registry_url):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1.5)  # past deadlock_timeout: a waiter's old snapshot is old by now
            started = time.monotonic()
            holder.execute("CREATE INDEX CONCURRENTLY ix_made_up ON receipts (hash)")
            built_in = time.monotonic() - started
            holder.execute("SELECT pg_advisory_unlock(%s)", (POSTGRES_MIGRATION_LOCK,))
            waiting.join(60)
    assert outcome == {"migrated": f"migrated the registry from revision 0024 to {HEAD}"}
    assert built_in < 5
    assert caplog.messages.count(WAITING) == 1


@pytest.mark.postgres
def test_the_my_data_history_is_one_grouped_read_on_the_subject_index(
    postgres_registry_url: str,
) -> None:
    """The my-data page counts a student's receipts in the database, in one statement that
    finds them by the subject index among a school's many, never by reading the table."""
    migrate(postgres_registry_url)
    student = "f" * 64
    with _engine(postgres_registry_url) as engine:
        with engine.begin() as connection:
            _seed(connection, schools=8, per_school=5000)
            connection.exec_driver_sql(
                "INSERT INTO receipts (school_id, seq, issued_at, service_id, attributes, "
                "policy_version, school_protocol, service_protocol, subject, previous_hash, hash) "
                "SELECT 'S1', 100000 + n, 1800000000 + n, 'service-' || (n %% 3), ',given_name,', "
                "1, 'saml', 'oidc', %(student)s, 'p', 'h' FROM generate_series(0, 1199) AS n",
                {"student": student},
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE receipts")
        book = SqlReceiptBook(engine, KEYS)
        with _receipt_reads(engine) as statements:
            history = book.history([student, "e" * 64])
        assert sorted((h.service_id, h.count) for h in history) == [
            ("service-0", 400),
            ("service-1", 400),
            ("service-2", 400),
        ]
        assert len(statements) == 1
        with engine.connect() as connection:
            statement, parameters = statements[0]
            plan = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars()
            shown = "\n".join(plan)
            assert "ix_receipts_subject_service_id" in shown, shown
            assert "Seq Scan" not in shown, shown
