"""The checks of a registry file that need more than one entry: unique ids and entity ids, and
every reference (chain, publisher, school, service, declared attribute) resolved against the file
first and the registry second, as the import will leave it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from broker.cli.registry_entries import Entries
from broker.core.admins import Publisher
from broker.core.hosted_domain import needs_hosted_domain
from broker.core.model import Chain, Service
from broker.core.shared_idp import brin_problem, naming_problem
from broker.registry.snapshot import PolicyEntry, SchoolEntry, ServiceEntry, Snapshot


def _unique(entries: Sequence[tuple[Entries, str]], key: str, what: str) -> None:
    seen: set[str] = set()
    for entry, value in entries:
        if value and value in seen:
            entry.wrong(key, f"{what} {value!r} appears twice in the file")
        seen.add(value)


def _entity_ids_free(
    found: Sequence[tuple[Entries, str, str]], taken: dict[str, str], key: str
) -> None:
    """(entry, id, entity id): an entity id may belong to one entry only, in the file or in the
    registry (an entry the file does not mention keeps its entity id)."""
    owners = dict(taken)
    for entry, own_id, entity_id in found:
        owner = owners.setdefault(entity_id, own_id)
        if owner != own_id:
            entry.wrong(key, f"entity id {entity_id!r} is already used by {owner!r}")


def _idps_shared_rightly(
    found: Sequence[tuple[Entries, SchoolEntry]],
    kept: Sequence[SchoolEntry],
    held_idps: frozenset[str],
    rules: tuple[frozenset[str], frozenset[str]],
) -> None:
    """Several schools on one IdP entity id or OpenID issuer (a school board's,
    registry/shared_idps.py): all of one protocol, SAML ones with the same metadata unless a
    source holds the IdP (its copy is used, none of theirs), in the file and in the registry (a
    school the file does not mention keeps its IdP and its metadata: the file's must be the
    same)."""
    before: dict[str, list[SchoolEntry]] = {}
    for school_entry in kept:
        before.setdefault(school_entry.school.idp_entity_id, []).append(school_entry)
    for entry, listed in found:
        entity_id, oidc_less = listed.school.idp_entity_id, listed.school.oidc is None
        others = before.setdefault(entity_id, [])
        # A source's copy is the IdP's: the schools' own are not compared.
        compared = () if entity_id in held_idps else others
        if mixed := [o.school.id for o in others if (o.school.oidc is None) != oidc_less]:
            entry.wrong(
                "saml_metadata" if oidc_less else "oidc",
                f"entity id {entity_id!r} is already used by {mixed[0]!r}, which signs in "
                "with the other protocol",
            )
        elif others and needs_hosted_domain(entity_id):
            # Google's issuer: told apart by hosted domain, one school (shared_idps.py).
            entry.wrong("oidc", f"issuer {entity_id!r} is already used by {others[0].school.id!r}")
        elif differing := [o.school.id for o in compared if o.metadata != listed.metadata]:
            entry.wrong(
                "saml_metadata",
                f"IdP {entity_id!r} is shared with school(s) {', '.join(differing)}, whose "
                "metadata differs: schools on one IdP need the same metadata (give each the "
                "same file, or the same saml_entity_id)",
            )
        others.append(listed)
    _idps_name_schools(found, before, rules)


def _idps_name_schools(
    found: Sequence[tuple[Entries, SchoolEntry]],
    after: dict[str, list[SchoolEntry]],
    rules: tuple[frozenset[str], frozenset[str]],
) -> None:
    """`idp_names_school` as the import will leave each IdP (`after`: its schools, the file's
    and those it keeps; `rules`: the IdPs the file's `[[idps_naming_school]]` names, and those
    the registry holds the rule for with no school on them): the same by every school of the
    file on one IdP (or OpenID issuer), never false for an IdP two schools are on or
    the file names; and BRIN ids on an IdP that names its school (core/shared_idp.py). A file
    that does not say keeps the registry's word."""
    in_file = {id(listed) for _, listed in found}
    for entry, listed in found:
        school = listed.school
        on_idp = after[school.idp_entity_id]
        said = {o.idp_names_school for o in on_idp if id(o) in in_file} - {None}
        named = school.idp_entity_id in rules[0]
        kept_says = school.idp_entity_id in rules[1] or any(
            o.idp_names_school for o in on_idp if id(o) not in in_file
        )
        names_school = named or said == {True} or (not said and kept_says)
        if listed.idp_names_school and (problem := naming_problem(school.idp_entity_id)):
            entry.wrong("idp_names_school", problem)
        elif len(said) > 1:
            entry.wrong("idp_names_school", "schools on one IdP must say the same")
        elif listed.idp_names_school is False and named:
            entry.wrong(
                "idp_names_school", "must not be false: [[idps_naming_school]] names the IdP"
            )
        elif listed.idp_names_school is False and len(on_idp) > 1:
            others = ", ".join(o.school.id for o in on_idp if o.school.id != school.id)
            entry.wrong(
                "idp_names_school",
                f"must be true: the IdP is shared with school(s) {others}, and logins through "
                "it name their school",
            )
        elif (len(on_idp) > 1 or names_school) and (problem := brin_problem(school.id)):
            entry.wrong("id", problem)


def _raw_ids(entries: Sequence[tuple[Entries, object]]) -> set[str]:
    return {str(entry.table.get("id")) for entry, _ in entries}


def check_references(
    current: Snapshot,
    chains: list[tuple[Entries, Chain]],
    publishers: list[tuple[Entries, Publisher]],
    schools: list[tuple[Entries, SchoolEntry | None]],
    services: list[tuple[Entries, ServiceEntry | None]],
    policies: list[tuple[Entries, tuple[PolicyEntry, bool] | None]],
    *,
    held_idps: frozenset[str] = frozenset(),
    named_idps: frozenset[str] = frozenset(),
) -> Snapshot:
    _unique([(e, c.id) for e, c in chains], "id", "chain")
    _unique([(e, p.id) for e, p in publishers], "id", "publisher")
    _unique([(e, s.school.id) for e, s in schools if s], "id", "school")
    _unique([(e, s.service.id) for e, s in services if s], "id", "service")
    pairs = [(e, f"{p[0].school_id}/{p[0].service_id}") for e, p in policies if p]
    _unique(pairs, "school", "policy")

    file_schools = {s.school.id for _, s in schools if s}
    file_services = {s.service.id for _, s in services if s}
    _idps_shared_rightly(
        [(e, s) for e, s in schools if s],
        [s for s in current.schools if s.school.id not in file_schools],
        held_idps,
        (named_idps, frozenset(current.idps_naming_school)),
    )
    _entity_ids_free(
        [(e, s.service.id, s.service.entity_id) for e, s in services if s],
        {
            s.service.entity_id: s.service.id
            for s in current.services
            if s.service.id not in file_services
        },
        "saml_metadata",
    )

    chain_ids = {c.id for _, c in chains} | {c.id for c in current.chains}
    publisher_ids = {p.id for _, p in publishers} | {p.id for p in current.publishers}
    for entry, found in services:
        if found is None:
            continue
        if found.service.chain_id is not None and found.service.chain_id not in chain_ids:
            entry.wrong("chain", f"no chain {found.service.chain_id!r} in the file or registry")
        publisher = found.service.publisher_id
        if publisher is not None and publisher not in publisher_ids:
            entry.wrong("publisher", f"no publisher {publisher!r} in the file or registry")

    # What each service declares once the import is done: the file's entry wins.
    after: dict[str, Service] = {s.service.id: s.service for s in current.services}
    after.update({s.service.id: s.service for _, s in services if s})
    # An entry with problems of its own still counts as present: one mistake, one message.
    school_ids = file_schools | {s.school.id for s in current.schools} | _raw_ids(schools)
    broken_services = _raw_ids(services) - file_services
    checked: list[PolicyEntry] = []
    for entry, parsed in policies:
        if parsed is None:
            continue
        policy, accepted_given = parsed
        if policy.school_id not in school_ids:
            entry.wrong("school", f"no school {policy.school_id!r} in the file or registry")
        service = after.get(policy.service_id)
        if policy.service_id in broken_services:
            continue
        if service is None:
            entry.wrong("service", f"no service {policy.service_id!r} in the file or registry")
            continue
        if not accepted_given:
            # Written by hand without it: the school accepts the declarations as they are.
            policy = replace(policy, declaration_version=service.declaration_version)
        elif policy.declaration_version > service.declaration_version:
            entry.wrong(
                "declaration_version",
                f"{policy.service_id} is at declaration version {service.declaration_version}",
            )
        # A choice made under older declarations releases nothing until the school confirms it
        # again, so it may name attributes the service no longer declares.
        declared = {d.attribute for d in service.declarations}
        undeclared = sorted(policy.attributes - declared)
        if undeclared and policy.declaration_version >= service.declaration_version:
            entry.wrong("release", f"{policy.service_id} did not declare {', '.join(undeclared)}")
        checked.append(policy)

    return Snapshot(
        chains=tuple(c for _, c in chains),
        publishers=tuple(p for _, p in publishers),
        schools=tuple(s for _, s in schools if s),
        services=tuple(s for _, s in services if s),
        policies=tuple(checked),
    )
