"""The catalogue attributes a school sent, whatever its protocol: the values that fit are kept,
the rest dropped and logged by attribute name and count only (never a value). The SAML back
(`broker/saml/back.py`) and the OIDC back (`broker/oidc/rp_claims.py`) each collect the values
by canonical name in their own way, then both end here, so both drop by the same rules, and
both refuse a board's login that does not name the chosen school (`check_asserted_school`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from broker.core.catalogue import CATALOGUE, accept_values, is_brin
from broker.core.errors import OtherSchoolAccount, SchoolNotAsserted
from broker.core.model import School
from broker.core.ports import RegistryReader
from broker.core.shared_idp import (
    SCHOOL_ATTRIBUTE,
    asserted_school_matches,
    must_name_school,
    names_a_school,
)

log = logging.getLogger(__name__)


def accepted_values(
    collected: Mapping[str, Sequence[str]],
    school: School,
    refused: Mapping[str, int] | None = None,
    *,
    must_name: bool,
) -> dict[str, tuple[str, ...]]:
    """`collected`: values by canonical attribute name; `refused`: how many values of each the
    protocol side already refused (counted with the drops). In catalogue order. `must_name`
    (a board's IdP, `school_must_be_named`): the other BRINs it sends are not counted as
    dropped (`_expected_drops`)."""
    refused = refused or {}
    accepted: dict[str, tuple[str, ...]] = {}
    for canonical in CATALOGUE:
        if canonical not in collected and canonical not in refused:
            continue
        values = collected.get(canonical, ())
        kept, dropped = accept_values(canonical, values, school.scopes, school_id=school.id)
        dropped += refused.get(canonical, 0)
        if must_name and canonical == SCHOOL_ATTRIBUTE:
            dropped -= _expected_drops(values, school.id)
        if dropped:
            log.warning(
                "dropped values that do not fit attribute=%s school=%s count=%d",
                canonical,
                school.id,
                dropped,
            )
        if kept:
            accepted[canonical] = kept
    return accepted


def _expected_drops(asserted: Sequence[str], school_id: str) -> int:
    """How many of a board's IdP's `school_id` values are other schools' BRINs: a student
    enrolled at two of the board's schools carries both, and the other is dropped as it should
    be. Not counted in the drop line: with the school and the time of the login, that line
    would say the student is enrolled at another school too (personal data in the log)."""
    return sum(1 for value in asserted if is_brin(value) and value != school_id)


def school_must_be_named(registry: RegistryReader, school: School) -> bool:
    """Whether a login at `school` must name it (core/shared_idp.py): a school whose IdP (SAML
    entity id or OpenID issuer, both its `idp_entity_id`) the registry marks so, or that other
    schools are on. From the registry's cached view on the login path: no store round trip."""
    entity_id = school.idp_entity_id
    return must_name_school(
        registry.idp_names_school(entity_id), registry.schools_by_idp(entity_id)
    )


def check_asserted_school(
    collected: Mapping[str, Sequence[str]], school: School, *, must_name: bool
) -> None:
    """Refuse a login through a board's IdP (`must_name`: `school_must_be_named`) whose answer
    does not name the chosen school as the student's (core/shared_idp.py). `collected`: the
    values as sent, before `accepted_values` drops another school's BRIN (which would make it
    look absent). The reasons carry the chosen school's id only: never the value the IdP
    sent."""
    if not must_name:
        return
    asserted = collected.get(SCHOOL_ATTRIBUTE, ())
    if not names_a_school(asserted):
        raise SchoolNotAsserted(f"school {school.id}: its shared IdP named no school")
    if not asserted_school_matches(asserted, school.id):
        raise OtherSchoolAccount(f"school {school.id}: its shared IdP named another school")
