"""The attribute catalogue (attributes.md): incoming names, value checks, outgoing SAML names."""

from __future__ import annotations

import pytest

from broker.core.catalogue import (
    AFFILIATIONS,
    CATALOGUE,
    MACE_PREFIX,
    MAX_VALUE_LENGTH,
    MAX_VALUES,
    OID_FORMAT,
    UNSPECIFIED_FORMAT,
    accept_values,
    canonical_name_for,
    is_known_attribute,
)

# attributes.md, "Canonical attributes": canonical, oid-profile name, plain name, OIDC claim.
TABLE = [
    ("given_name", "urn:oid:2.5.4.42", "givenName", "given_name"),
    ("family_name", "urn:oid:2.5.4.4", "sn", "family_name"),
    ("display_name", "urn:oid:2.16.840.1.113730.3.1.241", "displayName", "name"),
    ("email", "urn:oid:0.9.2342.19200300.100.1.3", "mail", "email"),
    ("username", "nlEduPersonRealId", "nlEduPersonRealId", "preferred_username"),
    ("student_number", "nlEduPersonProfileId", "nlEduPersonProfileId", "student_number"),
    (
        "affiliation",
        "urn:oid:1.3.6.1.4.1.5923.1.1.1.1",
        "eduPersonAffiliation",
        "eduperson_affiliation",
    ),
    ("school_id", "nlEduPersonHomeOrganizationId", "nlEduPersonHomeOrganizationId", "school_id"),
    ("school_name", "nlEduPersonHomeOrganization", "nlEduPersonHomeOrganization", "school_name"),
    ("groups", "urn:oid:1.3.6.1.4.1.5923.1.5.1.1", "isMemberOf", "groups"),
    ("eck_id", "eckId", "eckId", "eck_id"),
]


def test_catalogue_holds_exactly_the_documented_attributes() -> None:
    assert set(CATALOGUE) == {row[0] for row in TABLE}
    assert all(is_known_attribute(row[0]) for row in TABLE)
    assert not is_known_attribute("givenName")
    assert not is_known_attribute("pseudonym")


@pytest.mark.parametrize(("canonical", "oid", "plain", "claim"), TABLE)
def test_incoming_names_map_to_canonical(canonical: str, oid: str, plain: str, claim: str) -> None:
    assert canonical_name_for(oid) == canonical
    assert canonical_name_for(plain) == canonical
    assert canonical_name_for(MACE_PREFIX + plain) == canonical
    assert canonical_name_for(claim) == canonical
    attribute = CATALOGUE[canonical]
    assert (attribute.oid_name, attribute.plain_name, attribute.claim) == (oid, plain, claim)


@pytest.mark.parametrize(
    ("incoming", "canonical"),
    [
        ("urn:mace:dir:attribute-def:givenName", "given_name"),
        ("urn:mace:dir:attribute-def:mail", "email"),
        ("urn:mace:dir:attribute-def:eduPersonAffiliation", "affiliation"),
        ("urn:mace:dir:attribute-def:isMemberOf", "groups"),
        ("preferred_username", "username"),
        ("name", "display_name"),
        ("groups", "groups"),
    ],
)
def test_incoming_examples(incoming: str, canonical: str) -> None:
    assert canonical_name_for(incoming) == canonical


@pytest.mark.parametrize(
    "incoming", ["", "givenname", "urn:oid:2.5.4.43", "urn:mace:dir:attribute-def:", "uid", "sub"]
)
def test_unknown_incoming_names_map_to_none(incoming: str) -> None:
    assert canonical_name_for(incoming) is None


def test_school_table_extends_and_wins() -> None:
    extra = {"klas": "groups", "givenName": "display_name"}
    assert canonical_name_for("klas", extra) == "groups"
    assert canonical_name_for("givenName", extra) == "display_name"
    assert canonical_name_for("sn", extra) == "family_name"
    assert canonical_name_for("klas") is None


@pytest.mark.parametrize("brin", ["99XX", "99XX00", "00AB12"])
def test_the_schools_own_brin_accepted(brin: str) -> None:
    assert accept_values("school_id", [brin], school_id=brin) == ((brin,), 0)


@pytest.mark.parametrize(
    ("sent", "school_id"),
    [
        ("99YY00", "99XX00"),  # another school's BRIN: a provider speaks for its own school only
        ("99XX", "99XX00"),  # the institution's BRIN for a location's: not the school's own id
        ("99XX00", "99XX"),
        ("99xx00", "99XX00"),  # no case folding
        ("99XX00", None),  # nothing to check against: nothing believed
    ],
)
def test_a_brin_other_than_the_schools_own_dropped(sent: str, school_id: str | None) -> None:
    assert accept_values("school_id", [sent], school_id=school_id) == ((), 1)


def test_only_the_schools_own_brin_kept_among_several() -> None:
    sent = ["99YY00", "99XX00", "00AB12"]
    assert accept_values("school_id", sent, school_id="99XX00") == (("99XX00",), 2)


@pytest.mark.parametrize(
    "brin",
    [
        "",
        "99xx",
        "9XX0",
        "99XX0",
        "99XX000",
        "XX99",
        "99XX00 ",
        " 99XX",
        "99X100",
        "99ÄX",
        "99XX00\n",
        "99XX\n",
    ],
)
def test_malformed_brin_dropped(brin: str) -> None:
    # Even a school registered under a malformed id cannot have it passed on as a BRIN.
    assert accept_values("school_id", [brin], school_id=brin) == ((), 1)


def test_affiliation_outside_the_list_dropped() -> None:
    kept, dropped = accept_values(
        "affiliation", ["student", "faculty", "Student", "member", "employee", ""]
    )
    assert kept == ("student", "employee")
    assert dropped == 4
    assert set(kept) <= AFFILIATIONS


def test_scoped_values_with_scopes_configured() -> None:
    kept, dropped = accept_values(
        "username",
        [
            "jan@school.example",
            "piet@other.example",
            "kees@SCHOOL.example",
            "noscope",
            "@school.example",
        ],
        ("School.Example",),
    )
    assert kept == ("jan@school.example", "kees@SCHOOL.example")
    assert dropped == 3


def test_scoped_values_without_scopes_configured_are_dropped() -> None:
    # A school registered without its realm cannot vouch for any realm.
    kept, dropped = accept_values("student_number", ["1@a.example", "2@b.example", "3"])
    assert kept == ()
    assert dropped == 3


def test_scoped_value_with_two_at_signs_is_dropped() -> None:
    assert accept_values("username", ["a@x@school.example"], ("school.example",)) == ((), 1)


def test_eck_id_only_in_its_one_spelling() -> None:
    good = "https://ketenid.nl/201703/" + "ab" * 64
    variants = [good.upper(), good.replace("https", "http"), good + "0", good[:-1], good + "\n"]
    assert accept_values("eck_id", [good, *variants]) == ((good,), len(variants))


def test_foreign_scope_dropped_for_student_number() -> None:
    assert accept_values("student_number", ["123@evil.example"], ("school.example",)) == ((), 1)


def test_over_long_values_dropped() -> None:
    fits = "a" * MAX_VALUE_LENGTH
    too_long = "a" * (MAX_VALUE_LENGTH + 1)
    assert accept_values("given_name", [fits, too_long]) == ((fits,), 1)
    assert accept_values("given_name", [""]) == ((), 1)


def test_value_count_is_capped() -> None:
    values = [f"klas-{i}" for i in range(MAX_VALUES + 10)]
    kept, dropped = accept_values("groups", values)
    assert kept == tuple(values[:MAX_VALUES])
    assert dropped == 10


def test_duplicates_dropped() -> None:
    assert accept_values("groups", ["3a", "3a", "3b"]) == (("3a", "3b"), 1)


def test_unknown_canonical_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        accept_values("shoe_size", ["42"])


@pytest.mark.parametrize(("canonical", "oid", "plain", "claim"), TABLE)
def test_saml_name_plain_profile(canonical: str, oid: str, plain: str, claim: str) -> None:
    assert CATALOGUE[canonical].saml_name("plain") == (plain, UNSPECIFIED_FORMAT, None)


@pytest.mark.parametrize(("canonical", "oid", "plain", "claim"), TABLE)
def test_saml_name_oid_profile(canonical: str, oid: str, plain: str, claim: str) -> None:
    name, name_format, friendly = CATALOGUE[canonical].saml_name("oid")
    assert name == oid
    if oid.startswith("urn:"):
        assert (name_format, friendly) == (OID_FORMAT, plain)
    else:
        # The nlEdu* family and eckId have no URN: plain name, unspecified format, both profiles.
        assert (name_format, friendly) == (UNSPECIFIED_FORMAT, None)


def test_nledu_names_keep_plain_name_in_oid_profile() -> None:
    for canonical in ("username", "student_number", "school_id", "school_name"):
        attribute = CATALOGUE[canonical]
        assert attribute.oid_name.startswith("nlEdu")
        assert attribute.saml_name("oid") == attribute.saml_name("plain")


def test_sensitive_attributes() -> None:
    assert {a.canonical for a in CATALOGUE.values() if a.sensitive} == {"eck_id", "student_number"}


@pytest.mark.parametrize("value", ["Sanne\x0bJansen", "a\x00b", "x\x1f", "\ufffe"])
def test_values_with_control_characters_are_dropped(value: str) -> None:
    """XML 1.0 cannot carry them: kept, they would break the SAML Response (lxml refuses them)."""
    assert accept_values("given_name", [value, "Sanne"]) == (("Sanne",), 1)


def test_tabs_and_line_breaks_are_kept() -> None:
    assert accept_values("given_name", ["Anne\tMarie"]) == (("Anne\tMarie",), 0)


@pytest.mark.parametrize(
    ("incoming", "canonical"),
    [
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname", "given_name"),
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname", "family_name"),
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", "email"),
        ("http://schemas.microsoft.com/identity/claims/displayname", "display_name"),
        # The UPN, a login name: not a person's name.
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", None),
    ],
)
def test_microsofts_default_claim_types_are_known(incoming: str, canonical: str | None) -> None:
    assert canonical_name_for(incoming) == canonical
