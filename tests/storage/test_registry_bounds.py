"""Every PostgreSQL wait of a web worker is bounded, and no CLI job is cut short.

The web workers' engine (`timeouts` given) gets the server-side statement timeout, a client-side
deadline on every answer a second later, and the same bound on the wait for a pooled
connection; the portal's reads over a school's receipts get the longer portal bound, and leave
it behind on no connection. Every engine gets TCP keepalives and `tcp_user_timeout`, and sends
its statement timeout in each transaction's BEGIN message, never as a startup parameter (which
PgBouncer refuses: tests/storage/test_registry_poolers.py). A connection that goes silent (the
forwarder frozen: sockets open, no byte passing) ends in `StoreUnavailable` (the 503) within
the bound, and the registry works again once it thaws. The failure drill
`tests/drills/test_registry_freezes.py` shows the same through gunicorn.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import psycopg
import pytest
from psycopg import pq
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import QueuePool

from broker.core.errors import ConfigurationError, StoreUnavailable
from broker.registry import SqlRegistry, migrate
from broker.registry.bounded_connection import BoundedConnection
from broker.registry.database import (
    ANSWER_MARGIN_SECONDS,
    CONNECT_TIMEOUT_SECONDS,
    LOCK_TIMEOUT_SECONDS,
    StatementTimeouts,
    open_engine,
    patient,
    session_on,
)
from broker.registry.receipts import ReceiptQuery, SqlReceiptBook
from tests.storage.test_receipt_book import KEYS, content
from tests.support.postgres import PostgresServer
from tests.support.processes import Mode, tcp_forwarder

pytestmark = pytest.mark.postgres

_Result = TypeVar("_Result")
STATEMENT_SECONDS = 1
PORTAL_SECONDS = 4
TIMEOUTS = StatementTimeouts(request=STATEMENT_SECONDS, portal_read=PORTAL_SECONDS)
# A pooled connection that went silent costs its answer deadline, the new one the pool's ping
# then opens its connect timeout; a second on top for a loaded test machine.
BOUND = STATEMENT_SECONDS + ANSWER_MARGIN_SECONDS + CONNECT_TIMEOUT_SECONDS + 1


@dataclass(frozen=True)
class Database:
    server: PostgresServer
    name: str

    @property
    def url(self) -> str:
        return self.server.url(self.name)


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[Database]:
    with postgres_server.fresh_database() as name:
        yield Database(postgres_server, name)


def outcome(call: Callable[[], _Result], wait: float) -> _Result | BaseException:
    """What `call` returned or raised, run in a thread of its own: a call that is still waiting
    after `wait` seconds fails the test instead of hanging it."""
    found: list[_Result | BaseException] = []

    def run() -> None:
        try:
            found.append(call())
        except Exception as error:  # handed to the test to judge
            found.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait)
    assert found, f"still waiting after {wait} s"
    return found[0]


def test_a_silent_connection_is_store_unavailable_within_the_bound_and_recovers(
    database: Database,
) -> None:
    migrate(database.url)
    with tcp_forwarder(database.server.port) as link:
        registry = SqlRegistry(
            database.server.url(database.name, port=link.port),
            timeouts=TIMEOUTS,
        )
        try:
            assert registry.school("00AA") is None  # a pooled connection through the link
            link.set_mode(Mode.FREEZE)
            started = time.monotonic()
            found = outcome(lambda: registry.school("00AA"), BOUND + 10)
            took = time.monotonic() - started
            assert isinstance(found, StoreUnavailable), found
            assert took < BOUND, took
            link.set_mode(Mode.FORWARD)
            assert outcome(lambda: registry.school("00AA"), BOUND) is None
        finally:
            link.set_mode(Mode.FORWARD)  # a call still waiting (the bug) gets its answer
            registry.close()


def test_the_web_engine_cancels_a_long_statement_and_the_cli_engine_lets_it_run(
    database: Database,
) -> None:
    # A statement timeout the database (or its role) sets, as docs/operations.md once advised,
    # would cut migrations and imports: each engine sets its own.
    with database.server.admin() as admin:
        admin.execute(f'ALTER DATABASE "{database.name}" SET statement_timeout = 100')
    web = open_engine(database.url, timeouts=TIMEOUTS)
    cli = open_engine(database.url)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="QueryCanceled"):
            with session_on(web) as session:
                session.execute(text("SELECT pg_sleep(3)"))
        assert time.monotonic() - started < STATEMENT_SECONDS + ANSWER_MARGIN_SECONDS
        with session_on(web) as session:
            assert session.scalar(text("SHOW statement_timeout")) == f"{STATEMENT_SECONDS}s"
        with session_on(cli) as session:
            assert session.scalar(text("SHOW statement_timeout")) == "0"
            session.execute(text("SELECT pg_sleep(1.5)"))
    finally:
        web.dispose()
        cli.dispose()


def test_every_engine_finds_a_dead_peer_and_the_url_wins(database: Database) -> None:
    for url, idle in ((database.url, "10"), (f"{database.url}?keepalives_idle=30", "30")):
        engine = open_engine(url)
        try:
            with engine.connect() as connection:
                driver = connection.connection.driver_connection
                assert driver is not None
                parameters = driver.info.get_parameters()
        finally:
            engine.dispose()
        assert parameters["keepalives"] == "1"
        assert parameters["keepalives_idle"] == idle
        assert parameters["tcp_user_timeout"] == "10000"


def test_options_in_the_url_are_kept_but_the_statement_timeout_is_the_engines(
    database: Database,
) -> None:
    url = f"{database.url}?options=-c%20statement_timeout%3D7s%20-c%20application_name%3Dkb"
    engine = open_engine(url, timeouts=TIMEOUTS)
    try:
        with session_on(engine) as session:
            assert session.scalar(text("SHOW statement_timeout")) == f"{STATEMENT_SECONDS}s"
            assert session.scalar(text("SHOW application_name")) == "kb"
    finally:
        engine.dispose()
    # The web engine waits for a pooled connection no longer than for an answer.
    assert isinstance(engine.pool, QueuePool)
    assert engine.pool.timeout() == STATEMENT_SECONDS + ANSWER_MARGIN_SECONDS


def test_an_exhausted_pool_is_store_unavailable(database: Database) -> None:
    engine = create_engine(database.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        with engine.connect():  # the pool's only connection, held
            with pytest.raises(StoreUnavailable, match="no pooled connection"):
                with session_on(engine) as session:
                    session.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def _engine(book: SqlReceiptBook) -> Engine:
    return book._engine  # the book's own pool, the one traced


def _driver(engine: Engine) -> BoundedConnection:
    """The driver connection a checkout hands out (the pool's only one, in these tests)."""
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
    assert isinstance(driver, BoundedConnection)
    return driver


def round_trips(engine: Engine, call: Callable[[], object]) -> list[str]:
    """What `call` sent on the pool's one connection, a line per round trip: a simple query's
    text, or `extended` for a statement sent with its parameters (libpq's trace)."""
    driver = _driver(engine)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as trace:
        driver.pgconn.trace(trace.fileno())
        driver.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            call()
        finally:
            driver.pgconn.untrace()
        trace.seek(0)
        sent = [line.split("\t") for line in trace.read().splitlines() if line.startswith("F")]
    return [
        message[3].strip().strip('"') if message[2] == "Query" else "extended"
        for message in sent
        if message[2] in ("Query", "Sync")
    ]


def test_the_timeout_rides_in_each_begin_message_and_no_startup_option_is_sent(
    database: Database,
) -> None:
    """No `options` startup parameter (PgBouncer refuses the connection), and no round trip of
    its own for the timeout: the login path's receipt is written in as many as before."""
    migrate(database.url)
    registry = SqlRegistry(database.url, timeouts=TIMEOUTS)
    book = registry.receipt_book(KEYS)
    cli = open_engine(database.url)
    try:
        book.append(content())  # the pool's one connection; the school's chain row made
        sent = round_trips(_engine(book), lambda: book.append(content(student="leerling-2")))
        for engine in (_engine(book), cli):
            assert "options" not in _driver(engine).info.get_parameters()
        cli_sent = round_trips(cli, lambda: select_one(cli))
    finally:
        registry.close()
        cli.dispose()
    # The pool's ping, BEGIN with the timeout, the chain's head, the receipt with the new head
    # (one statement on PostgreSQL), COMMIT.
    lock = round(min(LOCK_TIMEOUT_SECONDS, STATEMENT_SECONDS / 2) * 1000)
    begin = f"BEGIN; SET LOCAL statement_timeout = {STATEMENT_SECONDS * 1000}; "
    begin += f"SET LOCAL lock_timeout = {lock}"
    assert sent == [";", begin, "extended", "extended", "COMMIT"]
    cli_begin = "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0"
    assert cli_sent[:2] == [";", cli_begin]


def test_the_portals_receipt_reads_get_their_own_bound_and_leave_it_on_no_connection(
    database: Database,
) -> None:
    """A lock held past the request's bound (a statement timeout counts the wait for it): the
    login path's receipt gives up at the lock timeout, each of the portal's reads over a school's
    receipts waits it out, and the connection's next transaction has the request's bounds."""
    migrate(database.url)
    registry = SqlRegistry(database.url, timeouts=TIMEOUTS)
    book = registry.receipt_book(KEYS)
    query = ReceiptQuery(content().school_id)
    held = STATEMENT_SECONDS + 1.0
    reads: dict[str, Callable[[], object]] = {
        "named": lambda: book.named(query.school_id),
        "totals": lambda: book.totals(query),
        "find": lambda: book.find(query),
        "each": lambda: list(book.each(query)),
    }
    try:
        book.append(content())
        with receipts_locked(database, held):
            started = time.monotonic()
            # The lock timeout, well before the statement's: a locked table ties a login's
            # thread (and a probe's) a fraction of a second, not the whole bound.
            with pytest.raises(StoreUnavailable, match="LockNotAvailable"):
                book.append(content(student="leerling-2"))
            assert (
                time.monotonic() - started < min(LOCK_TIMEOUT_SECONDS, STATEMENT_SECONDS / 2) + 0.5
            )
        for name, read in reads.items():
            with receipts_locked(database, held):
                started = time.monotonic()
                found = outcome(read, PORTAL_SECONDS + ANSWER_MARGIN_SECONDS + 5)
                took = time.monotonic() - started
            assert not isinstance(found, BaseException), (name, found)
            assert STATEMENT_SECONDS < took < PORTAL_SECONDS, (name, took)
        driver = _driver(_engine(book))
        assert driver.answer_seconds == STATEMENT_SECONDS + ANSWER_MARGIN_SECONDS
        with session_on(_engine(book)) as session:
            assert session.scalar(text("SHOW statement_timeout")) == f"{STATEMENT_SECONDS}s"
        with session_on(patient(_engine(book))) as session:
            assert session.scalar(text("SHOW statement_timeout")) == f"{PORTAL_SECONDS}s"
            assert driver.answer_seconds == PORTAL_SECONDS + ANSWER_MARGIN_SECONDS
        assert driver.answer_seconds == STATEMENT_SECONDS + ANSWER_MARGIN_SECONDS
    finally:
        registry.close()


@contextmanager
def receipts_locked(database: Database, seconds: float) -> Iterator[None]:
    """The receipts table locked by another connection, released after `seconds`."""
    server = database.server
    with psycopg.connect(
        host=server.host, port=server.port, user=server.user, dbname=database.name
    ) as locker:
        locker.execute("LOCK TABLE receipts IN ACCESS EXCLUSIVE MODE")
        release = threading.Timer(seconds, locker.commit)
        release.start()
        try:
            yield
        finally:
            release.join()


def select_one(engine: Engine) -> None:
    with session_on(engine) as session:
        session.execute(text("SELECT 1"))


@pytest.mark.parametrize(("given", "threshold"), [("none", None), ("None", None), ("2", 2)])
def test_the_urls_prepare_threshold_reaches_psycopg(
    database: Database, given: str, threshold: int | None
) -> None:
    engine = open_engine(f"{database.url}?prepare_threshold={given}", timeouts=TIMEOUTS)
    try:
        assert _driver(engine).prepare_threshold == threshold
    finally:
        engine.dispose()


def test_a_prepare_threshold_that_is_no_number_is_refused_in_words(database: Database) -> None:
    with pytest.raises(ConfigurationError, match="prepare_threshold must be a whole number"):
        open_engine(f"{database.url}?prepare_threshold=soon")
