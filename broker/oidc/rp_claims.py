"""From a school's OIDC claims to the broker's canonical attributes and the student's subject.

The same rules as the SAML back: claims outside the catalogue are ignored, values that do not fit
an attribute are dropped and logged by attribute name and count only, and a school whose subject
claim is missing gets `MissingSubject`, never a fallback. Before any of that, an account that is
not the school's (a Google account outside its hosted domain) is refused: `check_hosted_domain`;
and through an issuer several schools share (a board's Entra ID tenant or Keycloak realm), one
whose `school_id` claim does not name the chosen school (`map_claims`, core/shared_idp.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.core.catalogue import CATALOGUE, canonical_name_for
from broker.core.errors import ForeignAccount, MissingSubject, SchoolSetupIncomplete
from broker.core.hosted_domain import hosted_domain_matches, lacks_hosted_domain
from broker.core.model import School
from broker.login.school_values import accepted_values, check_asserted_school

# For an OIDC school both mean "the provider's `sub`": `name_id` is the model's default.
SUB_SUBJECTS = frozenset({"sub", "name_id"})
# Protocol claims of an ID token: never attributes, whatever a school's mapping says.
PROTOCOL_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "acr", "amr", "azp"}
    | {"at_hash", "c_hash", "sid", "jti", "hd"}
)


def _values(value: Any) -> tuple[list[str], int]:
    """(the string values of a claim, how many values were not strings)."""
    items = value if isinstance(value, list) else [value]
    strings = [item.strip() for item in items if isinstance(item, str)]
    return strings, len(items) - len(strings)


def _email_verified(claims: Mapping[str, Any]) -> bool:
    """`email_verified` absent, or exactly the JSON boolean true.

    Absent is accepted: many school providers (Entra ID among them) never send the claim, and
    the address then comes from the school's own directory. Present, only `true` counts: the
    string "true", 1, null or "false" are a provider that does not say it verified the address.
    """
    if "email_verified" not in claims:
        return True
    return claims["email_verified"] is True


def require_hosted_domain_if_shared(school: School) -> None:
    """Refuse a school on a shared issuer (Google) that names no hosted domain: its provider
    cannot tell the broker which accounts are the school's. Before the student is sent there
    too (back.py), so nobody signs in at Google for a login that is refused anyway."""
    upstream = school.oidc
    if lacks_hosted_domain(upstream):
        raise SchoolSetupIncomplete(f"school {school.id} has a shared issuer and no hosted domain")


def check_hosted_domain(claims: Mapping[str, Any], school: School) -> None:
    """Refuse an account that is not the school's (core/hosted_domain.py).

    A school with a hosted domain: the provider's `hd` must be there and be that domain (a
    personal Google account has none; another organisation's Workspace has its own). A school on
    a shared issuer without one (registered before the rule, or written to the database by hand)
    is refused whoever signs in: the provider cannot tell the broker who is the school's.
    `claims` is the verified ID token's: `hd` is believed only signed (Google puts it there).
    The reasons carry no value: the `hd` of a stranger is not logged.
    """
    upstream = school.oidc
    domain = upstream.hosted_domain if upstream is not None else ""
    if not domain:
        require_hosted_domain_if_shared(school)
        return
    if "hd" not in claims:
        raise ForeignAccount(f"school {school.id}: account without a hosted domain (hd)")
    if not hosted_domain_matches(claims["hd"], domain):
        raise ForeignAccount(f"school {school.id}: account of another hosted domain (hd)")


def map_claims(
    claims: Mapping[str, Any], school: School, *, must_name: bool
) -> dict[str, tuple[str, ...]]:
    """The catalogue attributes in `claims`, values checked by `accept_values`. Called once the
    account is known to be the school's (`check_hosted_domain`, on the signed ID token, before
    userinfo is asked or a single attribute of a stranger's account is read: back.py).
    `must_name`: the school's issuer is a board's (login/school_values.py
    `school_must_be_named`), and its `school_id` claim must name this school, as SAML's
    nlEduPersonHomeOrganizationId must (`check_asserted_school`, on the values as sent). No
    default: a caller that forgets to say would otherwise let a board's login through unnamed."""
    collected: dict[str, list[str]] = {}
    refused: dict[str, int] = {}
    for name, value in claims.items():
        if name in PROTOCOL_CLAIMS:
            continue
        canonical = canonical_name_for(name)
        if canonical is None:
            continue  # not in the catalogue: the broker never passes it on
        if canonical == "email" and not _email_verified(claims):
            # The provider does not say plainly that it verified the address: not ours to vouch
            # for. Every value of the claim counts as dropped.
            refused[canonical] = refused.get(canonical, 0) + (
                len(value) if isinstance(value, list) else 1
            )
            continue
        strings, odd = _values(value)
        collected.setdefault(canonical, []).extend(strings)
        if odd:
            refused[canonical] = refused.get(canonical, 0) + odd
    check_asserted_school(collected, school, must_name=must_name)
    return accepted_values(collected, school, refused, must_name=must_name)


def _attribute_of(name: str) -> str | None:
    """The canonical attribute a claim name stands for; None for a protocol claim or a name
    outside the catalogue."""
    return None if name in PROTOCOL_CLAIMS else canonical_name_for(name)


def attributes_named(claims: Mapping[str, Any]) -> set[str]:
    """The canonical attributes `claims` say something about, under any of their names
    (`school_id`, `nlEduPersonHomeOrganizationId` and its urn:mace form are one attribute)."""
    return {canonical for name in claims if (canonical := _attribute_of(name)) is not None}


def with_userinfo(claims: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Any]:
    """The ID token's `claims` with the userinfo answer's added where the ID token says
    nothing: the signed ID token wins where both say something, by meaning, not by spelling.
    A userinfo claim is left out when the ID token has the same name, or any name of the same
    canonical attribute: else userinfo's `school_id` would stand beside (and, for a board's
    issuer, overrule) the ID token's `nlEduPersonHomeOrganizationId`, and an unsigned answer
    would name the school the signed one did not."""
    said = attributes_named(claims)
    merged = dict(claims)
    for name, value in info.items():
        if name not in merged and _attribute_of(name) not in said:
            merged[name] = value
    return merged


def subject_of(
    claims: Mapping[str, Any], attributes: Mapping[str, tuple[str, ...]], school: School
) -> str:
    """The value that feeds the chain pseudonym (pseudonyms.md); "" when the ECK iD does."""
    if school.use_eck_id:
        if not attributes.get("eck_id"):
            raise MissingSubject(f"school {school.id} sent no ECK iD")
        return ""  # the core takes the ECK iD from the attributes
    wanted = school.subject_attribute
    if wanted in SUB_SUBJECTS:
        value: Any = claims.get("sub")
    elif wanted in CATALOGUE:
        values = attributes.get(wanted, ())
        value = values[0] if len(values) == 1 else None
    else:
        value = claims.get(wanted)  # a provider's own claim, such as Entra ID's `oid`
    if not isinstance(value, str) or not value.strip():
        raise MissingSubject(f"school {school.id} sent no {wanted}")
    return value.strip()
