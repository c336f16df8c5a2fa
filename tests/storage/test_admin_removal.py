"""Removing one administrator, on SQLite and PostgreSQL (registry/admin_removal.py): the account
goes in one transaction, open invitations to its own address close with it, the ones it sent to
others stay; an unknown id or the last operator account is refused with nothing changed; and two
operators removing each other at the same moment leave one operator, not none."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from broker.accounts.tokens import new_token, token_hash
from broker.core.admins import Admin, AdminRole, Publisher
from broker.registry import SqlRegistry
from broker.registry.errors import LastOperator, UnknownAdmin
from tests.support.invitations import store_second_invitation

PUBLISHER = "uitgever-a"
SOON = datetime.now(UTC) + timedelta(days=7)


def _admin(registry: SqlRegistry, email: str, role: AdminRole = AdminRole.OPERATOR) -> Admin:
    tenant = PUBLISHER if role is AdminRole.PUBLISHER else None
    return registry.accounts.add_admin(email, "hash", "SECRET", role, tenant)


def _invite(registry: SqlRegistry, email: str, by: Admin) -> str:
    hashed = token_hash(new_token())
    registry.accounts.add_invitation(hashed, email, AdminRole.PUBLISHER, PUBLISHER, SOON, by.id)
    return hashed


@pytest.fixture
def accounts(sql_registry: SqlRegistry) -> SqlRegistry:
    sql_registry.accounts.add_publisher(Publisher(PUBLISHER, "Uitgever A"))
    return sql_registry


def test_removing_an_account_closes_invitations_to_its_address_only(
    accounts: SqlRegistry, registry_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    operator = _admin(accounts, "ops@broker.example")
    # Invited twice (a resent link, by a version before one open invitation per address), one
    # accepted: the other stays open until the removal.
    first = _invite(accounts, "dev@uitgever.example", operator)
    resent = token_hash(new_token())
    store_second_invitation(
        registry_url, resent, "dev@uitgever.example", AdminRole.PUBLISHER, PUBLISHER
    )
    gone = accounts.accounts.accept_invitation(first, "hash", "SECRET", 1)
    # An invitation the removed administrator's colleague is waiting for stays valid.
    other = _invite(accounts, "new@uitgever.example", operator)

    plan = accounts.accounts.admin_removal(gone.id)
    assert (plan.admin, plan.applied, plan.invitations) == (gone, False, 1)
    assert accounts.accounts.admin(gone.id) == gone  # the plan changed nothing
    caplog.set_level(logging.INFO, logger="broker")
    removal = accounts.accounts.remove_admin(gone.id, removed_by="admin:1")

    assert (removal.admin, removal.applied, removal.invitations) == (gone, True, 1)
    assert accounts.accounts.admin(gone.id) is None
    assert accounts.accounts.credentials("dev@uitgever.example") is None
    assert [i.token_hash for i in accounts.accounts.open_invitations()] == [other]
    assert resent != other
    lines = [r.getMessage() for r in caplog.records if "admin removed" in r.getMessage()]
    assert lines == [
        f"admin removed admin={gone.id} role=publisher tenant={PUBLISHER} by=admin:1 "
        "invitations_closed=1"
    ]
    assert "@" not in lines[0]


def test_unknown_ids_and_the_last_operator_are_refused_with_nothing_changed(
    accounts: SqlRegistry,
) -> None:
    operator = _admin(accounts, "ops@broker.example")
    publisher = _admin(accounts, "dev@uitgever.example", AdminRole.PUBLISHER)
    for unknown in (0, -1, publisher.id + 100, 2**31, 10**30):
        with pytest.raises(UnknownAdmin):
            accounts.accounts.remove_admin(unknown)
    for attempt in (accounts.accounts.admin_removal, accounts.accounts.remove_admin):
        with pytest.raises(LastOperator) as refused:
            attempt(operator.id)
        assert refused.value.status == 400 and "nothing was changed" in refused.value.detail
    assert accounts.accounts.admins() == [operator, publisher]
    # A second operator makes the first removable; then the second is the last.
    second = _admin(accounts, "ops2@broker.example")
    accounts.accounts.remove_admin(operator.id, removed_by="cli:test")
    with pytest.raises(LastOperator):
        accounts.accounts.remove_admin(second.id)
    assert accounts.accounts.admins() == [second, publisher]


class _Interleave:
    """Makes the race happen every time: the first removal stops just before its DELETE until
    the second has started reading the operators (then gives it a moment to get there, where
    PostgreSQL makes it wait for the first's row locks)."""

    def __init__(self) -> None:
        self.first_at_delete = threading.Event()
        self.second_reading = threading.Event()

    def hold_first(self, registry: SqlRegistry) -> None:
        def before(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
            if statement.startswith("DELETE FROM admins") and not self.first_at_delete.is_set():
                self.first_at_delete.set()
                # SQLite: the second waits in BEGIN IMMEDIATE before it reads; go on anyway.
                if self.second_reading.wait(2):
                    threading.Event().wait(0.5)

        event.listen(registry.accounts._engine, "before_cursor_execute", before)

    def start_second(self, registry: SqlRegistry) -> None:
        def before(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
            # The operators' rows, read (and on PostgreSQL locked) first.
            if statement.startswith("SELECT admins.id") and "ORDER BY admins.id" in statement:
                self.first_at_delete.wait(10)
                self.second_reading.set()

        event.listen(registry.accounts._engine, "before_cursor_execute", before)


@pytest.fixture
def second_registry(registry_url: str, accounts: SqlRegistry) -> Iterator[SqlRegistry]:
    """Another process's registry on the same database: its own engine and connections."""
    opened = SqlRegistry(registry_url)
    try:
        yield opened
    finally:
        opened.close()


def test_two_operators_removing_each_other_at_once_leave_one(
    accounts: SqlRegistry, second_registry: SqlRegistry
) -> None:
    one = _admin(accounts, "one@broker.example")
    two = _admin(accounts, "two@broker.example")
    interleave = _Interleave()
    interleave.hold_first(accounts)
    interleave.start_second(second_registry)
    outcomes: dict[str, object] = {}

    def remove(name: str, registry: SqlRegistry, target: Admin) -> None:
        try:
            outcomes[name] = registry.accounts.remove_admin(target.id, removed_by=name).admin
        except LastOperator as refused:
            outcomes[name] = refused

    first = threading.Thread(target=remove, args=("one", accounts, two))
    second = threading.Thread(target=remove, args=("two", second_registry, one))
    first.start()
    # The second starts once the first holds its locks (and SQLite's write lock): which one
    # wins is then fixed, and the second reads the operators while the first is mid-removal.
    assert interleave.first_at_delete.wait(10)
    second.start()
    first.join(30)
    second.join(30)

    assert interleave.first_at_delete.is_set() and interleave.second_reading.is_set()
    assert outcomes["one"] == two
    assert isinstance(outcomes["two"], LastOperator)
    assert accounts.accounts.admins() == [one]
