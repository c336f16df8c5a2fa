"""The machine's PostgreSQL server for tests, and fresh databases of a test's own on it.

Environment: KETENBROKER_TEST_POSTGRES_HOST / _PORT / _USER (default 127.0.0.1, 5432, and the
first of root, postgres that can log in to the `test` database with trust auth).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import pytest


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str, *, port: int | None = None) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{port or self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname="test",
            connect_timeout=3,
            autocommit=True,
        )

    @contextmanager
    def fresh_database(self, *, ascii_only: bool = False) -> Iterator[str]:
        """The name of an empty database `kb_test_<random>`, dropped afterwards. `ascii_only`:
        in the encoding SQL_ASCII (what `initdb` makes under the C locale)."""
        database = f"kb_test_{secrets.token_hex(6)}"
        encoding = " ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
        with self.admin() as admin:
            admin.execute(f'CREATE DATABASE "{database}"{encoding if ascii_only else ""}')
        try:
            yield database
        finally:
            with self.admin() as admin:
                # FORCE: a connection a failed test left open must not keep the database around.
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def find_postgres() -> PostgresServer | str:
    """The server, or why it cannot be reached."""
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


def require_postgres() -> PostgresServer:
    """The server; the test is skipped when it is missing, or fails when CI is set (a CI run
    must never pass with the PostgreSQL half silently missing)."""
    found = find_postgres()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(f"{found}; CI is set, so the PostgreSQL tests must run")
        pytest.skip(found)
    return found
