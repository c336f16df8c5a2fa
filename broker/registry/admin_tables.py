"""Tables of revision 0003: portal administrators, invitations, publishers, declaration history.

Same `Base` (and naming convention) as `tables.py`; imported by `broker.registry` so the metadata
Alembic compares against always holds them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from broker.core.admins import Admin, AdminCredentials, AdminRole, Invitation, Publisher
from broker.core.model import Declaration
from broker.registry.tables import ID, NAME, Base, as_utc

EMAIL = String(254)
ROLE_CHECK = "role IN ('operator', 'school', 'publisher')"


class AdminRow(Base):
    __tablename__ = "admins"
    # AUTOINCREMENT (revision 0008): SQLite must never give a removed administrator's id to
    # another, since a portal session names its administrator by id.
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Stored lower-cased: one person, one account, however they type their address.
    email: Mapped[str] = mapped_column(EMAIL, unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    totp_secret: Mapped[str] = mapped_column(String(64))
    # The last accepted TOTP time step: a code is good for one sign-in only.
    totp_last_step: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def to_admin(self) -> Admin:
        return Admin(self.id, self.email, AdminRole(self.role), self.tenant_id)

    def to_credentials(self) -> AdminCredentials:
        return AdminCredentials(self.to_admin(), self.password_hash, self.totp_secret)


class InvitationRow(Base):
    __tablename__ = "invitations"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role"),)

    # SHA-256 of the token (accounts/tokens.py): the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(EMAIL)
    role: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(ID)
    totp_secret: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[int] = mapped_column(Integer)
    used: Mapped[bool] = mapped_column(Boolean)

    def to_invitation(self) -> Invitation:
        return Invitation(
            self.email,
            AdminRole(self.role),
            self.tenant_id,
            as_utc(self.expires_at),
            self.totp_secret,
            self.token_hash,
        )


class PublisherRow(Base):
    __tablename__ = "publishers"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(NAME)

    def to_publisher(self) -> Publisher:
        return Publisher(self.id, self.name)


class DeclarationChangeRow(Base):
    """Append-only: every version of a service's declared attributes (version 1 included for
    services registered after revision 0003)."""

    __tablename__ = "declaration_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(ID, index=True)
    version: Mapped[int] = mapped_column(Integer)
    # [{"attribute": ..., "purpose": ..., "required": ..., "purpose_en": ...}, ...] in the
    # declared order; "purpose_en" since revision 0010 (absent before: no English text).
    declarations: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[str] = mapped_column(NAME)


def declarations_json(declarations: tuple[Declaration, ...]) -> list[dict[str, object]]:
    return [
        {
            "attribute": d.attribute,
            "purpose": d.purpose,
            "required": d.required,
            "purpose_en": d.purpose_en,
        }
        for d in declarations
    ]


def declarations_from_json(stored: list[dict[str, object]]) -> tuple[Declaration, ...]:
    return tuple(
        Declaration(
            str(d["attribute"]),
            str(d["purpose"]),
            bool(d["required"]),
            str(d.get("purpose_en") or ""),
        )
        for d in stored
    )
