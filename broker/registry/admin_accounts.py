"""`SqlAdminAccounts`: portal administrators, their invitations, and publishers, in SQL.

Hashing and TOTP happen in `broker.accounts`; this module only stores what they produce. E-mail
addresses are compared lower-cased and never appear in an error's detail (which gets logged).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from broker.core.admins import Admin, AdminCredentials, AdminRole, Invitation, Publisher
from broker.core.errors import BadRequest, UnknownSchool
from broker.core.sealed_secrets import NO_KEYS, SecretBinding, SecretSeal
from broker.registry.admin_removal import AdminRemoval, removing_admin
from broker.registry.admin_tables import AdminRow, InvitationRow, PublisherRow
from broker.registry.changes import serialise_checks
from broker.registry.database import locked_row, session_on, writer
from broker.registry.errors import (
    DuplicateEntry,
    InvitationOpen,
    InvitationUnusable,
    UnknownPublisher,
)
from broker.registry.sealed_only import seal_for
from broker.registry.tables import SchoolRow, ServiceRow, as_utc

MAX_EMAIL = 254
T = TypeVar("T")
log = logging.getLogger("broker.registry.accounts")


def normal_email(email: str) -> str:
    """Lower-cased and trimmed; refuses what cannot be an address (no detail: it gets logged)."""
    cleaned = email.strip().lower()
    local, at, domain = cleaned.partition("@")
    # Not printable: a control character (a NUL, a tab) is in no address, and PostgreSQL
    # could not even look one up with a NUL (registry/database.py).
    if (
        not at
        or not local
        or "." not in domain
        or len(cleaned) > MAX_EMAIL
        or " " in cleaned
        or not cleaned.isprintable()
    ):
        raise BadRequest("not an e-mail address", code="invalid_email")
    return cleaned


@dataclass(frozen=True)
class PublisherOrganisation:
    publisher: Publisher
    services: int
    admins: int


class SqlAdminAccounts:
    """`seal` seals every TOTP secret written and opens those read (core/sealed_secrets.py)."""

    def __init__(
        self, engine: Engine, clock: Callable[[], datetime], seal: SecretSeal = NO_KEYS
    ) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._clock = clock
        self._seal = seal

    # -- administrators ------------------------------------------------------------------
    def add_admin(
        self,
        email: str,
        password_hash: str,
        totp_secret: str,
        role: AdminRole,
        tenant_id: str | None,
    ) -> Admin:
        address = normal_email(email)
        with session_on(self._writer) as session:
            _require_tenant(session, role, tenant_id)
            if session.scalar(select(AdminRow.id).where(AdminRow.email == address)) is not None:
                # The kind and field only: the address itself must not reach a log line.
                raise BadRequest(
                    "an administrator with this e-mail already exists", code="duplicate_admin"
                )
            row = AdminRow(
                email=address,
                password_hash=password_hash,
                totp_secret=self._seal.seal(totp_secret, SecretBinding.admin_totp(address)),
                totp_last_step=-1,
                role=role.value,
                tenant_id=tenant_id,
                created_at=as_utc(self._clock()),
            )
            session.add(row)
            session.flush()
            return row.to_admin()

    def admin(self, admin_id: int) -> Admin | None:
        with session_on(self._engine) as session:
            row = session.get(AdminRow, admin_id)
            return row.to_admin() if row is not None else None

    def credentials(self, email: str) -> AdminCredentials | None:
        """What sign-in checks, the TOTP secret opened (None where it does not open, logged)."""
        return self._by_email(email, self._credentials)

    def credentials_by_id(self, admin_id: int) -> AdminCredentials | None:
        with session_on(self._engine) as session:
            row = session.get(AdminRow, admin_id)
            return self._credentials(row, session) if row is not None else None

    def _credentials(self, row: AdminRow, session: Session) -> AdminCredentials:
        # A secret in clear is refused once the registry holds sealed secrets only.
        return row.to_credentials(seal_for(session, self._seal, [row.totp_secret]))

    def use_totp_step(self, admin_id: int, step: int) -> bool:
        """Record `step` as used; False when it (or a later one) was used already.

        One conditional UPDATE, so two sign-ins racing with one code cannot both win.
        """
        with session_on(self._writer) as session:
            result = session.execute(
                update(AdminRow)
                .where(AdminRow.id == admin_id, AdminRow.totp_last_step < step)
                .values(totp_last_step=step)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    def admins(self) -> list[Admin]:
        with session_on(self._engine) as session:
            rows = session.scalars(select(AdminRow).order_by(AdminRow.role, AdminRow.email))
            return [row.to_admin() for row in rows]

    def admin_with_email(self, email: str) -> Admin | None:
        """The account alone: no secret opened (`admin remove` names it by address)."""
        return self._by_email(email, lambda row, _: row.to_admin())

    def _by_email(self, email: str, read: Callable[[AdminRow, Session], T]) -> T | None:
        try:
            address = normal_email(email)
        except BadRequest:
            return None
        with session_on(self._engine) as session:
            row = session.scalars(select(AdminRow).where(AdminRow.email == address)).one_or_none()
            return read(row, session) if row is not None else None

    def admin_removal(self, admin_id: int) -> AdminRemoval:
        """What removing the account would take (admin_removal.py); nothing is changed.
        `UnknownAdmin`, or `LastOperator` for the last operator account."""
        with session_on(self._engine) as session:
            return removing_admin(session, admin_id, now=as_utc(self._clock()), apply=False)

    def remove_admin(self, admin_id: int, *, removed_by: str = "") -> AdminRemoval:
        """Remove one administrator account in one write transaction (admin_removal.py):
        their sign-in and open portal sessions stop at once; what they changed stays.
        `removed_by`: `cli:<user>` or `admin:<id>`, for the log line."""
        with session_on(self._writer) as session:
            removal = removing_admin(session, admin_id, now=as_utc(self._clock()), apply=True)
        gone = removal.admin
        # Ids only: the address stays out of the log.
        log.info(
            "admin removed admin=%s role=%s tenant=%s by=%s invitations_closed=%d",
            gone.id,
            gone.role.value,
            gone.tenant_id or "-",
            removed_by or "unknown",
            removal.invitations,
        )
        return removal

    # -- invitations ---------------------------------------------------------------------
    def add_invitation(
        self,
        token_hash: str,
        email: str,
        role: AdminRole,
        tenant_id: str | None,
        expires_at: datetime,
        created_by: int,
        *,
        replaces: str = "",
    ) -> None:
        """An invitation, with no TOTP secret: its page gives each browser a seed of its own,
        and the account takes the one a code confirmed (web/portal/invitation_seed.py).

        One open invitation per address, as an address has one account: with one open,
        `InvitationOpen`, unless `replaces` names it (its token hash), which is then closed in
        the same transaction. Naming the one replaced, not just "replace": a form sent again
        (a reload) after a replacement names the one it replaced, no longer open, and is
        refused, so the link the operator was just shown keeps working."""
        address = normal_email(email)
        now = as_utc(self._clock())
        with session_on(self._writer) as session:
            _require_tenant(session, role, tenant_id)
            # Two forms sent at once (a double click) check one after the other (PostgreSQL;
            # SQLite's writer is one at a time anyway): not both find none open.
            serialise_checks(session)
            if session.scalar(select(AdminRow.id).where(AdminRow.email == address)) is not None:
                raise BadRequest(
                    "an administrator with this e-mail already exists", code="duplicate_admin"
                )
            unused = session.scalars(
                select(InvitationRow)
                .where(InvitationRow.email == address, InvitationRow.used.is_(False))
                .order_by(InvitationRow.expires_at)
            )
            # Expiry compared here, as `open_invitations` does.
            still_open = [row for row in unused if as_utc(row.expires_at) > now]
            if still_open and replaces not in {row.token_hash for row in still_open}:
                raise InvitationOpen(still_open[-1].to_invitation(""))
            for row in still_open:  # its link stops working, as a withdrawn one's
                row.used = True
                row.totp_secret = ""
            session.add(
                InvitationRow(
                    token_hash=token_hash,
                    email=address,
                    role=role.value,
                    tenant_id=tenant_id,
                    totp_secret="",
                    expires_at=as_utc(expires_at),
                    created_by=created_by,
                    used=False,
                )
            )
            _forget_expired_secrets(session, now)

    def invitation(self, token_hash: str) -> Invitation:
        """The open invitation with this token hash; `InvitationUnusable` otherwise. Its
        `totp_secret` is "" unless an older version stored one (COMPAT(invitation-stored-seed)),
        and `SecretUnreadable` (logged by the page's error handler) when that one does not open
        with this configuration's keys."""
        with session_on(self._engine) as session:
            row = session.get(InvitationRow, token_hash)
            if row is None or row.used or as_utc(row.expires_at) <= as_utc(self._clock()):
                raise InvitationUnusable("invitation unknown, used or expired")
            return row.to_invitation(self._opened(session, row))

    def _opened(self, session: Session, row: InvitationRow) -> str:
        """The invitation's TOTP secret; `SecretUnreadable` (`SecretInClear` for one in clear
        once the registry holds sealed secrets only) when it does not open."""
        seal = seal_for(session, self._seal, [row.totp_secret])
        return seal.open(row.totp_secret, row.totp_binding)

    def accept_invitation(
        self, token_hash: str, password_hash: str, totp_secret: str, totp_step: int
    ) -> Admin:
        """Use the invitation once and create its administrator, in one transaction, with
        `totp_secret`: the seed the accepting browser confirmed a code of (at `totp_step`)."""
        if not totp_secret:
            raise BadRequest("an account needs a TOTP secret", code="no_totp_secret")
        with session_on(self._writer) as session:
            # Locked (PostgreSQL): a removal of the invitation's school, which deletes it, either
            # waits for this or this waits for it and then finds no invitation (not a
            # StaleDataError, a 500, on marking it used).
            row = session.get(InvitationRow, token_hash, with_for_update=True)
            if row is None or row.used or as_utc(row.expires_at) <= as_utc(self._clock()):
                raise InvitationUnusable("invitation unknown, used or expired")
            if session.scalar(select(AdminRow.id).where(AdminRow.email == row.email)) is not None:
                raise BadRequest(
                    "an administrator with this e-mail already exists", code="duplicate_admin"
                )
            if row.totp_secret:
                # COMPAT(invitation-stored-seed): one that does not open, or was put in clear,
                # refuses the invitation here as on its page.
                self._opened(session, row)
            row.used = True
            # A seed an older version stored (COMPAT(invitation-stored-seed)) is forgotten: a
            # used invitation needs none.
            row.totp_secret = ""
            admin = AdminRow(
                email=row.email,
                password_hash=password_hash,
                totp_secret=self._seal.seal(totp_secret, SecretBinding.admin_totp(row.email)),
                totp_last_step=totp_step,
                role=row.role,
                tenant_id=row.tenant_id,
                created_at=as_utc(self._clock()),
            )
            session.add(admin)
            session.flush()
            return admin.to_admin()

    def withdraw_invitation(self, token_hash: str) -> bool:
        """Close an open invitation: its link stops working. False when none was open."""
        with session_on(self._writer) as session:
            row = session.get(InvitationRow, token_hash)
            if row is None or row.used:
                return False
            row.used = True
            row.totp_secret = ""
            return True

    def open_invitations(self) -> list[Invitation]:
        now = as_utc(self._clock())
        with session_on(self._engine) as session:
            rows = session.scalars(
                select(InvitationRow)
                .where(InvitationRow.used.is_(False))
                .order_by(InvitationRow.expires_at)
            )
            # The list shows address, role and expiry: no secret is opened for it.
            return [row.to_invitation("") for row in rows if as_utc(row.expires_at) > now]

    # -- publishers ----------------------------------------------------------------------
    def add_publisher(self, publisher: Publisher) -> None:
        with session_on(self._writer) as session:
            if session.get(PublisherRow, publisher.id) is not None:
                raise DuplicateEntry("publisher", "id", publisher.id)
            session.add(PublisherRow(id=publisher.id, name=publisher.name))

    def publisher(self, publisher_id: str) -> Publisher | None:
        with session_on(self._engine) as session:
            row = session.get(PublisherRow, publisher_id)
            return row.to_publisher() if row is not None else None

    def publishers(self) -> list[Publisher]:
        with session_on(self._engine) as session:
            return [
                r.to_publisher()
                for r in session.scalars(select(PublisherRow).order_by(PublisherRow.id))
            ]

    def publisher_organisations(self) -> list[PublisherOrganisation]:
        """Every publisher organisation by id, with how many services name it and how many
        administrators act for it (`ketenbroker publisher organisations`)."""
        services = (
            select(func.count()).where(ServiceRow.publisher_id == PublisherRow.id).scalar_subquery()
        )
        admins = (
            select(func.count())
            .where(
                AdminRow.role == AdminRole.PUBLISHER.value, AdminRow.tenant_id == PublisherRow.id
            )
            .scalar_subquery()
        )
        query = select(PublisherRow, services, admins).order_by(PublisherRow.id)
        with session_on(self._engine) as session:
            return [
                PublisherOrganisation(row.to_publisher(), service_count, admin_count)
                for row, service_count, admin_count in session.execute(query)
            ]


def _forget_expired_secrets(session: Session, now: datetime) -> None:
    """Empty the TOTP secrets of expired invitations, as a used or withdrawn one's: no link
    opens them any more, and a secret kept for nothing is a secret to lose (or, sealed under
    a key since gone, one that `registry seal-secrets` would have to step over). Done when an
    invitation is sent: the one write that invitations see regularly."""
    # Expiry compared here, as `open_invitations` does: SQLite keeps no time zone to compare by.
    rows = session.execute(
        select(InvitationRow.token_hash, InvitationRow.expires_at).where(
            InvitationRow.used.is_(False), InvitationRow.totp_secret != ""
        )
    )
    expired = [token for token, expires in rows if as_utc(expires) <= now]
    if expired:
        # A Core update by key: a row a removal deleted meanwhile is simply not there.
        session.execute(
            update(InvitationRow)
            .where(InvitationRow.token_hash.in_(expired))
            .values(totp_secret="")
        )


def _require_tenant(session: Session, role: AdminRole, tenant_id: str | None) -> None:
    if role is AdminRole.OPERATOR:
        if tenant_id is not None:
            raise BadRequest("an operator acts for the broker, not for a tenant", code="bad_tenant")
        return
    if not tenant_id:
        raise BadRequest(f"a {role.value} administrator needs a {role.value} id", code="bad_tenant")
    # Locked (database.locked_row): an account or invitation added while its school or publisher
    # is removed waits for the removal and then finds no tenant, instead of outliving it.
    if role is AdminRole.SCHOOL and not locked_row(session, SchoolRow.id, tenant_id):
        raise UnknownSchool(f"no school with id {tenant_id!r}")
    if role is AdminRole.PUBLISHER and not locked_row(session, PublisherRow.id, tenant_id):
        raise UnknownPublisher(tenant_id)
