"""The school's receipts pages with the Flask test client: the student lookup keeps the
identifier out of every URL and log line, the filter refuses dates that do not exist, and the
export links pass on nothing but the filter."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from broker.cli.demo import DEMO_SCHOOL_ID
from broker.core.model import Release, UpstreamIdentity
from broker.core.receipts import receipt_content
from tests.support.portal import HTTPS, PortalSite, csrf_token
from tests.support.receipts import file_receipt

IDENTIFIER = "qzx-lookup-student-77"
RECEIPTS = f"/portal/school/{DEMO_SCHOOL_ID}/receipts"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    built = PortalSite(tmp_path_factory.mktemp("receipts-portal"))
    broker = built.app.extensions["ketenbroker"]
    school = broker.view.school(DEMO_SCHOOL_ID)
    # The student's receipts in two chains (leermiddelen, toetsen) and one filed before
    # per-chain subjects, with the old subject (COMPAT(receipt-subject-v1)); another
    # student's in the first chain.
    for subject, service_id, old in (
        (IDENTIFIER, "leesplank", False),
        (IDENTIFIER, "toetsplein", False),
        (IDENTIFIER, "rekenroute", True),
        ("someone-else", "leesplank", False),
    ):
        identity = UpstreamIdentity(DEMO_SCHOOL_ID, subject)
        file_receipt(broker, school, service_id, identity, old=old)
    yield built
    built.registry.close()


@pytest.fixture(scope="module")
def school(site: PortalSite) -> FlaskClient:
    return site.sign_in("school")


def test_student_lookup_redirects_with_the_code_only(
    site: PortalSite, school: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    page = school.get(RECEIPTS, base_url=HTTPS)
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))
    with caplog.at_level(logging.DEBUG):
        found = school.post(
            f"{RECEIPTS}/student",
            base_url=HTTPS,
            data={"csrf_token": token, "identifier": IDENTIFIER},
        )
    assert found.status_code == 303
    location = found.headers["Location"]
    assert IDENTIFIER not in location and IDENTIFIER not in caplog.text
    # A code per chain the student's receipts are in, and the old one: all three found.
    codes = parse_qs(urlsplit(location).query)["student"][0].split(" ")
    assert len(codes) == 3 and all(len(code) == 16 for code in codes)
    listed = school.get(location, base_url=HTTPS).get_data(as_text=True)
    assert listed.count("data-receipt") == 3 and all(code in listed for code in codes)
    assert IDENTIFIER not in listed
    # One code finds its chain's receipts only: the code is per chain, and the page says so.
    one = school.get(f"{RECEIPTS}?student={codes[0]}", base_url=HTTPS).get_data(as_text=True)
    assert one.count("data-receipt") == 1
    assert "verschilt per keten" in one  # the page says so (Dutch: the portal default)


def test_a_date_that_does_not_exist_is_refused(school: FlaskClient) -> None:
    page = school.get(f"{RECEIPTS}?since=2026-02-30", base_url=HTTPS)
    assert page.status_code == 400
    assert "2026-02-30" in page.get_data(as_text=True)  # shown back in its field
    export = school.get(f"{RECEIPTS}.csv?since=2026-02-30", base_url=HTTPS)
    assert export.status_code == 400


def test_export_links_carry_the_filter_and_nothing_else(school: FlaskClient) -> None:
    page = school.get(
        f"{RECEIPTS}?service=leesplank&fmt=json&school_id=x&_external=1&_anchor=y",
        base_url=HTTPS,
    )
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    exports = re.findall(r'href="([^"]*receipts\.(?:csv|json)[^"]*)"', html)
    assert sorted(exports) == [
        f"{RECEIPTS}.csv?service=leesplank",
        f"{RECEIPTS}.json?service=leesplank",
    ]


def test_csv_export_of_one_student(site: PortalSite, school: FlaskClient) -> None:
    broker = site.app.extensions["ketenbroker"]
    code = broker.receipting.keys.subject(
        broker.view.school(DEMO_SCHOOL_ID),
        UpstreamIdentity(DEMO_SCHOOL_ID, IDENTIFIER),
        "leermiddelen",
    )[:16]
    export = school.get(f"{RECEIPTS}.csv?student={code}", base_url=HTTPS)
    assert export.status_code == 200
    assert export.headers["Content-Disposition"].startswith('attachment; filename="receipts-')
    rows = export.get_data(as_text=True).strip().splitlines()
    assert len(rows) == 2 and code in rows[1]


def test_times_and_day_filters_follow_the_brokers_time_zone(
    site: PortalSite, school: FlaskClient
) -> None:
    # Half past midnight in Amsterdam is still the day before in UTC, in winter and in summer:
    # the school sees the time it knows, and the day filter counts its own days.
    broker = site.app.extensions["ketenbroker"]
    for issued_at in (1768433400, 1782945000):  # 2026-01-14 23:30 UTC, 2026-07-01 22:30 UTC
        broker.receipts.append(
            receipt_content(
                broker.receipting.keys,
                issued_at=issued_at,
                school=broker.view.school(DEMO_SCHOOL_ID),
                service=broker.view.service("leesplank"),
                identity=UpstreamIdentity(DEMO_SCHOOL_ID, "night-owl"),
                release=Release("p" * 64, {}, 1),
            )
        )

    def listed(query: str) -> str:
        page = school.get(f"{RECEIPTS}?{query}", base_url=HTTPS)
        assert page.status_code == 200
        return page.get_data(as_text=True)

    winter = listed("since=2026-01-15&until=2026-01-15")
    assert winter.count("data-receipt") == 1 and "2026-01-15 00:30 CET" in winter
    assert listed("since=2026-01-14&until=2026-01-14").count("data-receipt") == 0
    summer = listed("since=2026-07-02&until=2026-07-02")
    assert summer.count("data-receipt") == 1 and "2026-07-02 00:30 CEST" in summer
    assert listed("since=2026-07-01&until=2026-07-01").count("data-receipt") == 0


@pytest.mark.parametrize(
    ("lang", "names"),
    [
        (
            "nl",
            "de vaste code van de leerling in uw inlogdienst (SAML persistent NameID)",
        ),
        ("en", "the student's fixed code in your sign-in system (SAML persistent NameID)"),
    ],
)
def test_the_lookup_names_the_identifier_this_school_finds_receipts_by(
    school: FlaskClient, lang: str, names: str
) -> None:
    page = school.get(f"{RECEIPTS}?lang={lang}", base_url=HTTPS).get_data(as_text=True)
    hint = re.search(r'<p class="hint" id="identifier-hint">(.*?)</p>', page, re.S)
    assert hint and names in unescape(hint.group(1))


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        (
            "nl",
            (
                "Geen verstrekkingen voor deze identificatie.",
                "de vaste code van de leerling in uw inlogdienst",
                "De broker bewaart geen namen",
                "op de pagina Mijn gegevens (",
            ),
        ),
        (
            "en",
            (
                "No receipts for this identifier.",
                "the student's fixed code in your sign-in system",
                "The broker keeps no names",
                "on the page My data (",
            ),
        ),
    ],
)
def test_a_name_finds_nothing_and_the_page_says_what_to_type_instead(
    site: PortalSite,
    school: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    lang: str,
    said: tuple[str, ...],
) -> None:
    """The walk's case: a privacy officer types a student's first name. No silent "no receipts
    for this selection": which identifier to use, that names are not kept, and where a student
    sees their own receipts; the name goes into no URL or log line."""
    token = csrf_token(school.get(f"{RECEIPTS}?lang={lang}", base_url=HTTPS).get_data(as_text=True))
    with caplog.at_level(logging.DEBUG):
        answer = school.post(
            f"{RECEIPTS}/student", base_url=HTTPS, data={"csrf_token": token, "identifier": "sanne"}
        )
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    nothing = re.search(
        r'<div class="alert" role="status" id="lookup-nothing">(.*?)</div>', page, re.S
    )
    assert nothing
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", nothing.group(1))).split())
    for part in said:
        assert part in text
    assert f"{said[-1]}{site.settings.base_url}/my-data)" in text
    assert "data-receipt" not in page  # nobody else's receipts under the answer
    assert "sanne" not in caplog.text
    assert "student lookup school=99XX00 found=no" in caplog.text
