"""A psycopg connection that waits a bounded time for each answer of the server.

libpq has no read timeout: a query sent on a connection that then goes silent (a stopped server
process, a proxy or firewall that keeps the socket open and passes nothing, a network that
drops every packet after the kernel acknowledged the query) is waited for forever, and with it
the gunicorn thread that sent it. gthread workers keep reporting themselves alive to gunicorn's
master whatever their request threads do, so gunicorn's `--timeout` never ends such a wait.

The server-side `statement_timeout` ends slow statements (and lock waits) on a server that is
alive; this deadline, a little longer, ends the wait when no answer can come at all. psycopg
runs every round trip (a statement, a commit, a rollback, the pool's ping) as a generator that
its wait loop resumes whenever the socket is ready and, while it is not, every tenth of a second
(to notice Ctrl-C); the deadline is checked at each resume. A connection whose answer did not
come is closed: its state is unknown, and a closed connection is one SQLAlchemy's pool
discards (`is_disconnect`) instead of handing it out again.
"""

from __future__ import annotations

from time import monotonic
from typing import Any, TypeVar

import psycopg
from psycopg.abc import PQGen
from psycopg.rows import TupleRow

_Answer = TypeVar("_Answer")


class NoAnswerInTime(psycopg.OperationalError):
    """The server did not answer one round trip within the connection's deadline."""


class AnswerBoundConnection(psycopg.Connection[TupleRow]):
    """Each round trip waits at most `answer_seconds` (set by the opener, database.py)."""

    answer_seconds: float = 0.0

    def wait(self, gen: PQGen[_Answer], *args: Any, **kwargs: Any) -> _Answer:
        bounded = _answered_by(gen, monotonic() + self.answer_seconds, self.answer_seconds)
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
