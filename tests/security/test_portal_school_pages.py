"""The school portal as a privacy officer reads it, with the Flask test client: a bare e-mail
address as privacy contact, readable attribute names instead of codes, who changed a policy
(the colleague's address on the page only, never in the history or a log), times in the
broker's zone on the school's and the publisher's pages, date filters, and the QR code of the
invitation page."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
import segno
from click.testing import CliRunner
from flask.testing import FlaskClient

from broker.accounts.tokens import new_token, token_hash
from broker.cli.demo import DEMO_SCHOOL_ID
from broker.cli.instance import CONFIG_NAME
from broker.cli.main import main
from broker.core.admins import AdminRole, Publisher
from broker.core.endpoints import privacy_contact_link
from broker.core.model import ClientAuthMethod, Declaration, Protocol, Service
from broker.oidc.registration import new_client
from tests.support.portal import HTTPS, PUBLISHER_ID, PortalSite, choice_fields, csrf_token

SCHOOL = f"/portal/school/{DEMO_SCHOOL_ID}"
CONTACT = f"{SCHOOL}/privacy-contact"
RECEIPTS = f"{SCHOOL}/receipts"
OS_USER = "beheer-jdevries"  # the operator's login name on the server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("school-pages"), port=8771)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def school(site: PortalSite) -> FlaskClient:
    return site.sign_in("school")


def _page(client: FlaskClient, url: str) -> str:
    response = client.get(url, base_url=HTTPS)
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def _save_contact(client: FlaskClient, contact: str, lang: str = "nl") -> tuple[int, str]:
    token = csrf_token(_page(client, f"{SCHOOL}/overview?lang={lang}"))
    response = client.post(CONTACT, base_url=HTTPS, data={"csrf_token": token, "contact": contact})
    return response.status_code, response.get_data(as_text=True)


# -- 1: the privacy contact ---------------------------------------------------------------------
def test_a_bare_address_is_kept_and_shown_as_a_mailto_link(
    site: PortalSite, school: FlaskClient
) -> None:
    status, _ = _save_contact(school, "  privacy@lyceum.nl ")
    assert status == 303
    stored = site.registry.school(DEMO_SCHOOL_ID)
    assert stored is not None and stored.privacy_contact == "mailto:privacy@lyceum.nl"
    assert 'value="mailto:privacy@lyceum.nl"' in _page(school, f"{SCHOOL}/overview")
    # The forms a school used so far still work.
    for contact in ("https://lyceum.example/privacy", "mailto:fg@lyceum.example"):
        assert _save_contact(school, contact)[0] == 303
        stored = site.registry.school(DEMO_SCHOOL_ID)
        assert stored is not None and stored.privacy_contact == contact


@pytest.mark.parametrize(
    ("contact", "dutch", "english"),
    [
        ("privacy@", "Vul één e-mailadres in", "Enter one e-mail address"),
        ("a@b@lyceum.nl", "Vul één e-mailadres in", "Enter one e-mail address"),
        ("mailto:", "Vul één e-mailadres in", "Enter one e-mail address"),
        ("http://lyceum.example/privacy", "Vul een e-mailadres in", "Enter an e-mail address"),
        ("privacy at lyceum", "Vul een e-mailadres in", "Enter an e-mail address"),
    ],
)
def test_an_unusable_contact_gets_a_specific_message_and_changes_nothing(
    site: PortalSite, school: FlaskClient, contact: str, dutch: str, english: str
) -> None:
    before = site.registry.school(DEMO_SCHOOL_ID)
    status, page = _save_contact(school, contact)
    assert status == 400 and dutch in page
    status, page = _save_contact(school, contact, lang="en")
    assert status == 400 and english in page
    assert site.registry.school(DEMO_SCHOOL_ID) == before


def test_only_a_bare_address_becomes_a_mailto_link() -> None:
    assert privacy_contact_link(" fg@school.nl ") == "mailto:fg@school.nl"
    assert privacy_contact_link("mailto:fg@school.nl") == "mailto:fg@school.nl"
    assert privacy_contact_link("https://x@school.nl/") == "https://x@school.nl/"
    assert privacy_contact_link("school.nl/privacy") == "school.nl/privacy"


# -- 2 and 3: labels instead of codes, and who changed a policy -------------------------------
def _choose(client: FlaskClient, service: str, attributes: list[str]) -> None:
    url = f"{SCHOOL}/services/{service}"
    page = _page(client, url)
    data = {**choice_fields(page), "active": "y", "attributes": attributes}
    assert client.post(url, base_url=HTTPS, data=data).status_code == 303


def test_services_and_history_name_attributes_and_the_colleague(
    site: PortalSite, school: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    email = site.accounts["school"].email
    with caplog.at_level(logging.DEBUG):
        _choose(school, "leesplank", ["given_name", "affiliation"])
    assert email not in caplog.text  # the log names the administrator by id
    change = site.registry.policy_history(DEMO_SCHOOL_ID, "leesplank")[-1]
    assert change.changed_by == f"admin:{site.accounts['school'].admin.id}"

    dutch = _page(school, f"{SCHOOL}/services?lang=nl")
    assert "Deelt: Voornaam, Rol op school" in dutch
    assert "given_name" not in dutch and "affiliation" not in dutch
    english = _page(school, f"{SCHOOL}/services?lang=en")
    assert "Shares: First name, Role at school" in english

    history = _page(school, f"{SCHOOL}/services/leesplank?lang=en")
    rows = re.findall(
        r'<tr><td data-label="Version">(\d+)</td>(.*?)</tr>', history.split('id="history"')[1], re.S
    )
    newest = rows[0][1]
    assert _who(email) in newest and "First name, Role at school" in newest
    assert "admin:" not in history


def _who(author: str, lang: str = "en") -> str:
    """A history row's cell naming who made the change (labelled by its column, "Who")."""
    return f'<td class="identifier" data-label="{"Wie" if lang == "nl" else "Who"}">{author}</td>'


def test_a_change_by_an_administrator_who_is_gone_is_named_neutrally(
    site: PortalSite, school: FlaskClient
) -> None:
    site.registry.set_policy(DEMO_SCHOOL_ID, "rekenroute", frozenset(), "admin:987654")
    page = _page(school, f"{SCHOOL}/services/rekenroute?lang=nl")
    assert _who("verwijderde beheerder", "nl") in page and "admin:987654" not in page
    page = _page(school, f"{SCHOOL}/services/rekenroute?lang=en")
    assert _who("removed administrator") in page


def test_an_administrator_of_another_organisation_is_not_shown_by_address(
    site: PortalSite, school: FlaskClient
) -> None:
    publisher = site.accounts["publisher"].admin
    site.registry.set_policy(DEMO_SCHOOL_ID, "toetsplein", frozenset(), f"admin:{publisher.id}")
    page = _page(school, f"{SCHOOL}/services/toetsplein?lang=en")
    assert site.accounts["publisher"].email not in page


def test_an_administrator_of_another_role_with_the_same_tenant_id_is_not_shown(
    site: PortalSite, school: FlaskClient
) -> None:
    """A publisher whose id is the school's id string is another organisation all the same:
    a colleague is the same role and the same tenant."""
    site.registry.accounts.add_publisher(Publisher(DEMO_SCHOOL_ID, "Namesake"))
    namesake = site.add_account("dev@namesake.example", AdminRole.PUBLISHER, DEMO_SCHOOL_ID)
    site.registry.set_policy(
        DEMO_SCHOOL_ID, "toetsplein", frozenset(), f"admin:{namesake.admin.id}"
    )
    page = _page(school, f"{SCHOOL}/services/toetsplein?lang=en")
    assert "dev@namesake.example" not in page
    assert _who("removed administrator") in page


def test_a_change_from_the_command_line_names_the_operator_not_their_login(
    site: PortalSite, school: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `ketenbroker policy set` as the operator runs it, logged in on the server as OS_USER.
    monkeypatch.setenv("LOGNAME", OS_USER)
    result = CliRunner().invoke(
        main,
        [
            "policy", "set", "--config", str(site.directory / CONFIG_NAME),
            "--school", DEMO_SCHOOL_ID, "--publisher", "rekenroute", "--release", "affiliation",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # The record keeps the login, for the operator's audit.
    assert site.registry.policy_history(DEMO_SCHOOL_ID, "rekenroute")[-1].changed_by == (
        f"cli:{OS_USER}"
    )
    for lang, operator in (
        ("en", "the broker&#39;s operator"),
        ("nl", "de operator van de federatie"),
    ):
        page = _page(school, f"{SCHOOL}/services/rekenroute?lang={lang}")
        newest = page.split('id="history"')[1].split("</tr>")[1]
        assert _who(operator, lang) in newest, newest
        assert OS_USER not in page and "cli:" not in page


@pytest.mark.parametrize(
    ("recorded", "english", "dutch"),
    [
        (f"import:{OS_USER}", "the broker&#39;s operator (registry import)", "de operator van de federatie (registerimport)"),
        ("demo", "demo set-up", "demo-inrichting"),
        ("some-tool", "the broker&#39;s operator", "de operator van de federatie"),
        ("admin:not-a-number", "removed administrator", "verwijderde beheerder"),
    ],
)  # fmt: skip
def test_other_recorded_authors_are_named_by_what_they_are(
    site: PortalSite, school: FlaskClient, recorded: str, english: str, dutch: str
) -> None:
    site.registry.set_policy(DEMO_SCHOOL_ID, "rekenroute", frozenset(), recorded)
    for lang, shown in (("en", english), ("nl", dutch)):
        page = _page(school, f"{SCHOOL}/services/rekenroute?lang={lang}")
        newest = page.split('id="history"')[1].split("</tr>")[1]
        assert _who(shown, lang) in newest and _who(recorded, lang) not in page
        assert OS_USER not in page


def test_the_dutch_menu_names_the_sign_in_service_and_the_records_in_dutch(
    school: FlaskClient,
) -> None:
    page = _page(school, f"{SCHOOL}/services?lang=nl")
    nav = page.split('class="portal-nav"')[1].split("</nav>")[0]
    assert ">Inlogdienst<" in nav and ">Verstrekkingen<" in nav
    assert "Identity provider" not in nav and "Bonnen" not in nav


def test_a_switched_off_service_is_shown_receiving_nothing_under_its_version(
    site: PortalSite, school: FlaskClient
) -> None:
    site.registry.set_policy(DEMO_SCHOOL_ID, "toetsplein", frozenset({"groups"}), "test")
    off = site.registry.set_policy(DEMO_SCHOOL_ID, "toetsplein", frozenset(), "test", active=False)
    page = _page(school, f"{SCHOOL}/services/toetsplein?lang=nl")
    preview = page.split('id="preview"')[1].split("</p>")[0]
    assert "dit platform krijgt niets" in preview
    assert "Pseudoniem" not in preview  # a switched-off platform receives no pseudonym either
    overview = _page(school, f"{SCHOOL}/overview?lang=nl")
    row = overview.split('data-service="toetsplein"')[1].split("</tr>")[0]
    assert "Uitgezet" in row and off.version > 1
    assert f'data-version="{off.version}">{off.version}</td>' in row
    # The register says what a shared chain means for the students.
    assert "hetzelfde pseudoniem voor een leerling" in overview


@pytest.mark.parametrize(
    ("lang", "header", "no_choice"),
    [("nl", "Informatiepagina", "nog geen keuze"), ("en", "Notice", "no choice yet")],
)
def test_the_overview_says_no_choice_yet_instead_of_version_0(
    site: PortalSite, school: FlaskClient, lang: str, header: str, no_choice: str
) -> None:
    """A service the school never chose for; every cell carries its column's name, under which
    it stacks on a phone (style.css, table--stack)."""
    if site.registry.service("noord-atlas") is None:
        site.registry.add_service(
            Service("noord-atlas", "Atlas", "https://atlas.noord.example", None), None
        )
    overview = _page(school, f"{SCHOOL}/overview?lang={lang}")
    headers = re.findall(r'<th scope="col">(.*?)</th>', overview.split('id="overview"')[1])
    assert headers[-1] == header  # short enough for the column: the table fits the page
    row = overview.split('data-service="noord-atlas"')[1].split("</tr>")[0]
    assert f'data-version="0">{no_choice}</td>' in row
    assert re.findall(r'<td data-label="([^"]*)"', row) == [unescape(h) for h in headers]


# -- 4b: who offers a platform, and its chain, for the processing register -----------------------
@pytest.mark.parametrize(
    ("lang", "chain", "no_publisher"),
    [
        ("nl", "Leermiddelen (leermiddelen)", "Er is geen uitgever geregistreerd"),
        ("en", "Leermiddelen (leermiddelen)", "No publisher organisation is registered"),
    ],
)
def test_a_service_names_its_publisher_and_its_chain_by_name(
    site: PortalSite, school: FlaskClient, lang: str, chain: str, no_publisher: str
) -> None:
    if site.registry.service("noord-leesboek") is None:
        site.registry.add_service(
            Service(
                "noord-leesboek",
                "Leesboek",
                "https://leesboek.noord.example",
                "leermiddelen",
                publisher_id=PUBLISHER_ID,
            ),
            None,
        )

    def offered_by(service_id: str) -> dict[str, str]:
        page = _page(school, f"{SCHOOL}/services/{service_id}?lang={lang}")
        found = re.search(r'<dl class="credentials" id="offered-by">(.*?)</dl>', page, re.S)
        assert found, "no publisher and chain on the service page"
        cells = re.findall(r'<dd id="(\w+)">(.*?)</dd>', found.group(1), re.S)
        return {name: unescape(re.sub(r"<[^>]+>", "", text)) for name, text in cells}

    assert offered_by("noord-leesboek") == {"publisher": "Uitgeverij-Noord", "chain": chain}
    # The demo's own services have no publisher organisation: said so, not left blank.
    demo = offered_by("leesplank")
    assert demo["publisher"].startswith(no_publisher) and demo["chain"] == chain
    overview = _page(school, f"{SCHOOL}/overview?lang={lang}")
    row = overview.split('data-service="toetsplein"')[1].split("</tr>")[0]
    assert ">Toetsen</td>" in row


# -- 5: times in the broker's zone on every portal ---------------------------------------------
def test_times_show_the_brokers_zone_in_the_school_and_publisher_portals(
    site: PortalSite, school: FlaskClient
) -> None:
    zone = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} CES?T"
    site.registry.set_policy(DEMO_SCHOOL_ID, "woordwijs", frozenset(), "test")
    assert re.search(zone, _page(school, f"{SCHOOL}/services/woordwijs"))
    client, _ = new_client(("https://noord.example/cb",), ClientAuthMethod.SECRET_BASIC)
    own = Service(
        "noord-times",
        "Noord",
        "noord-times",
        None,
        protocol=Protocol.OIDC,
        oidc=client,
        publisher_id=PUBLISHER_ID,
    )
    site.registry.add_service(own, None)
    site.registry.set_declarations(
        "noord-times", (Declaration("given_name", "To greet the student."),), "test"
    )
    page = _page(
        site.sign_in("publisher"), f"/portal/publisher/{PUBLISHER_ID}/services/noord-times"
    )
    assert re.search(zone, page) and " UTC" not in page


# -- 6: date filters -----------------------------------------------------------------------------
def test_the_date_filters_are_date_inputs(school: FlaskClient) -> None:
    page = _page(school, RECEIPTS)
    for name in ("since", "until"):
        found = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
        assert found and 'type="date"' in found.group(0), found


@pytest.mark.parametrize(
    ("dates", "dutch", "english"),
    [
        ({"since": "28-11-2026"}, "Vul de datum in als JJJJ-MM-DD", "Enter the date as YYYY-MM-DD"),
        ({"until": "2026-02-30"}, "Deze datum bestaat niet", "This date does not exist"),
        (
            {"since": "2026-11-28", "until": "2026-11-01"},
            "Deze datum ligt vóór de Vanaf-datum",
            "This date is before the From date",
        ),
    ],
)
def test_a_wrong_date_gets_a_specific_message(
    school: FlaskClient, dates: dict[str, str], dutch: str, english: str
) -> None:
    for lang, message in (("nl", dutch), ("en", english)):
        # The filter is POSTed, as its form sends it, after the page in that language.
        token = csrf_token(_page(school, f"{RECEIPTS}?lang={lang}"))
        data = {"csrf_token": token, **dates}
        response = school.post(RECEIPTS, base_url=HTTPS, data=data)
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)


# -- 7: the QR code of the invitation ------------------------------------------------------------
def test_the_invitation_shows_a_qr_code_of_the_otpauth_link_as_inline_svg(
    site: PortalSite,
) -> None:
    token = new_token()
    site.registry.accounts.add_invitation(
        token_hash(token),
        "new.colleague@lyceum.example",
        AdminRole.SCHOOL,
        DEMO_SCHOOL_ID,
        datetime.now(UTC) + timedelta(days=1),
        site.accounts["operator"].admin.id,
    )
    response = site.client().get(f"/portal/invitation/{token}", base_url=HTTPS)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    svg = re.search(r'<figure class="qr" id="totp-qr">(<svg .*?</svg>)</figure>', page, re.S)
    assert svg is not None
    uri = re.search(r'id="otpauth-uri">([^<]+)<', page)
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7]+)<', page)
    # The key and the link stay, for typing in.
    assert uri is not None and secret is not None and f"secret={secret.group(1)}" in uri.group(1)
    # The code carries exactly the link shown beside it.
    link = uri.group(1).replace("&amp;", "&")
    drawn = re.findall(r' d="([^"]+)"', svg.group(1))
    expected = re.findall(r' d="([^"]+)"', segno.make(link, error="m").svg_inline())
    assert len(expected) == 1 and expected[0] in drawn
    # Nothing the Content Security Policy would block: no script, data: URL or style.
    assert "<script" not in svg.group(1) and "data:" not in svg.group(1)
    assert "style=" not in svg.group(1)
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("role", "tenant", "lang", "said"),
    [
        (
            AdminRole.SCHOOL,
            DEMO_SCHOOL_ID,
            "nl",
            "U bent uitgenodigd als beheerder van Demo Lyceum (99XX00).",
        ),
        (
            AdminRole.SCHOOL,
            DEMO_SCHOOL_ID,
            "en",
            "You are invited as administrator of Demo Lyceum (99XX00).",
        ),
        (
            AdminRole.PUBLISHER,
            PUBLISHER_ID,
            "nl",
            f"U bent uitgenodigd als beheerder van Uitgeverij-Noord ({PUBLISHER_ID}).",
        ),
    ],
)
def test_the_invitation_names_the_school_or_publisher_not_only_its_id(
    site: PortalSite, role: AdminRole, tenant: str, lang: str, said: str
) -> None:
    token = new_token()
    site.registry.accounts.add_invitation(
        token_hash(token),
        f"{role.value}.{lang}@lyceum.example",
        role,
        tenant,
        datetime.now(UTC) + timedelta(days=1),
        site.accounts["operator"].admin.id,
    )
    page = _page(site.client(), f"/portal/invitation/{token}?lang={lang}")
    lead = re.search(r'<p class="lead" id="invited-to">(.*?)</p>', page, re.S)
    assert lead and unescape(lead.group(1)).startswith(said)
