"""Receipts in the core: the receipt subject is its own keyed hash, and the keyed chain names the
first receipt that was altered, inserted, removed or reordered."""

from __future__ import annotations

import csv
import hmac
import io
import json
from collections.abc import Callable
from dataclasses import replace
from hashlib import sha256

import pytest

from broker.core.errors import ConfigurationError, MissingSubject
from broker.core.model import Release, School, Service, UpstreamIdentity
from broker.core.pseudonym import derive_chain_pseudonym
from broker.core.receipt_export import COLUMNS, csv_lines, json_lines
from broker.core.receipts import (
    GENESIS_HASH,
    ChainAnchor,
    Receipt,
    ReceiptKeys,
    receipt_chains,
    receipt_content,
    verify_chain,
)

KEY = bytes(range(32))
KEYS = ReceiptKeys.from_key(KEY)
SCHOOL = School("99XX00", "Demo", "https://idp.example")
ECK_SCHOOL = School("99YY00", "Other", "https://idp2.example", use_eck_id=True)
SERVICE = Service("leesplank", "Leesplank", "https://sp.example", "leermiddelen")
ECK_ID = "https://ketenid.nl/201703/" + "ab" * 64


def identity(subject: str = "leerling-1", school: School = SCHOOL) -> UpstreamIdentity:
    return UpstreamIdentity(school.id, subject, {"eck_id": (ECK_ID,), "given_name": ("Sanne",)})


def chain(count: int, keys: ReceiptKeys = KEYS) -> list[Receipt]:
    receipts: list[Receipt] = []
    previous = GENESIS_HASH
    for seq in range(1, count + 1):
        content = receipt_content(
            keys,
            issued_at=1_800_000_000 + seq,
            school=SCHOOL,
            service=SERVICE,
            identity=identity(f"leerling-{seq % 2}"),
            release=Release("p" * 64, {"given_name": ("Sanne",)}, 3),
        )
        receipt = Receipt(content, seq, previous, keys.seal(content, seq, previous))
        receipts.append(receipt)
        previous = receipt.hash
    return receipts


def test_receipt_names_attributes_and_never_values_or_pseudonyms() -> None:
    receipt = chain(1)[0]
    text = receipt.content.canonical()
    assert receipt.content.attributes == ("given_name",)
    assert "Sanne" not in text and "leerling" not in text and "p" * 64 not in text
    assert receipt.content.subject not in {
        derive_chain_pseudonym(KEY, chain_id, "school:99XX00", "leerling-1")
        for chain_id in ("leermiddelen", "service:leesplank")
    }


def _field(value: str) -> bytes:
    encoded = value.encode()
    return len(encoded).to_bytes(4, "big") + encoded


def spec_subject(chain: str, namespace: str, subject: str) -> str:
    """The per-chain receipt subject as docs/receipts.md defines it, computed here apart from
    the broker's code."""
    key = hmac.new(KEY, _field("ketenbroker/receipt-subject-per-chain/v2"), sha256).digest()
    message = _field(chain) + _field(namespace) + _field(subject)
    return hmac.new(key, message, sha256).hexdigest()


def old_subject(namespace: str, subject: str) -> str:
    """The subject receipts carried before 2026-11-30 (the same in every chain), as that
    release computed it."""
    key = hmac.new(KEY, _field("ketenbroker/receipt-subject/v1"), sha256).digest()
    return hmac.new(key, _field(namespace) + _field(subject), sha256).hexdigest()


def test_receipt_subject_is_stable_per_student_and_chain_and_keyed() -> None:
    one = KEYS.subject(SCHOOL, identity("leerling-1"), "leermiddelen")
    assert one == KEYS.subject(SCHOOL, identity("leerling-1"), "leermiddelen")
    assert one == spec_subject("leermiddelen", "school:99XX00", "leerling-1")
    assert one != KEYS.subject(SCHOOL, identity("leerling-2"), "leermiddelen")
    assert one != ReceiptKeys.from_key(bytes(32)).subject(
        SCHOOL, identity("leerling-1"), "leermiddelen"
    )
    # A school on the ECK iD: the same subject at every school that delivers that ECK iD.
    other_eck_school = replace(ECK_SCHOOL, id="99ZZ00")
    assert KEYS.subject(ECK_SCHOOL, identity("x", ECK_SCHOOL), "leermiddelen") == KEYS.subject(
        other_eck_school, identity("y", other_eck_school), "leermiddelen"
    )


def test_receipt_subject_differs_between_chains_and_from_the_old_subject() -> None:
    """The audit's finding: one subject in every chain, with exact times, let receipts link a
    student's pseudonyms of two chains. Now each chain has its own; a chainless service is a
    chain of its own, and none equals the old chain-independent subject."""
    student = identity("leerling-1")
    subjects = {
        KEYS.subject(SCHOOL, student, chain)
        for chain in ("leermiddelen", "toetsen", "service:rekenwereld", "service:woordwijs")
    }
    assert len(subjects) == 4
    old = old_subject("school:99XX00", "leerling-1")
    assert old not in subjects and KEYS.legacy_subject(SCHOOL, student) == old


def test_receipt_content_takes_the_subject_of_its_services_chain() -> None:
    student = identity("leerling-1")
    release = Release("p" * 64, {}, 1)
    chainless = Service("rekenwereld", "Rekenwereld", "https://r.example", None)
    toetsen = Service("toetsweb", "Toetsweb", "https://t.example", "toetsen")
    in_chain = Service("rekenroute", "Rekenroute", "https://rr.example", "leermiddelen")
    made = {
        service.id: receipt_content(
            KEYS, issued_at=1, school=SCHOOL, service=service, identity=student, release=release
        )
        for service in (SERVICE, in_chain, chainless, toetsen)
    }
    # Same chain, same subject; another chain (or none), another subject.
    assert made["leesplank"].subject == made["rekenroute"].subject
    assert len({c.subject for c in made.values()}) == 3
    assert made["rekenwereld"].pseudonym_chain == "service:rekenwereld"
    for content in made.values():
        assert content.subject == spec_subject(
            content.pseudonym_chain, "school:99XX00", "leerling-1"
        )


def test_a_students_subjects_cover_every_chain_a_receipt_can_name_and_the_old_one() -> None:
    chains = receipt_chains(["leermiddelen", "toetsen"], ["leesplank", "rekenwereld"])
    assert chains == {
        "leermiddelen",
        "toetsen",
        "service:leesplank",
        "service:rekenwereld",
    }
    found = KEYS.subjects(SCHOOL, identity("leerling-1"), chains)
    assert set(found) == {
        spec_subject(chain, "school:99XX00", "leerling-1") for chain in chains
    } | {old_subject("school:99XX00", "leerling-1")}


def test_receipt_subject_needs_the_configured_subject() -> None:
    with pytest.raises(MissingSubject):
        KEYS.subject(SCHOOL, identity(""), "leermiddelen")
    with pytest.raises(MissingSubject):
        KEYS.subjects(SCHOOL, identity(""), ["leermiddelen"])


def test_receipts_key_must_be_32_bytes_and_is_never_printed() -> None:
    with pytest.raises(ConfigurationError):
        ReceiptKeys.from_key(b"short")
    assert KEY.hex() not in repr(KEYS) and "subject_key" not in repr(KEYS)
    assert KEYS.legacy_subject_key.hex() not in repr(KEYS)


def test_intact_chain_verifies() -> None:
    assert verify_chain(KEYS, SCHOOL.id, ChainAnchor(), chain(5)) is None


@pytest.mark.parametrize(
    ("mutate", "seq", "reason"),
    [
        (lambda r: r[:2] + r[3:], 4, "missing"),
        (lambda r: [r[0], r[2], r[1], *r[3:]], 3, "missing"),
        (
            lambda r: [
                *r[:2],
                replace(r[2], content=replace(r[2].content, attributes=())),
                *r[3:],
            ],
            3,
            "altered",
        ),
        (
            lambda r: [*r[:3], replace(r[3], content=replace(r[3].content, service_id="x")), r[4]],
            4,
            "altered",
        ),
        (lambda r: [*r[:1], replace(r[1], previous_hash="f" * 64), *r[2:]], 2, "link"),
    ],
    ids=["removed", "reordered", "attributes-altered", "service-altered", "relinked"],
)
def test_any_tampering_names_the_first_broken_receipt(
    mutate: Callable[[list[Receipt]], list[Receipt]], seq: int, reason: str
) -> None:
    problem = verify_chain(KEYS, SCHOOL.id, ChainAnchor(), mutate(chain(5)))
    assert problem is not None
    assert problem.seq == seq and reason in problem.reason


def test_rehashing_without_the_key_does_not_help() -> None:
    forged = chain(3, ReceiptKeys.from_key(bytes(32)))
    problem = verify_chain(KEYS, SCHOOL.id, ChainAnchor(), forged)
    assert problem is not None and problem.seq == 1


def test_pruned_chain_verifies_from_its_anchor_and_notices_a_removed_oldest() -> None:
    receipts = chain(6)
    anchor = ChainAnchor(receipts[2].seq, receipts[2].hash)
    assert verify_chain(KEYS, SCHOOL.id, anchor, receipts[3:]) is None
    problem = verify_chain(KEYS, SCHOOL.id, anchor, receipts[4:])
    assert problem is not None and problem.seq == 5


def test_exports_hold_the_same_rows() -> None:
    receipts = chain(3)
    rows = list(csv.DictReader(io.StringIO("".join(csv_lines(receipts)))))
    assert [int(r["seq"]) for r in rows] == [1, 2, 3]
    assert tuple(rows[0]) == COLUMNS
    assert rows[0]["attributes"] == "given_name" and rows[0]["service_id"] == "leesplank"
    parsed = json.loads("".join(json_lines(receipts)))
    assert [r["seq"] for r in parsed] == [1, 2, 3]
    assert {k: str(v) if v is not None else "" for k, v in parsed[1].items()} == rows[1]
    assert list(csv.reader(io.StringIO("".join(csv_lines([]))))) == [list(COLUMNS)]
    assert json.loads("".join(json_lines([]))) == []
