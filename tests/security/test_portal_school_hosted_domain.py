"""The hosted domain on a school's identity provider page (core/hosted_domain.py): required for a
shared issuer such as Google's, checked with the other fields, said next to its field in the
page's language, stored lower-cased, and a school without one warned that its logins are refused.

The provider is the test forge on 127.0.0.1, counted as a shared issuer's host for these tests
(Google's own discovery document is never fetched here)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core import hosted_domain
from tests.security.test_portal_school_idp_problems import IDP, field_error, oidc_form, post
from tests.support.live import free_ports, serve_app
from tests.support.oidc_forge import ForgeProvider
from tests.support.portal import HTTPS, PortalSite


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("school-hosted-domain"), port=8797)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def forge(site: PortalSite) -> Iterator[ForgeProvider]:
    base_url = f"http://127.0.0.1:{free_ports(1)}"
    provider = ForgeProvider(base_url, "broker", "geheim", site.settings.oidc_callback_url("x"))
    server = serve_app(base_url, provider.app())
    yield provider
    server.shutdown()
    server.server_close()


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosted_domain, "SHARED_ISSUER_HOSTS", frozenset({"127.0.0.1"}))


@pytest.fixture(scope="module")
def school(site: PortalSite) -> FlaskClient:
    return site.sign_in("school")


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("nl", "deze issuer laat elk Google-account inloggen: geef het Google Workspace-domein"),
        ("en", "this issuer signs in every Google account: give the school's Google Workspace"),
    ],
)
def test_a_shared_issuer_without_a_hosted_domain_is_refused_next_to_the_field(
    site: PortalSite,
    school: FlaskClient,
    forge: ForgeProvider,
    shared: None,
    lang: str,
    said: str,
) -> None:
    before = site.registry.school(DEMO_SCHOOL_ID)
    status, page = post(school, "/oidc", oidc_form(forge.issuer), lang)
    assert status == 400
    assert field_error(page, "hosted_domain").startswith(said)
    assert site.registry.school(DEMO_SCHOOL_ID) == before


def test_every_field_in_one_round_with_a_hosted_domain_that_is_not_one(
    site: PortalSite, school: FlaskClient, forge: ForgeProvider
) -> None:
    before = site.registry.school(DEMO_SCHOOL_ID)
    data = {**oidc_form(forge.issuer, secret=""), "hosted_domain": "it@school.nl"}
    status, page = post(school, "/oidc", data, "nl")
    assert status == 400
    assert field_error(page, "hosted_domain") == (
        "geef alleen het domein (school.example), geen e-mailadres"
    )
    assert field_error(page, "client_secret") == "Geef het clientgeheim."
    assert site.registry.school(DEMO_SCHOOL_ID) == before


@pytest.mark.parametrize(
    ("lang", "required", "secret", "domain"),
    [
        ("nl", "Vul dit veld in.", "Geef het clientgeheim.", "deze issuer laat elk"),
        ("en", "Fill in this field.", "Give the client secret.", "this issuer signs in"),
    ],
)
def test_only_an_issuer_given_says_every_missing_field_in_one_round(
    site: PortalSite,
    school: FlaskClient,
    forge: ForgeProvider,
    shared: None,
    lang: str,
    required: str,
    secret: str,
    domain: str,
) -> None:
    """The walk's case: a shared issuer (Google's) and nothing else. The client id the form
    requires, the secret and the hosted domain the view requires are said together, in the
    error summary too, and the provider is still checked (it is usable: no error beside it)."""
    before = site.registry.school(DEMO_SCHOOL_ID)
    data = {"issuer": forge.issuer, "algorithm": "RS256", "oidc_subject": "sub"}
    status, page = post(school, "/oidc", data, lang)
    assert status == 400
    assert field_error(page, "client_id") == required
    assert field_error(page, "client_secret") == secret
    assert field_error(page, "hosted_domain").startswith(domain)
    assert 'id="issuer-error"' not in page
    summary = re.search(r'<div class="alert error-summary".*?</div>', page, re.S)
    assert summary
    assert [link for link in re.findall(r'href="#(\w+)"', summary.group(0))] == [
        "client_id",
        "client_secret",
        "hosted_domain",
    ]
    assert site.registry.school(DEMO_SCHOOL_ID) == before


def test_an_issuer_the_field_refuses_is_not_fetched_but_the_rest_is_said(
    site: PortalSite, school: FlaskClient
) -> None:
    before = site.registry.school(DEMO_SCHOOL_ID)
    data = {"issuer": "", "client_id": "", "algorithm": "RS256", "oidc_subject": "sub"}
    status, page = post(school, "/oidc", {**data, "hosted_domain": "gmail.com"}, "nl")
    assert status == 400
    assert field_error(page, "issuer") == "Vul dit veld in."  # no "cannot be used" with it
    assert field_error(page, "client_id") == "Vul dit veld in."
    assert field_error(page, "client_secret") == "Geef het clientgeheim."
    assert field_error(page, "hosted_domain").startswith("persoonlijke Google-accounts")
    assert site.registry.school(DEMO_SCHOOL_ID) == before


def test_the_hosted_domain_is_saved_shown_and_warned_about_when_missing(
    site: PortalSite, school: FlaskClient, forge: ForgeProvider, shared: None
) -> None:
    data = {**oidc_form(forge.issuer, secret="geheim"), "hosted_domain": " School.NL "}
    status, _ = post(school, "/oidc", data, "nl")
    assert status == 303
    saved = site.registry.school(DEMO_SCHOOL_ID)
    assert saved is not None and saved.oidc is not None
    assert saved.oidc.hosted_domain == "school.nl"
    page = school.get(f"{IDP}?lang=nl", base_url=HTTPS).get_data(as_text=True)
    assert 'id="current-hosted-domain"><code>school.nl</code>' in page
    assert 'value="school.nl"' in page  # the form starts from it
    assert 'id="hosted-domain-missing"' not in page

    # A school registered before the rule (its row written without one): told, formally.
    site.registry.update_school_idp(replace(saved, oidc=replace(saved.oidc, hosted_domain="")), "")
    page = school.get(f"{IDP}?lang=nl", base_url=HTTPS).get_data(as_text=True)
    assert 'id="hosted-domain-missing"' in page
    assert "elke inlog wordt geweigerd totdat het Google Workspace-domein van uw school" in page


def test_the_current_secret_is_kept_only_for_the_same_issuer(
    site: PortalSite, school: FlaskClient, forge: ForgeProvider
) -> None:
    """Left empty, the secret field keeps the current secret, but never for another issuer: it
    would be sent to that issuer's token endpoint, a server anyone who may edit the page could
    run (docs/portals.md)."""
    status, _ = post(school, "/oidc", oidc_form(forge.issuer, secret="geheim"), "nl")
    assert status == 303
    kept = site.registry.school(DEMO_SCHOOL_ID)
    assert kept is not None and kept.oidc is not None and kept.oidc.client_secret == "geheim"

    other_url = f"http://127.0.0.1:{free_ports(1)}"
    other = ForgeProvider(other_url, "broker", "ander", site.settings.oidc_callback_url("x"))
    server = serve_app(other_url, other.app())
    try:
        status, page = post(school, "/oidc", oidc_form(other.issuer, secret=""), "nl")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 400
    assert field_error(page, "client_secret") == "Geef het clientgeheim."
    assert site.registry.school(DEMO_SCHOOL_ID) == kept

    # The same issuer, the field left empty: the current secret stays.
    status, _ = post(school, "/oidc", oidc_form(forge.issuer, secret=""), "nl")
    assert status == 303
    again = site.registry.school(DEMO_SCHOOL_ID)
    assert again is not None and again.oidc is not None and again.oidc.client_secret == "geheim"
