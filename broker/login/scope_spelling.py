"""The login path's note of a school whose IdP spells a subject's scope otherwise than registered
(core/pseudonym.py `scope_spelled_otherwise`): the login goes on with the value as sent, one
WARNING line tells the operator, who mends it by registering the spelling the IdP sends (the
school's `scopes` in the registry file: `registry export`, `registry import`), and a counter
without a school label counts every such login (`ketenbroker_subject_scope_spelling_total`).

The line names the school and both scopes: a scope is the school's domain name, never a
student's value. It is written at most once per (school, sent scope) in a process: every login
of such a school carries it, and a line per login would drown the log. The pairs noted are
bounded (`MAX_NOTED`): past that, further pairs go unlogged rather than let an IdP that varies
its spelling grow a worker's memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from broker.core.model import School
from broker.core.pseudonym import scope_spelled_otherwise

log = logging.getLogger(__name__)

MAX_NOTED = 10_000  # (school, sent scope) pairs: far more than the schools a broker serves


class ScopeSpellings:
    """What one process (its LoginFlow) has logged; safe under threaded workers. `counted`:
    called for every such login, logged or not (the web layer's metric: login/ imports no web
    module)."""

    def __init__(
        self, counted: Callable[[], None] | None = None, max_noted: int = MAX_NOTED
    ) -> None:
        self.counted = counted
        self.max_noted = max_noted
        self._noted: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def note(self, school: School, subject: str | None) -> None:
        """Log `school`'s subject scope when it is spelled otherwise, the first time only."""
        found = scope_spelled_otherwise(school, subject) if subject else None
        if found is None:
            return
        sent, registered = found
        if self.counted is not None:
            self.counted()
        with self._lock:
            if (school.id, sent) in self._noted or len(self._noted) >= self.max_noted:
                return
            self._noted.add((school.id, sent))
        log.warning(
            "subject scope spelled otherwise school=%s registered=%s sent=%s",
            school.id,
            registered,
            sent,
        )
