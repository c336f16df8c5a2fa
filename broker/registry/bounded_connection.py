"""A psycopg connection that bounds each wait on the server: a statement timeout and a lock
timeout set inside each transaction, and a deadline on each answer.

The statement and lock timeouts ride in the transaction's own BEGIN: psycopg opens every transaction
with a BEGIN of its own before the first statement (simple query protocol, one round trip), and this
connection sends `BEGIN; SET LOCAL statement_timeout = …; SET LOCAL lock_timeout = …` in that same
message instead. So it costs no round trip, not even on the login path's receipt transaction, and it
works wherever a transaction does: directly against PostgreSQL and behind a connection pooler such
as PgBouncer, in session and in transaction pooling. A startup parameter (`options=-c
statement_timeout=…`) is refused by PgBouncer, and a session-level SET would stay on a server
connection that transaction pooling then hands to another client; `SET LOCAL` ends with its
transaction. psycopg has no public hook for its BEGIN: `_start_query` below replaces its own
(psycopg 3.3), and tests/storage/test_registry_bounds.py reads the messages sent, so a psycopg that
starts its transactions otherwise fails there rather than leaving the workers unbounded.

libpq has no read timeout: a query sent on a connection that then goes silent (a stopped server
process, a proxy or firewall that keeps the socket open and passes nothing, a network that
drops every packet after the kernel acknowledged the query) is waited for forever, and with it
the gunicorn thread that sent it. gthread workers keep reporting themselves alive to gunicorn's
master whatever their request threads do, so gunicorn's `--timeout` never ends such a wait.

The server-side statement timeout ends slow statements (and lock waits) on a server that is alive;
the lock timeout, much shorter, ends a wait for a lock alone (a table locked by a migration or an
operator's `LOCK TABLE`, a row held by a stuck transaction), so such a lock ties each request thread
for a fraction of a second rather than the whole statement bound; the answer deadline, a little
longer, ends the wait when no answer can come at all. psycopg runs every round trip (a statement, a
commit, a rollback, the pool's ping) as a generator that its wait loop resumes whenever the socket
is ready and, while it is not, every tenth of a second (to notice Ctrl-C); the deadline is checked
at each resume. A connection whose answer did not come is closed: its state is unknown, and a closed
connection is one SQLAlchemy's pool discards (`is_disconnect`) instead of handing it out again.

Both bounds are the opener's to set (database.py), between transactions: the statement timeout
applies from the next BEGIN on, the answer deadline from the next round trip.
"""

from __future__ import annotations

from time import monotonic
from typing import Any, TypeVar

import psycopg
from psycopg import generators, pq
from psycopg.abc import PQGen
from psycopg.rows import TupleRow

_Answer = TypeVar("_Answer")


class NoAnswerInTime(psycopg.OperationalError):
    """The server did not answer one round trip within the connection's deadline."""


class BoundedConnection(psycopg.Connection[TupleRow]):
    """psycopg's connection, bounded as `bound` last said (unbounded until then)."""

    # None: wait for each answer as long as it takes (the CLI's connections).
    answer_seconds: float | None = None
    # What each BEGIN carries in its own message (empty: a plain BEGIN).
    _with_begin: bytes = b""

    def bound(
        self, statement_seconds: float, answer_seconds: float | None, lock_seconds: float = 0
    ) -> None:
        """From the next transaction on, the server cancels a statement that runs longer than
        `statement_seconds`, or that waits longer than `lock_seconds` for one lock (0: never,
        whatever the database or role sets); from the next round trip on, an answer not had
        within `answer_seconds` ends the wait and the connection."""
        self._with_begin = b"SET LOCAL statement_timeout = %d; SET LOCAL lock_timeout = %d" % (
            round(statement_seconds * 1000),
            round(lock_seconds * 1000),
        )
        self.answer_seconds = answer_seconds

    def _start_query(self) -> PQGen[None]:
        # psycopg's own (psycopg/_connection_base.py), with the settings in BEGIN's message: it
        # sends that BEGIN through `_exec_command`, which accepts one result only.
        idle = self.pgconn.transaction_status == pq.TransactionStatus.IDLE
        if not self._with_begin or self.autocommit or self._pipeline or not idle:
            yield from super()._start_query()
            return
        self._check_connection_ok()
        self.pgconn.send_query(self._get_tx_start_command() + b"; " + self._with_begin)
        for result in (yield from generators.execute(self.pgconn)):
            if result.status == pq.ExecStatus.FATAL_ERROR:
                raise psycopg.errors.error_from_result(result, encoding=self.info.encoding)
            if result.status != pq.ExecStatus.COMMAND_OK:
                status = pq.ExecStatus(result.status).name
                raise psycopg.InterfaceError(f"unexpected result {status} from BEGIN")

    def wait(self, gen: PQGen[_Answer], *args: Any, **kwargs: Any) -> _Answer:
        seconds = self.answer_seconds
        if seconds is None:
            return super().wait(gen, *args, **kwargs)
        bounded = _answered_by(gen, monotonic() + seconds, seconds)
        try:
            return super().wait(bounded, *args, **kwargs)
        except NoAnswerInTime:
            self.pgconn.finish()
            raise


def _answered_by(gen: PQGen[_Answer], deadline: float, seconds: float) -> PQGen[_Answer]:
    """`gen`, passed through, stopped with `NoAnswerInTime` once `deadline` has passed."""
    try:
        waiting_for = next(gen)
        while True:
            ready = yield waiting_for
            if monotonic() >= deadline:
                raise NoAnswerInTime(f"no answer from the database within {seconds:g} s")
            waiting_for = gen.send(ready)
    except StopIteration as done:
        answer: _Answer = done.value
        return answer
