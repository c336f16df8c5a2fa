"""Claim mapping of the OIDC relying party: school claims → canonical attributes and subject."""

from __future__ import annotations

import logging

import pytest

from broker.core.errors import MissingSubject, OtherSchoolAccount, SchoolNotAsserted
from broker.core.model import OidcUpstream, School
from broker.oidc.back import _needs_userinfo
from broker.oidc.rp_claims import attributes_named, map_claims, subject_of, with_userinfo

ECK_ID = "https://ketenid.nl/201703/" + "ab" * 64


def school(**changes: object) -> School:
    values: dict[str, object] = {
        "id": "99ZZ00",
        "name": "OIDC school",
        "idp_entity_id": "https://op.school.example",
        "subject_attribute": "sub",
        "scopes": ("school.example",),
        "oidc": OidcUpstream("https://op.school.example", "broker", "secret"),
    }
    values.update(changes)
    return School(**values)  # type: ignore[arg-type]


def test_oidc_claims_map_to_canonical_names() -> None:
    claims = {
        "sub": "s-1",
        "iss": "https://op.school.example",
        "given_name": "Sanne",
        "family_name": "Jansen",
        "name": "Sanne Jansen",
        "email": "sanne@school.example",
        "preferred_username": "sanne@school.example",
        "groups": ["klas-3a", "klas-3b"],
        "eduperson_affiliation": ["student"],
        "school_id": "99ZZ00",
        "school_name": "OIDC school",
        "student_number": "300101@school.example",
        "eck_id": ECK_ID,
        "oid": "not-in-the-catalogue",
    }
    assert map_claims(claims, school(), must_name=False) == {
        "given_name": ("Sanne",),
        "family_name": ("Jansen",),
        "display_name": ("Sanne Jansen",),
        "email": ("sanne@school.example",),
        "username": ("sanne@school.example",),
        "groups": ("klas-3a", "klas-3b"),
        "affiliation": ("student",),
        "school_id": ("99ZZ00",),
        "school_name": ("OIDC school",),
        "student_number": ("300101@school.example",),
        "eck_id": (ECK_ID,),
    }


def test_values_that_do_not_fit_are_dropped_and_logged_by_name_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    claims = {
        "eduperson_affiliation": ["student", "headmaster"],
        "school_id": "not a brin",
        "student_number": "300101@other-school.example",
        "groups": ["klas-3a", 42, {"nested": True}],
        "given_name": "",
    }
    with caplog.at_level(logging.WARNING):
        mapped = map_claims(claims, school(), must_name=False)
    assert mapped == {"affiliation": ("student",), "groups": ("klas-3a",)}
    text = caplog.text
    for name in ("affiliation", "school_id", "student_number", "groups"):
        assert f"attribute={name} " in text
    for value in ("headmaster", "not a brin", "300101", "other-school"):
        assert value not in text


@pytest.mark.parametrize("verified", [False, "false", "true", "True", 0, 1, None, [True], {}])
def test_an_email_is_passed_on_only_when_verified_is_exactly_true(
    verified: object, caplog: pytest.LogCaptureFixture
) -> None:
    claims = {"email": "sanne@school.example", "email_verified": verified}
    with caplog.at_level(logging.WARNING):
        assert map_claims(claims, school(), must_name=False) == {}
    assert "attribute=email school=99ZZ00 count=1" in caplog.text
    assert "sanne" not in caplog.text
    assert map_claims({**claims, "email_verified": True}, school(), must_name=False) == {
        "email": ("sanne@school.example",)
    }


def test_an_email_without_email_verified_is_passed_on() -> None:
    # Many school providers (Entra ID among them) never send email_verified.
    assert map_claims({"email": "sanne@school.example"}, school(), must_name=False) == {
        "email": ("sanne@school.example",)
    }


def test_email_values_that_are_not_strings_are_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    claims = {"email": ["sanne@school.example", 42, None], "email_verified": True}
    with caplog.at_level(logging.WARNING):
        assert map_claims(claims, school(), must_name=False) == {"email": ("sanne@school.example",)}
    assert "attribute=email school=99ZZ00 count=2" in caplog.text


def test_only_the_schools_own_brin_is_passed_on() -> None:
    assert map_claims({"school_id": "99ZZ00"}, school(), must_name=False) == {
        "school_id": ("99ZZ00",)
    }
    # A school's provider asserting another school's BRIN: dropped, the rest still arrives.
    other = {"school_id": ["99XX00", "99ZZ00"], "given_name": "Sanne"}
    assert map_claims(other, school(), must_name=False) == {
        "school_id": ("99ZZ00",),
        "given_name": ("Sanne",),
    }
    assert map_claims({"school_id": "99XX00"}, school(), must_name=False) == {}


def test_a_boards_issuer_must_name_the_chosen_school_in_its_claim() -> None:
    """`must_name` (a board's issuer, core/shared_idp.py): checked on the claims as sent,
    before another school's BRIN is dropped (which would make it look absent)."""
    named = {"school_id": "99ZZ00", "given_name": "Sanne"}
    assert map_claims(named, school(), must_name=True)["school_id"] == ("99ZZ00",)
    both = {"school_id": ["99XX00", "99ZZ00"]}  # enrolled at two of the board's schools
    assert map_claims(both, school(), must_name=True) == {"school_id": ("99ZZ00",)}
    with pytest.raises(OtherSchoolAccount):
        map_claims({"school_id": "99XX00"}, school(), must_name=True)
    for absent in ({"given_name": "Sanne"}, {"school_id": ""}, {"school_id": 99}):
        with pytest.raises(SchoolNotAsserted):
            map_claims(absent, school(), must_name=True)


def test_a_boards_issuer_without_the_claim_in_the_id_token_is_asked_userinfo() -> None:
    token = {"sub": "s", "given_name": "Sanne"}
    assert not _needs_userinfo(token, school(), must_name=False)
    assert _needs_userinfo(token, school(), must_name=True)
    assert not _needs_userinfo({**token, "school_id": "99ZZ00"}, school(), must_name=True)


def test_the_id_token_hides_userinfo_on_an_attribute_it_names_under_any_name() -> None:
    """The signed ID token wins where both say something, by meaning: its
    nlEduPersonHomeOrganizationId hides userinfo's `school_id` (and the urn:mace form), so
    userinfo cannot name the school the ID token did not."""
    token = {"sub": "s", "nlEduPersonHomeOrganizationId": "99XX00", "given_name": "Sanne"}
    info = {
        "sub": "s",
        "school_id": "99ZZ00",
        "urn:mace:dir:attribute-def:nlEduPersonHomeOrganizationId": "99ZZ00",
        "given_name": "Daan",
        "family_name": "Jansen",
        "oid": "entra-object-id",
    }
    merged = with_userinfo(token, info)
    assert merged == {**token, "family_name": "Jansen", "oid": "entra-object-id"}
    with pytest.raises(OtherSchoolAccount):
        map_claims(merged, school(), must_name=True)
    # The ID token's school under any of its names: userinfo is not asked for it.
    for name in ("nlEduPersonHomeOrganizationId", "school_id"):
        claims = {"sub": "s", "given_name": "Sanne", name: "99ZZ00"}
        assert not _needs_userinfo(claims, school(), must_name=True)
    # A subject attribute under another name of it counts as there too.
    eck = {"sub": "s", "eckId": ECK_ID}
    assert not _needs_userinfo(eck, school(use_eck_id=True), must_name=False)


def test_a_boards_other_brins_are_not_logged_as_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A student enrolled at two of the board's schools: the other BRIN is dropped, as it should
    be, and not logged (with the school and the time it says where else the student is
    enrolled). A value that fits no BRIN still is; off a board's issuer, another school's BRIN
    is a provider's mistake and is counted."""
    both = {"school_id": ["99XX00", "99ZZ00"]}
    with caplog.at_level(logging.WARNING):
        assert map_claims(both, school(), must_name=True) == {"school_id": ("99ZZ00",)}
    assert "dropped values" not in caplog.text
    with caplog.at_level(logging.WARNING):
        map_claims({"school_id": ["99XX00", "99ZZ00", "not a brin"]}, school(), must_name=True)
    assert "attribute=school_id school=99ZZ00 count=1" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        map_claims(both, school(), must_name=False)
    assert "attribute=school_id school=99ZZ00 count=1" in caplog.text


def test_protocol_claims_are_never_attributes() -> None:
    claims = {"sub": "x", "acr": "y", "amr": ["pwd"], "nonce": "n", "sid": "s"}
    assert map_claims(claims, school(), must_name=False) == {}
    assert not attributes_named(claims)
    assert attributes_named({**claims, "given_name": "Sanne"}) == {"given_name"}


@pytest.mark.parametrize("configured", ["sub", "name_id"])
def test_the_subject_is_sub_by_default(configured: str) -> None:
    assert subject_of({"sub": "s-1"}, {}, school(subject_attribute=configured)) == "s-1"


def test_a_provider_claim_can_be_the_subject() -> None:
    entra = school(subject_attribute="oid")
    assert subject_of({"sub": "pairwise", "oid": "object-id"}, {}, entra) == "object-id"
    with pytest.raises(MissingSubject):
        subject_of({"sub": "pairwise"}, {}, entra)


def test_a_catalogue_attribute_can_be_the_subject() -> None:
    by_number = school(subject_attribute="student_number")
    attributes = {"student_number": ("300101@school.example",)}
    assert subject_of({"sub": "s"}, attributes, by_number) == "300101@school.example"
    with pytest.raises(MissingSubject):
        subject_of({"sub": "s"}, {}, by_number)


@pytest.mark.parametrize("value", [None, "", "   ", 42, ["s-1"]])
def test_a_missing_or_odd_subject_never_falls_back(value: object) -> None:
    claims = {} if value is None else {"sub": value}
    with pytest.raises(MissingSubject):
        subject_of(claims, {}, school())


def test_eck_id_schools_take_the_subject_from_the_eck_id() -> None:
    eck = school(use_eck_id=True)
    assert subject_of({"sub": "s"}, {"eck_id": (ECK_ID,)}, eck) == ""
    with pytest.raises(MissingSubject):
        subject_of({"sub": "s"}, {}, eck)
