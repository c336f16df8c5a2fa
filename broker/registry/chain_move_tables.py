"""Table of revision 0018: a service's move to another chain with a migration window.

One row per service moved with `ketenbroker chain move --window` (core/chain_move.py): the
pseudonym chain it left, the key version that chain derived with then, the chain it moved into
and the window's end. No personal data: chain names, a version number and dates. The row goes
with its service (foreign key, ON DELETE CASCADE: also when a version without this table
removes the service).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from broker.core.chain_move import ChainMove
from broker.registry.pseudonym_key_tables import MAX_CHANGED_BY, PSEUDONYM_CHAIN
from broker.registry.tables import NAME, Base, as_utc


class ChainMoveRow(Base):
    __tablename__ = "chain_moves"
    __table_args__ = (CheckConstraint("from_version > 0", name="from_version"),)

    service_id: Mapped[str] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), primary_key=True
    )
    from_chain: Mapped[str] = mapped_column(PSEUDONYM_CHAIN)
    from_version: Mapped[int] = mapped_column(Integer)
    to_chain: Mapped[str] = mapped_column(PSEUDONYM_CHAIN)
    window_ends: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str] = mapped_column(NAME)

    @classmethod
    def holding(cls, move: ChainMove, changed_at: datetime, changed_by: str) -> ChainMoveRow:
        return cls(
            service_id=move.service_id,
            from_chain=move.from_chain,
            from_version=move.from_version,
            to_chain=move.to_chain,
            window_ends=move.window_ends,
            changed_at=changed_at,
            changed_by=changed_by[:MAX_CHANGED_BY],
        )

    def to_move(self) -> ChainMove:
        return ChainMove(
            self.service_id,
            self.from_chain,
            self.from_version,
            self.to_chain,
            as_utc(self.window_ends),
        )
