"""Offboarding: what removing a school, a service, a publisher organisation or a chain takes with
it, and what it leaves.

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

A publisher organisation goes only once no service names it (`PublisherInUse` otherwise: its
services are removed one by one first, each with its own plan); then its administrators'
accounts and invitations go with it, as a school's do. A service's `publisher_id` is a foreign
key (revision 0009), and whatever attaches a service to an organisation locks the
organisation's row first (database.locked_row), so none can slip in while it goes.

A chain goes only once no service is in it (`ChainInUse` otherwise: each is moved to another
chain or removed first) and outside a pseudonym key migration window (`ChainInWindow`). Only its
row goes: its receipts and its pseudonym key version record stay, so a chain registered again
under the id gives its services the same pseudonyms as before (the chain id and the key
version are the pseudonym's inputs), as a service registered again does. A service's `chain_id`
is a foreign key: a service registered or moved into the chain locks the chain's row first
(database.locked_row) and waits, then is refused as for an unknown chain; an import racing the
removal fails on the key and says so, nothing imported.

Every removal carried out leaves one row in `removals`: kind, id, name, when, and by whom
(`cli:<user>`), for a service also its publisher organisation (revision 0024); no personal data.
A removed service's id is taken again only as id_reuse.py allows: by the operator, never
through a portal, since it carries the pseudonyms and the history over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Delete, delete, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from broker.core.admins import AdminRole, Publisher
from broker.core.errors import UnknownSchool, UnknownService
from broker.core.model import Chain, School, Service
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.core.sealed_secrets import NO_KEYS
from broker.registry.admin_tables import (
    AdminRow,
    DeclarationChangeRow,
    InvitationRow,
    PublisherRow,
)
from broker.registry.chain_move_tables import ChainMoveRow
from broker.registry.changes import bump_generation
from broker.registry.errors import (
    ChainInUse,
    ChainInWindow,
    PublisherInUse,
    UnknownChain,
    UnknownPublisher,
)
from broker.registry.pseudonym_keys import key_version_in
from broker.registry.receipt_tables import NoticePreferenceRow, ReceiptRow
from broker.registry.tables import (
    Base,
    ChainRow,
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
    it leaves a line in `removals` (kind, id, name, when, by whom). `key_version`: a chain's
    pseudonym key version record, which stays (None: never rotated)."""

    entry: School | Service | Publisher | Chain
    applied: bool
    policies: tuple[str, ...] = ()
    notice_settings: int = 0
    admins: int = 0
    invitations: int = 0
    receipts: int = 0
    policy_history: int = 0
    declaration_history: int = 0
    key_version: ChainKeyVersion | None = None


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
    session: Session, removal: Removal, stamp: Stamp | None, deletes: tuple[Delete, ...]
) -> Removal:
    """Asked to (`stamp`): children first, the entry last; the record of it; one generation
    bump for every worker. The plan `removal` either way."""
    if stamp is None:
        return removal
    entry = removal.entry
    for statement in deletes:
        session.execute(statement)
    session.add(
        RemovalRow(
            kind=removal_kind(entry),
            entry_id=entry.id,
            name=entry.name,
            removed_at=stamp.at,
            removed_by=stamp.by[:MAX_BY],
            # Whose it was: its id goes to that publisher only (id_reuse.py).
            publisher_id=(entry.publisher_id or "") if isinstance(entry, Service) else None,
        )
    )
    bump_generation(session)
    return removal


def removal_kind(entry: School | Service | Publisher | Chain) -> str:
    """`removals.kind` of an entry (a CHECK constraint admits these four, revision 0017)."""
    if isinstance(entry, School):
        return "school"
    if isinstance(entry, Chain):
        return "chain"
    return "service" if isinstance(entry, Service) else "publisher"


def _tenant_accounts(
    role: AdminRole, tenant_id: str
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """The administrators and the invitations of one school or publisher: they act for it only."""
    return (
        (AdminRow.role == role.value) & (AdminRow.tenant_id == tenant_id),
        (InvitationRow.role == role.value) & (InvitationRow.tenant_id == tenant_id),
    )


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
    school = row.to_school(NO_KEYS)  # what goes is said by id and name: no secret opened
    of_school = ReleasePolicyRow.school_id == school_id
    notices = NoticePreferenceRow.school_id == school_id
    admins, invitations = _tenant_accounts(AdminRole.SCHOOL, school_id)
    removal = Removal(
        school,
        applied=stamp is not None,
        policies=_other_sides(session, ReleasePolicyRow.service_id, of_school),
        notice_settings=_count(session, NoticePreferenceRow, notices),
        admins=_count(session, AdminRow, admins),
        invitations=_count(session, InvitationRow, invitations),
        receipts=_count(session, ReceiptRow, ReceiptRow.school_id == school_id),
        policy_history=_count(session, PolicyChangeRow, PolicyChangeRow.school_id == school_id),
    )
    return _carry_out(
        session,
        removal,
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
        applied=stamp is not None,
        policies=_other_sides(session, ReleasePolicyRow.school_id, for_service),
        notice_settings=_count(session, NoticePreferenceRow, notices),
        # No index leads with service_id: a scan, acceptable for a command run once per contract.
        receipts=_count(session, ReceiptRow, ReceiptRow.service_id == service_id),
        policy_history=_count(session, PolicyChangeRow, PolicyChangeRow.service_id == service_id),
        declaration_history=_count(
            session, DeclarationChangeRow, DeclarationChangeRow.service_id == service_id
        ),
    )
    return _carry_out(
        session,
        removal,
        stamp,
        (
            delete(ReleasePolicyRow).where(for_service),
            delete(NoticePreferenceRow).where(notices),
            delete(DeclarationRow).where(DeclarationRow.service_id == service_id),
            delete(OidcClientRow).where(OidcClientRow.service_id == service_id),
            # Its chain move record (revision 0018): only about this service's pseudonyms.
            delete(ChainMoveRow).where(ChainMoveRow.service_id == service_id),
            delete(ServiceRow).where(ServiceRow.id == service_id),
        ),
    )


def remove_publisher(session: Session, publisher_id: str, stamp: Stamp | None) -> Removal:
    """Likewise for a publisher organisation with no services left (`PublisherInUse`
    otherwise, for a dry run too): its administrators and invitations go with it."""
    # Locked: a service registered for it, or an administrator or invitation added for it,
    # locks the same row (database.locked_row), so it waits and then finds no publisher, or
    # this waits and then counts it.
    row = session.scalar(
        select(PublisherRow).where(PublisherRow.id == publisher_id).with_for_update()
    )
    if row is None:
        raise UnknownPublisher(publisher_id)
    services = _other_sides(session, ServiceRow.id, ServiceRow.publisher_id == publisher_id)
    if services:
        raise PublisherInUse(publisher_id, services)
    admins, invitations = _tenant_accounts(AdminRole.PUBLISHER, publisher_id)
    removal = Removal(
        row.to_publisher(),
        applied=stamp is not None,
        admins=_count(session, AdminRow, admins),
        invitations=_count(session, InvitationRow, invitations),
    )
    return _carry_out(
        session,
        removal,
        stamp,
        (
            delete(InvitationRow).where(invitations),
            delete(AdminRow).where(admins),
            delete(PublisherRow).where(PublisherRow.id == publisher_id),
        ),
    )


def remove_chain(session: Session, chain_id: str, stamp: Stamp | None, *, now: datetime) -> Removal:
    """Likewise for a chain no service is in (`ChainInUse` otherwise, for a dry run too) and
    outside a migration window at `now` (`ChainInWindow`)."""
    # Locked: a service put in the chain (added, moved, imported) locks or references the same
    # row, so it waits and then finds no chain, or this waits and then counts the service.
    row = session.scalar(select(ChainRow).where(ChainRow.id == chain_id).with_for_update())
    if row is None:
        raise UnknownChain(chain_id)
    services = _other_sides(session, ServiceRow.id, ServiceRow.chain_id == chain_id)
    if services:
        raise ChainInUse(chain_id, services)
    record = key_version_in(session, chain_id)
    if record is not None and record.window_open(now) and record.window_ends is not None:
        raise ChainInWindow(chain_id, f"{record.window_ends:%Y-%m-%d %H:%M} UTC")
    removal = Removal(
        row.to_chain(),
        applied=stamp is not None,
        # No index leads with chain_id: a scan, as for a service, once per chain's end.
        receipts=_count(session, ReceiptRow, ReceiptRow.chain_id == chain_id),
        key_version=record,
    )
    return _carry_out(session, removal, stamp, (delete(ChainRow).where(ChainRow.id == chain_id),))


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
