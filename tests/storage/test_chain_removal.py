"""Removing a chain on SQLite and PostgreSQL (registry/removal.py, revision 0017): refused while
a service is in it or its migration window is open; otherwise only its row goes, recorded in
`removals`, and its receipts and pseudonym key version record stay. A service put in the chain
while it goes is refused as for an unknown chain; the revision goes down and up again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from broker.core.errors import ConfigurationError
from broker.core.model import Chain
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.registry import SqlRegistry, UnknownChain, migrate
from broker.registry.database import session_on
from broker.registry.errors import ChainInUse, ChainInWindow
from broker.registry.migration import migration_connection, model_drift
from broker.registry.pseudonym_key_tables import PseudonymKeyVersionRow
from broker.registry.receipt_tables import ReceiptRow
from broker.registry.removal import Stamp, remove_chain
from broker.registry.tables import ChainRow, RemovalRow, ServiceRow
from tests.storage.test_publisher_integrity import HEAD, _move, _revision
from tests.storage.test_registry_removal import (  # noqa: F401  # `federation`: a fixture
    EVERY_TABLE,
    SAML_SERVICE,
    _racing_the_removal,
    federation,
    rows_naming,
)

CHAIN = Chain("uitgever-a", "Uitgever A")  # `federation`'s chain, with lesmethode in it
TABLES = (*EVERY_TABLE, ChainRow, PseudonymKeyVersionRow)


def counts(registry: SqlRegistry) -> dict[str, int]:
    with session_on(registry._engine) as session:
        return {
            table.__tablename__: session.scalar(select(func.count()).select_from(table)) or 0
            for table in TABLES
        }


def _emptied(registry: SqlRegistry, record: ChainKeyVersion | None = None) -> SqlRegistry:
    """`federation` with its chain emptied (lesmethode out of every chain), rotated to `record`."""
    registry.set_service_chain(SAML_SERVICE.id, None)
    if record is not None:
        registry.pseudonym_keys.replace(None, record, "test")
    return registry


def test_a_chain_with_services_is_refused_and_nothing_changes(
    federation: SqlRegistry,  # noqa: F811 - the imported fixture
) -> None:
    before, generation = counts(federation), federation.generation()
    for apply in (False, True):
        with pytest.raises(ChainInUse) as refused:
            federation.remove_chain(CHAIN.id, apply=apply, removed_by="cli:ops")
        assert refused.value.services == (SAML_SERVICE.id,)
        message = str(refused.value)
        assert f"chain {CHAIN.id} still has services {SAML_SERVICE.id}: move each" in message
        assert "publisher remove SERVICE --yes" in message and "nothing was changed" in message
    with pytest.raises(UnknownChain, match="no chain with id 'nope'"):
        federation.remove_chain("nope", apply=True)
    assert counts(federation) == before and federation.generation() == generation


def test_an_empty_chain_goes_and_its_receipts_and_key_version_stay(
    federation: SqlRegistry,  # noqa: F811
) -> None:
    record = ChainKeyVersion(CHAIN.id, 2)
    registry = _emptied(federation, record)
    before, generation = counts(registry), registry.generation()
    plan = registry.remove_chain(CHAIN.id, apply=False)
    assert (plan.entry, plan.applied, plan.receipts, plan.key_version) == (CHAIN, False, 2, record)
    assert counts(registry) == before and registry.generation() == generation

    removal = registry.remove_chain(CHAIN.id, apply=True, removed_by="cli:ops")
    assert removal.applied and removal.key_version == record
    assert {
        name: before[name] - n for name, n in counts(registry).items() if n != before[name]
    } == {
        "chains": 1,
        "removals": -1,  # the record of it (revision 0017)
    }
    with session_on(registry._engine) as session:
        row = session.scalars(select(RemovalRow).where(RemovalRow.kind == "chain")).one()
        assert (row.entry_id, row.name, row.removed_by) == (CHAIN.id, CHAIN.name, "cli:ops")
    assert rows_naming(registry, ReceiptRow, "chain_id", CHAIN.id) == 2
    assert registry.generation() > generation  # every worker's view reloads
    with pytest.raises(UnknownChain):
        registry.set_service_chain(SAML_SERVICE.id, CHAIN.id)
    # Registered again under its id, it derives with the kept version: the same pseudonyms.
    registry.add_chain(CHAIN)
    assert registry.pseudonym_keys.of(CHAIN.id) == record
    assert CHAIN.id not in registry.service_names()  # only services' records name receipts


def test_a_chain_in_its_migration_window_goes_only_once_it_ended(
    federation: SqlRegistry,  # noqa: F811
) -> None:
    now = datetime.now(UTC)
    open_window = ChainKeyVersion(CHAIN.id, 2, 1, now + timedelta(days=3))
    registry = _emptied(federation, open_window)
    before = counts(registry)
    for apply in (False, True):
        with pytest.raises(ChainInWindow, match="pseudonym-key finish --chain uitgever-a"):
            registry.remove_chain(CHAIN.id, apply=apply)
    assert counts(registry) == before
    # A window past its end (never finished) no longer holds it.
    ended = replace(open_window, window_ends=now - timedelta(minutes=1))
    registry.pseudonym_keys.replace(open_window, ended, "test")
    assert registry.remove_chain(CHAIN.id, apply=True).key_version == ended
    assert registry.pseudonym_keys.of(CHAIN.id) == ended


@pytest.mark.postgres
def test_a_service_put_in_a_chain_while_it_goes_is_refused(postgres_registry_url: str) -> None:
    """PostgreSQL: a service registered in the chain, or moved into it, while the chain is being
    removed waits for the removal and is then refused as for an unknown chain, not on the
    foreign key (a 500 in the portal); no service is left naming the chain."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url)
    stamp = Stamp("cli:test", datetime.now(UTC))
    other = replace(SAML_SERVICE, id="ander", entity_id="https://sp.ander.nl", chain_id=None)
    late = [
        lambda: registry.add_service(SAML_SERVICE, "<sp/>"),
        lambda: registry.set_service_chain(other.id, CHAIN.id),
    ]
    try:
        registry.add_service(other, "<sp/>")
        for change in late:
            registry.add_chain(CHAIN)
            outcome = _racing_the_removal(
                postgres_registry_url,
                lambda s: remove_chain(s, CHAIN.id, stamp, now=stamp.at),
                change,
            )
            assert len(outcome) == 1 and isinstance(outcome[0], UnknownChain), outcome
        assert rows_naming(registry, ServiceRow, "chain_id", CHAIN.id) == 0
        assert rows_naming(registry, ChainRow, "id", CHAIN.id) == 0
    finally:
        registry.close()


def _removed_chain(registry_url: str) -> None:
    migrate(registry_url)
    registry = SqlRegistry(registry_url)
    try:
        registry.add_chain(CHAIN)
        registry.remove_chain(CHAIN.id, apply=True, removed_by="cli:ops")
    finally:
        registry.close()


def _insert_removal(registry_url: str, kind: str) -> None:
    with migration_connection(registry_url) as connection:
        connection.execute(
            text(
                "INSERT INTO removals (kind, entry_id, name, removed_at, removed_by) "
                f"VALUES ('{kind}', 'x', 'X', CURRENT_TIMESTAMP, 'cli:ops')"
            )
        )


def test_a_downgrade_that_would_drop_a_chains_removal_record_is_refused(
    registry_url: str,
) -> None:
    _removed_chain(registry_url)
    with pytest.raises(ConfigurationError, match="holds 1 chain removal record"):
        _move(registry_url, "0016", down=True)
    assert _revision(registry_url) == HEAD
    with migration_connection(registry_url) as connection:
        kinds = connection.scalars(select(RemovalRow.kind)).all()
    assert kinds == ["chain"]


def test_revision_0017_goes_down_and_up_again(registry_url: str) -> None:
    """Down to 0016 (no chain records there) the narrower kinds hold again; up again, a chain's
    record is admitted and nothing drifted."""
    migrate(registry_url)
    _move(registry_url, "0016", down=True)
    with pytest.raises(IntegrityError):
        _insert_removal(registry_url, "chain")
    _insert_removal(registry_url, "publisher")
    migrate(registry_url)
    assert _revision(registry_url) == HEAD and model_drift(registry_url) == []
    _insert_removal(registry_url, "chain")
    with pytest.raises(IntegrityError):
        _insert_removal(registry_url, "metadata")
