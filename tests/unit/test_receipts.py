"""Receipts in the core: the receipt subject is its own keyed hash, and the keyed chain names the
first receipt that was altered, inserted, removed or reordered."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

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
    receipt_content,
    release_fingerprint,
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


def test_receipt_subject_is_stable_per_student_and_keyed() -> None:
    one = KEYS.subject(SCHOOL, identity("leerling-1"))
    assert one == KEYS.subject(SCHOOL, identity("leerling-1"))
    assert one != KEYS.subject(SCHOOL, identity("leerling-2"))
    assert one != ReceiptKeys.from_key(bytes(32)).subject(SCHOOL, identity("leerling-1"))
    # A school on the ECK iD: the same subject at every school that delivers that ECK iD.
    other_eck_school = replace(ECK_SCHOOL, id="99ZZ00")
    assert KEYS.subject(ECK_SCHOOL, identity("x", ECK_SCHOOL)) == KEYS.subject(
        other_eck_school, identity("y", other_eck_school)
    )


def test_receipt_subject_needs_the_configured_subject() -> None:
    with pytest.raises(MissingSubject):
        KEYS.subject(SCHOOL, identity(""))


def test_receipts_key_must_be_32_bytes_and_is_never_printed() -> None:
    with pytest.raises(ConfigurationError):
        ReceiptKeys.from_key(b"short")
    assert KEY.hex() not in repr(KEYS) and "subject_key" not in repr(KEYS)


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
def test_any_tampering_names_the_first_broken_receipt(mutate, seq: int, reason: str) -> None:
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


def test_release_fingerprint_follows_the_attribute_names_only() -> None:
    assert release_fingerprint(["b", "a"]) == release_fingerprint(["a", "b"])
    assert release_fingerprint(["a"]) != release_fingerprint(["a", "b"])
    assert release_fingerprint([]) != release_fingerprint(["a"])
    # The same choice saved again (a new policy version) is the same release for the notice.
    first, again = chain(1)[0].content, replace(chain(1)[0].content, policy_version=9)
    assert first.release_fingerprint == again.release_fingerprint


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
