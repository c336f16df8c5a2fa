"""Receipts: what was released about a student, to whom, when and under which policy.

A receipt names attributes, never their values; it identifies the student only by the *receipt
subject*, a keyed hash under a key of its own: with it a school (or the student on the my-data
page) finds one student's receipts, yet it matches no chain pseudonym, so a publisher's data
cannot be joined to the receipts, and without the key it reveals nothing. The subject is made
per pseudonym chain, like the pseudonym itself: receipts carry exact times, and a subject shared
by every chain would let whoever holds the receipts and two publishers' login times match both
publishers' pseudonyms to one subject, linking a student across chains. A reader that wants all
of a student's receipts computes the subject of every chain a receipt can name (`subjects`).

Receipts of one school form a hash chain: each carries the previous receipt's hash, and the hash
is an HMAC under the receipts key, so whoever can write the database but lacks the key can
neither alter, insert nor delete a receipt without `verify_chain` naming the first break.
Pruning old receipts keeps an *anchor* (sequence number and hash of the last pruned receipt), so
the chain stays verifiable from the oldest kept receipt on, and removing that one shows too.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import sha256

from broker.core.errors import ConfigurationError
from broker.core.model import (
    Protocol,
    Release,
    School,
    Service,
    UpstreamIdentity,
    pseudonym_chain,
)
from broker.core.pseudonym import KEY_LENGTH, field, subject_input
from broker.core.pseudonym_rotation import PREVIOUS_PSEUDONYM_RECEIPT_NAME

# The per-chain subject's key (since 2026-11-30). A key of its own, not the v1 key with one
# more field: a v2 message could otherwise equal a v1 message whose subject holds the bytes of
# two length-prefixed fields.
SUBJECT_LABEL = "ketenbroker/receipt-subject-per-chain/v2"
# COMPAT(receipt-subject-v1): the chain-independent subject of receipts written before
# 2026-11-30. They cannot be rewritten (the school's hash chain seals them), so readers match
# this subject too; remove it, `legacy_subject` and its callers once every deployment has run
# `receipts.retention_days` past that release and `receipts prune` has removed them.
LEGACY_SUBJECT_LABEL = "ketenbroker/receipt-subject/v1"
CHAIN_LABEL = "ketenbroker/receipt-chain/v1"
GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class ReceiptKeys:
    """Keys derived from the one configured receipts key: one names students per chain, one
    seals the chain (and, for a while, the old key that named them in every chain). None is a
    pseudonym key, so receipts and chain pseudonyms cannot be linked."""

    subject_key: bytes
    chain_key: bytes
    legacy_subject_key: bytes

    @classmethod
    def from_key(cls, key: bytes) -> ReceiptKeys:
        if len(key) != KEY_LENGTH:
            raise ConfigurationError("the receipts key must be 32 bytes")
        return cls(
            hmac.new(key, field(SUBJECT_LABEL), sha256).digest(),
            hmac.new(key, field(CHAIN_LABEL), sha256).digest(),
            hmac.new(key, field(LEGACY_SUBJECT_LABEL), sha256).digest(),
        )

    def __repr__(self) -> str:
        return "ReceiptKeys(…)"

    def subject(self, school: School, identity: UpstreamIdentity, chain: str) -> str:
        """The receipt subject in one pseudonym chain (`Service.pseudonym_chain`): the same
        student input as the chain pseudonym (ECK iD or the school's subject), so it follows a
        student across schools exactly when the pseudonym does, and differs between chains as
        the pseudonym does. The source identifier is used here in memory only."""
        return self._subject(_student(school, identity), chain)

    def legacy_subject(self, school: School, identity: UpstreamIdentity) -> str:
        """COMPAT(receipt-subject-v1): the chain-independent subject receipts carried before
        2026-11-30; read only, never written (see LEGACY_SUBJECT_LABEL for when it goes)."""
        return self._subject(_student(school, identity), None)

    def subjects(
        self, school: School, identity: UpstreamIdentity, chains: Iterable[str]
    ) -> tuple[str, ...]:
        """Every subject one student's receipts can carry: one per chain in `chains` (every
        chain a receipt can name, `receipt_chains`), and the old subject of receipts written
        before per-chain subjects (COMPAT(receipt-subject-v1)). One HMAC each, in memory."""
        student = _student(school, identity)
        found = {self._subject(student, chain) for chain in chains}
        found.add(self._subject(student, None))
        return tuple(sorted(found))

    def _subject(self, student: bytes, chain: str | None) -> str:
        """The per-chain subject, or with no chain the old one (COMPAT(receipt-subject-v1))."""
        if chain is None:
            return hmac.new(self.legacy_subject_key, student, sha256).hexdigest()
        return hmac.new(self.subject_key, field(chain) + student, sha256).hexdigest()

    def seal(self, content: ReceiptContent, seq: int, previous_hash: str) -> str:
        message = field(previous_hash) + field(str(seq)) + field(content.canonical())
        return hmac.new(self.chain_key, message, sha256).hexdigest()

    def seal_record(self, school_id: str, head: ChainAnchor, anchor: ChainAnchor) -> str:
        """The seal of a school's chain record (its newest receipt and where the kept chain
        starts): without it, deleting the newest or the oldest kept receipts and moving the
        record along would go unnoticed."""
        message = b"".join(
            field(part) for part in ("record", school_id, str(head.seq), head.hash, str(anchor.seq))
        )
        return hmac.new(self.chain_key, message + field(anchor.hash), sha256).hexdigest()


@dataclass(frozen=True)
class ReceiptContent:
    """What one completed login released. `attributes` are catalogue names, sorted."""

    issued_at: int  # Unix seconds, UTC
    school_id: str
    service_id: str
    chain_id: str | None
    attributes: tuple[str, ...]
    policy_version: int
    school_protocol: str
    service_protocol: str
    subject: str

    def canonical(self) -> str:
        """One fixed serialisation: the chain hash covers every field."""
        return json.dumps(
            {
                "attributes": list(self.attributes),
                "chain_id": self.chain_id,
                "issued_at": self.issued_at,
                "policy_version": self.policy_version,
                "school_id": self.school_id,
                "school_protocol": self.school_protocol,
                "service_id": self.service_id,
                "service_protocol": self.service_protocol,
                "subject": self.subject,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @property
    def pseudonym_chain(self) -> str:
        """The chain the receipt's subject is made in, from the ids the receipt records."""
        return pseudonym_chain(self.chain_id, self.service_id)


def _student(school: School, identity: UpstreamIdentity) -> bytes:
    """The student input of a subject (the chain pseudonym's own), as the HMAC takes it."""
    namespace, subject = subject_input(school, identity)
    return field(namespace) + field(subject)


def receipt_chains(chain_ids: Iterable[str], service_ids: Iterable[str]) -> frozenset[str]:
    """Every pseudonym chain a receipt can name, given every chain id and every service id that
    receipts can carry (registered or removed): each chain, and `service:<id>` for each service,
    also one in a chain now, since it may have been in none when an older receipt was written."""
    return frozenset(chain_ids) | {pseudonym_chain(None, s) for s in service_ids}


@dataclass(frozen=True)
class Receipt:
    """A stored receipt: its content, its place in the school's chain and its hash."""

    content: ReceiptContent
    seq: int
    previous_hash: str
    hash: str


@dataclass(frozen=True)
class ReceiptHistory:
    """A student's receipts for one platform with one set of released attributes, under one
    subject at one school, counted (the my-data page): how often, the first and the last time."""

    subject: str
    school_id: str
    service_id: str
    attributes: tuple[str, ...]
    count: int
    first: int
    last: int


def released_names(release: Release) -> tuple[str, ...]:
    """What a receipt names: the released attributes, and the previous pseudonym while a key
    rotation's window releases it (a name only, as for every attribute)."""
    names = set(release.attributes)
    if release.previous_pseudonym:
        names.add(PREVIOUS_PSEUDONYM_RECEIPT_NAME)
    return tuple(sorted(names))


def receipt_content(
    keys: ReceiptKeys,
    *,
    issued_at: int,
    school: School,
    service: Service,
    identity: UpstreamIdentity,
    release: Release,
) -> ReceiptContent:
    return ReceiptContent(
        issued_at=issued_at,
        school_id=school.id,
        service_id=service.id,
        chain_id=service.chain_id,
        attributes=released_names(release),
        policy_version=release.policy_version,
        school_protocol=school.protocol.value,
        service_protocol=service.protocol.value,
        subject=keys.subject(school, identity, service.pseudonym_chain),
    )


@dataclass(frozen=True)
class ChainAnchor:
    """Where a school's kept chain starts: sequence 0 and the genesis hash, or the last pruned
    receipt's sequence number and hash."""

    seq: int = 0
    hash: str = GENESIS_HASH


@dataclass(frozen=True)
class ChainBreak:
    """The first receipt at which a school's chain does not hold, and why (no personal data)."""

    school_id: str
    seq: int
    reason: str


def verify_chain(
    keys: ReceiptKeys, school_id: str, anchor: ChainAnchor, receipts: Iterable[Receipt]
) -> ChainBreak | None:
    """Check one school's receipts, in sequence order, from `anchor` on."""
    previous_seq, previous_hash = anchor.seq, anchor.hash
    for receipt in receipts:
        if receipt.content.school_id != school_id:
            return ChainBreak(school_id, receipt.seq, "receipt of another school in this chain")
        if receipt.seq != previous_seq + 1:
            return ChainBreak(
                school_id, receipt.seq, f"expected receipt {previous_seq + 1}: receipts missing"
            )
        if receipt.previous_hash != previous_hash:
            return ChainBreak(school_id, receipt.seq, "does not link to the receipt before it")
        if not hmac.compare_digest(
            receipt.hash, keys.seal(receipt.content, receipt.seq, receipt.previous_hash)
        ):
            return ChainBreak(school_id, receipt.seq, "content altered (hash does not match)")
        previous_seq, previous_hash = receipt.seq, receipt.hash
    return None


def protocol_pairing(school_protocol: str, service_protocol: str) -> str:
    """How pages and exports name a pairing: the school's protocol, then the service's."""
    names = {Protocol.SAML.value: "SAML", Protocol.OIDC.value: "OIDC"}
    return f"{names.get(school_protocol, school_protocol)} → {names.get(service_protocol, '?')}"
