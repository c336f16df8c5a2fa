"""The operator changes a school's name and town in the portal (the CLI's `school update --town`,
and a name): checked as when onboarding, a bad value refused next to its field with nothing
changed, the generation bumped so discovery pages show it, logged without the values. School
and publisher administrators cannot (their 403s are in test_portal_rights.py). Against the
demo's broker app with the Flask test client."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN
from broker.core.towns import MAX_TOWN
from tests.security.test_portal_self_service import field_error
from tests.support.portal import HTTPS, PortalSite, csrf_token

PAGE = f"/portal/operator/schools/{DEMO_SCHOOL_ID}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("portal-school-details"), port=8740)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def operator(site: PortalSite) -> FlaskClient:
    """Signed in once for the module: a TOTP code is accepted once only."""
    return site.sign_in("operator")


@pytest.fixture
def demo_school(site: PortalSite) -> Iterator[None]:
    """Each test starts from, and leaves, the demo school as the demo registered it."""
    yield
    site.registry.set_school_details(DEMO_SCHOOL_ID, "Demo Lyceum", DEMO_SCHOOL_TOWN)


def _save(client: FlaskClient, url: str, name: str, town: str) -> tuple[int, str]:
    token = csrf_token(client.get("/portal/operator/schools", base_url=HTTPS).get_data(True))
    response = client.post(
        url, base_url=HTTPS, data={"csrf_token": token, "name": name, "town": town}
    )
    return response.status_code, response.get_data(as_text=True)


@pytest.mark.usefixtures("demo_school")
def test_the_operator_changes_a_schools_name_and_town(
    site: PortalSite, operator: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    listing = operator.get("/portal/operator/schools", base_url=HTTPS).get_data(as_text=True)
    assert f'href="{PAGE}"' in listing
    page = operator.get(PAGE, base_url=HTTPS).get_data(as_text=True)
    assert 'value="Demo Lyceum"' in page and f'value="{DEMO_SCHOOL_TOWN}"' in page
    generation = site.registry.generation()
    with caplog.at_level(logging.INFO, logger="broker.portal"):
        status, page = _save(operator, PAGE, "Stedelijk Lyceum", "  Den \t Haag ")
    assert status == 303, page
    school = site.registry.school(DEMO_SCHOOL_ID)
    assert school is not None
    assert (school.name, school.town) == ("Stedelijk Lyceum", "Den Haag")
    assert site.registry.generation() > generation  # discovery pages reload
    listing = operator.get("/portal/operator/schools", base_url=HTTPS).get_data(as_text=True)
    assert f"Stedelijk Lyceum, Den Haag ({DEMO_SCHOOL_ID})" in listing
    assert f"School {DEMO_SCHOOL_ID} is opgeslagen." in listing
    logged = [r.getMessage() for r in caplog.records if "school details" in r.getMessage()]
    assert logged == [
        f"portal school details school={DEMO_SCHOOL_ID} changed=name,town "
        f"admin={site.accounts['operator'].admin.id}"
    ]
    assert "Stedelijk" not in logged[0] and "Haag" not in logged[0]
    # The town alone cleared: the name stays.
    status, _page = _save(operator, PAGE, "Stedelijk Lyceum", "")
    assert status == 303
    school = site.registry.school(DEMO_SCHOOL_ID)
    assert school is not None and (school.name, school.town) == ("Stedelijk Lyceum", "")


@pytest.mark.usefixtures("demo_school")
@pytest.mark.parametrize(
    ("name", "town", "field", "message"),
    [
        ("Stedelijk Lyceum", "L" * (MAX_TOWN + 1), "town", f"hoogstens {MAX_TOWN} letters"),
        (
            "Stedelijk Lyceum",
            "Leiden\u202e",
            "town",
            "„Leiden?” bevat verborgen tekens of stuurtekens (hier getoond als „?”), vaak "
            "meegekopieerd uit een pdf of document: U+202E RIGHT-TO-LEFT OVERRIDE op plaats 7 "
            "(verwijder het).",
        ),
        ("", "Leiden", "name", "Vul dit veld in"),
        ("   ", "Leiden", "name", "Vul dit veld in"),
        ("L" * 201, "Leiden", "name", "200"),
        (
            "Demo\u200bLyceum",
            "Leiden",
            "name",
            "„Demo?Lyceum” bevat verborgen tekens of stuurtekens (hier getoond als „?”), vaak "
            "meegekopieerd uit een pdf of document: U+200B ZERO WIDTH SPACE op plaats 5 "
            "(verwijder het).",
        ),
        # U+0435: a Cyrillic e, in a word of Latin letters.
        (
            "Demo Lyc\u0435um",
            "Leiden",
            "name",
            "„Lyc\u0435um” mengt Latijnse letters met Cyrillische letters die erop lijken. Het "
            "bevat U+0435 CYRILLIC SMALL LETTER IE op plaats 4 (typ in plaats daarvan „e”).",
        ),
        ("Stedelijk Lyceum", "L\u0435iden", "town", "„L\u0435iden” mengt Latijnse letters"),
    ],
)
def test_a_bad_name_or_town_is_refused_next_to_its_field_and_nothing_changes(
    site: PortalSite, operator: FlaskClient, name: str, town: str, field: str, message: str
) -> None:
    generation = site.registry.generation()
    status, page = _save(operator, PAGE, name, town)
    assert status == 400
    assert message in field_error(page, field), field_error(page, field)
    school = site.registry.school(DEMO_SCHOOL_ID)
    assert school is not None and (school.name, school.town) == ("Demo Lyceum", DEMO_SCHOOL_TOWN)
    assert site.registry.generation() == generation


def test_an_unknown_school_is_refused_and_nothing_changes(
    site: PortalSite, operator: FlaskClient
) -> None:
    generation = site.registry.generation()
    status, page = _save(operator, "/portal/operator/schools/99ZZ99", "Nieuw", "Leiden")
    assert status == 400
    assert "niet bekend" in page
    assert site.registry.school("99ZZ99") is None
    assert site.registry.generation() == generation
