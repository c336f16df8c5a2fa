"""A scoped subject (username, student_number) feeds the chain pseudonym in the one spelling of
its scope the school is registered with, whichever protocol brought it (core/pseudonym.py
`registered_spelling`). The scope is matched ignoring case to accept the value (catalogue.py),
so `jan@School.nl` and `jan@school.nl` both arrive; taken as sent they were two pseudonyms for
one student, and lower-cased they would be a new one for every student of a school whose IdP
always sent the other spelling. Another spelling than the registered one is refused instead,
for SAML and OIDC alike, and the registered one keeps the pseudonym it always had."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from broker.core.errors import MissingSubject, ScopeSpelledOtherwise
from broker.core.model import OidcUpstream, School, UpstreamIdentity
from broker.core.pseudonym import derive_chain_pseudonym, registered_spelling, subject_input
from broker.oidc.rp_claims import map_claims, subject_of
from broker.saml.assertion_reader import Attribute, ReadResponse
from broker.saml.back import _verified
from broker.saml.response_checks import Window

KEY = bytes(range(32))
SAML_SCHOOL = School(
    "99XX00", "Lyceum", "https://idp.lyceum.example", "username", scopes=("school.nl",)
)
OIDC_SCHOOL = replace(
    SAML_SCHOOL,
    idp_entity_id="https://op.lyceum.example",
    oidc=OidcUpstream("https://op.lyceum.example", "broker", "secret"),
)


def _by_saml(school: School, value: str) -> UpstreamIdentity:
    """The identity the SAML back makes of an assertion whose nlEduPersonRealId is `value`."""
    read = ReadResponse(
        "_a1", Window(0.0, 0.0), None,
        (Attribute("nlEduPersonRealId", None, (value,)),), 0.0, None, None, None,
    )  # fmt: skip
    return _verified(read, school, must_name=False).identity


def _by_oidc(school: School, value: str) -> UpstreamIdentity:
    """The identity the OIDC back makes of claims whose preferred_username is `value`."""
    claims = {"sub": "s-1", "preferred_username": value}
    attributes = map_claims(claims, school, must_name=False)
    return UpstreamIdentity(school.id, subject_of(claims, attributes, school), attributes)


def _pseudonym(school: School, identity: UpstreamIdentity) -> str:
    return derive_chain_pseudonym(KEY, "leermiddelen", *subject_input(school, identity))


@pytest.mark.parametrize(
    ("school", "arrives"), [(SAML_SCHOOL, _by_saml), (OIDC_SCHOOL, _by_oidc)], ids=["saml", "oidc"]
)
def test_the_registered_spelling_is_the_pseudonym_and_another_is_refused(
    school: School, arrives: Callable[[School, str], UpstreamIdentity]
) -> None:
    registered = arrives(school, "jan@school.nl")
    assert _pseudonym(school, registered) == derive_chain_pseudonym(
        KEY, "leermiddelen", "school:99XX00", "jan@school.nl"
    )
    other = arrives(school, "jan@School.NL")
    # Accepted as an attribute (scopes compare ignoring case), as it always was ...
    assert other.attributes["username"] == ("jan@School.NL",)
    # ... but no second pseudonym for the student.
    with pytest.raises(ScopeSpelledOtherwise) as refused:
        subject_input(school, other)
    assert isinstance(refused.value, MissingSubject)
    assert refused.value.code == "subject_scope_spelling"
    assert "scope 'School.NL', the school is registered with 'school.nl'" in refused.value.detail
    assert "jan" not in refused.value.detail  # the scope only, never the student's value
    # A school registered with the spelling its IdP has always sent keeps its pseudonyms.
    upper = replace(school, scopes=("School.NL",))
    assert _pseudonym(upper, arrives(upper, "jan@School.NL")) == derive_chain_pseudonym(
        KEY, "leermiddelen", "school:99XX00", "jan@School.NL"
    )


def test_the_local_part_and_unscoped_subjects_are_taken_as_sent() -> None:
    # The part before the @ is the school's to spell: not compared, not changed.
    assert registered_spelling(SAML_SCHOOL, "Jan.De.Vries@school.nl") == "Jan.De.Vries@school.nl"
    # The last @ is the scope's.
    assert registered_spelling(SAML_SCHOOL, "a@b@school.nl") == "a@b@school.nl"
    # A subject that is no scoped attribute: an @ in it is part of an opaque value.
    by_name_id = replace(SAML_SCHOOL, subject_attribute="name_id")
    assert registered_spelling(by_name_id, "x@School.nl") == "x@School.nl"
    # A scope the school does not have at all (only a lookup can bring one): as typed.
    assert registered_spelling(SAML_SCHOOL, "jan@other.nl") == "jan@other.nl"
    by_number = replace(SAML_SCHOOL, subject_attribute="student_number")
    with pytest.raises(ScopeSpelledOtherwise):
        registered_spelling(by_number, "300101@SCHOOL.nl")
