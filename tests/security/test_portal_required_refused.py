"""A platform that requires an attribute the school does not release refuses every login of its
students (core/release.py); the school's pages say so before a student tries, and what to tick,
whatever the reason: the school never chose (the pseudonym only), or saved a choice without it.
A change to confirm and a new purpose say it too (test_portal_purpose_change.py). The services
cards, the service page and the "who receives what" overview, which counts such platforms.

Flask test client against the demo's broker app, signed in as the school.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.errors import RequiredAttributeMissing
from broker.core.model import Declaration, Service
from broker.core.release import release_for
from tests.security.test_portal_declarations import sp_metadata
from tests.security.test_portal_purpose_change import LISTED, OVERVIEW, _page, _text
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite, choice_fields

NAME = Declaration("given_name", "Om te begroeten", purpose_en="To greet")
MAIL = Declaration(
    "email", "Om een inloglink te sturen", required=True, purpose_en="To send a sign-in link"
)
GROUPS = Declaration("groups", "Om de klas te tonen", required=True, purpose_en="To show the class")
OPTIONAL_MAIL = Declaration("email", MAIL.purpose, purpose_en=MAIL.purpose_en)
AVAILABLE = {"given_name": ("Ada",), "email": ("ada@school.example",), "groups": ("2b",)}

CARD = (
    "Your students cannot sign in to this platform until you tick E-mail address and save your "
    "choice: the platform requires it."
)
CARD_NL = (
    "Uw leerlingen kunnen niet inloggen op dit platform totdat u E-mailadres aanvinkt en uw "
    "keuze opslaat: het platform vereist dit."
)
NOTICE = (
    "The platform requires E-mail address: until you tick it under “Your choice” and save, your "
    "students cannot sign in to this platform."
)
NOTICE_NL = (
    "Het platform vereist E-mailadres: totdat u dit aanvinkt onder „Uw keuze” en opslaat, "
    "kunnen uw leerlingen niet inloggen op dit platform."
)
NOTHING = "Your students cannot sign in to this platform now (see above): it receives nothing."


def _site(directory: Path) -> PortalSite:
    return PortalSite(directory, port=8815)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = _site(tmp_path_factory.mktemp("required-refused"))
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def school(site: PortalSite) -> FlaskClient:
    return site.sign_in("school")


def _service(site: PortalSite, service_id: str, *declarations: Declaration) -> str:
    """An approved service the demo school never chose for: its page in the school's portal."""
    entity = f"https://sp.{service_id}.example"
    service = Service(
        service_id, "Rooster", entity, None, declarations=declarations, publisher_id=PUBLISHER_ID
    )
    site.registry.add_service(service, sp_metadata(entity, f"{entity}/acs"))
    site.registry.approve_service(service_id)
    return f"/portal/school/{DEMO_SCHOOL_ID}/services/{service_id}"


def _logins_refused(site: PortalSite, service_id: str) -> bool:
    """What the login path does with the school's policy now (a student with every attribute)."""
    service = site.registry.service(service_id)
    assert service is not None
    try:
        release_for(service, site.registry.policy(DEMO_SCHOOL_ID, service_id), None, AVAILABLE)
    except RequiredAttributeMissing:
        return True
    return False


def _save(school: FlaskClient, url: str, *ticked: str, active: bool = True) -> None:
    page = _page(school, url)
    data: dict[str, object] = {**choice_fields(page), "attributes": list(ticked)}
    if active:
        data["active"] = "y"
    assert school.post(url, base_url=HTTPS, data=data).status_code == 303


def _reads(
    school: FlaskClient, url: str, element_id: str, english: str, dutch: str, tag: str = "div"
) -> None:
    """The element says `english` on the page in English and `dutch` on it in Dutch."""
    assert _text(_page(school, url), element_id, tag) == english
    assert _text(_page(school, url, "nl"), element_id, tag) == dutch


def _says_nothing(school: FlaskClient, url: str, service_id: str) -> None:
    assert 'id="logins-refused"' not in _page(school, url)
    for listed in (LISTED, OVERVIEW):
        assert f'id="logins-refused-{service_id}"' not in _page(school, listed)


def test_a_platform_the_school_never_chose_for_says_that_logins_are_refused(
    site: PortalSite, school: FlaskClient
) -> None:
    url = _service(site, "rooster-nooit", NAME, MAIL)
    optional_url = _service(site, "rooster-vrij", NAME, OPTIONAL_MAIL)
    # The default (the pseudonym only) refuses the first, not the second.
    assert _logins_refused(site, "rooster-nooit")
    assert not _logins_refused(site, "rooster-vrij")

    for listed in (LISTED, OVERVIEW):
        _reads(school, listed, "logins-refused-rooster-nooit", CARD, CARD_NL, "p")
    _reads(school, url, "logins-refused", NOTICE, NOTICE_NL)
    assert _text(_page(school, url), "preview", "p") == NOTHING
    _says_nothing(school, optional_url, "rooster-vrij")

    _save(school, url, "email")
    assert not _logins_refused(site, "rooster-nooit")
    _says_nothing(school, url, "rooster-nooit")


def test_a_choice_saved_without_a_required_attribute_says_that_logins_are_refused(
    site: PortalSite, school: FlaskClient
) -> None:
    url = _service(site, "rooster-zonder", NAME, MAIL, GROUPS)
    _save(school, url, "given_name")
    assert _logins_refused(site, "rooster-zonder")

    # Both missing: both named (in the catalogue's order, labels.attribute_labels).
    for listed in (LISTED, OVERVIEW):
        _reads(
            school,
            listed,
            "logins-refused-rooster-zonder",
            "Your students cannot sign in to this platform until you tick E-mail address, "
            "Classes and groups and save your choice: the platform requires them.",
            "Uw leerlingen kunnen niet inloggen op dit platform totdat u E-mailadres, Klassen en "
            "groepen aanvinkt en uw keuze opslaat: het platform vereist deze.",
            "p",
        )
    _reads(
        school,
        url,
        "logins-refused",
        "The platform requires E-mail address, Classes and groups: until you tick them under "
        "“Your choice” and save, your students cannot sign in to this platform.",
        "Het platform vereist E-mailadres, Klassen en groepen: totdat u deze aanvinkt onder "
        "„Uw keuze” en opslaat, kunnen uw leerlingen niet inloggen op dit platform.",
    )

    # One of the two saved: the other is still missing, and named alone.
    _save(school, url, "given_name", "groups")
    assert _logins_refused(site, "rooster-zonder")
    _reads(school, LISTED, "logins-refused-rooster-zonder", CARD, CARD_NL, "p")
    _reads(school, url, "logins-refused", NOTICE, NOTICE_NL)

    _save(school, url, "given_name", "groups", "email")
    assert not _logins_refused(site, "rooster-zonder")
    _says_nothing(school, url, "rooster-zonder")


def test_a_platform_switched_off_says_so_instead(site: PortalSite, school: FlaskClient) -> None:
    url = _service(site, "rooster-uit", NAME, MAIL)
    _save(school, url, active=False)
    _says_nothing(school, url, "rooster-uit")
    assert _text(_page(school, url), "preview", "p") == (
        "Switched off: this platform receives nothing, and your students cannot sign in to it."
    )


def test_the_overview_counts_the_platforms_students_cannot_sign_in_to(
    tmp_path: Path,
) -> None:
    """Its own site: the count covers every platform of the school."""
    site = _site(tmp_path)
    try:
        school = site.sign_in("school")
        # The demo's own platforms require nothing: no count.
        for listed in (LISTED, OVERVIEW):
            assert 'id="logins-refused-count"' not in _page(school, listed)
        url = _service(site, "rooster-een", NAME, MAIL)
        _service(site, "rooster-twee", GROUPS)
        _service(site, "rooster-vrij", OPTIONAL_MAIL)
        two = (
            "Your students cannot sign in to 2 platforms: each requires something you do not "
            "share. Below it says what to tick.",
            "Uw leerlingen kunnen niet inloggen op 2 platforms: elk vereist iets wat u niet "
            "deelt. Hieronder staat wat u moet aanvinken.",
        )
        one = (
            "Your students cannot sign in to 1 platform: it requires something you do not "
            "share. Below it says what to tick.",
            "Uw leerlingen kunnen niet inloggen op 1 platform: het vereist iets wat u niet "
            "deelt. Hieronder staat wat u moet aanvinken.",
        )
        for listed in (LISTED, OVERVIEW):
            _reads(school, listed, "logins-refused-count", *two)
        _save(school, url, "email")
        for listed in (LISTED, OVERVIEW):
            _reads(school, listed, "logins-refused-count", *one)
    finally:
        site.registry.close()
