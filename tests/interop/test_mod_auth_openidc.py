"""A publisher's Apache with mod_auth_openidc (Debian 12's 2.4.12.3) signs students in through
the broker's OpenID Connect provider and the demo school, configured as docs/publishers.md says
(tests/support/mod_auth_openidc.py reads its settings from the doc), registered with
`ketenbroker publisher add --oidc-redirect-uri`.

What it shows: discovery, the code flow with PKCE and `form_post`, `client_secret_basic` at the
token endpoint, the ID token and userinfo as mod_auth_openidc checks them; `sub` is the
pseudonym and only the claims the school released reach the application; mod_auth_openidc's own
logout goes through the broker's end_session and back; a logout elsewhere reaches it over
back-channel logout and ends its session; with `OIDCCookieSameSite On`, form_post fails and the
query mode works, as the doc says.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from broker.cli.demo import DEMO_SCHOOL_ID, prepare_demo, serve
from broker.cli.instance import CONFIG_NAME
from broker.oidc import provider_tls
from tests.browser.conftest import _free_port_run
from tests.support.cli import succeeds
from tests.support.interop_pages import sign_in_as_sanne, sign_in_at_leesplank, watch
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


@contextmanager
def _platform(
    broker: str, config: Path, service: str, adjust: Callable[[str], str] = str
) -> Iterator[ModAuthOpenidc]:
    """mod_auth_openidc on a free port, registered as `service` with the CLI (its redirect,
    post-logout and back-channel logout URIs as the doc says) and released all but one of the
    claims it declared by the demo school."""
    port = free_ports(1)
    with site(port) as rp:
        declared = [f"--declare={name}={purpose}" for name, purpose in DECLARED.items()]
        added = succeeds(
            "publisher", "add", "--config", str(config), "--id", service,
            "--name", "Apache-platform", "--chain", "leermiddelen", *declared,
            "--oidc-redirect-uri", rp.redirect_uri,
            "--oidc-post-logout-uri", rp.logged_out,
            "--oidc-backchannel-logout-uri", rp.backchannel_logout_uri,
        )  # fmt: skip
        secret = re.search(r"client_secret: (\S+)", added)
        assert secret is not None, added
        succeeds(
            "policy", "set", "--config", str(config), "--school", DEMO_SCHOOL_ID,
            "--publisher", service, "--release", ",".join(RELEASED),
        )  # fmt: skip
        with running_mod_auth_openidc(rp, port, broker, service, secret.group(1), adjust):
            yield rp


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """The demo broker and school, and a mod_auth_openidc platform configured as the doc says."""
    directory = tmp_path_factory.mktemp("broker")
    port = _free_port_run(7)
    settings, apps = prepare_demo(directory, port)
    servers = serve(apps)
    config = directory / CONFIG_NAME
    try:
        with (
            _platform(settings.base_url, config, SERVICE) as rp,
            pytest.MonkeyPatch.context() as patch,
        ):
            # The broker's back-channel logout call verifies the platform's TLS certificate:
            # against the test CA here (a real platform's is publicly trusted).
            patch.setattr(provider_tls, "DEFAULT_CA_BUNDLE_PATH", str(rp.site.ca_file))
            patch.setattr(provider_tls, "_CONTEXTS", {})
            yield Setup(settings.base_url, f"http://localhost:{port + 2}", config, rp)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def _login(page: Page, setup: Setup, rp: ModAuthOpenidc | None = None) -> dict[str, str]:
    """Signed in at the protected page of `rp` (the doc's platform by default) as Sanne Jansen:
    what the application got."""
    return sign_in_as_sanne(page, setup.broker, (rp or setup.rp).base_url + "/secure/env.cgi")


def test_mod_auth_openidc_receives_the_pseudonym_and_released_claims(
    setup: Setup, page: Page
) -> None:
    seen = watch(page)
    env = _login(page, setup)

    assert re.fullmatch("[0-9a-f]{64}", env["OIDC_CLAIM_sub"]), env
    assert env["REMOTE_USER"] == env["OIDC_CLAIM_sub"]
    assert env["OIDC_CLAIM_iss"] == setup.broker
    assert {name: env.get(name) for name in EXPECTED} == EXPECTED
    assert "OIDC_CLAIM_family_name" not in env  # declared, not released
    # The code came by form_post, with PKCE.
    authorize = [r.url for r in seen() if r.url.startswith(setup.broker + "/oidc/authorize?")]
    assert authorize and "code_challenge_method=S256" in authorize[0], authorize
    assert "response_mode=form_post" in authorize[0]
    posted = [r for r in seen() if r.method == "POST" and r.url == setup.rp.redirect_uri]
    assert len(posted) == 1 and "code=" in (posted[0].post_data or "")


def test_mod_auth_openidc_logout_goes_through_the_broker_and_back(setup: Setup, page: Page) -> None:
    _login(page, setup)
    seen = watch(page)

    page.goto(f"{setup.rp.redirect_uri}?logout={quote(setup.rp.logged_out, safe='')}")

    expect(page).to_have_url(setup.rp.logged_out)
    ended = [r.url for r in seen() if r.url.startswith(setup.broker + "/oidc/end_session?")]
    assert ended and "id_token_hint=" in ended[0], [r.url for r in seen()]
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
    sign_in_at_leesplank(page, setup.leesplank)
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


def test_with_samesite_cookies_mod_auth_openidc_needs_the_query_mode(
    setup: Setup, page: Page
) -> None:
    """`OIDCCookieSameSite On` makes mod_auth_openidc's state cookie `Lax`: the broker's
    cross-site form_post arrives without it and the login fails at the redirect URI; with the
    default response mode (query, a top-level redirect, which carries `Lax` cookies) it works,
    as the doc says."""

    def samesite(form_post: bool) -> Callable[[str], str]:
        def adjust(block: str) -> str:
            mode = "OIDCResponseMode form_post\n"
            assert mode in block
            return block.replace(mode, "OIDCCookieSameSite On\n" + mode * form_post)

        return adjust

    with _platform(setup.broker, setup.config, "openidc-lax", samesite(form_post=False)) as rp:
        env = _login(page, setup, rp)
        assert env["REMOTE_USER"] == env["OIDC_CLAIM_sub"]
        assert env["OIDC_CLAIM_given_name"] == "Sanne"
    with _platform(setup.broker, setup.config, "openidc-lax-post", samesite(form_post=True)) as rp:
        page.goto(rp.base_url + "/secure/env.cgi")
        # Signed in at the broker already: the notice, then the answer, which mod_auth_openidc
        # cannot match to its request.
        continue_past_notice(page, rp.redirect_uri)
        expect(page).to_have_url(rp.redirect_uri)
        expect(page.locator("body")).to_contain_text("Bad Request")
        assert "state cookie found: check domain and samesite cookie settings" in rp.logs()
