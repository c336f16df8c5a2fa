"""Services' chain moves with a migration window in a registry file (`[[chain_moves]]`).

Exported because a registry rebuilt from the file without them would end every open move
window at once: the moved services' platforms would stop receiving the pseudonym they are
re-keying from. An import adds a record the registry lacks and leaves an equal one alone; like a
key version, it never *changes* one (a record that differs from the registry's is refused:
export again, or use `ketenbroker chain move`), and a record must name a service (of the file or
the registry) whose chain is the record's `to_chain` after the import. A record the registry
lacks comes only with the move it records: the file moves the service out of the record's
`from_chain`, or the service is new to a registry that holds no service at all (one rebuilt
from an export into an empty registry; a service new to a registry with services is added
first, then moved with `chain move --window`); its window ends at most 366 days from now, as
`chain move --window` opens one (core/chain_move.py `check_imported_move`, which the import's
transaction asks again).

A service the file puts in another chain than the registry's is moved as `chain move` moves it
(`check_chain_changes`): refused while its own move window, or a key rotation window of the
chain it leaves or goes to, is open (one line naming the command that ends it), so that "the
previous pseudonym" never becomes ambiguous and no window ends unannounced. Its ended record
goes (the import says so); a record the file brings for it must start from the chain it leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from broker.cli.registry_entries import Entries, Problems, list_of
from broker.core.chain_move import (
    ChainMove,
    ImportedMoveRefused,
    MoveRefused,
    check_imported_move,
    plan_move,
)
from broker.core.model import Service
from broker.registry.snapshot import ServiceEntry, Snapshot

KIND = "chain_moves"
KEYS = {"service_id", "from_chain", "from_version", "to_chain", "window_ends"}
MAX_CHAIN = 100


def chain_move_lines(move: ChainMove) -> list[str]:
    return [
        "",
        f"[[{KIND}]]",
        f'service_id = "{move.service_id}"',
        f'from_chain = "{move.from_chain}"',
        f"from_version = {move.from_version}",
        f'to_chain = "{move.to_chain}"',
        f"window_ends = {move.window_ends.isoformat()}",
    ]


def _record(entry: Entries) -> ChainMove | None:
    service_id = entry.identifier("service_id")
    from_chain = entry.text("from_chain", limit=MAX_CHAIN)
    version = entry.number("from_version", 1)
    to_chain = entry.text("to_chain", limit=MAX_CHAIN)
    ends = entry.table.get("window_ends")
    if not (isinstance(ends, datetime) and ends.tzinfo is not None):
        entry.wrong("window_ends", "must be a date and time with its offset (2027-01-12T20:00Z)")
        return None
    if not (service_id and from_chain and to_chain):
        return None
    return ChainMove(service_id, from_chain, version, to_chain, ends)


def _moved_services(current: Snapshot, after: Snapshot) -> dict[str, Service]:
    """The registry's services the file puts in another pseudonym chain, as they are now."""
    before = {e.service.id: e.service for e in current.services}
    return {
        e.service.id: before[e.service.id]
        for e in after.services
        if e.service.id in before
        and before[e.service.id].pseudonym_chain != e.service.pseudonym_chain
    }


def check_chain_changes(
    services: Sequence[tuple[Entries, ServiceEntry | None]], current: Snapshot, now: datetime
) -> None:
    """Each service the file moves to another chain, checked as `chain move` (without a
    window) checks it against the registry (module note); the import checks again in its
    transaction (registry/bulk_import.py)."""
    before = {e.service.id: e.service for e in current.services}
    records = {r.chain: r for r in current.key_versions}
    held = {m.service_id: m for m in current.chain_moves}
    for entry, found in services:
        was = before.get(found.service.id) if found is not None else None
        if found is None or was is None or was.pseudonym_chain == found.service.pseudonym_chain:
            continue
        try:
            plan_move(was, found.service.chain_id, None, records, held.get(was.id), None, now)
        except MoveRefused as refused:
            entry.wrong("chain", refused.detail)


def read_chain_moves(
    document: dict[str, object],
    problems: Problems,
    current: Snapshot,
    after: Snapshot,
    now: datetime,
) -> tuple[ChainMove, ...]:
    """The file's records, checked: one per service, naming a service whose pseudonym chain
    after the import is the record's `to_chain`, and either the registry's own record as it is
    or one `check_imported_move` lets the import add (the import moves the service out of
    `from_chain`, or the registry holds no service: a rebuild; its window within the cap);
    never contradicting the registry's record (which goes when the import moves its service)."""
    was = {e.service.id: e.service for e in current.services}
    chains = {e.service.id: e.service.pseudonym_chain for e in current.services}
    chains |= {e.service.id: e.service.pseudonym_chain for e in after.services}
    moved = _moved_services(current, after)
    held = {m.service_id: m for m in current.chain_moves if m.service_id not in moved}
    found: dict[str, ChainMove] = {}
    for entry in list_of(document, KIND, problems, KEYS):
        move = _record(entry)
        if move is None:
            continue
        registry = held.get(move.service_id)
        if move.service_id in found:
            entry.wrong("service_id", f"{move.service_id!r} appears twice in the file")
        elif move.service_id not in chains:
            entry.wrong("service_id", f"no service {move.service_id!r}")
        elif chains[move.service_id] != move.to_chain:
            entry.wrong(
                "to_chain",
                f"service {move.service_id} is in {chains[move.service_id]}, not {move.to_chain}",
            )
        elif registry is not None and registry != move:
            entry.wrong(
                "service_id",
                f"the registry has another move record for {move.service_id}; an import never "
                "changes one: export again, or use `ketenbroker chain move`",
            )
        elif registry is None and (
            refused := _refusal(move, was.get(move.service_id), now, not was)
        ):
            entry.wrong(refused.key, refused.detail)
        else:
            found[move.service_id] = move
    return tuple(found.values())


def _refusal(
    move: ChainMove, was: Service | None, now: datetime, registry_empty: bool
) -> ImportedMoveRefused | None:
    try:
        check_imported_move(move, was, now, registry_empty)
    except ImportedMoveRefused as refused:
        return refused
    return None
