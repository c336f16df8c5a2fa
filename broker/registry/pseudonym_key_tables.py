"""Table of revision 0006: each pseudonym chain's key version and migration window.

One row per chain that was ever rotated (pseudonym_rotation.py); a chain without a row derives
with the key set's `current`. `chain` is the pseudonym's chain input: a chain id, or
`service:<service id>` for a service in no chain. No personal data: version numbers and dates.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.registry.tables import NAME, Base, as_utc

MAX_CHANGED_BY = 200
# `service:` and a service id (64): the longest pseudonym chain input.
PSEUDONYM_CHAIN = String(100)
WINDOW_CHECK = (
    "(previous_version IS NULL AND window_ends IS NULL)"
    " OR (previous_version IS NOT NULL AND window_ends IS NOT NULL)"
)


class PseudonymKeyVersionRow(Base):
    __tablename__ = "pseudonym_key_versions"
    __table_args__ = (
        CheckConstraint(WINDOW_CHECK, name="window"),
        CheckConstraint("current_version > 0", name="current_version"),
    )

    chain: Mapped[str] = mapped_column(PSEUDONYM_CHAIN, primary_key=True)
    current_version: Mapped[int] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer)
    window_ends: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str] = mapped_column(NAME)

    def hold(self, record: ChainKeyVersion, changed_at: datetime, changed_by: str) -> None:
        """Make this row say `record` (its chain must be this row's)."""
        self.current_version = record.current_version
        self.previous_version = record.previous_version
        self.window_ends = record.window_ends
        self.changed_at = changed_at
        self.changed_by = changed_by[:MAX_CHANGED_BY]

    def to_record(self) -> ChainKeyVersion:
        return ChainKeyVersion(
            self.chain,
            self.current_version,
            self.previous_version,
            as_utc(self.window_ends) if self.window_ends is not None else None,
        )
