"""Two connections racing on PostgreSQL, in a fixed order: one change written and held open
(not committed), another started in a thread meanwhile; the test then sees whether the second
waited for the first, and what the second did once the first committed."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy.orm import Session

from broker.registry.database import open_engine, writer


def held_open_while(
    url: str,
    hold: Callable[[Session], object],
    racer: Callable[[], object],
    waiting: Callable[[Session], None] | None = None,
) -> BaseException | None:
    """Write `hold` in a transaction of its own, start `racer` in a thread, check that it waits
    (a second), commit `hold`, and return what `racer` raised (None: it returned). `waiting`:
    called with the holding session while the racer waits (what it waits for)."""
    outcome: list[BaseException | None] = []

    def racing() -> None:
        try:
            racer()
            outcome.append(None)
        except BaseException as error:  # the caller looks at which
            outcome.append(error)

    engine = open_engine(url)
    try:
        with Session(writer(engine)) as holding:
            hold(holding)
            thread = threading.Thread(target=racing)
            thread.start()
            thread.join(timeout=1.0)
            assert thread.is_alive(), "the racer did not wait for the change held open"
            if waiting is not None:
                waiting(holding)
            holding.commit()
        thread.join(timeout=10)
    finally:
        engine.dispose()
    assert len(outcome) == 1, outcome
    return outcome[0]
