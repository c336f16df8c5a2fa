"""A school whose SAML metadata in force names an SSO or SLO URL that is not https (a copy from
before intake checked them, written here straight into the registry): its identity provider
page tells its administrator, formally in Dutch, what the broker refuses and what mends it, as
`school list` marks it (saml/metadata_report.py `refused_endpoints`)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from tests.security.test_portal_school_idp_problems import IDP
from tests.support.portal import HTTPS, PortalSite

PLAIN_HTTP = "http://idp.lyceum.example"
SAID = {
    "nl": (
        "Elke inlog via uw school wordt geweigerd, dus uw leerlingen kunnen niet inloggen",
        "De broker stuurt er geen uitlogberichten naartoe",
    ),
    "en": (
        "Every login through your school is refused, so your students cannot sign in",
        "The broker sends no logout messages to it",
    ),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("school-endpoint-schemes"), port=8823)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def school(site: PortalSite) -> FlaskClient:
    return site.sign_in("school")


@pytest.fixture
def plain_http(site: PortalSite) -> Iterator[str]:
    """The school's registered copy, put back after the test (`_store_with` changes it)."""
    original = site.registry.registered_metadata("idp", DEMO_SCHOOL_ID)
    yield original
    site.registry.update_school_metadata(DEMO_SCHOOL_ID, original)


def _store_with(site: PortalSite, original: str, *paths: str) -> None:
    """`original` with its `paths` endpoints (both bindings) on a plain-http public host, as a
    copy from before the rule holds it: written past every intake check."""
    found = re.search(r'Location="(http://[^/"]+)/sso"', original)
    assert found is not None
    school_url = found.group(1)
    changed = original
    for path in paths:
        changed = changed.replace(f"{school_url}{path}", f"{PLAIN_HTTP}{path}")
    assert changed != original
    site.registry.update_school_metadata(DEMO_SCHOOL_ID, changed)


def _page(school: FlaskClient, lang: str) -> str:
    response = school.get(f"{IDP}?lang={lang}", base_url=HTTPS)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_an_sso_and_slo_url_over_plain_http_are_said_in_plain_words(
    site: PortalSite, school: FlaskClient, plain_http: str, lang: str
) -> None:
    _store_with(site, plain_http, "/sso", "/slo")
    page = _page(school, lang)
    assert 'id="sso-not-https"' in page and 'id="slo-not-https"' in page
    sso, slo = SAID[lang]
    assert sso in page and slo in page
    if lang == "nl":
        assert " je " not in page.split('id="sso-not-https"', 1)[1].split("</div>", 1)[0]


def test_only_what_is_refused_is_said(
    site: PortalSite, school: FlaskClient, plain_http: str
) -> None:
    assert 'not-https"' not in _page(school, "nl")  # the demo's loopback URLs pass the rule
    _store_with(site, plain_http, "/slo")
    page = _page(school, "nl")
    assert 'id="slo-not-https"' in page and 'id="sso-not-https"' not in page
