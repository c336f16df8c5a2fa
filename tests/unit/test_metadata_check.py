"""Which endpoint URLs the broker accepts in metadata and as metadata sources."""

from __future__ import annotations

import pytest

from bench.metadata_aggregate import DS, MD, certificate_body, idp_entity
from broker.certificates import self_signed_pair
from broker.core.endpoints import is_acceptable_endpoint
from broker.saml.metadata_check import MetadataInvalid, idp_entity_id
from broker.saml.metadata_report import idp_metadata_problems


@pytest.mark.parametrize(
    "url",
    [
        "https://uitgever.example/saml/acs",
        "http://127.0.0.1:8002/acs",
        "http://127.8.9.10/acs",
        "http://localhost:8002/acs",
        "http://[::1]:8002/acs",
    ],
)
def test_accepted(url: str) -> None:
    assert is_acceptable_endpoint(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://uitgever.example/acs",
        "http://127.evil.example/acs",
        "http://127.0.0.1.nip.io/acs",
        "http://localhost.evil.example/acs",
        "http://10.0.0.1/acs",
        "javascript:alert(1)",
        "ftp://127.0.0.1/acs",
        "https:///acs",
    ],
)
def test_refused(url: str) -> None:
    assert not is_acceptable_endpoint(url)


SCHOOL = "https://idp.school.example/metadata"
_MEMBER_CERT = certificate_body(self_signed_pair("member")[1])


def _school(sso_url: str) -> str:
    xml = idp_entity(SCHOOL, sso_url, _MEMBER_CERT)
    return xml.replace(
        "<md:EntityDescriptor ", f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" ', 1
    )


@pytest.mark.parametrize(
    "sso_url", ["http://idp.school.example/sso", "javascript:alert(1)", "ftp://idp.school.example/"]
)
def test_a_school_whose_sso_url_is_not_https_is_refused_naming_it(sso_url: str) -> None:
    # The broker sends students there with the AuthnRequest; next they type their password.
    with pytest.raises(MetadataInvalid) as caught:
        idp_entity_id(_school(sso_url))
    assert caught.value.detail == (
        f"SSO URL '{sso_url}' of {SCHOOL} must be https (plain http only on loopback)"
    )
    entity_id, problems = idp_metadata_problems(_school(sso_url))
    assert entity_id is None and [p.detail for p in problems] == [caught.value.detail]


def test_a_school_on_loopback_http_or_https_is_taken() -> None:
    for sso_url in (
        "https://idp.school.example/sso",
        "http://127.0.0.1:8001/sso",
        "http://localhost:8001/sso",
    ):
        assert idp_entity_id(_school(sso_url)) == SCHOOL
