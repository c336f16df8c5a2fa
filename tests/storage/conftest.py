"""Database fixtures for the storage tests: a fresh registry database per test.

`registry_url` runs each test on SQLite (a file in tmp_path) and on the machine's PostgreSQL,
where every test gets its own database `kb_test_<random>`, dropped afterwards. PostgreSQL tests
are skipped with the reason when the server cannot be reached, unless CI is set: then they fail,
so a CI run never passes with the PostgreSQL half silently missing.

The server is found by tests/support/postgres.py (environment variables there).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.registry import SqlRegistry, migrate
from tests.support.postgres import PostgresServer, require_postgres
from tests.support.sealing import TEST_SEAL


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    return require_postgres()


@pytest.fixture
def postgres_registry_url(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped after the test."""
    with postgres_server.fresh_database() as database:
        yield postgres_server.url(database)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """URL of an empty (not yet migrated) registry database, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/registry.sqlite3"
    url: str = request.getfixturevalue("postgres_registry_url")
    return url


@pytest.fixture
def sql_registry(registry_url: str) -> Iterator[SqlRegistry]:
    """A migrated, empty registry, sealing its secrets under the tests' key."""
    migrate(registry_url)
    opened = SqlRegistry(registry_url, seal=TEST_SEAL)
    try:
        yield opened
    finally:
        opened.close()
