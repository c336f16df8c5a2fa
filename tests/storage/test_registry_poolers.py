"""The registry behind PgBouncer, in session and in transaction pooling: every engine connects
(no startup parameter PgBouncer refuses), the web workers' bounds hold (the statement timeout
rides in each transaction's BEGIN: the request's, the portal's longer one, and none for the
CLI, whatever the database sets), and no transaction's bound is left behind for the client
that gets its server connection next.

A PgBouncer of the test's own on a free loopback port, in front of the machine's PostgreSQL;
skipped where the `pgbouncer` program is not installed (Debian: apt-get install pgbouncer), except
on CI, where scripts/services.sh installs it and its absence fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from broker.core.errors import StoreUnavailable
from broker.registry import SqlRegistry, migrate
from broker.registry.database import StatementTimeouts, open_engine, patient, session_on
from broker.registry.migration_guard import POSTGRES_MIGRATION_LOCK
from tests.storage.test_receipt_book import KEYS, content
from tests.support.live import free_ports
from tests.support.postgres import PostgresServer

PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
pytestmark = [
    pytest.mark.postgres,
    # On CI (`CI` set) scripts/services.sh installs it: there a missing one fails, never skips.
    pytest.mark.skipif(
        PGBOUNCER is None and not os.environ.get("CI"), reason="pgbouncer not installed"
    ),
]
STATEMENT_SECONDS = 1
PORTAL_SECONDS = 3
TIMEOUTS = StatementTimeouts(request=STATEMENT_SECONDS, portal_read=PORTAL_SECONDS)
# Transaction pooling hands one server connection to every client in turn: PgBouncer before
# 1.21 keeps no prepared statement apart per client (docs/operations.md, "Connection poolers").
NO_PREPARED = "?prepare_threshold=none"


@contextmanager
def pgbouncer(server: PostgresServer, mode: str, pool_size: int | None = None) -> Iterator[int]:
    """A PgBouncer in `mode` pooling on a free port (yielded), stopped afterwards. Transaction
    pooling with two server connections per database, the fewest a migration needs (it holds
    its lock on one while it works on the other): a test's clients share them, so a setting one
    of them left on one would reach the next. (Session pooling gives each client a
    server connection of its own for as long as it stays connected.) `pool_size`: server
    connections per database instead."""
    assert PGBOUNCER is not None
    folder = Path(tempfile.mkdtemp(prefix="kb-pgbouncer-"))
    port = free_ports(1)
    (folder / "users.txt").write_text(f'"{server.user}" ""\n', encoding="utf-8")
    (folder / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={server.host} port={server.port}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                "unix_socket_dir =",
                "auth_type = trust",
                f"auth_file = {folder / 'users.txt'}",
                f"pool_mode = {mode}",
                f"default_pool_size = {pool_size or (2 if mode == 'transaction' else 10)}",
                "logfile =",
                "pidfile =",
                "",
            ]
        ),
        encoding="utf-8",
    )
    # PgBouncer will not run as root: it reads its files as the user it switches to.
    as_user = ["-u", "nobody"] if os.geteuid() == 0 else []
    for path in (folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    with (folder / "pgbouncer.log").open("wb") as log:
        process = subprocess.Popen(
            [PGBOUNCER, *as_user, str(folder / "pgbouncer.ini")], stdout=log, stderr=log
        )
    try:
        _wait_listening(port, process, folder / "pgbouncer.log")
        yield port
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(encoding="utf-8")
        with closing(socket.socket()) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"pgbouncer not listening on {port}: {log.read_text(encoding='utf-8')}")


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database whose own statement timeout (100 ms) the CLI must not inherit."""
    with postgres_server.fresh_database() as name:
        with postgres_server.admin() as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET statement_timeout = 100')
        yield name


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_every_engine_works_behind_pgbouncer_with_its_own_bounds(
    postgres_server: PostgresServer, database: str, mode: str
) -> None:
    with pgbouncer(postgres_server, mode) as port:
        url = postgres_server.url(database, port=port) + NO_PREPARED
        migrate(url)  # the CLI's engine: one transaction, statements unbounded
        cli = open_engine(url)
        registry = SqlRegistry(url, timeouts=TIMEOUTS)
        book = registry.receipt_book(KEYS)
        web = registry._engine  # the workers' pool itself
        try:
            with session_on(cli) as session:
                session.execute(text("SELECT pg_sleep(0.3)"))
            book.append(content())  # the login path's write transaction
            assert set(book.named(content().school_id)) == {content().service_id}
            with pytest.raises(StoreUnavailable, match="QueryCanceled"):
                with session_on(web) as session:
                    session.execute(text("SELECT pg_sleep(1.5)"))
            with session_on(patient(web)) as session:
                session.execute(text("SELECT pg_sleep(1.5)"))
            # The server connection served the portal's bound last (transaction pooling: the
            # one server connection): none of it stayed.
            for engine, expected in ((web, f"{STATEMENT_SECONDS}s"), (cli, "0")):
                with session_on(engine) as session:
                    assert session.scalar(text("SHOW statement_timeout")) == expected
        finally:
            registry.close()
            cli.dispose()


def test_threads_share_one_server_connection_in_transaction_pooling(
    postgres_server: PostgresServer, database: str
) -> None:
    """A worker's threads, each on a pooled connection of its own, all served by PgBouncer's
    two server connections: the same statements run far past psycopg's prepare threshold."""
    with pgbouncer(postgres_server, "transaction") as port:
        url = postgres_server.url(database, port=port) + NO_PREPARED
        migrate(url)
        registry = SqlRegistry(url, timeouts=TIMEOUTS)
        book = registry.receipt_book(KEYS)
        failures: list[BaseException] = []

        def logins(student: str) -> None:
            try:
                for _ in range(10):
                    assert registry.school("00AA") is None
                    book.append(content(student=student))
            except BaseException as error:  # handed to the test to judge
                failures.append(error)

        threads = [threading.Thread(target=logins, args=(f"s{i}",)) for i in range(4)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert not failures, failures
            assert book.verify(content().school_id).receipts == 40
        finally:
            registry.close()


MIGRATION_LOCK_HELD = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = :key"
)


def test_migrations_behind_transaction_pooling_leave_no_lock_behind(
    postgres_server: PostgresServer,
) -> None:
    """Transaction pooling with several server connections, other clients busy meanwhile: the
    migration lock is taken and given back on one server connection (a transaction kept open
    on a connection of its own), never left on a pooled one where the next client, a second
    `migrate` included, would find it taken or take it again (migration_guard.py)."""
    stop = threading.Event()
    with (
        postgres_server.fresh_database() as name,
        pgbouncer(postgres_server, "transaction", 3) as port,
    ):
        url = postgres_server.url(name, port=port) + NO_PREPARED
        direct = open_engine(postgres_server.url(name))

        def busy() -> None:  # a worker's short transactions through the same pooler
            engine = open_engine(url)
            try:
                while not stop.is_set():
                    with session_on(engine) as session:
                        session.execute(text("SELECT pg_sleep(0.002)"))
            finally:
                engine.dispose()

        workers = [threading.Thread(target=busy) for _ in range(2)]
        for worker in workers:
            worker.start()
        try:
            for _ in range(3):
                with direct.begin() as connection:
                    connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
                migrate(url)
                with direct.connect() as connection:
                    held = connection.scalar(MIGRATION_LOCK_HELD, {"key": POSTGRES_MIGRATION_LOCK})
                assert held == 0
        finally:
            stop.set()
            for worker in workers:
                worker.join(10)
            direct.dispose()
