"""A school's town in the portals: the operator onboards a school with its town (a bad town is
refused next to its field, nothing added), the operator's list shows it, and the school's own
overview says how students find it. Against the demo's broker app with the Flask test client."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN
from broker.core.towns import MAX_TOWN
from tests.security.test_portal_self_service import field_error
from tests.support.portal import HTTPS, PortalSite, csrf_token

SCHOOLS = "/portal/operator/schools"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("portal-town"), port=8740)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def operator(site: PortalSite) -> FlaskClient:
    """Signed in once for the module: a TOTP code is accepted once only."""
    return site.sign_in("operator")


def _onboard(
    site: PortalSite, client: FlaskClient, school_id: str, town: str, aliases: str = ""
) -> tuple[int, str]:
    """Onboard `school_id` with an IdP of its own (the demo school's metadata, another entity id)."""
    demo = site.registry.school(DEMO_SCHOOL_ID)
    assert demo is not None
    xml = site.registry.school_metadata()[demo.idp_entity_id]
    xml = xml.replace(demo.idp_entity_id, f"https://idp.{school_id.lower()}.example/saml")
    token = csrf_token(client.get(SCHOOLS, base_url=HTTPS).get_data(as_text=True))
    response = client.post(
        SCHOOLS,
        base_url=HTTPS,
        data={
            "csrf_token": token,
            "school_id": school_id,
            "name": "Stedelijk Gymnasium",
            "town": town,
            "aliases": aliases,
            "metadata_file": (BytesIO(xml.encode()), "idp.xml"),
        },
        content_type="multipart/form-data",
    )
    return response.status_code, response.get_data(as_text=True)


def test_the_operator_onboards_a_school_with_its_town(
    site: PortalSite, operator: FlaskClient
) -> None:
    status, page = _onboard(site, operator, "30LE00", "  Leiden ")
    assert status == 303, page
    school = site.registry.school("30LE00")
    assert school is not None and school.town == "Leiden"
    listing = operator.get(SCHOOLS, base_url=HTTPS).get_data(as_text=True)
    assert "Stedelijk Gymnasium, Leiden (30LE00)" in listing
    assert f"Demo Lyceum, {DEMO_SCHOOL_TOWN} ({DEMO_SCHOOL_ID})" in listing
    # Without a town: none, and the list says nothing of one.
    status, _page = _onboard(site, operator, "31XX00", "")
    assert status == 303
    assert site.registry.school("31XX00").town == ""  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("town", "message"),
    [
        ("L" * (MAX_TOWN + 1), f"Gebruik hoogstens {MAX_TOWN} letters"),
        # Dutch by default, the hidden character named with its place in the word.
        ("Leiden\u202e", "„Leiden?” bevat verborgen tekens of stuurtekens"),
        ("Lei\u200bden", "U+200B ZERO WIDTH SPACE op plaats 4 (verwijder het)."),
    ],
)
def test_a_bad_town_is_refused_next_to_its_field_and_nothing_added(
    site: PortalSite, operator: FlaskClient, town: str, message: str
) -> None:
    generation = site.registry.generation()
    status, page = _onboard(site, operator, "32XX00", town)
    assert status == 400
    assert message in field_error(page, "town")
    assert site.registry.school("32XX00") is None
    assert site.registry.generation() == generation


def test_the_schools_overview_says_how_students_find_it(site: PortalSite) -> None:
    school = site.sign_in("school")
    page = school.get(f"/portal/school/{DEMO_SCHOOL_ID}/overview", base_url=HTTPS)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f"<strong>Demo Lyceum</strong>, {DEMO_SCHOOL_TOWN}." in text
    site.registry.set_school_town(DEMO_SCHOOL_ID, "")
    try:
        text = school.get(f"/portal/school/{DEMO_SCHOOL_ID}/overview", base_url=HTTPS).get_data(
            as_text=True
        )
        assert "<strong>Demo Lyceum</strong> (geen plaats opgegeven)." in text
    finally:
        site.registry.set_school_town(DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN)
