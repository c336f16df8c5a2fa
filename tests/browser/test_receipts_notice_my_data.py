"""Receipts, the information notice and the my-data page, end to end in headless Chromium.

A student sees the broker's information notice before the first answer of an SSO session to a
service, not on the next login in that session, and again once the school changed what the
service receives; with the school's notice mode `changes` a student who visited before goes
straight through in a new session. The my-data page shows a student exactly their own receipts;
the school's administrator finds, filters and exports the receipts in the portal.

This module runs its own demo (tests/support/live.py) in its own folder: the policies and notice
modes it changes, and the receipts it writes, touch no other test. Each test uses its own
services or its own demo users, so the tests also hold in any order and on their own.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Download, Page, expect

from broker.accounts import totp
from broker.accounts.passwords import hash_password
from broker.cli.demo import DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN
from broker.core.admins import AdminRole
from broker.core.model import Declaration
from tests.browser.conftest import expect_discovery
from tests.support.live import LiveDemo, Publisher, running_demo

SCHOOL_NAME = "Demo Lyceum"
PRIVACY_CONTACT = "mailto:privacy@demo-school.example"
PORTAL_PASSWORD = "a long portal password for receipts"
LOGIN_BUTTON = "Log in via your school (Ketenbroker)"
NOTICE_CONTINUE = "[data-notice-continue]"
# The English labels the broker shows for the catalogue's attribute names (web/labels.py).
FIRST_NAME = "First name"
ROLE = "Role at school"
NAME_PURPOSE = "To greet the student by name on the test start page."
ROLE_PURPOSE = "To give teachers the teacher view of the test platform."
# The export's columns, in order (docs/receipts.md): written out here, not imported.
EXPORT_HEADER = [
    "issued_at",
    "school_id",
    "service_id",
    "chain_id",
    "attributes",
    "policy_version",
    "school_protocol",
    "service_protocol",
    "student",
    "seq",
    "hash",
]
HEX64 = re.compile(r"[0-9a-f]{64}")
NewContext = Callable[..., BrowserContext]
Screenshot = Callable[[Page, str], Path]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveDemo]:
    with running_demo(tmp_path_factory.mktemp("receipts-demo")) as demo:
        yield demo


@pytest.fixture
def english(new_context: NewContext) -> Callable[[], Page]:
    """A page in a fresh browser context (its own cookies: its own SSO session) in English."""

    def open_page() -> Page:
        return new_context(locale="en-US").new_page()

    return open_page


def _service(live: LiveDemo, service_id: str, released: frozenset[str]) -> Publisher:
    """A publisher of this test only, declaring a first name and a role, releasing `released`."""
    return live.add_publisher(
        service_id,
        "leermiddelen",
        (Declaration("given_name", NAME_PURPOSE), Declaration("affiliation", ROLE_PURPOSE)),
        released=released,
    )


def _service_name(publisher: Publisher) -> str:
    return f"{publisher.id} (test publisher)"  # LiveDemo.add_publisher names it so


# -- a student's steps ------------------------------------------------------------------------
def _record_requests(page: Page) -> list[str]:
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))
    return visited


def _start_login(page: Page, publisher: Publisher) -> None:
    page.goto(publisher.base_url + "/")
    page.get_by_role("button", name=LOGIN_BUTTON).click()


def _choose_school_and_pick(page: Page, live: LiveDemo, person: str) -> None:
    expect_discovery(page, live.broker_url)
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=f"{SCHOOL_NAME} {DEMO_SCHOOL_TOWN}", exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(live.school_url) + r"/sso(\?.*)?$"))
    page.get_by_role("button", name=re.compile(re.escape(person))).click()


def _expect_notice(page: Page, live: LiveDemo, service_name: str, released: dict[str, str]) -> None:
    """The broker's notice: the service's name, exactly the labels `released` names, each with
    the purpose the publisher declared, and the link to the my-data page."""
    button = page.locator(NOTICE_CONTINUE)
    expect(button).to_be_visible()
    # Shown with the school's answer, it puts its own address in the history (notice.js).
    expect(page).to_have_url(re.compile(rf"^{re.escape(live.broker_url)}/notice/[\w-]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(f"What {service_name} receives")
    expect(button).to_have_text(f"Continue to {service_name}")
    expect(page.locator("main")).to_contain_text(f"your {SCHOOL_NAME} account")
    items = page.locator("ul.released > li")
    if released:
        expect(items).to_have_count(len(released))
        for label, purpose in released.items():
            item = items.filter(has=page.locator("strong", has_text=label))
            expect(item).to_have_count(1)
            expect(item).to_contain_text(purpose)
    else:
        expect(items).to_have_count(0)
        expect(page.locator("main")).to_contain_text("receives nothing else about you")
    for label in (FIRST_NAME, ROLE):
        if label not in released:
            expect(page.locator("main")).not_to_contain_text(label)
    expect(page.locator('main a[href$="/my-data"]')).to_have_count(1)


def _continue(page: Page) -> None:
    page.locator(NOTICE_CONTINUE).click()


def _expect_received(page: Page, publisher: Publisher) -> dict[str, Any]:
    """The publisher's result page, and what it received (its /received.json, same session)."""
    expect(page).to_have_url(publisher.base_url + "/acs")
    expect(page.get_by_role("heading", name=re.compile(r"^What .* received$"))).to_be_visible()
    response = page.request.get(publisher.base_url + "/received.json")
    assert response.ok, response.text()
    received: dict[str, Any] = response.json()
    assert HEX64.fullmatch(received["name_id"]["value"]), received["name_id"]
    return received


def _attributes(received: dict[str, Any]) -> dict[str, list[str]]:
    return {a["friendly_name"] or a["name"]: a["values"] for a in received["attributes"]}


def _login(
    page: Page,
    live: LiveDemo,
    publisher: Publisher,
    person: str,
    *,
    notice: dict[str, str] | None,
    service_name: str,
) -> dict[str, Any]:
    """A whole login; with `notice` (labels → purposes) the notice must show and is continued
    past, without it the login must go straight to the publisher (no notice request at all)."""
    visited = _record_requests(page)
    _start_login(page, publisher)
    # Wait for where the redirects end: discovery (no SSO session yet), the notice, or the
    # publisher (its result page names the NameID).
    search = page.locator("#school-search")
    expect(
        search.or_(page.locator(NOTICE_CONTINUE)).or_(page.locator("#name-id-value"))
    ).to_be_visible()
    if search.is_visible():
        _choose_school_and_pick(page, live, person)
    if notice is not None:
        _expect_notice(page, live, service_name, notice)
        _continue(page)
    received = _expect_received(page, publisher)
    if notice is None:
        assert not [u for u in visited if "/notice/" in u], visited
    else:
        assert [u for u in visited if u.startswith(f"{live.broker_url}/notice/")], visited
    return received


# -- a school administrator's steps -----------------------------------------------------------
def _school_admin(live: LiveDemo, email: str) -> str:
    """A school administrator of the demo school (one per test: a TOTP code counts once)."""
    secret = totp.new_secret()
    live.registry.accounts.add_admin(
        email, hash_password(PORTAL_PASSWORD), secret, AdminRole.SCHOOL, DEMO_SCHOOL_ID
    )
    return secret


def _portal_sign_in(page: Page, live: LiveDemo, email: str, secret: str) -> None:
    page.goto(f"{live.broker_url}/portal/")
    expect(page.get_by_role("heading", name="Sign in to the portal")).to_be_visible()
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password", exact=True).fill(PORTAL_PASSWORD)
    # The next step's code: inside the window, and never one used a moment ago.
    code = totp.code_at(secret, totp.current_step() + 1)
    page.get_by_label("Code from your authenticator app").fill(code)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def _first_visit_to_notice(page: Page, live: LiveDemo, publisher: Publisher) -> list[str]:
    """Sanne's first login at `publisher` (which asks for her first name), up to the notice;
    returns the requests the page made."""
    visited = _record_requests(page)
    _start_login(page, publisher)
    _choose_school_and_pick(page, live, "Sanne Jansen")
    _expect_notice(page, live, _service_name(publisher), {FIRST_NAME: NAME_PURPOSE})
    return visited


# -- 0: the notice arrives with the school's answer, and survives a reload --------------------
def test_a_reload_of_the_notice_shows_it_again_and_the_login_completes(
    live: LiveDemo, english: Callable[[], Page]
) -> None:
    publisher = _service(live, "reloadkennis", frozenset({"given_name"}))
    name = _service_name(publisher)
    page = english()
    visited = _first_visit_to_notice(page, live, publisher)
    # No request of its own: the notice came in the response to the school's answer.
    assert not [u for u in visited if u.startswith(f"{live.broker_url}/notice/")], visited
    # A reload fetches the notice's own address (no "resend the form?"; the school's answer is
    # never posted twice), and so does the language switch.
    page.reload()
    _expect_notice(page, live, name, {FIRST_NAME: NAME_PURPOSE})
    page.get_by_role("link", name="Nederlands").click()
    expect(page.locator(NOTICE_CONTINUE)).to_have_text(f"Verder naar {name}")
    page.get_by_role("link", name="English").click()
    _continue(page)
    received = _expect_received(page, publisher)
    assert _attributes(received)["givenName"] == ["Sanne"]


# -- 1: the notice in one SSO session ---------------------------------------------------------
def test_notice_first_visit_not_second_again_after_policy_change(
    live: LiveDemo, english: Callable[[], Page], screenshot: Screenshot
) -> None:
    publisher = _service(live, "kennisbank", frozenset({"given_name"}))
    name = _service_name(publisher)
    page = english()

    # First visit: discovery, the school, then the notice before anything reaches the service.
    visited = _first_visit_to_notice(page, live, publisher)
    assert not [u for u in visited if u.startswith(publisher.acs_url)], "answered before notice"
    screenshot(page, "receipts-01-notice")
    _continue(page)
    first = _expect_received(page, publisher)
    assert set(_attributes(first)) == {"pairwise-id", "givenName"}, first["attributes"]
    assert _attributes(first)["givenName"] == ["Sanne"]

    # Second login in the same SSO session: straight through, no discovery, school or notice.
    visited.clear()
    _start_login(page, publisher)
    second = _expect_received(page, publisher)
    assert not [
        u for u in visited if "/discovery" in u or "/notice/" in u or u.startswith(live.school_url)
    ], visited
    assert second["in_response_to"] != first["in_response_to"]  # a new login, answered
    assert second["name_id"]["value"] == first["name_id"]["value"]
    assert set(_attributes(second)) == {"pairwise-id", "givenName"}

    # The school now also releases the role: the same session shows the notice again, with both.
    live.registry.set_policy(
        DEMO_SCHOOL_ID, publisher.id, frozenset({"given_name", "affiliation"}), "test"
    )
    visited.clear()
    _start_login(page, publisher)
    _expect_notice(page, live, name, {FIRST_NAME: NAME_PURPOSE, ROLE: ROLE_PURPOSE})
    assert not [u for u in visited if "/discovery" in u or u.startswith(live.school_url)], visited
    _continue(page)
    third = _expect_received(page, publisher)
    assert third["in_response_to"] not in (first["in_response_to"], second["in_response_to"])
    attributes = _attributes(third)
    assert set(attributes) == {"pairwise-id", "givenName", "eduPersonAffiliation"}, attributes
    assert attributes["eduPersonAffiliation"] == ["student"]

    # And once seen, the changed release goes straight through again.
    _login(page, live, publisher, "Sanne Jansen", notice=None, service_name=name)


# -- 2: notice mode `changes` -----------------------------------------------------------------
def test_notice_mode_changes_skips_returning_students_only(
    live: LiveDemo, english: Callable[[], Page]
) -> None:
    publisher = _service(live, "werkboek", frozenset({"given_name"}))
    name = _service_name(publisher)

    # The school's administrator sets the notice for this service to "first visit and changes".
    email = "notices@lyceum.example"
    admin = english()
    _portal_sign_in(admin, live, email, _school_admin(live, email))
    admin.goto(f"{live.broker_url}/portal/school/{DEMO_SCHOOL_ID}/services/{publisher.id}")
    mode = admin.get_by_label("When students see what this platform receives")
    expect(mode).to_have_value("session")  # the default
    mode.select_option("changes")
    admin.get_by_role("button", name="Save", exact=True).click()
    expect(admin.get_by_text("Notice setting saved.")).to_be_visible()
    expect(admin.get_by_label("When students see what this platform receives")).to_have_value(
        "changes"
    )
    admin.goto(f"{live.broker_url}/portal/school/{DEMO_SCHOOL_ID}/overview")
    expect(admin.locator(f'tr[data-service="{publisher.id}"]')).to_contain_text(
        "first visit and changes"
    )

    # Sanne's first visit ever: the notice shows.
    first_visit = {FIRST_NAME: NAME_PURPOSE}
    sanne = english()
    _login(sanne, live, publisher, "Sanne Jansen", notice=first_visit, service_name=name)

    # A new SSO session (a new browser): she visited before, the release is the same: no notice.
    sanne_later = english()
    received = _login(sanne_later, live, publisher, "Sanne Jansen", notice=None, service_name=name)
    assert _attributes(received)["givenName"] == ["Sanne"]

    # Daan never visited this service: he sees the notice.
    daan = english()
    received = _login(daan, live, publisher, "Daan de Vries", notice=first_visit, service_name=name)
    assert _attributes(received)["givenName"] == ["Daan"]

    # What the service receives changes: a returning student sees the notice again, once.
    live.registry.set_policy(
        DEMO_SCHOOL_ID, publisher.id, frozenset({"given_name", "affiliation"}), "test"
    )
    changed = {FIRST_NAME: NAME_PURPOSE, ROLE: ROLE_PURPOSE}
    _login(english(), live, publisher, "Sanne Jansen", notice=changed, service_name=name)
    _login(english(), live, publisher, "Sanne Jansen", notice=None, service_name=name)


# -- 3: the my-data page ----------------------------------------------------------------------
def _open_my_data(page: Page, live: LiveDemo) -> None:
    page.goto(f"{live.broker_url}/my-data")
    page.get_by_role("link", name="Sign in with your school account").click()
    # The student logged in at a publisher in this browser: the SSO session answers.
    expect(page).to_have_url(re.compile(re.escape(live.broker_url) + r"/my-data/view/[^/]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("My data")


def _receipt_rows(page: Page) -> list[list[str]]:
    """What the platforms got, a row per platform card and set of attributes: [platform, what
    besides the secret number (the labels, in order), how often and when]."""
    rows = []
    cards = page.locator("[data-platform]")
    for i in range(cards.count()):
        card = cards.nth(i)
        name = card.locator("[data-service]").inner_text().strip()
        groups = card.locator("[data-receipt-group]")
        for j in range(groups.count()):
            group = groups.nth(j)
            labels = group.locator("[data-attributes] strong")
            got = (
                ", ".join(text.strip() for text in labels.all_inner_texts())
                if labels.count()
                else group.locator("[data-attributes]").inner_text().strip()
            )
            rows.append([name, got, group.locator("[data-when]").inner_text().strip()])
    return rows


def test_my_data_shows_only_own_receipts(live: LiveDemo, english: Callable[[], Page]) -> None:
    leesplank, rekenroute, toetsplein = (
        live.publishers[p] for p in ("leesplank", "rekenroute", "toetsplein")
    )
    lees_name = "Leesplank (demo publisher)"
    reken_name = "Rekenroute (demo distributor)"
    toets_name = "Toetsplein (demo exam platform)"
    lees_purposes = {
        FIRST_NAME: "To greet you by your first name on the start screen.",
        ROLE: "To show teachers the teacher tools and students the lessons.",
    }

    # Student A (Fatima, used by no other test here) logs in at two publishers.
    fatima = english()
    _login(
        fatima, live, leesplank, "Fatima El Amrani", notice=lees_purposes, service_name=lees_name
    )
    _login(fatima, live, rekenroute, "Fatima El Amrani", notice={}, service_name=reken_name)
    _open_my_data(fatima, live)
    view_url = fatima.url
    rows = _receipt_rows(fatima)
    assert len(rows) == 2, rows
    by_service = {row[0]: row for row in rows}
    assert set(by_service) == {lees_name, reken_name}, rows
    assert by_service[lees_name][1] == f"{FIRST_NAME}, {ROLE}", rows  # the catalogue's order
    assert by_service[reken_name][1] == "Only your secret number (not your name)."
    for row in rows:
        # Day, month and minute in the broker's time zone (Europe/Amsterdam by default).
        assert re.fullmatch(r"1 time, on \d{1,2} [A-Z][a-z]+ at \d{2}:\d{2}", row[2]), row
    expect(fatima.locator("[data-receipts]")).not_to_contain_text(toets_name)
    # On a phone (375 px) nothing scrolls sideways and "when" stays on one line.
    fatima.set_viewport_size({"width": 375, "height": 800})
    assert fatima.evaluate("document.documentElement.scrollWidth") <= 375
    box = fatima.locator("[data-when]").first.bounding_box()
    size = fatima.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('[data-when]')).fontSize)"
    )
    assert box is not None and box["height"] < 2 * size, (box, size)
    contact = fatima.locator("[data-privacy-contact]")
    expect(contact).to_have_attribute("href", PRIVACY_CONTACT)
    # The address as text, for a parent to read and copy.
    expect(contact).to_have_text(PRIVACY_CONTACT.removeprefix("mailto:"))
    # What the school releases today, with the publisher's purposes.
    current = fatima.locator("[data-current-release]")
    lees_card = current.filter(has=fatima.get_by_role("heading", name=lees_name, exact=True))
    expect(lees_card).to_have_count(1)
    for label, purpose in lees_purposes.items():
        # The name, then the purpose as its own sentence on its own line (one colon, not two).
        item = lees_card.locator("li").filter(has=fatima.locator("strong", has_text=label))
        expect(item.locator(".purpose")).to_have_text(f"Why: {purpose}")
    reken_card = current.filter(has=fatima.get_by_role("heading", name=reken_name, exact=True))
    expect(reken_card).to_contain_text("Only your secret number (not your name).")

    # Student B (Marieke, also used by no other test here) logs in once, in her own browser.
    marieke = english()
    _login(marieke, live, toetsplein, "Marieke Bakker", notice={}, service_name=toets_name)
    _open_my_data(marieke, live)
    rows = _receipt_rows(marieke)
    assert len(rows) == 1, rows
    assert rows[0][0] == toets_name
    assert rows[0][1] == "Only your secret number (not your name)."
    table = marieke.locator("[data-receipts]")
    for other in (lees_name, reken_name):
        expect(table).not_to_contain_text(other)

    # A's page address, opened in B's browser, shows nothing of A (sealed under A's browser).
    response = marieke.goto(view_url)
    assert response is not None and response.status >= 400, response and response.status
    expect(marieke.locator("[data-receipt-group]")).to_have_count(0)
    expect(marieke.locator("main")).not_to_contain_text(lees_name)

    # A's own page still shows A's two receipts, and now B's login is not among them.
    fatima.reload()
    assert sorted(row[0] for row in _receipt_rows(fatima)) == sorted([lees_name, reken_name])


# -- 4: the school's receipts and export ------------------------------------------------------
def _download(page: Page, selector: str) -> tuple[Download, str]:
    with page.expect_download() as info:
        page.locator(selector).click()
    download = info.value
    path = download.path()
    assert path is not None, download.failure()
    return download, Path(path).read_text(encoding="utf-8")


def test_school_filters_and_exports_receipts(
    live: LiveDemo, english: Callable[[], Page], screenshot: Screenshot
) -> None:
    publisher = _service(live, "exportboek", frozenset({"given_name"}))
    name = _service_name(publisher)
    notice = {FIRST_NAME: NAME_PURPOSE}

    # Three logins at the service (Sanne twice in one session, Daan once), one elsewhere.
    sanne = english()
    _login(sanne, live, publisher, "Sanne Jansen", notice=notice, service_name=name)
    _login(sanne, live, publisher, "Sanne Jansen", notice=None, service_name=name)
    rekenroute = "Rekenroute (demo distributor)"
    _login(sanne, live, live.publishers["rekenroute"], "", notice={}, service_name=rekenroute)
    _login(english(), live, publisher, "Daan de Vries", notice=notice, service_name=name)

    email = "receipts@lyceum.example"
    admin = english()
    _portal_sign_in(admin, live, email, _school_admin(live, email))
    visited = _record_requests(admin)
    admin.get_by_role("link", name="Receipts", exact=True).click()
    expect(admin.get_by_role("heading", level=1)).to_have_text(f"Receipts of {SCHOOL_NAME}")
    everything = admin.locator("#receipts tr[data-receipt]")
    expect(everything.filter(has_text=rekenroute)).not_to_have_count(0)

    admin.get_by_label("Service", exact=True).select_option(publisher.id)
    admin.get_by_role("button", name="Show").click()
    # The filter is POSTed and answered in place: the address carries none of it.
    receipts = f"{live.broker_url}/portal/school/{DEMO_SCHOOL_ID}/receipts"
    expect(admin).to_have_url(receipts)
    rows = admin.locator("#receipts tr[data-receipt]")
    expect(rows).to_have_count(3)
    for i in range(3):
        cells = rows.nth(i).locator("td")
        expect(cells.nth(1)).to_have_text(name)
        expect(cells.nth(2)).to_have_text(FIRST_NAME)
        expect(cells.nth(3)).to_have_text("1")
    totals = admin.locator("#totals tbody tr")
    expect(totals).to_have_count(1)
    expect(totals.locator("td")).to_have_text([name, "3"])
    shown_students = Counter(rows.nth(i).locator("td code").inner_text().strip() for i in range(3))
    assert sorted(shown_students.values()) == [1, 2], shown_students
    screenshot(admin, "receipts-02-school-receipts")

    # The CSV: the header, then exactly the three receipts of this service.
    download, text = _download(admin, "[data-export=csv]")
    assert re.fullmatch(rf"receipts-{DEMO_SCHOOL_ID}-\d{{8}}\.csv", download.suggested_filename)
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == EXPORT_HEADER
    exported = list(reader)
    assert len(exported) == 3, exported
    for row in exported:
        assert row["school_id"] == DEMO_SCHOOL_ID
        assert row["service_id"] == publisher.id
        assert row["chain_id"] == "leermiddelen"
        assert row["attributes"] == "given_name"
        assert row["policy_version"] == "1"
        assert (row["school_protocol"], row["service_protocol"]) == ("saml", "saml")
        assert HEX64.fullmatch(row["hash"]), row
    students = Counter(row["student"] for row in exported)
    assert sorted(students.values()) == [1, 2], students
    # The portal's student column is the start of the same code.
    assert Counter(s[:16] for s in students.elements()) == shown_students
    seqs = [int(row["seq"]) for row in exported]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3, seqs

    # The JSON: the same rows, with numbers as numbers.
    download, text = _download(admin, "[data-export=json]")
    assert download.suggested_filename.endswith(".json")
    as_json: list[dict[str, Any]] = json.loads(text)
    assert all(isinstance(item["policy_version"], int) for item in as_json)
    assert [{k: "" if v is None else str(v) for k, v in item.items()} for item in as_json] == [
        dict(row) for row in exported
    ]

    # Sanne's code (twice in the list) shows her receipts in this chain, Rekenroute's too.
    (sanne_code,) = [code for code, count in shown_students.items() if count == 2]
    admin.locator("#receipts button", has_text=sanne_code).first.click()
    expect(admin).to_have_url(receipts)
    expect(admin.locator("#student")).to_have_value(sanne_code)
    expect(rows.filter(has_text=name)).to_have_count(2)
    expect(rows.filter(has_text=rekenroute)).not_to_have_count(0)
    expect(rows.locator("td code")).to_have_text([sanne_code] * rows.count())

    # Found by her identifier: the answer is the list with her codes, the download the same.
    identifier = live.school_subject("sanne.jansen")
    admin.locator("#identifier").fill(identifier)
    admin.get_by_role("button", name="Find").click()
    expect(admin).to_have_url(f"{receipts}/student")
    expect(admin.locator("#student")).to_have_value(re.compile(sanne_code))
    expect(admin.locator("#identifier")).to_have_value("")
    codes = set(admin.locator("#student").input_value().split())
    expect(rows.filter(has_text=name)).to_have_count(2)
    _, text = _download(admin, "[data-export=csv]")
    found = list(csv.DictReader(io.StringIO(text)))
    assert len(found) == rows.count() and {row["student"][:16] for row in found} <= codes
    # No address the browser asked for carried a code or the identifier (nor the service).
    assert visited and not [
        url for url in visited if any(s in url for s in (*codes, identifier, "service="))
    ]

    # Who receives what: the service with the attribute the school releases, and why.
    admin.get_by_role("link", name="Who receives what").click()
    expect(admin.get_by_role("heading", level=1)).to_have_text(
        f"Who receives what from {SCHOOL_NAME}"
    )
    overview = admin.locator(f'tr[data-service="{publisher.id}"]')
    expect(overview).to_contain_text(name)
    expect(overview).to_contain_text(f"{FIRST_NAME}: {NAME_PURPOSE}")
    expect(overview).not_to_contain_text(ROLE)
    expect(overview.locator("td").nth(3)).to_have_text("1")
