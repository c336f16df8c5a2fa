"""What the portals read beyond the login path's view: unapproved services, every school's choice
for a service, the history of a service's declarations, and a school's IdP metadata in force."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import joinedload

from broker.core.model import Declaration, Service
from broker.core.notice_release import purposes_since
from broker.core.purposes import purpose_change_version
from broker.core.receipts import receipt_chains
from broker.registry.admin_tables import DeclarationChangeRow, declarations_from_json
from broker.registry.database import session_on
from broker.registry.federation_tables import FederationEntityRow, MetadataSourceRow
from broker.registry.reading import SqlRegistryReader, copy_in_force, metadata_in_force
from broker.registry.tables import (
    ChainRow,
    ReleasePolicyRow,
    RemovalRow,
    SchoolOidcRow,
    SchoolRow,
    ServiceRow,
    as_utc,
)

_WITH_DECLARATIONS = joinedload(ServiceRow.declarations)

# A school's registered IdP copy, its URL, whether it is on OpenID Connect, and one row per
# source's copy of its IdP (none: one row, the copy columns NULL). Built once, as reading.py's
# _POLICY_QUERY: it runs on every page of a school's portal.
_IDP_COPY_QUERY = (
    select(
        SchoolRow.idp_metadata,
        SchoolRow.idp_metadata_url,
        SchoolOidcRow.school_id,
        FederationEntityRow.valid_until,
        FederationEntityRow.xml,
        MetadataSourceRow.registration_authorities,
    )
    .outerjoin(SchoolOidcRow, SchoolOidcRow.school_id == SchoolRow.id)
    .outerjoin(
        FederationEntityRow,
        and_(
            FederationEntityRow.entity_id == SchoolRow.idp_entity_id,
            FederationEntityRow.role == "idp",
        ),
    )
    .outerjoin(MetadataSourceRow, MetadataSourceRow.name == FederationEntityRow.source)
    .where(SchoolRow.id == bindparam("school_id"))
)


@dataclass(frozen=True)
class SchoolChoice:
    """A school's current choice for one service, as its portal shows it.

    `needs_confirmation`: the service changed its declarations since the school chose in a way
    that needs its consent (core/declarations.py), so the choice releases nothing (pseudonym
    only) until the school confirms it again. `purpose_dropped`: its current version is the
    broker's, which took out attributes whose purpose changed (purpose_drops.py); the school has
    not chosen since.
    """

    school_id: str
    service_id: str
    attributes: frozenset[str]
    version: int
    active: bool
    needs_confirmation: bool
    purpose_dropped: bool = False


@dataclass(frozen=True, slots=True)
class MetadataCopy:
    """A SAML school's IdP or a SAML service's SP metadata in force (`reading.metadata_in_force`;
    None: none held) and whether its own copy was given by URL (`fetched`: `metadata refresh`
    keeps it)."""

    xml: str | None
    fetched: bool


@dataclass(frozen=True)
class DeclarationChange:
    service_id: str
    version: int
    declarations: tuple[Declaration, ...]
    changed_at: datetime
    changed_by: str


class PortalReads(SqlRegistryReader):
    def any_service(self, service_id: str) -> Service | None:
        """A service whether approved or not (operators and its publisher see it)."""
        with session_on(self._engine) as session:
            row = session.get(ServiceRow, service_id, options=[_WITH_DECLARATIONS])
            return row.to_service() if row is not None else None

    def all_services(self, publisher_id: str | None = None) -> list[Service]:
        """Every service, approved or not; only `publisher_id`'s when given."""
        query = select(ServiceRow).options(_WITH_DECLARATIONS).order_by(ServiceRow.id)
        if publisher_id is not None:
            query = query.where(ServiceRow.publisher_id == publisher_id)
        with session_on(self._engine) as session:
            return [row.to_service() for row in session.scalars(query).unique()]

    def receipt_chains(self) -> frozenset[str]:
        """Every pseudonym chain a receipt can name (core/receipts.py, `receipt_chains`): the
        registered chains and services, and the removed ones, whose receipts outlive them.
        A receipt with a per-chain subject was written after removals of chains (revision 0017)
        and services (0008) were recorded, so none is missed; older receipts carry the old
        subject, which readers match besides (COMPAT(receipt-subject-v1))."""
        with session_on(self._engine) as session:
            chains = set(session.scalars(select(ChainRow.id)))
            services = set(session.scalars(select(ServiceRow.id)))
            removed = session.execute(
                select(RemovalRow.kind, RemovalRow.entry_id).where(
                    RemovalRow.kind.in_(("chain", "service"))
                )
            )
            for kind, entry_id in removed:
                (chains if kind == "chain" else services).add(entry_id)
        return receipt_chains(chains, services)

    def service_names(self) -> dict[str, str]:
        """Every service's name by id, removed ones included (their receipts outlive them):
        one query each, for pages that name the services of many receipts."""
        with session_on(self._engine) as session:
            removed = session.execute(
                select(RemovalRow.entry_id, RemovalRow.name)
                .where(RemovalRow.kind == "service")
                .order_by(RemovalRow.id)
            )
            names = {entry_id: name for entry_id, name in removed}
            current = session.execute(select(ServiceRow.id, ServiceRow.name))
            names.update({service_id: name for service_id, name in current})
            return names

    def choices_of_school(self, school_id: str) -> dict[str, SchoolChoice]:
        return {c.service_id: c for c in self._choices(ReleasePolicyRow.school_id == school_id)}

    def choices_for_service(self, service_id: str) -> list[SchoolChoice]:
        return self._choices(ReleasePolicyRow.service_id == service_id)

    def _choices(self, condition: object) -> list[SchoolChoice]:
        with session_on(self._engine) as session:
            rows = session.execute(
                select(ReleasePolicyRow, ServiceRow.reconfirm_version)
                .join(ServiceRow, ServiceRow.id == ReleasePolicyRow.service_id)
                .where(condition)  # type: ignore[arg-type]
                .order_by(ReleasePolicyRow.school_id, ReleasePolicyRow.service_id)
            )
            return [
                SchoolChoice(
                    row.school_id,
                    row.service_id,
                    frozenset(row.attributes),
                    row.version,
                    row.active,
                    row.declaration_version < current,
                    purpose_change_version(row.changed_by) is not None,
                )
                for row, current in rows
            ]

    def declaration_history(self, service_id: str) -> list[DeclarationChange]:
        with session_on(self._engine) as session:
            rows = session.scalars(
                select(DeclarationChangeRow)
                .where(DeclarationChangeRow.service_id == service_id)
                .order_by(DeclarationChangeRow.version)
            )
            return [
                DeclarationChange(
                    row.service_id,
                    row.version,
                    declarations_from_json(row.declarations),
                    as_utc(row.changed_at),
                    row.changed_by,
                )
                for row in rows
            ]

    def purposes_since(self, service_id: str) -> dict[str, float]:
        """When each attribute's purpose of record began at the service, from its declaration
        history (core/notice_release.py): one query, which the worker's view keeps per
        registry generation (wiring.py), so the login path does not repeat it."""
        return purposes_since(
            (change.version, change.declarations, change.changed_at)
            for change in self.declaration_history(service_id)
        )

    def publisher_sp_copies(self, publisher_id: str) -> list[tuple[str, MetadataCopy]]:
        """(name, SP metadata in force and whether given by URL) of each of the publisher's
        SAML services, in two statements (the publisher portal's certificate banner reads it on
        every page): the services' own copies and URLs, then the sources' copies of them."""
        query = select(
            ServiceRow.name,
            ServiceRow.entity_id,
            ServiceRow.sp_metadata,
            ServiceRow.sp_metadata_url,
        ).where(ServiceRow.publisher_id == publisher_id, ServiceRow.protocol == "saml")
        with session_on(self._engine) as session:
            rows = session.execute(query).all()
            own = {row.entity_id: row.sp_metadata for row in rows}
            in_force = metadata_in_force(session, "sp", own, self._clock())
        return [
            (row.name, MetadataCopy(in_force.get(row.entity_id), row.sp_metadata_url is not None))
            for row in rows
        ]

    def school_idp_copy(self, school_id: str) -> MetadataCopy | None:
        """The school's IdP metadata in force and whether it was given by URL, in one query
        (the school portal's certificate banner reads it on every page); None for a school not
        in the registry or on OpenID Connect."""
        with session_on(self._engine) as session:
            rows = session.execute(_IDP_COPY_QUERY, {"school_id": school_id}).all()
        if not rows or rows[0].school_id is not None:
            return None
        own, url = rows[0].idp_metadata, rows[0].idp_metadata_url
        copies = [(row.valid_until, row.xml, row.registration_authorities) for row in rows]
        in_force = copy_in_force(own, [c for c in copies if c[1] is not None], self._clock())
        return MetadataCopy(in_force, fetched=url is not None)
