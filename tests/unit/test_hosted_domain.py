"""A school's hosted domain (core/hosted_domain.py) and the login's check of `hd` (rp_claims)."""

from __future__ import annotations

import pytest

from broker.core.errors import ForeignAccount, SchoolSetupIncomplete
from broker.core.hosted_domain import (
    clean_hosted_domain,
    hosted_domain_matches,
    hosted_domain_problem,
    needs_hosted_domain,
    provider_domain_problem,
)
from broker.core.model import OidcUpstream, School
from broker.oidc.rp_claims import check_hosted_domain, map_claims

GOOGLE = "https://accounts.google.com"


def school(issuer: str = GOOGLE, domain: str = "school.example") -> School:
    upstream = OidcUpstream(issuer, "broker", "secret", hosted_domain=domain)
    return School("99ZZ00", "OIDC school", issuer, "sub", oidc=upstream)


@pytest.mark.parametrize(
    "issuer",
    [GOOGLE, GOOGLE + "/", "https://Accounts.Google.com", "https://accounts.google.com:443"],
)
def test_googles_issuer_needs_a_hosted_domain_however_written(issuer: str) -> None:
    assert needs_hosted_domain(issuer)
    assert provider_domain_problem(issuer, "") is not None
    assert provider_domain_problem(issuer, "school.example") is None


@pytest.mark.parametrize(
    "issuer",
    [
        "https://login.microsoftonline.com/0b1c2d3e-0000-4000-8000-000000000001/v2.0",
        "https://op.school.example",
        "https://accounts.google.com.evil.example",
        "not a url [",
    ],
)
def test_other_issuers_need_none(issuer: str) -> None:
    assert not needs_hosted_domain(issuer)
    assert provider_domain_problem(issuer, "") is None


def test_a_domain_is_stored_lower_cased_and_trimmed() -> None:
    assert clean_hosted_domain("  School.Example ") == "school.example"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("it@school.example", "e-mail"),
        ("https://school.example", "URL"),
        ("school.example/", "URL"),
        ("schoöl.example", "xn--"),
        ("school", "domain name"),
        ("school.example.", "domain name"),
        ("-school.example", "domain name"),
        ("sch ool.example", "domain name"),
        ("a" * 64 + ".example", "domain name"),
        ("x." * 130 + "nl", "253"),
        ("192.168.1.10", "IP address"),
        ("gmail.com", "Workspace"),
    ],
)
def test_what_is_not_a_hosted_domain_is_refused_with_the_reason(value: str, says: str) -> None:
    problem = hosted_domain_problem(clean_hosted_domain(value))
    assert problem is not None and says in problem


@pytest.mark.parametrize("value", ["school.example", "xn--schl-3qa.example", "a-b.c1.nl"])
def test_domains_are_accepted(value: str) -> None:
    assert hosted_domain_problem(value) is None


def test_hd_matches_without_regard_to_ascii_case_only() -> None:
    assert hosted_domain_matches("school.example", "school.example")
    assert hosted_domain_matches("School.EXAMPLE", "school.example")
    # The Kelvin sign lower-cases to "k": never a match, whatever it folds to.
    assert "\u212aschool.example".lower() == "kschool.example"
    assert not hosted_domain_matches("\u212aschool.example", "kschool.example")
    for other in ("other.example", "sub.school.example", "school.example.evil", "", None, 1):
        assert not hosted_domain_matches(other, "school.example")
    assert not hosted_domain_matches(["school.example"], "school.example")


def test_the_login_passes_with_the_schools_hd() -> None:
    check_hosted_domain({"sub": "s", "hd": "school.example"}, school())
    attributes = map_claims(
        {"sub": "s", "hd": "school.example", "given_name": "Sanne"}, school(), must_name=False
    )
    assert attributes == {"given_name": ("Sanne",)}  # `hd` is no attribute


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "s"},  # a personal Google account
        {"sub": "s", "hd": "other.example"},
        {"sub": "s", "hd": None},
        {"sub": "s", "hd": ["school.example"]},
        {"sub": "s", "hd": "school.example.evil.example"},
    ],
)
def test_an_account_outside_the_hosted_domain_is_refused(claims: dict[str, object]) -> None:
    with pytest.raises(ForeignAccount) as refused:
        check_hosted_domain({**claims, "given_name": "Sanne"}, school())
    assert refused.value.code == "hosted_domain_mismatch"
    assert refused.value.status == 403
    # The log reads the detail: the school, never the account's domain.
    assert "other.example" not in refused.value.detail


def test_a_shared_issuer_without_a_hosted_domain_refuses_everyone() -> None:
    for claims in ({"sub": "s"}, {"sub": "s", "hd": "school.example"}):
        with pytest.raises(SchoolSetupIncomplete) as refused:
            check_hosted_domain(claims, school(domain=""))
        assert refused.value.code == "hosted_domain_missing"


def test_a_school_of_its_own_issuer_needs_no_hd_unless_it_names_a_domain() -> None:
    own = "https://login.microsoftonline.com/0b1c2d3e-0000-4000-8000-000000000001/v2.0"
    check_hosted_domain({"sub": "s"}, school(own, ""))
    with pytest.raises(ForeignAccount):
        check_hosted_domain({"sub": "s"}, school(own, "school.example"))
