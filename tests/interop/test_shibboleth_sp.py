"""A publisher's Shibboleth SP 3 (Debian's 3.4.1 behind Apache) signs students in through the
broker and the demo school, configured as docs/publishers.md says (tests/support/shibboleth_sp.py
reads its settings from the doc), registered with `ketenbroker publisher add` from the
metadata Shibboleth makes for itself.

What it shows: the broker's encrypted assertion is decrypted and its pseudonym, attributes and
(during a pseudonym key change) previous pseudonym reach the application under the names the
doc gives; Shibboleth's own logout goes through the broker and back; a logout elsewhere reaches
Shibboleth both in the browser's iframe and over SOAP, and ends its session.
"""

from __future__ import annotations

import base64
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree
from playwright.sync_api import Browser, Page, Request, expect

from broker.cli.demo import DEMO_SCHOOL_ID, prepare_demo, serve
from broker.cli.instance import CONFIG_NAME
from broker.oidc import provider_tls
from tests.browser.conftest import TIMEOUT_MS, _free_port_run
from tests.support.cli import succeeds
from tests.support.interop_pages import sign_in_as_sanne, sign_in_at_leesplank, watch
from tests.support.live import free_ports
from tests.support.shibboleth_sp import ShibbolethSp, running_shibboleth_sp

SCOPE = "demo.ketenbroker.example"
HEX64 = "[0-9a-f]{64}"
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
SERVICE = "shibsp"
DECLARED = {
    "given_name": "Om de leerling bij de voornaam te begroeten.",
    "family_name": "Om de achternaam te tonen.",
    "display_name": "Om de naam te tonen.",
    "email": "Om de leerling te mailen.",
    "affiliation": "Om leerlingen de lessen te tonen.",
    "groups": "Om de leerling in de juiste klas te plaatsen.",
    "student_number": "Om de leerling te koppelen.",
    "school_id": "Om de school te tonen.",
    "school_name": "Om de school te tonen.",
    "eck_id": "Om licenties te koppelen.",
}
# What the doc's attribute rules make of Sanne Jansen's released attributes (the ids of
# docs/publishers.md, section 7), as the application behind mod_shib reads them.
EXPECTED = {
    "givenName": "Sanne",
    "sn": "Jansen",
    "displayName": "Sanne Jansen",
    "mail": "sanne.jansen@leerling.demoschool.example",
    "unscoped-affiliation": "student",
    "member": "klas-3a",
    "nlEduPersonProfileId": "300101@demoschool.example",
    "nlEduPersonHomeOrganizationId": DEMO_SCHOOL_ID,
    "nlEduPersonHomeOrganization": "Demo Lyceum",
}


@dataclass(frozen=True)
class Setup:
    broker: str
    leesplank: str
    config: Path
    sp: ShibbolethSp


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The demo broker and school; Shibboleth SP on another free port, registered with the CLI
    and released everything it declared by the demo school."""
    directory = tmp_path_factory.mktemp("broker")
    port = _free_port_run(7)
    settings, apps = prepare_demo(directory, port)
    servers = serve(apps)
    try:
        with (
            running_shibboleth_sp(free_ports(1), settings.base_url) as sp,
            pytest.MonkeyPatch.context() as patch,
        ):
            # The broker's SOAP logout call verifies Shibboleth's TLS certificate: against the
            # test CA here (a real platform's is publicly trusted).
            patch.setattr(provider_tls, "DEFAULT_CA_BUNDLE_PATH", str(sp.ca_file))
            patch.setattr(provider_tls, "_CONTEXTS", {})
            metadata = directory / "shibboleth-sp-metadata.xml"
            metadata.write_text(sp.metadata(), encoding="utf-8")
            config = directory / CONFIG_NAME
            declared = [f"--declare={name}={purpose}" for name, purpose in DECLARED.items()]
            added = succeeds(
                "publisher", "add", "--config", str(config), "--id", SERVICE,
                "--name", "Shibboleth-platform", "--saml-metadata", str(metadata),
                "--chain", "leermiddelen", *declared,
            )  # fmt: skip
            assert f"Service {SERVICE} added (SP {sp.entity_id})" in added
            succeeds(
                "policy", "set", "--config", str(config), "--school", DEMO_SCHOOL_ID,
                "--publisher", SERVICE, "--release", ",".join(DECLARED),
            )  # fmt: skip
            yield Setup(settings.base_url, f"http://localhost:{port + 2}", config, sp)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _posted_response(requests: list[Request], acs: str) -> etree._Element:
    """The SAML Response the browser POSTed to `acs`."""
    posted = [r for r in requests if r.method == "POST" and r.url == acs]
    assert len(posted) == 1, [r.url for r in requests]
    form = parse_qs(posted[0].post_data or "")
    return etree.fromstring(base64.b64decode(form["SAMLResponse"][0]))


def _redirect_message(url: str, parameter: str) -> etree._Element:
    """The message of an HTTP-Redirect binding URL (DEFLATE, base64)."""
    query = parse_qs(urlsplit(url).query)
    return etree.fromstring(zlib.decompress(base64.b64decode(query[parameter][0]), -15))


def _login(page: Page, setup: Setup) -> dict[str, str]:
    """Signed in at the Shibboleth-protected page as Sanne Jansen: what the application got."""
    return sign_in_as_sanne(page, setup.broker, setup.sp.base_url + "/secure/env.cgi")


def _session(page: Page, setup: Setup) -> str:
    page.goto(setup.sp.base_url + "/Shibboleth.sso/Session")
    return page.locator("body").inner_text()


def test_shibboleth_receives_the_pseudonym_and_attributes_encrypted(
    setup: Setup, page: Page
) -> None:
    seen = watch(page)
    env = _login(page, setup)

    response = _posted_response(seen(), setup.sp.base_url + "/Shibboleth.sso/SAML2/POST")
    assert response.findall(f"{{{SAML}}}Assertion") == []
    encrypted = response.findall(f"{{{SAML}}}EncryptedAssertion")
    assert len(encrypted) == 1
    methods = [m.get("Algorithm") for m in encrypted[0].iter("{*}EncryptionMethod")]
    # Shibboleth's metadata lists aes128-gcm first: the broker takes the first GCM one.
    assert methods == [
        "http://www.w3.org/2009/xmlenc11#aes128-gcm",
        "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    ]

    pairwise = env["pairwise_id"]
    assert re.fullmatch(f"{HEX64}@{re.escape(SCOPE)}", pairwise), env
    pseudonym = pairwise.split("@")[0]
    assert env["REMOTE_USER"] == pairwise
    issuer = f"{setup.broker}/saml/idp/metadata"
    assert env["persistent_id"] == f"{issuer}!{setup.sp.entity_id}!{pseudonym}"
    assert env["Shib_Identity_Provider"] == issuer
    # mod_shib exports an id's hyphen as an underscore (unscoped-affiliation).
    assert {name: env.get(name.replace("-", "_")) for name in EXPECTED} == EXPECTED
    assert env["eckId"].startswith("https://ketenid.nl/")
    assert "skipping SAML 2.0 Attribute" not in setup.sp.log()

    session = _session(page, setup)
    assert f"pairwise-id: {pairwise}" in session
    assert "givenName: Sanne" in session


def test_shibboleth_logout_goes_through_the_broker_and_back(setup: Setup, page: Page) -> None:
    _login(page, setup)
    seen = watch(page)

    page.goto(setup.sp.base_url + "/Shibboleth.sso/Logout")

    expect(page.get_by_text("Logout completed successfully")).to_be_visible()
    to_broker = [r.url for r in seen() if r.url.startswith(setup.broker + "/saml/idp/slo?")]
    assert to_broker, [r.url for r in seen()]
    request = _redirect_message(to_broker[0], "SAMLRequest")
    assert request.tag == f"{{{SAMLP}}}LogoutRequest"
    assert "Signature" in parse_qs(urlsplit(to_broker[0]).query)
    back = [r.url for r in seen() if "/Shibboleth.sso/SLO/Redirect?SAMLResponse=" in r.url]
    answer = _redirect_message(back[0], "SAMLResponse")
    status = answer.find(f"{{{SAMLP}}}Status/{{{SAMLP}}}StatusCode")
    assert status is not None
    assert status.get("Value") == "urn:oasis:names:tc:SAML:2.0:status:Success"
    assert "A valid session was not found" in _session(page, setup)


def test_a_logout_elsewhere_reaches_shibboleth_over_soap_and_in_the_iframe(
    setup: Setup, page: Page, caplog: pytest.LogCaptureFixture
) -> None:
    """Signed in at Shibboleth's platform and at the demo's Leesplank in one broker session;
    the student logs out at Leesplank. The broker tells Shibboleth over SOAP first (Shibboleth
    signs its answer with RSA-SHA256 because the broker's metadata lists the algorithms it
    takes; with RSA-SHA1, its default, the answer was refused), then in the iframe; Shibboleth
    confirms over SOAP, its session is gone, and the logout is complete."""
    _login(page, setup)
    sign_in_at_leesplank(page, setup.leesplank)
    caplog.set_level("INFO", logger="broker.logout")
    seen = watch(page)

    page.goto(setup.leesplank + "/logout")

    # Complete: the broker's last page sends the student back to Leesplank by itself.
    expect(page).to_have_url(re.compile(re.escape(setup.leesplank) + "/slo\\?SAMLResponse="))
    framed = [r.url for r in seen() if "/Shibboleth.sso/SLO/Redirect?SAMLRequest=" in r.url]
    assert len(framed) == 1, [r.url for r in seen()]
    messages = [r.getMessage() for r in caplog.records if r.name == "broker.logout"]
    assert not [m for m in messages if m.startswith("back-channel logout")], messages
    ended = [m for m in messages if m.startswith("logout ended")]
    assert len(ended) == 1, messages
    assert "outcome=complete services=1 confirmed=1" in ended[0]
    assert "confirmed_by_back_only=1" in ended[0]  # SOAP ended it before the iframe came
    assert "removed session" in setup.sp.log()
    session = _session(page, setup)
    assert "pairwise-id" not in session
    assert re.search("session is not available|A valid session was not found", session), session


def test_the_previous_pseudonym_reaches_shibboleth_during_a_key_change(
    setup: Setup, browser: Browser
) -> None:
    def login_in_a_new_browser() -> dict[str, str]:
        context = browser.new_context(locale="nl-NL", ignore_https_errors=True)
        context.set_default_timeout(TIMEOUT_MS)
        try:
            return _login(context.new_page(), setup)
        finally:
            context.close()

    before = login_in_a_new_browser()["pairwise_id"].split("@")[0]
    succeeds(
        "pseudonym-key", "rotate", "--config", str(setup.config),
        "--chain", "leermiddelen", "--window", "30",
    )  # fmt: skip
    time.sleep(1.5)  # the running broker follows the registry within about a second
    try:
        env = login_in_a_new_browser()
    finally:
        succeeds(
            "pseudonym-key", "finish", "--config", str(setup.config), "--chain", "leermiddelen"
        )

    assert env["previous_pseudonym"] == before
    assert env["pairwise_id"].split("@")[0] != before
