"""The replay cache with the store epoch rule (broker/login/replay.py), on the memory store with
a clock the test turns: a wiped store must not let in an assertion issued before the wipe, also
when only some of its buckets were lost (a Cluster master that restarted empty: on real servers
in tests/storage/test_replay_on_cluster.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from broker.core.errors import InvalidMessage, StoreUnavailable
from broker.core.ports import StoreOp, StoreReply
from broker.core.pseudonym import PseudonymKeys
from broker.login.flow import LOGIN, LoginFlow
from broker.login.login_model import LoginRequest
from broker.login.replay import (
    BUCKET_TAGS,
    BUCKETS,
    ReplayGuard,
    bucket_of,
    epoch_key,
    new_history_epochs,
    open_epoch_op,
)
from broker.login.sealed import new_secret, store_key
from broker.store.memory import MemoryStore
from tests.unit.test_sealed_and_flow import KEY, FakeRegistry

SKEW = 60
ISSUER = "saml:https://school.example/idp"


def bucket(message_id: str) -> str:
    """The bucket of a message of ISSUER that answers no request of ours."""
    return bucket_of(f"{ISSUER}:{message_id}")


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


def test_a_use_made_for_a_request_is_released_in_that_requests_bucket() -> None:
    """A use made with `request_id` lives in the bucket of that request: `release` without it
    looked in another bucket, deleted nothing of this message's, and the retry was a replay."""
    clock, store = Clock(), MemoryStore()
    guard = guard_on(store, clock)
    guard.first_use(ISSUER, "_a1", clock.now, clock.now + 300, request_id="id-request")
    guard.release(ISSUER, "_a1", request_id="id-request")
    guard.first_use(ISSUER, "_a1", clock.now, clock.now + 300, request_id="id-request")
    with pytest.raises(InvalidMessage):
        guard.first_use(ISSUER, "_a1", clock.now, clock.now + 300, request_id="id-request")


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
    tag = bucket("_a1")
    assert store.get(epoch_key(tag)) is None
    first = guard.epoch(tag)
    assert first == clock.now
    clock.now += 1000
    assert guard.epoch(tag) == first  # the marker stands; time passing does not move the epoch


def test_after_a_wipe_an_assertion_issued_before_it_is_refused() -> None:
    clock, store = Clock(), MemoryStore()
    guard = guard_on(store, clock)
    clock.now += 3600  # the store has been in use for a while
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


def test_after_a_rollback_every_message_issued_before_it_is_refused_and_none_after() -> None:
    clock, store = Clock(), MemoryStore()
    guard = guard_on(store, clock)
    clock.now += 3600
    issued = clock.now
    guard.first_use(ISSUER, "_used", issued, issued + 300)
    clock.now += 5  # well within the skew when the store is rolled back to before that use:
    store.delete(f"replay:{bucket('_used')}:{ISSUER}:_used")
    # the store notices the new Redis on its first new connection and writes every marker
    store.batch(new_history_epochs(clock.now, SKEW))
    assert {store.get(epoch_key(tag)) for tag in BUCKET_TAGS} == {
        f"{clock.now + SKEW - 1:.3f}".encode()
    }
    with pytest.raises(InvalidMessage) as refused:
        guard.first_use(ISSUER, "_used", issued, issued + 300)
    assert refused.value.code == "before_store_epoch"
    # An answer issued from that moment on passes, also one whose whole-second IssueInstant
    # reads up to a second earlier (a school's request made just after the rollback).
    guard.first_use(ISSUER, "_fresh", clock.now - 1, clock.now + 300)
    with pytest.raises(InvalidMessage):
        guard.first_use(ISSUER, "_older", clock.now - 1.5, clock.now + 300)


def test_a_key_and_the_marker_that_vouches_for_it_share_a_hash_slot() -> None:
    """On a Redis Cluster a key's slot is the hash of its first {...}: a replay key's first is
    its bucket's tag, and so is its marker's, also when the issuer holds braces itself."""
    clock, store = Clock(), BatchLog()
    issuer = "saml:https://{school}.example/idp"
    ReplayGuard(store, skew=SKEW, clock=clock).first_use(issuer, "_{a}", clock.now, clock.now + 9)
    [[(_, replay_key), (_, marker)]] = store.batches[:1]
    tag = bucket_of(f"{issuer}:_{{a}}")
    assert replay_key.startswith(f"replay:{tag}:") and marker == epoch_key(tag)
    assert len(set(BUCKET_TAGS)) == BUCKETS and all(t[0] + t[-1] == "{}" for t in BUCKET_TAGS)


def test_a_wipe_of_some_buckets_refuses_a_second_use_of_a_message_in_them() -> None:
    """A Cluster master that restarts empty loses its buckets' keys and their markers, while
    the other masters keep theirs: the lost marker refuses the second use (one store-wide
    marker elsewhere kept its old time and let it in)."""
    clock, store = Clock(), MemoryStore()
    guard = guard_on(store, clock)
    for tag in BUCKET_TAGS:  # a store in use for a day: every bucket has its marker
        guard.epoch(tag)
    clock.now += 86400
    issued = clock.now
    guard.first_use(ISSUER, "_used", issued, issued + 600)
    guard.first_use(ISSUER, "_kept", issued, issued + 600)
    assert bucket("_used") != bucket("_kept")
    clock.now += 120
    lost = bucket("_used")
    # That master's keyspace, as far as these messages go: the key and its bucket's marker.
    store.delete(f"replay:{lost}:{ISSUER}:_used")
    store.delete(epoch_key(lost))
    with pytest.raises(InvalidMessage) as refused:
        guard.first_use(ISSUER, "_used", issued, issued + 600)
    assert refused.value.code == "before_store_epoch"
    with pytest.raises(InvalidMessage) as kept:  # another bucket: its key is still there
        guard.first_use(ISSUER, "_kept", issued, issued + 600)
    assert kept.value.code == "replay"


def test_workers_that_find_the_store_empty_agree_on_one_epoch() -> None:
    clock, store = Clock(), MemoryStore()
    one, other = guard_on(store, clock), ReplayGuard(store, skew=SKEW, clock=lambda: clock.now + 5)
    first = one.epoch(BUCKET_TAGS[7])
    assert other.epoch(BUCKET_TAGS[7]) == first


def test_an_unreadable_epoch_marker_is_a_store_failure_not_a_pass() -> None:
    clock, store = Clock(), MemoryStore()
    store.put(epoch_key(bucket("_a")), b"not a time", 60)
    with pytest.raises(StoreUnavailable):
        guard_on(store, clock).first_use(ISSUER, "_a", clock.now, clock.now + 300)


def test_a_request_to_a_school_opens_the_epoch_of_its_answer_so_the_answer_is_never_before_it() -> (
    None
):
    clock, store = Clock(), MemoryStore()
    store.batch([open_epoch_op(clock.now, "_request")])  # what LoginFlow.note_upstream sends
    sent = clock.now
    clock.now += 30  # the student takes a while at the school; the marker stays
    store.batch([open_epoch_op(clock.now, "_request")])
    guard = guard_on(store, clock)
    assert guard.epoch(bucket_of("_request")) == sent
    # The school's answer, issued after the request, passes however late it arrives, also with
    # no skew at all (a marker written on its arrival would refuse it).
    strict = ReplayGuard(store, skew=0, clock=clock)
    strict.first_use(ISSUER, "_late", sent + 1, clock.now + 300, request_id="_request")


class BatchLog(MemoryStore):
    """A memory store that notes every batch it runs (operation and key, in order); `atomic`:
    what it says of its batches (a Cluster's are not)."""

    def __init__(self, *, atomic: bool = True) -> None:
        super().__init__()
        self.atomic = atomic
        self.batches: list[list[tuple[str, str]]] = []

    @property
    def atomic_batches(self) -> bool:
        return self.atomic

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        self.batches.append([(op.operation, op.key) for op in operations])
        return super().batch(operations)


def test_the_replay_key_and_the_epoch_go_in_one_round_trip_replay_key_first() -> None:
    clock, store = Clock(), BatchLog()
    store.batch([StoreOp.add_if_absent(epoch_key(bucket("_a1")), b"1", 60)])
    store.batches.clear()
    guard_on(store, clock).first_use(ISSUER, "_a1", clock.now, clock.now + 300)
    tag = bucket("_a1")
    assert store.batches == [
        [("add_if_absent", f"replay:{tag}:{ISSUER}:_a1"), ("get", epoch_key(tag))],
    ]


def _answer(guard: ReplayGuard, clock: Clock, take: StoreOp) -> StoreReply:
    return guard.first_use(
        ISSUER, "_answer", clock.now, clock.now + 300, request_id="_request", then=take
    )


def test_where_batches_are_atomic_the_answer_and_the_take_are_one_round_trip() -> None:
    """One server or a Sentinel's master (one script), the memory store: the take joins the
    replay check's batch, after it; a replayed copy takes (and finds) nothing."""
    clock, store = Clock(), BatchLog()
    guard, take = guard_on(store, clock), StoreOp.take("login:_l")
    store.put(take.key, b"sealed", 60)
    tag = bucket_of("_request")
    assert _answer(guard, clock, take) == b"sealed"
    with pytest.raises(InvalidMessage) as refused:
        _answer(guard, clock, take)
    assert refused.value.code == "replay"
    one_trip = [
        ("add_if_absent", f"replay:{tag}:{ISSUER}:_answer"),
        ("get", epoch_key(tag)),
        ("take", take.key),
    ]
    # The first finds its bucket's marker missing (a fresh store) and writes it: one more trip.
    assert store.batches == [
        one_trip,
        [("add_if_absent", epoch_key(tag)), ("get", epoch_key(tag))],
        one_trip,
    ]


def test_where_batches_are_not_atomic_the_take_follows_a_passed_check_only() -> None:
    """A Redis Cluster: two steps, so the copy that lost the replay key never takes the record
    the winner is about to take; a refused copy leaves it."""
    clock, store = Clock(), BatchLog(atomic=False)
    guard, take = guard_on(store, clock), StoreOp.take("login:_l")
    store.batch([open_epoch_op(clock.now, "_request")])
    store.put(take.key, b"sealed", 60)
    store.batches.clear()
    assert _answer(guard, clock, take) == b"sealed"
    store.put(take.key, b"sealed", 60)
    with pytest.raises(InvalidMessage):
        _answer(guard, clock, take)
    assert store.get(take.key) == b"sealed"
    tag = bucket_of("_request")
    check = [("add_if_absent", f"replay:{tag}:{ISSUER}:_answer"), ("get", epoch_key(tag))]
    assert store.batches == [check, [("take", take.key)], check]


def test_a_request_to_a_school_writes_its_answers_epoch_before_the_record_in_one_round_trip() -> (
    None
):
    store = BatchLog()
    flow = LoginFlow(FakeRegistry(), store, PseudonymKeys(1, {1: KEY}), login_ttl=900, sso_ttl=60)
    secret = new_secret()
    record = flow.start(secret, LoginRequest("uitgever"), save=False)
    flow.note_upstream(secret, flow.with_school(record, "99XX00"), "_upstream")
    assert store.batches == [
        [
            ("add_if_absent", epoch_key(bucket_of("_upstream"))),
            ("put", store_key(LOGIN, record.login_id)),
        ]
    ]
