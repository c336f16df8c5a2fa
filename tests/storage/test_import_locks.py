"""The locks of a registry import on PostgreSQL (registry/bulk_import.py, "Locks"): the service
rows of the file, then the registry state row, then the chains' key version rows, the order in
which `chain move` takes them too (chain_moves.py `move_service_in`), while a key rotation
(pseudonym_keys.py) takes the state row and then the key version rows, no service row. Two
transactions that take them in the same order wait for each other instead of deadlocking.

- An import held open (written, not committed) holds its services' rows, also one it leaves
  as it is: a writer of such a row waits for it in the services row lock itself, and then
  writes on what the import left.
- The statements each path sends, in order: the service rows' locks come before the state
  row's, and the key version rows are read or written only after it, on the import and on
  `chain move`; a rotation reads them after the state row too.
- A rotation held open makes an import that moves a service into that chain wait (after its
  service row, at the state row) and then refuse on the window the rotation opened.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from broker.core.chain_move import MoveRefused
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.registry import SqlRegistry
from broker.registry.bulk_import import apply_snapshot
from broker.registry.changes import serialise_checks
from broker.registry.pseudonym_key_tables import PseudonymKeyVersionRow
from broker.registry.snapshot import Snapshot
from tests.storage.test_import_chain_moves import KEYS, SERVICE, _in_chain, _registered
from tests.support.races import held_open_while
from tests.support.sealing import TEST_SEAL

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 5, 1, tzinfo=UTC)
# A key version record of the chain the service leaves, which the file brings.
RECORD = ChainKeyVersion("leermiddelen", 1)


@pytest.fixture
def registry_url(postgres_registry_url: str) -> str:
    """PostgreSQL only (the storage fixtures' `sql_registry` on it): SQLite has no row locks."""
    return postgres_registry_url


@pytest.fixture
def registry(sql_registry: SqlRegistry) -> SqlRegistry:
    return sql_registry


def _moving_file(registry: SqlRegistry) -> Snapshot:
    """The service renamed and put in the other chain, with a key version record: the import
    then takes every lock this module is about."""
    file = _in_chain(_registered(registry), "toetsen")
    (entry,) = file.services
    renamed = replace(entry, service=replace(entry.service, name="Leesboek 2"))
    return replace(file, services=(renamed,), key_versions=(RECORD,))


def _importing(file: Snapshot) -> Callable[[Session], object]:
    return lambda session: apply_snapshot(session, file, NOW, "import:test", TEST_SEAL)


def _waits_for_the_service_row(holding: Session) -> None:
    """The racer's backend waits for a lock, in its statement that locks the service's row."""
    waiting = holding.scalars(
        text(
            # This test's database only: other tests may share the server.
            "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
    ).all()
    assert len(waiting) == 1, waiting
    assert re.search(r"\bFROM services\b.*\bFOR (NO KEY )?UPDATE", waiting[0], re.S), waiting[0]


def test_an_import_that_changes_nothing_still_holds_its_services_rows(
    registry: SqlRegistry, postgres_registry_url: str
) -> None:
    """The file's service as the registry has it: the import writes no row of it, so only its
    own lock (database.locked_row) makes a declaration change of the service wait until the
    import commits."""
    file = _registered(registry)
    raised = held_open_while(
        postgres_registry_url,
        _importing(file),
        lambda: registry.set_declarations(SERVICE, (), "cli:test"),
        waiting=_waits_for_the_service_row,
    )
    assert raised is None, raised
    found = registry.any_service(SERVICE)
    assert found is not None and found.declaration_version == 2


@pytest.mark.parametrize("writer", ["declarations", "chain_move"])
def test_a_writer_of_a_service_the_import_changes_waits_and_writes_on_what_it_left(
    registry: SqlRegistry, postgres_registry_url: str, writer: str
) -> None:
    file = _moving_file(registry)

    def write() -> None:
        if writer == "declarations":
            registry.set_declarations(SERVICE, (), "cli:test")
        else:
            registry.set_service_chain(SERVICE, "leermiddelen")

    raised = held_open_while(
        postgres_registry_url, _importing(file), write, waiting=_waits_for_the_service_row
    )
    assert raised is None, raised
    found = registry.any_service(SERVICE)
    assert found is not None and found.name == "Leesboek 2"  # the import's, kept
    if writer == "declarations":
        assert found.chain_id == "toetsen" and found.declaration_version == 2
    else:
        # Moved back from where the import put it, not from where the file was read.
        assert found.chain_id == "leermiddelen"


def _locks_taken(run: Callable[[], object]) -> list[str]:
    """What `run` sends that takes or needs the locks of the module note, in order: `service`
    (a services row locked), `state` (the registry state row locked or updated) and `key`
    (a key version row read or written)."""
    taken: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if re.search(r"\bFROM services\b.*\bFOR (NO KEY )?UPDATE", statement, re.S):
            taken.append("service")
        elif "registry_state" in statement and (
            "FOR UPDATE" in statement or statement.startswith("UPDATE registry_state")
        ):
            taken.append("state")
        elif "pseudonym_key_versions" in statement:
            taken.append("key")

    event.listen(Engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return taken


def _in_order(taken: list[str]) -> None:
    """Every service row before the first state row lock, every key version row after it."""
    first_state = taken.index("state")
    assert "service" not in taken[first_state:], taken
    assert "key" not in taken[:first_state], taken


def test_the_import_and_chain_move_lock_in_the_same_order(registry: SqlRegistry) -> None:
    file = _moving_file(registry)
    imported = _locks_taken(lambda: registry.import_snapshot(file, "import:test"))
    assert {"service", "state", "key"} <= set(imported), imported
    _in_order(imported)
    moved = _locks_taken(
        lambda: registry.set_service_chain(SERVICE, "leermiddelen", window_days=30, keys=KEYS)
    )
    assert {"service", "state", "key"} <= set(moved), moved
    _in_order(moved)
    rotated = _locks_taken(
        lambda: registry.pseudonym_keys.replace(
            None, ChainKeyVersion("toetsen", 2, 1, NOW + timedelta(days=400)), "cli:test"
        )
    )
    assert "service" not in rotated and {"state", "key"} <= set(rotated), rotated
    _in_order(rotated)


def test_an_import_waits_for_a_rotation_held_open_and_refuses_on_its_window(
    registry: SqlRegistry, postgres_registry_url: str
) -> None:
    file = _moving_file(registry)
    window = ChainKeyVersion("toetsen", 2, 1, datetime.now(UTC) + timedelta(days=30))

    def rotating(session: Session) -> None:
        # As pseudonym_keys.py `replace` writes it: the state row first, then the record.
        serialise_checks(session)
        row = PseudonymKeyVersionRow(chain=window.chain)
        row.hold(window, NOW, "cli:test")
        session.add(row)
        session.flush()

    refused = held_open_while(
        postgres_registry_url,
        rotating,
        lambda: registry.import_snapshot(file, "import:test"),
    )
    assert isinstance(refused, MoveRefused), refused
    assert "chain toetsen (it would go to) is in a pseudonym key migration window" in (
        refused.detail
    )
    found = registry.any_service(SERVICE)
    assert found is not None and found.chain_id == "leermiddelen" and found.name == "Leesboek"
