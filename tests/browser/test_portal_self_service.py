"""Self-service in headless Chromium: a publisher registers an OpenID Connect client and sees its
secret once; the demo school's administrator switches the school to an OpenID provider (the test
forge), and the very next student login at Leesplank goes through that provider, no restart."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from werkzeug.serving import BaseWSGIServer

from broker.accounts import totp
from broker.accounts.passwords import hash_password
from broker.cli.demo import DEMO_SCHOOL_ID, DEMO_SCHOOL_TOWN, prepare_demo, serve
from broker.core.admins import AdminRole, Publisher
from broker.registry import SqlRegistry
from tests.browser.conftest import TIMEOUT_MS
from tests.support.live import free_ports
from tests.support.notice import continue_past_notice
from tests.support.oidc_forge import ForgeProvider

PASSWORD = "a long portal password"
PAIRWISE_ID = "urn:oasis:names:tc:SAML:attribute:pairwise-id"
PUBLISHER_ID = "lesapp-bv"
SCHOOL_SECRET = "secret-of-the-broker-at-the-school"
Screenshot = Callable[[Page, str], Path]
REDIRECT_URIS = re.compile(r"^Redirect-URI.s$")  # typographic apostrophe; not the logout field


@dataclass
class Site:
    broker: str
    leesplank: str
    registry: SqlRegistry
    forge: ForgeProvider
    secrets: dict[str, str]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    # The demo's seven ports, and the forge provider on the eighth.
    port = free_ports(8)
    settings, apps = prepare_demo(tmp_path_factory.mktemp("self-service-walk"), port)
    registry: SqlRegistry = apps[settings.base_url].extensions["ketenbroker"].registry
    forge = ForgeProvider(
        f"http://localhost:{port + 7}",
        "broker",
        SCHOOL_SECRET,
        settings.oidc_callback_url(DEMO_SCHOOL_ID),
    )
    apps[forge.issuer] = forge.app()
    registry.accounts.add_publisher(Publisher(PUBLISHER_ID, "Lesapp B.V."))
    secrets = {}
    for email, role, tenant in (
        ("dev@lesapp.example", AdminRole.PUBLISHER, PUBLISHER_ID),
        ("ict@lyceum.example", AdminRole.SCHOOL, DEMO_SCHOOL_ID),
    ):
        secrets[email] = totp.new_secret()
        registry.accounts.add_admin(email, hash_password(PASSWORD), secrets[email], role, tenant)
    servers: list[BaseWSGIServer] = serve(apps)
    try:
        yield Site(settings.base_url, f"http://localhost:{port + 2}", registry, forge, secrets)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        registry.close()


def _signed_in(browser: Browser, site: Site, email: str) -> Page:
    context = browser.new_context(locale="nl-NL")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{site.broker}/portal/")
    page.get_by_label("E-mailadres").fill(email)
    page.get_by_label("Wachtwoord", exact=True).fill(PASSWORD)
    code = totp.code_at(site.secrets[email], totp.current_step() + 1)
    page.get_by_label("Code uit uw authenticator-app").fill(code)
    page.get_by_role("button", name="Inloggen").click()
    # Signed in: the portal's sign-out button. Not any heading: the sign-in page has one too,
    # so a refused sign-in would pass here and fail later, at a link that never comes.
    expect(page.get_by_role("button", name="Uitloggen")).to_be_visible()
    return page


def test_publisher_registers_an_oidc_client(
    site: Site, browser: Browser, screenshot: Screenshot
) -> None:
    publisher = _signed_in(browser, site, "dev@lesapp.example")
    publisher.get_by_role("link", name="Een OpenID Connect-client registreren").click()
    publisher.get_by_label("Dienst-id").fill("lesapp")
    publisher.get_by_label("Naam", exact=True).fill("Lesapp")
    publisher.get_by_label(REDIRECT_URIS).fill(
        "https://lesapp.example/callback\nhttp://app.example/cb"
    )
    publisher.get_by_label("Refresh-tokens uitgeven").check()
    publisher.get_by_label("Nodig: Voornaam").select_option("optional")
    publisher.get_by_label("Doel van Voornaam, in het Nederlands").fill(
        "Om de leerling bij naam te begroeten."
    )
    publisher.get_by_role("button", name="Client registreren").click()
    # The second line is refused, next to the field, and nothing is registered yet.
    expect(publisher.locator("#redirect_uris-error")).to_contain_text("Regel 2")
    assert site.registry.any_service("lesapp") is None
    publisher.get_by_label(REDIRECT_URIS).fill("https://lesapp.example/callback")
    publisher.get_by_role("button", name="Client registreren").click()
    expect(publisher.get_by_text("Kopieer het geheim nu")).to_be_visible()
    secret = publisher.locator("#client-secret").inner_text()
    assert publisher.locator("#client-id").inner_text() == "lesapp"
    screenshot(publisher, "portal-07-oidc-client-secret")
    service = site.registry.any_service("lesapp")
    assert service is not None and service.oidc is not None and not service.approved
    assert service.oidc.secret_hash == sha256(secret.encode()).hexdigest()
    assert service.oidc.refresh_tokens
    publisher.get_by_role("link", name="Naar de dienst gaan").click()
    expect(publisher.locator("#oidc-client")).to_contain_text("https://lesapp.example/callback")
    assert secret not in publisher.content()


def test_school_switches_to_an_openid_provider_and_the_next_login_uses_it(
    site: Site, browser: Browser, screenshot: Screenshot
) -> None:
    school = _signed_in(browser, site, "ict@lyceum.example")
    school.get_by_role("link", name="Inlogdienst", exact=True).click()
    expect(school.locator("#current-idp")).to_contain_text("SAML")
    school.get_by_label("Issuer-URL van uw OpenID-provider").fill(site.forge.issuer)
    school.get_by_label("Client-id van de broker daar").fill("broker")
    school.get_by_label("Clientgeheim van de broker daar").fill(SCHOOL_SECRET)
    school.get_by_label("Claim die een leerling identificeert").select_option("sub")
    screenshot(school, "portal-08-school-idp")
    school.get_by_role("button", name="Deze inlogdienst via OpenID Connect gebruiken").click()
    expect(school.get_by_text("Opgeslagen. De volgende inlog gebruikt het.")).to_be_visible()
    expect(school.locator("#current-idp")).to_contain_text(site.forge.issuer)
    assert SCHOOL_SECRET not in school.content()

    # A student of the demo school logs in at Leesplank: through the school's new provider.
    context = browser.new_context(locale="nl-NL")
    context.set_default_timeout(TIMEOUT_MS)
    student = context.new_page()
    student.goto(site.leesplank + "/")
    student.get_by_role("button", name=re.compile("Log in via your school")).click()
    student.get_by_role("button", name=f"Demo Lyceum {DEMO_SCHOOL_TOWN}", exact=True).click()
    continue_past_notice(student, site.leesplank + "/acs")
    expect(student).to_have_url(site.leesplank + "/acs")
    response = student.request.get(site.leesplank + "/received.json")
    assert response.ok, response.text()
    received: dict[str, Any] = response.json()
    names = {a["name"] for a in received["attributes"]}
    assert PAIRWISE_ID in names
    assert site.forge.token_requests, "the broker redeemed a code at the new provider"
