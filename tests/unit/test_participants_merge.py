"""A session's record of services written back only over what was read (login/participants.py):
a login whose write finds the record changed reads it again and adds its own participant to
what another login wrote, keeping the merge rules (the notice mark, the token families,
MAX_PARTICIPANTS), and gives up after MAX_WRITE_TRIES as on a store failure."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from broker.core.errors import StateExpired, StoreUnavailable
from broker.core.ports import StoreOp, StoreReply
from broker.login.participants import (
    FAMILIES,
    MAX_PARTICIPANTS,
    MAX_WRITE_TRIES,
    Participant,
    SessionServiceBook,
    SessionServices,
)
from broker.store import MemoryStore

TOKEN = "t" * 43


def _saml(service_id: str, seen: str = "fp") -> Participant:
    return Participant(service_id, "saml", {"name_id": "n", "session_index": "i"}, seen)


def _oidc(service_id: str, family: str) -> Participant:
    return Participant(service_id, "oidc", {"sub": "s", "sid": "x", FAMILIES: family}, "fp")


class OpsStore(MemoryStore):
    """Notes each batch's operations."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        self.batches.append([op.operation for op in operations])
        return super().batch(operations)


class BusySession(OpsStore):
    """Another login of the session writes the record (adding its own service) just before
    each of this login's writes, `times` times."""

    def __init__(self, book: SessionServiceBook, times: int) -> None:
        super().__init__()
        self.book, self.times, self.others = book, times, 0

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        if self.times and any(op.operation == "replace_if_same" for op in operations):
            self.times -= 1
            self.others += 1
            write = self.book.record_op(TOKEN, self.book.read(TOKEN), _saml(f"other-{self.others}"))
            assert write is not None
            MemoryStore.batch(self, [write])
        return super().batch(operations)


def _busy(times: int) -> tuple[SessionServiceBook, BusySession]:
    book = SessionServiceBook(MemoryStore(), session_ttl=60)
    store = BusySession(book, times)
    book.sealed.store = store
    book.record(TOKEN, SessionServices(), _saml("first"), new_session=True)
    return book, store


def test_a_read_record_remembers_its_bytes_and_a_write_is_made_over_them() -> None:
    store = OpsStore()
    book = SessionServiceBook(store, session_ttl=60)
    assert book.read(TOKEN).stored is None
    first = book.record_op(TOKEN, book.read(TOKEN), _saml("a"))
    assert first is not None and first.operation == "add_if_absent"  # none read: only if none
    store.batch([first])
    held = book.read(TOKEN)
    assert held.stored == store.get(first.key)
    again = book.record_op(TOKEN, held, _saml("b"))
    assert again is not None and again.operation == "replace_if_same"
    assert again.expected == held.stored
    # A new session's record: its token is this response's alone, a plain put.
    new = book.record_op("n" * 43, held.handed_on(same_student=True), _saml("c"), new_session=True)
    assert new is not None and new.operation == "put"
    assert held == SessionServices(held.participants)  # the bytes are no part of equality


def test_a_stale_read_is_merged_not_overwritten() -> None:
    book = SessionServiceBook(MemoryStore(), session_ttl=60)
    stale = book.read(TOKEN)
    book.record(TOKEN, stale, _saml("tab-a"))
    book.record(TOKEN, stale, _saml("tab-b"))
    assert [p.service_id for p in book.read(TOKEN).participants] == ["tab-a", "tab-b"]


def test_the_merge_keeps_the_other_logins_entry_of_the_same_service() -> None:
    """Its notice mark stays when this login has none, and both token families are kept."""
    book = SessionServiceBook(MemoryStore(), session_ttl=60)
    stale = book.read(TOKEN)
    book.record(TOKEN, stale, _oidc("rp", "f1"))
    book.record(TOKEN, stale, Participant("rp", "oidc", {"sub": "s", FAMILIES: "f2"}, ""))
    participant = book.read(TOKEN).get("rp")
    assert participant is not None
    assert participant.handles[FAMILIES] == "f2 f1" and participant.seen == "fp"


def test_a_login_the_record_already_names_writes_nothing_after_the_other_wrote() -> None:
    store = OpsStore()
    book = SessionServiceBook(store, session_ttl=60)
    stale = book.read(TOKEN)
    book.record(TOKEN, stale, _saml("same"))
    store.batches.clear()
    book.record(TOKEN, stale, _saml("same"))  # the other tab said exactly this already
    assert store.batches == [["add_if_absent"]]  # the failed write; the read is a get


def test_the_merge_keeps_at_most_max_participants() -> None:
    book = SessionServiceBook(MemoryStore(), session_ttl=60)
    for number in range(MAX_PARTICIPANTS):
        book.record(TOKEN, book.read(TOKEN), _saml(f"s{number}"))
    stale = book.read(TOKEN)
    book.record(TOKEN, stale, _saml("tab-a"))
    book.record(TOKEN, stale, _saml("tab-b"))
    kept = [p.service_id for p in book.read(TOKEN).participants]
    assert len(kept) == MAX_PARTICIPANTS and kept[-2:] == ["tab-a", "tab-b"]


def test_a_busy_session_costs_a_read_and_a_write_per_try() -> None:
    book, store = _busy(times=3)
    store.batches.clear()
    book.record(TOKEN, book.read(TOKEN), _saml("mine"))
    assert store.batches == [["replace_if_same"]] * 4
    names = {p.service_id for p in book.read(TOKEN).participants}
    assert names == {"first", "other-1", "other-2", "other-3", "mine"}


def test_past_max_write_tries_the_login_meets_a_store_failure() -> None:
    book, store = _busy(times=MAX_WRITE_TRIES + 1)
    store.batches.clear()
    with pytest.raises(StoreUnavailable) as refused:
        book.record(TOKEN, book.read(TOKEN), _saml("mine"))
    # The store answered all along: the log and the setbacks metric name the contention.
    assert refused.value.code == "session_record_contended"
    assert len(store.batches) == 1 + MAX_WRITE_TRIES  # the write, then each try's
    assert book.read(TOKEN).get("mine") is None


class EndedSession(OpsStore):
    """A logout in another tab ends the session (its record removed) between this login's
    read and its write."""

    def batch(self, operations: Sequence[StoreOp]) -> list[StoreReply]:
        if any(op.operation == "replace_if_same" for op in operations):
            MemoryStore.batch(self, [SessionServiceBook(self, session_ttl=60).forget_op(TOKEN)])
        return super().batch(operations)


def test_a_login_whose_session_ended_meanwhile_writes_no_record_and_is_not_answered() -> None:
    book = SessionServiceBook(EndedSession(), session_ttl=60)
    book.record(TOKEN, SessionServices(), _saml("first"), new_session=True)  # a plain put
    with pytest.raises(StateExpired) as refused:
        book.record(TOKEN, book.read(TOKEN), _saml("mine"))
    assert refused.value.code == "session_ended"
    # No record for the ended session: a service written there would never hear a logout.
    assert book.read(TOKEN).stored is None


def test_settle_does_nothing_after_a_write_that_went_in() -> None:
    store = OpsStore()
    book = SessionServiceBook(store, session_ttl=60)
    for reply in (True, None):
        book.settle(TOKEN, _saml("a"), reply)
    assert store.batches == []


def test_a_worker_of_the_version_before_and_this_one_share_the_record() -> None:
    """A rolling upgrade: the version before writes the record whole with a plain put, in the
    same key and sealed format. Its write between this worker's read and write is merged,
    not overwritten; and it reads what this worker wrote."""
    store = MemoryStore()
    book = SessionServiceBook(store, session_ttl=60)
    book.record(TOKEN, SessionServices(), _saml("first"), new_session=True)
    before = book.read(TOKEN)
    old_worker = book.sealed.put_op(
        TOKEN.encode(),
        "sso-services",
        TOKEN,
        before.with_login(_saml("old")).to_payload(),
        60,
    )
    store.put(old_worker.key, old_worker.value, old_worker.ttl_seconds)
    book.record(TOKEN, before, _saml("new"))
    held = store.get(old_worker.key)
    assert held is not None
    opened = book.sealed.opened(TOKEN.encode(), "sso-services", TOKEN, held)
    assert opened is not None and sorted(opened) == ["first", "new", "old"]
