"""A school's other names in the portals (the CLI's `school update --alias`): the operator sets
them one per line on the school's page, with its name and town in one write, clears them, and
onboards a school with some; a bad list is refused next to its field, in the operator's language
with the line at fault, and nothing changes; the change is logged without the values; the
school's own overview says how students find it. Against the demo's broker app with the Flask
test client."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN
from broker.core.display_text import MAX_NAME
from broker.core.model import School
from broker.core.school_aliases import MAX_ALIASES

# The module's site (the demo's broker with a portal account per role) and its operator.
from tests.security.test_portal_school_details import operator, site  # noqa: F401  # fixtures
from tests.security.test_portal_school_town import SCHOOLS, _onboard
from tests.security.test_portal_self_service import field_error
from tests.support.portal import HTTPS, PortalSite, csrf_token

PAGE = f"{SCHOOLS}/{DEMO_SCHOOL_ID}"


@pytest.fixture
def demo_school(site: PortalSite) -> Iterator[None]:  # noqa: F811 - the imported fixture
    """Each test starts from, and leaves, the demo school as the demo registered it."""
    yield
    site.registry.set_school_details(DEMO_SCHOOL_ID, "Demo Lyceum", DEMO_SCHOOL_TOWN, [])


def _save(client: FlaskClient, aliases: str, name: str = "Demo Lyceum") -> tuple[int, str]:
    token = csrf_token(client.get(SCHOOLS, base_url=HTTPS).get_data(True))
    data = {"csrf_token": token, "name": name, "town": DEMO_SCHOOL_TOWN, "aliases": aliases}
    response = client.post(PAGE, base_url=HTTPS, data=data)
    return response.status_code, response.get_data(as_text=True)


def _demo(site: PortalSite) -> School:  # noqa: F811 - the imported fixture
    school = site.registry.school(DEMO_SCHOOL_ID)
    assert school is not None
    return school


@pytest.mark.usefixtures("demo_school")
def test_the_operator_sets_and_clears_a_schools_other_names(
    site: PortalSite,  # noqa: F811 - the imported fixture
    operator: FlaskClient,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    generation = site.registry.generation()
    with caplog.at_level(logging.INFO, logger="broker.portal"):
        # A browser sends CR LF; blank lines and spaces around a name do not count.
        status, page = _save(operator, "  Het  Baken \r\n\r\nLocatie Zuid\r\n")
    assert status == 303, page
    assert _demo(site).aliases == ("Het Baken", "Locatie Zuid")
    assert site.registry.generation() == generation + 1  # discovery pages reload
    logged = [r.getMessage() for r in caplog.records if "school details" in r.getMessage()]
    assert logged == [
        f"portal school details school={DEMO_SCHOOL_ID} changed=aliases "
        f"admin={site.accounts['operator'].admin.id}"
    ]
    assert "Baken" not in logged[0]
    # The page shows them one per line; the list of schools names them.
    page = operator.get(PAGE, base_url=HTTPS).get_data(as_text=True)
    assert "\nHet Baken\nLocatie Zuid</textarea>" in page
    assert "Andere namen" in page
    listing = operator.get(SCHOOLS, base_url=HTTPS).get_data(as_text=True)
    assert f"({DEMO_SCHOOL_ID}) — ook bekend als Het Baken, Locatie Zuid —" in listing
    # Emptied: none.
    status, _page = _save(operator, "")
    assert status == 303 and _demo(site).aliases == ()


@pytest.mark.usefixtures("demo_school")
def test_a_rename_to_a_former_name_and_its_aliases_are_one_write(
    site: PortalSite,  # noqa: F811 - the imported fixture
    operator: FlaskClient,  # noqa: F811
) -> None:
    site.registry.set_school_details(DEMO_SCHOOL_ID, aliases=["Het Baken"])
    generation = site.registry.generation()
    status, page = _save(operator, "Demo Lyceum", name="Het Baken")
    assert status == 303, page
    school = _demo(site)
    assert (school.name, school.aliases) == ("Het Baken", ("Demo Lyceum",))
    assert site.registry.generation() == generation + 1


@pytest.mark.usefixtures("demo_school")
@pytest.mark.parametrize(
    ("aliases", "name", "message"),
    [
        (
            "\n".join(f"Locatie {n}" for n in range(MAX_ALIASES + 1)),
            "Demo Lyceum",
            f"Geef hoogstens {MAX_ALIASES} andere namen, één per regel.",
        ),
        (
            "Het Baken\n\nhet-baken",
            "Demo Lyceum",
            "Regel 3: „het-baken” is hetzelfde als „Het Baken” (hoofdletters, accenten en "
            "leestekens tellen niet mee).",
        ),
        ("Het Baken\nDEMO LYCEUM", "Demo Lyceum", "Regel 2: „DEMO LYCEUM” is de naam van de"),
        # The name as changed in the same form counts.
        ("Het Baken", "Het Baken", "Regel 1: „Het Baken” is de naam van de school zelf."),
        # A hidden character: the same words as for a name, at the alias's line.
        (
            "Het\u200bBaken",
            "Demo Lyceum",
            "Regel 1: „Het?Baken” bevat verborgen tekens of stuurtekens (hier getoond als „?”), "
            "vaak meegekopieerd uit een pdf of document: U+200B ZERO WIDTH SPACE op plaats 4 "
            "(verwijder het).",
        ),
        (
            "Zuid\nHet Baken\u202e",
            "Demo Lyceum",
            "Regel 2: „Baken?” bevat verborgen tekens of stuurtekens",
        ),
        ("L" * (MAX_NAME + 1), "Demo Lyceum", f"Regel 1: gebruik hoogstens {MAX_NAME}"),
        ("Zuid\n-- ! --", "Demo Lyceum", "Regel 2: geef een naam met letters of cijfers."),
        # The look-alike rule in the words a name or a town gets, at the alias's line.
        (
            "Zuid\nHet B\u0430ken",
            "Demo Lyceum",
            "Regel 2: „B\u0430ken” mengt Latijnse letters met Cyrillische letters die erop "
            "lijken. Het bevat U+0430 CYRILLIC SMALL LETTER A op plaats 2 (typ in plaats daarvan "
            "„a”). Gebruik één schrift per woord.",
        ),
        # A fullwidth word (U+FF3A...: "Zuid"), and "Coco" in Cyrillic (U+0421 U+043E U+0441
        # U+043E), in the same words as for a name.
        (
            "Het Baken\nLocatie \uff3a\uff55\uff49\uff44",
            "Demo Lyceum",
            "Regel 2: „\uff3a\uff55\uff49\uff44” bevat bijzondere vormen van letters of cijfers "
            "(brede, wiskundige of samengevoegde): U+FF3A FULLWIDTH LATIN CAPITAL LETTER Z op "
            "plaats 1 (typ in plaats daarvan „Z”); U+FF55 FULLWIDTH LATIN SMALL LETTER U op plaats "
            "2 (typ in plaats daarvan „u”); U+FF49 FULLWIDTH LATIN SMALL LETTER I op plaats 3 (typ "
            "in plaats daarvan „i”); en nog 1 zo'n teken. Typ het woord opnieuw met gewone "
            "letters en cijfers.",
        ),
        (
            "\u0421\u043e\u0441\u043e",
            "Demo Lyceum",
            "Regel 1: „\u0421\u043e\u0441\u043e” bestaat alleen uit Cyrillische letters die op "
            "Latijnse lijken: het leest als „Coco”. Het bevat U+0421 CYRILLIC CAPITAL LETTER ES "
            "op plaats 1 (typ in plaats daarvan „C”);",
        ),
    ],
)
def test_bad_other_names_are_refused_next_to_their_field_and_nothing_changes(
    site: PortalSite,  # noqa: F811 - the imported fixture
    operator: FlaskClient,  # noqa: F811
    aliases: str,
    name: str,
    message: str,
) -> None:
    site.registry.set_school_details(DEMO_SCHOOL_ID, aliases=["Noord"])
    before, generation = _demo(site), site.registry.generation()
    status, page = _save(operator, aliases, name=name)
    assert status == 400
    assert message in field_error(page, "aliases"), field_error(page, "aliases")
    assert _demo(site) == before
    assert site.registry.generation() == generation


def test_the_operator_onboards_a_school_with_other_names(
    site: PortalSite,  # noqa: F811 - the imported fixture
    operator: FlaskClient,  # noqa: F811
) -> None:
    status, page = _onboard(site, operator, "33XX00", "Leiden", aliases="Gymnasium Leiden\nSGL")
    assert status == 303, page
    school = site.registry.school("33XX00")
    assert school is not None and school.aliases == ("Gymnasium Leiden", "SGL")
    generation = site.registry.generation()
    status, page = _onboard(site, operator, "34XX00", "Leiden", aliases="SGL\nsgl")
    assert status == 400
    assert "Regel 2" in field_error(page, "aliases")
    assert site.registry.school("34XX00") is None and site.registry.generation() == generation


@pytest.mark.usefixtures("demo_school")
def test_the_schools_overview_names_its_other_names(
    site: PortalSite,  # noqa: F811 - the imported fixture
) -> None:
    school = site.sign_in("school")
    overview = f"/portal/school/{DEMO_SCHOOL_ID}/overview"
    text = school.get(overview, base_url=HTTPS).get_data(as_text=True)
    assert "andere namen" not in text
    site.registry.set_school_details(DEMO_SCHOOL_ID, aliases=["Het Baken", "Locatie Zuid"])
    text = school.get(overview, base_url=HTTPS).get_data(as_text=True)
    assert "En op de andere namen: Het Baken, Locatie Zuid." in text
