"""The portals end to end in headless Chromium, with a student's login at the end.

A publisher registers a SAML service by uploading its metadata; the operator approves it and puts
it in a chain; the school's administrator switches it on and releases one attribute; a student of
the demo school logs in and the publisher receives exactly the pseudonym and that attribute.
Administrators of the school and the publisher come in through the operator's invitations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from werkzeug.serving import BaseWSGIServer

from broker.accounts import totp
from broker.accounts.passwords import hash_password
from broker.certificates import write_pair
from broker.cli.demo import DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN, prepare_demo, serve
from broker.core.admins import AdminRole
from broker.demo.publisher_sp import (
    PublisherSpSettings,
    create_publisher_sp_app,
    publisher_sp_metadata,
)
from tests.browser.conftest import TIMEOUT_MS
from tests.support.live import free_ports
from tests.support.notice import continue_past_notice

PASSWORD = "a long portal password"
PAIRWISE_ID = "urn:oasis:names:tc:SAML:attribute:pairwise-id"
GIVEN_NAME = "urn:oid:2.5.4.42"
SERVICE_ID = "boekenbus"
PUBLISHER_ID = "boekenbus-bv"
Screenshot = Callable[[Page, str], Path]


@dataclass
class Walk:
    broker: str
    publisher: str
    metadata_file: Path
    operator_email: str
    operator_secret: str


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    folder = tmp_path_factory.mktemp("portal-walk")
    # The demo takes seven consecutive ports (broker/cli/demo.py); the new publisher the eighth.
    port = free_ports(8)
    settings, apps = prepare_demo(folder, port)
    broker = apps[settings.base_url].extensions["ketenbroker"]
    sp_base = f"http://localhost:{port + 7}"
    sp = PublisherSpSettings(
        base_url=sp_base,
        entity_id=f"{sp_base}/metadata",
        name="Boekenbus (test publisher)",
        key_file=folder / "boekenbus.key",
        cert_file=folder / "boekenbus.crt",
        idp_metadata=(broker.saml_entities.idp_metadata(),),
        cross_site_cookie=True,
    )
    write_pair(sp.key_file, sp.cert_file, SERVICE_ID)
    metadata_file = folder / "boekenbus-metadata.xml"
    metadata_file.write_text(publisher_sp_metadata(sp), encoding="utf-8")
    apps[sp_base] = create_publisher_sp_app(sp)
    secret = totp.new_secret()
    broker.registry.accounts.add_admin(
        "operator@broker.example", hash_password(PASSWORD), secret, AdminRole.OPERATOR, None
    )
    servers: list[BaseWSGIServer] = serve(apps)
    try:
        yield Walk(settings.base_url, sp_base, metadata_file, "operator@broker.example", secret)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        broker.registry.close()


def _new_page(browser: Browser) -> Page:
    context = browser.new_context(locale="nl-NL")
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def _code(secret: str) -> str:
    # The next step's code: still inside the window, and never one used a moment ago.
    return totp.code_at(secret, totp.current_step() + 1)


def _accept_invitation(page: Page, link: str) -> None:
    page.goto(link)
    secret = page.locator("#totp-secret").inner_text()
    assert page.locator("#otpauth-uri").inner_text().startswith("otpauth://totp/")
    # The QR code is drawn (inline SVG: the CSP lets it through) at a size a camera reads.
    box = page.locator("#totp-qr svg").bounding_box()
    assert box is not None and box["width"] >= 150 and box["width"] == box["height"], box
    page.get_by_label("Nieuw wachtwoord", exact=True).fill(PASSWORD)
    page.get_by_label("Nieuw wachtwoord nogmaals").fill(PASSWORD)
    page.get_by_label("Code uit uw authenticator-app").fill(_code(secret))
    page.get_by_role("button", name="Mijn account aanmaken").click()


def _invite(page: Page, walk: Walk, email: str, role: str, tenant: str) -> str:
    page.goto(f"{walk.broker}/portal/operator/admins")
    page.get_by_label("E-mailadres").fill(email)
    page.get_by_label("Rol", exact=True).select_option(role)
    page.get_by_label("School-id of uitgever-id").fill(tenant)
    page.get_by_role("button", name="Uitnodiging maken").click()
    return page.locator("#invite-link").inner_text()


def test_publisher_operator_school_then_student(
    walk: Walk, browser: Browser, screenshot: Screenshot
) -> None:
    # The operator signs in (password and code) and invites the two other administrators.
    operator = _new_page(browser)
    operator.goto(f"{walk.broker}/portal/")
    expect(operator.get_by_role("heading", name="Inloggen op het portaal")).to_be_visible()
    operator.get_by_label("E-mailadres").fill(walk.operator_email)
    operator.get_by_label("Wachtwoord", exact=True).fill(PASSWORD)
    operator.get_by_label("Code uit uw authenticator-app").fill(_code(walk.operator_secret))
    screenshot(operator, "portal-01-sign-in")
    operator.get_by_role("button", name="Inloggen").click()
    expect(operator.get_by_role("heading", name="Diensten")).to_be_visible()

    operator.goto(f"{walk.broker}/portal/operator/admins")
    operator.get_by_label("Uitgever-id", exact=True).fill(PUBLISHER_ID)
    operator.get_by_label("Naam", exact=True).fill("Boekenbus B.V.")
    operator.get_by_role("button", name="Uitgever toevoegen").click()
    publisher_link = _invite(operator, walk, "dev@boekenbus.example", "publisher", PUBLISHER_ID)
    school_link = _invite(operator, walk, "ict@lyceum.example", "school", DEMO_SCHOOL_ID)
    screenshot(operator, "portal-02-invitation")

    # The publisher's administrator enrols and registers the service from its metadata file.
    publisher = _new_page(browser)
    _accept_invitation(publisher, publisher_link)
    expect(publisher.get_by_role("heading", name=re.compile("Diensten van"))).to_be_visible()
    publisher.get_by_role("link", name="Een SAML-dienst registreren").click()
    publisher.get_by_label("Dienst-id").fill(SERVICE_ID)
    publisher.get_by_label("Naam", exact=True).fill("Boekenbus")
    publisher.get_by_label("SAML-metadatabestand van de dienst").set_input_files(
        str(walk.metadata_file)
    )
    publisher.get_by_label("Nodig: Voornaam").select_option("optional")
    publisher.get_by_label("Doel van Voornaam, in het Nederlands").fill(
        "Om de leerling bij naam te begroeten."
    )
    publisher.get_by_label("Nodig: Rol op school").select_option("optional")
    publisher.get_by_label("Doel van Rol op school, in het Nederlands").fill(
        "Om docenten hun hulpmiddelen te tonen."
    )
    screenshot(publisher, "portal-03-publisher-register")
    publisher.get_by_role("button", name="Registreren").click()
    expect(publisher.get_by_text("Wacht op goedkeuring").first).to_be_visible()

    # The operator approves it and puts it in the chain of learning materials.
    operator.goto(f"{walk.broker}/portal/operator/services")
    card = operator.locator(f"#service-{SERVICE_ID}")
    card.get_by_role("button", name=f"{SERVICE_ID} goedkeuren").click()
    card = operator.locator(f"#service-{SERVICE_ID}")
    card.get_by_label(f"Keten van {SERVICE_ID}").select_option("leermiddelen")
    card.get_by_role("button", name="Keten opslaan").click()
    expect(operator.locator(f"#service-{SERVICE_ID}")).to_contain_text("Goedgekeurd")
    screenshot(operator, "portal-04-operator-services")

    # The school's administrator enrols, opens the service and releases the first name only.
    school = _new_page(browser)
    _accept_invitation(school, school_link)
    school.get_by_role("link", name="Boekenbus").click()
    school.locator('input[name="attributes"][value="given_name"]').check()
    school.get_by_role("button", name="Opslaan").click()
    expect(school.get_by_text("Opgeslagen als versie 1.")).to_be_visible()
    expect(school.locator("#preview")).to_contain_text("Voornaam")
    expect(school.locator("#preview")).to_contain_text("Sanne")
    # The history names the attribute and the colleague who chose, not codes.
    expect(school.locator("#history")).to_contain_text("Voornaam")
    expect(school.locator("#history")).to_contain_text("ict@lyceum.example")
    expect(school.locator("#history")).not_to_contain_text("given_name")
    screenshot(school, "portal-05-school-release")
    # "Wie krijgt wat" fits the page in Dutch, whose words are longer, on a laptop and on a
    # phone (where each row stacks): nothing scrolls sideways.
    school.get_by_role("link", name="Wie krijgt wat").click()
    for width in (1280, 390):
        school.set_viewport_size({"width": width, "height": 900})
        sideways = school.locator("#overview").evaluate("t => t.scrollWidth - t.clientWidth")
        page_sideways = school.evaluate("() => document.documentElement.scrollWidth - innerWidth")
        assert (sideways, page_sideways) == (0, 0), width
    row = school.locator('tr[data-service="rekenroute"]')  # no choice yet: no version 0
    expect(row.locator("td[data-version]")).to_have_text("nog geen keuze")

    # The publisher sees the school's choice, by attribute name only.
    publisher.goto(f"{walk.broker}/portal/publisher/{PUBLISHER_ID}/services/{SERVICE_ID}")
    expect(publisher.locator("#schools")).to_contain_text("Demo Lyceum")
    expect(publisher.locator("#schools")).to_contain_text("given_name")

    # A student of the demo school logs in at the new service.
    student = _new_page(browser)
    student.goto(walk.publisher + "/")
    student.get_by_role("button", name="Log in via your school (Ketenbroker)").click()
    student.locator("#school-search").fill("lyc")
    student.get_by_role("button", name=f"Demo Lyceum {DEMO_SCHOOL_TOWN}", exact=True).click()
    student.get_by_role("button", name=re.compile("Sanne Jansen")).click()
    continue_past_notice(student, walk.publisher + "/acs")
    expect(student).to_have_url(walk.publisher + "/acs")
    response = student.request.get(walk.publisher + "/received.json")
    assert response.ok, response.text()
    received: dict[str, Any] = response.json()
    names = {a["name"]: a["values"] for a in received["attributes"]}
    assert set(names) == {PAIRWISE_ID, GIVEN_NAME}, names
    assert names[GIVEN_NAME] == ["Sanne"]
    screenshot(student, "portal-06-student-received")
