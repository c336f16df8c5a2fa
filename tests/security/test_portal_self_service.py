"""The publisher's OIDC client pages and the school's identity provider page, with the Flask test
client: secrets shown once and never echoed, every problem next to its field, CSRF, nothing
saved before the checks pass, and the registry generation moving so the next login uses it.

An approved client's addresses: paths on the hosts it has change at once; an address on a new
host (a redirect URI, a post-logout redirect URI, the back-channel logout URI) is refused beside
its field, in the page's language, and nothing changes: the federation operator registers it
(`publisher update`). A client in review changes freely, and the operator approves the
addresses their page showed, never others."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from hashlib import sha256
from html import unescape
from io import BytesIO
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from broker.certificates import write_pair
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.admins import AdminRole
from broker.core.catalogue import CATALOGUE
from broker.core.model import OidcClient, OidcUpstream, School
from broker.demo.school_idp import SchoolIdpSettings, school_idp_metadata
from broker.oidc.grants import RegisteredClient
from tests.support.live import free_ports, serve_app
from tests.support.oidc_forge import ForgeProvider
from tests.support.portal import (
    HTTPS,
    PUBLISHER_ID,
    PortalSite,
    assert_one_stale_page_line,
    csrf_token,
    page_fields,
)

NEW_OIDC = f"/portal/publisher/{PUBLISHER_ID}/services/new-oidc"
IDP = f"/portal/school/{DEMO_SCHOOL_ID}/identity-provider"
SERVICES = "/portal/operator/services"
APP = "https://app.lesapp.example"
SCHOOL_SECRET = "secret-of-the-broker-at-the-school"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("self-service"), port=8730)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def publisher(site: PortalSite) -> FlaskClient:
    """Signed in once for the module: a TOTP code is accepted once only."""
    return site.sign_in("publisher")


@pytest.fixture(scope="module")
def operator(site: PortalSite) -> FlaskClient:
    return site.sign_in("operator")


@pytest.fixture(scope="module")
def school(site: PortalSite) -> FlaskClient:
    return site.sign_in("school")


@pytest.fixture(scope="module")
def provider(site: PortalSite) -> Iterator[ForgeProvider]:
    base_url = f"http://localhost:{free_ports(1)}"
    forge = ForgeProvider(
        base_url, "broker", SCHOOL_SECRET, site.settings.oidc_callback_url(DEMO_SCHOOL_ID)
    )
    server = serve_app(base_url, forge.app())
    yield forge
    server.shutdown()
    server.server_close()


def post(
    client: FlaskClient, url: str, form_url: str, data: Mapping[str, object]
) -> tuple[int, str]:
    fields = page_fields(client.get(form_url, base_url=HTTPS).get_data(as_text=True))
    response = client.post(url, base_url=HTTPS, data={**fields, **data})
    return response.status_code, response.get_data(as_text=True)


def field_error(page: str, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', page, re.S)
    assert found, f"no error next to {field}"
    return unescape(found.group(1))


# A browser sends every select; "" is "not needed".
NOT_NEEDED = {f"need_{name}": "" for name in CATALOGUE}


def _register(site: PortalSite, client: FlaskClient, service_id: str) -> str:
    status, page = post(
        client,
        NEW_OIDC,
        NEW_OIDC,
        {
            **NOT_NEEDED,
            "service_id": service_id,
            "name": "Lesapp",
            "redirect_uris": "https://app.lesapp.example/cb\r\nhttp://127.0.0.1:9400/cb\r\n",
            "auth_method": "client_secret_basic",
            "id_token_alg": "ES256",
            "need_given_name": "optional",
            "purpose_given_name": "Om te begroeten.",
        },
    )
    assert status == 200, page
    assert "Kopieer het geheim nu" in page
    secret = re.search(r'<code id="client-secret">([^<]+)</code>', page)
    assert secret is not None
    return secret.group(1)


def test_publisher_registers_a_client_and_sees_the_secret_once(
    site: PortalSite, publisher: FlaskClient
) -> None:
    client = publisher
    secret = _register(site, client, "lesapp")
    service = site.registry.any_service("lesapp")
    assert service is not None and service.oidc is not None
    assert not service.approved and site.registry.service("lesapp") is None
    assert service.oidc.secret_hash == sha256(secret.encode()).hexdigest()
    assert service.oidc.redirect_uris == (
        "https://app.lesapp.example/cb",
        "http://127.0.0.1:9400/cb",
    )
    assert service.oidc.id_token_alg == "ES256"
    page = client.get(f"/portal/publisher/{PUBLISHER_ID}/services/lesapp", base_url=HTTPS)
    assert secret not in page.get_data(as_text=True)
    assert "https://app.lesapp.example/cb" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("lang", "said"), [("nl", "Discovery-document"), ("en", "Discovery document")]
)
def test_the_client_page_names_the_issuer_and_discovery(
    site: PortalSite, publisher: FlaskClient, lang: str, said: str
) -> None:
    """What docs/publishers.md (section 2) says an OpenID Connect client needs: the issuer, and
    its discovery document."""
    service_id = f"ontdek-{lang}"
    _register(site, publisher, service_id)
    url = f"/portal/publisher/{PUBLISHER_ID}/services/{service_id}"
    page = publisher.get(f"{url}?lang={lang}", base_url=HTTPS).get_data(as_text=True)
    publisher.get(f"{url}?lang=nl", base_url=HTTPS)  # the language stays: the others read Dutch
    shown = page.split('id="oidc-client"', 1)[1].split("</dl>", 1)[0]
    base = site.settings.base_url
    assert f"<code>{base}</code>" in shown
    assert f'<a href="{base}/.well-known/openid-configuration">' in shown
    assert said in shown


def test_every_problem_of_a_registration_is_next_to_its_field(
    site: PortalSite, publisher: FlaskClient
) -> None:
    client = publisher
    status, page = post(
        client,
        NEW_OIDC,
        NEW_OIDC,
        {
            **NOT_NEEDED,
            "service_id": "Not An Id",
            "name": "Lesapp",
            "redirect_uris": "https://ok.example/cb\nhttp://app.example/cb\nhttps://x.example/*",
            "auth_method": "private_key_jwt",
            "id_token_alg": "RS256",
        },
    )
    assert status == 400
    uris = field_error(page, "redirect_uris")
    assert "Regel 2" in uris and "Regel 3" in uris and "Regel 1" not in uris
    assert "JWKS" in field_error(page, "jwks_uri")
    assert field_error(page, "service_id")
    assert site.registry.any_service("Not An Id") is None


def test_a_redirect_uri_on_a_unicode_host_is_refused_naming_its_xn_form(
    site: PortalSite, publisher: FlaskClient
) -> None:
    _register(site, publisher, "idn")
    url = f"/portal/publisher/{PUBLISHER_ID}/services/idn/oidc"
    status, page = post(publisher, url, url, {"redirect_uris": "https://bücher.example/cb"})
    assert status == 400
    said = field_error(page, "redirect_uris")
    assert "Regel 1" in said and "https://xn--bcher-kva.example/cb" in said, said
    service = site.registry.any_service("idn")
    assert service is not None and service.oidc is not None
    assert "https://bücher.example/cb" not in service.oidc.redirect_uris


def test_rotating_the_secret_retires_the_old_one(site: PortalSite, publisher: FlaskClient) -> None:
    client = publisher
    old = _register(site, client, "roteer")
    service_url = f"/portal/publisher/{PUBLISHER_ID}/services/roteer"
    status, page = post(client, f"{service_url}/oidc/secret", service_url, {})
    assert status == 200 and "Kopieer het geheim nu" in page
    new = re.search(r'<code id="client-secret">([^<]+)</code>', page)
    assert new is not None and new.group(1) != old
    registered = RegisteredClient(site.registry.any_service("roteer"))  # type: ignore[arg-type]
    assert registered.check_client_secret(new.group(1))
    assert not registered.check_client_secret(old)


def test_publisher_edits_redirect_uris_with_errors_next_to_the_field(
    site: PortalSite, publisher: FlaskClient
) -> None:
    client = publisher
    _register(site, client, "verhuis")
    url = f"/portal/publisher/{PUBLISHER_ID}/services/verhuis/oidc"
    status, page = post(client, url, url, {"redirect_uris": "https://a.example/cb#frag"})
    assert status == 400 and "fragment" in field_error(page, "redirect_uris")
    status, _ = post(client, url, url, {"redirect_uris": "https://nieuw.example/cb"})
    assert status == 303
    service = site.registry.any_service("verhuis")
    assert service is not None and service.oidc is not None
    assert service.oidc.redirect_uris == ("https://nieuw.example/cb",)


def test_publisher_registers_logout_uris_with_errors_next_to_the_fields(
    site: PortalSite, publisher: FlaskClient
) -> None:
    client = publisher
    _register(site, client, "uitlog")
    url = f"/portal/publisher/{PUBLISHER_ID}/services/uitlog/oidc"
    good = "https://app.uitlog.example/cb"
    status, page = post(
        client,
        url,
        url,
        {
            "redirect_uris": good,
            "post_logout_redirect_uris": "https://app.uitlog.example/bye#x\nhttp://app.example/bye",
            "backchannel_logout_uri": "http://bcl.example/logout",
        },
    )
    assert status == 400
    assert "fragment" in field_error(page, "post_logout_redirect_uris")
    assert "https" in field_error(page, "backchannel_logout_uri")
    service = site.registry.any_service("uitlog")
    assert service is not None and service.oidc is not None
    assert service.oidc.post_logout_redirect_uris == ()  # nothing saved
    status, _ = post(
        client,
        url,
        url,
        {
            "redirect_uris": good,
            "post_logout_redirect_uris": "https://app.uitlog.example/bye\n",
            "backchannel_logout_uri": "https://app.uitlog.example/bcl",
            "backchannel_logout_session_required": "y",
        },
    )
    assert status == 303
    service = site.registry.any_service("uitlog")
    assert service is not None and service.oidc is not None
    assert service.oidc.post_logout_redirect_uris == ("https://app.uitlog.example/bye",)
    assert service.oidc.backchannel_logout_uri == "https://app.uitlog.example/bcl"
    assert service.oidc.backchannel_logout_session_required
    shown = client.get(
        f"/portal/publisher/{PUBLISHER_ID}/services/uitlog", base_url=HTTPS
    ).get_data(as_text=True)
    assert "https://app.uitlog.example/bcl" in shown


def test_csrf_is_required_on_the_new_forms(
    site: PortalSite, publisher: FlaskClient, school: FlaskClient
) -> None:
    before = site.registry.school(DEMO_SCHOOL_ID)
    response = publisher.post(NEW_OIDC, base_url=HTTPS, data={"service_id": "sneaky"})
    assert response.status_code == 400 and site.registry.any_service("sneaky") is None
    response = school.post(f"{IDP}/oidc", base_url=HTTPS, data={"issuer": "https://x.example"})
    assert response.status_code == 400 and site.registry.school(DEMO_SCHOOL_ID) == before


def test_school_switches_to_an_openid_provider_checked_first(
    site: PortalSite, provider: ForgeProvider, school: FlaskClient
) -> None:
    client = school
    before, generation = site.registry.school(DEMO_SCHOOL_ID), site.registry.generation()
    assert before is not None
    xml = site.registry.school_metadata()[before.idp_entity_id]
    # A provider that is not there: refused next to the issuer, nothing saved.
    status, page = post(
        client,
        f"{IDP}/oidc",
        IDP,
        {
            "issuer": "http://127.0.0.1:9/none",
            "client_id": "broker",
            "client_secret": SCHOOL_SECRET,
            "algorithm": "RS256",
            "oidc_subject": "sub",
        },
    )
    assert status == 400 and "OpenID-provider" in field_error(page, "issuer")
    assert SCHOOL_SECRET not in page  # never echoed, not even on an error
    assert site.registry.school(DEMO_SCHOOL_ID) == before
    # An unacceptable subject is not among the choices.
    data = {"issuer": provider.issuer, "client_id": "broker", "client_secret": SCHOOL_SECRET}
    status, page = post(client, f"{IDP}/oidc", IDP, {**data, "oidc_subject": "affiliation"})
    assert status == 400 and field_error(page, "oidc_subject")

    status, _ = post(client, f"{IDP}/oidc", IDP, {**data, "oidc_subject": "sub"})
    assert status == 303
    stored = site.registry.school(DEMO_SCHOOL_ID)
    assert stored is not None and stored.oidc is not None
    assert stored.idp_entity_id == provider.issuer and stored.subject_attribute == "sub"
    assert stored.oidc.client_secret == SCHOOL_SECRET
    assert site.registry.generation() > generation
    page = client.get(IDP, base_url=HTTPS).get_data(as_text=True)
    assert provider.issuer in page and SCHOOL_SECRET not in page

    # Back to SAML: the school's own metadata, with the student number as subject.
    assert before.idp_entity_id not in site.registry.school_metadata()
    fields = page_fields(client.get(IDP, base_url=HTTPS).get_data(as_text=True))
    response = client.post(
        f"{IDP}/saml",
        base_url=HTTPS,
        data={
            **fields,
            "metadata_file": (BytesIO(xml.encode()), "idp.xml"),
            "saml_subject": "student_number",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    stored = site.registry.school(DEMO_SCHOOL_ID)
    assert stored is not None and stored.oidc is None
    assert stored.subject_attribute == "student_number"
    assert stored.idp_entity_id == before.idp_entity_id


def test_an_eck_id_school_cannot_switch_its_identity_provider(
    site: PortalSite,
    provider: ForgeProvider,
    school: FlaskClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The ECK iD namespace is sector-wide: a provider of the school's own choosing could assert
    any student's ECK iD. The page is read-only and every change is a 403, nothing saved."""
    issuer = "https://op.eck-school.example"
    eck_school = School(
        "88EC00",
        "ECK-school",
        issuer,
        subject_attribute="sub",
        use_eck_id=True,
        oidc=OidcUpstream(issuer, "broker", "secret-of-the-eck-school"),
    )
    site.registry.add_school(eck_school, "")
    site.accounts["eck-school"] = site.add_account("ict@eck.example", AdminRole.SCHOOL, "88EC00")
    client = site.sign_in("eck-school")
    url = "/portal/school/88EC00/identity-provider"
    before, generation = site.registry.school("88EC00"), site.registry.generation()

    page = client.get(url, base_url=HTTPS).get_data(as_text=True)
    assert issuer in page and 'id="eck-id-locked"' in page
    assert "vraag het de operator van de federatie" in page
    assert 'id="saml-form"' not in page and 'id="oidc-form"' not in page
    assert "secret-of-the-eck-school" not in page

    token = csrf_token(page)  # the sign-out form's: the POSTs below pass the CSRF check
    oidc = {
        "csrf_token": token,
        "issuer": provider.issuer,
        "client_id": "broker",
        "client_secret": SCHOOL_SECRET,
        "algorithm": "RS256",
        "oidc_subject": "sub",
    }
    saml = {"csrf_token": token, "metadata_url": "https://idp.example/metadata"}
    with caplog.at_level(logging.WARNING, logger="broker.portal"):
        for action, data in (("oidc", oidc), ("saml", saml)):
            response = client.post(f"{url}/{action}", base_url=HTTPS, data=data)
            assert response.status_code == 403, action
    assert site.registry.school("88EC00") == before
    assert site.registry.generation() == generation
    assert caplog.text.count("reason=eck_id") == 2
    assert caplog.text.count("portal refused status=403 role=school") == 2

    # A school without the ECK iD keeps its forms.
    own = school.get(IDP, base_url=HTTPS).get_data(as_text=True)
    assert 'id="oidc-form"' in own and 'id="eck-id-locked"' not in own


def _board_idp(tmp_path: Path, port: int, brin: str) -> tuple[str, str]:
    """A school board's SAML IdP: its entity id and metadata."""
    base_url = f"http://localhost:{port}"
    key, cert = tmp_path / f"board-{port}.key", tmp_path / f"board-{port}.crt"
    write_pair(key, cert, "board")
    settings = SchoolIdpSettings(
        base_url=base_url,
        entity_id=f"{base_url}/metadata",
        key_file=key,
        cert_file=cert,
        sp_metadata=(),
        school_name="Bestuursschool",
        brin=brin,
    )
    return settings.entity_id, school_idp_metadata(settings)


def _expect_read_only(
    site: PortalSite,
    account: str,
    school_id: str,
    caplog: pytest.LogCaptureFixture,
    *,
    shown: tuple[str, ...],
    reason: str,
) -> str:
    """The school's identity provider page, to `account`, shows `shown` and no form; both
    forms' POSTs are refused (403), change nothing, and log `reason=<reason>`. The page, its
    entities unescaped."""
    client = site.sign_in(account)
    url = f"/portal/school/{school_id}/identity-provider"
    school = site.registry.school(school_id)
    assert school is not None
    metadata = site.registry.registered_metadata("idp", school_id)
    generation = site.registry.generation()

    page = client.get(url, base_url=HTTPS).get_data(as_text=True)
    assert school.idp_entity_id in page and "operator van de federatie" in page
    for text in shown:
        assert text in unescape(page), text
    assert 'id="saml-form"' not in page and 'id="oidc-form"' not in page

    token = csrf_token(page)
    saml = {"csrf_token": token, "metadata_url": "https://idp.example/metadata"}
    oidc = {"csrf_token": token, "issuer": "https://op.example", "client_id": "broker",
            "client_secret": "x", "algorithm": "RS256", "oidc_subject": "sub"}  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="broker.portal"):
        for action, data in (("saml", saml), ("oidc", oidc)):
            response = client.post(f"{url}/{action}", base_url=HTTPS, data=data)
            assert response.status_code == 403, action
    assert site.registry.school(school_id) == school
    assert site.registry.registered_metadata("idp", school_id) == metadata
    assert site.registry.generation() == generation
    assert caplog.text.count(f"reason={reason}") == 2
    return unescape(page)


def test_a_school_on_a_shared_idp_cannot_change_it(
    site: PortalSite, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A school board's IdP serves two schools: its metadata is the IdP's, and a change by one
    school would change the other's logins. Read-only, saying so; every change a 403."""
    board_idp, xml = _board_idp(tmp_path, 9409, "88BB00")
    for school_id in ("88BB00", "88BB01"):
        site.registry.add_school(School(school_id, f"Bestuursschool {school_id}", board_idp), xml)
    site.accounts["board-school"] = site.add_account(
        "ict@bestuur.example", AdminRole.SCHOOL, "88BB01"
    )
    shown = ('id="shared-idp-locked"', "Deze inlogdienst wordt gedeeld met andere scholen")
    page = _expect_read_only(
        site, "board-school", "88BB01", caplog, shown=shown, reason="shared_idp"
    )
    assert 'id="redirect-uri"' not in page  # a SAML IdP: no OpenID URIs to register
    assert f"<code>{site.settings.sp_entity_id}</code>" in page  # but the broker's metadata
    assert site.registry.registered_metadata("idp", "88BB00") == xml


def test_a_school_on_a_shared_openid_issuer_cannot_change_it(
    site: PortalSite, caplog: pytest.LogCaptureFixture
) -> None:
    """A board's Entra ID tenant for two schools (one client): as a board's SAML IdP, the
    provider is the operator's, read-only in either school's portal; every change a 403."""
    issuer = "https://login.microsoftonline.com/bestuur-tenant/v2.0"
    for school_id in ("88BD00", "88BD01"):
        upstream = OidcUpstream(issuer, "board-client", "board-secret")
        name = f"Bestuursschool {school_id}"
        site.registry.add_school(School(school_id, name, issuer, "sub", oidc=upstream), "")
    site.accounts["board-oidc-school"] = site.add_account(
        "ict@bestuur-oidc.example", AdminRole.SCHOOL, "88BD01"
    )
    # The school's own URIs, read-only, for the board's ICT to register: never the other's.
    own_uris = (
        site.settings.oidc_callback_url("88BD01"),
        site.settings.oidc_logout_callback_url("88BD01"),
        site.settings.oidc_backchannel_logout_url("88BD01"),
    )
    shown = ('id="shared-idp-locked"', "board-client", 'id="oidc-uris-read-only"', *own_uris)
    page = _expect_read_only(
        site, "board-oidc-school", "88BD01", caplog, shown=shown, reason="shared_idp"
    )
    assert "de ICT van uw schoolbestuur" in page
    assert site.settings.oidc_callback_url("88BD00") not in page


def test_a_board_idp_of_one_school_so_far_is_the_operators_too(
    site: PortalSite, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """An IdP whose logins must name the school (`idps_naming_school`) is a board's, also while
    one school is registered on it: a new metadata from that school's portal would be the
    IdP's for the board's schools not registered yet. Read-only like a shared one, saying it is
    the board's; once the operator clears the mark (an IdP that is one school's), the forms are
    back."""
    board_idp, xml = _board_idp(tmp_path, 9410, "88BC00")
    site.registry.add_school(School("88BC00", "Eerste school van het bestuur", board_idp), xml)
    site.accounts["first-board-school"] = site.add_account(
        "ict@eerste.example", AdminRole.SCHOOL, "88BC00"
    )
    client = site.sign_in("first-board-school")
    url = "/portal/school/88BC00/identity-provider"
    own = client.get(url, base_url=HTTPS).get_data(as_text=True)
    assert 'id="saml-form"' in own and "-idp-locked" not in own  # not marked: its own

    site.registry.set_idp_names_school("88BC00", True)
    shown = ('id="board-idp-locked"', "gemarkeerd als die van uw schoolbestuur")
    site.accounts["first-board-school-2"] = site.add_account(
        "ict2@eerste.example", AdminRole.SCHOOL, "88BC00"
    )
    _expect_read_only(
        site, "first-board-school-2", "88BC00", caplog, shown=shown, reason="board_idp"
    )
    assert 'id="shared-idp-locked"' not in client.get(url, base_url=HTTPS).get_data(as_text=True)

    site.registry.set_idp_names_school("88BC00", False)
    again = client.get(url, base_url=HTTPS).get_data(as_text=True)
    assert 'id="saml-form"' in again and "-idp-locked" not in again


def test_the_identity_provider_page_names_the_schools_own_redirect_uri(site: PortalSite) -> None:
    from broker.core.admins import AdminRole

    site.accounts["ict-2"] = site.add_account(
        "ict2@lyceum.example", AdminRole.SCHOOL, DEMO_SCHOOL_ID
    )
    client = site.sign_in("ict-2")
    page = client.get(IDP, base_url=HTTPS).get_data(as_text=True)
    assert site.settings.oidc_callback_url(DEMO_SCHOOL_ID) in page
    # And the back-channel logout URI, next to the post-logout redirect URI.
    assert 'id="backchannel-logout-uri"' in page
    assert site.settings.oidc_backchannel_logout_url(DEMO_SCHOOL_ID) in page
    # And, for a SAML identity provider, where the broker's SAML metadata is.
    assert 'id="sp-metadata-url"' in page
    assert f"<code>{site.settings.sp_entity_id}</code>" in page


# -- An approved client's addresses on a new host ----------------------------------------------
def _in_review(site: PortalSite, publisher: FlaskClient, service_id: str) -> str:
    """A client in review with a redirect URI on APP and one on loopback; its URIs page."""
    _register(site, publisher, service_id)
    return f"/portal/publisher/{PUBLISHER_ID}/services/{service_id}/oidc"


def _approved(site: PortalSite, publisher: FlaskClient, service_id: str) -> str:
    url = _in_review(site, publisher, service_id)
    site.registry.approve_service(service_id)
    return url


def _client(site: PortalSite, service_id: str) -> OidcClient:
    service = site.registry.any_service(service_id)
    assert service is not None and service.oidc is not None
    return service.oidc


def test_an_approved_clients_addresses_on_its_hosts_change_at_once(
    site: PortalSite, publisher: FlaskClient
) -> None:
    url = _approved(site, publisher, "zelfde-host")
    hint = publisher.get(url, base_url=HTTPS).get_data(as_text=True)
    assert "http://127.0.0.1:9400, https://app.lesapp.example" in unescape(hint)
    status, page = post(
        publisher,
        url,
        url,
        {
            # Another path, the default port written out, upper case: the same origin; the
            # loopback URI removed.
            "redirect_uris": f"{APP}/v2/callback\nhttps://APP.lesapp.example:443/cb",
            "post_logout_redirect_uris": f"{APP}/bye",
            "backchannel_logout_uri": "http://127.0.0.1:9400/bcl",
        },
    )
    assert status == 303, page
    client = _client(site, "zelfde-host")
    assert client.redirect_uris == (f"{APP}/v2/callback", "https://APP.lesapp.example:443/cb")
    assert client.post_logout_redirect_uris == (f"{APP}/bye",)
    # The loopback origin is the back-channel URI's now, still the client's own.
    assert client.backchannel_logout_uri == "http://127.0.0.1:9400/bcl"


@pytest.mark.parametrize(
    ("lang", "line", "advice"),
    [
        ("nl", "Regel 2 staat op een nieuwe host, https://elders.example.", "operator van de"),
        ("en", "Line 2 is on a new host, https://elders.example.", "federation operator"),
    ],
)
def test_an_approved_clients_new_host_is_refused_and_nothing_changes(
    site: PortalSite,
    publisher: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    lang: str,
    line: str,
    advice: str,
) -> None:
    service_id = f"nieuwe-host-{lang}"
    url = _approved(site, publisher, service_id)
    before = _client(site, service_id)
    with caplog.at_level(logging.INFO, logger="broker.portal"):
        status, page = post(
            publisher,
            url,
            f"{url}?lang={lang}",
            {
                "redirect_uris": f"{APP}/cb\nhttps://elders.example/cb\n{APP}/cb#x",
                "post_logout_redirect_uris": "https://elders.example:8443/bye",
                "backchannel_logout_uri": "https://bcl.elders.example/logout",
            },
        )
    publisher.get(f"{url}?lang=nl", base_url=HTTPS)
    assert status == 400
    # Every field's problems in one round, each beside its field.
    uris = field_error(page, "redirect_uris")
    assert line in uris and advice in uris
    assert f"ketenbroker publisher update --id {service_id} --oidc-redirect-uri" in uris
    assert ("Regel 3" if lang == "nl" else "Line 3") in uris  # the fragment, said as before
    assert "https://elders.example:8443" in field_error(page, "post_logout_redirect_uris")
    backchannel = field_error(page, "backchannel_logout_uri")
    assert "https://bcl.elders.example" in backchannel
    assert "--oidc-backchannel-logout-uri" in backchannel
    assert _client(site, service_id) == before
    refused = [r.getMessage() for r in caplog.records if "reason=new_host" in r.getMessage()]
    assert refused == [
        f"portal refused status=400 reason=new_host service={service_id} "
        f"publisher={PUBLISHER_ID} fields=redirect_uris,post_logout_redirect_uris,"
        f"backchannel_logout_uri admin={site.accounts['publisher'].admin.id}"
    ]
    assert "elders" not in caplog.text
    assert "reason=form" not in caplog.text  # one line per refusal


def test_the_back_channel_logout_uri_alone_on_a_new_host_is_refused(
    site: PortalSite, publisher: FlaskClient
) -> None:
    url = _approved(site, publisher, "bcl-host")
    status, page = post(
        publisher,
        url,
        url,
        {"redirect_uris": f"{APP}/cb", "backchannel_logout_uri": "https://andere.example/bcl"},
    )
    assert status == 400
    said = field_error(page, "backchannel_logout_uri")
    assert "Dit adres staat op een nieuwe host, https://andere.example." in said
    assert _client(site, "bcl-host").backchannel_logout_uri is None


def test_a_client_in_review_changes_to_any_host(site: PortalSite, publisher: FlaskClient) -> None:
    url = _in_review(site, publisher, "in-review")
    status, page = post(
        publisher,
        url,
        url,
        {
            "redirect_uris": "https://nieuw.example/cb",
            "post_logout_redirect_uris": "https://nieuw.example/bye",
            "backchannel_logout_uri": "https://bcl.nieuw.example/logout",
        },
    )
    assert status == 303, page
    client = _client(site, "in-review")
    assert client.redirect_uris == ("https://nieuw.example/cb",)
    assert client.backchannel_logout_uri == "https://bcl.nieuw.example/logout"


def test_the_operator_approves_the_addresses_shown(
    site: PortalSite,
    publisher: FlaskClient,
    operator: FlaskClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The services page shows a client's addresses; an approval given for a page that showed
    other ones (the publisher changed them since) approves nothing."""
    _register(site, publisher, "goed-te-keuren")
    shown = operator.get(SERVICES, base_url=HTTPS).get_data(as_text=True)
    card = shown.split('id="service-goed-te-keuren"', 1)[1].split('class="card"', 1)[0]
    assert f"<code>{APP}/cb</code>" in card and "<code>http://127.0.0.1:9400/cb</code>" in card
    seen = re.search(r'name="addresses" value="([^"]+)"', card)
    assert seen is not None
    form = {"csrf_token": csrf_token(card), "addresses": seen.group(1)}
    client = _client(site, "goed-te-keuren")
    moved = replace(client, redirect_uris=("https://elders.example/cb",))
    site.registry.update_oidc_client("goed-te-keuren", moved)
    approve = f"{SERVICES}/goed-te-keuren/approve"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="broker.portal"):
        response = operator.post(approve, base_url=HTTPS, data=form)
    assert response.status_code == 400
    assert_one_stale_page_line(caplog, "addresses_changed", service="goed-te-keuren")
    assert "goed-te-keuren" in response.get_data(as_text=True)
    assert "<code>https://elders.example/cb</code>" in response.get_data(as_text=True)
    service = site.registry.any_service("goed-te-keuren")
    assert service is not None and not service.approved
    site.registry.update_oidc_client("goed-te-keuren", client)  # back as shown
    response = operator.post(approve, base_url=HTTPS, data=form)
    assert response.status_code == 303
    service = site.registry.any_service("goed-te-keuren")
    assert service is not None and service.approved


def test_an_approval_meets_a_publishers_save_under_the_lock(
    site: PortalSite, publisher: FlaskClient, operator: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publisher's save commits after the page's approval was sent, before it is written:
    the fingerprint is compared under the service row's lock, so nothing is approved unseen."""
    _register(site, publisher, "race-approve")
    shown = operator.get(SERVICES, base_url=HTTPS).get_data(as_text=True)
    card = shown.split('id="service-race-approve"', 1)[1].split('class="card"', 1)[0]
    seen = re.search(r'name="addresses" value="([^"]+)"', card)
    assert seen is not None
    registry = site.registry
    real = registry.approve_service

    def publisher_saves_first(service_id: str, **given: str | None) -> None:
        client = _client(site, service_id)
        registry.update_oidc_client(
            service_id, replace(client, redirect_uris=("https://evil.example/cb",))
        )
        real(service_id, **given)

    monkeypatch.setattr(registry, "approve_service", publisher_saves_first)
    response = operator.post(
        f"{SERVICES}/race-approve/approve",
        base_url=HTTPS,
        data={"csrf_token": csrf_token(card), "addresses": seen.group(1)},
    )
    assert response.status_code == 400
    assert "gewijzigd nadat deze pagina werd getoond" in response.get_data(as_text=True)
    assert "<code>https://evil.example/cb</code>" in response.get_data(as_text=True)
    service = site.registry.any_service("race-approve")
    assert service is not None and not service.approved


def _meanwhile(
    site: PortalSite, monkeypatch: pytest.MonkeyPatch, first: Callable[[str], None]
) -> None:
    """`first` commits between the page's reading of the client and its save."""
    registry = site.registry
    real = registry.update_oidc_client

    def other_first(service_id: str, client: OidcClient, **seen: object) -> None:
        first(service_id)
        real(service_id, client, **seen)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "update_oidc_client", other_first)


def test_an_approval_between_the_new_host_check_and_the_save_refuses_it(
    site: PortalSite,
    publisher: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Checked for a client in review (any host), saved after the operator approved it: the
    registry refuses under the row's lock, and the page shows the client as it is now."""
    url = _in_review(site, publisher, "race-host")
    form = page_fields(publisher.get(url, base_url=HTTPS).get_data(as_text=True))
    _meanwhile(site, monkeypatch, site.registry.approve_service)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="broker.portal"):
        response = publisher.post(
            url, base_url=HTTPS, data={**form, "redirect_uris": "https://evil.example/cb"}
        )
    assert_one_stale_page_line(caplog, "client_changed", service="race-host")
    page = unescape(response.get_data(as_text=True))
    assert response.status_code == 400
    assert "Een collega of de operator van de federatie heeft deze client gewijzigd" in page
    assert f"{APP}/cb" in page and "https://evil.example/cb" not in page
    service = site.registry.any_service("race-host")
    assert service is not None and service.approved and service.oidc is not None
    assert service.oidc.redirect_uris == (f"{APP}/cb", "http://127.0.0.1:9400/cb")


def test_a_uri_save_never_puts_a_renewed_secret_back(
    site: PortalSite, publisher: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret renewed between the page's reading of the client and its save: the save is
    refused, and the old (maybe leaked) secret stays invalid."""
    url = _approved(site, publisher, "race-secret")
    form = page_fields(publisher.get(url, base_url=HTTPS).get_data(as_text=True))
    renewed = "ef" * 32
    write = site.registry.update_oidc_client

    def colleague_renews(service_id: str) -> None:
        write(service_id, replace(_client(site, service_id), secret_hash=renewed))

    _meanwhile(site, monkeypatch, colleague_renews)
    response = publisher.post(url, base_url=HTTPS, data={**form, "redirect_uris": f"{APP}/nieuw"})
    assert response.status_code == 400
    client = _client(site, "race-secret")
    assert client.secret_hash == renewed
    assert client.redirect_uris == (f"{APP}/cb", "http://127.0.0.1:9400/cb")


def test_a_secret_renewed_on_a_page_a_colleague_changed_meanwhile_is_refused(
    site: PortalSite,
    publisher: FlaskClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A colleague's save lands between the page's reading of the client and the renewal:
    nothing is renewed, and the refusal has its one stale-page line, as the other pages'."""
    url = _approved(site, publisher, "race-rotate")
    before = _client(site, "race-rotate")
    moved, write = (f"{APP}/elders",), site.registry.update_oidc_client

    def colleague_saves(service_id: str) -> None:
        write(service_id, replace(_client(site, service_id), redirect_uris=moved))

    fields = page_fields(publisher.get(url, base_url=HTTPS).get_data(as_text=True))
    _meanwhile(site, monkeypatch, colleague_saves)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="broker.portal"):
        response = publisher.post(f"{url}/secret", base_url=HTTPS, data=fields)
    assert response.status_code == 303
    assert _client(site, "race-rotate").secret_hash == before.secret_hash
    assert_one_stale_page_line(caplog, "client_changed", service="race-rotate")
