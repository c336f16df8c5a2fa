"""The replay cache with the store epoch rule (broker/login/replay.py), on the memory store with
a clock the test turns: a wiped store must not let in an assertion issued before the wipe."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from broker.core.errors import InvalidMessage, StoreUnavailable
from broker.core.ports import StoreOp, StoreReply
from broker.core.pseudonym import PseudonymKeys
from broker.login.flow import LOGIN, LoginFlow
from broker.login.login_model import LoginRequest
from broker.login.replay import EPOCH_KEY, ReplayGuard, open_epoch
from broker.login.sealed import new_secret, store_key
from broker.store.memory import MemoryStore
from tests.unit.test_sealed_and_flow import KEY, FakeRegistry

SKEW = 60
ISSUER = "saml:https://school.example/idp"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def guard_on(store: MemoryStore, clock: Clock) -> ReplayGuard:
    return ReplayGuard(store, skew=SKEW, clock=clock)


def test_an_assertion_is_accepted_once() -> None:
    clock, store = Clock(), MemoryStore()
    guard = guard_on(store, clock)
    guard.first_use(ISSUER, "_a1", clock.now, clock.now + 300)
    with pytest.raises(InvalidMessage) as refused:
        guard.first_use(ISSUER, "_a1", clock.now, clock.now + 300)
    assert refused.value.code == "replay"
    # Another issuer's assertion with the same id is another message.
    guard.first_use("saml:https://other.example/idp", "_a1", clock.now, clock.now + 300)


def test_a_released_message_is_taken_again_and_only_its_own_use_is_forgotten() -> None:
    """release: what the message asked for failed before it was done (the school's retry)."""
    clock, store = Clock(), MemoryStore()
    guard = guard_on(store, clock)
    guard.first_use(ISSUER, "_a1", clock.now, clock.now + 300)
    guard.first_use(ISSUER, "_a2", clock.now, clock.now + 300)
    guard.release(ISSUER, "_a1")
    guard.first_use(ISSUER, "_a1", clock.now, clock.now + 300)
    for message_id in ("_a1", "_a2"):
        with pytest.raises(InvalidMessage):
            guard.first_use(ISSUER, message_id, clock.now, clock.now + 300)


def test_an_assertion_is_kept_until_it_expires_and_not_two_seconds_longer() -> None:
    """`expires_at` is the last moment the reader would accept the assertion (its window,
    assertion_reader.py): the key lives at least that long, in whole seconds rounded up, so it
    outlives that moment by at most a second or two, never by an assertion's whole lifetime."""
    clock = Clock()
    clock.now += 0.25  # between two whole seconds, where rounding down would cut it short
    store = MemoryStore(clock=clock)
    guard = guard_on(store, clock)
    issued, expires_at = clock.now, clock.now + 300.5
    guard.first_use(ISSUER, "_a1", issued, expires_at)
    clock.now = expires_at  # the last moment it would be accepted: still known
    with pytest.raises(InvalidMessage) as refused:
        guard.first_use(ISSUER, "_a1", issued, expires_at)
    assert refused.value.code == "replay"
    clock.now = expires_at + 1.5  # gone: the store holds nothing the reader would accept
    guard.first_use(ISSUER, "_a1", issued, clock.now + 300)


def test_the_epoch_is_written_at_first_use_and_kept() -> None:
    clock, store = Clock(), MemoryStore()
    guard = guard_on(store, clock)
    assert store.get(EPOCH_KEY) is None
    first = guard.epoch()
    assert first == clock.now
    clock.now += 1000
    assert guard.epoch() == first  # the marker stands; time passing does not move the epoch


def test_after_a_wipe_an_assertion_issued_before_it_is_refused() -> None:
    clock, store = Clock(), MemoryStore()
    guard = guard_on(store, clock)
    guard.epoch()  # the store has been in use for a while
    clock.now += 3600
    issued = clock.now
    guard.first_use(ISSUER, "_used", issued, issued + 300)
    clock.now += 120  # the assertion is still within its lifetime...
    # ...when the store forgets it (a Redis restart without persistence, a FLUSHALL):
    guard = guard_on(MemoryStore(), clock)
    with pytest.raises(InvalidMessage) as refused:
        guard.first_use(ISSUER, "_used", issued, issued + 300)
    assert refused.value.code == "before_store_epoch"
    # Also one never used before: nobody can tell, so it is refused as well.
    with pytest.raises(InvalidMessage) as unused:
        guard.first_use(ISSUER, "_unused", issued, issued + 300)
    assert unused.value.code == "before_store_epoch"
    # An assertion issued after the wipe passes, also from a school whose clock is behind by
    # less than the skew.
    guard.first_use(ISSUER, "_fresh", clock.now - SKEW + 1, clock.now + 300)


def test_workers_that_find_the_store_empty_agree_on_one_epoch() -> None:
    clock, store = Clock(), MemoryStore()
    one, other = guard_on(store, clock), ReplayGuard(store, skew=SKEW, clock=lambda: clock.now + 5)
    first = one.epoch()
    assert other.epoch() == first


def test_an_unreadable_epoch_marker_is_a_store_failure_not_a_pass() -> None:
    clock, store = Clock(), MemoryStore()
    store.put(EPOCH_KEY, b"not a time", 60)
    with pytest.raises(StoreUnavailable):
        guard_on(store, clock).first_use(ISSUER, "_a", clock.now, clock.now + 300)


def test_a_login_start_opens_the_epoch_so_its_answer_is_never_before_it() -> None:
    clock, store = Clock(), MemoryStore()
    open_epoch(store, clock.now)  # what LoginFlow.start does before it writes the record
    started = clock.now
    clock.now += 30  # the student takes a while at the school; the marker stays
    open_epoch(store, clock.now)
    guard = guard_on(store, clock)
    assert guard.epoch() == started
    # The school's answer, issued after the start, passes however late it arrives.
    guard.first_use(ISSUER, "_late", started + 1, clock.now + 300)


class BatchLog(MemoryStore):
    """A memory store that notes every batch it runs (operation and key, in order)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[tuple[str, str]]] = []

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        self.batches.append([(op.operation, op.key) for op in operations])
        return super().batch(operations)


def test_the_replay_key_and_the_epoch_go_in_one_round_trip_replay_key_first() -> None:
    clock, store = Clock(), BatchLog()
    open_epoch(store, clock.now)
    guard_on(store, clock).first_use(ISSUER, "_a1", clock.now, clock.now + 300)
    assert store.batches == [
        [("add_if_absent", f"replay:{ISSUER}:_a1"), ("get", EPOCH_KEY)],
    ]


def test_a_login_start_writes_the_epoch_before_its_record_in_one_round_trip() -> None:
    store = BatchLog()
    flow = LoginFlow(FakeRegistry(), store, PseudonymKeys(1, {1: KEY}), login_ttl=900, sso_ttl=60)
    record = flow.start(new_secret(), LoginRequest("uitgever"))
    assert store.batches == [
        [("add_if_absent", EPOCH_KEY), ("put", store_key(LOGIN, record.login_id))]
    ]
