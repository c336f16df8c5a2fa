"""What keeps a schema migration whole when another runs at the same time, or when it fails.

One at a time: on PostgreSQL a second connection first takes a transaction advisory lock with a
fixed key and keeps that transaction open until the migration's work is committed or rolled
back, so two `ketenbroker migrate`s (or several containers starting and migrating) on one
registry run one after the other, directly or through a connection pooler; the one
that waits logs one line saying so, then finds the schema at head and changes nothing. It waits
in short slices, each a transaction of its own (`_take_migration_lock`), never in one statement
that holds a snapshot for as long as the other migration runs: that other may be building an
index concurrently (revision 0025), which waits for every such snapshot. On SQLite the write
transaction is the lock itself (`BEGIN IMMEDIATE`, database.py): the second waits up to the busy
timeout and, when the first takes longer, is refused in one line instead of a traceback.

A migration that fails is rolled back (one transaction; DDL is transactional on PostgreSQL,
and on SQLite as database.py drives it; on PostgreSQL a revision that builds an index
concurrently commits what came before it first, migration.py) and reported in one line naming
the revision and the cause: no traceback for the operator, and never SQLAlchemy's rendering of
the failed statement, whose parameters could hold a school's or an administrator's data.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, OperationalError

from broker.core.errors import ConfigurationError
from broker.registry import database

# Any constant works; it only has to be the same in every worker of one deployment. In pg_locks
# it shows as locktype advisory, classid 0, objid 1801613927.
POSTGRES_MIGRATION_LOCK = 0x6B62_7267

# How long one wait for another migration's lock lasts before the next (module docstring).
LOCK_WAIT_SLICE_MS = 200
# The key written into the statement, not bound: a statement with a bound parameter leaves its
# portal, and the portal's snapshot, open until the next one (the extended query protocol), and
# the holder idle in its transaction would then hold a snapshot the concurrent index build of
# 0025 waits for: through PgBouncer in transaction pooling, a build waiting forever.
_TRY_LOCK = text(f"SELECT pg_try_advisory_xact_lock({POSTGRES_MIGRATION_LOCK})")
_SLICE = text("SELECT set_config('lock_timeout', :slice, true)")
_WAIT_FOR_LOCK = text(f"SELECT pg_advisory_xact_lock({POSTGRES_MIGRATION_LOCK})")
_LOCK_NOT_AVAILABLE = "55P03"

log = logging.getLogger("broker.registry.migration")
# SQLSTATE classes whose PostgreSQL messages quote a value of the data: 22 data exception, 23
# integrity constraint violation.
_QUOTING_CLASSES = frozenset({"22", "23"})


@contextmanager
def migration_transaction(connection: Connection) -> Iterator[None]:
    """`connection`'s write transaction for a migration, committed when the block succeeds and
    rolled back when it raises, taken only once no other migration holds the registry.

    PostgreSQL: the lock is a transaction's advisory lock on a connection of its own
    (`_migration_lock`), held open until the block ends. So a revision that commits in between
    (an index built concurrently, 0025, through Alembic's `autocommit_block`) keeps the registry
    to itself, and the lock stays with one server connection whatever sits between: behind
    PgBouncer in transaction pooling an open transaction keeps its server connection, where a
    session lock taken in one transaction and released in another would be taken and given
    back on different server connections (the lock left behind on a pooled connection, and a
    second `migrate` landing there taking it again). The holder is idle in its transaction
    and holds no snapshot, so an index build does not wait for it. What is committed or rolled
    back at the end is the migration connection's transaction then, which may be one that
    block began. SQLite: refused (`ConfigurationError`) when another writer kept the registry
    locked past the busy timeout."""
    with _migration_lock(connection):
        _begin(connection)
        try:
            yield
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


def _begin(connection: Connection) -> None:
    try:
        connection.begin()
    except OperationalError as error:
        if getattr(error.orig, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY:
            raise
        raise ConfigurationError(
            f"another process kept the registry locked for more than "
            f"{database.BUSY_TIMEOUT_SECONDS} s (another migration still running?); nothing "
            "was changed: run it again once that has finished"
        ) from None


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """PostgreSQL: the migration lock, held by a transaction of a second connection of the same
    engine until the block ends (migration_transaction); nothing on SQLite, whose write
    transaction is the lock."""
    if connection.dialect.name != "postgresql":
        yield
        return
    with connection.engine.connect() as holder:
        _take_migration_lock(holder)
        try:
            yield
        finally:
            try:
                holder.rollback()  # ends the transaction, and with it the lock
            except DBAPIError:
                # A connection that broke meanwhile lost its transaction, and the lock with it.
                holder.invalidate()


def _take_migration_lock(holder: Connection) -> None:
    """Take the lock in `holder`'s transaction and leave that transaction open; wait for another
    migration's in slices of `LOCK_WAIT_SLICE_MS`, each a transaction of its own: a
    `CREATE INDEX CONCURRENTLY` the other runs waits for every transaction running a statement,
    this wait's included, and one wait until the lock came free would be a deadlock PostgreSQL
    ends by failing the index build. A slice ends long before PostgreSQL looks for deadlocks
    (`deadlock_timeout`, 1 s by default)."""
    if holder.scalar(_TRY_LOCK):
        return
    holder.rollback()
    # Without the line a second `migrate` (or a container's start) looks hung for as long as
    # the first one runs.
    log.info(
        "another migration of the registry is running: waiting for it to finish "
        "(PostgreSQL advisory lock %d)",
        POSTGRES_MIGRATION_LOCK,
    )
    while True:
        try:
            holder.execute(_SLICE, {"slice": f"{LOCK_WAIT_SLICE_MS}ms"})
            holder.execute(_WAIT_FOR_LOCK)
        except OperationalError as error:
            holder.rollback()
            if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            continue
        return


def failure_reason(error: Exception, password: str | None = None) -> str:
    """A failure in one line: the exception's class and the first line of its message; the
    driver's own for a database error, never SQLAlchemy's rendering of the statement and its
    parameters. A password the message might quote is masked."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    state = getattr(cause, "sqlstate", None)
    if isinstance(state, str) and state[:2] in _QUOTING_CLASSES:
        # A data exception or a constraint violation quotes the row's value (`Key (email)=(…)
        # already exists`): its SQLSTATE says what failed without it.
        return f"{type(cause).__name__} (SQLSTATE {state})"
    reason = (str(cause).strip().splitlines() or [""])[0]
    if password:
        reason = reason.replace(password, "***")
    return f"{type(cause).__name__}: {reason}" if reason else type(cause).__name__


def failed_revision(error: BaseException, versions: Path) -> str | None:
    """The revision whose code was running when `error` was raised: the innermost frame of a
    module in `versions`, read from that module's `revision`. None when it came from elsewhere
    (connecting, Alembic's own bookkeeping). Walks the traceback's frames, loading nothing: an
    error a revision raised once its module set `revision` (its upgrade, a statement of it) is
    named; one raised by the module's imports, above that line, is not."""
    folder = versions.resolve()
    found = None
    step = error.__traceback__
    while step is not None:
        frame = step.tb_frame
        if Path(frame.f_code.co_filename).resolve().parent == folder:
            found = frame.f_globals.get("revision", found)
        step = step.tb_next
    return found if isinstance(found, str) else None
