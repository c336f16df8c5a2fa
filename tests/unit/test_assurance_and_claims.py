"""Assurance levels across SAML and OIDC, and the provider's scope/claims vocabulary."""

from __future__ import annotations

import pytest

from broker.core.assurance import (
    DEFAULT_ASSURANCE,
    MICROSOFT_MFA,
    PASSWORD,
    PASSWORD_PROTECTED,
    REFEDS_MFA,
    REFEDS_SFA,
    WINDOWS,
    Assurance,
    AssuranceLevel,
    SchoolContexts,
)
from broker.core.errors import BadRequest
from broker.oidc import requested_claims as claims


def test_levels_map_both_protocols_onto_one_name() -> None:
    assurance = DEFAULT_ASSURANCE
    assert assurance.level_of(PASSWORD_PROTECTED) == "password"
    assert assurance.level_of(REFEDS_SFA) == "password"
    assert assurance.level_of(REFEDS_MFA) == "mfa"
    assert assurance.level_of("urn:example:unknown") is None
    assert assurance.level_of(None) is None
    assert assurance.from_saml([REFEDS_MFA, "urn:x"]) == ("mfa",)
    assert assurance.from_oidc([REFEDS_SFA]) == ("password",)
    assert assurance.saml_reference("password") == PASSWORD_PROTECTED
    assert assurance.oidc_value("mfa") == REFEDS_MFA
    assert assurance.oidc_values() == (REFEDS_SFA, REFEDS_MFA)


THREE_LEVELS = Assurance(
    (
        AssuranceLevel("password", (PASSWORD_PROTECTED,), ()),
        AssuranceLevel("otp", ("urn:example:otp",), ()),
        AssuranceLevel("mfa", (REFEDS_MFA,), ()),
    )
)


@pytest.mark.parametrize(
    ("named", "comparison", "acceptable"),
    [
        # SAML core 3.3.2.2.1, on the configured order (weakest first).
        (("password",), "exact", ("password",)),
        (("password", "mfa"), "exact", ("password", "mfa")),
        (("password",), "minimum", ("password", "otp", "mfa")),
        (("otp", "mfa"), "minimum", ("otp", "mfa")),  # at least as strong as one of them
        (("password",), "better", ("otp", "mfa")),
        (("otp", "mfa"), "better", ("mfa",)),  # stronger than one of them
        (("mfa",), "better", ()),  # nothing is stronger than the strongest
        (("otp",), "maximum", ("password", "otp")),
        (("password", "otp"), "maximum", ("password", "otp")),  # no stronger than one of them
        ((), "minimum", ()),
        (("unknown",), "exact", ()),
        (("password",), "sideways", ()),  # not a comparison: accepts nothing
    ],
)
def test_a_comparison_is_judged_on_the_order_of_the_levels(
    named: tuple[str, ...], comparison: str, acceptable: tuple[str, ...]
) -> None:
    assert THREE_LEVELS.acceptable(named, comparison) == acceptable


def test_the_default_levels_order_password_below_mfa() -> None:
    assert DEFAULT_ASSURANCE.acceptable(("password",), "minimum") == ("password", "mfa")
    assert DEFAULT_ASSURANCE.acceptable(("mfa",), "maximum") == ("password", "mfa")


@pytest.mark.parametrize(
    ("reference", "level"),
    [
        (PASSWORD, "password"),  # Entra ID, a password sign-in
        (WINDOWS, "password"),  # ADFS, Windows integrated sign-in on a school PC
        ("urn:oasis:names:tc:SAML:2.0:ac:classes:Kerberos", "password"),
        # A certificate or smartcard: one factor, as strong as a password at least; not MFA.
        ("urn:oasis:names:tc:SAML:2.0:ac:classes:X509", "password"),
        ("urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI", "password"),
        (MICROSOFT_MFA, "mfa"),  # ADFS after MFA
        ("urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified", None),
    ],
)
def test_the_products_classes_have_their_level(reference: str, level: str | None) -> None:
    assert DEFAULT_ASSURANCE.level_of(reference) == level


ENTRA_METHODS = "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/"


@pytest.mark.parametrize(
    ("reference", "methods", "reported"),
    [
        # Entra ID names the first factor's class and lists MFA among the methods.
        (PASSWORD, [ENTRA_METHODS + "password", MICROSOFT_MFA], MICROSOFT_MFA),
        (PASSWORD, [ENTRA_METHODS + "password"], PASSWORD),
        # A method never lowers the class, and an unknown one changes nothing.
        (REFEDS_MFA, [PASSWORD], REFEDS_MFA),
        (None, ["urn:example:retina"], None),
        ("urn:example:retina", [], "urn:example:retina"),
    ],
)
def test_a_stronger_method_beside_the_class_counts(
    reference: str | None, methods: list[str], reported: str | None
) -> None:
    assert DEFAULT_ASSURANCE.reported(reference, methods) == reported


@pytest.mark.parametrize(
    ("acceptable", "asked"),
    [
        # Any level will do: the school is asked for none (Entra ID would refuse a student who
        # signed in with Windows or MFA when asked for a password, exactly: AADSTS75011).
        (("password", "otp", "mfa"), SchoolContexts((), "exact")),
        # From a stronger level up: that level, at least.
        (("otp", "mfa"), SchoolContexts(("urn:example:otp",), "minimum")),
        (("mfa",), SchoolContexts((REFEDS_MFA,), "minimum")),
        # Anything else, exactly those levels.
        (("password",), SchoolContexts((PASSWORD_PROTECTED,), "exact")),
        (("password", "otp"), SchoolContexts((PASSWORD_PROTECTED, "urn:example:otp"), "exact")),
        (("password", "mfa"), SchoolContexts((PASSWORD_PROTECTED, REFEDS_MFA), "exact")),
        ((), SchoolContexts((), "exact")),
    ],
)
def test_the_school_is_asked_no_narrower_than_needed(
    acceptable: tuple[str, ...], asked: SchoolContexts
) -> None:
    assert THREE_LEVELS.school_request(acceptable) == asked


def test_a_wish_that_is_not_required_asks_for_at_least_its_weakest_level() -> None:
    """OIDC `acr_values` without `essential`: any answer will do, so a password wish asks the
    school for nothing in particular, an MFA wish for MFA at least."""
    assert THREE_LEVELS.school_request(("password",), required=False) == SchoolContexts()
    assert THREE_LEVELS.school_request(("mfa",), required=False) == SchoolContexts(
        (REFEDS_MFA,), "minimum"
    )
    assert THREE_LEVELS.school_request(("otp",), required=False) == SchoolContexts(
        ("urn:example:otp",), "minimum"
    )


def test_scopes_and_claims_parameter_name_canonical_attributes() -> None:
    asked = claims.requested_attributes(
        ["openid", "email"], {"userinfo": {"given_name": None, "sub": None, "nonsense": None}}
    )
    assert asked == frozenset({"email", "given_name"})
    assert claims.requested_attributes(["openid", "profile"], {}) >= {
        "given_name",
        "family_name",
        "display_name",
        "username",
    }
    assert claims.requested_attributes(["openid"], {}) == frozenset()


def test_acr_in_the_claims_parameter() -> None:
    assert claims.requested_acr(
        {"id_token": {"acr": {"essential": True, "values": ["a", "b"]}}}
    ) == (
        ("a", "b"),
        True,
    )
    assert claims.requested_acr({"userinfo": {"acr": {"value": "a"}}}) == (("a",), False)
    assert claims.requested_acr({}) == ((), False)


@pytest.mark.parametrize("raw", ["{", "[]", '{"id_token": 3}', '{"other": {}}', "x" * 5000])
def test_a_malformed_claims_parameter_is_refused(raw: str) -> None:
    with pytest.raises(BadRequest):
        claims.parse_claims_parameter(raw)


def test_released_attributes_become_claims() -> None:
    released = claims.release_claims(
        {"given_name": ("Sanne",), "groups": ("klas-3a", "klas-3b"), "affiliation": ("student",)}
    )
    assert released == {
        "given_name": "Sanne",
        "groups": ["klas-3a", "klas-3b"],
        "eduperson_affiliation": ["student"],
    }


def test_sub_values_in_the_claims_parameter() -> None:
    a, b = "a" * 64, "b" * 64
    assert claims.requested_subjects({}) is None
    assert claims.requested_subjects({"id_token": {"sub": None}}) is None
    assert claims.requested_subjects({"userinfo": {"sub": {"essential": True}}}) is None
    assert claims.requested_subjects({"id_token": {"sub": {"value": a}}}) == frozenset({a})
    assert claims.requested_subjects({"userinfo": {"sub": {"values": [a, b]}}}) == frozenset({a, b})
    # Each member must hold: what both name.
    both = {"id_token": {"sub": {"value": a}}, "userinfo": {"sub": {"values": [a, b]}}}
    assert claims.requested_subjects(both) == frozenset({a})
    apart = {"id_token": {"sub": {"value": a}}, "userinfo": {"sub": {"value": b}}}
    assert claims.requested_subjects(apart) == frozenset()


@pytest.mark.parametrize(
    "request_", [{"value": 7}, {"values": "x"}, {"values": [1]}, {"value": None}]
)
def test_a_sub_value_that_is_no_text_is_refused(request_: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        claims.requested_subjects({"id_token": {"sub": request_}})


def test_a_claims_parameter_nested_past_the_stack_is_refused_not_a_crash() -> None:
    """Within the length cap, JSON can nest deeper than the interpreter's stack."""
    deep = "[" * 2000 + "]" * 2000
    with pytest.raises(BadRequest, match="not JSON"):
        claims.parse_claims_parameter(deep)
