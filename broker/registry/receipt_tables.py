"""Tables of revision 0004: receipts, each school's receipt chain head, notice preferences.

Receipts carry no personal data: attribute *names*, ids, and the receipt subject (a keyed hash;
core/receipts.py). `attributes` is stored as `,a,b,` so "receipts that released attribute a" is
one portable `LIKE '%,a,%'` on SQLite and PostgreSQL alike (catalogue names hold no commas).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broker.core.receipts import ChainAnchor, Receipt, ReceiptContent
from broker.registry.tables import ID, Base

HASH = String(64)
PROTOCOL = String(8)
NOTICE_MODES = ("session", "changes")
SCHOOL_SERVICE_ATTRIBUTES = "ix_receipts_school_id_service_id_attributes"
SCHOOL_SERVICE_ATTRIBUTES_COLUMNS = ("school_id", "service_id", "attributes")


def attributes_column(attributes: tuple[str, ...]) -> str:
    return "," + ",".join(attributes) + "," if attributes else ","


def column_attributes(column: str) -> tuple[str, ...]:
    """The attribute names an `attributes_column` value holds."""
    return tuple(a for a in column.split(",") if a)


def receipt_values(receipt: Receipt) -> dict[str, str | int | None]:
    """The row's columns for one receipt."""
    content = receipt.content
    return {
        "school_id": content.school_id,
        "seq": receipt.seq,
        "issued_at": content.issued_at,
        "service_id": content.service_id,
        "chain_id": content.chain_id,
        "attributes": attributes_column(content.attributes),
        "policy_version": content.policy_version,
        "school_protocol": content.school_protocol,
        "service_protocol": content.service_protocol,
        "subject": content.subject,
        "previous_hash": receipt.previous_hash,
        "hash": receipt.hash,
    }


class ReceiptRow(Base):
    __tablename__ = "receipts"
    __table_args__ = (
        UniqueConstraint("school_id", "seq"),
        Index("ix_receipts_school_id_issued_at", "school_id", "issued_at"),
        Index("ix_receipts_subject_service_id", "subject", "service_id"),
        # Revision 0025: the school portal's passes over a school's receipts (`named`, and
        # `totals` without a date or student filter) read this index only, not the table.
        Index(SCHOOL_SERVICE_ATTRIBUTES, *SCHOOL_SERVICE_ATTRIBUTES_COLUMNS),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No foreign keys: a receipt outlives the school's or service's registration.
    school_id: Mapped[str] = mapped_column(ID)
    seq: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[int] = mapped_column(BigInteger)
    service_id: Mapped[str] = mapped_column(ID)
    chain_id: Mapped[str | None] = mapped_column(ID)
    attributes: Mapped[str] = mapped_column(String(2048))
    policy_version: Mapped[int] = mapped_column(Integer)
    school_protocol: Mapped[str] = mapped_column(PROTOCOL)
    service_protocol: Mapped[str] = mapped_column(PROTOCOL)
    subject: Mapped[str] = mapped_column(HASH)
    previous_hash: Mapped[str] = mapped_column(HASH)
    hash: Mapped[str] = mapped_column(HASH)

    def to_receipt(self) -> Receipt:
        content = ReceiptContent(
            issued_at=self.issued_at,
            school_id=self.school_id,
            service_id=self.service_id,
            chain_id=self.chain_id,
            attributes=column_attributes(self.attributes),
            policy_version=self.policy_version,
            school_protocol=self.school_protocol,
            service_protocol=self.service_protocol,
            subject=self.subject,
        )
        return Receipt(content, self.seq, self.previous_hash, self.hash)


class ReceiptChainRow(Base):
    """A school's chain: the last receipt written (head) and where the kept chain starts
    (anchor: the last pruned receipt). The head row is also the per-school write lock."""

    __tablename__ = "receipt_chains"

    school_id: Mapped[str] = mapped_column(ID, primary_key=True)
    head_seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(HASH)
    anchor_seq: Mapped[int] = mapped_column(Integer)
    anchor_hash: Mapped[str] = mapped_column(HASH)
    # HMAC under the chain key over all of the above (ReceiptKeys.seal_record).
    seal: Mapped[str] = mapped_column(HASH)

    def anchor(self) -> ChainAnchor:
        return ChainAnchor(self.anchor_seq, self.anchor_hash)

    def head(self) -> ChainAnchor:
        return ChainAnchor(self.head_seq, self.head_hash)


class NoticePreferenceRow(Base):
    """How often students see the information notice for one service (absent: every session).

    `changes`: after a student's first visit, only when the release changes."""

    __tablename__ = "notice_preferences"
    __table_args__ = (CheckConstraint("mode IN ('session', 'changes')", name="mode"),)

    school_id: Mapped[str] = mapped_column(ID, primary_key=True)
    service_id: Mapped[str] = mapped_column(ID, primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
