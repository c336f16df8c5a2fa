"""The federation's configuration as one value: what `registry export` writes and `import` reads.

A snapshot holds chains, publishers, schools (with their SAML metadata or OpenID provider),
services (with SAML metadata or OIDC client registration, declarations and approval) and the
current release policies. It holds no administrators and no history: those belong to this one
broker, not to the federation's configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, undefer

from broker.core.admins import Publisher
from broker.core.chain_move import ChainMove
from broker.core.model import Chain, School, Service
from broker.core.pseudonym_rotation import ChainKeyVersion
from broker.core.sealed_secrets import SecretSeal
from broker.registry.admin_tables import PublisherRow
from broker.registry.chain_moves import standing_moves
from broker.registry.pseudonym_key_tables import PseudonymKeyVersionRow
from broker.registry.sealed_only import seal_for
from broker.registry.tables import (
    ChainRow,
    ReleasePolicyRow,
    SchoolNamingIdpRow,
    SchoolRow,
    ServiceRow,
)


@dataclass(frozen=True)
class SchoolEntry:
    school: School
    metadata: str  # SAML IdP metadata; empty for a school on OpenID Connect
    # Whether logins through its IdP must name their school (shared_idps.py): in the registry's
    # snapshot True or None (not set); in a file, None when the file does not say (left as it
    # is) and False when it clears the flag.
    idp_names_school: bool | None = None
    # The URL its SAML metadata was fetched from (revision 0027), fetched again by `metadata
    # refresh`; None: a file (or an OpenID school).
    metadata_url: str | None = None


@dataclass(frozen=True)
class ServiceEntry:
    service: Service
    metadata: str | None  # SAML SP metadata; None for an OIDC client
    # Whether `service.assertion_encryption` is to be written. False: a file that does not say
    # it; the import then leaves the column as it finds it under the service row's lock (a new
    # service: auto), so an operator's switch made after the file was read is not undone, and
    # the field only holds what the file's checks assumed (the registry's, when read).
    encryption_given: bool = True
    # The URL its SAML metadata was fetched from (revision 0029), fetched again by `metadata
    # refresh`; None: a file or pasted text (or an OIDC client).
    metadata_url: str | None = None


@dataclass(frozen=True)
class PolicyEntry:
    """A school's current choice for a service. `declaration_version` is the version of the
    service's declarations the school accepted: an older one releases the pseudonym alone."""

    school_id: str
    service_id: str
    attributes: frozenset[str]
    version: int
    active: bool = True
    declaration_version: int = 1


@dataclass(frozen=True)
class Snapshot:
    chains: tuple[Chain, ...] = ()
    publishers: tuple[Publisher, ...] = ()
    schools: tuple[SchoolEntry, ...] = ()
    services: tuple[ServiceEntry, ...] = ()
    policies: tuple[PolicyEntry, ...] = ()
    # Rotated chains' pseudonym key versions: without them a rebuilt registry would change
    # those chains' pseudonyms (registry_key_versions.py).
    key_versions: tuple[ChainKeyVersion, ...] = ()
    # Services' chain moves with a window (revision 0018): without them a rebuilt registry would
    # end every open move window (registry_chain_moves.py).
    chain_moves: tuple[ChainMove, ...] = ()
    # Entity ids of IdPs whose logins must name their school beyond what `schools` says: in the
    # registry's snapshot those no school is on (all removed; the rule stays, shared_idps.py),
    # in a file its `[[idps_naming_school]]` (registry_idp_rules.py). Without them a rebuilt
    # registry would let the board's next school join without the rule.
    idps_naming_school: tuple[str, ...] = ()


def read_snapshot(session: Session, seal: SecretSeal) -> Snapshot:
    """Everything, ordered by id, so two exports of the same registry are the same text.
    `seal` opens schools' client secrets: an import compares the file's with them (an export
    writes none)."""
    chains = session.scalars(select(ChainRow).order_by(ChainRow.id))
    publishers = session.scalars(select(PublisherRow).order_by(PublisherRow.id))
    schools = session.scalars(
        select(SchoolRow)
        .options(undefer(SchoolRow.idp_metadata), undefer(SchoolRow.idp_metadata_url))
        .order_by(SchoolRow.id)
    )
    services = session.scalars(
        select(ServiceRow)
        .options(
            undefer(ServiceRow.sp_metadata),
            undefer(ServiceRow.sp_metadata_url),
            joinedload(ServiceRow.declarations),
        )
        .order_by(ServiceRow.id)
    ).unique()
    policies = session.scalars(
        select(ReleasePolicyRow).order_by(ReleasePolicyRow.school_id, ReleasePolicyRow.service_id)
    )
    key_versions = session.scalars(
        select(PseudonymKeyVersionRow).order_by(PseudonymKeyVersionRow.chain)
    )
    # The records that still stand: one whose service moved on would not import back.
    moves = standing_moves(session)
    naming = set(session.scalars(select(SchoolNamingIdpRow.entity_id)))
    school_rows = list(schools)
    seal = seal_for(session, seal, (row.oidc.client_secret for row in school_rows if row.oidc))
    return Snapshot(
        key_versions=tuple(row.to_record() for row in key_versions),
        chain_moves=tuple(moves),
        chains=tuple(row.to_chain() for row in chains),
        publishers=tuple(row.to_publisher() for row in publishers),
        schools=tuple(
            # True or None, never False: an export writes the flag only when it is set, so a
            # snapshot read back from its file is equal to the registry's.
            SchoolEntry(
                row.to_school(seal),
                row.idp_metadata,
                row.idp_entity_id in naming or None,
                row.idp_metadata_url,
            )
            for row in school_rows
        ),
        idps_naming_school=tuple(sorted(naming - {row.idp_entity_id for row in school_rows})),
        services=tuple(
            ServiceEntry(row.to_service(), row.sp_metadata, metadata_url=row.sp_metadata_url)
            for row in services
        ),
        policies=tuple(
            PolicyEntry(
                row.school_id,
                row.service_id,
                frozenset(row.attributes),
                row.version,
                row.active,
                row.declaration_version,
            )
            for row in policies
        ),
    )
