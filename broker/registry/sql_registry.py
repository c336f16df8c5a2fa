"""`SqlRegistry`: the registry on SQLite or PostgreSQL, read side plus the administrators' writes.

Writes come from the CLI and the portals, never from the login path. Each runs in one
transaction: it checks what it refers to, writes, and bumps `registry_state.generation` when
schools, chains, services, metadata or release policies changed, so every worker's cached view
and adapters reload on their next look (broker/registry/changes.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeAlias, cast

from sqlalchemy import CursorResult, Update, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, joinedload, undefer

from broker.core.chain_ids import check_chain_id
from broker.core.chain_move import ChainMove
from broker.core.client_hosts import addresses_fingerprint
from broker.core.errors import BadRequest, UnknownSchool, UnknownService
from broker.core.metadata_refresh import RefreshRecord
from broker.core.model import (
    AssertionEncryption,
    Chain,
    Declaration,
    OidcClient,
    Protocol,
    ReleasePolicy,
    School,
    Service,
)
from broker.core.provider_version import provider_version
from broker.core.pseudonym import PseudonymKeys
from broker.core.receipts import ReceiptKeys
from broker.core.sealed_secrets import NO_KEYS, SecretSeal
from broker.registry.admin_accounts import SqlAdminAccounts
from broker.registry.admin_tables import DeclarationChangeRow, PublisherRow, declarations_json
from broker.registry.bulk_import import ImportReport, apply_snapshot
from broker.registry.chain_moves import finish_move_in, move_service_in
from broker.registry.changes import bump_generation, serialise_checks
from broker.registry.database import (
    StatementTimeouts,
    locked_row,
    open_engine,
    session_on,
    writer,
)
from broker.registry.declaration_writes import DeclarationsReplaced, replace_declarations
from broker.registry.errors import (
    ClientChanged,
    DeclarationsChanged,
    DuplicateEntry,
    MetadataChanged,
    PolicyChanged,
    ProviderChanged,
    UndeclaredAttribute,
    UnknownChain,
    UnknownPublisher,
)
from broker.registry.federation import FederationStore
from broker.registry.id_reuse import IdReuse, refuse_reuse
from broker.registry.import_encryption import EncryptionRefusal
from broker.registry.metadata_urls import (
    given_by,
    metadata_url,
    metadata_urls,
    record_refresh,
    refresh_records,
    refreshed_at,
)
from broker.registry.portal_reading import PortalReads
from broker.registry.pseudonym_keys import SqlPseudonymKeyVersions
from broker.registry.reading import metadata_in_force
from broker.registry.receipts import SqlReceiptBook
from broker.registry.removal import (
    Removal,
    Stamp,
    kept_declaration_version,
    kept_policy_version,
    remove_chain,
    remove_publisher,
    remove_school,
    remove_service,
)
from broker.registry.sealed_only import mark_sealed_only, sealed_only_since
from broker.registry.secret_sealing import SealingReport, count_in_clear, seal_every_secret
from broker.registry.shared_idps import (
    check_joining,
    check_names_school,
    lock_idp,
    names_school,
    note_joined,
    require_brin,
    schools_on_idp_of,
    set_idp_names_school,
    set_names_school,
)
from broker.registry.snapshot import Snapshot, read_snapshot
from broker.registry.tables import (
    ChainRow,
    DeclarationRow,
    OidcClientRow,
    PolicyChangeRow,
    ReleasePolicyRow,
    SchoolOidcRow,
    SchoolRow,
    ServiceRow,
    as_utc,
    sealed_client_secret,
)

# (column, field name for the message, value): one value that must not exist yet.
UniqueCheck: TypeAlias = tuple[InstrumentedAttribute[str], str, str]

MAX_CHANGED_BY = 200
# What `update_oidc_client` may write: OidcClient's fields, named as OidcClientRow's columns.
CLIENT_FIELDS = tuple(each.name for each in fields(OidcClient))
log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SqlRegistry(PortalReads):
    """Open the registry at `url` (`sqlite:///path` or `postgresql+psycopg://...`).

    The schema must be at head (`broker.registry.migrate(url)`). One instance per process is
    enough and may be shared by threads; `clock` is injectable so tests can pin `changed_at`.
    `seal` seals the secrets the registry keeps (staff TOTP secrets, schools' client secrets)
    and opens them (core/sealed_secrets.py, `Settings.secret_seal()`); without it the registry
    reads clear values only and refuses to write a secret. `timeouts`: the web workers' bounds
    on every PostgreSQL call (`database.open_engine`); the CLI gives none.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = _utc_now,
        seal: SecretSeal = NO_KEYS,
        timeouts: StatementTimeouts | None = None,
    ) -> None:
        engine = open_engine(url, timeouts=timeouts)
        super().__init__(engine, seal)
        self._writer = writer(engine)
        self._clock = clock
        self.accounts = SqlAdminAccounts(engine, clock, seal)
        self.federation = FederationStore(engine, self._writer)
        self.pseudonym_keys = SqlPseudonymKeyVersions(engine, self._writer, bump_generation, clock)

    def receipt_book(self, keys: ReceiptKeys) -> SqlReceiptBook:
        """Receipts live beside the registry, on the same database and connection pool."""
        return SqlReceiptBook(self._engine, keys)

    def set_privacy_contact(self, school_id: str, contact: str) -> None:
        """Where the school's students and parents ask about their data (its portal, the CLI);
        the caller checked the URL (`core.endpoints.privacy_contact_problem`)."""
        self._set_school(school_id, {SchoolRow.privacy_contact: contact})

    def set_school_town(self, school_id: str, town: str) -> None:
        """A school's town (the CLI, the operator's portal; empty: none); the caller checked it
        (`core.towns.town_problem`). The discovery page shows it from the next generation."""
        self._set_school(school_id, {SchoolRow.town: town})

    def set_school_details(
        self,
        school_id: str,
        name: str | None = None,
        town: str | None = None,
        aliases: Sequence[str] | None = None,
    ) -> None:
        """What students see of a school when they choose it: its display name, town and other
        names (the operator's portal, `school update`), those given (not None) in one write and
        one generation: no worker shows the one without the other. The caller checked them
        (`core.display_text.name_problem`, `core.towns.town_problem`,
        `core.school_aliases.aliases_problem` against the name the school will have)."""
        given = ((SchoolRow.name, name), (SchoolRow.town, town), (SchoolRow.aliases, aliases))
        values = {column: value for column, value in given if value is not None}
        if SchoolRow.aliases in values:
            values[SchoolRow.aliases] = list(aliases or ())
        if values:
            self._set_school(school_id, values)

    def _set_school(self, school_id: str, values: Mapping[InstrumentedAttribute[Any], Any]) -> None:
        """Columns of one school, with the generation bump every worker's view reloads on; an
        unknown school changes nothing."""
        with self._writing() as session:
            if not _updated_one(
                session, update(SchoolRow).where(SchoolRow.id == school_id).values(values)
            ):
                raise UnknownSchool(f"no school with id {school_id!r}")
            bump_generation(session)

    def close(self) -> None:
        """Close pooled connections (tests, shutdown); the instance reconnects if used again."""
        self._engine.dispose()

    def add_school(self, school: School, idp_metadata: str, url: str | None = None) -> None:
        """Register a school. Its IdP may be one other SAML schools are on already (a school
        board's), with the same metadata as theirs (shared_idps.py). `url`: the address the
        metadata was fetched from, which `metadata refresh` fetches again (None: a file)."""
        with self._writing("school", [(SchoolRow.id, "id", school.id)]) as session:
            check_joining(session, school, idp_metadata)
            row = SchoolRow.from_school(school, idp_metadata, self._seal, url)
            # Given by URL: fetched and checked just now, a refresh as good as the timer's.
            row.idp_refreshed_at = self._refreshed(url)
            session.add(row)
            note_joined(session, [school.idp_entity_id])
            bump_generation(session)

    def set_idp_names_school(self, school_id: str, wanted: bool) -> tuple[str, bool]:
        """Require (`wanted`) or stop requiring that logins through the school's IdP name their
        school (shared_idps.py `set_names_school`): (the IdP's entity id, whether it changed)."""
        with self._writing() as session:
            entity_id, changed = set_names_school(session, school_id, wanted)
            if changed:
                bump_generation(session)
        return entity_id, changed

    def set_names_school_of_idp(self, entity_id: str, wanted: bool) -> tuple[bool, tuple[str, ...]]:
        """The same by the IdP's entity id, also for an IdP no school is on (shared_idps.py
        `set_idp_names_school`): (whether it changed, the ids of the schools on it)."""
        with self._writing() as session:
            changed, school_ids = set_idp_names_school(session, entity_id, wanted)
            if changed:
                bump_generation(session)
        return changed, school_ids

    def check_idp_names_school(self, school_id: str, wanted: bool) -> None:
        """`set_idp_names_school`'s refusals, without a write: a command that writes more
        than the flag asks first, so a refused flag leaves the rest unwritten too."""
        with session_on(self._engine) as session:
            check_names_school(session, schools_on_idp_of(session, school_id, lock=False), wanted)

    def add_chain(self, chain: Chain) -> None:
        """Register a chain; an id of another shape than core/chain_ids.py's is refused."""
        check_chain_id(chain.id)
        with self._writing("chain", [(ChainRow.id, "id", chain.id)]) as session:
            session.add(ChainRow(id=chain.id, name=chain.name))
            bump_generation(session)

    def add_service(
        self,
        service: Service,
        sp_metadata: str | None,
        *,
        reuse: IdReuse = IdReuse.REFUSED,
        url: str | None = None,
    ) -> None:
        """Register a service with its declarations (kept in the order given). An id a removed
        service had is refused (`ServiceIdUsedBefore`) unless `reuse` allows taking it over
        (id_reuse.py): its pseudonyms and its history would carry over. `url`: the address the
        SP metadata was fetched from, which `metadata refresh` fetches again (None: a file)."""
        seen: set[str] = set()
        for declaration in service.declarations:
            if declaration.attribute in seen:
                raise DuplicateEntry(
                    f"declaration of service {service.id}", "attribute", declaration.attribute
                )
            seen.add(declaration.attribute)
        checks: list[UniqueCheck] = [
            (ServiceRow.id, "id", service.id),
            (ServiceRow.entity_id, "entity_id", service.entity_id),
        ]
        with self._writing("service", checks) as session:
            if service.chain_id is not None:
                _require_chain(session, service.chain_id)
            # Locked: a removal of the publisher waits for this, or this for it (removal.py).
            if service.publisher_id is not None and not locked_row(
                session, PublisherRow.id, service.publisher_id
            ):
                raise UnknownPublisher(service.publisher_id)
            refuse_reuse(session, service, reuse)
            # An id registered again after a removal continues its declarations' history.
            version = max(
                service.declaration_version, kept_declaration_version(session, service.id) + 1
            )
            session.add(
                ServiceRow(
                    id=service.id,
                    name=service.name,
                    entity_id=service.entity_id,
                    chain_id=service.chain_id,
                    naming=service.naming.value,
                    protocol=service.protocol.value,
                    sp_metadata=sp_metadata,
                    sp_metadata_url=url,
                    sp_refreshed_at=self._refreshed(url),
                    approved=service.approved,
                    publisher_id=service.publisher_id,
                    declaration_version=version,
                    # A new registration: no school has chosen under these declarations yet.
                    reconfirm_version=version,
                    assertion_encryption=service.assertion_encryption.value,
                    declarations=DeclarationRow.rows_of(service.declarations),
                    oidc=OidcClientRow.from_client(service.oidc) if service.oidc else None,
                )
            )
            session.add(
                DeclarationChangeRow(
                    service_id=service.id,
                    version=version,
                    declarations=declarations_json(service.declarations),
                    changed_at=as_utc(self._clock()),
                    changed_by="registration",
                )
            )
            bump_generation(session)

    def metadata_urls(self, role: str) -> list[tuple[str, str, str]]:
        """(entry id, entity id, URL) of every school (`role` "idp") or service ("sp") whose
        SAML metadata was given by URL, by id: what `metadata refresh` fetches again
        (cli/url_refresh.py)."""
        with session_on(self._engine) as session:
            return metadata_urls(session, role)

    def _refreshed(self, url: str | None) -> datetime | None:
        """A copy given by `url` was fetched and checked now (None: a file, not fetched)."""
        return refreshed_at(url, self._clock())

    def record_refresh(self, role: str, entry_ids: Sequence[str], failure: str | None) -> None:
        """What `metadata refresh` made of the entries' URL now (cli/url_refresh.py): a copy
        accepted (`failure` None, changed or not) or refused with reason code `failure`. No
        generation bump: logins never read it; the attention report reads it every time."""
        with self._writing() as session:
            record_refresh(session, role, entry_ids, failure, self._clock())

    def refresh_records(self, role: str) -> dict[str, RefreshRecord]:
        """By entry id, for every school or service given by URL: its last refresh outcomes
        (revisions 0028, 0029)."""
        with session_on(self._engine) as session:
            return refresh_records(session, role)

    def metadata_url(self, role: str, entry_id: str) -> str | None:
        """The URL the entry's registered metadata was fetched from (None: a file, or none)."""
        with session_on(self._engine) as session:
            return metadata_url(session, role, entry_id)

    def registered_metadata(self, role: str, entry_id: str) -> str:
        """The SAML metadata a school ("idp") or service ("sp") was registered or last updated
        with, "" when it has none of its own; never a metadata source's copy (which logins
        prefer, reading.py). `ketenbroker school|publisher update` compares against it."""
        with session_on(self._engine) as session:
            if role == "idp":
                return (
                    session.scalar(select(SchoolRow.idp_metadata).where(SchoolRow.id == entry_id))
                    or ""
                )
            return (
                session.scalar(select(ServiceRow.sp_metadata).where(ServiceRow.id == entry_id))
                or ""
            )

    def update_school_metadata(
        self,
        school_id: str,
        idp_metadata: str,
        expected: str | None = None,
        *,
        url: str | None = None,
    ) -> tuple[str, ...]:
        """Replace a school's registered IdP metadata, and with it that of every school on the
        same IdP (a school board's: one IdP, one metadata, shared_idps.py); returns the ids of
        those others (empty for an IdP of one school). `expected`: the copy the caller read
        (`registered_metadata`); the write is then refused with `MetadataChanged` unless that is
        still the registered copy of every school on the IdP, so of two operators updating at
        once the second is told instead of silently overwriting the first. `url`: the address
        the copy was fetched from, kept for `metadata refresh` on every school on the IdP (None:
        a file, which nothing fetches again)."""
        with self._writing() as session:
            # Locked as `add_school` locks: a school joining meanwhile would be compared
            # against the old copy and keep it beside the new one.
            entity_id, ids = schools_on_idp_of(session, school_id, lock=True)
            where = [SchoolRow.idp_entity_id == entity_id]
            if expected is not None:
                # Compare-and-set in the UPDATE itself, as `_update_metadata` does.
                where.append(func.coalesce(SchoolRow.idp_metadata, "") == expected)
            statement = (
                update(SchoolRow)
                .where(*where)
                .values(
                    {SchoolRow.idp_metadata: idp_metadata, **given_by("idp", url, self._clock())}
                )
            )
            result = cast("CursorResult[Any]", session.execute(statement))
            if result.rowcount != len(ids):
                # Rolled back with the transaction: some school's copy was not `expected`.
                raise MetadataChanged(school_id)
            bump_generation(session)
        return tuple(other for other in ids if other != school_id)

    def update_service_metadata(
        self,
        service_id: str,
        sp_metadata: str,
        expected: str | None = None,
        *,
        url: str | None = None,
    ) -> None:
        """Likewise for a service's SP metadata; `url` kept for `metadata refresh` (None: a
        file, which nothing fetches again)."""
        self._update_metadata(
            ServiceRow,
            ServiceRow.sp_metadata,
            (ServiceRow.id, service_id),
            (sp_metadata, expected),
            UnknownService(f"no service with id {service_id!r}"),
            given_by("sp", url, self._clock()),
        )

    def _update_metadata(
        self,
        table: type[SchoolRow] | type[ServiceRow],
        column: InstrumentedAttribute[str] | InstrumentedAttribute[str | None],
        key: tuple[InstrumentedAttribute[str], str],
        copies: tuple[str, str | None],
        unknown: BadRequest,
        also: Mapping[InstrumentedAttribute[Any], Any],
    ) -> None:
        (id_column, entry_id), (new, expected) = key, copies
        where = [id_column == entry_id]
        if expected is not None:
            # Compare-and-set in the UPDATE itself: on PostgreSQL an UPDATE that waited for a
            # concurrent one checks its WHERE again on the row that one left.
            where.append(func.coalesce(column, "") == expected)
        with self._writing() as session:
            if not _updated_one(session, update(table).where(*where).values({column: new, **also})):
                if expected is not None and session.scalar(
                    select(id_column).where(id_column == entry_id)
                ):
                    raise MetadataChanged(entry_id)
                raise unknown
            bump_generation(session)

    def update_oidc_client(
        self,
        service_id: str,
        client: OidcClient,
        *,
        seen: OidcClient | None = None,
        approved: bool | None = None,
    ) -> None:
        """Replace an OIDC service's registration (new redirect URIs, a rotated secret's hash).
        The old secret stops working on every worker's next look at the generation.

        `seen` (the portal): the client as the page read it, `approved` whether the service was
        then approved (the new-host rule of core/client_hosts.py holds only for an approved
        one). Under the row's lock, a stored client other than `seen` (a colleague's save, a
        renewed secret) or another approval is refused with `ClientChanged`, nothing written;
        and only the fields `client` changes from `seen` are written, never a stale copy's
        (a secret hash read before a rotation would make the old secret valid again)."""
        with self._writing() as session:
            row = (
                session.get(ServiceRow, service_id)
                if locked_row(session, ServiceRow.id, service_id)
                else None
            )
            if row is None or row.oidc is None:
                raise UnknownService(f"no OIDC service with id {service_id!r}")
            if seen is not None and (
                row.oidc.to_client() != seen or (approved is not None and row.approved != approved)
            ):
                raise ClientChanged(service_id)
            written = OidcClientRow.from_client(client)
            for name in CLIENT_FIELDS:
                if seen is None or getattr(client, name) != getattr(seen, name):
                    setattr(row.oidc, name, getattr(written, name))
            bump_generation(session)

    def update_school_idp(
        self, school: School, idp_metadata: str, *, seen: str | None = None, url: str | None = None
    ) -> None:
        """Replace a school's identity provider and subject (its portal): SAML metadata, or an
        OpenID provider (`school.oidc`) with `idp_metadata` empty. An IdP another school is on
        is refused (`DuplicateEntry`): putting schools on a shared IdP is the operator's
        (`school add`, shared_idps.py), and a school's portal shows a shared one read-only.
        `seen`: the settings' version the page showed (core/provider_version.py), refused with
        `ProviderChanged` when a colleague's save changed them since, under the row's lock.
        `url`: the address the SAML metadata was fetched from (`add_school`'s)."""
        with self._writing() as session:
            lock_idp(session, [school.idp_entity_id])
            taken = session.scalar(
                select(SchoolRow.id).where(
                    SchoolRow.idp_entity_id == school.idp_entity_id, SchoolRow.id != school.id
                )
            )
            if taken is not None:
                raise DuplicateEntry("school", "idp_entity_id", school.idp_entity_id)
            if names_school(session, school.idp_entity_id):
                # A provider kept as a board's (its other schools removed): its logins name the
                # school, which only a BRIN can match.
                require_brin(school.idp_entity_id, school.id)
            row = (
                session.get(SchoolRow, school.id)
                if locked_row(session, SchoolRow.id, school.id)
                else None
            )
            if row is None:
                raise UnknownSchool(f"no school with id {school.id!r}")
            if seen is not None and provider_version(row.to_school(NO_KEYS)) != seen:
                raise ProviderChanged(school.id)
            row.idp_entity_id = school.idp_entity_id
            row.subject_attribute = school.subject_attribute
            row.idp_metadata = idp_metadata
            row.idp_metadata_url = url if school.oidc is None else None
            row.idp_refreshed_at = self._refreshed(row.idp_metadata_url)
            wanted = school.oidc
            if wanted is None:
                row.oidc = None
            elif row.oidc is None:
                row.oidc = SchoolOidcRow.from_upstream(wanted, school.id, self._seal)
            else:
                row.oidc.issuer = wanted.issuer
                row.oidc.client_id = wanted.client_id
                row.oidc.client_secret = sealed_client_secret(wanted, school.id, self._seal)
                row.oidc.algorithms = list(wanted.algorithms)
                row.oidc.hosted_domain = wanted.hosted_domain or None
            bump_generation(session)

    def set_school_hosted_domain(self, school_id: str, issuer: str, domain: str) -> None:
        """An OpenID Connect school's hosted domain ("": none), and nothing else of its provider
        (`school update`): a client secret or algorithms changed in the portal between the
        caller's read and this write stay as changed. `issuer`: the provider the caller checked
        `domain` against (a shared issuer needs one, core/hosted_domain.py); the write is
        refused with `ProviderChanged` unless the school still signs in with it, so a domain
        is never cleared under an issuer that was switched to Google meanwhile."""
        statement = (
            update(SchoolOidcRow)
            .where(SchoolOidcRow.school_id == school_id, SchoolOidcRow.issuer == issuer)
            .values(hosted_domain=domain or None)
        )
        with self._writing() as session:
            if not _updated_one(session, statement):
                if session.get(SchoolRow, school_id) is None:
                    raise UnknownSchool(f"no school with id {school_id!r}")
                raise ProviderChanged(school_id)
            bump_generation(session)

    def set_service_chain(
        self,
        service_id: str,
        chain_id: str | None,
        *,
        window_days: int | None = None,
        keys: PseudonymKeys | None = None,
        changed_by: str = "",
    ) -> ChainMove | None:
        """Move a service into a chain, or out of every chain with `None`.

        This changes the pseudonyms the service receives (the chain is an input of the
        pseudonym): the caller decides whether that is intended. With `window_days` (and the key
        set now, `keys`) the service receives its old pseudonym beside the new one for that long
        (core/chain_move.py); the move record is returned. Refused (`MoveRefused`), changing
        nothing, while a migration window concerns the service.
        """
        with self._writing() as session:
            if chain_id is not None:
                _require_chain(session, chain_id)
            move = move_service_in(
                session,
                service_id,
                chain_id,
                keys=keys,
                window_days=window_days,
                now=self._clock(),
                changed_by=changed_by,
            )
            bump_generation(session)
            return move

    def finish_chain_move(self, service_id: str) -> ChainMove:
        """End a service's open move window now: its new pseudonym alone from then on."""
        with self._writing() as session:
            if session.get(ServiceRow, service_id) is None:
                raise UnknownService(f"no service with id {service_id!r}")
            move = finish_move_in(session, service_id, self._clock())
            bump_generation(session)
            return move

    def set_policy(
        self,
        school_id: str,
        service_id: str,
        attributes: frozenset[str],
        changed_by: str,
        *,
        active: bool = True,
        declarations_seen: int | None = None,
        policy_seen: int | None = None,
    ) -> ReleasePolicy:
        """Set what `school_id` releases to `service_id`; returns the new, numbered version.

        Every call makes a new version (previous + 1) and appends it to the history in the same
        transaction. Nothing is written when the school or service is unknown or an attribute
        was not declared by the service. The version of the service's declarations is recorded
        with it: the school has now seen (and accepted) that version. `declarations_seen`: the
        version the school's page showed (the portal), refused with DeclarationsChanged when the
        service's declarations moved on since, checked under the service row's lock so that a
        publisher's change cannot slip in between. `policy_seen`: the policy version the page
        showed (0: no choice yet), refused with PolicyChanged when a colleague's choice was
        saved since, checked under the school row's lock. `active=False` switches the service
        off for this school.
        """
        if not changed_by or len(changed_by) > MAX_CHANGED_BY:
            raise BadRequest(f"changed_by must name the administrator (1-{MAX_CHANGED_BY} chars)")
        with self._writing() as session:
            # Locking the school row serialises concurrent policy changes of one school on
            # PostgreSQL, so two administrators cannot both write version n + 1. (SQLite has
            # one writer at a time already.)
            locked = session.scalar(
                select(SchoolRow.id).where(SchoolRow.id == school_id).with_for_update()
            )
            if locked is None:
                raise UnknownSchool(f"no school with id {school_id!r}")
            # The service row locked too (database.locked_row): a removal of the service waits
            # for this change, or this change waits for the removal and finds no service.
            service = (
                session.get(ServiceRow, service_id, options=[joinedload(ServiceRow.declarations)])
                if locked_row(session, ServiceRow.id, service_id)
                else None
            )
            if service is None:
                raise UnknownService(f"no service with id {service_id!r}")
            if declarations_seen is not None and declarations_seen != service.declaration_version:
                raise DeclarationsChanged(
                    service_id, declarations_seen, service.declaration_version
                )
            declared = {row.attribute for row in service.declarations}
            undeclared = tuple(sorted(attributes - declared))
            if undeclared:
                raise UndeclaredAttribute(service_id, undeclared)

            names = sorted(attributes)
            changed_at = as_utc(self._clock())
            current = session.get(ReleasePolicyRow, (school_id, service_id))
            now = current.version if current is not None else 0
            if policy_seen is not None and policy_seen != now:
                raise PolicyChanged(school_id, service_id, policy_seen, now)
            if current is None:
                kept = kept_policy_version(session, school_id, service_id)
                current = ReleasePolicyRow(school_id=school_id, service_id=service_id, version=kept)
                session.add(current)
            current.version += 1
            current.attributes = names
            current.changed_at = changed_at
            current.changed_by = changed_by
            current.active = active
            current.declaration_version = service.declaration_version
            session.add(PolicyChangeRow.recording(current))
            policy = current.to_policy()
            bump_generation(session)
        return policy

    def set_assertion_encryption(
        self,
        service_id: str,
        setting: AssertionEncryption,
        changed_by: str = "",
        *,
        refuse: Callable[[str | None], None] | None = None,
    ) -> bool:
        """The operator's switch for a SAML service's encrypted assertions (`off`: signed and
        unencrypted whatever its metadata publishes); False when it was set so already. The
        login path reads it from the worker's view, which the generation bump reloads.

        `refuse`: called before a change is written, with the metadata the service's logins
        use now (its own copy or a metadata source's; None: none in force), read under the
        service row's lock and the registry state row's, so that a metadata update or a
        source's refresh either waits for this change or is seen by it (never slips in
        between); it raises to refuse, and nothing changes."""
        with self._writing() as session:
            row = (
                session.get(ServiceRow, service_id, options=[undefer(ServiceRow.sp_metadata)])
                if locked_row(session, ServiceRow.id, service_id)
                else None
            )
            if row is None:
                raise UnknownService(f"no service with id {service_id!r}")
            if row.protocol != Protocol.SAML.value:
                raise BadRequest(
                    f"service {service_id!r} is an OpenID Connect client: assertion encryption "
                    "is a SAML service's",
                    code="not_saml",
                )
            was = row.assertion_encryption
            if was == setting.value:
                return False
            if refuse is not None:
                # A source's refresh locks no service row, but bumps the generation: the state
                # row's lock (after the service row's, as every writer) waits for it.
                serialise_checks(session)
                copies = metadata_in_force(
                    session, "sp", {row.entity_id: row.sp_metadata}, self._clock()
                )
                refuse(copies.get(row.entity_id))
            row.assertion_encryption = setting.value
            bump_generation(session)
        # Ids only: which service, what it was and is, who changed it.
        log.info(
            "assertion encryption service=%s from=%s to=%s by=%s",
            service_id,
            was,
            setting.value,
            changed_by or "unknown",
        )
        return True

    def approve_service(self, service_id: str, *, addresses: str | None = None) -> None:
        """Let an operator-checked service in: schools see it, logins reach it.

        `addresses` (the portal): the `addresses_fingerprint` of the OIDC client's addresses
        the operator's page showed, compared under the row's lock: a publisher's save since
        is refused with `ClientChanged`, nothing approved (the operator approves what they
        saw). Ignored for a SAML service; the CLI passes none."""
        with self._writing() as session:
            row = (
                session.get(ServiceRow, service_id)
                if locked_row(session, ServiceRow.id, service_id)
                else None
            )
            if row is None:
                raise UnknownService(f"no service with id {service_id!r}")
            if (
                addresses is not None
                and row.oidc is not None
                and addresses_fingerprint(row.oidc.to_client()) != addresses
            ):
                raise ClientChanged(service_id)
            row.approved = True
            bump_generation(session)

    def set_declarations(
        self, service_id: str, declarations: tuple[Declaration, ...], changed_by: str
    ) -> DeclarationsReplaced:
        """Replace what a service declares it needs: the new declaration version, and what it
        did to schools' choices.

        Every change makes a new version. Schools' choices stop releasing attributes until each
        school confirms again only when the change needs that (an attribute added, required-ness
        changed: core/declarations.py); an attribute whose purpose changed (core/purposes.py)
        is taken out of the choice of each school that released it, in this transaction
        (purpose_drops.py); new texts for the same purpose or a removed attribute keep them.
        """
        names = [d.attribute for d in declarations]
        if len(set(names)) != len(names):
            raise DuplicateEntry(f"declaration of service {service_id}", "attribute", names[0])
        with self._writing() as session:
            # The service row first, as every writer of its declarations or its policies.
            row = (
                session.get(ServiceRow, service_id, options=[joinedload(ServiceRow.declarations)])
                if locked_row(session, ServiceRow.id, service_id)
                else None
            )
            if row is None:
                raise UnknownService(f"no service with id {service_id!r}")
            replaced = replace_declarations(
                session,
                row,
                declarations,
                row.declaration_version + 1,
                (as_utc(self._clock()), changed_by),
            )
            bump_generation(session)
        if replaced.dropped:
            # Ids and attribute names only: which release stopped where, never a value.
            log.info(
                "purpose changed service=%s version=%s attributes=%s schools=%d",
                service_id,
                replaced.version,
                ",".join(sorted(replaced.purpose_changed)),
                len(replaced.dropped),
            )
        return replaced

    def snapshot(self) -> Snapshot:
        """The federation's configuration (no administrators, no history), for export."""
        with session_on(self._engine) as session:
            return read_snapshot(session, self._seal)

    def import_snapshot(
        self,
        snapshot: Snapshot,
        changed_by: str,
        *,
        apply: bool = True,
        stop_releases: bool = False,
        encryption_refusal: EncryptionRefusal | None = None,
        reuse: IdReuse = IdReuse.REFUSED,
    ) -> ImportReport:
        """Add or update every entry of a checked snapshot in one transaction (bulk_import.py).
        `apply=False` rolls that transaction back: what the import would do now, worked out by
        the same code, and nothing changed. An import that would stop schools' releases because
        it gives attributes new purposes (`ImportReport.dropped`) is rolled back the same way
        unless `stop_releases` says the operator confirmed that; `ImportReport.applied` says
        whether it was carried out. `encryption_refusal`: the SAML side's check of the services
        the import leaves set to encrypt (import_encryption.py); the command passes it. `reuse`:
        what a service the import creates under an id used before may take over (id_reuse.py);
        none unless the operator said so (`ServiceIdUsedBefore`, nothing imported)."""
        try:
            with self._writing() as session:
                report = apply_snapshot(
                    session,
                    snapshot,
                    as_utc(self._clock()),
                    changed_by,
                    self._seal,
                    encryption_refusal,
                    reuse,
                )
                if not apply or (report.dropped and not stop_releases):
                    session.rollback()
                else:
                    report.applied = True
        except IntegrityError as error:
            # Only a concurrent change gets here: the caller checked every reference first.
            raise BadRequest(
                f"the registry changed during the import ({type(error.orig).__name__}); "
                "nothing was imported, run it again",
                code="import_conflict",
            ) from None
        if report.applied and report.dropped:
            # Ids and attribute names only, as set_declarations logs the portal's.
            log.info(
                "purpose changed import releases=%s",
                " ".join(
                    f"{pair}:{','.join(sorted(names))}"
                    for pair, names in sorted(report.dropped.items())
                ),
            )
        return report

    def secrets_in_clear(self) -> int:
        """How many staff TOTP secrets and school client secrets are not sealed yet."""
        with session_on(self._engine) as session:
            return count_in_clear(session, as_utc(self._clock()))

    def seal_secrets(self, *, apply: bool = True) -> SealingReport:
        """Seal every staff TOTP secret and school client secret still in clear, and re-seal
        those under an older key, under the current key: one transaction (secret_sealing.py).
        `apply=False` rolls it back: what it would do. Nothing the login path reads changes
        (the opened secrets are the same), so no generation bump."""
        with session_on(self._writer) as session:
            report = seal_every_secret(session, self._seal, as_utc(self._clock()))
            report.applied = apply
            if apply:
                # Nothing is left in clear: sealed secrets only from this commit on.
                report.sealed_only_since = mark_sealed_only(session, as_utc(self._clock()))
            else:
                session.rollback()
        if apply:
            # Counts only, as the command prints them.
            log.info(
                "registry secrets sealed=%d resealed=%d current=%d invitations_forgotten=%d "
                "sealed_only_marked=%s",
                sum(report.sealed.values()),
                sum(report.resealed.values()),
                sum(report.current.values()),
                report.forgotten,
                "now" if report.marks else "before",
            )
        return report

    def sealed_only_since(self) -> datetime | None:
        """Since when the registry holds sealed secrets only, refusing values in clear
        (sealed_only.py); None: values in clear are still read (`registry status`)."""
        with session_on(self._engine) as session:
            return sealed_only_since(session)

    def remove_school(self, school_id: str, *, apply: bool, removed_by: str = "") -> Removal:
        """Remove a school and what only makes sense with it (removal.py); `apply=False` only
        says what would go and what stays. `removed_by` is recorded (`cli:<user>`)."""
        return self._removing(remove_school, school_id, apply, removed_by)

    def remove_service(self, service_id: str, *, apply: bool, removed_by: str = "") -> Removal:
        """Remove a service (approved or not) likewise."""
        return self._removing(remove_service, service_id, apply, removed_by)

    def remove_publisher(self, publisher_id: str, *, apply: bool, removed_by: str = "") -> Removal:
        """Remove a publisher organisation with no services left, and its administrators and
        invitations; `PublisherInUse` (nothing changed) while a service names it."""
        return self._removing(remove_publisher, publisher_id, apply, removed_by)

    def remove_chain(self, chain_id: str, *, apply: bool, removed_by: str = "") -> Removal:
        """Remove a chain no service is in, outside a pseudonym key migration window; its
        receipts and key version record stay. `ChainInUse` or `ChainInWindow` (nothing
        changed) otherwise."""
        now = as_utc(self._clock())
        return self._removing(partial(remove_chain, now=now), chain_id, apply, removed_by)

    def _removing(
        self, remove: Callable[..., Removal], entry_id: str, apply: bool, removed_by: str
    ) -> Removal:
        stamp = Stamp(removed_by or "unknown", as_utc(self._clock())) if apply else None
        try:
            with session_on(self._writer if apply else self._engine) as session:
                return remove(session, entry_id, stamp)
        except IntegrityError as error:
            # A policy written for the entry while it went: the whole removal rolled back.
            raise BadRequest(
                f"the registry changed during the removal ({type(error.orig).__name__}); "
                "nothing was removed, run it again",
                code="removal_conflict",
            ) from None

    @contextmanager
    def _writing(self, kind: str = "", unique: Sequence[UniqueCheck] = ()) -> Iterator[Session]:
        """A write transaction that refuses duplicates with `DuplicateEntry`, not IntegrityError.

        The check before the insert gives the clear message; a concurrent writer can still slip
        in between on PostgreSQL, so a unique violation at commit is checked again to name it.
        """
        try:
            with session_on(self._writer) as session:
                _refuse_duplicates(session, kind, unique)
                yield session
        except IntegrityError:
            if unique:
                with session_on(self._engine) as session:
                    _refuse_duplicates(session, kind, unique)
            raise


def _refuse_duplicates(session: Session, kind: str, unique: Sequence[UniqueCheck]) -> None:
    for column, field, value in unique:
        if session.scalar(select(column).where(column == value).limit(1)) is not None:
            raise DuplicateEntry(kind, field, value)


def _require_chain(session: Session, chain_id: str) -> None:
    """The chain a service is put in, locked (database.locked_row): a removal of the chain
    waits for the change, or the change for the removal and then finds no chain."""
    if not locked_row(session, ChainRow.id, chain_id):
        raise UnknownChain(chain_id)


def _updated_one(session: Session, statement: Update) -> bool:
    """Run an UPDATE by primary key; False when no row had that key."""
    result = cast("CursorResult[Any]", session.execute(statement))
    return result.rowcount == 1
