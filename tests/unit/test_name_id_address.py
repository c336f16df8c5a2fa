"""A persistent NameID that is a student's e-mail address cannot feed a pseudonym
(core/subjects.py `name_id_is_address`): one of the school's realms, or any from Google."""

from __future__ import annotations

import pytest

from broker.core.model import School
from broker.core.subjects import name_id_is_address

REALM_SCHOOL = School(
    "21AA00", "A", "http://adfs.school.example/adfs/services/trust", scopes=("School.example",)
)
GOOGLE_SCHOOL = School("23CC00", "G", "https://accounts.google.com/o/saml2?idpid=C01abcd23")


@pytest.mark.parametrize(
    ("value", "school", "address"),
    [
        ("s.jansen@school.example", REALM_SCHOOL, True),
        ("S.Jansen@SCHOOL.EXAMPLE", REALM_SCHOOL, True),  # a domain ignores case
        ("s.jansen@other.example", REALM_SCHOOL, False),  # not the school's realm
        ("Kx9V2p0m1Q==", REALM_SCHOOL, False),
        ("s.jansen@any.example", GOOGLE_SCHOOL, True),  # Google sends the primary address
        ("1234567890", GOOGLE_SCHOOL, False),  # a custom attribute holding an immutable id
        ("a@b@school.example", REALM_SCHOOL, False),  # not an address
        ("abc@nodot", GOOGLE_SCHOOL, False),
    ],
)
def test_an_address_is_told_apart(value: str, school: School, address: bool) -> None:
    assert name_id_is_address(value, school) is address


def test_only_googles_saml_idp_counts_as_google() -> None:
    lookalike = School("23CC01", "L", "https://accounts.google.com.evil.example/o/saml2?idpid=x")
    assert not name_id_is_address("s.jansen@any.example", lookalike)
