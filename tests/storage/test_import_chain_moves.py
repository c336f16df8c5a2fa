"""A registry import that would move a service, checked inside its transaction on SQLite and
PostgreSQL (registry/bulk_import.py, core/chain_move.py): the file was checked against the
registry before, but a `chain move` with a window may come between that check and the import's
write. The import must then refuse, changing nothing, as `chain move` would: moving the service
anyway would leave a move record that names a chain the service is no longer in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.core.chain_ids import ChainIdRefused
from broker.core.chain_move import ChainMove, ImportedMoveRefused, MoveRefused
from broker.core.model import Chain, ClientAuthMethod, Protocol, Service
from broker.core.pseudonym import PseudonymKeys
from broker.core.pseudonym_rotation import ChainKeyVersion, RotationRefused
from broker.oidc.registration import new_client
from broker.registry import SqlRegistry, migrate
from broker.registry.chain_moves import move_service_in
from broker.registry.snapshot import ServiceEntry, Snapshot
from tests.storage.test_registry_file import dump
from tests.support.races import held_open_while
from tests.support.sealing import TEST_SEAL

KEYS = PseudonymKeys(1, {1: b"k" * 32})
SERVICE = "leesboek"


def _registered(registry: SqlRegistry) -> Snapshot:
    """Two chains and an OIDC service in the first; the registry's snapshot of it, as a file
    exported now and checked against the registry now reads."""
    for chain in ("leermiddelen", "toetsen"):
        registry.add_chain(Chain(chain, chain))
    client, _ = new_client(("https://leesboek.example/cb",), ClientAuthMethod.SECRET_BASIC)
    service = Service(
        SERVICE, "Leesboek", SERVICE, "leermiddelen", protocol=Protocol.OIDC, oidc=client
    )
    registry.add_service(service, None)
    return registry.snapshot()


def _in_chain(file: Snapshot, chain: str | None) -> Snapshot:
    """The file with the service in `chain`."""
    (entry,) = file.services
    return replace(file, services=(ServiceEntry(replace(entry.service, chain_id=chain), None),))


def test_a_move_between_the_files_check_and_the_import_refuses_the_import(
    sql_registry: SqlRegistry, registry_url: str
) -> None:
    file = _registered(sql_registry)
    # The operator moves the service with a window after the file was checked.
    move = sql_registry.set_service_chain(SERVICE, "toetsen", window_days=30, keys=KEYS)
    assert move is not None
    before, generation = dump(registry_url), sql_registry.generation()
    with pytest.raises(MoveRefused) as refused:
        sql_registry.import_snapshot(file, "import:test")
    assert (
        f"service {SERVICE} is in the migration window of its move from leermiddelen until "
    ) in refused.value.detail
    assert f"(`ketenbroker chain move {SERVICE} --finish`)" in refused.value.detail
    assert dump(registry_url) == before and sql_registry.generation() == generation
    # Out of every chain instead: refused the same way.
    with pytest.raises(MoveRefused):
        sql_registry.import_snapshot(_in_chain(file, None), "import:test")
    assert dump(registry_url) == before


@pytest.mark.postgres
def test_an_import_waiting_for_a_move_in_progress_checks_what_the_move_left(
    postgres_registry_url: str,
) -> None:
    """PostgreSQL, two connections: an import that takes the service out of its chain comes
    while a `chain move --window` of the same service is written and not yet committed. It
    waits for the service's row, then sees the move and refuses. Had it taken the chain it read
    before the move committed for the one the service leaves, the move's record would not name
    it, so the move's open window would end unannounced."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url)
    try:
        file = _registered(registry)
        refused = held_open_while(
            postgres_registry_url,
            lambda moving: move_service_in(
                moving, SERVICE, "toetsen", keys=KEYS, window_days=30,
                now=datetime.now(UTC), changed_by="cli:test",
            ),
            lambda: registry.import_snapshot(_in_chain(file, None), "import:test"),
        )  # fmt: skip
        assert isinstance(refused, MoveRefused), refused
        found = registry.service(SERVICE)
        assert found is not None and found.chain_id == "toetsen"
        held = registry.chain_move(SERVICE)
        assert held is not None and held.from_chain == "leermiddelen"
    finally:
        registry.close()


def test_the_transaction_adds_a_move_record_only_with_the_move_it_records(
    sql_registry: SqlRegistry, registry_url: str
) -> None:
    """The same rule as the file's checks (core/chain_move.py `check_imported_move`), asked
    again inside the transaction: a snapshot that brings a record for a service it does not
    move, or a window ending more than 366 days from now, is refused whole; the move the
    import makes takes its record."""
    file = _registered(sql_registry)
    now = datetime.now(UTC)
    invented = ChainMove(SERVICE, "toetsen", 1, "leermiddelen", now + timedelta(days=30))
    before, generation = dump(registry_url), sql_registry.generation()
    with pytest.raises(ImportedMoveRefused) as refused:
        sql_registry.import_snapshot(replace(file, chain_moves=(invented,)), "import:test")
    assert refused.value.key == "service_id"
    assert (
        f"service {SERVICE} is in leermiddelen in the registry and the file does not move it"
    ) in refused.value.detail
    assert dump(registry_url) == before and sql_registry.generation() == generation
    moved = _in_chain(file, "toetsen")
    far = ChainMove(SERVICE, "leermiddelen", 1, "toetsen", now + timedelta(days=367))
    with pytest.raises(ImportedMoveRefused) as refused:
        sql_registry.import_snapshot(replace(moved, chain_moves=(far,)), "import:test")
    assert refused.value.key == "window_ends"
    assert dump(registry_url) == before
    wrong_start = replace(far, from_chain="service:leesboek", window_ends=now + timedelta(days=30))
    with pytest.raises(ImportedMoveRefused) as refused:
        sql_registry.import_snapshot(replace(moved, chain_moves=(wrong_start,)), "import:test")
    assert refused.value.key == "from_chain"
    assert dump(registry_url) == before
    record = replace(far, window_ends=now + timedelta(days=30))
    report = sql_registry.import_snapshot(replace(moved, chain_moves=(record,)), "import:test")
    assert f"chain move {SERVICE}" in report.added
    assert sql_registry.chain_move(SERVICE) == record


def test_the_transaction_refuses_a_far_key_window_and_a_new_chain_id_of_another_shape(
    sql_registry: SqlRegistry, registry_url: str
) -> None:
    file = _registered(sql_registry)
    far = ChainKeyVersion("toetsen", 2, 1, datetime.now(UTC) + timedelta(days=367))
    before = dump(registry_url)
    with pytest.raises(RotationRefused, match="more than 366 days from now"):
        sql_registry.import_snapshot(replace(file, key_versions=(far,)), "import:test")
    assert dump(registry_url) == before
    for chain_id in ("service:leesboek", "Toetsen"):
        with pytest.raises(ChainIdRefused):
            sql_registry.add_chain(Chain(chain_id, "X"))
        with pytest.raises(ChainIdRefused):
            sql_registry.import_snapshot(
                replace(file, chains=(*file.chains, Chain(chain_id, "X"))), "import:test"
            )
        assert dump(registry_url) == before


def test_the_transaction_takes_a_new_services_record_only_into_an_empty_registry(
    sql_registry: SqlRegistry, registry_url: str
) -> None:
    """A service new to a registry that holds services comes without a move record (added,
    then moved with `chain move --window`); a rebuild into an empty registry takes it. Asked
    inside the transaction, whatever the file's checks said."""
    file = _registered(sql_registry)
    now = datetime.now(UTC)
    (entry,) = file.services
    client, _ = new_client(("https://nieuw.example/cb",), ClientAuthMethod.SECRET_BASIC)
    new = replace(entry.service, id="nieuw", entity_id="nieuw", oidc=client, chain_id="toetsen")
    made_up = ChainMove("nieuw", "leermiddelen", 1, "toetsen", now + timedelta(days=30))
    adding = replace(
        file, services=(*file.services, ServiceEntry(new, None)), chain_moves=(made_up,)
    )
    before, generation = dump(registry_url), sql_registry.generation()
    with pytest.raises(ImportedMoveRefused) as refused:
        sql_registry.import_snapshot(adding, "import:test")
    assert refused.value.key == "service_id"
    assert "service nieuw is new to the registry, which holds other services" in (
        refused.value.detail
    )
    assert dump(registry_url) == before and sql_registry.generation() == generation
    assert sql_registry.service("nieuw") is None


def test_a_rebuild_into_an_empty_registry_takes_the_files_records(
    sql_registry: SqlRegistry, tmp_path: Path
) -> None:
    """The export of a registry with an open move window, imported into an empty one: the
    record comes with its service, so the platform keeps receiving its previous pseudonym."""
    _registered(sql_registry)
    move = sql_registry.set_service_chain(SERVICE, "toetsen", window_days=30, keys=KEYS)
    assert move is not None
    url = f"sqlite:///{tmp_path}/rebuilt.sqlite3"
    migrate(url)
    rebuilt = SqlRegistry(url, seal=TEST_SEAL)
    try:
        report = rebuilt.import_snapshot(sql_registry.snapshot(), "import:test")
        assert f"chain move {SERVICE}" in report.added
        assert rebuilt.chain_move(SERVICE) == move
    finally:
        rebuilt.close()
