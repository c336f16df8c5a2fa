"""Offboarding: what removing a school or a service takes with it, and what it leaves.

One function per kind reads the plan inside a transaction and, asked to, deletes in that same
transaction, so what the operator is told is exactly what went (docs/operations.md, "Offboarding
a school or a service").

Goes: the registration (SAML metadata or OIDC registration, declarations), the current release
policies and notice settings of its pairs, and for a school its administrators' accounts and
invitations: an account acts for one school only, so it has nothing left to act for, and deleting
it ends its portal sessions on their next request in every worker (rights.py reads the account
on every request).

Stays: receipts (students and schools still need to see what was released to whom), the history
of release policies and declarations (what the receipts' version numbers mean, and who chose
them), pseudonym key versions (a service registered again under its id keeps its pseudonyms),
federation copies (they belong to their metadata source), chains and publishers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Delete, delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from broker.core.admins import AdminRole
from broker.core.errors import UnknownSchool, UnknownService
from broker.core.model import School, Service
from broker.registry.admin_tables import AdminRow, DeclarationChangeRow, InvitationRow
from broker.registry.changes import bump_generation
from broker.registry.receipt_tables import NoticePreferenceRow, ReceiptRow
from broker.registry.tables import (
    Base,
    DeclarationRow,
    OidcClientRow,
    PolicyChangeRow,
    ReleasePolicyRow,
    RemovalRow,
    SchoolOidcRow,
    SchoolRow,
    ServiceRow,
)

MAX_BY = 200


@dataclass(frozen=True)
class Removal:
    """What one removal takes (`policies`: the other side's ids of the current policies) and
    what it keeps (counts). `applied`: whether it was carried out or only read. Carried out,
    it leaves a line in `removals` (who, when, the name)."""

    entry: School | Service
    policies: tuple[str, ...]
    notice_settings: int
    admins: int
    invitations: int
    receipts: int
    policy_history: int
    declaration_history: int
    applied: bool


def _count(session: Session, table: type[Base], where: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(table).where(where)) or 0


def _other_sides(
    session: Session, column: InstrumentedAttribute[str], where: ColumnElement[bool]
) -> tuple[str, ...]:
    """The other side's ids of the current policies that go, sorted."""
    return tuple(session.scalars(select(column).where(where).order_by(column)))


@dataclass(frozen=True)
class Stamp:
    """Who removes (`cli:<user>`), and when: kept in `removals`."""

    by: str
    at: datetime


def _carry_out(
    session: Session, entry: School | Service, stamp: Stamp, deletes: tuple[Delete, ...]
) -> None:
    """Children first, the entry last; the record of it; one generation bump for every worker."""
    for statement in deletes:
        session.execute(statement)
    kind = "school" if isinstance(entry, School) else "service"
    session.add(
        RemovalRow(
            kind=kind,
            entry_id=entry.id,
            name=entry.name,
            removed_at=stamp.at,
            removed_by=stamp.by[:MAX_BY],
        )
    )
    bump_generation(session)


def remove_school(session: Session, school_id: str, stamp: Stamp | None) -> Removal:
    """What removing the school takes and keeps; removed too when `stamp` is given."""
    # Locked (PostgreSQL; `of`: not the outer-joined OIDC row): a policy change of this school,
    # which locks the same row, waits and then finds no school, instead of writing a policy for
    # a school that is going.
    row = session.scalar(
        select(SchoolRow).where(SchoolRow.id == school_id).with_for_update(of=SchoolRow)
    )
    if row is None:
        raise UnknownSchool(f"no school with id {school_id!r}")
    school = row.to_school()
    of_school = ReleasePolicyRow.school_id == school_id
    notices = NoticePreferenceRow.school_id == school_id
    admins = (AdminRow.role == AdminRole.SCHOOL.value) & (AdminRow.tenant_id == school_id)
    invitations = (InvitationRow.role == AdminRole.SCHOOL.value) & (
        InvitationRow.tenant_id == school_id
    )
    removal = Removal(
        school,
        policies=_other_sides(session, ReleasePolicyRow.service_id, of_school),
        notice_settings=_count(session, NoticePreferenceRow, notices),
        admins=_count(session, AdminRow, admins),
        invitations=_count(session, InvitationRow, invitations),
        receipts=_count(session, ReceiptRow, ReceiptRow.school_id == school_id),
        policy_history=_count(session, PolicyChangeRow, PolicyChangeRow.school_id == school_id),
        declaration_history=0,
        applied=stamp is not None,
    )
    if stamp is not None:
        _carry_out(
            session,
            removal.entry,
            stamp,
            (
                delete(ReleasePolicyRow).where(of_school),
                delete(NoticePreferenceRow).where(notices),
                delete(InvitationRow).where(invitations),
                delete(AdminRow).where(admins),
                delete(SchoolOidcRow).where(SchoolOidcRow.school_id == school_id),
                delete(SchoolRow).where(SchoolRow.id == school_id),
            ),
        )
    return removal


def remove_service(session: Session, service_id: str, stamp: Stamp | None) -> Removal:
    """Likewise for a service (approved or not)."""
    row = session.scalar(
        select(ServiceRow).where(ServiceRow.id == service_id).with_for_update(of=ServiceRow)
    )
    if row is None:
        raise UnknownService(f"no service with id {service_id!r}")
    service = row.to_service()
    for_service = ReleasePolicyRow.service_id == service_id
    notices = NoticePreferenceRow.service_id == service_id
    removal = Removal(
        service,
        policies=_other_sides(session, ReleasePolicyRow.school_id, for_service),
        notice_settings=_count(session, NoticePreferenceRow, notices),
        admins=0,
        invitations=0,
        # No index leads with service_id: a scan, acceptable for a command run once per contract.
        receipts=_count(session, ReceiptRow, ReceiptRow.service_id == service_id),
        policy_history=_count(session, PolicyChangeRow, PolicyChangeRow.service_id == service_id),
        declaration_history=_count(
            session, DeclarationChangeRow, DeclarationChangeRow.service_id == service_id
        ),
        applied=stamp is not None,
    )
    if stamp is not None:
        _carry_out(
            session,
            removal.entry,
            stamp,
            (
                delete(ReleasePolicyRow).where(for_service),
                delete(NoticePreferenceRow).where(notices),
                delete(DeclarationRow).where(DeclarationRow.service_id == service_id),
                delete(OidcClientRow).where(OidcClientRow.service_id == service_id),
                delete(ServiceRow).where(ServiceRow.id == service_id),
            ),
        )
    return removal


def kept_policy_version(session: Session, school_id: str, service_id: str) -> int:
    """The highest version in a pair's history (0: none): a pair registered again after a
    removal continues after it, so a receipt's version number keeps one meaning."""
    return (
        session.scalar(
            select(func.max(PolicyChangeRow.version)).where(
                PolicyChangeRow.school_id == school_id, PolicyChangeRow.service_id == service_id
            )
        )
        or 0
    )


def kept_declaration_version(session: Session, service_id: str) -> int:
    """The highest declaration version in a service id's history (0: none), likewise."""
    return (
        session.scalar(
            select(func.max(DeclarationChangeRow.version)).where(
                DeclarationChangeRow.service_id == service_id
            )
        )
        or 0
    )
