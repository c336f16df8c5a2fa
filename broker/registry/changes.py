"""How a change to the registry reaches every worker's cached view (broker/registry/cached.py).

Across processes and machines: `registry_state.generation`, bumped in the transaction of every
change a login reads (schools, chains, services, metadata, release policies, notice modes). A
view asks for it at most once a second, so another worker's change shows there within a second.

Within this process: a counter, moved on after such a transaction committed. A view compares it
on every lookup (one integer comparison), so a change made here (the portal, the CLI, a test)
shows on the very next login in this process, without waiting for the once-a-second check.
"""

from __future__ import annotations

import itertools
import threading

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from broker.registry.tables import STATE_ROW_ID, RegistryStateRow


class _LocalChanges:
    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self.latest = 0

    def committed(self, _session: Session) -> None:
        with self._lock:
            self.latest = next(self._counter)


_LOCAL = _LocalChanges()


def bump_generation(session: Session) -> None:
    """Part of a write transaction: tell every worker's view to reload after it commits."""
    session.execute(
        update(RegistryStateRow)
        .where(RegistryStateRow.id == STATE_ROW_ID)
        .values(generation=RegistryStateRow.generation + 1)
    )
    # After the commit, not now: a view that reloaded between now and the commit would read
    # the old rows and take them for the new state.
    event.listen(session, "after_commit", _LOCAL.committed, once=True)


def serialise_checks(session: Session) -> None:
    """Part of a write transaction whose check reads rows it does not lock: take the registry
    state row's lock (after the rows it locks, as `bump_generation` takes it), so that it runs
    after every change that bumped the generation and has not committed yet, and before the
    next. Every writer of what a login reads bumps it. On PostgreSQL, without this:

    - pseudonym windows (a chain move, a key rotation, an import that moves a service): each
      check reads the rows the other one writes (a move record, a chain's key version), so a
      move into a chain and that chain's rotation could both pass and open two windows on one
      service;
    - a service's assertion encryption back to `auto`: a metadata source's refresh (which locks
      no service row) could put a copy with an unusable key in force between the check of the
      copy and the write.

    SQLite's writer holds the database from its first statement anyway."""
    session.execute(
        select(RegistryStateRow.id).where(RegistryStateRow.id == STATE_ROW_ID).with_for_update()
    )


def local_changes() -> int:
    """Moves on with every committed change made in this process (0: none yet)."""
    return _LOCAL.latest
