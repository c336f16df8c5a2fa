"""Opening the registry's database: one engine per process, safe for threads and workers.

SQLite (the embedded default) needs care to be shared by the threads of a dev server and by
several processes on one file:
- WAL journal, so readers never wait for a writer;
- a busy timeout, so a writer waits for another writer instead of failing at once;
- `BEGIN IMMEDIATE` for write transactions: a deferred transaction that read first and then
  writes fails with "database is locked" when another process wrote in between, and no busy
  timeout helps it;
- foreign keys, which SQLite leaves off unless asked per connection.
On every backend a statement whose parameters hold a NUL character is refused before it is
sent (`TextWithNul`): PostgreSQL cannot store or even compare such text (its driver raises, a 500
in the portal), and SQLite, which could, would let tests pass that production fails.
After a fork the child drops the pooled connections it inherited (sharing one SQLite or
PostgreSQL connection across processes corrupts its state); gunicorn forks after import.

Every wait on PostgreSQL is bounded where it can be without cutting an operator's long job:
- every engine: the connect timeout, and TCP keepalives and `tcp_user_timeout`, so a connection
  whose network died (nothing acknowledged, probes unanswered) fails instead of waiting forever;
  a live server acknowledges and answers probes however long its statement runs;
- the web workers' engine (`timeouts` given): the server ends any statement that runs longer
  than `timeouts.request` (a lock wait included) or waits longer than `LOCK_TIMEOUT_SECONDS`
  for one lock, the client gives up on an answer a second
  after that (bounded_connection.py: a server or proxy that keeps the socket open and says
  nothing), and a request waits no longer than that for a pooled connection either. The portal's
  reads over a whole school's receipts (`patient` engines), which grow with the school, get
  `timeouts.portal_read` instead: one slow page must not turn into a 503, nor may its bound
  become the login path's;
- every other engine (CLI jobs, migrations, which may wait for another migration's lock or copy a
  whole registry) runs statements with `statement_timeout` 0, whatever the database role says.
The statement and lock timeouts are set inside each transaction, in the BEGIN's own message (no
round trip of its own), never as a startup parameter: so the broker connects directly and through
PgBouncer alike, in session or transaction pooling (docs/operations.md, "Connection poolers").
The registry URL's own query wins over each of these defaults but the statement timeout; its
`prepare_threshold` (psycopg's: after how many runs a statement is prepared on the server;
`none`: never, as PgBouncer's transaction pooling before 1.21 needs) is read as a number.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

from sqlalchemy import URL, Engine, create_engine, event, select
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.pool import ConnectionPoolEntry

from broker.core.errors import ConfigurationError, RegistryUnavailable
from broker.registry.bounded_connection import BoundedConnection
from broker.registry.errors import RegistryNotMigrated, TextWithNul

BUSY_TIMEOUT_SECONDS = 30
# A PostgreSQL that accepts TCP but never answers (black-holed network, a server stuck before
# the handshake) would otherwise hold a worker until gunicorn kills it: libpq waits forever by
# default. Two seconds is far above a healthy connect and leaves the request time for its 503.
CONNECT_TIMEOUT_SECONDS = 2
# A dead network under an established connection (module docstring): data unacknowledged for
# 10 s ends it (milliseconds, as libpq takes it), and so do keepalive probes unanswered after
# 10 s of silence. Both only ever fire when the peer's kernel is gone; they bound the CLI's
# waits, the web workers' answer deadline is shorter.
DEAD_PEER_DEFAULTS = {
    "tcp_user_timeout": 10_000,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
}
# How much longer than its statement_timeout a web worker waits for an answer: the server's own
# cancellation arrives well within it.
ANSWER_MARGIN_SECONDS = 1.0
# How long a web worker's request transaction waits for one lock (`lock_timeout`): a login's
# receipt holds its school's chain head for a few milliseconds, so a much longer wait is a
# table or row some other session holds (a migration, an operator's LOCK TABLE, a stuck
# transaction), and each request thread waiting out the whole statement bound would tie the
# workers up (their /healthz and /readyz too). One second, not less: the logins of one large
# school queue on its chain head at 08:30, each for its commit (tens of milliseconds with a
# synchronous standby), and a queue must stay slowness, not 503s. The portal's patient reads
# keep their own bound only.
LOCK_TIMEOUT_SECONDS = 1.0
# Engine option the `begin` listener reads to choose BEGIN IMMEDIATE (see the module docstring).
_WRITE_OPTION = "ketenbroker_write"
# Engine option the `begin` listener reads to give a transaction the portal's longer bound.
_PATIENT_OPTION = "ketenbroker_patient"
# PostgreSQL's SQLSTATEs for a table or a column that does not exist (SQLite says so in words).
_UNDEFINED_TABLE_OR_COLUMN = frozenset({"42P01", "42703"})
# A server that cannot take this request now, raised by psycopg as other classes than
# OperationalError: a read-only one (25006, an InternalError: a demoted primary, a pooler pointed
# at a standby, `default_transaction_read_only`), and class 57P (operator intervention: admin or
# crash shutdown, "cannot connect now" while it starts or recovers).
_UNAVAILABLE_SQLSTATES = frozenset({"25006"})
_UNAVAILABLE_SQLSTATE_CLASSES = ("57P",)


@dataclass(frozen=True)
class StatementTimeouts:
    """A web worker's bounds on PostgreSQL, in seconds (module docstring): `request` for every
    transaction of a request, the login path's included; `portal_read` for the portal's reads
    over a whole school's receipts (`patient` engines)."""

    request: float
    portal_read: float


# Ids per `IN (...)` list or array parameter of a bulk read or lock (a registry import's
# thousands of schools): well under SQLite's limit of bound variables per statement.
IN_CHUNK = 500
T = TypeVar("T")


def in_chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    """`items` in runs of at most `IN_CHUNK`, in order."""
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def open_engine(url: str, *, timeouts: StatementTimeouts | None = None) -> Engine:
    """An engine for `url` (`sqlite:///path` or `postgresql+psycopg://...`), set up for sharing.

    `timeouts` (PostgreSQL only): the web workers' bounds on each statement, on each answer and
    on the wait for a pooled connection (module docstring); None for the CLI and migrations,
    whose statements may run as long as they need.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS},
        )
        _prepare_sqlite(engine)
    elif parsed.get_backend_name() == "postgresql":
        engine = _postgresql_engine(parsed, timeouts)
    else:
        engine = create_engine(parsed, pool_pre_ping=True)
    event.listen(engine, "before_cursor_execute", _refuse_text_with_nul)
    _dispose_after_fork(engine)
    return engine


def _postgresql_engine(parsed: URL, timeouts: StatementTimeouts | None) -> Engine:
    # pre_ping: a worker that sat idle past a server restart reconnects instead of failing.
    # client_encoding: text always comes back as str; a SQL_ASCII database would otherwise
    # hand SQLAlchemy bytes (a TypeError on connect), where `migrate` can refuse it in words.
    # The URL's query wins over these defaults.
    defaults: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "client_encoding": "utf8",
        **DEAD_PEER_DEFAULTS,
    }
    connect_args = {name: value for name, value in defaults.items() if name not in parsed.query}
    if "prepare_threshold" in parsed.query:
        connect_args["prepare_threshold"] = _prepare_threshold(parsed.query["prepare_threshold"])
    if timeouts is None:
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
        event.listen(engine, "do_connect", partial(_connect_bounded, None))
        return engine
    engine = create_engine(
        parsed,
        pool_pre_ping=True,
        pool_timeout=timeouts.request + ANSWER_MARGIN_SECONDS,
        connect_args=connect_args,
    )
    event.listen(engine, "do_connect", partial(_connect_bounded, timeouts))
    event.listen(engine, "begin", partial(_bound_transaction, timeouts))
    # The next checkout's ping, before any `begin`, waits no longer than a request's answer.
    event.listen(engine, "checkin", partial(_bound_between_transactions, timeouts))
    return engine


def _prepare_threshold(value: str | tuple[str, ...]) -> int | None:
    """The URL's `prepare_threshold` as psycopg takes it: a number, or None for `none`."""
    text = value if isinstance(value, str) else value[-1]
    if text.strip().lower() == "none":
        return None
    if text.strip().isdigit():
        return int(text)
    raise ConfigurationError(
        f"registry.url: prepare_threshold must be a whole number or none, not {text!r}"
    )


def _connect_bounded(
    timeouts: StatementTimeouts | None,
    _dialect: Dialect,
    _record: ConnectionPoolEntry,
    cargs: tuple[Any, ...],
    cparams: dict[str, Any],
) -> BoundedConnection:
    """psycopg's connection, whose transactions run with the engine's statement timeout (the
    CLI's: none) and whose answers are waited for as long as a request's (the CLI's: as long
    as they take)."""
    connection = BoundedConnection.connect(*cargs, **cparams)
    _bound_for(connection, timeouts, patient=False)
    return connection


def _bound_transaction(timeouts: StatementTimeouts, connection: Connection) -> None:
    """Each transaction of a web worker, before its BEGIN: a request's bounds, or the portal's
    longer ones on a `patient` engine."""
    patient = bool(connection.get_execution_options().get(_PATIENT_OPTION, False))
    _bound_for(connection.connection.driver_connection, timeouts, patient=patient)


def _bound_between_transactions(
    timeouts: StatementTimeouts, driver: Any, _record: ConnectionPoolEntry
) -> None:
    if driver is not None:  # None: the connection was dropped
        _bound_for(driver, timeouts, patient=False)


def _bound_for(driver: Any, timeouts: StatementTimeouts | None, *, patient: bool) -> None:
    connection = cast(BoundedConnection, driver)
    if timeouts is None:
        connection.bound(0, None)
        return
    if patient:
        seconds = timeouts.portal_read
        connection.bound(seconds, seconds + ANSWER_MARGIN_SECONDS)
        return
    seconds = timeouts.request
    # Half the statement's bound at most, so a lock wait is refused as one (LockNotAvailable)
    # before the statement's own cancellation, whatever `timeouts.request` says.
    lock_seconds = min(LOCK_TIMEOUT_SECONDS, seconds / 2)
    connection.bound(seconds, seconds + ANSWER_MARGIN_SECONDS, lock_seconds)


def _refuse_text_with_nul(
    _connection: Connection,
    _cursor: Any,
    _statement: str,
    parameters: Any,
    _context: Any,
    executemany: bool,
) -> None:
    """A NUL in any parameter (a form field, an id from a URL) stops the statement with a
    `BadRequest` the edge words, on SQLite as on PostgreSQL (see the module docstring)."""
    for row in _parameter_rows(parameters, executemany):
        values = row.values() if isinstance(row, Mapping) else row or ()
        if any(_holds_nul(value) for value in values):
            raise TextWithNul()


def _holds_nul(value: Any) -> bool:
    """A text with a NUL, or an array parameter (a list: shared_idps' bulk lock) holding one."""
    if isinstance(value, list):
        return any(isinstance(item, str) and "\x00" in item for item in value)
    return isinstance(value, str) and "\x00" in value


def _parameter_rows(parameters: Any, executemany: bool) -> Sequence[Any]:
    """The rows of a statement's parameters. An executemany's are a list of rows, except in
    SQLAlchemy's "insertmanyvalues" batches (several rows inserted in one flush with RETURNING,
    such as history rows with their generated ids): one INSERT of many VALUES, whose parameters
    are one flat row of every value (a tuple on SQLite, a mapping on PostgreSQL)."""
    if not executemany or not parameters or isinstance(parameters, Mapping):
        return (parameters,)
    first = parameters[0]
    listed = isinstance(first, Sequence) and not isinstance(first, (str, bytes))
    if isinstance(first, Mapping) or listed:
        return cast("Sequence[Any]", parameters)
    return (parameters,)


def _prepare_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module; the `begin` listener owns it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _dispose_after_fork(engine: Engine) -> None:
    # A weak reference, so the fork hook does not keep every engine ever opened alive.
    reference = weakref.ref(engine)

    def _forget_inherited_connections() -> None:
        inherited = reference()
        if inherited is not None:
            inherited.dispose(close=False)

    os.register_at_fork(after_in_child=_forget_inherited_connections)


def writer(engine: Engine) -> Engine:
    """The same engine (same pool), but its transactions take the write lock up front."""
    return engine.execution_options(**{_WRITE_OPTION: True})


def patient(engine: Engine) -> Engine:
    """The same engine (same pool), but a web worker's transactions on it run with the portal's
    longer bounds (`StatementTimeouts.portal_read`): reads whose work grows with a school's
    receipts, never the login path's."""
    return engine.execution_options(**{_PATIENT_OPTION: True})


@contextmanager
def session_on(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises.

    A database that cannot be reached becomes `RegistryUnavailable` (HTTP 503, "try again"), never
    a login that carries on without its registry; one without this version's schema becomes
    `RegistryNotMigrated`.
    """
    with _as_broker_errors(), Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def transaction_on(engine: Engine) -> Iterator[Connection]:
    """`session_on` without the ORM: a Core connection in one transaction, committed when the
    block succeeds and rolled back when it raises (the same `begin` listener, so SQLite's write
    transactions still take the lock up front). For hot paths that run prepared Core
    statements only: no unit of work, identity map or session events per call."""
    with _as_broker_errors(), engine.begin() as connection:
        yield connection


@contextmanager
def _as_broker_errors() -> Iterator[None]:
    """The database's failures the broker can name: unreachable (or too slow: a statement
    cancelled, an answer or a pooled connection not had in time; or unable to take writes or
    requests now: `_UNAVAILABLE_SQLSTATES`), or not migrated (a missing table is an
    OperationalError on SQLite and a ProgrammingError on PostgreSQL). Any other (a constraint,
    a bug) goes on as it is."""
    try:
        yield
    except DBAPIError as error:
        if _lacks_table_or_column(error):
            raise RegistryNotMigrated() from error
        if isinstance(error, OperationalError) or _unavailable_now(error):
            raise RegistryUnavailable(f"registry database: {type(error.orig).__name__}") from error
        raise
    except PoolTimeout as error:
        # Every pooled connection busy past the pool's timeout: a database too slow to keep up
        # is as unavailable to this request as one that is down.
        raise RegistryUnavailable("registry database: no pooled connection free in time") from error


def _unavailable_now(error: DBAPIError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES)


def _lacks_table_or_column(error: DBAPIError) -> bool:
    if getattr(error.orig, "sqlstate", None) in _UNDEFINED_TABLE_OR_COLUMN:
        return True
    return str(error.orig).startswith(("no such table", "no such column"))


def locked_row(session: Session, key: InstrumentedAttribute[str], entry_id: str) -> bool:
    """Lock the row `key == entry_id` for a change (PostgreSQL: FOR NO KEY UPDATE; SQLite
    writers are serial anyway); False when there is none. A removal of it (which locks the row
    FOR UPDATE, registry/removal.py) then either waits for the change, or the change waits for
    the removal and finds no row, instead of writing rows for an entry just deleted (a
    StaleDataError or a foreign key failure: a 500 in the portal)."""
    found = session.scalar(select(key).where(key == entry_id).with_for_update(key_share=True))
    return found is not None
