"""Two logout requests of one browser at the same moment (login/logout_start.py), on a real
Redis (db 15, a key prefix of the test's own, removed afterwards) and on the memory store: the
request that lost the claim on the session looks for the winner's run in one round trip per
look, and a winner that fails and lets go of its claim leaves one run, not two."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from broker.core.ports import KeyValueStore, StoreOp
from broker.login.logout_marks import LastRuns
from broker.login.logout_run import BY_STUDENT, Initiator
from broker.login.logout_start import CLAIM, LogoutStart, Started
from broker.login.participants import SessionServices, session_and_services
from broker.login.sealed import seal, store_key
from broker.store import MemoryStore, RedisStore
from tests.storage.test_store import REDIS_URL, _reachable_redis_store
from tests.unit.test_logout_core import (
    SECRET,
    Clock,
    FakeTime,
    _claimed,
    _logout,
    _participant,
    _signed_in,
)


class Recorded:
    """The store, with every call noted as the web layer's CountingStore names them."""

    def __init__(self, inner: KeyValueStore) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            if name == "batch":
                self.calls.append(f"batch[{','.join(op.operation for op in args[0])}]")
            else:
                self.calls.append(name)
            return method(*args, **kwargs)

        return recorded


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest) -> Iterator[KeyValueStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    prefix = f"kbtest:logout:{uuid.uuid4().hex}:"
    reachable = _reachable_redis_store()
    reachable.close()
    redis_store = RedisStore(REDIS_URL, key_prefix=prefix)
    yield redis_store
    redis_store.close()
    with redis.Redis.from_url(REDIS_URL) as client:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)


def test_a_waiting_request_looks_in_one_round_trip(store: KeyValueStore) -> None:
    """The winner files its mark while the other waits: each look of the other is one batch
    (the mark and the claim), and it lands on the winner's run."""
    recorded = Recorded(store)
    logout, book, _ = _logout(recorded, Clock())
    signed_in, token = _signed_in(logout, _participant("a"))
    read = session_and_services(signed_in.flow, book, token)
    winners = logout.compose(None, Initiator(BY_STUDENT), SessionServices())
    _claimed(store, token, winners.run_id)
    fake = FakeTime()

    def winner_files_on_the_third_pause(seconds: float) -> None:
        fake.sleep(seconds)
        if len(fake.waits) == 3:
            store.batch([LastRuns(store, 600).mark_op(SECRET, winners)])

    starts = LogoutStart(
        logout, signed_in.flow, sleep=winner_files_on_the_third_pause, clock=fake.clock
    )
    recorded.calls.clear()
    started = starts.start(SECRET, Initiator(BY_STUDENT), token, read)
    assert started == Started(winners.run_id)
    assert recorded.calls == ["add_if_absent"] + ["batch[get,get]"] * 4
    assert signed_in.flow.session(token) is not None  # the winner's to end, not this one's


def test_after_a_failed_winner_a_third_request_lands_on_the_one_run(
    store: KeyValueStore,
) -> None:
    """All three read the standing session. The winner's batch fails and it lets go of its
    claim; the request that waited for it claims the session and files its run; a third
    request then finds that claim and lands on that run instead of starting a second one."""
    logout, book, _ = _logout(store, Clock())
    signed_in, token = _signed_in(logout, _participant("a"), _participant("b"))
    read = session_and_services(signed_in.flow, book, token)
    key = _claimed(store, token, "failed-winner")
    fake = FakeTime()

    def winner_fails(seconds: float) -> None:
        fake.sleep(seconds)
        store.delete(key)  # its batch failed: it removes its claim (logout_start._release)

    second = LogoutStart(logout, signed_in.flow, sleep=winner_fails, clock=fake.clock)
    waited = second.start(SECRET, Initiator(BY_STUDENT), token, read)
    assert waited.run is not None and len(waited.run.targets) == 2 and not waited.second
    assert fake.waits == [pytest.approx(0.01)]
    assert store.get(store_key(CLAIM, token)) is not None  # it holds the claim now
    assert signed_in.flow.session(token) is None

    def no_waiting(seconds: float) -> None:
        pytest.fail("the third request waited: the second's mark was filed")

    third = LogoutStart(logout, signed_in.flow, sleep=no_waiting)
    assert third.start(SECRET, Initiator(BY_STUDENT), token, read) == Started(waited.run_id)
    assert third.started_before(SECRET, Initiator(BY_STUDENT)) == waited.run_id


def test_a_claim_of_another_browser_is_not_waited_for(store: KeyValueStore) -> None:
    """Unchanged by the one-round-trip look: a claim that does not open in this browser is
    someone else's, and this request files its run at once."""
    logout, book, _ = _logout(store, Clock())
    signed_in, token = _signed_in(logout, _participant("a"))
    read = session_and_services(signed_in.flow, book, token)
    key = store_key(CLAIM, token)
    store.batch([StoreOp.put(key, seal(b"o" * 32, CLAIM, token, {"run": "x"}, key), 60)])

    def no_waiting(seconds: float) -> None:
        pytest.fail("waited for another browser's claim")

    starts = LogoutStart(logout, signed_in.flow, sleep=no_waiting)
    started = starts.start(SECRET, Initiator(BY_STUDENT), token, read)
    assert started.run is not None and len(started.run.targets) == 1
