"""The domain model: frozen dataclasses shared by every layer.

These objects carry no personal data except `UpstreamIdentity`, which lives in memory for one
request (and, sealed, in the login state) and is never written to the registry or a log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Protocol(StrEnum):
    SAML = "saml"
    OIDC = "oidc"


class NamingProfile(StrEnum):
    """How released attributes are named towards a SAML service (attributes.md)."""

    OID = "oid"
    PLAIN = "plain"


@dataclass(frozen=True)
class Chain:
    id: str
    name: str


@dataclass(frozen=True)
class School:
    """A school: one or more identity providers and the attribute that identifies a student.

    `subject_attribute` is the canonical attribute (or `name_id` for the SAML persistent NameID,
    `sub` for the OIDC subject) whose value feeds the chain pseudonym. When `use_eck_id` is set,
    the ECK iD (`eck_id`) is used with the sector-wide namespace instead.
    """

    id: str
    name: str
    idp_entity_id: str
    subject_attribute: str = "name_id"
    use_eck_id: bool = False
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Declaration:
    """One attribute a service declared it needs, with the purpose a parent can read."""

    attribute: str
    purpose: str
    required: bool = False


@dataclass(frozen=True)
class Service:
    """A publisher's or distributor's platform (SAML SP or, later, OIDC client).

    `approved`: an operator let it in; until then no school sees it and no login reaches it.
    `publisher_id`: the publisher whose administrators manage it (None: operators only).
    `declaration_version` counts changes of `declarations`: a school's choice made under an
    older version must be confirmed again before it releases anything.
    """

    id: str
    name: str
    entity_id: str
    chain_id: str | None
    naming: NamingProfile = NamingProfile.OID
    declarations: tuple[Declaration, ...] = ()
    protocol: Protocol = Protocol.SAML
    approved: bool = True
    publisher_id: str | None = None
    declaration_version: int = 1

    @property
    def pseudonym_chain(self) -> str:
        """The chain input of the pseudonym: a service in no chain is a chain of its own."""
        return self.chain_id if self.chain_id else f"service:{self.id}"

    def declaration(self, attribute: str) -> Declaration | None:
        for declaration in self.declarations:
            if declaration.attribute == attribute:
                return declaration
        return None


@dataclass(frozen=True)
class ReleasePolicy:
    """What one school releases to one service. Version 0 is the default: the pseudonym alone."""

    school_id: str
    service_id: str
    attributes: frozenset[str] = frozenset()
    version: int = 0


@dataclass(frozen=True)
class UpstreamIdentity:
    """What the school's identity provider told us, mapped to canonical names.

    `subject` is the value of the school's configured subject (persistent NameID, `sub`, or the
    attribute the school chose). It is used once to derive the pseudonym and never stored.
    """

    school_id: str
    subject: str
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    authn_context: str | None = None


@dataclass(frozen=True)
class Release:
    """The outcome of the release rule for one login."""

    pseudonym: str
    attributes: dict[str, tuple[str, ...]]
    policy_version: int
    previous_pseudonym: str | None = None
