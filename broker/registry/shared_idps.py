"""The registry's rule for an identity provider several schools share (a school board's IdP).

A SAML IdP may be registered for several schools, each with its own id (BRIN) and pseudonym
namespace (revision 0014); the login then asks the IdP which school the student is of
(core/shared_idp.py). What the registry keeps true on every write:

- Only SAML schools share. An OpenID provider's issuer stays one school's: each OIDC school has
  its own client and callback, and the broker has no rule yet that tells one school's accounts
  at a shared issuer from another's (Google's hosted domain aside, core/hosted_domain.py).
- Schools that share an IdP hold the same metadata: the metadata is the IdP's, and the SAML side
  keeps one copy per entity id (reading.py `school_metadata`), so two rows that differed would
  let the registry pick one of them silently. A new school must bring the same metadata as the
  others (`SharedIdpMetadataDiffers` otherwise); an update of one school's metadata is an update
  of the IdP's and is written to every school on it (sql_registry.update_school_metadata).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from broker.core.model import School
from broker.registry.errors import DuplicateEntry, SharedIdpMetadataDiffers
from broker.registry.tables import SchoolOidcRow, SchoolRow


def check_joining(session: Session, school: School, metadata: str) -> None:
    """Refuse registering `school` (with `metadata`) where it may not share its IdP: another
    school's OpenID issuer, an IdP with an OIDC school on it, or other metadata than the schools
    already on it have. Nothing to refuse for an IdP no other school has."""
    others = session.execute(
        select(SchoolRow.id, SchoolRow.idp_metadata, SchoolOidcRow.school_id)
        .outerjoin(SchoolOidcRow, SchoolOidcRow.school_id == SchoolRow.id)
        .where(SchoolRow.idp_entity_id == school.idp_entity_id, SchoolRow.id != school.id)
        .order_by(SchoolRow.id)
    ).all()
    if not others:
        return
    if school.oidc is not None or any(oidc is not None for _, _, oidc in others):
        raise DuplicateEntry("school", "idp_entity_id", school.idp_entity_id)
    differing = tuple(school_id for school_id, xml, _ in others if (xml or "") != metadata)
    if differing:
        raise SharedIdpMetadataDiffers(school.idp_entity_id, differing)


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
