"""Tables of revision 0004: federation metadata sources and the entities they last delivered.

The last good copy of every configured metadata source lives here, in the registry database, so
every worker and every restart starts from it when the source cannot be reached. Same `Base`
(and naming convention) as `tables.py`; imported by `broker.registry`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from broker.registry.tables import ENTITY_ID, ID, Base

ROLE_CHECK = "role IN ('idp', 'sp')"


class MetadataSourceRow(Base):
    """One configured source: its last good copy's facts and its last attempt's outcome."""

    __tablename__ = "metadata_sources"

    name: Mapped[str] = mapped_column(ID, primary_key=True)
    # SHA-256 of the last good download: an unchanged feed changes nothing (no generation bump).
    digest: Mapped[str | None] = mapped_column(String(64))
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Its mdrpi:PublicationInfo/@creationInstant (revision 0022): an older feed is refused.
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    entity_count: Mapped[int] = mapped_column(Integer)
    last_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # A reason code (metadata_refused:<code>), never the feed's text; NULL after a success.
    last_error: Mapped[str | None] = mapped_column(String(64))
    # The registration authorities the copy held was read under, one a line (revision 0023);
    # NULL: every member. Its copies beat those of a source without a list (federation.py).
    registration_authorities: Mapped[str | None] = mapped_column(Text)
    # The members its last good download left out for a problem of their own, as JSON
    # (revision 0026, federation.py `left_out_json`); NULL: none.
    left_out: Mapped[str | None] = mapped_column(Text)


class FederationEntityRow(Base):
    """One entity of a source's last good copy, kept as its own EntityDescriptor XML."""

    __tablename__ = "federation_entities"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role"),)

    source: Mapped[str] = mapped_column(
        ForeignKey("metadata_sources.name", ondelete="CASCADE"), primary_key=True
    )
    entity_id: Mapped[str] = mapped_column(ENTITY_ID, primary_key=True)
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    # The earlier of the source's and the entity's own validUntil; NULL: no end given.
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    xml: Mapped[str] = mapped_column(Text, deferred=True)
