"""Removing one portal administrator: a colleague who left the school, the publisher or the
broker's operations (docs/portals.md, "Removing an administrator").

Goes: the account row, so its password and authenticator stop working, and every portal session
it has open ends on its next request in every worker (web/portal/rights.py reads the account on
every request; AUTOINCREMENT keeps its id from ever naming another account). Open invitations
addressed to the account's own e-mail address are closed too: accepting an invitation needs the
address to be free, and the removal frees it, so a second invitation sent to the same colleague
(a resent link) would otherwise let them back in.

Stays: everything they changed, recorded as `admin:<id>` (a history shows a gone author as
"removed administrator", web/portal/authors.py), the receipts, and the invitations they created
for others: an invitation is the broker's decision about the invitee, not the inviter's, and
any operator can withdraw one on the Administrators page.

The last operator account is never removed (`LastOperator`): without one nobody could onboard a
school or invite anyone in the portal. Every operator row is locked first, in id order, so two
operators removing each other at once on PostgreSQL are serialised: the second waits, then finds
one operator left and is refused (SQLite's write transactions are serial anyway). The same order
for every removal keeps two of them from deadlocking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from broker.core.admins import Admin, AdminRole
from broker.registry.admin_tables import AdminRow, InvitationRow
from broker.registry.errors import LastOperator, UnknownAdmin
from broker.registry.tables import as_utc

# `admins.id` is an INTEGER on both backends: a larger id names no account (and PostgreSQL would
# refuse to compare it: a 500).
MAX_ADMIN_ID = 2**31 - 1


@dataclass(frozen=True)
class AdminRemoval:
    """The account that goes (or would go), and how many open invitations to its address are
    closed with it. `applied`: carried out, or only read."""

    admin: Admin
    applied: bool
    invitations: int = 0


def removing_admin(session: Session, admin_id: int, *, now: datetime, apply: bool) -> AdminRemoval:
    """The plan for removing `admin_id`; carried out in `session` too when `apply`.
    `UnknownAdmin` or `LastOperator` (nothing changed) otherwise."""
    if not 0 < admin_id <= MAX_ADMIN_ID:
        raise UnknownAdmin(admin_id)
    # Locks only to carry it out: a preview (the confirmation page, the CLI without --yes)
    # must not wait behind a removal, nor make one wait. Invitations before administrators, as
    # a school's or publisher's removal (removal.py) and `registry seal-secrets`
    # (secret_sealing.py) take them: in the other order this and one of those, each holding one
    # table's rows, could wait for each other (a PostgreSQL deadlock). An e-mail address never
    # changes, so the one read unlocked here names the account's invitations.
    if apply:
        address = session.scalar(select(AdminRow.email).where(AdminRow.id == admin_id))
        invited = (InvitationRow.email == address) & InvitationRow.used.is_(False)
        session.scalars(select(InvitationRow.token_hash).where(invited).with_for_update()).all()
    operators_query = (
        select(AdminRow.id).where(AdminRow.role == AdminRole.OPERATOR.value).order_by(AdminRow.id)
    )
    row_query = select(AdminRow).where(AdminRow.id == admin_id)
    if apply:
        operators_query = operators_query.with_for_update()
        row_query = row_query.with_for_update()
    operators = session.scalars(operators_query).all()
    row = session.scalar(row_query)
    if row is None:
        raise UnknownAdmin(admin_id)
    admin = row.to_admin()
    if admin.role is AdminRole.OPERATOR and [i for i in operators if i != admin_id] == []:
        raise LastOperator(admin_id)
    addressed = (InvitationRow.email == row.email) & InvitationRow.used.is_(False)
    # Expiry compared here, as `open_invitations` does: SQLite keeps no time zone to compare by.
    expiries = session.scalars(select(InvitationRow.expires_at).where(addressed))
    invitations = sum(1 for expires in expiries if as_utc(expires) > now)
    if apply:
        # Closed, and their TOTP secrets forgotten, as a withdrawn invitation's.
        session.execute(update(InvitationRow).where(addressed).values(used=True, totp_secret=""))
        session.delete(row)
    return AdminRemoval(admin, apply, invitations)
