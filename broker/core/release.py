"""The release rule (attributes.md): policy ∩ declared ∩ requested ∩ available. Nothing else."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from broker.core.errors import RequiredAttributeMissing
from broker.core.model import (
    Declaration,
    Release,
    ReleasePolicy,
    School,
    Service,
    UpstreamIdentity,
)
from broker.core.pseudonym import PseudonymKeys, derive_chain_pseudonym, subject_input
from broker.core.pseudonym_rotation import KeyVersions


def release_for(
    service: Service,
    policy: ReleasePolicy,
    requested: frozenset[str] | None,
    available: Mapping[str, tuple[str, ...]],
) -> dict[str, tuple[str, ...]]:
    """The attributes (canonical name → values) one login may carry to `service`.

    `requested` is None when the service's request named no attributes (then its declaration is
    the request). A declared *required* attribute that the release cannot satisfy refuses the
    login: the service gets an error, never an empty assertion.
    """
    declared = {d.attribute for d in service.declarations}
    wanted = declared if requested is None else declared & requested
    released = {
        name: available[name] for name in sorted(policy.attributes & wanted) if available.get(name)
    }
    missing = tuple(sorted(required_not_released(service, released, wanted)))
    if missing:
        raise RequiredAttributeMissing(service.id, missing)
    return released


def released_declarations(service: Service, chosen: Collection[str]) -> tuple[Declaration, ...]:
    """What `chosen` (a policy's or a school's choice of attributes) releases to `service` now:
    its declarations that `chosen` names, in its order. The release rule's policy ∩ declared
    (`release_for`): an attribute the service no longer declares is never released, whatever a
    stored choice still names, so no page may show it as released (the school's portal, its
    overview, the student's data page)."""
    return tuple(d for d in service.declarations if d.attribute in chosen)


def required_not_released(
    service: Service, released: Collection[str], wanted: Collection[str] | None = None
) -> tuple[str, ...]:
    """The attributes `service` requires (among `wanted`; None: all it declares) that are not in
    `released`, in its declaration order. Any at all refuses the login (`release_for`).

    The school's portal asks it with what the school's policy releases (no choice yet: nothing;
    a choice waiting to be confirmed: nothing, registry/reading.py `policy`) to say before any
    student tries that its students cannot sign in to the platform, and what to tick. It
    assumes a login asks for everything declared (a request naming no attributes does).
    """
    return tuple(
        d.attribute
        for d in service.declarations
        if d.required and (wanted is None or d.attribute in wanted) and d.attribute not in released
    )


def compute_release(
    keys: PseudonymKeys,
    school: School,
    service: Service,
    identity: UpstreamIdentity,
    policy: ReleasePolicy,
    requested: frozenset[str] | None,
    versions: KeyVersions | None = None,
) -> Release:
    """The pseudonym and attributes for one login; the subject is used here and dropped.

    `versions`: the key versions of the service's chain (pseudonym_rotation.py); None means the
    key set's `current` alone, as for a chain never rotated (a previous pseudonym is released
    only inside the chain's own window, which only a registry record opens).
    """
    if versions is None:
        versions = KeyVersions(keys.current_version)
    pseudonym, previous = chain_pseudonyms(keys, school, service, identity, versions)
    attributes = release_for(service, policy, requested, identity.attributes)
    return Release(
        pseudonym, attributes, policy.version, previous, versions.current, versions.previous_chain
    )


def chain_pseudonyms(
    keys: PseudonymKeys,
    school: School,
    service: Service,
    identity: UpstreamIdentity,
    versions: KeyVersions,
) -> tuple[str, str | None]:
    """The student's pseudonym in `service`'s chain under the chain's current key version, and
    under its previous one while a rotation's window is open, or in the chain it left while a
    chain move's window is open (else None)."""
    namespace, subject = subject_input(school, identity)
    chain = service.pseudonym_chain
    pseudonym = derive_chain_pseudonym(keys.key(versions.current), chain, namespace, subject)
    previous = None
    if versions.previous is not None:
        previous = derive_chain_pseudonym(
            keys.key(versions.previous), versions.previous_chain or chain, namespace, subject
        )
    return pseudonym, previous
