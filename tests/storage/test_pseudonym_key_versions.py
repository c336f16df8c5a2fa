"""Chains' pseudonym key versions in the registry (revision 0006), on SQLite and PostgreSQL:
round trip with aware timestamps, compare-and-set writes, a generation bump per change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.core.pseudonym_rotation import ChainKeyVersion, RotationRefused
from broker.registry import SqlRegistry
from broker.registry.cached import CachedRegistryReader

ENDS = datetime(2026, 12, 28, 12, 0, tzinfo=UTC)
WINDOW = ChainKeyVersion("leermiddelen", 2, 1, ENDS)


def test_a_chain_without_a_record_has_none(sql_registry: SqlRegistry) -> None:
    assert sql_registry.pseudonym_key_version("leermiddelen") is None
    assert sql_registry.pseudonym_keys.all() == []


def test_round_trip_and_generation(sql_registry: SqlRegistry) -> None:
    before = sql_registry.generation()
    sql_registry.pseudonym_keys.replace(None, WINDOW, "cli:test")
    assert sql_registry.generation() == before + 1
    held = sql_registry.pseudonym_key_version("leermiddelen")
    assert held == WINDOW
    assert held is not None and held.window_ends is not None
    assert held.window_ends.tzinfo is not None
    finished = ChainKeyVersion("leermiddelen", 2)
    sql_registry.pseudonym_keys.replace(WINDOW, finished, "cli:test")
    assert sql_registry.generation() == before + 2
    own = ChainKeyVersion("service:los", 2, 1, ENDS + timedelta(days=1))
    sql_registry.pseudonym_keys.replace(None, own, "cli:test")
    assert sql_registry.pseudonym_keys.all() == [finished, own]


def test_a_write_from_a_stale_plan_is_refused_and_changes_nothing(
    sql_registry: SqlRegistry,
) -> None:
    sql_registry.pseudonym_keys.replace(None, WINDOW, "cli:first")
    generation = sql_registry.generation()
    other = ChainKeyVersion("leermiddelen", 3, 1, ENDS)
    with pytest.raises(RotationRefused, match="changed meanwhile"):
        sql_registry.pseudonym_keys.replace(None, other, "cli:second")
    assert sql_registry.pseudonym_key_version("leermiddelen") == WINDOW
    assert sql_registry.generation() == generation


def test_a_second_worker_sees_a_rotation_through_its_cached_view(
    sql_registry: SqlRegistry, registry_url: str
) -> None:
    worker = SqlRegistry(registry_url)
    try:
        view = CachedRegistryReader(worker, max_staleness=0)
        assert view.pseudonym_key_version("leermiddelen") is None
        sql_registry.pseudonym_keys.replace(None, WINDOW, "cli:test")
        assert view.pseudonym_key_version("leermiddelen") == WINDOW
    finally:
        worker.close()
