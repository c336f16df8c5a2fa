"""Tables of revision 0003: portal administrators, invitations, publishers, declaration history.

Same `Base` (and naming convention) as `tables.py`; imported by `broker.registry` so the metadata
Alembic compares against always holds them.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from broker.core.admins import Admin, AdminCredentials, AdminRole, Invitation, Publisher
from broker.core.model import Declaration
from broker.core.sealed_secrets import SecretBinding, SecretInClear, SecretSeal, SecretUnreadable
from broker.registry.tables import ID, NAME, Base, as_utc

EMAIL = String(254)
ROLE_CHECK = "role IN ('operator', 'school', 'publisher')"
log = logging.getLogger("broker.registry.accounts")


class AdminRow(Base):
    __tablename__ = "admins"
    # AUTOINCREMENT (revision 0008): SQLite must never give a removed administrator's id to
    # another, since a portal session names its administrator by id.
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Stored lower-cased: one person, one account, however they type their address.
    email: Mapped[str] = mapped_column(EMAIL, unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    # Sealed, bound to the e-mail address (core/sealed_secrets.py; Text since revision 0020, as
    # a sealed value is longer than 64 characters; clear before `registry seal-secrets`).
    totp_secret: Mapped[str] = mapped_column(Text)
    # The last accepted TOTP time step: a code is good for one sign-in only.
    totp_last_step: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    def to_admin(self) -> Admin:
        return Admin(self.id, self.email, AdminRole(self.role), self.tenant_id)

    def to_credentials(self, seal: SecretSeal) -> AdminCredentials:
        """`seal`: as `sealed_only.seal_for` gives it for this row's secret."""
        try:
            totp_secret: str | None = seal.open(self.totp_secret, self.totp_binding)
        except SecretUnreadable as unreadable:
            # Ids only: the address stays out of the log.
            log.error("admin totp secret unreadable admin=%s reason=%s", self.id, unreadable.reason)
            in_clear = isinstance(unreadable, SecretInClear)
            return AdminCredentials(self.to_admin(), self.password_hash, None, in_clear)
        return AdminCredentials(self.to_admin(), self.password_hash, totp_secret)

    @property
    def totp_binding(self) -> SecretBinding:
        return SecretBinding.admin_totp(self.email, self.id)


class InvitationRow(Base):
    __tablename__ = "invitations"
    __table_args__ = (CheckConstraint(ROLE_CHECK, name="role"),)

    # SHA-256 of the token (accounts/tokens.py): the token itself is never stored.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(EMAIL)
    role: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(ID)
    # "": the invitation's page gives each browser a seed of its own, and the account takes the
    # one a code confirmed (web/portal/invitation_seed.py). COMPAT(invitation-stored-seed): an
    # invitation an older version sent holds the seed it showed, sealed and bound to the token
    # hash, emptied once used, withdrawn or expired; remove once every such invitation has
    # (its lifetime, operator_pages.INVITATION_DAYS, after the upgrade).
    totp_secret: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[int] = mapped_column(Integer)
    used: Mapped[bool] = mapped_column(Boolean)

    def to_invitation(self, totp_secret: str) -> Invitation:
        """`totp_secret`: opened by the caller (`totp_binding`), or "" where none is needed."""
        return Invitation(
            self.email,
            AdminRole(self.role),
            self.tenant_id,
            as_utc(self.expires_at),
            totp_secret,
            self.token_hash,
        )

    @property
    def totp_binding(self) -> SecretBinding:
        return SecretBinding.invitation_totp(self.token_hash)


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
