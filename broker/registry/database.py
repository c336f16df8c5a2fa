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
- the web workers' engine (`statement_timeout` given): the server ends any statement that runs
  longer (a lock wait included), the client gives up on an answer a second after that
  (answer_deadline.py: a server or proxy that keeps the socket open and says nothing), and a
  request waits no longer than that for a pooled connection either;
- every other engine (CLI jobs, migrations, which may wait for another migration's lock or copy a
  whole registry) runs statements with `statement_timeout` 0, whatever the database role says.
The registry URL's own query wins over each of these defaults but the statement timeout.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, cast

from sqlalchemy import URL, Engine, create_engine, event, select
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.pool import ConnectionPoolEntry

from broker.core.errors import StoreUnavailable
from broker.registry.answer_deadline import AnswerBoundConnection
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
# Engine option the `begin` listener reads to choose BEGIN IMMEDIATE (see the module docstring).
_WRITE_OPTION = "ketenbroker_write"
# PostgreSQL's SQLSTATEs for a table or a column that does not exist (SQLite says so in words).
_UNDEFINED_TABLE_OR_COLUMN = frozenset({"42P01", "42703"})


def open_engine(url: str, *, statement_timeout: float | None = None) -> Engine:
    """An engine for `url` (`sqlite:///path` or `postgresql+psycopg://...`), set up for sharing.

    `statement_timeout` (seconds, PostgreSQL only): the web workers' bound on each statement, on
    each answer and on the wait for a pooled connection (module docstring); None for the CLI
    and migrations, whose statements may run as long as they need.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS},
        )
        _prepare_sqlite(engine)
    elif parsed.get_backend_name() == "postgresql":
        engine = _postgresql_engine(parsed, statement_timeout)
    else:
        engine = create_engine(parsed, pool_pre_ping=True)
    event.listen(engine, "before_cursor_execute", _refuse_text_with_nul)
    _dispose_after_fork(engine)
    return engine


def _postgresql_engine(parsed: URL, statement_timeout: float | None) -> Engine:
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
    # The URL's own `options` are kept, but PostgreSQL applies `-c` settings in order and this
    # one comes last: the statement timeout is the engine's, never longer than its answer
    # deadline (the web workers) and never a cut in a CLI job.
    milliseconds = 0 if statement_timeout is None else round(statement_timeout * 1000)
    own = parsed.query.get("options", ())
    connect_args["options"] = " ".join(
        [*([own] if isinstance(own, str) else own), f"-c statement_timeout={milliseconds}"]
    )
    if statement_timeout is None:
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    answer_seconds = statement_timeout + ANSWER_MARGIN_SECONDS
    engine = create_engine(
        parsed, pool_pre_ping=True, pool_timeout=answer_seconds, connect_args=connect_args
    )
    event.listen(engine, "do_connect", partial(_connect_bounded, answer_seconds))
    return engine


def _connect_bounded(
    answer_seconds: float,
    _dialect: Dialect,
    _record: ConnectionPoolEntry,
    cargs: tuple[Any, ...],
    cparams: dict[str, Any],
) -> AnswerBoundConnection:
    """The web workers' connections: psycopg's, with a deadline on every answer."""
    connection = AnswerBoundConnection.connect(*cargs, **cparams)
    connection.answer_seconds = answer_seconds
    return connection


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
        if any(isinstance(value, str) and "\x00" in value for value in values):
            raise TextWithNul()


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


@contextmanager
def session_on(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises.

    A database that cannot be reached becomes `StoreUnavailable` (HTTP 503, "try again"), never
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
    cancelled, an answer or a pooled connection not had in time), or not migrated (a missing
    table is an OperationalError on SQLite and a ProgrammingError on PostgreSQL). Any other
    (a constraint, a bug) goes on as it is."""
    try:
        yield
    except DBAPIError as error:
        if _lacks_table_or_column(error):
            raise RegistryNotMigrated() from error
        if isinstance(error, OperationalError):
            raise StoreUnavailable(f"registry database: {type(error.orig).__name__}") from error
        raise
    except PoolTimeout as error:
        # Every pooled connection busy past the pool's timeout: a database too slow to keep up
        # is as unavailable to this request as one that is down.
        raise StoreUnavailable("registry database: no pooled connection free in time") from error


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
