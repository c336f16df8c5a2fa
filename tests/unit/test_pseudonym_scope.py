"""A scoped subject (username, student_number) feeds the chain pseudonym as sent, its scope's
case included, whichever protocol brought it. The scope is matched ignoring case to accept the
value (catalogue.py), so `jan@School.nl` and `jan@school.nl` both arrive: refusing the other
spelling would stop every login of a school whose IdP always sends it (Entra ID keeps a UPN
suffix as typed), lower-casing would re-key all its students. So it is taken as sent and only
made visible: core/pseudonym.py `scope_spelled_otherwise` tells it apart, for SAML and OIDC
alike, and the login path logs it (tests/unit/test_sealed_and_flow.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from broker.core.assurance import DEFAULT_ASSURANCE
from broker.core.catalogue import accept_values
from broker.core.model import OidcUpstream, School, UpstreamIdentity
from broker.core.pseudonym import derive_chain_pseudonym, scope_spelled_otherwise, subject_input
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
    return _verified(read, school, DEFAULT_ASSURANCE, must_name=False).identity


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
def test_another_case_of_the_scope_is_taken_as_sent_and_told_apart(
    school: School, arrives: Callable[[School, str], UpstreamIdentity]
) -> None:
    registered = arrives(school, "jan@school.nl")
    assert _pseudonym(school, registered) == derive_chain_pseudonym(
        KEY, "leermiddelen", "school:99XX00", "jan@school.nl"
    )
    assert registered.subject is not None
    assert scope_spelled_otherwise(school, registered.subject) is None
    other = arrives(school, "jan@School.NL")
    # Accepted as an attribute (scopes compare ignoring case), as it always was ...
    assert other.attributes["username"] == ("jan@School.NL",)
    # ... and its pseudonym is the value's as sent: neither refused nor re-keyed ...
    assert _pseudonym(school, other) == derive_chain_pseudonym(
        KEY, "leermiddelen", "school:99XX00", "jan@School.NL"
    )
    # ... but told apart, with both scopes for the operator.
    assert other.subject is not None
    assert scope_spelled_otherwise(school, other.subject) == ("School.NL", "school.nl")
    # A school registered with the spelling its IdP sends: nothing to tell.
    upper = replace(school, scopes=("school.nl", "School.NL"))
    assert scope_spelled_otherwise(upper, "jan@School.NL") is None


def test_only_a_scoped_subject_of_a_registered_scope_in_another_case_is_told() -> None:
    # The part before the @ is the school's to spell: not compared.
    assert scope_spelled_otherwise(SAML_SCHOOL, "Jan.De.Vries@school.nl") is None
    # A second @ makes no scoped value, as the catalogue reads one: dropped before it could be
    # a subject, and nothing to tell.
    assert scope_spelled_otherwise(SAML_SCHOOL, "a@b@SCHOOL.nl") is None
    assert accept_values("username", ["a@b@SCHOOL.nl"], SAML_SCHOOL.scopes) == ((), 1)
    assert accept_values("username", ["b@SCHOOL.nl"], SAML_SCHOOL.scopes) == (("b@SCHOOL.nl",), 0)
    # A subject that is no scoped attribute: an @ in it is part of an opaque value.
    by_name_id = replace(SAML_SCHOOL, subject_attribute="name_id")
    assert scope_spelled_otherwise(by_name_id, "x@School.nl") is None
    # A scope the school does not have at all (the login path drops such values before).
    assert scope_spelled_otherwise(SAML_SCHOOL, "jan@other.nl") is None
    # No scope, or nothing before it.
    assert scope_spelled_otherwise(SAML_SCHOOL, "jan") is None
    assert scope_spelled_otherwise(SAML_SCHOOL, "@School.nl") is None
    by_number = replace(SAML_SCHOOL, subject_attribute="student_number")
    assert scope_spelled_otherwise(by_number, "300101@SCHOOL.nl") == ("SCHOOL.nl", "school.nl")
    # A school on the ECK iD: the user name feeds no pseudonym.
    by_eck = replace(SAML_SCHOOL, use_eck_id=True)
    assert scope_spelled_otherwise(by_eck, "jan@School.nl") is None
