"""A registry import of many schools reads and writes them in bulk (bulk_import._schools,
shared_idps.settle_shared and lock_idp): a fixed handful of statements per
`IN_CHUNK` schools, not a few per school, with every check of the shared-IdP rule and the same
outcome: a provider's schools on both sides of a chunk's edge still share one metadata and BRIN
ids, and a refusal names the IdP and its schools and leaves nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from broker.core.model import School
from broker.registry import SqlRegistry, migrate
from broker.registry.database import IN_CHUNK
from broker.registry.errors import SchoolIdNotBrin, SharedIdpMetadataDiffers, TextWithNul
from broker.registry.shared_idps import _IDP_LOCK_SPACE, lock_idp
from broker.registry.snapshot import SchoolEntry, Snapshot
from tests.support.sealing import TEST_SEAL

# More schools than two chunks: the rule's reads must join them across the chunks' edges.
COUNT = 2 * IN_CHUNK + 101
BOARD = "https://sts.bestuur.example/adfs/services/trust"


def _brin(n: int) -> str:
    return f"{n // 676 % 100:02d}{chr(65 + n // 26 % 26)}{chr(65 + n % 26)}"


def _entries(board_xml: tuple[str, str] = ("<board/>", "<board/>")) -> list[SchoolEntry]:
    """`COUNT` schools each on an IdP of its own, but the first and the last, which share the
    board's (with these two copies of its metadata)."""
    entries = [
        SchoolEntry(School(_brin(n), f"School {n}", f"https://idp{n}.example/md"), f"<idp{n}/>")
        for n in range(COUNT)
    ]
    for at, xml in zip((0, COUNT - 1), board_xml, strict=True):
        entries[at] = SchoolEntry(School(_brin(at), f"Board school {at}", BOARD), xml)
    return entries


@contextmanager
def _statements(registry: SqlRegistry) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    engine = registry._engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_an_import_of_many_schools_takes_a_few_statements_per_chunk(
    sql_registry: SqlRegistry,
) -> None:
    with _statements(sql_registry) as first:
        report = sql_registry.import_snapshot(Snapshot(schools=tuple(_entries())), "t")
    assert report.applied and len(report.added) == COUNT
    # Before: one read, one insert, a lock, two reads of the rule and two of the board mark
    # per school (over 7 a school); now a few per chunk of IN_CHUNK, whatever the count.
    assert len(first) < 40, len(first)
    assert len(sql_registry.schools()) == COUNT
    # The board's two schools share its IdP: its logins name their school from now on.
    assert sql_registry.idps_naming_school() == frozenset({BOARD})
    with _statements(sql_registry) as again:
        report = sql_registry.import_snapshot(Snapshot(schools=tuple(_entries())), "t")
    assert report.applied and not report.added and not report.changed
    assert len(report.same) >= COUNT and len(again) < 40, len(again)


def test_an_import_reads_which_idps_name_their_school_once_per_chunk(
    sql_registry: SqlRegistry,
) -> None:
    # Marking the IdPs two schools are on and checking the rule after it read the marks once
    # (shared_idps.settle_shared); each read them for itself before, twice per chunk.
    with _statements(sql_registry) as seen:
        report = sql_registry.import_snapshot(Snapshot(schools=tuple(_entries())), "t")
    assert report.applied and sql_registry.idps_naming_school() == frozenset({BOARD})
    reads = [
        s for s in seen if s.lstrip().upper().startswith("SELECT") and "idps_naming_school" in s
    ]
    idps = COUNT - 1  # the board's two schools share one
    assert len(reads) == -(-idps // IN_CHUNK), reads


def test_a_shared_idps_two_copies_across_chunks_refuse_the_whole_import(
    sql_registry: SqlRegistry,
) -> None:
    entries = _entries(("<board/>", "<board-other/>"))
    with pytest.raises(SharedIdpMetadataDiffers) as refused:
        sql_registry.import_snapshot(Snapshot(schools=tuple(entries)), "t")
    assert BOARD in str(refused.value)
    assert _brin(0) in str(refused.value) and _brin(COUNT - 1) in str(refused.value)
    assert sql_registry.schools() == []


def test_a_shared_idps_school_without_a_brin_refuses_the_whole_import(
    sql_registry: SqlRegistry,
) -> None:
    entries = _entries()
    entries[-1] = SchoolEntry(School("lyceum-zuid", "Lyceum Zuid", BOARD), "<board/>")
    with pytest.raises(SchoolIdNotBrin) as refused:
        sql_registry.import_snapshot(Snapshot(schools=tuple(entries)), "t")
    assert BOARD in str(refused.value) and "lyceum-zuid" in str(refused.value)
    assert sql_registry.schools() == []


@pytest.mark.postgres
def test_a_bulk_lock_holds_every_idps_lock(postgres_registry_url: str) -> None:
    """The file's IdPs locked in bulk (a statement per chunk), each under the key `check_joining`
    takes for one: another transaction cannot take any of them until the transaction ends."""
    migrate(postgres_registry_url)
    registry = SqlRegistry(postgres_registry_url, seal=TEST_SEAL)
    idps = [f"https://idp{n}.example/md" for n in range(IN_CHUNK + 2)]
    try:
        with _statements(registry) as seen, Session(registry._engine) as session:
            lock_idp(session, reversed(idps))
            assert len(seen) == 2 and all("unnest" in s for s in seen)
            with registry._engine.connect() as other:
                for entity_id in (idps[0], idps[IN_CHUNK], idps[-1]):
                    held = other.scalar(_TRY, {"space": _IDP_LOCK_SPACE, "entity_id": entity_id})
                    assert held is False, entity_id
                other.rollback()
            session.rollback()
        with registry._engine.connect() as other:
            assert other.scalar(_TRY, {"space": _IDP_LOCK_SPACE, "entity_id": idps[0]}) is True
            other.rollback()
        # The NUL guard (database.py) looks into the array too, as into every text parameter.
        with Session(registry._engine) as session, pytest.raises(TextWithNul):
            lock_idp(session, ["https://a.example", "https://b.example\x00"])
    finally:
        registry.close()


_TRY = text("SELECT pg_try_advisory_xact_lock(:space, hashtext(:entity_id))")
