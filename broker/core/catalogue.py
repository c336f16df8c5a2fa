"""The attribute catalogue (attributes.md): canonical names and their names at every edge.

The broker speaks canonical names inside; SAML and OIDC names exist only at the edges. Incoming
names from schools are mapped with `canonical_name_for`; values that do not fit the attribute (or
the school that sent them) are dropped by `accept_values` (the caller logs the attribute *name*
only).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

OID_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
UNSPECIFIED_FORMAT = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"
PAIRWISE_ID = "urn:oasis:names:tc:SAML:attribute:pairwise-id"
PREVIOUS_PSEUDONYM = "urn:ketenbroker:previous-pseudonym"
MACE_PREFIX = "urn:mace:dir:attribute-def:"

AFFILIATIONS = frozenset({"student", "employee", "staff", "affiliate"})
# \Z, not $: `$` also matches before a trailing newline, which would let "99XX00\n" through.
_ECK_ID = re.compile(r"\Ahttps://ketenid\.nl/201703/[0-9a-f]{128}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_BRIN = re.compile(r"\A[0-9]{2}[A-Z]{2}([0-9]{2})?\Z")
# Values are bounded: a school IdP cannot push a megabyte into an assertion through us.
MAX_VALUE_LENGTH = 256
MAX_VALUES = 64


@dataclass(frozen=True)
class Attribute:
    canonical: str
    meaning: str
    oid_name: str
    plain_name: str
    claim: str
    scope: str
    sensitive: bool = False
    scoped: bool = False  # value must be `something@scope` with a scope of the school

    def saml_name(self, profile: str) -> tuple[str, str, str | None]:
        """(Name, NameFormat, FriendlyName) for the `oid` or `plain` naming profile."""
        if profile == "plain":
            return self.plain_name, UNSPECIFIED_FORMAT, None
        if self.oid_name.startswith("urn:"):
            return self.oid_name, OID_FORMAT, self.plain_name
        # Names without a URN form (the nlEdu* family) keep their plain name in both profiles.
        return self.oid_name, UNSPECIFIED_FORMAT, None


CATALOGUE: Mapping[str, Attribute] = {
    a.canonical: a
    for a in (
        Attribute(
            "given_name", "first name", "urn:oid:2.5.4.42", "givenName", "given_name", "profile"
        ),
        Attribute("family_name", "surname", "urn:oid:2.5.4.4", "sn", "family_name", "profile"),
        Attribute(
            "display_name",
            "full display name",
            "urn:oid:2.16.840.1.113730.3.1.241",
            "displayName",
            "name",
            "profile",
        ),
        Attribute(
            "email", "e-mail address", "urn:oid:0.9.2342.19200300.100.1.3", "mail", "email", "email"
        ),
        Attribute(
            "username",
            "school-chosen user name",
            "nlEduPersonRealId",
            "nlEduPersonRealId",
            "preferred_username",
            "profile",
            scoped=True,
        ),
        Attribute(
            "student_number",
            "student number at the school",
            "nlEduPersonProfileId",
            "nlEduPersonProfileId",
            "student_number",
            "school",
            sensitive=True,
            scoped=True,
        ),
        Attribute(
            "affiliation",
            "student, employee, staff, affiliate",
            "urn:oid:1.3.6.1.4.1.5923.1.1.1.1",
            "eduPersonAffiliation",
            "eduperson_affiliation",
            "school",
        ),
        Attribute(
            "school_id",
            "the school's BRIN",
            "nlEduPersonHomeOrganizationId",
            "nlEduPersonHomeOrganizationId",
            "school_id",
            "school",
        ),
        Attribute(
            "school_name",
            "the school's name",
            "nlEduPersonHomeOrganization",
            "nlEduPersonHomeOrganization",
            "school_name",
            "school",
        ),
        Attribute(
            "groups",
            "class and group memberships",
            "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
            "isMemberOf",
            "groups",
            "groups",
        ),
        Attribute(
            "eck_id",
            "ECK iD from the Nummervoorziening",
            "eckId",
            "eckId",
            "eck_id",
            "school",
            sensitive=True,
        ),
    )
}

# The claim types ADFS and Entra ID send by default for these (their SAML attribute Names),
# so a school need not rename them. Not Microsoft's `…/claims/name`: that is the UPN, a login
# name, not a person's name.
_MICROSOFT_CLAIMS = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/"
MICROSOFT_NAMES = {
    _MICROSOFT_CLAIMS + "givenname": "given_name",
    _MICROSOFT_CLAIMS + "surname": "family_name",
    _MICROSOFT_CLAIMS + "emailaddress": "email",
    "http://schemas.microsoft.com/identity/claims/displayname": "display_name",
}

# Incoming names (SAML oid and plain names, the MACE form, common OIDC claims, Microsoft's
# claim types) → canonical.
_INCOMING: dict[str, str] = {}
for _attr in CATALOGUE.values():
    for _name in (_attr.oid_name, _attr.plain_name, MACE_PREFIX + _attr.plain_name, _attr.claim):
        _INCOMING.setdefault(_name, _attr.canonical)
for _name, _canonical in MICROSOFT_NAMES.items():
    _INCOMING.setdefault(_name, _canonical)
INCOMING_NAMES: Mapping[str, str] = _INCOMING


def is_brin(value: str) -> bool:
    """Whether `value` is spelled as a BRIN (12AB, or 12AB01 for a location): the one spelling
    a `school_id` value is accepted in, compared with the school's id exactly."""
    return bool(_BRIN.match(value))


def is_known_attribute(name: str) -> bool:
    return name in CATALOGUE


def canonical_name_for(incoming: str, extra: Mapping[str, str] | None = None) -> str | None:
    """The canonical name of an incoming attribute name; a school's own table wins."""
    if extra and incoming in extra:
        return extra[incoming]
    return INCOMING_NAMES.get(incoming)


def split_scoped(value: str) -> tuple[str, str] | None:
    """(local part, scope) of a scoped value, `local@scope`: the scope is what follows the
    one `@`, the local part is not empty. None for any other value, one with a second `@`
    included: an identifier of the school's own realm has one."""
    local, sep, scope = value.rpartition("@")
    if not sep or not local or "@" in local:
        return None
    return local, scope


def registered_scope(scope: str, school_scopes: Iterable[str]) -> str | None:
    """The first of `school_scopes` that `scope` equals when case is ignored (a scope is a
    domain name, and DNS ignores case), as registered; None when none does."""
    wanted = scope.lower()
    return next((each for each in school_scopes if each.lower() == wanted), None)


def _fits(
    attribute: Attribute, value: str, school_scopes: tuple[str, ...], school_id: str | None
) -> bool:
    if not value or len(value) > MAX_VALUE_LENGTH:
        return False
    if _CONTROL.search(value):
        # No control characters (tab, newline aside): XML 1.0 cannot carry most of them, and
        # no name, e-mail address or identifier needs one.
        return False
    if attribute.canonical == "school_id":
        # A school's provider speaks for that school only: the one BRIN it may assert is the
        # school's own (School.id is its BRIN), so no provider can claim another school's.
        return is_brin(value) and value == school_id
    if attribute.canonical == "affiliation":
        return value in AFFILIATIONS
    if attribute.scoped:
        scoped = split_scoped(value)
        # Only a realm the school was registered with: without one, the broker cannot tell the
        # school's own identifiers from another school's, so it passes on neither.
        return scoped is not None and registered_scope(scoped[1], school_scopes) is not None
    if attribute.canonical == "eck_id":
        # One exact spelling: a variant in case or form would give another sector pseudonym.
        return bool(_ECK_ID.match(value))
    return True


def accept_values(
    canonical: str,
    values: Iterable[str],
    school_scopes: tuple[str, ...] = (),
    *,
    school_id: str | None = None,
) -> tuple[tuple[str, ...], int]:
    """(the values that fit the attribute, how many were dropped).

    `school_scopes` and `school_id` describe the school whose provider sent the values: scoped
    values must carry one of its scopes, and `school_id` must be its own id. Without `school_id`
    every `school_id` value is dropped (nothing to check it against, so nothing is believed).
    """
    attribute = CATALOGUE[canonical]
    kept: list[str] = []
    dropped = 0
    for value in values:
        fits = _fits(attribute, value, school_scopes, school_id)
        if len(kept) < MAX_VALUES and fits and value not in kept:
            kept.append(value)
        else:
            dropped += 1
    return tuple(kept), dropped
