"""Registry migrations that run beside another, or fail halfway, on SQLite and PostgreSQL
(broker/registry/migration_guard.py), and /readyz's look at a schema from before revision 0016.

Two migrations at once run with real connections, in threads and in two `ketenbroker migrate`
processes: a made-up revision after HEAD holds the first inside its upgrade until the second is seen
waiting (PostgreSQL: waiting on the advisory lock in pg_stat_activity; SQLite: blocked in its
`BEGIN IMMEDIATE`), counts each time it is applied in a file, and only then lets the first go on.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError

from broker.core.errors import ConfigurationError
from broker.registry import SqlRegistry, migrate
from broker.registry import database as registry_database
from broker.registry.database import open_engine
from broker.registry.migration import SCRIPT_LOCATION, use_versions
from broker.registry.migration_guard import POSTGRES_MIGRATION_LOCK, failure_reason
from tests.adapters.test_cli_serve import _config_on
from tests.storage.test_publisher_integrity import HEAD, _move
from tests.storage.test_rolling_upgrade import _state
from tests.support.cli import run
from tests.support.postgres import PostgresServer

NEXT = f"{int(HEAD) + 1:04d}"  # the made-up revision, after this version's last
REAL_VERSIONS = SCRIPT_LOCATION / "versions"
WAITING = (
    "another migration of the registry is running: waiting for it to finish "
    f"(PostgreSQL advisory lock {POSTGRES_MIGRATION_LOCK})"
)
TIMEOUT = 180  # seconds: a loaded machine starts a `ketenbroker` process slowly

_REVISION = '''"""A made-up revision for the tests."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "{next}"
down_revision = "{head}"
branch_labels = None
depends_on = None
oldest_reader = "0016"

FOLDER = Path({folder!r})


def upgrade() -> None:
{body}


def downgrade() -> None:
    op.drop_table("extra_made_up")
'''
# Counts itself, says it holds the migration, and goes on once the test says so.
_HELD = """    with (FOLDER / "applied").open("a", encoding="utf-8") as applied:
        applied.write("made up\\n")
    (FOLDER / "holding").touch()
    deadline = time.monotonic() + 600
    while not (FOLDER / "go").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("never told to go on")
        time.sleep(0.05)
    op.create_table("extra_made_up", sa.Column("id", sa.Integer, primary_key=True))"""
_GOOD = """    op.create_table("extra_made_up", sa.Column("id", sa.Integer, primary_key=True))
    with op.batch_alter_table("schools") as batch:
        batch.add_column(sa.Column("extra", sa.Integer))"""
# Fails after DDL (a new table, and on SQLite a batch rebuild of `schools`): in Python, or in a
# statement the database refuses.
_RAISES = f"""{_GOOD}
    raise RuntimeError("made to fail")"""
_BAD_STATEMENT = f"""{_GOOD}
    op.execute("INSERT INTO no_such_table VALUES (1)")"""


@pytest.fixture
def made_up_revision(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Makes this version's revisions the real ones plus a made-up NEXT whose upgrade is the given
    body, in a folder of copies (also where it keeps its files); the real ones afterwards."""

    def made(body: str) -> Path:
        folder = tmp_path / f"versions-{len(list(tmp_path.glob('versions-*')))}"
        shutil.copytree(REAL_VERSIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
        source = _REVISION.format(next=NEXT, head=HEAD, folder=str(folder), body=body)
        (folder / f"{NEXT}_extra.py").write_text(source, encoding="utf-8")
        use_versions(folder)
        return folder

    yield made
    use_versions(REAL_VERSIONS)


def _wait_for(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _waiting_on_the_lock(url: str) -> bool:
    """Whether a connection to the registry's database waits on an advisory lock."""
    database = make_url(url)
    with psycopg.connect(
        host=database.host, port=database.port, user=database.username, dbname=database.database
    ) as connection:
        found = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        ).fetchone()
    return found is not None and found[0] > 0


def _blocked_in_begin(thread: threading.Thread) -> bool:
    """Whether `thread` is inside SQLite's `BEGIN IMMEDIATE` (database.py), waiting for the
    write lock."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "_on_begin":
            return True
        frame = frame.f_back
    return False


def _at_made_up(url: str, folder: Path) -> None:
    """The registry at NEXT, applied once, with its table; its oldest reader recorded."""
    revisions, readers, tables = _state(url)
    assert (revisions, readers) == ((NEXT,), ["0016"])
    assert "extra_made_up" in tables
    assert (folder / "applied").read_text(encoding="utf-8") == "made up\n"


def test_two_migrations_at_once_in_threads_run_one_after_the_other(
    registry_url: str,
    made_up_revision: Callable[[str], Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # From no schema at all: every revision, the real ones included, applied by the first only.
    folder = made_up_revision(_HELD)
    outcome: dict[str, object] = {}

    def migrating(name: str) -> threading.Thread:
        def body() -> None:
            try:
                outcome[name] = migrate(registry_url)
            except Exception as error:
                outcome[name] = error

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return thread

    with caplog.at_level(logging.INFO, logger="broker.registry.migration"):
        first = migrating("first")
        _wait_for("the first migration to hold", (folder / "holding").exists)
        second = migrating("second")
        if registry_url.startswith("sqlite"):
            _wait_for("the second to wait", lambda: _blocked_in_begin(second))
        else:
            _wait_for("the second to wait", lambda: _waiting_on_the_lock(registry_url))
        (folder / "go").touch()
        first.join(TIMEOUT)
        second.join(TIMEOUT)
    created = f"created the registry's schema at revision {NEXT}"
    assert outcome == {"first": created, "second": None}
    _at_made_up(registry_url, folder)
    # PostgreSQL: the one that waited says so, once; SQLite waits silently (its busy timeout).
    # The first says what it did once it committed.
    expected = [created] if registry_url.startswith("sqlite") else [WAITING, created]
    assert caplog.messages == expected


_KETENBROKER = """
import sys
from pathlib import Path

from broker.cli.main import main
from broker.registry.migration import use_versions

use_versions(Path(sys.argv[1]))
Path(sys.argv[2]).touch()
main(sys.argv[3:], prog_name="ketenbroker")
"""


def test_two_ketenbroker_migrate_processes_at_once_both_exit_0(
    registry_url: str, tmp_path: Path, made_up_revision: Callable[[str], Path]
) -> None:
    config = _config_on(tmp_path, registry_url)
    folder = made_up_revision(_HELD)
    environment = {**os.environ, "PYTHONPATH": str(Path.cwd())}

    def ketenbroker_migrate(name: str) -> subprocess.Popen[str]:
        started = tmp_path / f"started-{name}"
        return subprocess.Popen(
            [sys.executable, "-c", _KETENBROKER, folder, started, "migrate", "--config", config],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )

    first = ketenbroker_migrate("first")
    try:
        _wait_for("the first migration to hold", (folder / "holding").exists)
        second = ketenbroker_migrate("second")
        try:
            if registry_url.startswith("sqlite"):
                # Not observable from here: give it time to reach its BEGIN IMMEDIATE (the
                # thread test above sees it block).
                _wait_for("the second to start", (tmp_path / "started-second").exists)
                time.sleep(2)
            else:
                _wait_for("the second to wait", lambda: _waiting_on_the_lock(registry_url))
            (folder / "go").touch()
            out_first, err_first = first.communicate(timeout=TIMEOUT)
            out_second, err_second = second.communicate(timeout=TIMEOUT)
        finally:
            second.kill()
    finally:
        first.kill()
    created = f"created the registry's schema at revision {NEXT}\n"
    assert (first.returncode, out_first) == (0, created), err_first
    assert (second.returncode, out_second) == (0, "Registry schema is up to date.\n"), err_second
    _at_made_up(registry_url, folder)
    lines = err_second.splitlines()
    if registry_url.startswith("sqlite"):
        assert lines == []
    else:
        # One line, in the configured log format (json).
        assert len(lines) == 1 and f'"message": "{WAITING}"' in lines[0], err_second


def test_sqlite_locked_past_the_busy_timeout_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = tmp_path / "registry.sqlite3"
    url = f"sqlite:///{registry}"
    config = _config_on(tmp_path, url)
    migrate(url)
    _move(url, "0015", down=True)
    before = _state(url)
    monkeypatch.setattr(registry_database, "BUSY_TIMEOUT_SECONDS", 1)
    other = sqlite3.connect(registry, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        message = (
            "another process kept the registry locked for more than 1 s (another migration "
            "still running?); nothing was changed: run it again once that has finished"
        )
        with pytest.raises(ConfigurationError) as refused:
            migrate(url)
        assert str(refused.value) == message
        result = run("migrate", "--config", config)
        assert (result.exit_code, result.output) == (1, f"Error: {message}\n")
    finally:
        other.close()
    assert _state(url) == before
    migrate(url)
    assert _state(url)[0] == (HEAD,)


def _failure(url: str, reason: str, still: str) -> str:
    shown = make_url(url).render_as_string(hide_password=True)
    return (
        f"migrating the registry at {shown} failed in revision {NEXT}: {reason}; nothing was "
        f"changed: the registry {still}"
    )


def _columns(url: str, table: str) -> list[str]:
    registry = SqlRegistry(url)
    try:
        with registry._engine.connect() as connection:
            return [column["name"] for column in inspect(connection).get_columns(table)]
    finally:
        registry.close()


def _tables(url: str) -> list[str]:
    registry = SqlRegistry(url)
    try:
        with registry._engine.connect() as connection:
            return inspect(connection).get_table_names()
    finally:
        registry.close()


@pytest.mark.parametrize(
    ("body", "reasons"),
    [
        (
            _RAISES,
            {
                "sqlite": "RuntimeError: made to fail",
                "postgresql": "RuntimeError: made to fail",
            },
        ),
        (
            _BAD_STATEMENT,
            {
                "sqlite": "OperationalError: no such table: no_such_table",
                "postgresql": 'UndefinedTable: relation "no_such_table" does not exist',
            },
        ),
    ],
    ids=["raises", "bad_statement"],
)
def test_a_revision_that_fails_after_its_ddl_leaves_nothing_and_says_so_in_one_line(
    registry_url: str,
    tmp_path: Path,
    made_up_revision: Callable[[str], Path],
    body: str,
    reasons: dict[str, str],
) -> None:
    # SQLite too: database.py runs the upgrade in one BEGIN IMMEDIATE transaction, and SQLite's
    # DDL (batch mode's copy, drop and rename of `schools` included) is transactional.
    config = _config_on(tmp_path, registry_url)
    migrate(registry_url)
    before, schools = _state(registry_url), _columns(registry_url, "schools")
    made_up_revision(body)
    backend = make_url(registry_url).get_backend_name()
    message = _failure(registry_url, reasons[backend], f"is still at revision {HEAD}")
    with pytest.raises(ConfigurationError) as failed:
        migrate(registry_url)
    assert str(failed.value) == message
    assert (_state(registry_url), _columns(registry_url, "schools")) == (before, schools)
    # The operator's view: one line, exit 1, no traceback; and so for every command that
    # migrates first.
    for command in (["migrate"], ["school", "list"]):
        result = run(*command, "--config", config)
        assert (result.exit_code, result.output) == (1, f"Error: {message}\n")
    assert (_state(registry_url), _columns(registry_url, "schools")) == (before, schools)
    # Put right (the fixed revision shipped), a rerun applies it.
    made_up_revision(_GOOD)
    result = run("migrate", "--config", config)
    assert (result.exit_code, result.output) == (
        0,
        f"migrated the registry from revision {HEAD} to {NEXT}\n",
    )
    assert _state(registry_url)[:2] == ((NEXT,), ["0016"])
    assert "extra" in _columns(registry_url, "schools")


def test_a_failed_first_migration_leaves_no_schema_at_all_but_what_0025_committed(
    registry_url: str, made_up_revision: Callable[[str], Path]
) -> None:
    # Every revision, the real ones included, in the one transaction that rolls back. On
    # PostgreSQL but one: 0025 builds its index concurrently, outside a transaction, committing
    # the revisions before it first (its autocommit_block); the line says where that left it.
    made_up_revision(_RAISES)
    with pytest.raises(ConfigurationError) as failed:
        migrate(registry_url)
    if registry_url.startswith("sqlite"):
        assert str(failed.value) == _failure(
            registry_url, "RuntimeError: made to fail", "still has no schema"
        )
        assert _tables(registry_url) == []
        return
    shown = make_url(registry_url).render_as_string(hide_password=True)
    assert str(failed.value) == (
        f"migrating the registry at {shown} failed in revision {NEXT}: RuntimeError: made to "
        "fail; the revisions before it were applied: the registry is now at revision 0024, "
        "run migrate again once the cause is put right"
    )
    assert _state(registry_url)[:2] == (("0024",), ["0015"])
    # The index was built and stays; the rerun finds it and records 0025 without a new build.
    made_up_revision(_GOOD)
    assert migrate(registry_url) == f"migrated the registry from revision 0024 to {NEXT}"
    assert _state(registry_url)[:2] == ((NEXT,), ["0016"])


@pytest.mark.postgres
def test_migrate_on_a_database_that_does_not_answer_says_so_in_one_line(
    postgres_registry_url: str, tmp_path: Path
) -> None:
    # A port nothing listens on (the test server's own port plus one is never another
    # PostgreSQL of these tests).
    database = make_url(postgres_registry_url)
    url = database.set(port=(database.port or 5432) + 1).render_as_string(hide_password=False)
    config = _config_on(tmp_path, url)
    result = run("migrate", "--config", config)
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: migrating the registry at {url} failed: OperationalError: connection failed"
    )
    assert result.output.endswith("; nothing was changed\n")
    assert len(result.output.splitlines()) == 1


@pytest.mark.postgres
@pytest.mark.parametrize("revision", ["0015", HEAD])
def test_the_schema_probe_is_one_statement_that_never_fails_on_postgresql(
    postgres_registry_url: str, revision: str
) -> None:
    # Before revision 0016 there is no `schema_readers`: a statement naming it would fail on
    # every /readyz, an ERROR in the server's log each time.
    migrate(postgres_registry_url)
    _move(postgres_registry_url, revision, down=True)
    registry = SqlRegistry(postgres_registry_url)
    statements: list[str] = []
    failures: list[str] = []
    states: list[psycopg.pq.TransactionStatus] = []

    def executed(connection: Connection, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)
        # The probe's own session, right after its statement: not in a failed transaction.
        session = connection.connection.dbapi_connection
        assert isinstance(session, psycopg.Connection)
        states.append(session.info.transaction_status)

    engine = registry._engine
    event.listen(engine, "after_cursor_execute", executed)
    event.listen(engine, "handle_error", lambda context: failures.append(str(context)))
    try:
        expected = ((revision,), "0015" if revision == HEAD else None)
        for _ in range(2):
            assert registry.schema_in_use() == expected
        assert len(statements) == 2 and failures == []
        assert states == [psycopg.pq.TransactionStatus.INTRANS] * 2
    finally:
        registry.close()


def test_migrate_says_what_it_applied(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/registry.sqlite3"
    config = _config_on(tmp_path, url)
    _move(url, "0015")
    result = run("migrate", "--config", config)
    assert (result.exit_code, result.output) == (
        0,
        f"migrated the registry from revision 0015 to {HEAD}\n",
    )
    result = run("migrate", "--config", config)
    assert (result.exit_code, result.output) == (0, "Registry schema is up to date.\n")
    (tmp_path / "registry.sqlite3").unlink()
    assert migrate(url) == f"created the registry's schema at revision {HEAD}"


@pytest.mark.postgres
def test_a_postgresql_database_not_in_utf8_is_refused_in_words(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    # SQL_ASCII is what `initdb` makes under the C locale; psycopg then hands back bytes, and
    # SQLAlchemy failed on connect with "cannot use a string pattern on a bytes-like object".
    with postgres_server.fresh_database(ascii_only=True) as database:
        url = postgres_server.url(database)
        result = run("migrate", "--config", _config_on(tmp_path, url))
        assert (result.exit_code, result.output) == (
            1,
            "Error: the registry's PostgreSQL database uses the encoding SQL_ASCII; Ketenbroker "
            "needs UTF8: create the database with ENCODING 'UTF8' (and TEMPLATE template0), "
            "nothing was changed\n",
        )
        engine = open_engine(url)
        try:
            assert inspect(engine).get_table_names() == []
        finally:
            engine.dispose()


def test_a_failure_that_quotes_a_value_is_reported_by_its_sqlstate() -> None:
    # A constraint violation or data exception names the row's value (here an e-mail address):
    # the one line gives the class and SQLSTATE instead, never the value.
    violation = psycopg.errors.UniqueViolation(
        'duplicate key value violates unique constraint "admins_email_key"\n'
        "DETAIL:  Key (email)=(sanne@school.example) already exists."
    )
    failure = IntegrityError("INSERT INTO admins ...", {"email": "sanne@school.example"}, violation)
    assert failure_reason(failure) == "UniqueViolation (SQLSTATE 23505)"
    # Other errors keep their first line: it names the table or revision to look at.
    missing = psycopg.errors.UndefinedTable('relation "no_such_table" does not exist')
    assert failure_reason(ProgrammingError("INSERT", {}, missing)) == (
        'UndefinedTable: relation "no_such_table" does not exist'
    )
