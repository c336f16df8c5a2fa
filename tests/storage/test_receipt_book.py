"""The receipt book on SQLite and PostgreSQL: concurrent appends keep one unbroken chain per
school, tampering in the database is found by `verify` (and `ketenbroker receipts verify`), and
pruning keeps the rest verifiable."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from dataclasses import replace
from hashlib import sha256

import pytest
from sqlalchemy import delete, update

from broker.core.errors import UnknownSchool, UnknownService
from broker.core.model import Chain, Release, School, Service, UpstreamIdentity
from broker.core.receipts import ReceiptContent, ReceiptKeys, receipt_chains, receipt_content
from broker.registry import SqlRegistry
from broker.registry.database import session_on
from broker.registry.receipt_tables import ReceiptChainRow, ReceiptRow
from broker.registry.receipts import ReceiptQuery, SqlReceiptBook

KEYS = ReceiptKeys.from_key(bytes(range(32)))
SCHOOLS = (School("99XX00", "A", "https://a.example"), School("99YY00", "B", "https://b.example"))
SERVICES = (
    Service("leesplank", "Leesplank", "https://l.example", "leermiddelen"),
    Service("rekenwereld", "Rekenwereld", "https://r.example", None),
)


def content(
    school: School = SCHOOLS[0],
    service: Service = SERVICES[0],
    student: str = "leerling-1",
    at: int = 1_800_000_000,
    attributes: tuple[str, ...] = ("given_name",),
) -> ReceiptContent:
    release = Release("p" * 64, {a: ("v",) for a in attributes}, 2)
    identity = UpstreamIdentity(school.id, student)
    return receipt_content(
        KEYS, issued_at=at, school=school, service=service, identity=identity, release=release
    )


@pytest.fixture
def book(sql_registry: SqlRegistry) -> Iterator[SqlReceiptBook]:
    yield sql_registry.receipt_book(KEYS)


def _engine(book: SqlReceiptBook):  # type: ignore[no-untyped-def]
    return book._engine


def test_concurrent_appends_form_one_chain_per_school(book: SqlReceiptBook) -> None:
    errors: list[BaseException] = []

    def write(school: School) -> None:
        try:
            for i in range(10):
                book.append(content(school, student=f"s{i}"))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(SCHOOLS[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for school in SCHOOLS:
        report = book.verify(school.id)
        assert report.problem is None and report.receipts == 30
        seqs = [r.seq for r in book.each(ReceiptQuery(school.id))]
        assert seqs == list(range(1, 31))


def test_filters_totals_and_subject_lookups(book: SqlReceiptBook) -> None:
    book.append(content(at=100, attributes=("given_name", "groups")))
    book.append(content(service=SERVICES[1], at=200, attributes=()))
    book.append(content(student="leerling-2", at=300, attributes=("groups",)))
    book.append(content(SCHOOLS[1], at=400))
    school = SCHOOLS[0].id
    assert len(book.find(ReceiptQuery(school))) == 3
    assert [r.content.issued_at for r in book.find(ReceiptQuery(school, since=150))] == [300, 200]
    assert len(book.find(ReceiptQuery(school, until=200))) == 1
    assert len(book.find(ReceiptQuery(school, service_id="rekenwereld"))) == 1
    assert [r.content.issued_at for r in book.find(ReceiptQuery(school, attribute="groups"))] == [
        300,
        100,
    ]
    # `group` is not `groups`: the attribute filter matches whole names only.
    assert book.find(ReceiptQuery(school, attribute="group")) == []
    assert book.totals(ReceiptQuery(school)) == {"leesplank": 2, "rekenwereld": 1}
    # The services this school's receipts name, with what they released (its filter's lists).
    assert book.named(school) == {
        "leesplank": frozenset({"given_name", "groups"}),
        "rekenwereld": frozenset(),
    }
    assert book.named(SCHOOLS[1].id) == {"leesplank": frozenset({"given_name"})}
    # Leesplank is in a chain, Rekenwereld in none: one student, two subjects.
    subject, chainless = content().subject, content(service=SERVICES[1]).subject
    assert subject != chainless
    assert [(h.service_id, h.count, h.last) for h in book.history([subject])] == [
        ("leesplank", 1, 100)
    ]
    assert [(h.service_id, h.count, h.last) for h in book.history([subject, chainless])] == [
        ("rekenwereld", 1, 200),
        ("leesplank", 1, 100),
    ]
    assert book.present_subjects([subject, chainless, "0" * 64]) == sorted([subject, chainless])
    assert book.present_subjects([subject, chainless], school_id=SCHOOLS[1].id) == []
    latest = book.latest_for(SCHOOLS[0].id, (subject,), "leesplank")
    assert latest is not None and latest.content.issued_at == 100
    # The same subject at another school (an ECK iD school) is not this school's history.
    assert book.latest_for(SCHOOLS[1].id, (subject,), "leesplank") is None
    # A student code (the start of a subject) finds that chain's receipts; several codes
    # find the receipts of every chain they stand for.
    assert len(book.find(ReceiptQuery(school, students=(subject[:16],)))) == 1
    both = ReceiptQuery(school, students=(subject[:16], chainless[:16]))
    assert [r.content.issued_at for r in book.find(both)] == [200, 100]
    assert book.find(ReceiptQuery(school, students=("0" * 16,))) == []


def test_receipts_with_the_old_subject_are_found_beside_per_chain_ones(
    book: SqlReceiptBook,
) -> None:
    """COMPAT(receipt-subject-v1): a receipt filed before per-chain subjects (its subject the
    same in every chain, as that release computed it) stays in the chain, and the readers find
    it with the student's per-chain receipts."""
    old = replace(content(at=100), subject=_old_subject("school:99XX00", "leerling-1"))
    book.append(old)
    book.append(content(at=200))
    book.append(content(service=SERVICES[1], at=300))
    book.append(content(student="leerling-2", at=400))
    assert book.verify(SCHOOLS[0].id).problem is None
    student = UpstreamIdentity(SCHOOLS[0].id, "leerling-1")
    chains = receipt_chains(["leermiddelen"], [s.id for s in SERVICES])
    subjects = KEYS.subjects(SCHOOLS[0], student, chains)
    assert _old_subject("school:99XX00", "leerling-1") in subjects
    found = book.present_subjects(subjects)
    assert len(found) == 3  # old, leermiddelen, service:rekenwereld
    assert [(h.count, h.last) for h in book.history(found)] == [(1, 300), (1, 200), (1, 100)]
    # The notice's "first visit and changes": the old receipt is the last one for Leesplank
    # until a new one is filed.
    only_old = (content().subject, KEYS.legacy_subject(SCHOOLS[0], student))
    latest = book.latest_for(SCHOOLS[0].id, only_old, "leesplank")
    assert latest is not None and latest.content.issued_at == 200
    with session_on(_engine(book)) as session:
        session.execute(delete(ReceiptRow).where(ReceiptRow.issued_at == 200))
    latest = book.latest_for(SCHOOLS[0].id, only_old, "leesplank")
    assert latest is not None and latest.content.subject == old.subject


def test_the_registry_names_every_chain_a_receipt_can_name(sql_registry: SqlRegistry) -> None:
    """Registered chains and services, and removed ones (their receipts outlive them)."""
    for chain in (Chain("leermiddelen", "Leermiddelen"), Chain("toetsen", "Toetsen")):
        sql_registry.add_chain(chain)
    sql_registry.add_service(SERVICES[0], "<sp/>")
    sql_registry.add_service(SERVICES[1], "<sp/>")
    sql_registry.remove_service("rekenwereld", apply=True, removed_by="test")
    sql_registry.remove_chain("toetsen", apply=True, removed_by="test")
    assert sql_registry.receipt_chains() == {
        "leermiddelen",
        "toetsen",
        "service:leesplank",
        "service:rekenwereld",
    }


def _old_subject(namespace: str, subject: str) -> str:
    """The subject as the release before 2026-11-30 computed it, apart from the broker's code."""

    def field(value: str) -> bytes:
        return len(value.encode()).to_bytes(4, "big") + value.encode()

    key = hmac.new(bytes(range(32)), field("ketenbroker/receipt-subject/v1"), sha256).digest()
    return hmac.new(key, field(namespace) + field(subject), sha256).hexdigest()


@pytest.mark.parametrize(
    ("attack", "seq", "reason"),
    [
        ("alter", 3, "altered"),
        ("delete-middle", 4, "missing"),
        ("delete-newest", 6, "newest receipts missing"),
        ("delete-newest-and-move-head", 5, "chain record altered"),
        ("delete-oldest-and-move-anchor", 5, "chain record altered"),
    ],
)
def test_tampering_in_the_database_is_found(
    book: SqlReceiptBook, attack: str, seq: int, reason: str
) -> None:
    for i in range(5):
        book.append(content(student=f"s{i}"))
    school = SCHOOLS[0].id
    fourth = book.find(ReceiptQuery(school), limit=5)[1]  # seq 4
    with session_on(_engine(book)) as session:
        where = (ReceiptRow.school_id == school, ReceiptRow.seq == (5 if "newest" in attack else 3))
        if attack == "alter":
            session.execute(update(ReceiptRow).where(*where).values(attributes=","))
        elif attack == "delete-oldest-and-move-anchor":
            # Whoever can write the database cuts the oldest receipts and moves the anchor up:
            # the hashes are there to copy, but the chain record's seal is not.
            session.execute(delete(ReceiptRow).where(ReceiptRow.seq <= 4))
            session.execute(update(ReceiptChainRow).values(anchor_seq=4, anchor_hash=fourth.hash))
        else:
            session.execute(delete(ReceiptRow).where(*where))
            if attack == "delete-newest-and-move-head":
                session.execute(update(ReceiptChainRow).values(head_seq=4, head_hash=fourth.hash))
    report = book.verify(school)
    expected = seq if attack != "delete-newest" else 5
    if "move-head" in attack:
        expected = 4
    assert report.problem is not None
    assert report.problem.seq == expected and reason in report.problem.reason


def test_pruning_keeps_the_chain_verifiable_and_removing_the_oldest_kept_shows(
    book: SqlReceiptBook,
) -> None:
    for i in range(6):
        book.append(content(at=1000 + i))
    book.append(content(SCHOOLS[1], at=5000))
    assert book.prune(before=1003) == {SCHOOLS[0].id: 3}
    report = book.verify(SCHOOLS[0].id)
    assert report.problem is None and report.receipts == 3
    assert book.verify(SCHOOLS[1].id).problem is None
    with session_on(_engine(book)) as session:
        session.execute(
            delete(ReceiptRow).where(ReceiptRow.school_id == SCHOOLS[0].id, ReceiptRow.seq == 4)
        )
    problem = book.verify(SCHOOLS[0].id).problem
    assert problem is not None and problem.seq == 5
    # New receipts continue the chain after pruning.
    assert book.prune(before=10_000)[SCHOOLS[0].id] == 2
    book.append(content(at=20_000))
    assert book.verify(SCHOOLS[0].id).problem is None


def test_the_oldest_kept_receipt_follows_each_schools_anchor(book: SqlReceiptBook) -> None:
    """What /metrics reports against the retention period (web/receipt_metrics.py): the
    earliest first-kept receipt over all schools, moving as prune moves the anchors."""
    assert book.oldest_kept() is None
    for i in range(4):
        book.append(content(at=1000 + i))
    book.append(content(SCHOOLS[1], at=1500))
    assert book.oldest_kept() == 1000
    book.prune(before=1002)
    assert book.oldest_kept() == 1002
    book.prune(before=1600)  # the first school's receipts and the second's
    assert book.oldest_kept() is None
    book.append(content(SCHOOLS[1], at=2000))
    assert book.oldest_kept() == 2000


def test_a_deleted_chain_record_is_reported(book: SqlReceiptBook) -> None:
    book.append(content())
    with session_on(_engine(book)) as session:
        session.execute(delete(ReceiptChainRow))
    assert SCHOOLS[0].id in book.school_ids()
    problem = book.verify(SCHOOLS[0].id).problem
    assert problem is not None and "chain record missing" in problem.reason


def test_notice_mode_defaults_to_every_session(
    sql_registry: SqlRegistry, book: SqlReceiptBook
) -> None:
    sql_registry.add_school(SCHOOLS[0], "<idp/>")
    sql_registry.add_service(replace(SERVICES[0], chain_id=None), "<sp/>")
    assert book.notice_mode("99XX00", "leesplank") == "session"
    book.set_notice_mode("99XX00", "leesplank", "changes")
    assert book.notice_mode("99XX00", "leesplank") == "changes"
    assert book.notice_modes("99XX00") == {"leesplank": "changes"}
    book.set_notice_mode("99XX00", "leesplank", "session")
    assert book.notice_mode("99XX00", "leesplank") == "session"
    with pytest.raises(ValueError, match="notice mode"):
        book.set_notice_mode("99XX00", "leesplank", "never")
    with pytest.raises(UnknownSchool):
        book.set_notice_mode("99YY00", "leesplank", "changes")
    with pytest.raises(UnknownService):
        book.set_notice_mode("99XX00", "rekenwereld", "changes")
    assert book.notice_modes("99YY00") == {}
    assert book.notice_modes("99XX00") == {"leesplank": "session"}


def test_the_history_counts_every_receipt_of_a_student_past_a_page_of_500(
    book: SqlReceiptBook,
) -> None:
    """The my-data page's history: grouped in the database per subject, school, platform and
    released attributes (count, first, last), so a platform used long ago stays on it and the
    counts are true, however many receipts the student has."""
    book.append(content(service=SERVICES[1], at=50, attributes=()))  # long ago, once
    for i in range(520):
        book.append(content(at=1000 + i, attributes=("given_name",)))
    book.append(content(at=2000, attributes=("given_name", "groups")))
    book.append(content(student="leerling-2", at=3000))  # someone else's
    subjects = [content().subject, content(service=SERVICES[1]).subject]
    history = book.history(subjects)
    assert [
        (h.school_id, h.service_id, h.attributes, h.count, h.first, h.last) for h in history
    ] == [
        ("99XX00", "leesplank", ("given_name", "groups"), 1, 2000, 2000),
        ("99XX00", "leesplank", ("given_name",), 520, 1000, 1519),
        ("99XX00", "rekenwereld", (), 1, 50, 50),
    ]
    assert {h.subject for h in history} == set(subjects)
    assert book.history([]) == []
