"""Which endpoint URLs the broker accepts in metadata and as metadata sources."""

from __future__ import annotations

import pytest
from lxml import etree

from bench.metadata_aggregate import (
    DS,
    MD,
    POST,
    certificate_body,
    idp_entity,
    sp_entity,
    with_slo,
)
from broker.certificates import self_signed_pair
from broker.core.endpoints import is_acceptable_endpoint
from broker.core.errors import N_
from broker.saml import metadata_report
from broker.saml.metadata_check import (
    ACS_NOT_HTTPS,
    SLO_RESPONSE_NOT_HTTPS,
    InsecureEndpoint,
    MetadataInvalid,
    idp_entity_id,
    insecure_endpoints,
    sp_entity_id,
)
from broker.saml.metadata_report import (
    endpoint_marks,
    idp_metadata_problems,
    refused_endpoints,
    sp_metadata_problems,
)


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
        # A browser reads the backslash as a slash and goes to evil.example; urlsplit sees
        # localhost behind a user name (2026-11-30 review).
        "http://evil.example\\@localhost/sso",
        "https://evil.example\\@localhost/sso",
        "http://evil.example\\.localhost/sso",
        "https://user:secret@uitgever.example/acs",
        "http://user@localhost/acs",
        "http://evil.example\t@localhost/acs",
        "http://local\nhost/acs",
        "https://uitgever.example/acs\x7f",
        "https://uitgever.example/ acs",
        "http://[::1/acs",
    ],
)
def test_refused(url: str) -> None:
    assert not is_acceptable_endpoint(url)


SCHOOL = "https://idp.school.example/metadata"
_MEMBER_CERT = certificate_body(self_signed_pair("member")[1])


SERVICE = "https://sp.publisher.example/metadata"
RULE = "must be https (plain http only on loopback)"


def _alone(entity: str) -> str:
    """One entity of bench/metadata_aggregate.py as a document of its own."""
    return entity.replace(
        "<md:EntityDescriptor ", f'<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="{DS}" ', 1
    )


def _school(sso_url: str) -> str:
    return _alone(idp_entity(SCHOOL, sso_url, _MEMBER_CERT))


def _service(acs_url: str = "https://sp.publisher.example/acs") -> str:
    return _alone(sp_entity(SERVICE, acs_url, _MEMBER_CERT))


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


def test_a_service_whose_acs_url_is_not_https_is_refused_naming_it() -> None:
    with pytest.raises(MetadataInvalid) as caught:
        sp_entity_id(_service("http://sp.publisher.example/acs"))
    assert caught.value.detail == f"ACS URL 'http://sp.publisher.example/acs' of {SERVICE} {RULE}"


# Where a LogoutRequest or LogoutResponse goes (the student's browser carries it, with the
# NameID): the same rule as the SSO and ACS URLs, Location and ResponseLocation alike.
SLO_REFUSED = [
    ({"location": "http://slo.example/slo"}, "SLO URL 'http://slo.example/slo'"),
    ({"location": "javascript:alert(1)"}, "SLO URL 'javascript:alert(1)'"),
    (
        {"location": "https://slo.example/slo", "response": "http://slo.example/answers"},
        "SLO response URL 'http://slo.example/answers'",
    ),
    (
        {"location": "https://slo.example/slo", "binding": POST, "response": "ftp://slo.example/"},
        "SLO response URL 'ftp://slo.example/'",
    ),
]


@pytest.mark.parametrize(("slo", "said"), SLO_REFUSED)
def test_a_school_whose_slo_url_is_not_https_is_refused_naming_it(
    slo: dict[str, str], said: str
) -> None:
    xml = with_slo(_school("https://idp.school.example/sso"), **slo)
    with pytest.raises(MetadataInvalid) as caught:
        idp_entity_id(xml)
    assert caught.value.detail == f"{said} of {SCHOOL} {RULE}"
    entity_id, problems = idp_metadata_problems(xml)  # the portal's upload, the same words
    assert entity_id is None and [p.detail for p in problems] == [caught.value.detail]


@pytest.mark.parametrize(("slo", "said"), SLO_REFUSED)
def test_a_service_whose_slo_url_is_not_https_is_refused_naming_it(
    slo: dict[str, str], said: str
) -> None:
    xml = with_slo(_service(), **slo)
    with pytest.raises(MetadataInvalid) as caught:
        sp_entity_id(xml)
    assert caught.value.detail == f"{said} of {SERVICE} {RULE}"
    entity_id, problems = sp_metadata_problems(xml)
    assert entity_id is None and [p.detail for p in problems] == [caught.value.detail]


def test_every_url_that_fails_is_listed_for_the_portal() -> None:
    xml = with_slo(_service("http://sp.publisher.example/acs"), "http://slo.example/slo")
    _, problems = sp_metadata_problems(with_slo(xml, "https://ok.example/", response="http://r/"))
    assert [p.message.split(" '")[0] for p in problems] == [
        "ACS URL",
        "SLO URL",
        "SLO response URL",
    ]
    assert all(p.params["entity_id"] == SERVICE for p in problems)


def test_https_and_loopback_slo_urls_are_taken() -> None:
    for location, response in (
        ("https://slo.example/slo", None),
        ("https://slo.example/slo", "https://slo.example/answers"),
        ("http://127.0.0.1:8002/slo", "http://localhost:8002/answers"),
        ("http://[::1]:8002/slo", None),
    ):
        assert sp_entity_id(with_slo(_service(), location, response=response)) == SERVICE
        school = with_slo(_school("https://idp.school.example/sso"), location, response=response)
        assert idp_entity_id(school) == SCHOOL


def test_a_logout_binding_the_broker_never_sends_with_is_not_its_concern() -> None:
    # SOAP towards a school: the broker sends schools no SOAP logout, so it is not judged (as
    # an ACS of a binding other than HTTP-POST is not).
    soap = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
    school = with_slo(
        _school("https://idp.school.example/sso"), "http://slo.example/soap", binding=soap
    )
    assert idp_entity_id(school) == SCHOOL


def test_a_publishers_soap_slo_url_is_under_the_rule() -> None:
    # The broker POSTs LogoutRequests to a publisher's SOAP endpoint (logout_soap.py): https,
    # or plain http only to loopback, as every URL it sends a NameID to.
    soap = "urn:oasis:names:tc:SAML:2.0:bindings:SOAP"
    xml = with_slo(_service(), "http://slo.example/soap", binding=soap)
    with pytest.raises(MetadataInvalid) as caught:
        sp_entity_id(xml)
    assert caught.value.detail == f"SLO URL 'http://slo.example/soap' of {SERVICE} {RULE}"
    assert refused_endpoints(xml, "sp") == ["slo"]
    assert endpoint_marks(xml, "sp") == ["SLO URL NOT https: no logout messages sent"]
    for location in ("https://slo.example/soap", "http://127.0.0.1:8002/soap"):
        assert sp_entity_id(with_slo(_service(), location, binding=soap)) == SERVICE


def test_the_listings_name_what_the_login_and_logout_paths_refuse() -> None:
    old = with_slo(_school("http://idp.school.example/sso"), "http://idp.school.example/slo")
    assert refused_endpoints(old, "idp") == ["sso", "slo"]
    assert endpoint_marks(old, "idp") == [
        "SSO URL NOT https: logins refused",
        "SLO URL NOT https: no logout messages sent",
    ]
    service = with_slo(_service(), "https://slo.example/", response="http://slo.example/answers")
    assert endpoint_marks(service, "sp") == ["SLO URL NOT https: no logout messages sent"]
    plain_acs = with_slo(_service("http://sp.publisher.example/acs"), "http://slo.example/")
    assert endpoint_marks(plain_acs, "sp") == [
        "ACS URL NOT https: logins refused",
        "SLO URL NOT https: no logout messages sent",
    ]
    assert refused_endpoints(_school("https://idp.school.example/sso"), "idp") == []
    assert refused_endpoints(None, "idp") == refused_endpoints("<not xml", "sp") == []


def test_the_listings_read_each_problems_kind_not_its_wording(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Mapping by msgid raised KeyError (a 500 on the portal pages and the CLI listings) for any
    # message it did not know: a reworded or new one must still be listed by its kind.
    reworded = N_("logout URL '%(url)s' of %(entity_id)s is not https")
    monkeypatch.setattr(
        metadata_report,
        "insecure_endpoints",
        lambda entity_id, descriptor, role: [
            InsecureEndpoint("slo", reworded, url="http://slo.example/", entity_id=entity_id)
        ],
    )
    xml = with_slo(_service(), "http://slo.example/")
    assert refused_endpoints(xml, "sp") == ["slo"]
    assert endpoint_marks(xml, "sp") == ["SLO URL NOT https: no logout messages sent"]


def test_each_insecure_endpoint_carries_its_kind() -> None:
    xml = with_slo(
        _service("http://sp.publisher.example/acs"),
        "https://slo.example/",
        response="http://slo.example/answers",
    )
    descriptor = etree.fromstring(xml.encode()).find(f"{{{MD}}}SPSSODescriptor")
    assert descriptor is not None
    problems = insecure_endpoints(SERVICE, descriptor, "sp")
    assert [(p.kind, p.message) for p in problems] == [
        ("acs", ACS_NOT_HTTPS),
        ("slo", SLO_RESPONSE_NOT_HTTPS),
    ]
