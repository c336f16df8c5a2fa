"""Which federation registered an entity: `mdrpi:RegistrationInfo/@registrationAuthority`.

A source may be limited to the entities some federations registered (`registration_authorities`
in `[[metadata.sources]]`): a national school's or publisher's entity id registered again by
another federation and carried by an interfederation feed (eduGAIN) must not stand in for the
national registration. Which RegistrationInfo speaks for an entity is MDRPI v1.0's (section
2.1.1): its own, in the EntityDescriptor's `md:Extensions`; else the one of the nearest
EntitiesDescriptor around it, which the specification makes equivalent to an identical
RegistrationInfo on each descendant (a federation may tag a whole group once). Ancestors are
read only within the tree that was verified (the caller's parsed, signature-checked
document). An entity for which none says is left out by a list: fail closed
(docs/operations.md, "Registration authorities").
"""

from __future__ import annotations

from lxml import etree

from broker.saml.metadata_check import MD

MDRPI = "urn:oasis:names:tc:SAML:metadata:rpi"
_REGISTRATION_INFO = f"{{{MD}}}Extensions/{{{MDRPI}}}RegistrationInfo"
_ENTITY = f"{{{MD}}}EntityDescriptor"
_ENTITIES = f"{{{MD}}}EntitiesDescriptor"
# Reason codes of a member a source's list leaves out (logged with the entity id).
NO_AUTHORITY = "registration_authority_missing"
OTHER_AUTHORITY = "registration_authority_not_listed"


def registration_authority(entity: etree._Element) -> str | None:
    """The registrationAuthority that speaks for `entity`: of its own RegistrationInfo, else of
    the nearest enclosing EntitiesDescriptor's; None when none gives one. The nearest
    RegistrationInfo decides even when it names no authority (a descendant must not carry its
    own where an ancestor does, so a broken one is not overruled: fail closed)."""
    element: etree._Element | None = entity
    while element is not None and element.tag in (_ENTITY, _ENTITIES):
        info = element.find(_REGISTRATION_INFO)
        if info is not None:
            value = (info.get("registrationAuthority") or "").strip()
            return value or None
        # getparent() stays inside the parsed document: the verified root has no parent.
        element = element.getparent()
    return None


def left_out_by(authorities: frozenset[str], entity: etree._Element) -> str | None:
    """Why a source limited to `authorities` leaves `entity` out (a reason code), or None when
    it takes it. An empty list takes every entity, as a source without the setting."""
    if not authorities:
        return None
    authority = registration_authority(entity)
    if authority is None:
        return NO_AUTHORITY
    return None if authority in authorities else OTHER_AUTHORITY
