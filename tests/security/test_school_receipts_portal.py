"""The school's receipts pages with the Flask test client: the filter, the student lookup, a
student code in the list and the downloads are POSTs answered directly, so no address (no
request's, no Location, no link or form on a page) carries a student code or the identifier; an
address from before, with a filter in its query, is refused without showing every receipt; the
filter refuses dates that do not exist, and the downloads pass on nothing but the filter. A
download by GET (a link, on another site too) downloads nothing; each administrator's lookups
are limited, per account, and one over the limit looks nothing up."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from html import unescape
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from werkzeug.test import TestResponse

from broker.cli.demo import DEMO_OIDC_SCHOOL_ID, DEMO_SCHOOL_ID
from broker.core.admins import AdminRole
from broker.core.model import (
    ClientAuthMethod,
    Declaration,
    NamingProfile,
    Protocol,
    Release,
    Service,
    UpstreamIdentity,
)
from broker.core.receipts import receipt_content
from broker.oidc.registration import new_client
from broker.store import open_store
from broker.web.app import create_app
from broker.web.labels import shown_time
from tests.support.portal import (
    HTTPS,
    OTHER_PUBLISHER,
    PortalSite,
    csrf_token,
    form_fields,
    page_addresses,
)
from tests.support.receipts import file_receipt

IDENTIFIER = "qzx-lookup-student-77"
RECEIPTS = f"/portal/school/{DEMO_SCHOOL_ID}/receipts"
STUDENT_FIELD = re.compile(r'<input[^>]*\bid="student"[^>]*>')


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


def _code(site: PortalSite, chain: str) -> str:
    broker = site.app.extensions["ketenbroker"]
    identity = UpstreamIdentity(DEMO_SCHOOL_ID, IDENTIFIER)
    return str(broker.receipting.keys.subject(broker.view.school(DEMO_SCHOOL_ID), identity, chain))[
        :16
    ]


class Walk:
    """A privacy officer's requests through the receipts pages, kept: every address asked for,
    every Location answered and every address each page names (links, form actions, the
    buttons' formactions, the language switch), to be searched for what must be in none."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.addresses: list[str] = []

    def get(self, url: str) -> TestResponse:
        return self._kept(url, self.client.get(url, base_url=HTTPS))

    def post(self, url: str, data: dict[str, str]) -> TestResponse:
        return self._kept(url, self.client.post(url, base_url=HTTPS, data=data))

    def _kept(self, url: str, response: TestResponse) -> TestResponse:
        self.addresses.append(url)
        self.addresses += response.headers.getlist("Location")
        if response.mimetype == "text/html":
            page = response.get_data(as_text=True)
            self.addresses += page_addresses(page)
            # Every address on the page is this site's (or the empty icon, `data:,`, which
            # spares the browser its favicon request), and none would be sent as a referrer.
            own = [a for a in page_addresses(page) if a != "data:,"]
            assert all(a.startswith(("/", "#")) for a in own), url
            assert response.headers["Referrer-Policy"] == "no-referrer"
        return response

    def carrying(self, *secrets: str) -> list[str]:
        return [a for a in self.addresses if any(s in unescape(a) for s in secrets)]


def _listed(response: TestResponse) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert "Location" not in response.headers
    return response.get_data(as_text=True)


def _rows(export: TestResponse) -> list[dict[str, str]]:
    assert export.status_code == 200
    assert export.headers["Content-Disposition"].startswith('attachment; filename="receipts-')
    text = export.get_data(as_text=True)
    if export.mimetype == "application/json":
        return [{k: str(v) for k, v in row.items()} for row in json.loads(text)]
    return list(csv.DictReader(io.StringIO(text)))


def test_one_students_receipts_found_listed_and_downloaded_with_no_code_in_any_address(
    site: PortalSite, school: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    walk = Walk(school)
    token = csrf_token(_listed(walk.get(RECEIPTS)))
    with caplog.at_level(logging.DEBUG):
        # Found: the list answers the POST itself, its filter holding the student's codes.
        listed = _listed(
            walk.post(f"{RECEIPTS}/student", {"csrf_token": token, "identifier": IDENTIFIER})
        )
        field = STUDENT_FIELD.search(listed)
        assert field is not None
        value = re.search(r'value="([^"]*)"', field.group(0))
        assert value is not None
        codes = value.group(1).split(" ")
        # A code per chain the student's receipts are in, and the old one: all three found.
        assert len(codes) == 3 and all(len(code) == 16 for code in codes)
        assert {_code(site, "leermiddelen"), _code(site, "toetsen")} < set(codes)
        assert listed.count("data-receipt") == 3 and IDENTIFIER not in listed

        # Both downloads send the filter again, in their bodies: these three receipts.
        action, fields = form_fields(listed, "export")
        assert fields == {"csrf_token": fields["csrf_token"], "student": " ".join(codes)}
        (json_action,) = [a for a in page_addresses(listed) if a.endswith("/receipts.json")]
        for url in (action, json_action):
            rows = _rows(walk.post(url, fields))
            assert sorted(row["student"][:16] for row in rows) == sorted(codes), url

        # A code in the list shows that code's receipts only: the code is per chain.
        action, fields = form_fields(listed, "by-student")
        one = _listed(walk.post(action, {**fields, "student": codes[0]}))
        assert one.count("data-receipt") == 1
        assert "verschilt per keten" in one  # the page says so (Dutch: the portal default)
        # ...and the downloads of that page send that one code.
        assert form_fields(one, "export")[1]["student"] == codes[0]
    assert IDENTIFIER not in caplog.text and not any(code in caplog.text for code in codes)
    assert walk.carrying(IDENTIFIER, *codes) == []


def test_a_filter_is_posted_and_the_downloads_send_it_and_nothing_else(
    school: FlaskClient,
) -> None:
    walk = Walk(school)
    token = csrf_token(_listed(walk.get(RECEIPTS)))
    listed = _listed(
        walk.post(
            RECEIPTS,
            {
                "csrf_token": token,
                "service": "leesplank",
                "fmt": "json",
                "school_id": "x",
                "_external": "1",
                "_anchor": "y",
            },
        )
    )
    shown = listed.count("data-receipt")
    assert shown >= 2
    action, fields = form_fields(listed, "export")
    assert fields == {"csrf_token": token, "service": "leesplank"}
    assert action == f"{RECEIPTS}.csv"
    rows = _rows(walk.post(action, fields))
    assert len(rows) == shown and {row["service_id"] for row in rows} == {"leesplank"}
    # The service's id appears in links to its page, never as a filter in an address.
    assert walk.carrying("service=", "?service", "since=") == []


@pytest.mark.parametrize(
    ("address", "fields"),
    [
        ("{receipts}?student={code}", "student"),
        ("{receipts}?lang=en&student={code}%20{other}", "student"),
        ("{receipts}?since=2026-01-01&student={code}", "since,student"),
        ("{receipts}?service=leesplank", "service"),
    ],
)
def test_an_address_with_a_filter_is_refused_and_shows_nothing(
    site: PortalSite,
    school: FlaskClient,
    caplog: pytest.LogCaptureFixture,
    address: str,
    fields: str,
) -> None:
    """A bookmark or a link from when the filter was in the address: refused, with the empty
    filter to choose again; never every receipt in place of one student's. The page and the
    log line repeat no code (the language switch included)."""
    code, other = _code(site, "leermiddelen"), _code(site, "toetsen")
    url = address.format(receipts=RECEIPTS, code=code, other=other)
    with caplog.at_level(logging.DEBUG):
        answer = school.get(url, base_url=HTTPS)
    assert answer.status_code == 400 and answer.mimetype == "text/html"
    assert "Location" not in answer.headers and "Content-Disposition" not in answer.headers
    page = answer.get_data(as_text=True)
    assert 'id="filter-in-address"' in page and "data-receipt" not in page
    assert code not in page and other not in page
    assert f"reason=filter_in_address fields={fields} school={DEMO_SCHOOL_ID}" in caplog.text
    assert code not in caplog.text and other not in caplog.text
    switch = re.findall(r'<a href="([^"]+)" lang="(nl|en)"', page)
    assert switch == [(f"{RECEIPTS}?lang=nl", "nl"), (f"{RECEIPTS}?lang=en", "en")]
    # In the page's language (this browser's: the last one asked for).
    said = {"en": "no longer takes one", "nl": "haalt geen filter meer uit het adres"}
    language = re.search(r'<html lang="(nl|en)">', page)
    assert language is not None and said[language.group(1)] in page
    assert language.group(1) == "en" or "lang=en" not in url


def test_the_page_itself_and_a_language_in_its_address_list_every_receipt(
    school: FlaskClient,
) -> None:
    for url in (RECEIPTS, f"{RECEIPTS}?lang=en", f"{RECEIPTS}?student="):
        page = _listed(school.get(url, base_url=HTTPS))
        assert page.count("data-receipt") >= 4 and 'id="filter-in-address"' not in page


def test_a_date_that_does_not_exist_is_refused(school: FlaskClient) -> None:
    token = csrf_token(_listed(school.get(RECEIPTS, base_url=HTTPS)))
    wrong = {"csrf_token": token, "since": "2026-02-30"}
    page = school.post(RECEIPTS, base_url=HTTPS, data=wrong)
    assert page.status_code == 400
    assert 'value="2026-02-30"' in page.get_data(as_text=True)  # shown back in its field
    export = school.post(f"{RECEIPTS}.csv", base_url=HTTPS, data=wrong)
    assert export.status_code == 400 and "Content-Disposition" not in export.headers


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

    token = csrf_token(_listed(school.get(RECEIPTS, base_url=HTTPS)))

    def listed(day: str) -> str:
        data = {"csrf_token": token, "since": day, "until": day}
        return _listed(school.post(RECEIPTS, base_url=HTTPS, data=data))

    winter = listed("2026-01-15")
    assert winter.count("data-receipt") == 1 and "2026-01-15 00:30 CET" in winter
    assert listed("2026-01-14").count("data-receipt") == 0
    summer = listed("2026-07-02")
    assert summer.count("data-receipt") == 1 and "2026-07-02 00:30 CEST" in summer
    assert listed("2026-07-01").count("data-receipt") == 0


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


@pytest.mark.parametrize(
    "address",
    [
        "{receipts}.csv",
        "{receipts}.json",
        "{receipts}.csv?student={code}",
        "{receipts}.json?lang=en",
    ],
)
def test_a_download_by_address_downloads_nothing(
    site: PortalSite, school: FlaskClient, caplog: pytest.LogCaptureFixture, address: str
) -> None:
    """A link (on another site too: the SameSite=Lax cookie goes along with a top-level GET)
    saves no file: the receipts page without a list says where downloads start."""
    code = _code(site, "leermiddelen")
    with caplog.at_level(logging.DEBUG):
        answer = school.get(address.format(receipts=RECEIPTS, code=code), base_url=HTTPS)
    assert answer.status_code == 405 and answer.headers["Allow"] == "POST"
    assert answer.mimetype == "text/html" and "Content-Disposition" not in answer.headers
    page = answer.get_data(as_text=True)
    assert 'id="download-by-address"' in page and "data-receipt" not in page
    assert code not in page and code not in caplog.text
    assert f'<a href="{RECEIPTS}">' in page  # to the page whose buttons download
    assert f"reason=download_by_get school={DEMO_SCHOOL_ID} admin=" in caplog.text
    said = {"en": "no longer downloaded by opening an address", "nl": "niet meer gedownload"}
    language = re.search(r'<html lang="(nl|en)">', page)
    assert language is not None and said[language.group(1)] in page


def test_a_download_posted_with_only_its_token_holds_every_receipt(school: FlaskClient) -> None:
    token = csrf_token(_listed(school.get(RECEIPTS, base_url=HTTPS)))
    for fmt in ("csv", "json"):
        rows = _rows(school.post(f"{RECEIPTS}.{fmt}", base_url=HTTPS, data={"csrf_token": token}))
        assert len(rows) >= 4 and "someone-else" not in str(rows)
    refused = school.post(f"{RECEIPTS}.csv", base_url=HTTPS, data={})
    assert refused.status_code == 400 and "Content-Disposition" not in refused.headers


# -- the student lookup's limit per account ------------------------------------------------------


def _another_school_admin(site: PortalSite, email: str) -> tuple[FlaskClient, int]:
    account = site.add_account(email, AdminRole.SCHOOL, DEMO_SCHOOL_ID)
    site.accounts[email] = account
    return site.sign_in(email), account.admin.id


def _lookup(client: FlaskClient, identifier: str, lang: str = "nl") -> TestResponse:
    page = client.get(f"{RECEIPTS}?lang={lang}", base_url=HTTPS).get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "identifier": identifier}
    return client.post(f"{RECEIPTS}/student", base_url=HTTPS, data=data)


def _limited(answer: TestResponse) -> str:
    assert answer.status_code == 429, answer.status_code
    page = answer.get_data(as_text=True)
    assert 'id="lookup-limited"' in page and "data-receipt" not in page
    return page


def _lookups(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "ketenbroker_portal_student_lookups_total", {"outcome": outcome}
    )
    return value or 0.0


def _clear_of_the_minutes_end() -> None:
    # The minute window starts at :00; 31 lookups must fall in one.
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def test_lookups_over_the_accounts_limit_look_nothing_up(
    site: PortalSite, school: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The default 30 a minute: every lookup counts, found or not; the 31st looks nothing up,
    says in the staff member's language from when again, and logs the ids only. Another
    administrator of the same school still looks up."""
    officer, officer_id = _another_school_admin(site, "privacy@lyceum.example")
    _clear_of_the_minutes_end()
    limited_before = _lookups("limited")
    assert _lookup(officer, IDENTIFIER).status_code == 200  # found: counts as well
    for number in range(29):
        assert _lookup(officer, f"guess-{number}").status_code == 200
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        answer = _lookup(officer, IDENTIFIER)
    page = _limited(answer)
    minute_ends = (int(time.time()) // 60 + 1) * 60
    assert 0 < int(answer.headers["Retry-After"]) <= 60
    zone = site.settings.zone
    assert f"U kunt weer leerlingen opzoeken vanaf {shown_time(minute_ends, zone)}" in page
    assert not any(code in page for code in (_code(site, "leermiddelen"), _code(site, "toetsen")))
    # Nothing was looked up: no lookup's log line, only the refusal's, with ids and no identifier.
    assert "student lookup" not in caplog.text
    assert (
        f"reason=student_lookup_limit window=minute school={DEMO_SCHOOL_ID} admin={officer_id}"
        in caplog.text
    )
    assert IDENTIFIER not in caplog.text
    assert _lookups("limited") == limited_before + 1
    # In English too, and still refused (the refused ones count no further window).
    english = _limited(_lookup(officer, "guess-x", lang="en"))
    assert "You can look up students again from" in english
    # Per account: another administrator of the same school is not affected.
    listed = _listed(_lookup(school, IDENTIFIER))
    assert listed.count("data-receipt") == 3


@dataclass
class DayLimited:
    app: Flask
    client: FlaskClient


@pytest.fixture(scope="module")
def day_limited(site: PortalSite) -> DayLimited:
    """The site's broker behind an app whose lookups are limited to 10 a minute and 3 a day,
    with an administrator of its own signed in."""
    limits = replace(site.settings.rate_limits, student_lookup="10/minute;3/day")
    app = create_app(replace(site.settings, rate_limits=limits), services=site.broker)
    own_app = site.app
    site.app = app
    try:
        client, _ = _another_school_admin(site, "mentor@lyceum.example")
    finally:
        site.app = own_app
    return DayLimited(app, client)


def test_the_day_limit_says_from_when_lookups_start_again(
    site: PortalSite, day_limited: DayLimited, caplog: pytest.LogCaptureFixture
) -> None:
    for number in range(3):
        assert _lookup(day_limited.client, f"day-{number}").status_code == 200
    with caplog.at_level(logging.DEBUG):
        answer = _lookup(day_limited.client, IDENTIFIER, lang="en")
    page = _limited(answer)
    day_ends = (int(time.time()) // 86400 + 1) * 86400  # 00:00 UTC
    assert f"You can look up students again from {shown_time(day_ends, site.settings.zone)}" in page
    assert int(answer.headers["Retry-After"]) <= 86400
    assert "reason=student_lookup_limit window=day" in caplog.text


def test_a_lookup_whose_count_cannot_be_kept_looks_nothing_up(
    site: PortalSite, day_limited: DayLimited, caplog: pytest.LogCaptureFixture
) -> None:
    """A counter store that cannot be reached skips no limit: a 503, nothing looked up (the
    portal's sessions, in the working store, still let the administrator in)."""
    limiter = day_limited.app.extensions["ketenbroker_rate_limiter"]
    kept = limiter.store
    limiter.store = open_store("redis://127.0.0.1:9/0")  # nothing listens on port 9
    try:
        with caplog.at_level(logging.DEBUG):
            answer = _lookup(day_limited.client, IDENTIFIER)
    finally:
        limiter.store = kept
    assert answer.status_code == 503 and "data-receipt" not in answer.get_data(as_text=True)
    assert "student lookup" not in caplog.text and IDENTIFIER not in caplog.text


def _options(page: str, field: str) -> dict[str, str]:
    select = re.search(rf'<select id="{field}"[^>]*>(.*?)</select>', page, re.S)
    assert select is not None, field
    return {
        v: unescape(t) for v, t in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)<', select[1])
    }


def _history_site(directory: Path) -> PortalSite:
    """The demo site with another publisher's service still in review, and two services that
    served students and were removed since: one at the demo school (its receipt released the
    family name), one at another school (the e-mail address)."""
    site = PortalSite(directory, port=8841)
    broker, registry = site.broker, site.registry
    client, _ = new_client(("https://rp.zuid.example/cb",), ClientAuthMethod.SECRET_BASIC)
    registry.add_service(
        Service(
            "geheim-product",
            "Geheim Product In Review",
            "geheim-product",
            None,
            NamingProfile.OID,
            (Declaration("student_number", "Om het leerlingnummer te koppelen."),),
            protocol=Protocol.OIDC,
            oidc=client,
            approved=False,
            publisher_id=OTHER_PUBLISHER,
        ),
        None,
    )
    for service_id, name, school_id, attribute in (
        ("oude-app", "Oude App", DEMO_SCHOOL_ID, "family_name"),
        ("elders-app", "Elders App", DEMO_OIDC_SCHOOL_ID, "email"),
    ):
        declared = (Declaration(attribute, "Om de leerling te herkennen."),)
        gone = Service(
            service_id, name, f"https://{service_id}.example", None, declarations=declared
        )
        registry.add_service(gone, None)
        school = registry.school(school_id)
        assert school is not None
        content = receipt_content(
            broker.receipting.keys,
            issued_at=int(time.time()),
            school=school,
            service=gone,
            identity=UpstreamIdentity(school_id, "leerling-1"),
            release=Release("p" * 64, {attribute: ("x",)}, 1),
        )
        broker.receipts.append(content)
        registry.remove_service(service_id, apply=True, removed_by="test")
    return site


def test_the_filter_lists_approved_services_and_the_schools_own_history_only(
    tmp_path: Path,
) -> None:
    """Another publisher's service still in review is nowhere on the school's receipts page,
    its declared attributes neither (every school page shows approved services only); a
    removed service that served this school's students stays in its filter, with what it
    received, as its receipts do. Another school's history is not this school's."""
    site = _history_site(tmp_path)
    try:
        page = _listed(site.sign_in("school").get(RECEIPTS, base_url=HTTPS))
        services, attributes = _options(page, "service"), _options(page, "attribute")
        approved = site.registry.services()
        declared = {d.attribute for s in approved for d in s.declarations}
        assert services == {
            "": "Alle diensten",
            **{s.id: s.name for s in approved},
            "oude-app": "Oude App",
        }
        assert set(attributes) == {"", *declared, "family_name"}
        assert "geheim" not in page.lower() and "student_number" not in page
        assert "elders" not in page.lower()
    finally:
        site.registry.close()
