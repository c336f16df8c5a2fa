"""Each pseudonym chain's key version in the registry (pseudonym_rotation.py, revision 0006).

Reads serve the workers' cached view (every record, reloaded with the generation) and the
portals; writes come from `ketenbroker pseudonym-key` and bump the generation, so every worker
derives with the new version on its next look, without a restart. A write is a compare-and-set
on what the command planned from: two rotations of one chain at once cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from broker.core.chain_move import refuse_rotation_during_moves
from broker.core.pseudonym_rotation import ChainKeyVersion, RotationRefused
from broker.registry.changes import serialise_checks
from broker.registry.database import session_on
from broker.registry.pseudonym_key_tables import PseudonymKeyVersionRow


def key_version_of(engine: Engine, chain: str) -> ChainKeyVersion | None:
    with session_on(engine) as session:
        return key_version_in(session, chain)


def key_version_in(session: Session, chain: str) -> ChainKeyVersion | None:
    """`chain`'s key version record, read in the caller's transaction."""
    row = session.get(PseudonymKeyVersionRow, chain)
    return row.to_record() if row is not None else None


def all_key_versions(engine: Engine) -> list[ChainKeyVersion]:
    with session_on(engine) as session:
        rows = session.scalars(
            select(PseudonymKeyVersionRow).order_by(PseudonymKeyVersionRow.chain)
        )
        return [row.to_record() for row in rows]


class SqlPseudonymKeyVersions:
    """Writes of chains' key versions; `writer` is the write-locking engine, `bump` the
    registry's generation bump."""

    def __init__(
        self,
        engine: Engine,
        writer: Engine,
        bump: Callable[[Session], None],
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._bump = bump
        self._clock = clock

    def of(self, chain: str) -> ChainKeyVersion | None:
        return key_version_of(self._engine, chain)

    def all(self) -> list[ChainKeyVersion]:
        return all_key_versions(self._engine)

    def replace(
        self, expected: ChainKeyVersion | None, new: ChainKeyVersion, changed_by: str
    ) -> None:
        """Write `new` for its chain if the chain's record is still `expected` (None: no
        record); otherwise refuse and change nothing. A new window (a rotation) is refused
        while a service that moved into the chain is in its move window (core/chain_move.py)."""
        with session_on(self._writer) as session:
            serialise_checks(session)
            if new.previous_version is not None:
                # Imported here: chain_moves reads key versions through this module.
                from broker.registry.chain_moves import moves_into

                refuse_rotation_during_moves(
                    new.chain, moves_into(session, new.chain), self._clock()
                )
            row = session.get(PseudonymKeyVersionRow, new.chain)
            held = row.to_record() if row is not None else None
            if held != expected:
                raise RotationRefused(
                    f"chain {new.chain}'s key version changed meanwhile; run the command again"
                )
            if row is None:
                row = PseudonymKeyVersionRow(chain=new.chain)
                session.add(row)
            row.hold(new, self._clock(), changed_by)
            self._bump(session)
