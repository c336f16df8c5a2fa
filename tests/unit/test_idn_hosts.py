"""Endpoint URLs whose host is an internationalised name as typed (`https://bücher.example`):
refused at every intake, naming the xn-- form to register instead, and never written into a
response header (core/endpoints.py says why)."""

from __future__ import annotations

import pytest

from bench.metadata_aggregate import idp_entity, sp_entity
from broker.core.endpoints import (
    Refusal,
    UrlRefusal,
    ascii_host_form,
    host_refusal,
    is_acceptable_endpoint,
    redirect_uri_problem,
    redirect_uri_refusal,
)
from broker.core.federation import LeftOut
from broker.core.model import ClientAuthMethod
from broker.core.origins import written_origin
from broker.oidc.registration import InvalidRegistration, new_client
from broker.saml.metadata_check import MetadataInvalid, idp_entity_id, sp_entity_id
from tests.unit.test_metadata_aggregate import MEMBER_CERT, aggregate, members, read

IDN = [
    ("https://bücher.example/cb", "https://xn--bcher-kva.example/cb"),
    ("https://例え.jp:8443/acs?x=1", "https://xn--r8jz45g.jp:8443/acs?x=1"),
    ("https://BÜCHER.example/cb", "https://xn--bcher-kva.example/cb"),
]


@pytest.mark.parametrize(("typed", "ascii_form"), IDN)
def test_a_unicode_host_is_refused_naming_its_xn_form(typed: str, ascii_form: str) -> None:
    assert ascii_host_form(typed) == ascii_form
    assert not is_acceptable_endpoint(typed)
    assert is_acceptable_endpoint(ascii_form)
    assert (
        redirect_uri_problem(typed)
        == f"must write its host in ASCII (its xn-- form): use {ascii_form}"
    )
    assert redirect_uri_problem(ascii_form) is None


def test_a_host_that_is_no_domain_name_is_refused_as_such() -> None:
    assert ascii_host_form("https://☃.net/cb") is None
    assert redirect_uri_problem("https://☃.net/cb") == (
        "has a host that is not a valid internationalised domain name"
    )


@pytest.mark.parametrize(("typed", "ascii_form"), IDN)
def test_the_verdict_names_the_kind_and_the_xn_form(typed: str, ascii_form: str) -> None:
    """One verdict every intake asks (portal, registration, import, metadata, discovery);
    each says it in its own words."""
    verdict = UrlRefusal(Refusal.NON_ASCII_HOST, ascii_form)
    assert host_refusal(typed) == verdict
    assert redirect_uri_refusal(typed) == verdict
    assert host_refusal(ascii_form) is None


def test_a_host_that_is_no_domain_name_has_no_xn_form_in_its_verdict() -> None:
    assert host_refusal("https://☃.net/cb") == UrlRefusal(Refusal.NOT_A_DOMAIN_NAME)
    assert host_refusal("https://[::1/cb") is None  # no host to judge: other checks do


def test_only_the_host_counts_a_unicode_path_is_kept() -> None:
    assert is_acceptable_endpoint("https://uitgever.example/bücher")


@pytest.mark.parametrize(("typed", "_ascii"), IDN)
def test_no_unicode_host_reaches_a_csp_source(typed: str, _ascii: str) -> None:
    assert written_origin(typed) is None


def test_an_oidc_registration_names_the_xn_form() -> None:
    with pytest.raises(InvalidRegistration) as caught:
        new_client(("https://bücher.example/cb",), ClientAuthMethod.SECRET_BASIC)
    assert "use https://xn--bcher-kva.example/cb" in str(caught.value)
    with pytest.raises(InvalidRegistration) as caught:
        new_client(
            ("https://ok.example/cb",),
            ClientAuthMethod.PRIVATE_KEY_JWT,
            jwks_uri="https://例え.jp/jwks",
        )
    assert "JWKS URL 'https://例え.jp/jwks' must write its host in ASCII" in str(caught.value)
    with pytest.raises(InvalidRegistration) as caught:
        new_client(
            ("https://ok.example/cb",),
            ClientAuthMethod.SECRET_BASIC,
            post_logout_redirect_uris=("https://bücher.example/bye",),
        )
    assert "use https://xn--bcher-kva.example/bye" in str(caught.value)


def test_saml_metadata_intake_names_the_xn_form() -> None:
    sp = sp_entity("https://sp.example/metadata", "https://bücher.example/acs", MEMBER_CERT)
    with pytest.raises(MetadataInvalid) as caught:
        sp_entity_id(sp.replace("<md:EntityDescriptor ", f"<md:EntityDescriptor {NS} ", 1))
    assert caught.value.detail == (
        "URL 'https://bücher.example/acs' of https://sp.example/metadata must write its host in "
        "ASCII (its xn-- form): use 'https://xn--bcher-kva.example/acs'"
    )
    idp = idp_entity("https://idp.example/metadata", "https://例え.jp/sso", MEMBER_CERT)
    with pytest.raises(MetadataInvalid) as caught:
        idp_entity_id(idp.replace("<md:EntityDescriptor ", f"<md:EntityDescriptor {NS} ", 1))
    assert "use 'https://xn--r8jz45g.jp/sso'" in caught.value.detail


NS = 'xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'


def test_a_feed_member_with_a_unicode_host_is_left_out_and_named() -> None:
    sp = sp_entity("https://idn.example/metadata", "https://bücher.example/acs", MEMBER_CERT)
    result = read(aggregate([sp, *members()]))
    assert "https://idn.example/metadata" not in {e.entity_id for e in result.entities}
    assert result.left_out == (
        LeftOut(
            "https://idn.example/metadata",
            "entity_unusable",
            "URL 'https://bücher.example/acs' of https://idn.example/metadata must write its "
            "host in ASCII (its xn-- form): use 'https://xn--bcher-kva.example/acs'",
            "sp",
        ),
    )


@pytest.mark.parametrize(
    ("typed", "ascii_form"),
    [
        ("https://b%C3%BCcher.example/cb", "https://xn--bcher-kva.example/cb"),
        ("https://%61pp.example/cb", "https://app.example/cb"),
    ],
)
def test_a_percent_encoded_host_is_refused_naming_what_a_browser_makes_of_it(
    typed: str, ascii_form: str
) -> None:
    """A browser decodes a percent-encoded host before anything else (WHATWG URL), so the
    host it uses, and any CSP source naming it, is not the one written."""
    assert not is_acceptable_endpoint(typed)
    assert written_origin(typed) is None
    assert redirect_uri_problem(typed) == (
        f"must write its host in ASCII (its xn-- form): use {ascii_form}"
    )
