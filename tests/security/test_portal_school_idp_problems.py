"""What is wrong with a school's SAML metadata or OpenID provider, said on the identity provider
page in the page's language (the CLI keeps English): every problem found in one round, next to
the field it concerns, and nothing saved. The failing metadata and provider are a small app on
127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from html import unescape
from io import BytesIO

import pytest
from flask import Flask, Response, jsonify
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import OidcUpstream
from broker.web.portal.school_idp import secret_hint
from tests.support.live import free_ports, serve_app
from tests.support.portal import HTTPS, PortalSite, page_fields

IDP = f"/portal/school/{DEMO_SCHOOL_ID}/identity-provider"
MD = "urn:oasis:names:tc:SAML:2.0:metadata"
POST_BINDING = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"


def metadata(entity_id: str, descriptor: str, inner: str) -> str:
    return (
        f'<md:EntityDescriptor xmlns:md="{MD}" entityID="{entity_id}">'
        f'<md:{descriptor} protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{inner}</md:{descriptor}></md:EntityDescriptor>"
    )


# A publisher's metadata given as the school's: no IDPSSODescriptor at all.
SP_METADATA = metadata(
    "https://sp.elders.example",
    "SPSSODescriptor",
    f'<md:KeyDescriptor/><md:AssertionConsumerService Binding="{POST_BINDING}" '
    'Location="https://sp.elders.example/acs" index="0"/>',
)
# An IdP the broker cannot use for two reasons: an encryption key only, and no HTTP-Redirect SSO.
WEAK_IDP = metadata(
    "https://idp.zwak.example",
    "IDPSSODescriptor",
    f'<md:KeyDescriptor use="encryption"/><md:SingleSignOnService Binding="{POST_BINDING}" '
    'Location="https://idp.zwak.example/sso"/>',
)


def failing_peer(base_url: str) -> Flask:
    """Metadata that is not an IdP's, and an OpenID provider whose discovery document names
    another issuer; every other path answers 404."""
    app = Flask(__name__)

    @app.get("/sp-metadata")
    def sp_metadata() -> Response:
        return Response(SP_METADATA, content_type="application/samlmetadata+xml")

    @app.get("/other/.well-known/openid-configuration")
    def discovery() -> Response:
        return jsonify(
            {
                "issuer": f"{base_url}/elsewhere",
                "authorization_endpoint": f"{base_url}/authorize",
                "token_endpoint": f"{base_url}/token",
                "jwks_uri": f"{base_url}/jwks",
                "response_types_supported": ["code"],
            }
        )

    return app


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("school-idp-problems"), port=8790)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def peer() -> Iterator[str]:
    base_url = f"http://127.0.0.1:{free_ports(1)}"
    server = serve_app(base_url, failing_peer(base_url))
    yield base_url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def school(site: PortalSite) -> FlaskClient:
    return site.sign_in("school")


@pytest.fixture(scope="module")
def operator(site: PortalSite) -> FlaskClient:
    return site.sign_in("operator")  # once: a code is accepted once only


def post(
    client: FlaskClient, action: str, data: Mapping[str, object], lang: str, url: str = IDP
) -> tuple[int, str]:
    fields = page_fields(client.get(f"{url}?lang={lang}", base_url=HTTPS).get_data(as_text=True))
    response = client.post(
        f"{url}{action}",
        base_url=HTTPS,
        data={**fields, **data},
        content_type="multipart/form-data",
    )
    return response.status_code, response.get_data(as_text=True)


def field_error(page: str, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', page, re.S)
    assert found, f"no error next to {field}"
    return unescape(found.group(1))


def oidc_form(issuer: str, secret: str = "geheim-van-de-broker") -> dict[str, object]:
    return {
        "issuer": issuer,
        "client_id": "broker",
        "client_secret": secret,
        "algorithm": "RS256",
        "oidc_subject": "sub",
    }


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("nl", "de metadata kon niet worden opgehaald: de server antwoordde met HTTP 404"),
        ("en", "cannot fetch the metadata: HTTP 404"),
    ],
)
def test_a_metadata_address_that_answers_404(
    site: PortalSite, school: FlaskClient, peer: str, lang: str, said: str
) -> None:
    before = site.registry.school(DEMO_SCHOOL_ID)
    status, page = post(
        school, "/saml", {"metadata_url": f"{peer}/gone", "saml_subject": "name_id"}, lang
    )
    assert status == 400
    assert field_error(page, "metadata_url") == said  # next to the address, not the upload
    assert 'id="metadata_file-error"' not in page
    assert site.registry.school(DEMO_SCHOOL_ID) == before


@pytest.mark.parametrize(
    ("lang", "said", "not_said"),
    [
        (
            "nl",
            "de metadata van https://sp.elders.example beschrijft geen inlogdienst "
            "(IDPSSODescriptor)",
            "does not describe",
        ),
        (
            "en",
            "metadata of https://sp.elders.example does not describe an identity provider "
            "(IDPSSODescriptor)",
            "beschrijft",
        ),
    ],
)
def test_metadata_that_is_not_an_identity_providers(
    site: PortalSite, school: FlaskClient, peer: str, lang: str, said: str, not_said: str
) -> None:
    before = site.registry.school(DEMO_SCHOOL_ID)
    status, page = post(
        school, "/saml", {"metadata_url": f"{peer}/sp-metadata", "saml_subject": "name_id"}, lang
    )
    assert status == 400
    assert field_error(page, "metadata_url") == said
    assert not_said not in page
    assert site.registry.school(DEMO_SCHOOL_ID) == before


def test_every_problem_of_uploaded_metadata_in_one_round(
    site: PortalSite, school: FlaskClient
) -> None:
    before = site.registry.school(DEMO_SCHOOL_ID)
    status, page = post(
        school,
        "/saml",
        {"metadata_file": (BytesIO(WEAK_IDP.encode()), "idp.xml"), "saml_subject": "name_id"},
        "nl",
    )
    assert status == 400
    said = field_error(page, "metadata_file")
    assert "de metadata van https://idp.zwak.example heeft geen ondertekeningssleutel" in said
    assert "heeft geen HTTP-Redirect SingleSignOnService" in said
    assert site.registry.school(DEMO_SCHOOL_ID) == before


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        (
            "nl",
            "De OpenID-provider is niet bruikbaar: de issuer in het discovery-document is een "
            "andere dan de opgegeven issuer (het document noemt {peer}/elsewhere)",
        ),
        (
            "en",
            "The OpenID provider cannot be used: discovery: issuer differs from the registered "
            "issuer (the document names {peer}/elsewhere)",
        ),
    ],
)
def test_an_issuer_whose_discovery_document_names_another(
    site: PortalSite, school: FlaskClient, peer: str, lang: str, said: str
) -> None:
    before = site.registry.school(DEMO_SCHOOL_ID)
    status, page = post(school, "/oidc", oidc_form(f"{peer}/other"), lang)
    assert status == 400
    assert field_error(page, "issuer") == said.format(peer=peer)
    assert site.registry.school(DEMO_SCHOOL_ID) == before


def test_the_secret_and_the_provider_are_checked_in_one_round(
    site: PortalSite, school: FlaskClient, peer: str
) -> None:
    """No secret yet (the school signs in with SAML) and a provider that is not there: both
    said at once; the document the error names is translated with it."""
    status, page = post(school, "/oidc", oidc_form(f"{peer}/missing", secret=""), "nl")
    assert status == 400
    assert field_error(page, "client_secret") == "Geef het clientgeheim."
    assert field_error(page, "issuer") == (
        "De OpenID-provider is niet bruikbaar: het discovery-document gaf als antwoord HTTP 404"
    )


def test_the_operators_onboarding_says_it_alike(
    site: PortalSite, operator: FlaskClient, peer: str
) -> None:
    data = {"school_id": "77AB00", "name": "Nieuwe school", "metadata_url": f"{peer}/gone"}
    status, page = post(operator, "", data, "en", url="/portal/operator/schools")
    assert status == 400
    assert field_error(page, "metadata_url") == "cannot fetch the metadata: HTTP 404"
    assert site.registry.school("77AB00") is None


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("nl", "Upload de metadata of geef het adres ervan."),
        ("en", "Upload the metadata or give its address."),
    ],
)
def test_neither_a_file_nor_an_address_says_so_not_that_https_is_missing(
    site: PortalSite, school: FlaskClient, operator: FlaskClient, lang: str, said: str
) -> None:
    before = site.registry.school(DEMO_SCHOOL_ID)
    status, page = post(school, "/saml", {"metadata_url": " ", "saml_subject": "name_id"}, lang)
    assert status == 400
    assert field_error(page, "metadata_url") == said
    assert "https" not in field_error(page, "metadata_url")
    assert site.registry.school(DEMO_SCHOOL_ID) == before
    data = {"school_id": "77AC00", "name": "Lege school", "metadata_url": ""}
    status, page = post(operator, "", data, lang, url="/portal/operator/schools")
    assert status == 400
    assert field_error(page, "metadata_url") == said
    assert site.registry.school("77AC00") is None


def test_the_current_subject_is_named_as_in_the_form(school: FlaskClient) -> None:
    page = school.get(f"{IDP}?lang=nl", base_url=HTTPS).get_data(as_text=True)
    shown = re.search(r'<dd id="current-subject">(.*?)</dd>', page, re.S)
    assert shown and unescape(shown.group(1)) == "De persistente NameID (name_id)"


def hint(page: str, field: str) -> str:
    found = re.search(rf'<p class="hint" id="{field}-hint">(.*?)</p>', page, re.S)
    assert found, f"no hint for {field}"
    return unescape(found.group(1))


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("nl", "Verplicht bij een overstap naar een OpenID-provider. Wordt nooit meer getoond."),
        ("en", "Required to switch to an OpenID provider. Never shown again."),
    ],
)
def test_a_school_on_saml_is_not_told_to_leave_the_secret_empty(
    site: PortalSite, school: FlaskClient, peer: str, lang: str, said: str
) -> None:
    """It has no secret to keep: left empty, the secret is refused ("Give the client secret"),
    so the hint says it is required, also on the page that refuses it."""
    page = school.get(f"{IDP}?lang={lang}", base_url=HTTPS).get_data(as_text=True)
    assert hint(page, "client_secret") == said
    _, refused = post(school, "/oidc", oidc_form(f"{peer}/missing", secret=""), lang)
    assert hint(refused, "client_secret") == said
    for page_shown in (page, refused):
        assert "huidige geheim" not in page_shown and "current secret" not in page_shown


def test_a_secret_to_keep_or_to_give_again_is_hinted_so(site: PortalSite) -> None:
    """An OpenID school's secret is kept when the field is left empty (with its issuer); one
    the broker cannot open is not, and must be given again."""
    saml_school = site.registry.school(DEMO_SCHOOL_ID)
    assert saml_school is not None
    upstream = OidcUpstream("https://login.lyceum.example", "broker", "geheim")
    with site.app.test_request_context("/?lang=nl"):
        kept = secret_hint(replace(saml_school, oidc=upstream))
        assert str(kept).endswith(
            "Laat leeg om het huidige geheim te houden (alleen bij dezelfde issuer)."
        )
        unreadable = replace(upstream, client_secret="", secret_problem="key not configured")
        said = str(secret_hint(replace(saml_school, oidc=unreadable)))
        assert said.startswith("Verplicht: de broker kan het opgeslagen geheim niet lezen")
