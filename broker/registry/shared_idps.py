"""The registry's rule for an identity provider several schools share (a school board's IdP).

A SAML IdP (by entity id) or an OpenID provider (by issuer, which is the school's
`idp_entity_id` too: model.OidcUpstream) may be registered for several schools, each with its
own id (BRIN) and pseudonym namespace (revision 0014); the login then asks the provider which
school the student is of (core/shared_idp.py): nlEduPersonHomeOrganizationId in SAML, the
`school_id` claim in OpenID Connect. One rule for both protocols; what the registry keeps true
on every write:

- Schools that share a provider speak one protocol: an entity id and an issuer that happen to be
  the same URL are not one provider (`DuplicateEntry` for a school of the other protocol). Nor
  do schools share Google's issuer (`_not_shareable`): its schools are told apart by their
  hosted domains, and it sends no `school_id` claim the board rule could check.
- Schools that share a SAML IdP hold the same metadata: the metadata is the IdP's, and the SAML
  side keeps one copy per entity id (reading.py `school_metadata`), so two rows that differed
  would let the registry pick one of them silently. A new school must bring the same metadata as
  the others (`SharedIdpMetadataDiffers` otherwise); an update of one school's metadata is an
  update of the IdP's and is written to every school on it (sql_registry.update_school_metadata).
  While a metadata source holds the IdP no row's copy is used (reading.py `metadata_in_force`),
  so none is compared: a source's roll-over never stands in the way of the board's next school.
  OpenID schools on one issuer keep nothing of the issuer's in their rows (its discovery
  document and keys are fetched by issuer, rp_discovery.py): each keeps its own client id,
  secret, ID token algorithms and hosted domain, and two of them may hold the same client id
  (one app registration with a redirect URI per school).
- A provider with two or more schools requires its logins to name their school
  (`idps_naming_school`, revision 0015), from the write that put the second school on it; that
  stays when schools leave, and only the operator clears it, for a provider of one school or of
  none any more (`set_names_school` by a school's id, `set_idp_names_school` by entity id or
  issuer). Every school on such a provider has a BRIN as id (`SchoolIdNotBrin`). A registry file
  carries it also for a provider no school is on any more (`require_names_school`).

Every write that can put a school on an entity id or issuer takes `lock_idp` first: on
PostgreSQL two registrations on one provider would otherwise both pass these checks (each reads
the rows committed before the other's). SQLite has one writer at a time (database.py, BEGIN
IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from broker.core.errors import BadRequest, UnknownSchool
from broker.core.hosted_domain import needs_hosted_domain
from broker.core.model import School
from broker.core.shared_idp import brin_problem, naming_problem
from broker.registry.database import in_chunks
from broker.registry.errors import (
    DuplicateEntry,
    SchoolIdNotBrin,
    SharedIdpMetadataDiffers,
    SharedIdpNamesSchool,
    UnknownIdp,
)
from broker.registry.federation_tables import FederationEntityRow
from broker.registry.tables import SchoolNamingIdpRow, SchoolOidcRow, SchoolRow

# The first key of PostgreSQL's two-key advisory locks taken here ("kbid"): the two-key space
# is apart from the one-key space of the migration lock (migration.py).
_IDP_LOCK_SPACE = 0x6B62_6964
# The locks of the entity ids in one statement (one, or a registry import's thousands): taken
# one by one in the array's order, as the function scan of `unnest` hands the aggregate its rows.
_LOCK_IDPS = text(
    "SELECT count(pg_advisory_xact_lock(:space, hashtext(e)))"
    " FROM unnest(CAST(:entity_ids AS text[])) AS e"
)


def lock_idp(session: Session, entity_ids: Iterable[str]) -> None:
    """Hold, until the transaction ends, PostgreSQL's advisory lock of each entity id (in one
    order, so two writers never wait for each other in a circle), a statement per `IN_CHUNK`
    of them. SQLite: nothing to do."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for chunk in in_chunks(sorted(set(entity_ids))):
        session.execute(_LOCK_IDPS, {"space": _IDP_LOCK_SPACE, "entity_ids": chunk})


def names_school(session: Session, entity_id: str) -> bool:
    return session.get(SchoolNamingIdpRow, entity_id) is not None


def check_joining(session: Session, school: School, metadata: str) -> None:
    """Refuse registering `school` (with `metadata`) where it may not share its provider: one
    the schools on it reach by the other protocol, other metadata than the SAML schools already
    on it have (unless a source holds the IdP), or an id that is no BRIN on a provider that must
    name its school, or a school on it already that is no BRIN (this one would make its logins
    name their school: `note_joined`). Takes the provider's lock (`lock_idp`)."""
    entity_id = school.idp_entity_id
    lock_idp(session, [entity_id])
    others = [row for row in _schools_on(session, entity_id) if row[0] != school.id]
    if _not_shareable(entity_id, [school.oidc is not None, *(o is not None for _, _, o in others)]):
        raise DuplicateEntry("school", "idp_entity_id", entity_id)
    if others or names_school(session, entity_id):
        require_brin(entity_id, school.id)
    for other, _, _ in others:
        # Were one of them not a BRIN, the second school's mark would lock its students out.
        require_brin_of_existing(entity_id, other, school.id)
    if not others or source_holds(session, entity_id):
        return
    differing = tuple(school_id for school_id, xml, _ in others if (xml or "") != metadata)
    if differing:
        raise SharedIdpMetadataDiffers(entity_id, differing)


def _not_shareable(entity_id: str, speaks_oidc: Iterable[bool]) -> bool:
    """Whether schools so on one entity id may not all be there: two protocols (`_mixed`), or
    several schools on an issuer of every Google account (core/hosted_domain.py). There each
    school's hosted domain tells its accounts apart, and Google sends no `school_id` claim:
    under the board rule (the second school marks the issuer) every login of every school on
    it would be refused. One school on it, as before boards shared issuers."""
    flags = list(speaks_oidc)
    return _mixed(flags) or (len(flags) > 1 and needs_hosted_domain(entity_id))


def _mixed(speaks_oidc: Iterable[bool]) -> bool:
    """Whether the schools on one entity id (whether each signs in with OpenID Connect) speak
    two protocols: a SAML entity id and an OpenID issuer that are the same text."""
    return len(set(speaks_oidc)) > 1


def _schools_on(session: Session, entity_id: str) -> list[tuple[str, str | None, str | None]]:
    """(id, metadata, its OpenID provider row's school id or None) of every school on an IdP,
    by id."""
    rows = session.execute(
        select(SchoolRow.id, SchoolRow.idp_metadata, SchoolOidcRow.school_id)
        .outerjoin(SchoolOidcRow, SchoolOidcRow.school_id == SchoolRow.id)
        .where(SchoolRow.idp_entity_id == entity_id)
        .order_by(SchoolRow.id)
    )
    return [(row[0], row[1], row[2]) for row in rows]


def require_brin(entity_id: str, school_id: str) -> None:
    """Refuse a school whose id is not a BRIN on an IdP whose logins name their school."""
    if problem := brin_problem(school_id):
        raise SchoolIdNotBrin(entity_id, problem)


def require_brin_of_existing(entity_id: str, school_id: str, joining: str) -> None:
    """Refuse `joining` beside school `school_id`, already on the IdP, whose id is not a BRIN:
    the second school makes the IdP's logins name their school (`note_joined`), and none of
    `school_id`'s could (its id is compared with the BRIN the IdP sends). Was only the joining
    school's id checked, the other's students were locked out without a word."""
    if brin_problem(school_id) is None:
        return
    raise SchoolIdNotBrin(
        entity_id,
        f"school {school_id!r}, already on this IdP, has an id that is not a BRIN, and with "
        f"{joining!r} beside it every login through the IdP must name its school by BRIN: "
        f"none of {school_id!r}'s logins could. Register {school_id!r} again with its BRIN as id "
        f"first (a new school id: its students get new pseudonyms at its services), then "
        f"{joining!r}",
    )


def source_holds(session: Session, entity_id: str) -> bool:
    """Whether a metadata source holds this IdP (its copy, not a school row's, is then used)."""
    found = session.scalar(
        select(FederationEntityRow.entity_id)
        .where(FederationEntityRow.role == "idp", FederationEntityRow.entity_id == entity_id)
        .limit(1)
    )
    return found is not None


def note_joined(session: Session, entity_ids: Iterable[str]) -> None:
    """After schools were written: each of these IdPs that two or more schools are on now
    requires its logins to name their school (kept when schools leave). Read for all of them
    at once (`_shared_idps`), not a query per IdP."""
    session.flush()
    ordered = sorted(set(entity_ids))
    _mark_shared(session, _school_counts(session, ordered), _naming(session, ordered))
    session.flush()


def _mark_shared(session: Session, counts: dict[str, int], naming: set[str]) -> None:
    """Mark each IdP two or more schools are on (`counts`, schools per IdP) as naming its
    school, unless it is already (`naming`, which then holds it too)."""
    for entity_id, count in counts.items():
        if count > 1 and entity_id not in naming:
            session.add(SchoolNamingIdpRow(entity_id=entity_id))
            naming.add(entity_id)


def _school_counts(session: Session, entity_ids: list[str]) -> dict[str, int]:
    """How many schools are on each of `entity_ids` that any school is on, in their order."""
    counts: dict[str, int] = {}
    for chunk in in_chunks(entity_ids):
        rows = session.execute(
            select(SchoolRow.idp_entity_id, func.count())
            .where(SchoolRow.idp_entity_id.in_(chunk))
            .group_by(SchoolRow.idp_entity_id)
        )
        counts.update((row[0], row[1]) for row in rows)
    return {entity_id: counts[entity_id] for entity_id in entity_ids if entity_id in counts}


def _naming(session: Session, entity_ids: list[str]) -> set[str]:
    """Those of `entity_ids` whose logins must name their school (`names_school` of each)."""
    naming: set[str] = set()
    for chunk in in_chunks(entity_ids):
        naming.update(
            session.scalars(
                select(SchoolNamingIdpRow.entity_id).where(SchoolNamingIdpRow.entity_id.in_(chunk))
            )
        )
    return naming


def settle_shared(session: Session, joined: Iterable[str], entity_ids: Iterable[str]) -> None:
    """After a bulk write (registry import): `note_joined` for the IdPs its schools are on
    (`joined`, among `entity_ids`), then `check_joining`'s rule over every IdP it named
    (`entity_ids`) as the write left them: for each, one protocol, one metadata (unless a
    source holds it), and BRIN ids if its logins name their school. Raises, so the caller's
    transaction rolls back. What both need of every provider is read once (`_shared_facts` and
    `_naming`, a few statements per `IN_CHUNK` providers, not two or three per provider); a
    source is asked only about a provider with two copies."""
    session.flush()
    ordered = sorted(set(entity_ids))
    facts = _shared_facts(session, ordered)
    naming = _naming(session, ordered)
    counts = {e: len(facts[e][0]) for e in sorted(set(joined)) if e in facts}
    _mark_shared(session, counts, naming)
    session.flush()
    for entity_id in ordered:
        schools, copies = facts.get(entity_id, ((), 0))
        if _not_shareable(entity_id, (oidc for _, oidc in schools)):
            raise DuplicateEntry("school", "idp_entity_id", entity_id)
        if copies > 1 and not source_holds(session, entity_id):
            raise SharedIdpMetadataDiffers(entity_id, tuple(school_id for school_id, _ in schools))
        if len(schools) > 1 or entity_id in naming:
            for school_id, _ in schools:
                require_brin(entity_id, school_id)


def _shared_facts(
    session: Session, entity_ids: list[str]
) -> dict[str, tuple[tuple[tuple[str, bool], ...], int]]:
    """Per entity id any school is on: (each school's id and whether it speaks OpenID Connect,
    by id; how many different metadata copies its rows hold, an absent one counted as empty),
    as `_schools_on` reads them one provider at a time. The copies are counted by the database,
    so no metadata document leaves it."""
    schools: dict[str, list[tuple[str, bool]]] = {}
    copies: dict[str, int] = {}
    for chunk in in_chunks(entity_ids):
        rows = session.execute(
            select(SchoolRow.idp_entity_id, SchoolRow.id, SchoolOidcRow.school_id)
            .outerjoin(SchoolOidcRow, SchoolOidcRow.school_id == SchoolRow.id)
            .where(SchoolRow.idp_entity_id.in_(chunk))
            .order_by(SchoolRow.idp_entity_id, SchoolRow.id)
        )
        for entity_id, school_id, oidc in rows:
            schools.setdefault(entity_id, []).append((school_id, oidc is not None))
        counted = session.execute(
            select(
                SchoolRow.idp_entity_id,
                func.count(func.distinct(func.coalesce(SchoolRow.idp_metadata, ""))),
            )
            .where(SchoolRow.idp_entity_id.in_(chunk))
            .group_by(SchoolRow.idp_entity_id)
        )
        copies.update((row[0], row[1]) for row in counted)
    return {e: (tuple(found), copies.get(e, 0)) for e, found in schools.items()}


def set_names_school(session: Session, school_id: str, wanted: bool) -> tuple[str, bool]:
    """Require (or stop requiring) the school named in logins through `school_id`'s IdP:
    (its entity id, whether anything changed), refused as `check_names_school` says."""
    entity_id, ids = schools_on_idp_of(session, school_id, lock=True)
    return entity_id, _set_names(session, (entity_id, ids), wanted)


def require_names_school(session: Session, entity_id: str) -> bool:
    """Require the school named in logins through IdP `entity_id`, also one no school is on (a
    registry file's `[[idps_naming_school]]`): whether anything changed, refused as
    `check_names_school` says. Takes the IdP's lock (`lock_idp`)."""
    return _set_names(session, (entity_id, _ids_on_locked(session, entity_id)), True)


def set_idp_names_school(
    session: Session, entity_id: str, wanted: bool
) -> tuple[bool, tuple[str, ...]]:
    """Require (or stop requiring) the school named in logins through IdP `entity_id`, whether
    or not schools are on it (the operator's `school update-idp`): (whether anything changed,
    the ids of the schools on it). Refused as `check_names_school` says, and with `UnknownIdp`
    for an entity id no school is on, not marked, and held by no metadata source. Takes the
    IdP's lock (`lock_idp`)."""
    ids = _ids_on_locked(session, entity_id)
    if not ids and not names_school(session, entity_id) and not source_holds(session, entity_id):
        raise UnknownIdp(entity_id)
    return _set_names(session, (entity_id, ids), wanted), ids


def _ids_on_locked(session: Session, entity_id: str) -> tuple[str, ...]:
    """The ids of the schools on IdP `entity_id`, by id, read under its lock (`lock_idp`): no
    school joins or leaves it until the transaction ends."""
    lock_idp(session, [entity_id])
    return tuple(school_id for school_id, _, _ in _schools_on(session, entity_id))


def _set_names(session: Session, idp: tuple[str, tuple[str, ...]], wanted: bool) -> bool:
    if not check_names_school(session, idp, wanted):
        return False
    entity_id = idp[0]
    if wanted:
        session.add(SchoolNamingIdpRow(entity_id=entity_id))
    else:
        session.execute(delete(SchoolNamingIdpRow).where(SchoolNamingIdpRow.entity_id == entity_id))
    return True


def check_names_school(session: Session, idp: tuple[str, tuple[str, ...]], wanted: bool) -> bool:
    """Whether requiring (or stopping to require) the school named in logins through `idp`
    (`sharing_schools`' entity id or issuer and school ids) changes anything; refused for a
    provider with a school whose id is not a BRIN, and, to stop, for one several schools share."""
    entity_id, ids = idp
    if wanted == names_school(session, entity_id):
        return False
    if wanted and (problem := naming_problem(entity_id)):
        raise BadRequest(problem, code="idp_names_school_google")
    if wanted:
        for other in ids:
            require_brin(entity_id, other)
    elif len(ids) > 1:
        raise SharedIdpNamesSchool(entity_id, ids)
    return True


def schools_on_idp_of(
    session: Session, school_id: str, *, lock: bool
) -> tuple[str, tuple[str, ...]]:
    """`sharing_schools`, `UnknownSchool` for an unknown school. `lock`: read under the IdP's
    lock (`lock_idp`), so no school joins or leaves the IdP until the transaction ends."""
    found = sharing_schools(session, school_id)
    if found is not None and lock:
        lock_idp(session, [found[0]])
        found = sharing_schools(session, school_id)  # as it is under the lock
    if found is None:
        raise UnknownSchool(f"no school with id {school_id!r}")
    return found


def sharing_schools(session: Session, school_id: str) -> tuple[str, tuple[str, ...]] | None:
    """(the school's IdP entity id, the ids of every school on it, its own included, by id);
    None for an unknown school."""
    entity_id = session.scalar(select(SchoolRow.idp_entity_id).where(SchoolRow.id == school_id))
    if entity_id is None:
        return None
    ids = session.scalars(
        select(SchoolRow.id).where(SchoolRow.idp_entity_id == entity_id).order_by(SchoolRow.id)
    )
    return entity_id, tuple(ids)
