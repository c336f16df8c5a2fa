"""The registry's read side: `RegistryReader` over SQL, returning the core's frozen dataclasses.

The login path calls `policy`, `service_by_entity_id`, `school` and `schools_by_idp` (and
`idp_names_school`) on every
login: each is one query on a primary key or an index (a service's declarations come in the
same query through a join). Nothing is cached in the process: a policy a school changes shows on
the next login in every worker. Metadata XML is deferred on the rows and read only by the two
metadata methods, which adapters call when `generation` changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Engine, and_, bindparam, func, or_, select
from sqlalchemy.orm import Session, joinedload

from broker.core.chain_move import ChainMove
from broker.core.errors import ConfigurationError
from broker.core.model import Chain, Protocol, ReleasePolicy, School, Service
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.core.sealed_secrets import NO_KEYS, SecretSeal
from broker.registry.chain_moves import all_chain_moves, chain_move_of
from broker.registry.database import session_on
from broker.registry.errors import ServiceSwitchedOff
from broker.registry.federation import copy_rank, ranked_copies
from broker.registry.federation_tables import FederationEntityRow
from broker.registry.policy_change import PolicyChange
from broker.registry.pseudonym_keys import all_key_versions, key_version_of
from broker.registry.schema_in_use import NO_STATE_ROW, schema_in_use
from broker.registry.sealed_only import seal_for
from broker.registry.tables import (
    STATE_ROW_ID,
    ChainRow,
    PolicyChangeRow,
    RegistryStateRow,
    ReleasePolicyRow,
    SchoolNamingIdpRow,
    SchoolOidcRow,
    SchoolRow,
    ServiceRow,
    as_utc,
)

_WITH_DECLARATIONS = joinedload(ServiceRow.declarations)


# Built once: the login path runs it on every login, and building the statement (the column
# comparisons, the join) cost more than SQLAlchemy's cached compilation of it.
_POLICY_QUERY = (
    select(ReleasePolicyRow, ServiceRow.reconfirm_version)
    .join(ServiceRow, ServiceRow.id == ReleasePolicyRow.service_id)
    .where(
        ReleasePolicyRow.school_id == bindparam("school_id"),
        ReleasePolicyRow.service_id == bindparam("service_id"),
    )
)


class SqlRegistryReader:
    """Implements `broker.core.ports.RegistryReader` on an engine from `database.open_engine`."""

    def __init__(self, engine: Engine, seal: SecretSeal = NO_KEYS) -> None:
        self._engine = engine
        # Opens schools' client secrets as they are read (core/sealed_secrets.py).
        self._seal = seal
        # Decides which federation copies have expired; SqlRegistry replaces it with its own.
        self._clock: Callable[[], datetime] = _now

    def school(self, school_id: str) -> School | None:
        with session_on(self._engine) as session:
            row = session.get(SchoolRow, school_id)
            return _opened(session, self._seal, [row])[0] if row is not None else None

    def schools_by_idp(self, idp_entity_id: str) -> tuple[School, ...]:
        with session_on(self._engine) as session:
            rows = session.scalars(
                select(SchoolRow)
                .where(SchoolRow.idp_entity_id == idp_entity_id)
                .order_by(SchoolRow.id)
            )
            return tuple(_opened(session, self._seal, list(rows)))

    def idp_names_school(self, idp_entity_id: str) -> bool:
        with session_on(self._engine) as session:
            return session.get(SchoolNamingIdpRow, idp_entity_id) is not None

    def idps_naming_school(self) -> frozenset[str]:
        """Every IdP entity id whose logins must name their school (the cached view loads
        them with the schools)."""
        with session_on(self._engine) as session:
            return frozenset(session.scalars(select(SchoolNamingIdpRow.entity_id)))

    def schools(self) -> list[School]:
        with session_on(self._engine) as session:
            rows = session.scalars(select(SchoolRow).order_by(SchoolRow.id))
            # The cached view's load: the mark is read here, once, if a value is in clear.
            return _opened(session, self._seal, list(rows))

    def chain(self, chain_id: str) -> Chain | None:
        with session_on(self._engine) as session:
            row = session.get(ChainRow, chain_id)
            return row.to_chain() if row is not None else None

    def chains(self) -> list[Chain]:
        with session_on(self._engine) as session:
            rows = session.scalars(select(ChainRow).order_by(ChainRow.id))
            return [row.to_chain() for row in rows]

    # The login path's view: a service an operator has not approved does not exist here.
    def service(self, service_id: str) -> Service | None:
        with session_on(self._engine) as session:
            row = session.get(ServiceRow, service_id, options=[_WITH_DECLARATIONS])
            return row.to_service() if row is not None and row.approved else None

    def service_by_entity_id(self, entity_id: str) -> Service | None:
        with session_on(self._engine) as session:
            row = (
                session.scalars(
                    select(ServiceRow)
                    .options(_WITH_DECLARATIONS)
                    .where(ServiceRow.entity_id == entity_id, ServiceRow.approved.is_(True))
                )
                .unique()
                .one_or_none()
            )
            return row.to_service() if row is not None else None

    def services(self) -> list[Service]:
        with session_on(self._engine) as session:
            rows = session.scalars(
                select(ServiceRow)
                .options(_WITH_DECLARATIONS)
                .where(ServiceRow.approved.is_(True))
                .order_by(ServiceRow.id)
            ).unique()
            return [row.to_service() for row in rows]

    def policy(self, school_id: str, service_id: str) -> ReleasePolicy:
        """What a login releases. A school that switched the service off gets
        `ServiceSwitchedOff`; a choice made before the service's last change that needs
        re-confirmation (`Service.reconfirm_version`) releases the pseudonym alone until the
        school confirms it against the current declarations."""
        with session_on(self._engine) as session:
            found = session.execute(
                _POLICY_QUERY, {"school_id": school_id, "service_id": service_id}
            ).one_or_none()
            if found is None:
                return ReleasePolicy(school_id, service_id, frozenset(), 0)
            row, reconfirm_version = found
            if not row.active:
                raise ServiceSwitchedOff(school_id, service_id)
            policy = row.to_policy()
            if row.declaration_version < reconfirm_version:
                return ReleasePolicy(school_id, service_id, frozenset(), policy.version)
            return policy

    def policies_for_school(self, school_id: str) -> list[ReleasePolicy]:
        """The policies this school set, by service id; services it never set are left out."""
        with session_on(self._engine) as session:
            rows = session.scalars(
                select(ReleasePolicyRow)
                .where(ReleasePolicyRow.school_id == school_id)
                .order_by(ReleasePolicyRow.service_id)
            )
            return [row.to_policy() for row in rows]

    def policy_history(self, school_id: str, service_id: str) -> list[PolicyChange]:
        """Every version of one policy, oldest first (empty while the default applies)."""
        with session_on(self._engine) as session:
            rows = session.scalars(
                select(PolicyChangeRow)
                .where(
                    PolicyChangeRow.school_id == school_id,
                    PolicyChangeRow.service_id == service_id,
                )
                .order_by(PolicyChangeRow.version)
            )
            return [row.to_change() for row in rows]

    def school_metadata(
        self, *, idp_entity_id: str | None = None, without_source: str | None = None
    ) -> dict[str, str]:
        """`idp_entity_id`: that IdP's only (a school portal's page), not every school's.
        `without_source`: as it would be without that source's copy (`metadata forget`)."""
        where: list[ColumnElement[bool]] = [SchoolOidcRow.school_id.is_(None)]
        if idp_entity_id is not None:
            where.append(SchoolRow.idp_entity_id == idp_entity_id)
        with session_on(self._engine) as session:
            # A school on OpenID Connect has no SAML metadata.
            rows = session.execute(
                select(SchoolRow.idp_entity_id, SchoolRow.idp_metadata)
                .outerjoin(SchoolOidcRow, SchoolOidcRow.school_id == SchoolRow.id)
                .where(*where)
            )
            return metadata_in_force(
                session, "idp", {e: xml for e, xml in rows}, self._clock(), without_source
            )

    def service_metadata(
        self,
        *,
        approved_only: bool = True,
        entity_id: str | None = None,
        without_source: str | None = None,
    ) -> dict[str, str]:
        """Each SAML service's metadata as logins use it, by entity id: the approved services'
        (the login path's), or with `approved_only=False` every one's (`publisher list`).
        `entity_id`: that service's only (a publisher portal's page), not every service's.
        `without_source`: as it would be without that source's copy (`metadata forget`)."""
        where = [ServiceRow.protocol == Protocol.SAML.value]
        if approved_only:
            where.append(ServiceRow.approved.is_(True))
        if entity_id is not None:
            where.append(ServiceRow.entity_id == entity_id)
        with session_on(self._engine) as session:
            rows = session.execute(
                select(ServiceRow.entity_id, ServiceRow.sp_metadata).where(*where)
            )
            return metadata_in_force(
                session, "sp", {e: xml for e, xml in rows}, self._clock(), without_source
            )

    def metadata_expiry(self) -> datetime | None:
        """The next moment a federation copy in use passes its validUntil (None: no end)."""
        now = self._clock()
        with session_on(self._engine) as session:
            registered = or_(
                and_(
                    FederationEntityRow.role == "idp",
                    FederationEntityRow.entity_id.in_(select(SchoolRow.idp_entity_id)),
                ),
                and_(
                    FederationEntityRow.role == "sp",
                    FederationEntityRow.entity_id.in_(
                        select(ServiceRow.entity_id).where(
                            ServiceRow.protocol == Protocol.SAML.value
                        )
                    ),
                ),
            )
            earliest = session.scalar(
                select(func.min(FederationEntityRow.valid_until)).where(
                    registered, FederationEntityRow.valid_until > now
                )
            )
        return as_utc(earliest) if earliest is not None else None

    def pseudonym_key_version(self, chain: str) -> ChainKeyVersion | None:
        return key_version_of(self._engine, chain)

    def pseudonym_key_versions(self) -> list[ChainKeyVersion]:
        """Every chain's record (the cached view loads them all with the generation)."""
        return all_key_versions(self._engine)

    def chain_move(self, service_id: str) -> ChainMove | None:
        return chain_move_of(self._engine, service_id)

    def chain_moves(self) -> list[ChainMove]:
        """Every service's move record (the cached view loads them all with the generation)."""
        return all_chain_moves(self._engine)

    def generation(self) -> int:
        with session_on(self._engine) as session:
            value = session.scalar(
                select(RegistryStateRow.generation).where(RegistryStateRow.id == STATE_ROW_ID)
            )
        if value is None:
            raise ConfigurationError(NO_STATE_ROW)
        return value

    def schema_in_use(self) -> tuple[tuple[str, ...], str | None]:
        """The schema's revisions and its recorded oldest reader (None: none, or not exactly
        one), read with the generation row in one statement (`schema_in_use.py`): /readyz's look
        at the registry (it answers, and this version can serve on its schema) costs no more
        than the generation alone. Raises as `generation` does."""
        return schema_in_use(self._engine)


def _now() -> datetime:
    return datetime.now(UTC)


def _opened(session: Session, seal: SecretSeal, rows: list[SchoolRow]) -> list[School]:
    """The schools of `rows`, their client secrets opened; one in clear refused when the
    registry holds sealed secrets only (sealed_only.py)."""
    seal = seal_for(session, seal, (row.oidc.client_secret for row in rows if row.oidc))
    return [row.to_school(seal) for row in rows]


def metadata_in_force(
    session: Session,
    role: str,
    registered: dict[str, str | None],
    now: datetime,
    without_source: str | None = None,
) -> dict[str, str]:
    """Each registered entity's metadata: a source's copy when a source holds the entity (the
    source is then authoritative: past its validUntil the entity is not trusted at all, the copy
    given at registration does not come back), else the copy given at registration. Of several
    sources' copies, the one `copy_rank` puts first (registry/federation.py). `without_source`:
    leave that source's copies out (what its `metadata forget` would leave)."""
    copies: dict[str, list[Copy]] = {}
    where = [FederationEntityRow.role == role, FederationEntityRow.entity_id.in_(list(registered))]
    if without_source is not None:
        where.append(FederationEntityRow.source != without_source)
    rows = session.execute(ranked_copies().where(*where))
    for entity_id, until, xml, listed in rows:
        copies.setdefault(entity_id, []).append((until, xml, listed))
    metadata: dict[str, str] = {}
    for entity_id, own in registered.items():
        if (in_force := copy_in_force(own, copies.get(entity_id, ()), now)) is not None:
            metadata[entity_id] = in_force
    return metadata


# A source's copy of an entity: its validUntil, its XML, the source's list (`copy_rank`).
Copy = tuple[datetime | None, str, str | None]


def copy_in_force(own: str | None, copies: Iterable[Copy], now: datetime) -> str | None:
    """One entity's metadata in force (`metadata_in_force`): the sources' copy `copy_rank` puts
    first, None past its end; without a source's copy, the one given at registration."""
    best: tuple[tuple[bool, datetime], str] | None = None
    for until, xml, listed in copies:
        rank = copy_rank(listed, until)
        if best is None or rank > best[0]:
            best = (rank, xml)
    if best is None:
        return own or None
    (_, end), xml = best
    return xml if end > now else None
