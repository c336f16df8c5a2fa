"""Which federation registered an entity: `mdrpi:RegistrationInfo/@registrationAuthority`.

A source may be limited to the entities some federations registered (`registration_authorities`
in `[[metadata.sources]]`): a national school's or publisher's entity id registered again by
another federation and carried by an interfederation feed (eduGAIN) must not stand in for the
national registration. Only the entity's own `md:Extensions` count. An aggregate's top-level
RegistrationInfo describes who registered the aggregate, not what a member says about itself;
and a member that does not say who registered it is left out by a list, never let in by
inheritance (docs/operations.md, "Registration authorities").
"""

from __future__ import annotations

from lxml import etree

from broker.saml.metadata_check import MD

MDRPI = "urn:oasis:names:tc:SAML:metadata:rpi"
_REGISTRATION_INFO = f"{{{MD}}}Extensions/{{{MDRPI}}}RegistrationInfo"
# Reason codes of a member a source's list leaves out (logged with the entity id).
NO_AUTHORITY = "registration_authority_missing"
OTHER_AUTHORITY = "registration_authority_not_listed"


def registration_authority(entity: etree._Element) -> str | None:
    """The entity's own registrationAuthority, or None when it gives none."""
    info = entity.find(_REGISTRATION_INFO)
    value = info.get("registrationAuthority") if info is not None else None
    return value.strip() or None if value is not None else None


def left_out_by(authorities: frozenset[str], entity: etree._Element) -> str | None:
    """Why a source limited to `authorities` leaves `entity` out (a reason code), or None when
    it takes it. An empty list takes every entity, as a source without the setting."""
    if not authorities:
        return None
    authority = registration_authority(entity)
    if authority is None:
        return NO_AUTHORITY
    return None if authority in authorities else OTHER_AUTHORITY
