"""Database fixtures for the storage tests: a fresh registry database per test.

`registry_url` runs each test on SQLite (a file in tmp_path) and on the machine's PostgreSQL,
where every test gets its own database `kb_test_<random>`, dropped afterwards. PostgreSQL tests
are skipped with the reason when the server cannot be reached, unless CI is set: then they fail,
so a CI run never passes with the PostgreSQL half silently missing.

Environment: KETENBROKER_TEST_POSTGRES_HOST / _PORT / _USER (default 127.0.0.1, 5432, and the
first of root, postgres that can log in to the `test` database with trust auth).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from broker.registry import SqlRegistry, migrate


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname="test",
            connect_timeout=3,
            autocommit=True,
        )


def _find_postgres() -> PostgresServer | str:
    host = os.environ.get("KETENBROKER_TEST_POSTGRES_HOST", "127.0.0.1")
    port = int(os.environ.get("KETENBROKER_TEST_POSTGRES_PORT", "5432"))
    chosen = os.environ.get("KETENBROKER_TEST_POSTGRES_USER")
    users = [chosen] if chosen else ["root", "postgres"]
    reasons = []
    for user in users:
        server = PostgresServer(host, port, user)
        try:
            with server.admin():
                return server
        except psycopg.OperationalError as error:
            reasons.append(f"{user}: {str(error).strip().splitlines()[0]}")
    return f"PostgreSQL at {host}:{port} not reachable ({'; '.join(reasons)})"


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    found = _find_postgres()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"{found}; CI is set, so the PostgreSQL tests must run")
        pytest.skip(found)
    return found


@pytest.fixture
def postgres_registry_url(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped after the test."""
    database = f"kb_test_{secrets.token_hex(6)}"
    with postgres_server.admin() as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield postgres_server.url(database)
    finally:
        with postgres_server.admin() as admin:
            # FORCE: a connection a failed test left open must not keep the database around.
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """URL of an empty (not yet migrated) registry database, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/registry.sqlite3"
    url: str = request.getfixturevalue("postgres_registry_url")
    return url


@pytest.fixture
def sql_registry(registry_url: str) -> Iterator[SqlRegistry]:
    """A migrated, empty registry."""
    migrate(registry_url)
    opened = SqlRegistry(registry_url)
    try:
        yield opened
    finally:
        opened.close()
