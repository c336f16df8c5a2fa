"""The chain pseudonym (pseudonyms.md, version 1).

P = HMAC-SHA256(key, field(label) || field(chain) || field(namespace) || field(subject)),
field(s) = 4-byte big-endian length || UTF-8(s). Length prefixes make the encoding unambiguous:
("ab", "c") and ("a", "bc") can never collide, which plain concatenation would allow.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from hashlib import sha256

from broker.core.catalogue import CATALOGUE, registered_scope, split_scoped
from broker.core.errors import ConfigurationError, MissingSubject
from broker.core.model import School, UpstreamIdentity

LABEL_V1 = "ketenbroker/chain-pseudonym/v1"
KEY_LENGTH = 32
ECK_ID_NAMESPACE = "eckid"


def field(value: str) -> bytes:
    encoded = value.encode("utf-8")
    return len(encoded).to_bytes(4, "big") + encoded


def derive_chain_pseudonym(key: bytes, chain: str, namespace: str, subject: str) -> str:
    """64 lowercase hex characters, the same on every login, worker and restart."""
    if len(key) != KEY_LENGTH:
        raise ConfigurationError("pseudonym key must be 32 bytes")
    message = field(LABEL_V1) + field(chain) + field(namespace) + field(subject)
    return hmac.new(key, message, sha256).hexdigest()


@dataclass(frozen=True)
class PseudonymKeys:
    """The numbered pseudonym keys; `current` derives, `previous` (if any) is in migration.

    The key material never leaves this object in any printable form: `repr` hides it.
    """

    current_version: int
    keys: dict[int, bytes]
    previous_version: int | None = None

    def __post_init__(self) -> None:
        if self.current_version not in self.keys:
            raise ConfigurationError("current pseudonym key version is not in the key set")
        # Checked here too, not only in config: compute_release would otherwise fail mid-login.
        if self.previous_version is not None and self.previous_version not in self.keys:
            raise ConfigurationError("previous pseudonym key version is not in the key set")
        for key in self.keys.values():
            if len(key) != KEY_LENGTH:
                raise ConfigurationError("every pseudonym key must be 32 bytes")

    def __repr__(self) -> str:
        return (
            f"PseudonymKeys(current_version={self.current_version}, versions={sorted(self.keys)})"
        )

    @property
    def current(self) -> bytes:
        return self.keys[self.current_version]

    def key(self, version: int) -> bytes:
        """One version's key; a version the set lacks is a configuration error, never a guess."""
        found = self.keys.get(version)
        if found is None:
            raise ConfigurationError(f"pseudonym key version {version} is not in the key set")
        return found

    def holds(self, versions: frozenset[int]) -> bool:
        return versions <= self.keys.keys()


def subject_input(school: School, identity: UpstreamIdentity) -> tuple[str, str]:
    """(namespace, subject) for the derivation, as the school is configured.

    A school configured for the ECK iD must deliver it: there is no fallback to another value,
    because a fallback would silently give the student a different pseudonym.
    """
    if school.use_eck_id:
        values = identity.attributes.get("eck_id", ())
        if len(values) != 1 or not values[0]:
            raise MissingSubject(f"school {school.id} delivered no single eck_id")
        return ECK_ID_NAMESPACE, values[0]
    if not identity.subject:
        raise MissingSubject(f"school {school.id} delivered no {school.subject_attribute}")
    return f"school:{school.id}", identity.subject


def student_key(school: School, identity: UpstreamIdentity) -> tuple[str, str, str] | None:
    """Who `identity` is, to tell two logins' students apart: the school, and the pseudonym's
    input (`subject_input`). Never `identity.subject` alone: at an ECK iD school it is "" for
    every student (the ECK iD is the input there). None when the identity lacks the input, or
    is another school's than `school`."""
    if identity.school_id != school.id:
        return None
    try:
        return (school.id, *subject_input(school, identity))
    except MissingSubject:
        return None


def same_student(school: School | None, one: UpstreamIdentity, other: UpstreamIdentity) -> bool:
    """Whether two logins at `school` (None: gone from the registry) are one student's, by
    `student_key`. In doubt (no school, an input missing) they are not: taking the next student
    at a shared computer for the previous one would hand on that student's sessions."""
    if school is None:
        return False
    key = student_key(school, one)
    return key is not None and key == student_key(school, other)


def scope_spelled_otherwise(school: School, subject: str) -> tuple[str, str] | None:
    """(sent scope, registered scope) when `subject` is a scoped value (the school's subject is
    username or student_number) whose scope equals one the school is registered with only when
    case is ignored, else None (also for a school on the ECK iD: the subject feeds no
    pseudonym there).

    Such a value is accepted (catalogue.py compares scopes ignoring case; this reads a scoped
    value as it does: `split_scoped`, `registered_scope`) and feeds the pseudonym as sent, so
    an IdP that varies the case of the scope gives a student two pseudonyms. It is neither
    refused nor lower-cased: an IdP that always sends one other spelling (Entra ID keeps a UPN
    suffix as typed: `SchoolNaam.nl`) gives stable pseudonyms today, and either would break or
    silently re-key all of that school's students. The login path logs it instead
    (login/scope_spelling.py), so that the operator can register the spelling the IdP sends."""
    attribute = CATALOGUE.get(school.subject_attribute)
    if school.use_eck_id or attribute is None or not attribute.scoped:
        return None
    scoped = split_scoped(subject)
    if scoped is None or scoped[1] in school.scopes:
        return None
    registered = registered_scope(scoped[1], school.scopes)
    return None if registered is None else (scoped[1], registered)
