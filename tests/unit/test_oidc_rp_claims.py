"""Claim mapping of the OIDC relying party: school claims → canonical attributes and subject."""

from __future__ import annotations

import logging

import pytest

from broker.core.errors import MissingSubject, OtherSchoolAccount, SchoolNotAsserted
from broker.core.model import OidcUpstream, School
from broker.oidc.back import _needs_userinfo
from broker.oidc.rp_claims import has_catalogue_claims, map_claims, subject_of

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
    assert map_claims(claims, school()) == {
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
        mapped = map_claims(claims, school())
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
        assert map_claims(claims, school()) == {}
    assert "attribute=email school=99ZZ00 count=1" in caplog.text
    assert "sanne" not in caplog.text
    assert map_claims({**claims, "email_verified": True}, school()) == {
        "email": ("sanne@school.example",)
    }


def test_an_email_without_email_verified_is_passed_on() -> None:
    # Many school providers (Entra ID among them) never send email_verified.
    assert map_claims({"email": "sanne@school.example"}, school()) == {
        "email": ("sanne@school.example",)
    }


def test_email_values_that_are_not_strings_are_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    claims = {"email": ["sanne@school.example", 42, None], "email_verified": True}
    with caplog.at_level(logging.WARNING):
        assert map_claims(claims, school()) == {"email": ("sanne@school.example",)}
    assert "attribute=email school=99ZZ00 count=2" in caplog.text


def test_only_the_schools_own_brin_is_passed_on() -> None:
    assert map_claims({"school_id": "99ZZ00"}, school()) == {"school_id": ("99ZZ00",)}
    # A school's provider asserting another school's BRIN: dropped, the rest still arrives.
    other = {"school_id": ["99XX00", "99ZZ00"], "given_name": "Sanne"}
    assert map_claims(other, school()) == {"school_id": ("99ZZ00",), "given_name": ("Sanne",)}
    assert map_claims({"school_id": "99XX00"}, school()) == {}


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


def test_protocol_claims_are_never_attributes() -> None:
    claims = {"sub": "x", "acr": "y", "amr": ["pwd"], "nonce": "n", "sid": "s"}
    assert map_claims(claims, school()) == {}
    assert not has_catalogue_claims(claims)
    assert has_catalogue_claims({**claims, "given_name": "Sanne"})


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
