"""Portal sessions in the store (web/portal/guard.py), on a real Redis (db 15, a key prefix of the
test's own) and on the memory store: a sign-out ends a session even while requests with a copy
of its cookie keep renewing it, and no renewal carries a session past its cap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from broker.core.ports import KeyValueStore
from broker.store import MemoryStore
from broker.web.portal.guard import (
    IDLE_SECONDS,
    MAX_SESSION_SECONDS,
    close_session,
    open_session,
    session_admin,
)
from tests.storage.test_store import _reachable_redis_store

TRIALS = 20
COPIES = 8  # requests with the copied cookie, each renewing the session as fast as it can


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[KeyValueStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    redis_store = _reachable_redis_store()  # sessions are closed by the tests: nothing left
    yield redis_store
    redis_store.close()


def test_a_sign_out_ends_the_session_while_a_copied_cookie_renews_it(
    store: KeyValueStore,
) -> None:
    """Before renewals were one step (a read, then a write), a renewal that had read the session
    just before the sign-out wrote it back afterwards: alive in nearly every trial on Redis."""
    alive_after_sign_out = 0
    for _ in range(TRIALS):
        session_id, since = open_session(store, 7)
        stop = threading.Event()
        seen: list[int | None] = []

        def copied_cookie(session_id: str = session_id, since: int = since) -> None:
            while not stop.is_set():
                seen.append(session_admin(store, session_id, since))

        copies = [threading.Thread(target=copied_cookie) for _ in range(COPIES)]
        for copy in copies:
            copy.start()
        time.sleep(0.02)
        close_session(store, session_id)  # the administrator signs out
        stop.set()
        for copy in copies:
            copy.join(timeout=10)
        assert 7 in seen  # the copies did renew the live session
        if session_admin(store, session_id, since) is not None:
            alive_after_sign_out += 1
            close_session(store, session_id)
    assert alive_after_sign_out == 0, f"alive after sign-out in {alive_after_sign_out}/{TRIALS}"


def test_a_renewal_never_carries_a_session_past_its_cap() -> None:
    now = [0.0]
    store = MemoryStore(clock=lambda: now[0])
    session_id, since = open_session(store, 7)
    # Ten seconds before the cap: the renewal keeps it for those ten seconds, not half an hour.
    near_the_cap = since - MAX_SESSION_SECONDS + 10
    assert session_admin(store, session_id, near_the_cap) == 7
    now[0] += 11
    assert session_admin(store, session_id, since) is None  # gone from the store itself
    # Far from the cap a renewal keeps it for the idle time.
    session_id, since = open_session(store, 7)
    now[0] += IDLE_SECONDS - 1
    assert session_admin(store, session_id, since) == 7
    now[0] += IDLE_SECONDS - 1
    assert session_admin(store, session_id, since) == 7
    assert session_admin(store, session_id, since - MAX_SESSION_SECONDS - 1) is None  # capped
    now[0] += IDLE_SECONDS
    assert session_admin(store, session_id, since) is None
