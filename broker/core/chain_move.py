"""A chain move's migration window (pseudonyms.md, "Keys and rotation"). Pure: no I/O, no clock.

Moving a service to another chain (or out of every chain) changes every pseudonym it receives:
the chain is an input of the derivation. `ketenbroker chain move --window DAYS` records, per
service, the pseudonym chain it left (a chain id, or `service:<id>` when it was in none), the key
version that chain derived with at that moment, and the window's end. During the window the
service receives the pseudonym of its new chain and, as the previous pseudonym, the one it used
to receive (the chain it left, at the recorded version): the same attributes a key rotation's
window uses (`urn:ketenbroker:previous-pseudonym`, `previous_sub`), so a platform re-keys its
accounts the same way. After the window, the new pseudonym alone.

One window at a time per service, or "the previous pseudonym" would be ambiguous: a move is
refused while the service is in a move window, or while the chain it is in or the chain it goes
to is in a key rotation window; a rotation of a chain is refused while a service that moved into
it is in its move window (`refuse_rotation_during_moves`). A registry import that changes a
service's chain is a move without a window and meets the same refusals (bulk_import.py).

A record speaks for its service only while the service is in the record's `to_chain`: one whose
service was moved on by a version that did not know these records (an import before this rule)
releases nothing and stands in the way of nothing (`move_in_force`; the registry reads only the
records that still stand, registry/chain_moves.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.core.errors import BadRequest
from broker.core.model import Service
from broker.core.pseudonym import PseudonymKeys
from broker.core.pseudonym_rotation import (
    MAX_WINDOW_DAYS,
    ChainKeyVersion,
    KeyVersions,
    RotationRefused,
    chain_current_version,
    key_versions_for,
    previous_pseudonym_still_released,
    window_end_problem,
)


@dataclass(frozen=True)
class ChainMove:
    """The registry's record of one service's move with a window. `to_chain` is the pseudonym
    chain input it moved into: a record whose `to_chain` is no longer the service's (moved again
    by a version that did not know these records) releases nothing."""

    service_id: str
    from_chain: str
    from_version: int
    to_chain: str
    window_ends: datetime  # timezone-aware

    def window_open(self, now: datetime) -> bool:
        return now < self.window_ends


class MoveRefused(BadRequest):
    code = "chain_move_refused"
    public_message = (
        "The service cannot move now: it or a chain concerned is in a pseudonym migration window."
    )


class ImportedMoveRefused(MoveRefused):
    """A registry file's move record the import may not add; `key`: the record's field at
    fault, for the import's list of problems."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(detail)
        self.key = key


def check_imported_move(
    move: ChainMove, was: Service | None, now: datetime, registry_empty: bool
) -> None:
    """A move record a registry file brings and the registry lacks, whose `to_chain` is its
    service's chain after the import: refused (`ImportedMoveRefused`) unless the import itself
    moves the service out of `from_chain`, or the registry is being rebuilt from an export
    (`registry_empty`: it held no service at all before the import, so no platform knows any
    pseudonym of it yet). A service new to a registry that holds services is added first and
    then moved with `chain move --window`. Otherwise a file could make up a move and hand the
    service, as its "previous pseudonym", every student's pseudonym in another chain. Its
    window ends at most `MAX_WINDOW_DAYS` from now, as `chain move --window` opens one. The
    file's checks and the import's transaction (registry/bulk_import.py) both ask this.
    `was`: the service as the registry holds it before the import (None: new to it)."""
    if (problem := window_end_problem(move.window_ends, now)) is not None:
        raise ImportedMoveRefused("window_ends", problem)
    if was is None:
        if registry_empty:
            return
        raise ImportedMoveRefused(
            "service_id",
            f"service {move.service_id} is new to the registry, which holds other services: a "
            "move record comes with a new service only when a registry is rebuilt from an "
            f"export into an empty one; add the service in {_chain_named(move.from_chain)} "
            f"first, then move it (`ketenbroker chain move {move.service_id} "
            f"{_to_option(move)} --window DAYS`)",
        )
    if was.pseudonym_chain == move.to_chain:
        raise ImportedMoveRefused(
            "service_id",
            f"service {move.service_id} is in {move.to_chain} in the registry and the file does "
            "not move it: a move record comes only with the move it records (`ketenbroker "
            "chain move --window`), or with a registry rebuilt from an export",
        )
    if was.pseudonym_chain != move.from_chain:
        raise ImportedMoveRefused(
            "from_chain",
            f"service {move.service_id} is in {was.pseudonym_chain} before the import, not "
            f"{move.from_chain}: its platform knows it by that chain's pseudonym",
        )


def move_in_force(move: ChainMove | None, service: Service, now: datetime) -> ChainMove | None:
    """`move` while its window is open and the service is still where it moved to, else None."""
    if move is None or move.service_id != service.id or move.to_chain != service.pseudonym_chain:
        return None
    return move if move.window_open(now) else None


def service_key_versions(
    keys: PseudonymKeys,
    record: ChainKeyVersion | None,
    move: ChainMove | None,
    service: Service,
    now: datetime,
) -> KeyVersions:
    """The versions one login of `service` derives with: its chain's current version, and as
    the previous pseudonym the chain it left (in a move's window) or its chain's previous
    version (in a rotation's window). Both at once cannot be set up (the refusals above); should
    a registry still hold both (an import, an older version's write), the move's wins: it is
    the pseudonym the platform knows the student by."""
    in_force = move_in_force(move, service, now)
    if in_force is None:
        return key_versions_for(keys, record, now)
    return KeyVersions(
        chain_current_version(keys, record), in_force.from_version, in_force.from_chain
    )


def previous_still_released(
    record: ChainKeyVersion | None,
    move: ChainMove | None,
    service: Service,
    derived_with: int,
    previous_chain: str,
    now: datetime,
) -> bool:
    """Whether a previous pseudonym a login handed out may go out again now (an OIDC code or
    token used later): only while the window it came from is open. `previous_chain` is what the
    login recorded: "" for a rotation's window (pseudonym_rotation.py decides), else the chain
    the service left, whose move must still be in force and name that chain."""
    in_force = move_in_force(move, service, now)
    if previous_chain:
        return in_force is not None and in_force.from_chain == previous_chain
    return in_force is None and previous_pseudonym_still_released(record, derived_with, now)


def plan_move(
    service: Service,
    to_chain_id: str | None,
    keys: PseudonymKeys | None,
    records: dict[str, ChainKeyVersion],
    move: ChainMove | None,
    window_days: int | None,
    now: datetime,
) -> ChainMove | None:
    """The move record to write when `service` goes to `to_chain_id` (None: no chain), or None
    without a window. `records`: the key version records of the chains concerned (the one it
    leaves and the one it goes to; a chain without one is absent). Refused, changing nothing,
    while any window concerns the service (module note). `keys` (the key set now) is needed
    with a window only: the chain it leaves may never have been rotated."""
    if window_days is not None and not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise MoveRefused(f"the window must be 1 to {MAX_WINDOW_DAYS} days, not {window_days}")
    if (held := move_in_force(move, service, now)) is not None:
        raise MoveRefused(
            f"service {service.id} is in the migration window of its move from {held.from_chain}"
            f" until {_when(held.window_ends)}; end it first (`ketenbroker chain move "
            f"{service.id} --finish`)"
        )
    from_chain = service.pseudonym_chain
    to_chain = to_chain_id if to_chain_id else f"service:{service.id}"
    for chain, role in ((from_chain, "it is in"), (to_chain, "it would go to")):
        record = records.get(chain)
        if record is not None and record.window_open(now) and record.window_ends is not None:
            raise MoveRefused(
                f"{_chain_named(chain)} ({role}) is in a pseudonym key migration window until "
                f"{_when(record.window_ends)}; finish it first (`ketenbroker pseudonym-key "
                f"finish {_finish_option(chain)}`) or wait for its end"
            )
    if window_days is None:
        return None
    if to_chain == from_chain:
        raise MoveRefused(f"service {service.id} is in {_chain_named(to_chain)} already")
    assert keys is not None, "a move with a window needs the key set"
    version = chain_current_version(keys, records.get(from_chain))
    return ChainMove(service.id, from_chain, version, to_chain, now + timedelta(days=window_days))


def finished_move(move: ChainMove | None, service_id: str, now: datetime) -> None:
    """Check that `chain move --finish` has an open window to end."""
    if move is None or not move.window_open(now):
        raise MoveRefused(f"service {service_id} has no open move window to finish")


def refuse_rotation_during_moves(chain: str, moves: Iterable[ChainMove], now: datetime) -> None:
    """A rotation of `chain` while a service that moved into it is in its move window would
    give that service two previous pseudonyms: refused."""
    for move in moves:
        if move.to_chain == chain and move.window_open(now):
            raise RotationRefused(
                f"service {move.service_id} moved into {_chain_named(chain)} and is in its "
                f"migration window until {_when(move.window_ends)}; end it first (`ketenbroker "
                f"chain move {move.service_id} --finish`) or wait for its end"
            )


def open_moves(moves: Iterable[ChainMove], now: datetime) -> list[ChainMove]:
    return [move for move in moves if move.window_open(now)]


def move_state(move: ChainMove | None, now: datetime) -> str:
    """A service's move window as `pseudonym-key status` and `chain list` say it; "" for none."""
    if move is None:
        return ""
    left = f"moved from {move.from_chain} (version {move.from_version})"
    if move.window_open(now):
        return f"{left}; window open until {_when(move.window_ends)} (previous pseudonym released)"
    return f"{left}; window ended {_when(move.window_ends)}"


def _chain_named(chain: str) -> str:
    return chain if chain.startswith("service:") else f"chain {chain}"


def _to_option(move: ChainMove) -> str:
    """`chain move`'s option that puts the service where `move` took it."""
    return "--no-chain" if move.to_chain.startswith("service:") else f"--to {move.to_chain}"


def _finish_option(chain: str) -> str:
    prefix = "service:"
    return f"--service {chain[len(prefix) :]}" if chain.startswith(prefix) else f"--chain {chain}"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"
