"""The rule for an IdP several schools share (core/shared_idp.py) and its check on a login's
collected values (login/school_values.py): the chosen school and only it, or a refusal by code;
an IdP of one school unchanged."""

from __future__ import annotations

import pytest

from broker.core.errors import NotTheChosenSchool, OtherSchoolAccount, SchoolNotAsserted
from broker.core.model import OidcUpstream, School, UpstreamIdentity
from broker.core.shared_idp import (
    asserted_school_matches,
    brin_problem,
    is_shared_idp,
    must_name_school,
    names_a_school,
    school_was_named,
    sharing_client,
)
from broker.login.school_values import check_asserted_school

IDP = "https://sts.bestuur.example/adfs/services/trust"
NOORD = School("10AA", "Lyceum Noord", IDP)
ZUID = School("10AA01", "Lyceum Zuid", IDP)


def test_an_idp_is_shared_from_two_schools_on() -> None:
    assert not is_shared_idp(())
    assert not is_shared_idp((NOORD,))
    assert is_shared_idp((NOORD, ZUID))


@pytest.mark.parametrize(
    ("asserted", "matches"),
    [
        (["10AA"], True),
        (["10AA", "10AA"], True),
        ([], False),
        ([""], False),
        (["10AA01"], False),
        (["10AA01", "10AA"], True),  # enrolled at two schools of the board: the chosen one is
        (["10BB", "10AA01"], False),
        (["10aa"], False),  # a BRIN has one spelling
        (["10AA "], False),  # the SAML back trims; the rule itself compares exactly
    ],
)
def test_only_the_chosen_school_matches(asserted: list[str], matches: bool) -> None:
    assert asserted_school_matches(asserted, "10AA") is matches


def test_names_a_school() -> None:
    assert not names_a_school([]) and not names_a_school([""])
    assert names_a_school(["10AA01"])


def test_a_shared_idp_must_name_the_chosen_school() -> None:
    check_asserted_school({"school_id": ["10AA"]}, NOORD, must_name=True)
    with pytest.raises(SchoolNotAsserted) as missing:
        check_asserted_school({"given_name": ["Sanne"]}, NOORD, must_name=True)
    assert missing.value.code == "school_not_asserted" and missing.value.status == 403
    with pytest.raises(OtherSchoolAccount) as other:
        check_asserted_school({"school_id": ["10AA01"]}, NOORD, must_name=True)
    assert other.value.code == "other_school" and other.value.status == 403
    assert isinstance(other.value, NotTheChosenSchool)
    # The reason names the chosen school, never the value the IdP sent.
    assert "10AA01" not in other.value.detail and "10AA" in other.value.detail


def test_an_idp_of_one_school_needs_no_school_named() -> None:
    check_asserted_school({}, NOORD, must_name=False)
    check_asserted_school({"school_id": ["10AA01"]}, NOORD, must_name=False)


def test_the_registry_flag_or_several_schools_require_the_school_named() -> None:
    assert not must_name_school(False, (NOORD,))
    assert must_name_school(True, (NOORD,))
    assert must_name_school(True, ())
    # Several schools on it: named, whatever the flag says (fail closed).
    assert must_name_school(False, (NOORD, ZUID))


def test_a_session_shows_its_school_was_named_by_the_accepted_school_id() -> None:
    assert not school_was_named(UpstreamIdentity(NOORD.id, "s", {}))
    assert not school_was_named(UpstreamIdentity(NOORD.id, "s", {"school_id": (ZUID.id,)}))
    assert school_was_named(UpstreamIdentity(NOORD.id, "s", {"school_id": (NOORD.id,)}))


@pytest.mark.parametrize("school_id", ["12AB", "12AB01"])
def test_a_brin_may_be_on_an_idp_that_names_the_school(school_id: str) -> None:
    assert brin_problem(school_id) is None


@pytest.mark.parametrize("school_id", ["lyceum-zuid", "12ab", "12AB1", " 12AB"])
def test_another_id_may_not(school_id: str) -> None:
    problem = brin_problem(school_id)
    assert problem is not None and f"school id {school_id!r} is not a BRIN" in problem


ISSUER = "https://login.microsoftonline.com/bestuur-tenant/v2.0"


def _on_issuer(school_id: str, client_id: str) -> School:
    return School(school_id, school_id, ISSUER, "sub", oidc=OidcUpstream(ISSUER, client_id, "s"))


def test_a_logout_token_concerns_the_schools_of_its_client_on_the_issuer() -> None:
    """A board's one client for several schools: its token may end a session at any of them;
    a school on the issuer with a client of its own is told at its own URI."""
    noord, zuid = _on_issuer("30CC", "board"), _on_issuer("30CC01", "board")
    own = _on_issuer("30CC02", "own-client")
    on_issuer = (noord, zuid, own)
    assert sharing_client(zuid, on_issuer) == ("30CC01", "30CC")
    assert sharing_client(noord, on_issuer) == ("30CC", "30CC01")
    assert sharing_client(own, on_issuer) == ("30CC02",)
    assert sharing_client(noord, (noord,)) == ("30CC",)
    # A SAML school (no client) is only ever itself.
    assert sharing_client(NOORD, (NOORD, ZUID)) == ("10AA",)
