"""SAML metadata in force that names an endpoint the broker sends nothing to, not being https (a
copy from before intake checked them, written here straight into the registry), said in plain
words, formally in Dutch, on the page of the one who mends it, as `school list` and `publisher
list` mark it (saml/metadata_report.py `refused_endpoints`): a school's SSO or SLO URL on its
identity provider page, a publisher's ACS or SLO URL on its SAML service's page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import Service
from tests.security.test_portal_school_idp_problems import IDP
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite, plain_http_copy

SERVICE_ID = "http-dienst"
SERVICE_ENTITY = "https://sp.http-dienst.example/metadata"


@dataclass(frozen=True)
class Side:
    """One portal page that warns: whose account reads it, the registry copy it reads, the
    endpoint whose refusal stops logins (`sso`, `acs`) and what the page says, per language,
    of that one and of the SLO URL."""

    account: str
    page: str
    role: str
    entry_id: str
    login: str
    plain_host: str
    said: dict[str, tuple[str, str]]
    store: Callable[[PortalSite, str, str], object]


SCHOOL = Side(
    "school",
    IDP,
    "idp",
    DEMO_SCHOOL_ID,
    "sso",
    "http://idp.lyceum.example",
    {
        "nl": (
            "Elke inlog via uw school wordt geweigerd, dus uw leerlingen kunnen niet inloggen",
            "De broker stuurt er geen uitlogberichten naartoe",
        ),
        "en": (
            "Every login through your school is refused, so your students cannot sign in",
            "The broker sends no logout messages to it",
        ),
    },
    lambda site, entry, xml: site.registry.update_school_metadata(entry, xml),
)
PUBLISHER = Side(
    "publisher",
    f"/portal/publisher/{PUBLISHER_ID}/services/{SERVICE_ID}",
    "sp",
    SERVICE_ID,
    "acs",
    "http://sp.http-dienst.example",
    {
        "nl": (
            "Elke inlog bij uw dienst via de broker wordt geweigerd, dus leerlingen kunnen er niet",
            "De broker stuurt er geen uitlogberichten naartoe",
        ),
        "en": (
            "Every login at your service through the broker is refused, so students cannot sign",
            "The broker sends no logout messages to it",
        ),
    },
    lambda site, entry, xml: site.registry.update_service_metadata(entry, xml),
)
SIDES = [pytest.param(SCHOOL, id="school"), pytest.param(PUBLISHER, id="publisher")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("endpoint-schemes"), port=8823)
    # The demo publisher's metadata as the portal publisher's own service's (not approved yet:
    # its page warns all the same), its loopback URLs kept: they pass the rule.
    demo = built.registry.any_service("leesplank")
    assert demo is not None
    own = built.registry.registered_metadata("sp", demo.id).replace(
        f'entityID="{demo.entity_id}"', f'entityID="{SERVICE_ENTITY}"'
    )
    service = Service(SERVICE_ID, "Http-dienst", SERVICE_ENTITY, None, publisher_id=PUBLISHER_ID)
    built.registry.add_service(service, own)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def clients(site: PortalSite) -> dict[str, FlaskClient]:
    """Signed in once for the module: a TOTP code is accepted once only."""
    return {side.account: site.sign_in(side.account) for side in (SCHOOL, PUBLISHER)}


@pytest.fixture
def plain_http(site: PortalSite, request: pytest.FixtureRequest) -> Iterator[str]:
    """The side's registered copy, put back after the test (`_store_with` changes it)."""
    side: Side = request.getfixturevalue("side")
    original = site.registry.registered_metadata(side.role, side.entry_id)
    yield original
    side.store(site, side.entry_id, original)


def _store_with(site: PortalSite, side: Side, original: str, *kinds: str) -> None:
    """`original` with its `kinds` endpoints on a plain-http public host, written past every
    intake check."""
    paths = tuple(f"/{kind}" for kind in kinds)
    side.store(
        site, side.entry_id, plain_http_copy(original, f"/{side.login}", paths, side.plain_host)
    )


def _page(clients: dict[str, FlaskClient], side: Side, lang: str) -> str:
    response = clients[side.account].get(f"{side.page}?lang={lang}", base_url=HTTPS)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize("lang", ["nl", "en"])
@pytest.mark.parametrize("side", SIDES)
def test_a_login_and_an_slo_url_over_plain_http_are_said_in_plain_words(
    site: PortalSite, clients: dict[str, FlaskClient], plain_http: str, side: Side, lang: str
) -> None:
    _store_with(site, side, plain_http, side.login, "slo")
    page = _page(clients, side, lang)
    assert f'id="{side.login}-not-https"' in page and 'id="slo-not-https"' in page
    login, slo = side.said[lang]
    assert login in page and slo in page
    if lang == "nl":
        said = page.split(f'id="{side.login}-not-https"', 1)[1].split("</div>", 1)[0]
        assert " je " not in said and " uw " in said


@pytest.mark.parametrize("side", SIDES)
def test_only_what_is_refused_is_said(
    site: PortalSite, clients: dict[str, FlaskClient], plain_http: str, side: Side
) -> None:
    assert 'not-https"' not in _page(clients, side, "nl")  # the demo's loopback URLs pass
    _store_with(site, side, plain_http, "slo")
    page = _page(clients, side, "nl")
    assert 'id="slo-not-https"' in page and f'id="{side.login}-not-https"' not in page


@pytest.mark.parametrize(
    ("lang", "said"),
    [("nl", "onderteken uw LogoutRequest"), ("en", "sign your LogoutRequest")],
)
def test_the_saml_service_page_names_the_brokers_endpoints(
    site: PortalSite, clients: dict[str, FlaskClient], lang: str, said: str
) -> None:
    """What docs/publishers.md (section 2) says the page lists: entity ID and metadata, the
    SSO endpoint and the single logout endpoint."""
    page = _page(clients, PUBLISHER, lang)
    shown = page.split('id="saml-idp"', 1)[1].split("</dl>", 1)[0]
    base = site.settings.base_url
    for path in ("/saml/idp/metadata", "/saml/idp/sso", "/saml/idp/slo"):
        assert f"<code>{base}{path}</code>" in shown, path
    assert said in shown
