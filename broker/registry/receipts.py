"""`SqlReceiptBook`: receipts in the registry's database, one hash chain per school.

Appending takes the school's chain row as a lock (`UPDATE … RETURNING` on PostgreSQL holds the
row lock until commit; SQLite's write transaction is `BEGIN IMMEDIATE`), so concurrent logins at
one school serialise on that row only, and logins at different schools never wait for each
other. Every read the portals and the my-data page make is on an index; the school portal's
(`find`, `each`, `totals`, `named`) may still pass over all of a school's receipts, millions
under a year's retention, and run on the `patient` engine: the portal's longer bound, not the
login path's (database.py). `named`, and `totals` without a date or student filter, read the
(school_id, service_id, attributes) index only, never the table (revision 0025).
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broker.core.errors import UnknownSchool, UnknownService
from broker.core.receipts import (
    GENESIS_HASH,
    ChainAnchor,
    ChainBreak,
    Receipt,
    ReceiptContent,
    ReceiptHistory,
    ReceiptKeys,
    verify_chain,
)
from broker.registry.changes import bump_generation
from broker.registry.database import (
    locked_row,
    open_engine,
    patient,
    session_on,
    transaction_on,
    writer,
)
from broker.registry.receipt_tables import (
    NoticePreferenceRow,
    ReceiptChainRow,
    ReceiptRow,
    attributes_column,
    column_attributes,
    receipt_values,
)
from broker.registry.tables import SchoolRow, ServiceRow

VERIFY_BATCH = 1000

# The login path's three statements, built once, on the Core tables: no statement building and
# no ORM bulk-update machinery per login (docs/performance.md). Bound names differ from the
# column names, which SQLAlchemy reserves for the SET clause.
_CHAINS = cast(Table, ReceiptChainRow.__table__)
_ADVANCE_HEAD = (
    update(_CHAINS)
    .where(_CHAINS.c.school_id == bindparam("b_school"))
    .values(head_seq=_CHAINS.c.head_seq + 1)
    .returning(_CHAINS.c.head_seq, _CHAINS.c.head_hash, _CHAINS.c.anchor_seq, _CHAINS.c.anchor_hash)
)
_SET_HEAD = (
    update(_CHAINS)
    .where(_CHAINS.c.school_id == bindparam("b_school"))
    .values(head_hash=bindparam("b_head_hash"), seal=bindparam("b_seal"))
)
_RECEIPTS = cast(Table, ReceiptRow.__table__)
_INSERT_RECEIPT = insert(_RECEIPTS)
# PostgreSQL: the new head and the receipt in one statement (a data-modifying WITH runs once and
# to completion whether or not the INSERT reads it), one round trip fewer per login. SQLite has
# no data-modifying WITH: it sends the two statements.
_RECEIPT_COLUMNS = tuple(column.name for column in _RECEIPTS.c if column.name != "id")
_SET_HEAD_AND_INSERT = (
    insert(_RECEIPTS)
    .values({name: bindparam(f"r_{name}") for name in _RECEIPT_COLUMNS})
    .add_cte(_SET_HEAD.cte("new_head"))
)
_NEW_CHAIN = insert(_CHAINS)
NOTICE_EVERY_SESSION = "session"
NOTICE_ON_CHANGES = "changes"


@dataclass(frozen=True)
class ReceiptQuery:
    """A school's filter in its portal; times are Unix seconds, `until` exclusive."""

    school_id: str
    since: int | None = None
    until: int | None = None
    service_id: str | None = None
    attribute: str | None = None
    # Student codes: starts of receipt subjects (at least 12 hex characters each). One student
    # has a code per pseudonym chain (and an older one, COMPAT(receipt-subject-v1)): a receipt
    # matches when its subject starts with any of them.
    students: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChainReport:
    school_id: str
    receipts: int
    problem: ChainBreak | None
    # The chain record's newest receipt: `receipts verify` prints it, so a log of daily runs
    # shows a head that went backwards (an older database restored, newest receipts gone).
    head: ChainAnchor | None = None


class SqlReceiptBook:
    """Implements `broker.core.ports.ReceiptBook` on the registry's database."""

    def __init__(self, engine: Engine, keys: ReceiptKeys) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._portal_reader = patient(engine)
        self._snapshot_reader = (
            engine.execution_options(isolation_level="REPEATABLE READ")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self.keys = keys
        self._one_write_statement = engine.dialect.name == "postgresql"

    @classmethod
    def open(cls, url: str, keys: ReceiptKeys) -> SqlReceiptBook:
        return cls(open_engine(url), keys)

    def close(self) -> None:
        self._engine.dispose()

    # -- the login path ---------------------------------------------------------------------
    def append(self, content: ReceiptContent) -> Receipt:
        """Write one receipt at the end of its school's chain (one transaction, on a Core
        connection: the same statements as an ORM session would send, without its per-call
        bookkeeping; docs/performance.md)."""
        for attempt in range(2):
            try:
                with transaction_on(self._writer) as connection:
                    seq, previous, anchor = self._lock_head(connection, content.school_id)
                    receipt = Receipt(
                        content, seq, previous, self.keys.seal(content, seq, previous)
                    )
                    head = ChainAnchor(seq, receipt.hash)
                    new_head: dict[str, str | int | None] = {
                        "b_school": content.school_id,
                        "b_head_hash": receipt.hash,
                        "b_seal": self.keys.seal_record(content.school_id, head, anchor),
                    }
                    values = receipt_values(receipt)
                    if self._one_write_statement:
                        new_head.update((f"r_{name}", values[name]) for name in values)
                        connection.execute(_SET_HEAD_AND_INSERT, new_head)
                    else:
                        connection.execute(_SET_HEAD, new_head)
                        connection.execute(_INSERT_RECEIPT, values)
                    return receipt
            except IntegrityError:
                # Two first-ever receipts of one school raced to create its chain row: the
                # loser starts over and finds the row.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _lock_head(self, connection: Connection, school_id: str) -> tuple[int, str, ChainAnchor]:
        """Advance the school's head: (new sequence number, previous hash, the anchor)."""
        advanced = connection.execute(_ADVANCE_HEAD, {"b_school": school_id}).one_or_none()
        if advanced is not None:
            seq, previous, anchor_seq, anchor_hash = advanced
            return int(seq), str(previous), ChainAnchor(int(anchor_seq), str(anchor_hash))
        connection.execute(
            _NEW_CHAIN,
            {
                "school_id": school_id,
                "head_seq": 1,
                "head_hash": GENESIS_HASH,
                "anchor_seq": 0,
                "anchor_hash": GENESIS_HASH,
                "seal": "",  # sealed by the caller with the first receipt's hash
            },
        )
        return 1, GENESIS_HASH, ChainAnchor()

    def latest_for(
        self, school_id: str, subjects: tuple[str, ...], service_id: str
    ) -> Receipt | None:
        """The student's newest receipt for the service *at this school* (an ECK iD subject is
        the same at every school, and another school's release says nothing about this one).
        `subjects`: the service's chain's subject, and the older subject of receipts written
        before per-chain subjects (COMPAT(receipt-subject-v1)); both on the subject index."""
        with session_on(self._engine) as session:
            row = session.scalars(
                select(ReceiptRow)
                .where(
                    ReceiptRow.subject.in_(subjects),
                    ReceiptRow.service_id == service_id,
                    ReceiptRow.school_id == school_id,
                )
                .order_by(ReceiptRow.id.desc())
                .limit(1)
            ).one_or_none()
            return row.to_receipt() if row is not None else None

    # -- notice preferences (the login path reads them through the worker's cached view) -----
    def notice_mode(self, school_id: str, service_id: str) -> str:
        with session_on(self._engine) as session:
            row = session.get(NoticePreferenceRow, (school_id, service_id))
            return row.mode if row is not None else NOTICE_EVERY_SESSION

    def notice_modes(self, school_id: str) -> dict[str, str]:
        with session_on(self._engine) as session:
            rows = session.scalars(
                select(NoticePreferenceRow).where(NoticePreferenceRow.school_id == school_id)
            )
            return {row.service_id: row.mode for row in rows}

    def set_notice_mode(self, school_id: str, service_id: str, mode: str) -> None:
        if mode not in (NOTICE_EVERY_SESSION, NOTICE_ON_CHANGES):
            raise ValueError(f"notice mode must be {NOTICE_EVERY_SESSION} or {NOTICE_ON_CHANGES}")
        with session_on(self._writer) as session:
            # Both rows locked (database.locked_row): a setting that races the removal of its
            # school or service waits for it and then refuses, instead of failing (a 500) or
            # leaving a setting that would come back with a service registered again.
            if not locked_row(session, SchoolRow.id, school_id):
                raise UnknownSchool(f"no school with id {school_id!r}")
            if not locked_row(session, ServiceRow.id, service_id):
                raise UnknownService(f"no service with id {service_id!r}")
            row = session.get(NoticePreferenceRow, (school_id, service_id))
            if row is None:
                session.add(
                    NoticePreferenceRow(school_id=school_id, service_id=service_id, mode=mode)
                )
            else:
                row.mode = mode
            bump_generation(session)  # every worker's view caches the modes (cached.py)

    # -- reading: the school's portal and the my-data page -----------------------------------
    def find(self, query: ReceiptQuery, *, limit: int = 500) -> list[Receipt]:
        """Newest first."""
        with session_on(self._portal_reader) as session:
            statement = _filtered(select(ReceiptRow), query).order_by(ReceiptRow.seq.desc())
            rows = session.scalars(statement.limit(limit))
            return [row.to_receipt() for row in rows]

    def each(self, query: ReceiptQuery) -> Iterator[Receipt]:
        """Every matching receipt, oldest first, read in batches (exports)."""
        after = 0
        while True:
            with session_on(self._portal_reader) as session:
                statement = (
                    _filtered(select(ReceiptRow), query)
                    .where(ReceiptRow.seq > after)
                    .order_by(ReceiptRow.seq)
                    .limit(VERIFY_BATCH)
                )
                batch = [row.to_receipt() for row in session.scalars(statement)]
            yield from batch
            if len(batch) < VERIFY_BATCH:
                return
            after = batch[-1].seq

    def totals(self, query: ReceiptQuery) -> dict[str, int]:
        """Receipts per service for the filter."""
        with session_on(self._portal_reader) as session:
            statement = _filtered(select(ReceiptRow.service_id, func.count()), query).group_by(
                ReceiptRow.service_id
            )
            return {str(service): int(count) for service, count in session.execute(statement)}

    def named(self, school_id: str) -> dict[str, frozenset[str]]:
        """Every service `school_id`'s receipts name, with the attributes they released to it:
        the filter's lists of the school's own history, a removed service's included. One pass
        over the school's receipts, as `totals` makes for the page already."""
        statement = (
            select(ReceiptRow.service_id, ReceiptRow.attributes)
            .where(ReceiptRow.school_id == school_id)
            .distinct()
        )
        named: dict[str, set[str]] = {}
        with session_on(self._portal_reader) as session:
            for service_id, attributes in session.execute(statement):
                released = named.setdefault(str(service_id), set())
                released.update(column_attributes(attributes))
        return {service_id: frozenset(released) for service_id, released in named.items()}

    def history(self, subjects: Collection[str]) -> list[ReceiptHistory]:
        """One student's receipts under any of their subjects, counted per subject, school,
        platform and set of released attributes, the newest group first (the my-data page): one
        grouped statement on the subject index, so a student with thousands of receipts gets
        every platform and the true counts, not the newest few hundred receipts."""
        if not subjects:
            return []
        last = func.max(ReceiptRow.issued_at)
        statement = (
            select(
                ReceiptRow.subject,
                ReceiptRow.school_id,
                ReceiptRow.service_id,
                ReceiptRow.attributes,
                func.count(),
                func.min(ReceiptRow.issued_at),
                last,
            )
            .where(ReceiptRow.subject.in_(sorted(subjects)))
            .group_by(
                ReceiptRow.subject,
                ReceiptRow.school_id,
                ReceiptRow.service_id,
                ReceiptRow.attributes,
            )
            .order_by(last.desc(), ReceiptRow.service_id)
        )
        with session_on(self._engine) as session:
            return [
                ReceiptHistory(
                    subject=str(subject),
                    school_id=str(school_id),
                    service_id=str(service_id),
                    attributes=column_attributes(attributes),
                    count=int(count),
                    first=int(first),
                    last=int(newest),
                )
                for subject, school_id, service_id, attributes, count, first, newest in (
                    session.execute(statement)
                )
            ]

    def present_subjects(
        self, subjects: Collection[str], *, school_id: str | None = None
    ) -> list[str]:
        """Which of `subjects` (a student's, one per chain a receipt can name) some receipt
        carries, at `school_id` when given: one probe per subject on the subject index, so a
        reader keeps the few subjects that find something instead of them all."""
        if not subjects:
            return []
        statement = select(ReceiptRow.subject).where(ReceiptRow.subject.in_(sorted(subjects)))
        if school_id is not None:
            statement = statement.where(ReceiptRow.school_id == school_id)
        with session_on(self._engine) as session:
            return sorted(set(session.scalars(statement.distinct())))

    # -- integrity and retention ---------------------------------------------------------------
    def school_ids(self) -> list[str]:
        with session_on(self._engine) as session:
            chained = set(session.scalars(select(ReceiptChainRow.school_id)))
            # A receipt whose chain row was deleted must still be reported, not skipped.
            chained |= set(session.scalars(select(ReceiptRow.school_id).distinct()))
            return sorted(chained)

    def verify(self, school_id: str) -> ChainReport:
        """Check one school's chain record and its receipts from the anchor to the head.

        One read transaction (REPEATABLE READ on PostgreSQL; a WAL read snapshot on SQLite), so
        logins and a prune running meanwhile cannot make an intact chain look broken."""
        with session_on(self._snapshot_reader) as session:
            chain = session.get(ReceiptChainRow, school_id)
            if chain is None:
                return ChainReport(school_id, 0, ChainBreak(school_id, 0, "chain record missing"))
            head, anchor = chain.head(), chain.anchor()
            if not hmac.compare_digest(chain.seal, self.keys.seal_record(school_id, head, anchor)):
                return ChainReport(
                    school_id, 0, ChainBreak(school_id, head.seq, "chain record altered")
                )
            count = 0
            last = anchor
            for batch in _batches(session, school_id, anchor.seq, head.seq):
                problem = verify_chain(self.keys, school_id, last, batch)
                if problem is not None:
                    return ChainReport(school_id, count, problem, head)
                count += len(batch)
                last = ChainAnchor(batch[-1].seq, batch[-1].hash)
        if last != head:
            # The newest receipts were removed: the tail is missing.
            return ChainReport(
                school_id,
                count,
                ChainBreak(school_id, last.seq + 1, "newest receipts missing"),
                head,
            )
        return ChainReport(school_id, count, None, head)

    def prune(self, before: int) -> dict[str, int]:
        """Delete receipts issued before `before` (Unix seconds), per school, moving each
        school's anchor to the last deleted receipt. Returns the count deleted per school."""
        deleted: dict[str, int] = {}
        for school_id in self.school_ids():
            with session_on(self._writer) as session:
                last = session.execute(
                    select(ReceiptRow.seq, ReceiptRow.hash)
                    .where(ReceiptRow.school_id == school_id, ReceiptRow.issued_at < before)
                    .order_by(ReceiptRow.seq.desc())
                    .limit(1)
                ).one_or_none()
                if last is None:
                    continue
                # Up to the last old receipt by sequence, so the kept part stays contiguous
                # even if a clock step wrote an older time after a newer one.
                result = cast(
                    "CursorResult[Any]",
                    session.execute(
                        delete(ReceiptRow).where(
                            ReceiptRow.school_id == school_id, ReceiptRow.seq <= last[0]
                        )
                    ),
                )
                chain = session.get(ReceiptChainRow, school_id)
                if chain is not None:
                    anchor = ChainAnchor(int(last[0]), str(last[1]))
                    chain.anchor_seq, chain.anchor_hash = anchor.seq, anchor.hash
                    chain.seal = self.keys.seal_record(school_id, chain.head(), anchor)
                deleted[school_id] = result.rowcount
        return deleted

    def oldest_kept(self) -> int | None:
        """When the oldest receipt still kept was issued (Unix seconds; None without one): the
        earliest of each school's first receipt after its anchor, found through the unique
        (school_id, seq) index, one lookup per school and never a scan of every receipt, so
        /metrics can ask it at every scrape (web/receipt_metrics.py)."""
        first_kept = and_(
            ReceiptRow.school_id == ReceiptChainRow.school_id,
            ReceiptRow.seq == ReceiptChainRow.anchor_seq + 1,
        )
        with session_on(self._engine) as session:
            found = session.scalar(
                select(func.min(ReceiptRow.issued_at))
                .select_from(ReceiptChainRow)
                .join(ReceiptRow, first_kept)
            )
        return None if found is None else int(found)


def _batches(session: Session, school_id: str, after: int, until: int) -> Iterator[list[Receipt]]:
    """Receipts `after` < seq <= `until`, in sequence order, a batch at a time."""
    while True:
        rows = session.scalars(
            select(ReceiptRow)
            .where(
                ReceiptRow.school_id == school_id,
                ReceiptRow.seq > after,
                ReceiptRow.seq <= until,
            )
            .order_by(ReceiptRow.seq)
            .limit(VERIFY_BATCH)
        )
        batch = [row.to_receipt() for row in rows]
        if not batch:
            return
        yield batch
        after = batch[-1].seq


def _filtered(statement: Any, query: ReceiptQuery) -> Any:
    statement = statement.where(ReceiptRow.school_id == query.school_id)
    if query.since is not None:
        statement = statement.where(ReceiptRow.issued_at >= query.since)
    if query.until is not None:
        statement = statement.where(ReceiptRow.issued_at < query.until)
    if query.service_id:
        statement = statement.where(ReceiptRow.service_id == query.service_id)
    if query.students:
        statement = statement.where(
            or_(*(ReceiptRow.subject.startswith(code, autoescape=True) for code in query.students))
        )
    if query.attribute:
        pattern = attributes_column((query.attribute,))
        statement = statement.where(ReceiptRow.attributes.contains(pattern, autoescape=True))
    return statement
