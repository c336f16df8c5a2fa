"""Writing a checked `Snapshot` into the registry: add or update by id, in one transaction.

The caller (`ketenbroker registry import`) has checked every entry and every reference first;
this module only writes, and writes nothing that is already so, which makes an import
idempotent: the same file a second time changes no row, no version and not the generation.
Entries the registry holds and the snapshot does not are left alone (an import never deletes,
but for the ended move record of a service it moves to another chain, as `chain move` removes
it; a service in a migration window is not moved at all: `_moved`).

A service whose file entry gives an attribute a new purpose (core/purposes.py) has that attribute
taken out of every school's choice that released it (purpose_drops.py), as the portal does; and
a policy of the file that accepted declarations from before any such change (this import's, or
one the declaration history holds: an older file) does not release that attribute either.
`ImportReport.dropped` names, per choice, what it released before the import and does not after
it among the attributes whose purpose changed (so the same file twice stops nothing the second
time, and a choice the file's policy accepted the new purpose for stops nothing), and the caller
asks the operator to confirm them before it imports (`registry import --confirm-purpose-changes`).
Such a stop is its own version of the school's policy, after the file's, authored
`purpose-change:<declaration version>` as the portal's: the school's page says what stopped and why.

Locks, in the order every writer takes them (no deadlock on PostgreSQL): service rows (the
file's, then those of the file's policies, in id order), then policy rows, then the registry
state row last (serialise_checks, bump_generation), then what is checked under it.

Versions only go up. A new policy or service takes the version numbers of the file (so an export
of an imported registry reads the same); a changed one gets max(file, current + 1), with a line
in its history, so a receipt's version number never comes to mean something else. An id
removed earlier (removal.py) whose history was kept continues after that history instead; the
file's policies for such a service move with its declaration version. Such an id is created
only as the operator allowed (`registry import --reuse-removed-id`, id_reuse.py): otherwise the
import is refused whole, as `publisher add` refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, undefer

from broker.core.chain_ids import check_chain_id
from broker.core.chain_move import ChainMove, MoveRefused, check_imported_move
from broker.core.model import AssertionEncryption, Service
from broker.core.pseudonym_rotation import (
    ChainKeyVersion,
    RotationRefused,
    imported_window_problem,
)
from broker.core.sealed_secrets import SecretSeal
from broker.registry.admin_tables import PublisherRow
from broker.registry.chain_move_tables import ChainMoveRow
from broker.registry.chain_moves import replace_move_in
from broker.registry.changes import bump_generation, serialise_checks
from broker.registry.database import in_chunks, locked_row
from broker.registry.declaration_writes import replace_declarations
from broker.registry.errors import UnknownPublisher
from broker.registry.id_reuse import IdReuse, refuse_reuse
from broker.registry.import_encryption import EncryptionRefusal, refuse_unusable_encryption
from broker.registry.pseudonym_key_tables import PseudonymKeyVersionRow
from broker.registry.purpose_drops import purposes_changed_since, stop_release
from broker.registry.removal import kept_declaration_version, kept_policy_version
from broker.registry.sealed_only import seal_for
from broker.registry.shared_idps import (
    lock_idp,
    require_names_school,
    set_names_school,
    settle_shared,
)
from broker.registry.snapshot import PolicyEntry, SchoolEntry, ServiceEntry, Snapshot
from broker.registry.tables import (
    ChainRow,
    DeclarationRow,
    OidcClientRow,
    PolicyChangeRow,
    ReleasePolicyRow,
    SchoolOidcRow,
    SchoolRow,
    ServiceRow,
)

R = TypeVar("R", SchoolOidcRow, OidcClientRow)


@dataclass
class ImportReport:
    """What an import did (or, rolled back, would do), as "kind id" lines: ids of
    organisations and their entries, never personal data. `same`: entries already so."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    same: list[str] = field(default_factory=list)
    # Releases a new purpose stopped: attribute names by "<school>/<service>"; among them, the
    # ones the service requires (that school's logins to it are refused until it shares them).
    dropped: dict[str, frozenset[str]] = field(default_factory=dict)
    dropped_required: dict[str, frozenset[str]] = field(default_factory=dict)
    # Carried out (committed), not only worked out (SqlRegistry.import_snapshot).
    applied: bool = False

    # The one thing an import removes: the move record of a service it moves to another chain
    # (its window ended; an open one refuses the import), as `chain move` removes it.
    removed: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        return len(self.same)

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass(frozen=True)
class _Stamp:
    """When and by whom the import writes, and what it may take of an id used before."""

    at: datetime
    by: str
    reuse: IdReuse = IdReuse.REFUSED


@dataclass
class _Releases:
    """What each school's choice released before the import, per service the import may narrow
    (read under the service row's lock, before the import writes), and the attributes whose
    purpose changed for each choice (this import's declarations, or since a file's policy)."""

    before: dict[str, dict[str, frozenset[str]]] = field(default_factory=dict)
    new_purpose: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def read(self, session: Session, service_id: str) -> None:
        self.before.setdefault(service_id, _released(session, service_id))

    def released(self, school_id: str, service_id: str) -> frozenset[str]:
        return self.before.get(service_id, {}).get(school_id, frozenset())

    def note(self, school_ids: Iterable[str], service_id: str, names: Iterable[str]) -> None:
        for school_id in school_ids:
            self.new_purpose.setdefault((school_id, service_id), set()).update(names)

    def stopped(self, session: Session, report: ImportReport) -> None:
        """Fill `report.dropped`: released before the import and not after it, among the
        attributes whose purpose changed; the rest of a choice's change is the file's."""
        for service_id, before in sorted(self.before.items()):
            after = _released(session, service_id)
            required = set(
                session.scalars(
                    select(DeclarationRow.attribute).where(
                        DeclarationRow.service_id == service_id, DeclarationRow.required
                    )
                )
            )
            for school_id, was in sorted(before.items()):
                changed = self.new_purpose.get((school_id, service_id), set())
                gone = (was - after.get(school_id, frozenset())) & changed
                if gone:
                    pair = f"{school_id}/{service_id}"
                    report.dropped[pair] = frozenset(gone)
                    if gone & required:
                        report.dropped_required[pair] = frozenset(gone & required)


def _released(session: Session, service_id: str) -> dict[str, frozenset[str]]:
    rows = session.execute(
        select(ReleasePolicyRow.school_id, ReleasePolicyRow.attributes).where(
            ReleasePolicyRow.service_id == service_id
        )
    )
    return {school_id: frozenset(attributes) for school_id, attributes in rows}


Named = TypeVar("Named", ChainRow, PublisherRow)


def _named(
    session: Session,
    table: type[Named],
    kind: str,
    entry_id: str,
    name: str,
    report: ImportReport,
) -> None:
    """Add or rename an entry that is nothing but an id and a name (chains, publishers). A new
    chain's id is checked as `add_chain` checks it (core/chain_ids.py); one the registry holds
    stays as it is."""
    row = session.get(table, entry_id)
    if row is None:
        if table is ChainRow:
            check_chain_id(entry_id)
        session.add(table(id=entry_id, name=name))
        report.added.append(f"{kind} {entry_id}")
    elif row.name != name:
        row.name = name
        report.changed.append(f"{kind} {entry_id}")
    else:
        report.same.append(f"{kind} {entry_id}")


def apply_snapshot(
    session: Session,
    snapshot: Snapshot,
    stamp_at: datetime,
    by: str,
    seal: SecretSeal,
    encryption_refusal: EncryptionRefusal | None = None,
    reuse: IdReuse = IdReuse.REFUSED,
) -> ImportReport:
    """`seal`: schools' client secrets are compared opened and written sealed.
    `encryption_refusal`: the SAML check of services set to encrypt (import_encryption.py);
    None checks none (a caller with no SAML services, a benchmark). `reuse`: what a service
    the file creates under an id used before may take over (id_reuse.py)."""
    report = ImportReport()
    stamp = _Stamp(stamp_at, by, reuse)
    for chain in snapshot.chains:
        _named(session, ChainRow, "chain", chain.id, chain.name, report)
    for publisher in snapshot.publishers:
        _named(session, PublisherRow, "publisher", publisher.id, publisher.name, report)
    session.flush()
    # The file's IdPs locked, then checked again as the import leaves them (shared_idps.py):
    # the caller's checks read the registry before this transaction began.
    joined = [entry.school.idp_entity_id for entry in snapshot.schools]
    idps = [*joined, *snapshot.idps_naming_school]
    lock_idp(session, idps)
    _schools(session, snapshot.schools, report, seal)
    _idp_flags(session, snapshot, report)
    settle_shared(session, joined, idps)
    # A service registered again after a removal continues its declaration versions; the
    # file's policies for it name the file's numbers, moved on by the same amount here.
    moved: dict[str, int] = {}
    # The services the import moves to another pseudonym chain: as they were, and where to.
    left: dict[str, tuple[Service, str | None]] = {}
    # The file's services as the registry held them before the import (None: new to it), and
    # whether it held none at all (a rebuild from an export: check_imported_move).
    held: dict[str, Service | None] = {}
    empty = session.scalar(select(ServiceRow.id).limit(1)) is None
    releases = _Releases()
    for service in snapshot.services:
        moved[service.service.id], was = _service(session, service, stamp, report, releases)
        held[service.service.id] = was
        if was is not None and was.pseudonym_chain != service.service.pseudonym_chain:
            left[was.id] = (was, service.service.chain_id)
    # The service rows of the file's policies whose service the file does not hold, locked as
    # every writer of a service's policies locks it first: a portal purpose change waits for
    # this import or this import for it, and then reads its declaration history (_policy).
    for service_id in sorted({p.service_id for p in snapshot.policies} - set(moved)):
        if locked_row(session, ServiceRow.id, service_id):
            releases.read(session, service_id)
    session.flush()
    for policy in snapshot.policies:
        _policy(session, policy, moved.get(policy.service_id, 0), stamp, releases, report)
    session.flush()
    releases.stopped(session, report)
    if encryption_refusal is not None:
        # After the service and policy rows, taking the state row as the writers below do.
        refuse_unusable_encryption(session, snapshot.services, encryption_refusal, stamp_at)
    if left or snapshot.chain_moves or snapshot.key_versions:
        # Last, after every other row this import writes (their writers take the state row
        # after them, as bump_generation does), and before the key version rows: a key
        # rotation takes the state row first and then them, so the import takes them in the
        # same order (the other way round two could wait for each other on PostgreSQL). The
        # windows are checked as `chain move` checks them.
        serialise_checks(session)
        for record in snapshot.key_versions:
            _key_version(session, record, stamp, report)
        session.flush()
        for before, chain_id in left.values():
            _moved(session, before, chain_id, stamp, report)
        for move in snapshot.chain_moves:
            _chain_move(session, move, held, empty, stamp, report)
    if report.touched:
        # Every worker's view caches all of it, policies included (cached.py).
        bump_generation(session)
    return report


def _key_version(
    session: Session, record: ChainKeyVersion, stamp: _Stamp, report: ImportReport
) -> None:
    """Add a chain's key version the registry lacks, its window within the cap
    (`imported_window_problem`); never move one (the file was checked against the registry,
    this re-checks inside the transaction)."""
    row = session.get(PseudonymKeyVersionRow, record.chain)
    if row is not None:
        if row.to_record() != record:
            raise RotationRefused(f"chain {record.chain}'s key version changed during the import")
        report.same.append(f"pseudonym key version {record.chain}")
        return
    if (problem := imported_window_problem(record, stamp.at)) is not None:
        raise RotationRefused(f"chain {record.chain}: {problem}")
    row = PseudonymKeyVersionRow(chain=record.chain)
    row.hold(record, stamp.at, stamp.by)
    session.add(row)
    report.added.append(f"pseudonym key version {record.chain}")


def _moved(
    session: Session, before: Service, chain_id: str | None, stamp: _Stamp, report: ImportReport
) -> None:
    """A service the import puts in another pseudonym chain is moved as `chain move` moves it
    (without a window, unless the file brings its record): refused while its own move window
    or a key rotation window of either chain is open, since the previous pseudonym would
    then be ambiguous or end unannounced; its ended move record goes, said in the report."""
    _, ended = replace_move_in(session, before, chain_id, keys=None, window_days=None, now=stamp.at)
    if ended is not None:
        report.removed.append(f"chain move {before.id}")


def _chain_move(
    session: Session,
    move: ChainMove,
    held: dict[str, Service | None],
    registry_empty: bool,
    stamp: _Stamp,
    report: ImportReport,
) -> None:
    """Add a service's move record the registry lacks, as `check_imported_move` allows it
    (the import moves the service out of `from_chain`, or the service is new to a registry
    that held no service before the import; its window within the cap); never change one.
    Checked against the registry before, again here inside the transaction. `held`: the file's
    services as they were before the import (None: new); a service the file does not hold is
    as its row is (the import leaves it so)."""
    row = session.get(ChainMoveRow, move.service_id)
    if row is not None:
        if row.to_move() != move:
            raise MoveRefused(f"service {move.service_id}'s move record changed during the import")
        report.same.append(f"chain move {move.service_id}")
        return
    if move.service_id in held:
        was = held[move.service_id]
    elif (service := session.get(ServiceRow, move.service_id)) is not None:
        was = service.to_service()
    else:
        raise MoveRefused(f"service {move.service_id} was removed during the import")
    check_imported_move(move, was, stamp.at, registry_empty)
    session.add(ChainMoveRow.holding(move, stamp.at, stamp.by))
    report.added.append(f"chain move {move.service_id}")


def _schools(
    session: Session, entries: Sequence[SchoolEntry], report: ImportReport, seal: SecretSeal
) -> None:
    """The file's schools, in its order: the rows they name read `IN_CHUNK` at a time, not one
    round trip a school, and the new rows added together, so the next flush inserts them in
    batches (SQLAlchemy's insertmanyvalues) rather than one INSERT each."""
    ids = [entry.school.id for entry in entries]
    rows: dict[str, SchoolRow] = {}
    for chunk in in_chunks(ids):
        found = session.scalars(
            select(SchoolRow)
            .where(SchoolRow.id.in_(chunk))
            .options(undefer(SchoolRow.idp_metadata), undefer(SchoolRow.idp_metadata_url))
        )
        rows.update((row.id, row) for row in found)
    added: list[SchoolRow] = []
    for entry in entries:
        row = rows.get(entry.school.id)
        if row is None:
            # Kept: a second entry of the id (the command refuses one) updates this row.
            row = rows[entry.school.id] = SchoolRow.from_school(
                entry.school, entry.metadata, seal, entry.metadata_url
            )
            added.append(row)
            report.added.append(f"school {entry.school.id}")
        else:
            _school(session, row, entry, report, seal)
    session.add_all(added)


def _school(
    session: Session, row: SchoolRow, entry: SchoolEntry, report: ImportReport, seal: SecretSeal
) -> None:
    """A school the registry holds (`row`) as the file has it."""
    school = entry.school
    # A secret the registry cannot open (or refuses, in clear: sealed_only.py) compares
    # unequal: the file's replaces it.
    opening = seal_for(session, seal, [row.oidc.client_secret] if row.oidc else [])
    same_copy = row.idp_metadata == entry.metadata and row.idp_metadata_url == entry.metadata_url
    if row.to_school(opening) == school and same_copy:
        report.same.append(f"school {school.id}")
        return
    row.name = school.name
    row.idp_entity_id = school.idp_entity_id
    row.subject_attribute = school.subject_attribute
    row.use_eck_id = school.use_eck_id
    row.scopes = list(school.scopes)
    row.privacy_contact = school.privacy_contact
    row.town = school.town
    row.aliases = list(school.aliases)
    row.idp_metadata = entry.metadata
    row.idp_metadata_url = entry.metadata_url
    wanted = SchoolOidcRow.from_upstream(school.oidc, school.id, seal) if school.oidc else None
    row.oidc = _replaced(row.oidc, wanted)
    report.changed.append(f"school {school.id}")


def _idp_flags(session: Session, snapshot: Snapshot, report: ImportReport) -> None:
    """The file's word on whether each IdP's logins name their school (a school's: None, it
    says nothing; `idps_naming_school`: it must), reported once per IdP as changed or as
    already so. Every IdP two schools are on then requires it: shared_idps.settle_shared, which
    reads what that and the check after it need once."""
    session.flush()
    entries = snapshot.schools
    wanted = {e.school.id: e.idp_names_school for e in entries if e.idp_names_school is not None}
    # (entity id, whether it changed, whether it names the school now), in the order written.
    written = [
        (*set_names_school(session, school_id, names), names) for school_id, names in wanted.items()
    ]
    written += [
        (idp, require_names_school(session, idp), True) for idp in snapshot.idps_naming_school
    ]
    changed_idps: dict[str, bool] = {}
    for entity_id, changed, names in written:
        if changed:
            report.changed.append(f"IdP {entity_id} {'names' if names else 'need not name'} school")
        changed_idps[entity_id] = changed_idps.get(entity_id, False) or changed
    report.same += [f"IdP {idp}" for idp, changed in changed_idps.items() if not changed]


def _service(
    session: Session,
    entry: ServiceEntry,
    stamp: _Stamp,
    report: ImportReport,
    releases: _Releases,
) -> tuple[int, Service | None]:
    """Add or update one service; returns how far its declaration version was moved past the
    file's (a service registered again after a removal), else 0, and the service as the
    registry held it before the import (None: new to it)."""
    service = entry.service
    # Locked (database.locked_row), as `add_service` does: the organisation's removal waits for
    # this import, or this import for the removal and then stops here, clearly, instead of on
    # the foreign key (revision 0009). The caller checked it exists; it may have gone since.
    if service.publisher_id is not None and not locked_row(
        session, PublisherRow.id, service.publisher_id
    ):
        raise UnknownPublisher(
            service.publisher_id,
            f"service {service.id} names it, and it was removed after the file was checked; "
            "nothing was imported",
        )
    # Locked as read: the chain it is in now is the one a move from it is checked against
    # (a `chain move` committed since the file was checked is seen here, not overwritten).
    row = (
        session.get(
            ServiceRow,
            service.id,
            options=[
                undefer(ServiceRow.sp_metadata),
                undefer(ServiceRow.sp_metadata_url),
                joinedload(ServiceRow.declarations),
            ],
            populate_existing=True,
        )
        if locked_row(session, ServiceRow.id, service.id)
        else None
    )
    if row is not None:
        # What its schools released before the import, read under the lock.
        releases.read(session, service.id)
    if not entry.encryption_given:
        # The file does not say: the setting as the locked row has it now, not as it was when
        # the file was read (a `publisher update --assertion-encryption` since then stays).
        service = replace(service, assertion_encryption=_encryption_kept(row))
    version: int | None = service.declaration_version
    moved = 0
    new = row is None
    before = None
    if row is None:
        # An id used before only as the operator allowed (id_reuse.py); then, registered again
        # after a removal, the kept history's versions are not reused.
        refuse_reuse(session, service, stamp.reuse)
        kept = kept_declaration_version(session, service.id)
        version = max(service.declaration_version, kept + 1)
        moved = version - service.declaration_version
        row = ServiceRow(id=service.id, declarations=[])
        report.added.append(f"service {service.id}")
    else:
        before = row.to_service()
        same_copy = (row.sp_metadata, row.sp_metadata_url) == (entry.metadata, entry.metadata_url)
        if _same_service(before, service) and same_copy:
            report.same.append(f"service {service.id}")
            return 0, before
        report.changed.append(f"service {service.id}")
        same = before.declarations == service.declarations
        version = None if same else max(service.declaration_version, row.declaration_version + 1)
    row.name = service.name
    row.entity_id = service.entity_id
    row.chain_id = service.chain_id
    row.naming = service.naming.value
    row.protocol = service.protocol.value
    row.sp_metadata = entry.metadata
    row.sp_metadata_url = entry.metadata_url
    row.approved = service.approved
    row.publisher_id = service.publisher_id
    row.assertion_encryption = service.assertion_encryption.value
    wanted = OidcClientRow.from_client(service.oidc) if service.oidc else None
    row.oidc = _replaced(row.oidc, wanted)
    session.add(row)
    if version is not None:
        replaced = replace_declarations(
            session, row, service.declarations, version, (stamp.at, stamp.by)
        )
        if new:
            # The file's re-confirmation point, moved with its versions: the file's policies
            # name the declaration versions they accepted against it.
            row.reconfirm_version = min(version, service.reconfirm_version + moved)
        releases.note(
            (school_id for school_id, _ in replaced.dropped), service.id, replaced.purpose_changed
        )
    return moved, before


def _encryption_kept(row: ServiceRow | None) -> AssertionEncryption:
    """What a file that does not name the setting leaves: the row's, `auto` for a new one."""
    return AssertionEncryption(row.assertion_encryption) if row else AssertionEncryption.AUTO


def _same_service(current: Service, wanted: Service) -> bool:
    if current.declarations == wanted.declarations:
        # The declarations are what count; an older number for the same ones changes nothing.
        wanted = replace(
            wanted,
            declaration_version=current.declaration_version,
            reconfirm_version=current.reconfirm_version,
        )
    return current == wanted


def _policy(
    session: Session,
    entry: PolicyEntry,
    moved: int,
    stamp: _Stamp,
    releases: _Releases,
    report: ImportReport,
) -> None:
    """Write the file's choice. An attribute it chose under an older purpose is not released:
    one the school released before the import stops in a version of its own after the file's
    (`purpose-change:<the version that changed it>`, as the portal records it); one it did not
    is simply left out of the file's version."""
    accepted = entry.declaration_version + moved
    changed = purposes_changed_since(session, entry.service_id, accepted)
    stopped = entry.attributes & changed.keys()
    releases.note([entry.school_id], entry.service_id, stopped)
    notice = stopped & releases.released(entry.school_id, entry.service_id)
    names = sorted(entry.attributes - stopped)
    row = session.get(ReleasePolicyRow, (entry.school_id, entry.service_id))
    label = f"policy {entry.school_id}/{entry.service_id}"
    if row is None:
        # Read before the new row joins the session: the query would flush it half-filled.
        kept = kept_policy_version(session, entry.school_id, entry.service_id)
        version = max(entry.version, kept + 1) if kept else entry.version
        row = ReleasePolicyRow(school_id=entry.school_id, service_id=entry.service_id)
        session.add(row)
        report.added.append(label)
    elif (
        sorted(row.attributes) == names
        and row.active == entry.active
        and row.declaration_version == accepted
    ):
        report.same.append(label)
        return
    else:
        version = max(entry.version, row.version + 1)
        report.changed.append(label)
    row.version = version
    row.attributes = sorted(set(names) | notice)
    row.active = entry.active
    row.declaration_version = accepted
    row.changed_at = stamp.at
    row.changed_by = stamp.by
    # The history stays append-only: the imported choice is one more version of it.
    session.add(PolicyChangeRow.recording(row))
    for purpose_version in sorted({changed[name] for name in notice}):
        session.flush()
        taken = frozenset(n for n in notice if changed[n] == purpose_version)
        stop_release(session, row, taken, purpose_version, stamp.at)


def _replaced(current: R | None, wanted: R | None) -> R | None:
    """Keep the existing child row when it already says the same (no pointless DELETE/INSERT)."""
    if current is None or wanted is None:
        return wanted
    for column in type(current).__table__.columns:
        if not column.primary_key:
            setattr(current, column.key, getattr(wanted, column.key))
    return current
