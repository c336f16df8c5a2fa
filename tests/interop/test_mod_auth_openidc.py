"""A publisher's Apache with mod_auth_openidc (Debian 12's 2.4.12.3) signs students in through
the broker's OpenID Connect provider and the demo school, configured as docs/publishers.md says
(tests/support/mod_auth_openidc.py reads its settings from the doc), registered with
`ketenbroker publisher add --oidc-redirect-uri`.

What it shows: discovery, the code flow with PKCE and `form_post`, `client_secret_basic` at the
token endpoint, the ID token and userinfo as mod_auth_openidc checks them; `sub` is the
pseudonym and only the claims the school released reach the application; mod_auth_openidc's own
logout goes through the broker's end_session and back; a logout elsewhere reaches it over
back-channel logout and ends its session.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, Request, expect

from broker.cli.demo import DEMO_SCHOOL_ID, prepare_demo, serve
from broker.cli.instance import CONFIG_NAME
from broker.oidc import provider_tls
from tests.browser.conftest import _free_port_run
from tests.support.cli import succeeds
from tests.support.live import free_ports
from tests.support.mod_auth_openidc import ModAuthOpenidc, running_mod_auth_openidc, site
from tests.support.notice import continue_past_notice

SERVICE = "openidc-platform"
DECLARED = {
    "given_name": "Om de leerling bij de voornaam te begroeten.",
    "family_name": "Om de achternaam te tonen.",
    "email": "Om de leerling te mailen.",
    "groups": "Om de leerling in de juiste klas te plaatsen.",
    "school_name": "Om de school te tonen.",
}
# The demo school releases all but the family name.
RELEASED = ["given_name", "email", "groups", "school_name"]
# Sanne Jansen's released claims as the application behind mod_auth_openidc reads them.
EXPECTED = {
    "OIDC_CLAIM_given_name": "Sanne",
    "OIDC_CLAIM_email": "sanne.jansen@leerling.demoschool.example",
    "OIDC_CLAIM_groups": "klas-3a",
    "OIDC_CLAIM_school_name": "Demo Lyceum",
}


@dataclass(frozen=True)
class Setup:
    broker: str
    leesplank: str
    config: Path
    rp: ModAuthOpenidc


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The demo broker and school; mod_auth_openidc on another free port, registered with the
    CLI and released all but one of the claims it declared by the demo school."""
    directory = tmp_path_factory.mktemp("broker")
    port = _free_port_run(7)
    settings, apps = prepare_demo(directory, port)
    servers = serve(apps)
    rp_port = free_ports(1)
    try:
        with site(rp_port) as rp, pytest.MonkeyPatch.context() as patch:
            # The broker's back-channel logout call verifies the platform's TLS certificate:
            # against the test CA here (a real platform's is publicly trusted).
            patch.setattr(provider_tls, "DEFAULT_CA_BUNDLE_PATH", str(rp.site.ca_file))
            patch.setattr(provider_tls, "_CONTEXTS", {})
            config = directory / CONFIG_NAME
            declared = [f"--declare={name}={purpose}" for name, purpose in DECLARED.items()]
            added = succeeds(
                "publisher", "add", "--config", str(config), "--id", SERVICE,
                "--name", "Apache-platform", "--chain", "leermiddelen", *declared,
                "--oidc-redirect-uri", rp.redirect_uri,
                "--oidc-post-logout-uri", rp.logged_out,
                "--oidc-backchannel-logout-uri", rp.backchannel_logout_uri,
            )  # fmt: skip
            secret = re.search(r"client_secret: (\S+)", added)
            assert secret is not None, added
            succeeds(
                "policy", "set", "--config", str(config), "--school", DEMO_SCHOOL_ID,
                "--publisher", SERVICE, "--release", ",".join(RELEASED),
            )  # fmt: skip
            with running_mod_auth_openidc(
                rp, rp_port, settings.base_url, SERVICE, secret.group(1)
            ):
                yield Setup(settings.base_url, f"http://localhost:{port + 2}", config, rp)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _watch(page: Page) -> list[Request]:
    requests: list[Request] = []

    def note(request: Request) -> None:
        requests.append(request)

    page.on("request", note)
    return requests


def _login(page: Page, setup: Setup) -> dict[str, str]:
    """From the protected page through the broker and the demo school, as Sanne Jansen;
    returns what the application received (its CGI environment)."""
    secure = setup.rp.base_url + "/secure/env.cgi"
    page.goto(secure)
    expect(page).to_have_url(re.compile("^" + re.escape(setup.broker) + "/"))
    page.locator("#school-search").fill("lyc")
    page.get_by_role("button", name=re.compile("^Demo Lyceum")).click()
    page.get_by_role("button", name=re.compile("Sanne Jansen")).click()
    continue_past_notice(page, secure)
    expect(page).to_have_url(secure)
    lines = page.locator("body").inner_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_mod_auth_openidc_receives_the_pseudonym_and_released_claims(
    setup: Setup, page: Page
) -> None:
    seen = _watch(page)
    env = _login(page, setup)

    assert re.fullmatch("[0-9a-f]{64}", env["OIDC_CLAIM_sub"]), env
    assert env["REMOTE_USER"] == env["OIDC_CLAIM_sub"]
    assert env["OIDC_CLAIM_iss"] == setup.broker
    assert {name: env.get(name) for name in EXPECTED} == EXPECTED
    assert "OIDC_CLAIM_family_name" not in env  # declared, not released
    # The code came by form_post, with PKCE.
    authorize = [r.url for r in seen if r.url.startswith(setup.broker + "/oidc/authorize?")]
    assert authorize and "code_challenge_method=S256" in authorize[0], authorize
    assert "response_mode=form_post" in authorize[0]
    posted = [r for r in seen if r.method == "POST" and r.url == setup.rp.redirect_uri]
    assert len(posted) == 1 and "code=" in (posted[0].post_data or "")


def test_mod_auth_openidc_logout_goes_through_the_broker_and_back(
    setup: Setup, page: Page
) -> None:
    _login(page, setup)
    seen = _watch(page)

    page.goto(f"{setup.rp.redirect_uri}?logout={quote(setup.rp.logged_out, safe='')}")

    expect(page).to_have_url(setup.rp.logged_out)
    ended = [r.url for r in seen if r.url.startswith(setup.broker + "/oidc/end_session?")]
    assert ended and "id_token_hint=" in ended[0], [r.url for r in seen]
    # Its session is gone: the protected page sends the browser to the broker again.
    page.goto(setup.rp.base_url + "/secure/env.cgi")
    expect(page).to_have_url(re.compile("^" + re.escape(setup.broker) + "/"))


def test_a_logout_elsewhere_reaches_mod_auth_openidc_over_the_back_channel(
    setup: Setup, page: Page, caplog: pytest.LogCaptureFixture
) -> None:
    """Signed in at the Apache platform and at the demo's Leesplank in one broker session; the
    student logs out at Leesplank. The broker POSTs a logout token to mod_auth_openidc's
    back-channel URI, which checks it, ends its session and confirms: the logout is complete."""
    _login(page, setup)
    page.goto(setup.leesplank + "/")
    page.get_by_role("button", name="Log in via your school (Ketenbroker)").click()
    continue_past_notice(page, setup.leesplank + "/acs")
    expect(page).to_have_url(setup.leesplank + "/acs")
    caplog.set_level("INFO", logger="broker.logout")

    page.goto(setup.leesplank + "/logout")

    expect(page).to_have_url(re.compile(re.escape(setup.leesplank) + "/slo\\?SAMLResponse="))
    messages = [r.getMessage() for r in caplog.records if r.name == "broker.logout"]
    ended = [m for m in messages if m.startswith("logout ended")]
    assert len(ended) == 1, messages
    assert "outcome=complete services=1 confirmed=1" in ended[0], ended
    # Its session is gone: the protected page sends the browser to the broker again.
    page.goto(setup.rp.base_url + "/secure/env.cgi")
    expect(page).to_have_url(re.compile("^" + re.escape(setup.broker) + "/"))
